"""The report's plots, drawn with matplotlib (object API, Agg canvas: no display, no global pyplot state).

Each function takes the runs' numbers (:func:`~mmrec_tf.report.numbers.run_numbers`)
and returns a PNG as bytes; one line, bar group or curve per run.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 80
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
RERANKER_LABELS = {"mmr": "MMR (embeddings)", "calibrated": "calibrated (genres)", "tail": "long-tail boost"}


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _colour(index: int) -> str:
    return COLOURS[index % len(COLOURS)]


def accuracy_curves(runs: list[dict]) -> bytes:
    """HR@K and NDCG@K against K."""
    figure = Figure(figsize=(9, 3.4))
    for axis, metric in zip(figure.subplots(1, 2), ("hr", "ndcg")):
        for index, run in enumerate(runs):
            ks = run["accuracy"]["ks"]
            axis.plot(ks, [run["accuracy"]["metrics"][f"{metric}@{k}"] for k in ks], marker="o",
                      color=_colour(index), label=run["name"])
        axis.set_xscale("log")
        axis.set_xticks(ks, [str(k) for k in ks])
        axis.set_xlabel("K (list length)")
        axis.set_ylabel(f"{metric.upper()}@K")
        axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return _png(figure)


def group_bars(runs: list[dict], column: str) -> bytes:
    """HR@k per group of one users.csv column, with the bootstrap 95 % interval as error bars."""
    names = sorted({group for run in runs for group in run["user_groups"].get(column, {}).get("groups", {})})
    figure = Figure(figsize=(max(6.0, 0.45 * len(names) * len(runs) + 2), 3.4))
    axis = figure.subplots()
    width = 0.8 / len(runs)
    for index, run in enumerate(runs):
        groups = run["user_groups"].get(column, {}).get("groups", {})
        x = np.arange(len(names)) + (index - (len(runs) - 1) / 2) * width
        values = np.array([groups[n]["value"] if n in groups else np.nan for n in names])
        low = np.array([groups[n]["low"] if n in groups else np.nan for n in names])
        high = np.array([groups[n]["high"] if n in groups else np.nan for n in names])
        axis.bar(x, values, width, color=_colour(index), label=run["name"],
                 yerr=np.nan_to_num(np.stack([values - low, high - values])), capsize=2)
    axis.set_xticks(np.arange(len(names)), names, rotation=45 if len(names) > 6 else 0, ha="right", fontsize=8)
    axis.set_ylabel(f"HR@{runs[0]['k']} (95 % interval)")
    axis.set_title(f"by {column}")
    axis.grid(axis="y", alpha=0.3)
    axis.legend(fontsize=8)
    return _png(figure)


def exposure(runs: list[dict]) -> bytes:
    """Lorenz curve of exposure per item, and exposure vs interaction share by popularity decile."""
    figure = Figure(figsize=(9, 3.6))
    lorenz, deciles = figure.subplots(1, 2)
    lorenz.plot([0, 1], [0, 1], color="grey", linestyle="--", label="equal exposure")
    for index, run in enumerate(runs):
        curve = run["exposure"]["lorenz"]
        lorenz.plot(curve["items"], curve["exposure"], color=_colour(index),
                    label=f"{run['name']} (Gini {run['beyond_accuracy']['gini']:.2f})")
    lorenz.set_xlabel("share of items, least exposed first")
    lorenz.set_ylabel(f"share of top-{runs[0]['k']} slots")
    lorenz.legend(fontsize=8)
    lorenz.grid(alpha=0.3)
    labels = sorted(runs[0]["exposure"]["deciles"], key=int)
    width = 0.8 / (len(runs) + 1)
    x = np.arange(len(labels))
    interactions = [runs[0]["exposure"]["deciles"][d]["interaction_share"] for d in labels]
    deciles.bar(x - 0.4 + width / 2, interactions, width, color="lightgrey", label="training interactions")
    for index, run in enumerate(runs):
        shares = [run["exposure"]["deciles"].get(d, {}).get("exposure_share", 0.0) for d in labels]
        deciles.bar(x - 0.4 + width * (index + 1.5), shares, width, color=_colour(index), label=run["name"])
    deciles.set_xticks(x, [str(int(d) + 1) for d in labels])
    deciles.set_xlabel("item popularity decile (10 = most popular)")
    deciles.set_ylabel("share")
    deciles.legend(fontsize=8)
    deciles.grid(axis="y", alpha=0.3)
    return _png(figure)


def reranking_tradeoff(run: dict) -> bytes:
    """HR@k against long-tail share, intra-list diversity and coverage, one curve per re-ranker over its strengths."""
    k = run["k"]
    diversity = "ild_genres" if "calibrated" in run["reranking"] else "ild_embeddings"
    panels = (("long_tail_share", f"long-tail share of top {k}"), (diversity, f"intra-list diversity ({diversity})"),
              ("coverage", "catalog coverage"))
    figure = Figure(figsize=(10.5, 3.4))
    for axis, (metric, label) in zip(figure.subplots(1, 3), panels):
        for index, (kind, points) in enumerate(run["reranking"].items()):
            xs = [point[metric] for point in points]
            ys = [point[f"hr@{k}"] for point in points]
            axis.plot(xs, ys, marker="o", color=_colour(index), label=RERANKER_LABELS.get(kind, kind))
            for point, x, y in zip(points, xs, ys):
                if point["strength"] in (0.3, 0.9):
                    axis.annotate(f"{point['strength']:g}", (x, y), fontsize=7, xytext=(3, 3),
                                  textcoords="offset points")
        axis.set_xlabel(label)
        axis.set_ylabel(f"HR@{k}")
        axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    strengths = ", ".join(f"{point['strength']:g}" for point in points)
    figure.suptitle(f"{run['name']}: re-rankers at strengths {strengths}", fontsize=9)
    return _png(figure)
