"""REST bodies / responses and gRPC protos, checked against the documented format and a real SavedModel."""

import json
import re

import numpy as np
import pytest
import tensorflow as tf
from json_http_server import json_http_server
from tensorflow_serving.apis import predict_pb2

from mmrec_tf.serving.client import (
    TFServingClient,
    TFServingError,
    grpc_predict_request,
    parse_grpc_response,
    parse_rest_response,
    rest_predict_body,
)

ITEMS = ["", "i1", "i2", "i3"]
ITEM_VECTORS = np.array([[0.0, 0.0], [1.0, 0.5], [-0.5, 2.0], [1.0, -1.0]], np.float32)
STRING_VECTOR = tf.TensorSpec([None], tf.string)
STRING_MATRIX = tf.TensorSpec([None, None], tf.string)


class TinyRecommender(tf.Module):
    """Follows the serving contract: string ids in, scores / item ids / embeddings out."""

    def __init__(self):
        super().__init__()
        self.items = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(ITEMS, tf.range(len(ITEMS), dtype=tf.int64)), 0
        )
        self.item_vectors = tf.Variable(ITEM_VECTORS)
        self.item_ids = tf.constant(ITEMS[1:])

    def _user(self, user_id, history):
        bias = tf.cast(tf.strings.length(user_id), tf.float32)[:, None] * 0.25
        return tf.reduce_sum(tf.gather(self.item_vectors, self.items.lookup(history)), axis=1) + bias

    @tf.function(input_signature=[STRING_VECTOR, STRING_MATRIX, STRING_MATRIX])
    def score(self, user_id, history, candidates):
        candidate_vectors = tf.gather(self.item_vectors, self.items.lookup(candidates))
        return {"scores": tf.einsum("bd,bcd->bc", self._user(user_id, history), candidate_vectors)}

    @tf.function(input_signature=[STRING_VECTOR, STRING_MATRIX])
    def retrieve(self, user_id, history):
        scores = tf.matmul(self._user(user_id, history), self.item_vectors[1:], transpose_b=True)
        top = tf.math.top_k(scores, k=2)
        return {"item_ids": tf.gather(self.item_ids, top.indices), "scores": top.values}


@pytest.fixture(scope="module")
def signatures(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "1"
    module = TinyRecommender()
    tf.saved_model.save(module, str(path), signatures={"score": module.score, "retrieve": module.retrieve})
    return tf.saved_model.load(str(path)).signatures


SCORE_INPUTS = {
    "user_id": np.array([b"u1", b"user22"]),
    "history": [["i1", ""], ["i2", "i3"]],
    "candidates": np.array([["i1", "i2", "i3"], ["zz", "i1", ""]]),
}


def call(signature, inputs):
    return {k: v.numpy() for k, v in signature(**{n: tf.constant(v) for n, v in inputs.items()}).items()}


def decode_like_the_server(body):
    """Turns a REST body into tensors the way api_rest.md describes (row: stack instances)."""
    body = json.loads(json.dumps(body))
    if "instances" in body:
        names = body["instances"][0].keys()
        return body["signature_name"], {n: np.array([row[n] for row in body["instances"]]) for n in names}
    return body["signature_name"], {n: np.array(v) for n, v in body["inputs"].items()}


def answer_like_the_server(outputs, row_format):
    """The JSON a server would send back for these outputs (api_rest.md "Response format")."""
    plain = {name: value.astype(str).tolist() if value.dtype == object else value.tolist()
             for name, value in outputs.items()}
    if not row_format:
        return {"outputs": next(iter(plain.values())) if len(plain) == 1 else plain}
    if len(plain) == 1:
        return {"predictions": next(iter(plain.values()))}
    size = len(next(iter(plain.values())))
    return {"predictions": [{name: value[i] for name, value in plain.items()} for i in range(size)]}


def test_row_body_matches_documented_format():
    body = rest_predict_body(SCORE_INPUTS, signature_name="score", format="row")

    assert body == {
        "signature_name": "score",
        "instances": [
            {"user_id": "u1", "history": ["i1", ""], "candidates": ["i1", "i2", "i3"]},
            {"user_id": "user22", "history": ["i2", "i3"], "candidates": ["zz", "i1", ""]},
        ],
    }
    assert json.loads(json.dumps(body)) == body


def test_columnar_body_matches_documented_format():
    body = rest_predict_body(
        {"item_id": ["i1", "i2"], "weights": np.array([[0.5, 1.0]], np.float32), "k": np.int64(3)},
        signature_name="item_embedding", format="columnar",
    )
    assert body == {
        "signature_name": "item_embedding",
        "inputs": {"item_id": ["i1", "i2"], "weights": [[0.5, 1.0]], "k": 3},
    }
    assert type(body["inputs"]["k"]) is int
    assert type(body["inputs"]["weights"][0][0]) is float


def test_binary_strings_use_b64_objects():
    body = rest_predict_body({"image_bytes": [b"\xff\x00", b"ok"]}, format="columnar")
    assert body["inputs"]["image_bytes"] == [{"b64": "/wA="}, "ok"]
    assert body["signature_name"] == "serving_default"


@pytest.mark.parametrize(
    "inputs, format, message",
    [
        ({"a": ["x"], "b": ["x", "y"]}, "row", "same 0-th dimension"),
        ({"a": "x"}, "row", "scalar"),
        ({"a": [["x"], ["y", "z"]]}, "columnar", "ragged"),
        ({"a": []}, "row", "at least one example"),
        ({}, "row", "non-empty dict"),
        ({"a": [1 + 2j]}, "row", "no TF Serving JSON encoding"),
        ({"a": np.array([None], dtype=object)}, "row", "not a str, bytes or number"),
        ({"a": ["x"]}, "rows", "format must be one of"),
    ],
)
def test_bad_bodies_raise(inputs, format, message):
    with pytest.raises(ValueError, match=message):
        rest_predict_body(inputs, format=format)


@pytest.mark.parametrize("format", ["row", "columnar"])
def test_rest_body_round_trips_through_the_saved_model(signatures, format):
    direct = call(signatures["score"], SCORE_INPUTS)

    name, tensors = decode_like_the_server(rest_predict_body(SCORE_INPUTS, "score", format))

    assert name == "score"
    via_json = call(signatures[name], tensors)
    np.testing.assert_array_equal(via_json["scores"], direct["scores"])
    assert direct["scores"].shape == (2, 3)
    assert direct["scores"][1, 0] == 0.0  # unknown candidate "zz" -> padding vector


@pytest.mark.parametrize("row_format", [True, False])
@pytest.mark.parametrize("signature_name, output_name", [("retrieve", None), ("score", "scores")])
def test_parse_rest_response_of_server_answers(signatures, row_format, signature_name, output_name):
    inputs = {k: v for k, v in SCORE_INPUTS.items() if k != "candidates" or signature_name == "score"}
    direct = call(signatures[signature_name], inputs)

    parsed = parse_rest_response(answer_like_the_server(direct, row_format), output_name=output_name)

    assert sorted(parsed) == sorted(direct)
    for name, value in direct.items():
        if value.dtype == object:
            assert parsed[name].dtype == object
            assert parsed[name].tolist() == value.astype(str).tolist()
        else:
            np.testing.assert_allclose(parsed[name], value, rtol=1e-6)


def test_parse_rest_response_documented_shapes_and_errors():
    single = parse_rest_response({"predictions": [3.5, 4.0, 5.5]}, output_name="y")
    np.testing.assert_array_equal(single["y"], [3.5, 4.0, 5.5])
    binary = parse_rest_response({"outputs": {"thumb_bytes": [{"b64": "aW1n"}], "n": [[1, 2]]}})
    assert binary["thumb_bytes"].tolist() == [b"img"]
    assert binary["n"].dtype == np.int64
    with pytest.raises(TFServingError, match="Servable not found"):
        parse_rest_response({"error": "Servable not found for request: Latest(half)"})
    with pytest.raises(ValueError, match="pass output_name"):
        parse_rest_response({"predictions": [[1.0, 2.0]]})
    with pytest.raises(ValueError, match="pass output_name"):
        parse_rest_response({"outputs": [[1.0, 2.0]]})
    with pytest.raises(ValueError, match="got keys \\['result'\\]"):
        parse_rest_response({"result": [1.0]})
    with pytest.raises(ValueError, match="predictions\\[1\\] has outputs"):
        parse_rest_response({"predictions": [{"a": 1, "b": 2}, {"a": 1}]})
    with pytest.raises(ValueError, match="ragged"):
        parse_rest_response({"outputs": {"a": [[1], [1, 2]]}})


def test_grpc_request_round_trips_through_the_saved_model(signatures):
    request = grpc_predict_request("tiny", "score", SCORE_INPUTS, version=4)
    request = predict_pb2.PredictRequest.FromString(request.SerializeToString())

    assert (request.model_spec.name, request.model_spec.signature_name) == ("tiny", "score")
    assert request.model_spec.version.value == 4
    assert request.inputs["history"].dtype == tf.string.as_datatype_enum
    tensors = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
    np.testing.assert_array_equal(
        call(signatures["score"], tensors)["scores"], call(signatures["score"], SCORE_INPUTS)["scores"]
    )
    assert not grpc_predict_request("tiny", "score", SCORE_INPUTS).model_spec.HasField("version")
    exact = grpc_predict_request("tiny", "x", {"blob": [b"\xff\x00", b"a"]}).inputs["blob"]
    assert tf.make_ndarray(exact).tolist() == [b"\xff\x00", b"a"]  # trailing NUL kept
    with pytest.raises(ValueError, match="input 'history' is ragged"):
        grpc_predict_request("tiny", "score", {"history": [["a"], ["b", "c"]]})


def test_parse_grpc_response_decodes_strings(signatures):
    direct = call(signatures["retrieve"], {"user_id": ["u1"], "history": [["i1", "i2"]]})
    response = predict_pb2.PredictResponse()
    for name, value in direct.items():
        response.outputs[name].CopyFrom(tf.make_tensor_proto(value))

    parsed = parse_grpc_response(predict_pb2.PredictResponse.FromString(response.SerializeToString()))

    assert parsed["item_ids"].tolist() == [[item.decode() for item in direct["item_ids"][0]]]
    assert all(isinstance(item, str) for item in parsed["item_ids"].ravel())
    assert parsed["scores"].dtype == np.float32
    np.testing.assert_array_equal(parsed["scores"], direct["scores"])


@pytest.fixture
def fake_server(signatures):
    """A stand-in for TF Serving's REST endpoint (api_rest.md), backed by the SavedModel."""

    def answer(path, headers, body):
        match = re.fullmatch(r"/v1/models/(\w+)(?:/versions/(\d+))?:predict", path)
        if match is None or match[1] != "tiny" or headers["Content-Type"] != "application/json":
            return 404, json.dumps({"error": f"Servable not found for request: {path}"})
        name, tensors = decode_like_the_server(body)
        return 200, json.dumps(answer_like_the_server(call(signatures[name], tensors), row_format="instances" in body))

    with json_http_server(answer) as port:
        yield port


def test_client_predict_over_http(signatures, fake_server):
    client = TFServingClient("127.0.0.1", rest_port=fake_server, timeout=10)

    for format in ("row", "columnar"):
        scores = client.predict("tiny", SCORE_INPUTS, "score", format=format, output_name="scores")
        np.testing.assert_array_equal(scores["scores"], call(signatures["score"], SCORE_INPUTS)["scores"])
    retrieved = client.predict("tiny", {"user_id": ["u1"], "history": [["i1", "i2"]]}, "retrieve", version=1)
    assert retrieved["item_ids"].shape == (1, 2) and retrieved["scores"].shape == (1, 2)

    assert client.predict_url("tiny", 3).endswith("/v1/models/tiny/versions/3:predict")
    with pytest.raises(TFServingError, match="HTTP 404: Servable not found"):
        client.predict("other", SCORE_INPUTS, "score", output_name="scores")


def test_client_reports_unreachable_server():
    with pytest.raises(TFServingError, match="cannot reach TF Serving"):
        TFServingClient("127.0.0.1", rest_port=1, timeout=2).predict("m", {"x": [1.0]})
