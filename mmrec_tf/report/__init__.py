"""Run reports people can look at: accuracy, beyond-accuracy, fairness, exposure, re-ranking and explanations.

``write_report(run_dir, compare=(), out=None)`` writes ``report.html`` (one
self-contained page, plots embedded as PNG) and ``report.json`` (the same
numbers); ``mmrec report RUN [--compare RUN2 ...] [--out DIR]`` calls it.
"""

from mmrec_tf.report.page import build_report, render_html, write_report

__all__ = ["build_report", "render_html", "write_report"]
