"""Worker process of ``serve_check``: checks one SavedModel version with TensorFlow alone.

It is started by :func:`mmrec_tf.export.serve_check.serve_check` as
``python -P <this file> '<json arguments>'``: run by path with ``-P`` (no script
folder on ``sys.path``), so neither ``mmrec_tf`` nor Keras-side packages that
register extra ops get imported. The only imports besides the standard library
are ``tensorflow`` and - only if the graph holds ops that plain TensorFlow does
not register - ``tensorflow_text``, which together approximate the op set of the
stock TF Serving binary (core TF + TF Text + TF Decision Forests: the
``SUPPORTED_TENSORFLOW_OPS`` list of tensorflow/serving's ``model_servers/BUILD``).

It prints one line ``SERVE_CHECK_REPORT <json>`` on stdout. Warm-up records are
decoded from the protobuf wire format directly (``PredictionLog.predict_log`` =
field 6, ``PredictLog.request`` = 1, ``PredictRequest.model_spec`` = 1 /
``inputs`` = 2, ``ModelSpec.signature_name`` = 3, as in tensorflow/serving's
``apis/*.proto``) so that ``tensorflow_serving`` is not imported either.

Example (what ``serve_check`` runs):

    python -P serve_check_worker.py '{"version_dir": "saved_models/din/3",
                                      "batch_sizes": [1, 32], "repeats": 20}'
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPORT_PREFIX = "SERVE_CHECK_REPORT "
WARMUP_RELATIVE_PATH = Path("assets.extra") / "tf_serving_warmup_requests"
# Packages whose presence would mean ops were registered that the stock server lacks,
# or that the project leaked into the check.
WATCHED_MODULES = (
    "mmrec_tf",
    "keras_hub",
    "keras_nlp",
    "keras_rs",
    "tensorflow_serving",
    "tensorflow_recommenders",
    "tensorflow_decision_forests",
    "scann",
)
MAX_LISTED_ERRORS = 20
MAX_WARMUP_RECORDS = 1000
_PREDICTION_LOG_TYPES = {
    2: "classify_log",
    3: "regress_log",
    4: "multi_inference_log",
    5: "session_run_log",
    6: "predict_log",
    7: "predict_streamed_log",
}


def _read_varint(data: bytes, position: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while True:
        if position >= len(data):
            raise ValueError("truncated varint")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7


def iter_proto_fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """Yields ``(field_number, value)`` of a serialized protobuf message.

    Length-delimited values are ``bytes``, varints and fixed-width values ``int``.

    Example:

    >>> list(iter_proto_fields(bytes([0x08, 0x96, 0x01, 0x12, 0x01, 0x61])))
    [(1, 150), (2, b'a')]
    """
    position = 0
    while position < len(data):
        key, position = _read_varint(data, position)
        field, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, position = _read_varint(data, position)
        elif wire_type == 1:
            value, position = int.from_bytes(data[position : position + 8], "little"), position + 8
        elif wire_type == 2:
            length, position = _read_varint(data, position)
            value, position = data[position : position + length], position + length
        elif wire_type == 5:
            value, position = int.from_bytes(data[position : position + 4], "little"), position + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type}")
        if position > len(data):
            raise ValueError("truncated protobuf message")
        yield field, value


def decode_prediction_log(record: bytes) -> tuple[str, str, dict[str, bytes]]:
    """Decodes a ``PredictionLog`` record into ``(log_type, signature_name, {input: TensorProto bytes})``.

    ``signature_name`` and the inputs are empty unless ``log_type == "predict_log"``.

    Example:

    >>> decode_prediction_log(b"")
    ('', '', {})
    """
    log_type, signature_name, inputs = "", "", {}
    for field, value in iter_proto_fields(record):
        if field in _PREDICTION_LOG_TYPES:
            log_type = _PREDICTION_LOG_TYPES[field]
        if field != 6:
            continue
        for log_field, request in iter_proto_fields(value):
            if log_field != 1:
                continue
            for request_field, request_value in iter_proto_fields(request):
                if request_field == 1:
                    for spec_field, spec_value in iter_proto_fields(request_value):
                        if spec_field == 3:
                            signature_name = spec_value.decode("utf-8")
                elif request_field == 2:
                    entry = dict(iter_proto_fields(request_value))
                    inputs[entry.get(1, b"").decode("utf-8")] = entry.get(2, b"")
    return log_type, signature_name, inputs


def _tensor_info(tf: Any, info: Any) -> dict[str, Any]:
    shape = None if info.tensor_shape.unknown_rank else [
        None if dim.size < 0 else dim.size for dim in info.tensor_shape.dim
    ]
    return {"dtype": tf.dtypes.as_dtype(info.dtype).name, "shape": shape}


def _collect_op_types(meta_graph: Any) -> set[str]:
    """Op types of the graph and of every function in its library (calls to library functions excluded)."""
    library = meta_graph.graph_def.library
    function_names = {function.signature.name for function in library.function}
    op_types = {node.op for node in meta_graph.graph_def.node}
    for function in library.function:
        op_types.update(node.op for node in function.node_def)
    return op_types - function_names


def _tile_rows(np: Any, array: Any, batch_size: int) -> Any:
    """Repeats the rows of ``array`` cyclically to ``batch_size`` rows."""
    if array.ndim == 0:
        return array
    return array[np.arange(batch_size) % array.shape[0]]


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:2000]


def check_version(version_dir: str, batch_sizes: list[int], repeats: int) -> dict[str, Any]:
    """Runs every check on one SavedModel version folder and returns the report dict.

    Example:

        report = check_version("saved_models/din/3", batch_sizes=[1, 32], repeats=20)
        report["servable"], report["ops"]["unregistered"]
    """
    started = time.perf_counter()
    report: dict[str, Any] = {"version_dir": str(version_dir), "warnings": []}
    import numpy as np  # TensorFlow's own dependency
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow.python.framework import op_def_registry

    report["tensorflow_version"] = tf.__version__
    report["gpus"] = len(tf.config.list_physical_devices("GPU"))
    from google.protobuf.message import DecodeError  # TensorFlow's own dependency

    saved_model = saved_model_pb2.SavedModel()
    try:
        saved_model.ParseFromString((Path(version_dir) / "saved_model.pb").read_bytes())
    except DecodeError as error:
        report.update(servable=False, unreadable=f"{Path(version_dir) / 'saved_model.pb'} is not a readable "
                                                 f"SavedModel ({error}): truncated or corrupt; export it again")
        return report
    serve_graphs = [mg for mg in saved_model.meta_graphs if "serve" in mg.meta_info_def.tags]
    if not serve_graphs:
        report.update(servable=False, error="no meta graph tagged 'serve' in saved_model.pb")
        return report
    meta_graph = serve_graphs[0]
    report["signatures"] = {
        name: {
            "inputs": {key: _tensor_info(tf, info) for key, info in sorted(signature.inputs.items())},
            "outputs": {key: _tensor_info(tf, info) for key, info in sorted(signature.outputs.items())},
        }
        for name, signature in sorted(meta_graph.signature_def.items())
        if not name.startswith("__")
    }

    op_types = _collect_op_types(meta_graph)
    unregistered = sorted(op for op in op_types if op_def_registry.get(op) is None)
    text_ops: list[str] = []
    report["tensorflow_text"] = {"imported": False, "version": None}
    if unregistered:
        try:
            import tensorflow_text
        except ImportError as error:
            report["tensorflow_text"]["import_error"] = _error_text(error)
        else:
            report["tensorflow_text"] = {"imported": True, "version": tensorflow_text.__version__}
            still_missing = [op for op in unregistered if op_def_registry.get(op) is None]
            text_ops = sorted(set(unregistered) - set(still_missing))
            unregistered = still_missing
    report["ops"] = {
        "count": len(op_types),
        "types": sorted(op_types),
        "unregistered": unregistered,
        "from_tensorflow_text": text_ops,
    }
    if unregistered:
        report["warnings"].append(
            f"ops not registered by TensorFlow + TF Text, the stock TF Serving binary "
            f"cannot run them: {', '.join(unregistered)}"
        )

    load_started = time.perf_counter()
    try:
        loaded = tf.saved_model.load(str(version_dir), tags=["serve"])
    except Exception as error:  # the report carries the failure
        report["load"] = {"ok": False, "error": _error_text(error)}
        return _finish(report, started)
    report["load"] = {"ok": True, "seconds": round(time.perf_counter() - load_started, 3)}

    samples: dict[str, dict[str, Any]] = {}
    warmup_path = Path(version_dir) / WARMUP_RELATIVE_PATH
    warmup: dict[str, Any] = {"present": warmup_path.is_file(), "records": 0, "ok": 0, "errors": []}
    report["warmup"] = warmup
    if warmup["present"]:
        records = tf.data.TFRecordDataset(str(warmup_path)).as_numpy_iterator()
        for index, record in enumerate(records):
            warmup["records"] += 1
            try:
                log_type, signature_name, protos = decode_prediction_log(record)
                if log_type != "predict_log":
                    raise ValueError(f"record is a {log_type or 'empty'} PredictionLog, not predict_log")
                signature_name = signature_name or "serving_default"
                if signature_name not in loaded.signatures:
                    raise KeyError(f"signature {signature_name!r} is not in the model")
                function = loaded.signatures[signature_name]
                expected = set(function.structured_input_signature[1])
                if set(protos) != expected:
                    raise ValueError(
                        f"inputs {sorted(protos)} differ from the signature's {sorted(expected)}"
                    )
                arrays = {
                    name: tf.make_ndarray(tensor_pb2.TensorProto.FromString(data))
                    for name, data in protos.items()
                }
                function(**{name: tf.constant(array) for name, array in arrays.items()})
            except Exception as error:  # collected per record
                if len(warmup["errors"]) < MAX_LISTED_ERRORS:
                    warmup["errors"].append({"record": index, "error": _error_text(error)})
                continue
            warmup["ok"] += 1
            samples.setdefault(signature_name, arrays)
        if warmup["records"] > MAX_WARMUP_RECORDS:
            # saved_model_warmup_util.cc fails the load past WarmupConsts::kMaxNumRecords.
            warmup["errors"].append({
                "record": None,
                "error": f"{warmup['records']} records; TF Serving refuses more than {MAX_WARMUP_RECORDS}",
            })
    else:
        report["warnings"].append(f"no warm-up file at {warmup_path}")

    report["latency_ms"] = _measure_latency(
        np, tf, loaded, report, samples, batch_sizes, repeats
    )
    return _finish(report, started)


def _input_key(signature: Any) -> tuple:
    return tuple(
        sorted((name, spec.dtype.name) for name, spec in signature.structured_input_signature[1].items())
    )


def _measure_latency(
    np: Any,
    tf: Any,
    loaded: Any,
    report: dict[str, Any],
    samples: dict[str, dict[str, Any]],
    batch_sizes: list[int],
    repeats: int,
) -> dict[str, Any]:
    """p50/p99 latency per signature and batch size, inputs tiled from warm-up requests.

    A signature without its own warm-up request borrows one from a signature
    with the same input names and dtypes (e.g. ``serving_default`` from ``retrieve``).
    """
    latency: dict[str, Any] = {}
    sample_by_inputs = {}
    for name, arrays in samples.items():
        sample_by_inputs.setdefault(_input_key(loaded.signatures[name]), (name, arrays))
    for name in report["signatures"]:
        function = loaded.signatures[name]
        source = (name, samples[name]) if name in samples else sample_by_inputs.get(_input_key(function))
        if source is None:
            report["warnings"].append(
                f"signature {name!r}: no warm-up request with its inputs, latency not measured"
            )
            continue
        source_name, arrays = source
        latency[name] = {"inputs_from": source_name}
        for batch_size in batch_sizes:
            tensors = {key: tf.constant(_tile_rows(np, array, batch_size)) for key, array in arrays.items()}
            try:
                for output in function(**tensors).values():  # first call traces and warms up
                    output.numpy()
                timings = []
                for _ in range(repeats):
                    tic = time.perf_counter()
                    for output in function(**tensors).values():
                        output.numpy()
                    timings.append((time.perf_counter() - tic) * 1000.0)
            except Exception as error:  # e.g. out of memory at a large batch size
                latency[name][str(batch_size)] = {"error": _error_text(error)}
                continue
            latency[name][str(batch_size)] = {
                "p50": round(float(np.percentile(timings, 50)), 4),
                "p99": round(float(np.percentile(timings, 99)), 4),
                "mean": round(float(np.mean(timings)), 4),
                "repeats": repeats,
            }
    return latency


def _finish(report: dict[str, Any], started: float) -> dict[str, Any]:
    load_ok = report.get("load", {}).get("ok", False)
    warmup_errors = report.get("warmup", {}).get("errors", [])
    report["servable"] = bool(load_ok and not report["ops"]["unregistered"] and not warmup_errors)
    report["unexpected_modules"] = sorted(name for name in WATCHED_MODULES if name in sys.modules)
    report["seconds"] = round(time.perf_counter() - started, 3)
    return report


def main(argv: list[str]) -> int:
    """Entry point: ``argv[1]`` is a JSON object with version_dir, batch_sizes, repeats."""
    arguments = json.loads(argv[1])
    report = check_version(arguments["version_dir"], arguments["batch_sizes"], arguments["repeats"])
    sys.stdout.write(REPORT_PREFIX + json.dumps(report) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
