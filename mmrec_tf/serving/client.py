"""A small TF Serving client: REST bodies, gRPC requests, response parsing.

Formats follow tensorflow/serving's "RESTful API" page (``api_rest.md``):

* ``POST http://host:port/v1/models/${MODEL_NAME}[/versions/${VERSION}]:predict``
* row format ``{"signature_name": s, "instances": [{name: value_i, ...}, ...]}``;
  all inputs share their 0-th (batch) dimension; the answer is
  ``{"predictions": [...]}`` - a list of objects, or a plain list when the
  signature has a single output (its name is omitted);
* columnar format ``{"signature_name": s, "inputs": {name: nested list}}``;
  the answer is ``{"outputs": {...}}`` (or the bare value for a single output);
* errors: ``{"error": "<message>"}``; binary strings: ``{"b64": "<base64>"}``.

The REST helpers need only the standard library and numpy; the gRPC helpers
import TensorFlow and ``tensorflow-serving-api`` when first called.

Example:

>>> body = rest_predict_body({"user_id": ["u1", "u2"], "history": [["a", ""], ["b", "c"]]},
...                          signature_name="retrieve")
>>> body["instances"][1]
{'user_id': 'u2', 'history': ['b', 'c']}
>>> parse_rest_response({"predictions": [[0.5, 0.25]]}, output_name="scores")["scores"].shape
(1, 2)
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = [
    "TFServingClient",
    "TFServingError",
    "grpc_predict_request",
    "parse_grpc_response",
    "parse_rest_response",
    "rest_predict_body",
    "tensor_proto_to_numpy",
]

_FORMATS = ("row", "columnar")


class TFServingError(RuntimeError):
    """The server answered with an error (``{"error": ...}`` or an HTTP error status).

    Example:

    >>> try:
    ...     parse_rest_response({"error": "Servable not found for request: Latest(din)"})
    ... except TFServingError as error:
    ...     print(error)
    TF Serving error: Servable not found for request: Latest(din)
    """


def _json_scalar(name: str, value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, str):
        return value
    raise ValueError(
        f"input {name!r}: element {value!r} of type {type(value).__name__} is not a str, "
        f"bytes or number"
    )


def _as_array(name: str, value: Any) -> np.ndarray:
    """Nested lists / numpy -> numpy; strings from Python lists stay exact ``object`` elements.

    (numpy's fixed-width ``S``/``U`` dtypes would drop trailing NUL characters.)
    """
    if isinstance(value, np.ndarray):
        return value
    try:
        array = np.asarray(value)
    except ValueError as error:
        raise ValueError(f"input {name!r} is ragged or malformed: {error}") from error
    if array.dtype.kind in "SU":
        return np.array(value, dtype=object)
    return array


def _to_json_value(name: str, value: Any) -> Any:
    """numpy / nested lists -> JSON-native nested lists (str for strings, b64 for binary)."""
    array = _as_array(name, value)
    if array.dtype.kind in "biuf":
        return array.tolist()
    if array.dtype.kind == "U":
        return array.astype(object).tolist()
    if array.dtype.kind in "SO":
        converted = np.empty(array.shape, dtype=object)
        for index, element in np.ndenumerate(array):
            converted[index] = _json_scalar(name, element)
        return converted.tolist()
    raise ValueError(
        f"input {name!r}: dtype {array.dtype} has no TF Serving JSON encoding "
        f"(bool, integer, float and string are supported)"
    )


def rest_predict_body(
    inputs: Mapping[str, Any],
    signature_name: str = "serving_default",
    format: str = "row",
) -> dict[str, Any]:
    """Builds the JSON body of a REST ``:predict`` call.

    Args:
        inputs: ``{input_name: numpy array or nested list}``. Strings may be ``str``
            or UTF-8 ``bytes``; non-UTF-8 bytes are sent as ``{"b64": ...}``.
        signature_name: the SavedModel signature to run.
        format: ``"row"`` (``instances``: one object per example; every input must
            have the same 0-th dimension) or ``"columnar"`` (``inputs``: one nested
            list per input).

    Returns:
        A dict ready for ``json.dumps``.

    Example:

    >>> import numpy as np
    >>> rest_predict_body({"item_id": np.array([b"i1", b"i2"])}, "item_embedding", "columnar")
    {'signature_name': 'item_embedding', 'inputs': {'item_id': ['i1', 'i2']}}
    """
    if format not in _FORMATS:
        raise ValueError(f"format must be one of {_FORMATS}, got {format!r}")
    if not isinstance(inputs, Mapping) or not inputs:
        raise ValueError("inputs must be a non-empty dict {input_name: values}")
    for name in inputs:
        if not isinstance(name, str) or not name:
            raise ValueError(f"input names must be non-empty str, got {name!r}")
    values = {name: _to_json_value(name, value) for name, value in inputs.items()}
    if format == "columnar":
        return {"signature_name": signature_name, "inputs": values}

    sizes = {}
    for name, value in values.items():
        if not isinstance(value, list):
            raise ValueError(
                f"row format needs a batch dimension, but input {name!r} is a scalar; "
                f"use format='columnar'"
            )
        sizes[name] = len(value)
    if len(set(sizes.values())) != 1:
        raise ValueError(
            f"row format needs the same 0-th dimension for every input, got {sizes}; "
            f"use format='columnar'"
        )
    batch_size = next(iter(sizes.values()))
    if batch_size == 0:
        raise ValueError("row format needs at least one example, every input is empty")
    instances = [{name: value[i] for name, value in values.items()} for i in range(batch_size)]
    return {"signature_name": signature_name, "instances": instances}


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"b64"}


def _from_json(value: Any) -> Any:
    """JSON value -> python value with ``{"b64": ...}`` decoded to bytes."""
    if _is_b64(value):
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_from_json(element) for element in value]
    return value


def _to_numpy(name: str, value: Any) -> np.ndarray:
    decoded = _from_json(value)
    try:
        array = np.asarray(decoded)
    except ValueError as error:
        raise ValueError(f"output {name!r} in the response is ragged: {error}") from error
    if array.dtype.kind in "US":
        # Rebuild from the python values: numpy would turn bytes next to str into "b'..'".
        array = np.array(decoded, dtype=object)
    if array.dtype == object:
        for index, element in np.ndenumerate(array):
            if not isinstance(element, (str, bytes)):
                raise ValueError(
                    f"output {name!r}: element {element!r} at {index} mixes types in a string tensor"
                )
    return array


def _single_output(output_name: str | None, key: str, value: Any) -> dict[str, np.ndarray]:
    if output_name is None:
        raise ValueError(
            f"the response's {key!r} holds a single unnamed output (TF Serving omits the name "
            f"when a signature has one output); pass output_name, e.g. 'scores'"
        )
    return {output_name: _to_numpy(output_name, value)}


def parse_rest_response(
    response: Mapping[str, Any], output_name: str | None = None
) -> dict[str, np.ndarray]:
    """Turns a REST ``:predict`` answer into ``{output_name: numpy array}``.

    Handles ``predictions`` (row requests; a list of objects, or a plain list when
    the signature has one output) and ``outputs`` (columnar requests; an object, or
    the bare value for one output). Strings come back as ``object`` arrays of
    ``str`` (``{"b64": ...}`` values as ``bytes``); numbers as int64/float64 arrays,
    as JSON does not carry the tensor dtype.

    Args:
        response: the decoded JSON answer.
        output_name: name to use when the answer holds a single unnamed output
            (e.g. ``"scores"`` for the ``score`` signature); required in that case.

    Raises:
        TFServingError: the answer is ``{"error": ...}``.
        ValueError: the answer has neither ``predictions`` nor ``outputs``, or is malformed.

    Example:

    >>> out = parse_rest_response({"predictions": [
    ...     {"item_ids": ["a", "b"], "scores": [0.9, 0.1]},
    ...     {"item_ids": ["c", "a"], "scores": [0.7, 0.2]}]})
    >>> out["item_ids"].tolist(), out["scores"].shape
    ([['a', 'b'], ['c', 'a']], (2, 2))
    """
    if not isinstance(response, Mapping):
        raise ValueError(f"expected a JSON object, got {type(response).__name__}")
    if "error" in response:
        raise TFServingError(f"TF Serving error: {response['error']}")
    if "predictions" in response:
        predictions = response["predictions"]
        if not isinstance(predictions, list):
            return _single_output(output_name, "predictions", predictions)
        named = [isinstance(row, dict) and not _is_b64(row) for row in predictions]
        if not predictions or not all(named):
            if any(named):
                raise ValueError("'predictions' mixes objects and plain values")
            return _single_output(output_name, "predictions", predictions)
        names = list(predictions[0])
        for index, row in enumerate(predictions):
            if set(row) != set(names):
                raise ValueError(
                    f"predictions[{index}] has outputs {sorted(row)}, predictions[0] has {sorted(names)}"
                )
        return {name: _to_numpy(name, [row[name] for row in predictions]) for name in names}
    if "outputs" in response:
        outputs = response["outputs"]
        if isinstance(outputs, dict) and not _is_b64(outputs):
            return {name: _to_numpy(name, value) for name, value in outputs.items()}
        return _single_output(output_name, "outputs", outputs)
    raise ValueError(
        f"expected 'predictions', 'outputs' or 'error' in the response, got keys {sorted(response)}"
    )


def tensor_proto_to_numpy(proto: Any) -> np.ndarray:
    """``TensorProto`` -> numpy, with string tensors decoded from UTF-8 bytes to ``str``.

    String elements that are not valid UTF-8 stay ``bytes``.

    Example:

    >>> import tensorflow as tf
    >>> tensor_proto_to_numpy(tf.make_tensor_proto([["a", "b"]])).tolist()
    [['a', 'b']]
    """
    import tensorflow as tf  # imported here so REST-only users do not pay for TensorFlow

    array = tf.make_ndarray(proto)
    if array.dtype != object:
        return array
    decoded = np.empty(array.shape, dtype=object)
    for index, element in np.ndenumerate(array):
        try:
            decoded[index] = element.decode("utf-8")
        except UnicodeDecodeError:
            decoded[index] = element
    return decoded


def grpc_predict_request(
    model_name: str,
    signature_name: str,
    inputs: Mapping[str, Any],
    version: int | None = None,
) -> Any:
    """Builds a ``tensorflow_serving.apis.predict_pb2.PredictRequest``.

    Each input goes through ``tf.make_tensor_proto`` (Python ``str`` becomes
    ``DT_STRING``). Send it with
    ``prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout)``
    on port 8500.

    Example:

    >>> request = grpc_predict_request("din", "score", {
    ...     "user_id": ["u1"], "history": [["a", ""]], "candidates": [["b", "c"]]})
    >>> request.model_spec.signature_name, sorted(request.inputs)
    ('score', ['candidates', 'history', 'user_id'])
    """
    import tensorflow as tf  # imported here so REST-only users do not pay for TensorFlow
    from tensorflow_serving.apis import predict_pb2

    if not isinstance(inputs, Mapping) or not inputs:
        raise ValueError("inputs must be a non-empty dict {input_name: values}")
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    for name, value in inputs.items():
        array = _as_array(name, value)
        try:
            request.inputs[name].CopyFrom(tf.make_tensor_proto(array))
        except (TypeError, ValueError) as error:
            raise ValueError(f"input {name!r} cannot be turned into a tensor: {error}") from error
    return request


def parse_grpc_response(response: Any) -> dict[str, np.ndarray]:
    """``PredictResponse`` -> ``{output_name: numpy array}`` (string outputs as ``str``).

    Example:

    >>> import tensorflow as tf
    >>> from tensorflow_serving.apis import predict_pb2
    >>> response = predict_pb2.PredictResponse()
    >>> response.outputs["item_ids"].CopyFrom(tf.make_tensor_proto([["a", "b"]]))
    >>> parse_grpc_response(response)["item_ids"].tolist()
    [['a', 'b']]
    """
    return {name: tensor_proto_to_numpy(proto) for name, proto in response.outputs.items()}


class TFServingClient:
    """A thin REST client for TF Serving's ``:predict`` endpoint (standard library only).

    Args:
        host: server host name.
        rest_port: the server's ``--rest_api_port`` (8501 in the docker image).
        timeout: seconds to wait for an answer.

    Example (needs a running server, e.g. the output of
    ``mmrec_tf.export.tf_serving.docker_command``):

    >>> client = TFServingClient("localhost", rest_port=8501)
    >>> client.predict_url("din", version=3)
    'http://localhost:8501/v1/models/din/versions/3:predict'
    >>> # client.predict("din", {"user_id": ["u1"], "history": [["a", ""]],
    >>> #                        "candidates": [["b", "c"]]}, "score", output_name="scores")
    """

    def __init__(self, host: str = "localhost", rest_port: int = 8501, timeout: float = 30.0):
        self.host = host
        self.rest_port = rest_port
        self.timeout = timeout

    def predict_url(self, model_name: str, version: int | None = None) -> str:
        """The ``:predict`` URL of a model (latest version when ``version`` is None)."""
        path = f"/v1/models/{urllib.parse.quote(model_name, safe='')}"
        if version is not None:
            path += f"/versions/{int(version)}"
        return f"http://{self.host}:{self.rest_port}{path}:predict"

    def predict(
        self,
        model_name: str,
        inputs: Mapping[str, Any],
        signature_name: str = "serving_default",
        version: int | None = None,
        format: str = "row",
        output_name: str | None = None,
    ) -> dict[str, np.ndarray]:
        """POSTs a predict request and returns ``{output_name: numpy array}``.

        See :func:`rest_predict_body` and :func:`parse_rest_response` for the
        arguments. Raises :class:`TFServingError` for HTTP errors, ``{"error": ...}``
        answers and unreachable servers.
        """
        url = self.predict_url(model_name, version)
        body = json.dumps(rest_predict_body(inputs, signature_name, format)).encode("utf-8")
        request = urllib.request.Request(
            url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                payload = answer.read()
        except urllib.error.HTTPError as error:
            text = error.read().decode("utf-8", errors="replace")
            try:
                message = json.loads(text).get("error", text)
            except (json.JSONDecodeError, AttributeError):
                message = text
            raise TFServingError(f"{url}: HTTP {error.code}: {message}") from error
        except urllib.error.URLError as error:
            raise TFServingError(f"{url}: cannot reach TF Serving ({error.reason})") from error
        try:
            response = json.loads(payload)
        except json.JSONDecodeError as error:
            raise TFServingError(f"{url}: answer is not JSON: {payload[:200]!r}") from error
        return parse_rest_response(response, output_name=output_name)
