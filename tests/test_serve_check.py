"""serve_check: load, op audit, warm-up replay and latency in a TensorFlow-only process."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import prediction_log_pb2

from mmrec_tf.export.serve_check import (
    format_serve_check_report,
    main,
    resolve_version_dir,
    serve_check,
)
from mmrec_tf.export.serve_check_worker import decode_prediction_log, iter_proto_fields
from mmrec_tf.export.tf_serving import WARMUP_RELATIVE_PATH, write_warmup_requests

ITEMS = ["", "i1", "i2", "i3", "i4"]
STRING_VECTOR = tf.TensorSpec([None], tf.string)
STRING_MATRIX = tf.TensorSpec([None, None], tf.string)
FAKE_OP = "MmrecFakeScannSearch"


class ContractModel(tf.Module):
    """Tiny retrieval model with the zoo's serving contract."""

    def __init__(self):
        super().__init__()
        self.items = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(ITEMS, tf.range(len(ITEMS), dtype=tf.int64)), 0
        )
        self.item_vectors = tf.Variable(np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32))
        self.item_ids = tf.constant(ITEMS[1:])

    def _user(self, user_id, history):
        bias = tf.cast(tf.strings.length(user_id), tf.float32)[:, None]
        return tf.reduce_sum(tf.gather(self.item_vectors, self.items.lookup(history)), axis=1) + bias

    @tf.function(input_signature=[STRING_VECTOR, STRING_MATRIX])
    def retrieve(self, user_id, history):
        scores = tf.matmul(self._user(user_id, history), self.item_vectors[1:], transpose_b=True)
        top = tf.math.top_k(scores, k=2)
        return {"item_ids": tf.gather(self.item_ids, top.indices), "scores": top.values}

    @tf.function(input_signature=[STRING_VECTOR, STRING_MATRIX, STRING_MATRIX])
    def score(self, user_id, history, candidates):
        candidate_vectors = tf.gather(self.item_vectors, self.items.lookup(candidates))
        return {"scores": tf.einsum("bd,bcd->bc", self._user(user_id, history), candidate_vectors)}

    @tf.function(input_signature=[STRING_VECTOR, STRING_MATRIX])
    def user_embedding(self, user_id, history):
        return {"embedding": self._user(user_id, history)}

    @tf.function(input_signature=[STRING_VECTOR])
    def item_embedding(self, item_id):
        return {"embedding": tf.gather(self.item_vectors, self.items.lookup(item_id))}


WARMUP = [
    ("retrieve", {"user_id": ["u1", "u2"], "history": [["i1", ""], ["i2", "i3"]]}),
    ("score", {"user_id": ["u1"], "history": [["i4", "i1"]], "candidates": [["i1", "i2", "zz"]]}),
    ("item_embedding", {"item_id": ["i1", "i4", "i2"]}),
]


def save_contract_model(path, warmup=WARMUP):
    module = ContractModel()
    signatures = {
        "serving_default": module.retrieve, "retrieve": module.retrieve, "score": module.score,
        "user_embedding": module.user_embedding, "item_embedding": module.item_embedding,
    }
    tf.saved_model.save(module, str(path), signatures=signatures)
    if warmup:
        write_warmup_requests(path, warmup)
    return path


@pytest.fixture(scope="module")
def model_base_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("saved_models") / "tiny_two_tower"
    save_contract_model(base / "1", warmup=None)
    save_contract_model(base / "2")
    return base


@pytest.fixture(scope="module")
def report(model_base_dir):
    return serve_check(model_base_dir, batch_sizes=(1, 5), repeats=3)


def test_checks_the_newest_version(model_base_dir, report):
    assert resolve_version_dir(model_base_dir) == (model_base_dir / "2", 2)
    assert resolve_version_dir(model_base_dir / "1") == (model_base_dir / "1", 1)
    assert report["version"] == 2
    assert report["version_dir"] == str((model_base_dir / "2").resolve())
    with pytest.raises(FileNotFoundError, match="no integer version folder"):
        resolve_version_dir(model_base_dir.parent)


def test_lists_signatures_with_names_dtypes_shapes(report):
    signatures = report["signatures"]
    assert sorted(signatures) == ["item_embedding", "retrieve", "score", "serving_default", "user_embedding"]
    assert signatures["score"]["inputs"] == {
        "candidates": {"dtype": "string", "shape": [None, None]},
        "history": {"dtype": "string", "shape": [None, None]},
        "user_id": {"dtype": "string", "shape": [None]},
    }
    assert signatures["retrieve"]["outputs"] == {
        "item_ids": {"dtype": "string", "shape": [None, 2]},
        "scores": {"dtype": "float32", "shape": [None, 2]},
    }
    assert signatures["item_embedding"]["outputs"] == {"embedding": {"dtype": "float32", "shape": [None, 3]}}


def test_ops_warmup_and_latency_of_a_servable_model(report):
    assert report["servable"] is True
    assert report["load"]["ok"] is True
    assert {"HashTableV2", "LookupTableFindV2", "TopKV2", "Einsum"} <= set(report["ops"]["types"])
    assert report["ops"]["unregistered"] == []
    assert report["tensorflow_text"]["imported"] is False
    assert report["unexpected_modules"] == []
    assert report["warmup"] == {"present": True, "records": 3, "ok": 3, "errors": []}
    latency = report["latency_ms"]
    assert sorted(latency) == sorted(report["signatures"])
    assert latency["serving_default"]["inputs_from"] == "retrieve"  # borrowed: same inputs
    assert latency["user_embedding"]["inputs_from"] == "retrieve"
    assert latency["item_embedding"]["inputs_from"] == "item_embedding"
    for by_size in latency.values():
        for size in ("1", "5"):
            assert by_size[size]["repeats"] == 3
            assert 0 < by_size[size]["p50"] <= by_size[size]["p99"]
    assert report["warnings"] == []
    text = format_serve_check_report(report)
    assert text.splitlines()[0].endswith(": servable")
    assert "signature score(candidates: string[None, None], history: string[None, None]" in text
    assert "latency serving_default (inputs from retrieve): B=1: p50" in text


def test_worker_decodes_prediction_logs_like_tensorflow_serving(model_base_dir):
    path = model_base_dir / "2" / WARMUP_RELATIVE_PATH
    for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        reference = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
        log_type, signature_name, inputs = decode_prediction_log(record)
        assert (log_type, signature_name) == ("predict_log", reference.model_spec.signature_name)
        assert inputs == {name: proto.SerializeToString() for name, proto in reference.inputs.items()}
    regress = prediction_log_pb2.PredictionLog(regress_log=prediction_log_pb2.RegressLog())
    assert decode_prediction_log(regress.SerializeToString())[0] == "regress_log"
    assert list(iter_proto_fields(bytes([0x08, 0x96, 0x01]))) == [(1, 150)]
    with pytest.raises(ValueError, match="truncated"):
        list(iter_proto_fields(bytes([0x12, 0x05, 0x61])))


def test_unregistered_op_is_flagged_and_model_is_not_servable(model_base_dir, tmp_path):
    version_dir = tmp_path / "scann_like" / "1"
    shutil.copytree(model_base_dir / "2", version_dir)
    saved_model = saved_model_pb2.SavedModel.FromString((version_dir / "saved_model.pb").read_bytes())
    replaced = 0
    for function in saved_model.meta_graphs[0].graph_def.library.function:
        for node in function.node_def:
            if node.op == "TopKV2":
                node.op = FAKE_OP
                replaced += 1
    assert replaced > 0
    (version_dir / "saved_model.pb").write_bytes(saved_model.SerializeToString())

    broken = serve_check(version_dir.parent, batch_sizes=(1,), repeats=1)

    assert broken["servable"] is False
    assert broken["ops"]["unregistered"] == [FAKE_OP]
    assert broken["load"]["ok"] is False
    assert FAKE_OP in broken["load"]["error"]
    assert any(FAKE_OP in warning for warning in broken["warnings"])
    assert "NOT SERVABLE" in format_serve_check_report(broken)


def test_cli_reports_failing_warmup_records_as_json(model_base_dir, tmp_path):
    version_dir = tmp_path / "bad_warmup" / "1"
    shutil.copytree(model_base_dir / "2", version_dir)
    # Written without a saved_model.pb next to it, so write_warmup_requests cannot refuse it.
    write_warmup_requests(tmp_path / "scratch", [
        ("score", {"user_id": ["u1"], "history": [["i1"]]}),
        ("item_embedding", {"item_id": ["i1"]}),
        ("no_such_signature", {"item_id": ["i1"]}),
    ])
    shutil.copy(tmp_path / "scratch" / WARMUP_RELATIVE_PATH, version_dir / WARMUP_RELATIVE_PATH)

    completed = subprocess.run(
        [sys.executable, "-m", "mmrec_tf.export.serve_check", str(version_dir.parent),
         "--json", "--batch-sizes", "1,2", "--repeats", "2"],
        capture_output=True, text=True, timeout=300, check=False,
    )

    assert completed.returncode == 1, completed.stderr[-2000:]
    cli_report = json.loads(completed.stdout)
    assert cli_report["servable"] is False
    assert cli_report["warmup"]["records"] == 3 and cli_report["warmup"]["ok"] == 1
    errors = {error["record"]: error["error"] for error in cli_report["warmup"]["errors"]}
    assert sorted(errors) == [0, 2]
    assert "candidates" in errors[0]
    assert "no_such_signature" in errors[2]
    assert sorted(cli_report["latency_ms"]) == ["item_embedding"]
    assert any("'score': no warm-up request" in warning for warning in cli_report["warnings"])


def test_tensorflow_text_ops_are_detected_and_loaded(tmp_path, capsys):
    text = pytest.importorskip("tensorflow_text")

    class Tokens(tf.Module):
        @tf.function(input_signature=[STRING_VECTOR])
        def count_tokens(self, item_text):
            return {"count": text.WhitespaceTokenizer().tokenize(item_text).row_lengths()}

    module = Tokens()
    version_dir = tmp_path / "text_model" / "1"
    tf.saved_model.save(module, str(version_dir), signatures={"count_tokens": module.count_tokens})
    write_warmup_requests(version_dir, [("count_tokens", {"item_text": ["red shoes", "a b c"]})])

    exit_status = main([str(version_dir.parent), "--json", "--batch-sizes", "2", "--repeats", "2"])

    text_report = json.loads(capsys.readouterr().out)
    assert exit_status == 0
    assert text_report["servable"] is True
    assert text_report["tensorflow_text"]["imported"] is True
    assert text_report["ops"]["unregistered"] == []
    assert any("Whitespace" in op for op in text_report["ops"]["from_tensorflow_text"])
    assert text_report["warmup"]["ok"] == 1
    assert text_report["latency_ms"]["count_tokens"]["2"]["repeats"] == 2
    printed = format_serve_check_report(text_report)
    assert "+ tensorflow_text" in printed and "from TF Text:" in printed
