"""Checks that an exported model would load and run in the stock TF Serving binary.

:func:`serve_check` starts a fresh Python process that imports only TensorFlow
(plus TF Text when the graph needs its ops; see ``serve_check_worker.py``),
loads the newest version of a model folder, and reports:

* every signature with its input/output names, dtypes and shapes;
* every op type of the graph and of all functions in its function library, and
  the ones that TensorFlow + TF Text do not register (e.g. ScaNN ops) - those
  would not run in ``tensorflow/serving``;
* a replay of ``assets.extra/tf_serving_warmup_requests`` (the server replays it
  at load time; a failing record, or more than 1000 records, fails the load);
* p50/p99 latency per signature and batch size, inputs tiled from the warm-up
  requests.

Command line: ``python -m mmrec_tf.export.serve_check saved_models/din [--json]``
(exit status 0 when servable, 1 otherwise).

Example:

    report = serve_check("saved_models/din", batch_sizes=(1, 32, 256), repeats=20)
    print(format_serve_check_report(report))
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmrec_tf.export.versioning import list_versions

#: ``tf_serving.SERVING_INPUTS_RELATIVE_PATH``, not imported from there: that module loads TensorFlow, which this
#: process leaves to the check process
SERVING_INPUTS_RELATIVE_PATH = Path("assets.extra") / "mmrec_inputs.json"

__all__ = ["format_serve_check_report", "main", "resolve_version_dir", "serve_check"]

_WORKER = Path(__file__).with_name("serve_check_worker.py")
_REPORT_PREFIX = "SERVE_CHECK_REPORT "


def resolve_version_dir(model_dir: str | os.PathLike) -> tuple[Path, int | None]:
    """The version folder to check: the newest integer version of ``model_dir``.

    ``model_dir`` may also be a version folder itself (it holds ``saved_model.pb``).

    Returns:
        ``(version_dir, version)``; ``version`` is None when ``model_dir`` is a
        SavedModel folder whose name is not an integer.

    Example:

    >>> import tempfile, pathlib
    >>> base = pathlib.Path(tempfile.mkdtemp())
    >>> for version in ("1", "2"):
    ...     (base / version).mkdir()
    ...     _ = (base / version / "saved_model.pb").write_bytes(b"")
    >>> resolve_version_dir(base)[1]
    2
    """
    model_dir = Path(model_dir)
    if (model_dir / "saved_model.pb").is_file():
        return model_dir, int(model_dir.name) if re.fullmatch(r"[0-9]+", model_dir.name) else None
    versions = list_versions(model_dir)
    if not versions:
        raise FileNotFoundError(
            f"{model_dir} has no integer version folder and no saved_model.pb "
            f"(expected {model_dir}/<version>/saved_model.pb)"
        )
    version, version_dir = max(versions.items())
    if not (version_dir / "saved_model.pb").is_file():
        raise FileNotFoundError(f"newest version folder {version_dir} has no saved_model.pb")
    return version_dir, version


def serve_check(
    model_base_dir: str | os.PathLike,
    batch_sizes: Sequence[int] = (1, 32, 256),
    repeats: int = 20,
    timeout_seconds: float = 900.0,
) -> dict[str, Any]:
    """Checks the newest version of a TF Serving model folder in a TensorFlow-only process.

    Args:
        model_base_dir: ``saved_models/<name>`` (or one version folder of it).
        batch_sizes: batch sizes to time; warm-up rows are repeated to fill them.
        repeats: timed calls per signature and batch size (after one untimed call).
        timeout_seconds: limit for the whole check process.

    Returns:
        The report dict (JSON-serializable): ``servable`` (bool: loads, no
        unregistered ops, all warm-up records run), ``signatures``, ``ops``
        (``types``, ``unregistered``, ``from_tensorflow_text``), ``tensorflow_text``,
        ``load``, ``warmup``, ``latency_ms[signature][batch_size] = {p50, p99, mean,
        repeats}``, ``warnings``, ``unexpected_modules`` and timing fields; ``history_rule``
        when the export recorded what ``history`` must hold (``assets.extra/mmrec_inputs.json``).

    Raises:
        FileNotFoundError: no version to check.
        ValueError: its ``saved_model.pb`` cannot be parsed (truncated or corrupt).
        RuntimeError: the check process crashed or printed no report.

    Example:

        report = serve_check("saved_models/din", batch_sizes=(1, 32), repeats=10)
        assert report["servable"], report["warnings"]
    """
    batch_sizes = [int(size) for size in batch_sizes]
    if not batch_sizes or min(batch_sizes) < 1:
        raise ValueError(f"batch_sizes must be positive ints, got {batch_sizes}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an int >= 1, got {repeats!r}")
    version_dir, version = resolve_version_dir(model_base_dir)
    arguments = {"version_dir": str(version_dir.resolve()), "batch_sizes": batch_sizes, "repeats": repeats}
    environment = dict(os.environ)
    environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # -P: do not put the worker's folder (or the cwd) on sys.path, so the check
    # process cannot import project modules by accident.
    completed = subprocess.run(
        [sys.executable, "-P", str(_WORKER), json.dumps(arguments)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout_seconds,
        check=False,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith(_REPORT_PREFIX)]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(
            f"serve-check process for {version_dir} failed (exit status {completed.returncode}); "
            f"stderr tail:\n{completed.stderr[-3000:]}"
        )
    report = json.loads(lines[-1][len(_REPORT_PREFIX) :])
    if "unreadable" in report:
        raise ValueError(report["unreadable"])
    report["model_base_dir"] = str(Path(model_base_dir))
    report["version"] = version
    inputs_file = version_dir / SERVING_INPUTS_RELATIVE_PATH
    if inputs_file.is_file():
        try:
            report["history_rule"] = json.loads(inputs_file.read_text(encoding="utf-8"))["history_rule"]
        except (ValueError, KeyError, TypeError):
            report.setdefault("warnings", []).append(f"{inputs_file}: expected JSON with a 'history_rule' entry")
    return report


def _format_tensor(info: dict[str, Any]) -> str:
    shape = "?" if info["shape"] is None else "[" + ", ".join(
        "None" if dim is None else str(dim) for dim in info["shape"]
    ) + "]"
    return f"{info['dtype']}{shape}"


def format_serve_check_report(report: dict[str, Any]) -> str:
    """Renders a :func:`serve_check` report as a short human-readable text.

    Example:

    >>> print(format_serve_check_report({"version_dir": "m/1", "servable": False,
    ...                                  "load": {"ok": False, "error": "boom"}}))
    serve-check m/1: NOT SERVABLE
      load: FAILED - boom
    """
    verdict = "servable" if report.get("servable") else "NOT SERVABLE"
    lines = [f"serve-check {report.get('version_dir')}: {verdict}"]
    if "tensorflow_version" in report:
        text = report.get("tensorflow_text", {})
        lines.append(
            f"  process: tensorflow {report['tensorflow_version']}"
            + (f" + tensorflow_text {text['version']}" if text.get("imported") else "")
            + f", {report.get('gpus', 0)} GPU(s)"
        )
    if "error" in report:
        lines.append(f"  error: {report['error']}")
    if "history_rule" in report:
        lines.append(f"  history to send: {report['history_rule']}")
    for name, signature in report.get("signatures", {}).items():
        inputs = ", ".join(f"{key}: {_format_tensor(info)}" for key, info in signature["inputs"].items())
        outputs = ", ".join(f"{key}: {_format_tensor(info)}" for key, info in signature["outputs"].items())
        lines.append(f"  signature {name}({inputs}) -> {{{outputs}}}")
    ops = report.get("ops")
    if ops:
        line = f"  ops: {ops['count']} types; unregistered: {', '.join(ops['unregistered']) or 'none'}"
        if ops["from_tensorflow_text"]:
            line += f"; from TF Text: {', '.join(ops['from_tensorflow_text'])}"
        lines.append(line)
    load = report.get("load")
    if load:
        lines.append(
            f"  load: ok in {load['seconds']:.2f}s" if load["ok"] else f"  load: FAILED - {load['error']}"
        )
    warmup = report.get("warmup")
    if warmup:
        if warmup["present"]:
            lines.append(f"  warm-up: {warmup['ok']}/{warmup['records']} records ran")
            lines += [
                f"    record {e['record']}: {e['error']}" if e["record"] is not None else f"    {e['error']}"
                for e in warmup["errors"]
            ]
        else:
            lines.append("  warm-up: no file")
    for name, by_size in report.get("latency_ms", {}).items():
        cells = []
        for size, timing in by_size.items():
            if size == "inputs_from":
                continue
            cells.append(
                f"B={size}: error" if "error" in timing
                else f"B={size}: p50 {timing['p50']:.2f} / p99 {timing['p99']:.2f} ms"
            )
        source = f" (inputs from {by_size['inputs_from']})" if by_size["inputs_from"] != name else ""
        lines.append(f"  latency {name}{source}: " + "; ".join(cells))
    for warning in report.get("warnings", []):
        lines.append(f"  warning: {warning}")
    if report.get("unexpected_modules"):
        lines.append(f"  warning: check process imported {', '.join(report['unexpected_modules'])}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns 0 when the model is servable, 1 otherwise.

    Example:

        python -m mmrec_tf.export.serve_check saved_models/din --batch-sizes 1,32 --repeats 10
    """
    parser = argparse.ArgumentParser(
        prog="python -m mmrec_tf.export.serve_check",
        description="Check that the newest version of a TF Serving model folder loads and runs "
        "with TensorFlow (+ TF Text) only, replay its warm-up requests and time its signatures.",
    )
    parser.add_argument("model_dir", help="saved_models/<name> or one of its version folders")
    parser.add_argument("--batch-sizes", default="1,32,256", help="comma-separated, default 1,32,256")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per batch size")
    parser.add_argument("--json", action="store_true", help="print the raw JSON report")
    args = parser.parse_args(argv)
    try:
        batch_sizes = [int(size) for size in args.batch_sizes.split(",") if size.strip()]
    except ValueError:
        parser.error(f"--batch-sizes must be comma-separated integers, got {args.batch_sizes!r}")
    report = serve_check(args.model_dir, batch_sizes=batch_sizes, repeats=args.repeats)
    print(json.dumps(report, indent=2) if args.json else format_serve_check_report(report))
    return 0 if report["servable"] else 1


if __name__ == "__main__":
    sys.exit(main())
