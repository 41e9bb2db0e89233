"""Files TF Serving reads beside and inside exported model versions.

* ``<version>/assets.extra/tf_serving_warmup_requests``: warm-up requests replayed
  by the server at load time (tensorflow/serving docs, "saved_model_warmup.md":
  a TFRecord whose records are ``PredictionLog`` protos, at most 1000 records).
* ``<saved_models>/models.config``: an ASCII ``ModelServerConfig`` protobuf listing
  the served models ("serving_config.md", ``--model_config_file``).
* ``<saved_models>/batching_parameters.txt``: an ASCII ``BatchingParameters``
  protobuf ("serving_config.md", ``--enable_batching --batching_parameters_file``).
* :func:`docker_command`: the ``docker run`` line for the stock
  ``tensorflow/serving`` image serving all of the above.

Example:

>>> import tempfile, pathlib
>>> saved_models = pathlib.Path(tempfile.mkdtemp())
>>> (saved_models / "din" / "1").mkdir(parents=True)
>>> _ = write_models_config(saved_models, ["din"])
>>> _ = write_batching_parameters(saved_models / BATCHING_PARAMETERS_FILENAME)
>>> docker_command(saved_models).startswith("docker run --gpus all")
True
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2
from tensorflow_serving.config import model_server_config_pb2

from mmrec_tf.atomic_file import write_atomically
from mmrec_tf.serving.client import tensor_proto_to_numpy

__all__ = [
    "BATCHING_PARAMETERS_FILENAME",
    "CONTAINER_MODELS_DIR",
    "MODELS_CONFIG_FILENAME",
    "WARMUP_MAX_RECORDS",
    "SERVING_INPUTS_RELATIVE_PATH",
    "WARMUP_RELATIVE_PATH",
    "docker_command",
    "read_warmup_requests",
    "write_batching_parameters",
    "write_models_config",
    "write_warmup_requests",
]

WARMUP_RELATIVE_PATH = Path("assets.extra") / "tf_serving_warmup_requests"
#: what a request's ``history`` must hold, written by ``export_model`` when it is given a Preprocessor
SERVING_INPUTS_RELATIVE_PATH = Path("assets.extra") / "mmrec_inputs.json"
# "Number of warmup records <= 1000." (saved_model_warmup.md)
WARMUP_MAX_RECORDS = 1000
MODELS_CONFIG_FILENAME = "models.config"
BATCHING_PARAMETERS_FILENAME = "batching_parameters.txt"
CONTAINER_MODELS_DIR = "/models"

_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_VERSION_NAME = re.compile(r"[0-9]+")


def _atomic_write_text(path: Path, text: str) -> None:
    write_atomically(path, lambda tmp_name: Path(tmp_name).write_text(text, encoding="utf-8"))


def _signature_defs(version_dir: Path) -> dict[str, Any] | None:
    """The SignatureDefs of ``version_dir/saved_model.pb``; None when there is no model yet."""
    pb_path = version_dir / "saved_model.pb"
    if not pb_path.is_file():
        return None
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString(pb_path.read_bytes())
    signatures: dict[str, Any] = {}
    for meta_graph in saved_model.meta_graphs:
        if "serve" in meta_graph.meta_info_def.tags:
            signatures.update(meta_graph.signature_def)
    return signatures


def _check_request_against_signature(
    index: int, signature_name: str, arrays: Mapping[str, np.ndarray], signature_def: Any
) -> None:
    expected = set(signature_def.inputs)
    given = set(arrays)
    if given != expected:
        raise ValueError(
            f"warm-up request {index} for signature {signature_name!r}: inputs "
            f"{sorted(given)} do not match the signature's inputs {sorted(expected)}"
        )
    for name, array in arrays.items():
        spec = signature_def.inputs[name]
        want_dtype = tf.dtypes.as_dtype(spec.dtype)
        got_dtype = tf.dtypes.as_dtype(array.dtype)
        if got_dtype != want_dtype:
            raise ValueError(
                f"warm-up request {index}, signature {signature_name!r}, input {name!r}: "
                f"dtype {got_dtype.name}, signature expects {want_dtype.name}"
            )
        if not spec.tensor_shape.unknown_rank and len(spec.tensor_shape.dim) != array.ndim:
            raise ValueError(
                f"warm-up request {index}, signature {signature_name!r}, input {name!r}: "
                f"rank {array.ndim} (shape {array.shape}), signature expects rank "
                f"{len(spec.tensor_shape.dim)}"
            )


def _to_tensor_proto(index: int, signature_name: str, name: str, value: Any) -> Any:
    try:
        return tf.make_tensor_proto(value)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"warm-up request {index}, signature {signature_name!r}, input {name!r}: "
            f"cannot be turned into a tensor ({error})"
        ) from error


def write_warmup_requests(
    version_dir: str | os.PathLike,
    requests: Sequence[tuple[str, Mapping[str, Any]]],
    model_name: str = "",
) -> Path:
    """Writes ``assets.extra/tf_serving_warmup_requests`` into a SavedModel version folder.

    Each request becomes one ``PredictionLog`` whose ``predict_log.request`` is a
    ``PredictRequest(model_spec=ModelSpec(name=model_name, signature_name=...),
    inputs={name: tf.make_tensor_proto(value)})``. TF Serving replays the records
    when it loads the version (``--enable_model_warmup``, on by default); a
    failing warm-up request makes the version fail to load, so when
    ``version_dir/saved_model.pb`` exists every request is checked against the
    signature (input names, dtypes, ranks) before anything is written.

    Args:
        version_dir: the SavedModel folder (e.g. the temp folder given to
            ``write_version_atomically``'s ``write_fn``).
        requests: ``[(signature_name, {input_name: numpy array or nested list}), ...]``,
            1 to 1000 entries. Python strings become ``DT_STRING`` tensors.
        model_name: written into ``model_spec.name``; the server does not need it.

    Returns:
        The written file's path.

    Example:

    >>> import tempfile, pathlib
    >>> version_dir = pathlib.Path(tempfile.mkdtemp())
    >>> path = write_warmup_requests(version_dir, [
    ...     ("retrieve", {"user_id": ["u1"], "history": [["i1", "i2", ""]]})])
    >>> read_warmup_requests(version_dir)[0][1]["history"].tolist()
    [['i1', 'i2', '']]
    """
    version_dir = Path(version_dir)
    if not isinstance(requests, Sequence) or isinstance(requests, (str, bytes)):
        raise ValueError(
            f"requests must be a list of (signature_name, inputs) pairs, got {type(requests).__name__}"
        )
    if not 1 <= len(requests) <= WARMUP_MAX_RECORDS:
        raise ValueError(
            f"TF Serving accepts 1 to {WARMUP_MAX_RECORDS} warm-up records, got {len(requests)}"
        )
    signature_defs = _signature_defs(version_dir)
    records = []
    for index, request in enumerate(requests):
        if not (isinstance(request, tuple) and len(request) == 2):
            raise ValueError(
                f"warm-up request {index} must be a (signature_name, inputs) tuple, got {request!r:.80}"
            )
        signature_name, inputs = request
        if not isinstance(signature_name, str) or not signature_name:
            raise ValueError(
                f"warm-up request {index}: signature_name must be a non-empty str, got {signature_name!r}"
            )
        if not isinstance(inputs, Mapping) or not inputs:
            raise ValueError(
                f"warm-up request {index} ({signature_name!r}): inputs must be a non-empty dict"
            )
        protos = {
            name: _to_tensor_proto(index, signature_name, name, value)
            for name, value in inputs.items()
        }
        if signature_defs is not None:
            if signature_name not in signature_defs:
                raise ValueError(
                    f"warm-up request {index}: signature {signature_name!r} is not in "
                    f"{version_dir / 'saved_model.pb'} (has {sorted(signature_defs)})"
                )
            arrays = {name: tf.make_ndarray(proto) for name, proto in protos.items()}
            _check_request_against_signature(
                index, signature_name, arrays, signature_defs[signature_name]
            )
        predict_request = predict_pb2.PredictRequest()
        predict_request.model_spec.name = model_name
        predict_request.model_spec.signature_name = signature_name
        for name, proto in protos.items():
            predict_request.inputs[name].CopyFrom(proto)
        log = prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=predict_request)
        )
        records.append(log.SerializeToString())

    def write_records(tmp_name: str) -> None:
        with tf.io.TFRecordWriter(tmp_name) as writer:
            for record in records:
                writer.write(record)

    path = version_dir / WARMUP_RELATIVE_PATH
    write_atomically(path, write_records)
    return path


def read_warmup_requests(
    version_dir: str | os.PathLike,
) -> list[tuple[str, dict[str, np.ndarray]]]:
    """Reads the warm-up file of a version folder back as ``[(signature_name, {name: numpy})]``.

    String tensors come back as ``object`` arrays of ``str`` (bytes that are not
    UTF-8 stay ``bytes``). An empty ``signature_name`` in a record is returned as
    ``"serving_default"``, which is what TF Serving uses for it.

    Raises:
        FileNotFoundError: the version has no warm-up file.
        ValueError: a record is not a ``PredictionLog`` with a ``predict_log``.

    Example:

    >>> import tempfile, pathlib, numpy as np
    >>> version_dir = pathlib.Path(tempfile.mkdtemp())
    >>> _ = write_warmup_requests(version_dir, [("item_embedding", {"item_id": ["a", "b"]})])
    >>> [(name, inputs["item_id"].tolist()) for name, inputs in read_warmup_requests(version_dir)]
    [('item_embedding', ['a', 'b'])]
    """
    path = Path(version_dir) / WARMUP_RELATIVE_PATH
    if not path.is_file():
        raise FileNotFoundError(f"no warm-up file at {path}")
    requests = []
    for index, record in enumerate(tf.data.TFRecordDataset(str(path)).as_numpy_iterator()):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record)
        if log.WhichOneof("log_type") != "predict_log":
            raise ValueError(
                f"{path} record {index}: expected a PredictionLog with predict_log, "
                f"got {log.WhichOneof('log_type')!r}"
            )
        request = log.predict_log.request
        inputs = {
            name: tensor_proto_to_numpy(proto) for name, proto in request.inputs.items()
        }
        requests.append((request.model_spec.signature_name or "serving_default", inputs))
    return requests


def write_models_config(
    saved_models_dir: str | os.PathLike,
    model_names: Iterable[str],
    container_models_dir: str = CONTAINER_MODELS_DIR,
) -> Path:
    """Writes ``<saved_models_dir>/models.config`` (ASCII ``ModelServerConfig``).

    One ``config { name: "<name>" base_path: "<container_models_dir>/<name>"
    model_platform: "tensorflow" }`` per model, as in the "Model Server Config
    Details" example of tensorflow/serving's ``serving_config.md``. Base paths
    are the paths *inside* the container, where :func:`docker_command` mounts
    ``saved_models_dir``. Every model must already have at least one integer
    version folder, otherwise the server would wait for it forever.

    Example:

    >>> import tempfile, pathlib
    >>> saved_models = pathlib.Path(tempfile.mkdtemp())
    >>> (saved_models / "din" / "1").mkdir(parents=True)
    >>> print(write_models_config(saved_models, ["din"]).read_text())
    model_config_list {
      config {
        name: "din"
        base_path: "/models/din"
        model_platform: "tensorflow"
      }
    }
    <BLANKLINE>
    """
    saved_models_dir = Path(saved_models_dir)
    names = list(model_names)
    if not names:
        raise ValueError("model_names is empty; models.config needs at least one model")
    if len(set(names)) != len(names):
        raise ValueError(f"model_names has duplicates: {names}")
    config = model_server_config_pb2.ModelServerConfig()
    for name in names:
        if not isinstance(name, str) or not _MODEL_NAME.fullmatch(name):
            raise ValueError(
                f"model name {name!r} must be a folder name of letters, digits, '_', '-', '.'"
            )
        model_dir = saved_models_dir / name
        has_version = model_dir.is_dir() and any(
            child.is_dir() and _VERSION_NAME.fullmatch(child.name) for child in model_dir.iterdir()
        )
        if not has_version:
            raise ValueError(
                f"model {name!r}: {model_dir} has no integer version folder "
                f"(expected {model_dir}/<version>/saved_model.pb)"
            )
        entry = config.model_config_list.config.add()
        entry.name = name
        entry.base_path = f"{container_models_dir.rstrip('/')}/{name}"
        entry.model_platform = "tensorflow"
    path = saved_models_dir / MODELS_CONFIG_FILENAME
    _atomic_write_text(path, text_format.MessageToString(config))
    return path


def write_batching_parameters(
    path: str | os.PathLike,
    max_batch_size: int = 256,
    batch_timeout_micros: int = 2000,
    num_batch_threads: int | None = None,
    max_enqueued_batches: int = 100,
    allowed_batch_sizes: Sequence[int] | None = None,
) -> Path:
    """Writes an ASCII ``BatchingParameters`` protobuf for ``--batching_parameters_file``.

    Defaults follow the "GPU: One Approach" section of tensorflow/serving's
    batching guide (``tensorflow_serving/batching/README.md``):
    ``num_batch_threads`` = number of CPU cores (``None`` means ``os.cpu_count()``
    of the machine running this function - pass the server's core count if it
    differs); ``max_batch_size`` "in the hundreds or thousands" (256);
    ``batch_timeout_micros`` "typically a few milliseconds" (2000). The guide
    suggests ``max_enqueued_batches`` = ``num_batch_threads`` for online serving
    behind a load balancer that can retry elsewhere, and a generous value for bulk
    jobs; a stand-alone server has nowhere to re-route, so the default is a bounded
    queue of 100 batches.

    ``pad_variable_length_inputs`` is deliberately not offered: TF Serving pads
    with the *first element* of each tensor (``batching_util.h``), which for a
    ``history`` string tensor is a real item id, not ``""``. With batching on,
    requests are only merged when all their inputs have equal shapes beyond the
    batch dimension, so clients should pad ``history``/``candidates`` to the
    model's fixed lengths.

    Example:

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "batching_parameters.txt"
    >>> print(write_batching_parameters(path, num_batch_threads=4).read_text())
    max_batch_size { value: 256 }
    batch_timeout_micros { value: 2000 }
    max_enqueued_batches { value: 100 }
    num_batch_threads { value: 4 }
    <BLANKLINE>
    """
    if num_batch_threads is None:
        num_batch_threads = os.cpu_count() or 1
    values = {
        "max_batch_size": max_batch_size,
        "batch_timeout_micros": batch_timeout_micros,
        "max_enqueued_batches": max_enqueued_batches,
        "num_batch_threads": num_batch_threads,
    }
    for name, value in values.items():
        minimum = 0 if name == "batch_timeout_micros" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    lines = [f"{name} {{ value: {value} }}" for name, value in values.items()]
    if allowed_batch_sizes:
        sizes = list(allowed_batch_sizes)
        # session_bundle_config.proto: "The entries must be in increasing order.
        # The final entry must equal 'max_batch_size'."
        if sizes != sorted(set(sizes)) or sizes[-1] != max_batch_size or sizes[0] < 1:
            raise ValueError(
                f"allowed_batch_sizes must increase strictly and end with max_batch_size="
                f"{max_batch_size}, got {sizes}"
            )
        lines += [f"allowed_batch_sizes: {size}" for size in sizes]
    path = Path(path)
    _atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def docker_command(
    saved_models_dir: str | os.PathLike,
    gpu: bool = True,
    batching: bool = True,
    grpc_port: int = 8500,
    rest_port: int = 8501,
    image: str | None = None,
) -> str:
    """The ``docker run`` command serving every model of ``models.config`` with the stock image.

    ``saved_models_dir`` is mounted at ``/models``; the image's entry point already
    passes ``--port=8500 --rest_api_port=8501``, and ``--model_config_file``
    overrides its ``--model_name/--model_base_path`` (tensorflow/serving docs:
    "If used, --model_name, --model_base_path are ignored"). Flags:
    ``--model_config_file``, ``--enable_batching``, ``--batching_parameters_file``
    (``serving_config.md``). ``gpu=True`` adds ``--gpus all`` and uses
    ``tensorflow/serving:latest-gpu``.

    Raises:
        FileNotFoundError: ``models.config`` (or, with ``batching``,
            ``batching_parameters.txt``) is missing from ``saved_models_dir``.

    Example:

    >>> import tempfile, pathlib
    >>> saved_models = pathlib.Path(tempfile.mkdtemp())
    >>> (saved_models / "din" / "1").mkdir(parents=True)
    >>> _ = write_models_config(saved_models, ["din"])
    >>> docker_command(saved_models, gpu=False, batching=False).split()[-2:]
    ['tensorflow/serving:latest', '--model_config_file=/models/models.config']
    """
    saved_models_dir = Path(saved_models_dir).resolve()
    required = [MODELS_CONFIG_FILENAME] + ([BATCHING_PARAMETERS_FILENAME] if batching else [])
    for filename in required:
        if not (saved_models_dir / filename).is_file():
            raise FileNotFoundError(
                f"{saved_models_dir / filename} is missing; write it first "
                f"(write_models_config / write_batching_parameters)"
            )
    if image is None:
        image = "tensorflow/serving:latest-gpu" if gpu else "tensorflow/serving:latest"
    parts = ["docker", "run"]
    if gpu:
        parts += ["--gpus", "all"]
    parts += [
        "-p", f"{grpc_port}:8500",
        "-p", f"{rest_port}:8501",
        "-v", f"{saved_models_dir}:{CONTAINER_MODELS_DIR}",
        "-t", image,
        f"--model_config_file={CONTAINER_MODELS_DIR}/{MODELS_CONFIG_FILENAME}",
    ]
    if batching:
        parts += [
            "--enable_batching",
            f"--batching_parameters_file={CONTAINER_MODELS_DIR}/{BATCHING_PARAMETERS_FILENAME}",
        ]
    return shlex.join(parts)
