"""The REST client against TF Serving's RESTful API as documented, not against a server of our own design.

Source: "RESTful API", https://www.tensorflow.org/tfx/serving/api_rest (tensorflow/serving,
``tensorflow_serving/g3doc/api_rest.md``). What the tests take from it:

* URL: ``POST http://host:port/v1/models/${MODEL_NAME}[/versions/${VERSION}]:predict``.
* Request, row format: ``{"signature_name": <string, optional>, "instances": [...]}``, one object per
  instance holding every named input; the page's example has three named inputs (``tag``, ``signal``,
  ``sensor``) and two instances (its second ``signal`` has a stray ``]``, left out here).
* Request, columnar format: ``{"inputs": {name: nested list}}``, the same example in columns.
* Response to a row request: ``{"predictions": <value>|<(nested)list>|<list-of-objects>}``: one object
  per instance when the signature has several named outputs, the bare list when it has one (the name
  is omitted). Response to a columnar request: ``{"outputs": <value>|<(nested)list>|<object>}``.
* The page's end-to-end example, ``half_plus_three`` (version 123):
  ``{"instances": [1.0,2.0,5.0]}`` answers ``{"predictions": [3.5, 4.0, 5.5]}``; a request for a model
  that is not served answers ``HTTP/1.1 404 Not Found`` with ``{ "error": "Servable not found for
  request: Latest(half)" }``. Every error is ``{"error": <error message string>}``.
* Binary values travel as ``{"b64": <base64 encoded string>}`` (the page's ``image`` example:
  ``"aW1hZ2UgYnl0ZXM="``); outputs whose name ends in ``_bytes`` come back that way.
* Floats may be ``NaN``, ``Infinity`` and ``-Infinity`` tokens (the page's "JSON conformance" section).

The server below knows only these documented exchanges: it answers a request whose URL and body equal
a documented one with the documented answer text (byte for byte, with the page's spacing), and anything
else with HTTP 400 and an ``error`` object, as TF Serving does for a malformed request.
"""

from __future__ import annotations

import base64
import json
import math

import numpy as np
import pytest
from json_http_server import json_http_server

from mmrec_tf.serving.client import TFServingClient, TFServingError

# the page's three named inputs, two instances
DOC_INPUTS = {"tag": ["foo", "bar"], "signal": [[1, 2, 3, 4, 5], [3, 4, 1, 2, 5]],
              "sensor": [[[1, 2], [3, 4]], [[4, 5], [6, 8]]]}
DOC_ROW_REQUEST = {"instances": [{"tag": "foo", "signal": [1, 2, 3, 4, 5], "sensor": [[1, 2], [3, 4]]},
                                 {"tag": "bar", "signal": [3, 4, 1, 2, 5], "sensor": [[4, 5], [6, 8]]}]}
DOC_COLUMNAR_REQUEST = {"inputs": {"tag": ["foo", "bar"], "signal": [[1, 2, 3, 4, 5], [3, 4, 1, 2, 5]],
                                   "sensor": [[[1, 2], [3, 4]], [[4, 5], [6, 8]]]}}
JPEG_START = b"\xff\xd8\xff\xe0"  # not UTF-8, so it must travel as {"b64": ...}

# (url path, request body without the optional signature_name) -> (status, answer text)
EXCHANGES = {
    # several named outputs: a list of objects (row) / an object (columnar)
    ("/v1/models/sensors:predict", json.dumps(DOC_ROW_REQUEST, sort_keys=True)):
        (200, '{\n  "predictions": [\n    {"score": 0.25, "label": "foo"},\n'
              '    {"score": 0.75, "label": "bar"}\n  ]\n}'),
    ("/v1/models/sensors:predict", json.dumps(DOC_COLUMNAR_REQUEST, sort_keys=True)):
        (200, '{\n  "outputs": {\n    "score": [0.25, 0.75],\n    "label": ["foo", "bar"]\n  }\n}'),
    # the page's half_plus_three call, its input named "x" (as in the page's regress example)
    ("/v1/models/half_plus_three/versions/123:predict",
     json.dumps({"instances": [{"x": 1.0}, {"x": 2.0}, {"x": 5.0}]}, sort_keys=True)):
        (200, '{\n    "predictions": [3.5, 4.0, 5.5]\n}'),
    ("/v1/models/half_plus_three:predict", json.dumps({"inputs": {"x": [1.0, 2.0, 5.0]}}, sort_keys=True)):
        (200, '{\n    "outputs": [3.5, 4.0, 5.5]\n}'),
    # binary input and a `_bytes` output, both as b64 objects; non-finite float tokens
    ("/v1/models/thumbnails:predict",
     json.dumps({"instances": [{"image": {"b64": base64.b64encode(JPEG_START).decode()}, "caption": "seaside"}]},
                sort_keys=True)):
        (200, '{"predictions": [{"thumb_bytes": { "b64": "aW1hZ2UgYnl0ZXM=" }, '
              '"sensor_readings": [ 1.0, -3.14, NaN, Infinity, -Infinity ]}]}'),
}
NOT_SERVED = (404, '{ "error": "Servable not found for request: Latest(half)" }')


@pytest.fixture(scope="module")
def documented_server():
    """A stand-in for TF Serving that knows only the documented exchanges; yields (port, received bodies)."""
    received = []

    def answer(path, headers, body):
        received.append((path, headers["Content-Type"], dict(body)))
        signature = body.pop("signature_name", "serving_default")
        key = (path, json.dumps(body, sort_keys=True))
        if path == "/v1/models/half:predict":
            return NOT_SERVED
        if key in EXCHANGES and signature == "serving_default":
            return EXCHANGES[key]
        return 400, json.dumps({"error": f"not a documented request: {key}"})

    with json_http_server(answer) as port:
        yield port, received


@pytest.fixture
def client(documented_server):
    return TFServingClient("127.0.0.1", rest_port=documented_server[0], timeout=10)


def test_row_request_is_the_documented_instances_body_and_parses_a_list_of_objects(client, documented_server):
    outputs = client.predict("sensors", DOC_INPUTS, format="row")
    path, content_type, body = documented_server[1][-1]
    assert (path, content_type) == ("/v1/models/sensors:predict", "application/json")
    assert body == {"signature_name": "serving_default", **DOC_ROW_REQUEST}
    assert outputs["score"].tolist() == [0.25, 0.75]
    assert outputs["label"].tolist() == ["foo", "bar"]


def test_columnar_request_is_the_documented_inputs_body_and_parses_an_object(client, documented_server):
    outputs = client.predict("sensors", DOC_INPUTS, format="columnar")
    assert documented_server[1][-1][2] == {"signature_name": "serving_default", **DOC_COLUMNAR_REQUEST}
    assert outputs["score"].tolist() == [0.25, 0.75]
    assert outputs["label"].tolist() == ["foo", "bar"]


def test_the_documented_half_plus_three_call_in_both_formats(client):
    row = client.predict("half_plus_three", {"x": [1.0, 2.0, 5.0]}, version=123, output_name="y")
    columnar = client.predict("half_plus_three", {"x": np.array([1.0, 2.0, 5.0])}, format="columnar",
                              output_name="y")
    for outputs in (row, columnar):
        assert list(outputs) == ["y"]
        assert outputs["y"].tolist() == [3.5, 4.0, 5.5]
    with pytest.raises(ValueError, match="single unnamed output"):  # the name is omitted by the server
        client.predict("half_plus_three", {"x": [1.0, 2.0, 5.0]}, format="columnar")


def test_binary_values_and_non_finite_floats_as_documented(client, documented_server):
    outputs = client.predict("thumbnails", {"image": [JPEG_START], "caption": ["seaside"]})
    assert documented_server[1][-1][2]["instances"] == [{"image": {"b64": "/9j/4A=="}, "caption": "seaside"}]
    assert outputs["thumb_bytes"].tolist() == [b"image bytes"]
    readings = outputs["sensor_readings"][0].tolist()
    assert readings[:2] == [1.0, -3.14]
    assert math.isnan(readings[2]) and readings[3:] == [math.inf, -math.inf]


def test_error_answers_as_documented(client):
    with pytest.raises(TFServingError) as error:
        client.predict("half", {"x": [1.0, 5.0]})
    assert str(error.value).endswith("/v1/models/half:predict: HTTP 404: Servable not found for request: "
                                     "Latest(half)")
    with pytest.raises(TFServingError, match=r"HTTP 400: not a documented request"):
        client.predict("half_plus_three", {"x": [1.0]}, signature_name="tensorflow/serving/regress")
