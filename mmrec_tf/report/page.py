"""``mmrec report``: one self-contained HTML page (plots as embedded PNGs, no scripts, no network) plus its JSON.

:func:`build_report` measures a run and any runs to compare with
(:func:`~mmrec_tf.report.numbers.run_numbers`); :func:`render_html` lays the
numbers out as sections with ids ``accuracy``, ``beyond-accuracy``,
``user-groups``, ``exposure``, ``reranking`` and ``explanations``;
:func:`write_report` writes ``report.html`` and ``report.json`` (the same
numbers) atomically.
"""

from __future__ import annotations

import base64
import html
import json
import os
import pathlib

from mmrec_tf.atomic_file import write_atomically
from mmrec_tf.report import figures
from mmrec_tf.report.numbers import check_run_folder, run_numbers

SECTIONS = ("accuracy", "beyond-accuracy", "user-groups", "exposure", "reranking", "explanations")
REPORT_HTML = "report.html"
REPORT_JSON = "report.json"
READABLE = 0o644  # a report is for people to open (temporary files are created 0600)
BEYOND_ACCURACY_ROWS = (
    ("hr@{k}", "HR@{k}"), ("coverage", "catalog coverage"), ("gini", "exposure Gini (0 = even)"),
    ("entropy", "exposure entropy (bits)"), ("average_popularity", "avg. recommendation popularity"),
    ("long_tail_share", "long-tail share"), ("novelty", "novelty (bits)"),
    ("ild_genres", "intra-list diversity, genres"), ("ild_embeddings", "intra-list diversity, embeddings"),
    ("calibration_kl", "miscalibration KL (genres, 0 = calibrated)"),
)
STYLE = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
img { display: block; max-width: 100%; margin: 0.5em 0; }
section { border-top: 2px solid #ddd; margin-top: 1.5em; }
.note { color: #555; font-size: 0.9em; }
li.hit { font-weight: bold; }
"""


def build_report(run_dir, compare=(), **options) -> dict:
    """The numbers of the report on ``run_dir`` and each run in ``compare`` (options: see ``run_numbers``).

    Every run folder is checked before any is measured, so a bad one is
    refused in one line without work.
    """
    folders = [run_dir, *compare]
    for folder in folders:
        check_run_folder(folder)
    return {"runs": [run_numbers(folder, **options) for folder in folders]}


def _number(value, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def _image(png: bytes, alt: str) -> str:
    encoded = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _accuracy(runs: list[dict]) -> str:
    ks = runs[0]["accuracy"]["ks"]
    rows = []
    for run in runs:
        metrics = run["accuracy"]["metrics"]
        for family in ("hr", "ndcg", "coverage", "factorized_top_k"):
            rows.append([f"{run['name']} {family}@K"] + [_number(metrics.get(f"{family}@{k}")) for k in ks])
        rows.append([f"{run['name']} mrr", _number(metrics.get("mrr"))] + [""] * (len(ks) - 1))
    return (_image(figures.accuracy_curves(runs), "HR@K and NDCG@K against K")
            + _table(["run, metric"] + [f"K = {k}" for k in ks], rows))


def _beyond_accuracy(runs: list[dict]) -> str:
    k = runs[0]["k"]
    rows = [[label.format(k=k)] + [_number(run["beyond_accuracy"].get(key.format(k=k))) for run in runs]
            for key, label in BEYOND_ACCURACY_ROWS if any(key.format(k=k) in run["beyond_accuracy"] for run in runs)]
    return (f'<p class="note">Top-{k} lists of every test user. Long tail: items outside the most popular ones '
            "that make up 20 % of the training interactions.</p>"
            + _table(["metric"] + [run["name"] for run in runs], rows))


def _user_groups(runs: list[dict]) -> str:
    columns = sorted({column for run in runs for column in run["user_groups"]})
    if not columns:
        return '<p class="note">No users.csv columns to split by (or no group with enough users).</p>'
    parts = ['<p class="note">HR@{k} per test user by users.csv column, mean with a bootstrap 95 % interval '
             "(1,000 resamples of each group's users); gap = best − worst group.</p>".format(k=runs[0]["k"])]
    for column in columns:
        parts.append(f"<h3>{html.escape(column)}</h3>")
        parts.append(_image(figures.group_bars(runs, column), f"HR@{runs[0]['k']} by {column}"))
        rows = []
        for run in runs:
            report = run["user_groups"].get(column)
            if report:
                rows.append([run["name"], f"{report['best']} − {report['worst']}", _number(report["gap"]),
                             f"[{_number(report['gap_low'])}, {_number(report['gap_high'])}]",
                             _number(report["ratio"])])
        parts.append(_table(["run", "best − worst", "gap", "95 % interval", "ratio worst/best"], rows))
    return "".join(parts)


def _exposure(runs: list[dict]) -> str:
    rows = []
    for run in runs:
        for decile, row in sorted(run["exposure"]["deciles"].items(), key=lambda item: int(item[0])):
            rows.append([run["name"], str(int(decile) + 1), _number(row["interaction_share"]),
                         _number(row["exposure_share"]), _number(row.get("hit_share"))])
    return (_image(figures.exposure(runs), "Lorenz curve of exposure and exposure by popularity decile")
            + _table(["run", "popularity decile", "interaction share", "exposure share", "hit share"], rows))


def _reranking(runs: list[dict]) -> str:
    parts = ['<p class="note">Each re-ranker of <code>mmrec export --rerank</code> applied to the shortlist '
             "<code>retrieve</code> hands it, at several strengths (0 = plain top K).</p>"]
    k = runs[0]["k"]
    for run in runs:
        parts.append(f"<h3>{html.escape(run['name'])}</h3>")
        parts.append(_image(figures.reranking_tradeoff(run), f"re-ranking trade-off of {run['name']}"))
        rows = [[kind, f"{point['strength']:g}", _number(point[f"hr@{k}"]), _number(point["long_tail_share"]),
                 _number(point["coverage"]), _number(point["gini"]), _number(point.get("ild_genres")),
                 _number(point.get("ild_embeddings")), _number(point.get("calibration_kl"))]
                for kind, points in run["reranking"].items() for point in points]
        parts.append(_table(["re-ranker", "strength", f"HR@{k}", "long-tail share", "coverage", "Gini",
                             "ILD genres", "ILD embeddings", "miscalibration"], rows))
    return "".join(parts)


def _explanations(runs: list[dict]) -> str:
    parts = ['<p class="note">For a few test users: their latest history, the top recommendations (bold = the '
             "held-out item) and, for each, the history items the <code>explain</code> signature weighs most."
             "</p>"]
    for run in runs:
        parts.append(f"<h3>{html.escape(run['name'])}</h3>")
        for example in run["explanations"]:
            history = ", ".join(html.escape(item["title"]) for item in example["history"])
            items = []
            for item in example["recommendations"]:
                because = "; ".join(f"{html.escape(b['title'])} ({b['weight']:.2f})" for b in item["because"])
                css = ' class="hit"' if item["hit"] else ""
                items.append(f"<li{css}>{html.escape(item['title'])} — because of {because}</li>")
            parts.append(f"<p>user <b>{html.escape(example['user_id'])}</b>, recent history: {history}; held out: "
                         f"{html.escape(example['held_out']['title'])}</p><ol>{''.join(items)}</ol>")
    return "".join(parts)


def render_html(report: dict) -> str:
    """The report page: every section, each plot an embedded PNG; no scripts, no external resources."""
    runs = report["runs"]
    names = ", ".join(f"{run['name']} ({run['model']}, {run['dataset']}, {run['test_examples']:,} test examples)"
                      for run in runs)
    builders = {"accuracy": ("Accuracy@K", _accuracy), "beyond-accuracy": ("Beyond accuracy", _beyond_accuracy),
                "user-groups": ("Whom it serves: user groups", _user_groups),
                "exposure": ("Which items it shows: exposure by popularity", _exposure),
                "reranking": ("Re-ranking trade-off", _reranking),
                "explanations": ("Why: explained examples", _explanations)}
    body = "".join(f'<section id="{section}"><h2>{title}</h2>{build(runs)}</section>'
                   for section, (title, build) in ((s, builders[s]) for s in SECTIONS))
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>mmrec report: '
            f'{html.escape(runs[0]["name"])}</title><style>{STYLE}</style></head><body>'
            f"<h1>mmrec report</h1><p>{html.escape(names)}</p>{body}</body></html>\n")


def write_report(run_dir, compare=(), out=None, **options) -> tuple[pathlib.Path, pathlib.Path]:
    """Write ``report.html`` and ``report.json`` into ``out`` (default ``<run_dir>/report``); returns both paths."""
    out = pathlib.Path(out) if out is not None else pathlib.Path(run_dir) / "report"
    for existing in (out, *out.parents):
        if existing.exists():
            if not existing.is_dir():
                raise ValueError(f"report folder {out}: {existing} is a file, not a folder")
            break
    report = build_report(run_dir, compare, **options)
    page = render_html(report)
    text = json.dumps(report, indent=1, allow_nan=False)
    return _write_text(out / REPORT_HTML, page), _write_text(out / REPORT_JSON, text)


def _write_text(path: pathlib.Path, text: str) -> pathlib.Path:
    def write(temporary: str) -> None:
        pathlib.Path(temporary).write_text(text, encoding="utf-8")
        os.chmod(temporary, READABLE)

    return write_atomically(path, write)


__all__ = ["REPORT_HTML", "REPORT_JSON", "SECTIONS", "build_report", "render_html", "write_report"]
