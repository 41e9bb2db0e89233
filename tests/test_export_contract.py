"""Exported SavedModels follow the serving contract and match the Keras model, read by TensorFlow alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from mmrec_tf.export.saved_model import export_model
from mmrec_tf.export.tf_serving import read_warmup_requests
from mmrec_tf.registry import create_model
from mmrec_tf.training import TrainingConfig, train_model

K = 5
CONTRACT_SIGNATURES = {"score", "retrieve", "explain", "user_embedding", "item_embedding", "serving_default"}

# Runs in a fresh interpreter that imports only TensorFlow (and the standard library).
LOAD_AND_CALL = r"""
import json, sys
import tensorflow as tf

model_dir, request_file, output_file = sys.argv[1:4]
with open(request_file, encoding="utf-8") as handle:
    requests = json.load(handle)
loaded = tf.saved_model.load(model_dir)
result = {"signatures": {}, "outputs": {}, "imported": sorted(m for m in sys.modules if m.startswith("mmrec_tf"))}
for name, function in loaded.signatures.items():
    result["signatures"][name] = {
        "inputs": {k: [v.dtype.name, v.shape.as_list()] for k, v in function.structured_input_signature[1].items()},
        "outputs": {k: [v.dtype.name, v.shape.as_list()] for k, v in function.structured_outputs.items()},
    }
for call, (signature, inputs) in requests.items():
    function = loaded.signatures[signature]
    specs = function.structured_input_signature[1]
    tensors = {}
    for key, value in inputs.items():
        if value == []:
            tensors[key] = tf.fill([0] * specs[key].shape.rank, "")
        else:
            tensors[key] = tf.constant(value, dtype=tf.string)
    outputs = function(**tensors)
    result["outputs"][call] = {
        k: [[x.decode("utf-8") for x in row] for row in v.numpy()] if v.dtype == tf.string else v.numpy().tolist()
        for k, v in outputs.items()
    }
with open(output_file, "w", encoding="utf-8") as handle:
    json.dump(result, handle, ensure_ascii=False)
"""

USERS = ["u1", "u7", "nobody", "ü-ser ☃"]
HISTORY = [
    ["i1", "i2", "i3", "i4", "i5", "i6", "i7", "i8", "i9"],  # longer than max_history
    ["i3", "i5", "", "", "", "", "", "", ""],
    [""] * 9,  # empty strings only
    ["Café-ü", "i10", "日本", "i11", "", "", "", "", ""],  # unknown non-ASCII ids among known ones
]
CANDIDATES = [
    ["i0", "i1", "zzz", "i39", "i0"],  # duplicate, unknown, an item of the history
    ["ñ", "i5", "i6", "i7", "i8"],
    ["i2"] * 5,
    ["Café-ü", "i10", "i20", "i30", ""],
]
ITEM_IDS = ["i0", "i39", "unknown-item", "é"]
REQUESTS = {
    "retrieve": ["retrieve", {"user_id": USERS, "history": HISTORY}],
    "serving_default": ["serving_default", {"user_id": USERS, "history": HISTORY}],
    "score": ["score", {"user_id": USERS, "history": HISTORY, "candidates": CANDIDATES}],
    "user_embedding": ["user_embedding", {"user_id": USERS, "history": HISTORY}],
    "item_embedding": ["item_embedding", {"item_id": ITEM_IDS}],
    "one_column_history": ["user_embedding", {"user_id": USERS, "history": [[row[-1]] for row in HISTORY]}],
    "no_history": ["retrieve", {"user_id": USERS, "history": [[] for _ in USERS]}],
    "empty_batch": ["retrieve", {"user_id": [], "history": []}],
}


def run_in_tensorflow_only_process(model_dir, tmp_path) -> dict:
    request_file, output_file = tmp_path / "requests.json", tmp_path / "outputs.json"
    request_file.write_text(json.dumps(REQUESTS, ensure_ascii=False), encoding="utf-8")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.run([sys.executable, "-c", LOAD_AND_CALL, str(model_dir), str(request_file),
                              str(output_file)], capture_output=True, text=True, env=env, timeout=600)
    assert process.returncode == 0, process.stderr[-3000:]
    return json.loads(output_file.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_space, tiny_examples):
    """A tiny trained lstm_two_tower and popularity, exported and served by a TensorFlow-only process."""
    base = tmp_path_factory.mktemp("saved_models")
    train = tiny_examples["train"]
    lstm = create_model("lstm_two_tower", space=tiny_space, embedding_dim=8, lstm_units=8,
                        max_history=train.history.shape[1])
    train_model(lstm, train, TrainingConfig(epochs=1, batch_size=128), verbose=0)
    popularity = create_model("popularity", space=tiny_space)
    train_model(popularity, train, TrainingConfig(epochs=0))
    paths = {
        "lstm_two_tower": export_model(lstm, tiny_space, base, "lstm_two_tower", k=K),
        "popularity": export_model(popularity, tiny_space, base, "popularity", k=K),
    }
    second = export_model(popularity, tiny_space, base, "popularity", k=K)
    served = {name: run_in_tensorflow_only_process(path, tmp_path_factory.mktemp(name))
              for name, path in (("lstm_two_tower", paths["lstm_two_tower"]), ("popularity", second))}
    return {"base": base, "paths": paths, "second": second, "models": {"lstm_two_tower": lstm,
            "popularity": popularity}, "served": served}


# === Layout and signatures ===


def test_export_layout_and_versions(exported):
    base = exported["base"]
    assert exported["paths"]["lstm_two_tower"] == base / "lstm_two_tower" / "1"
    assert exported["paths"]["popularity"] == base / "popularity" / "1"
    assert exported["second"] == base / "popularity" / "2"
    for version in (base / "lstm_two_tower" / "1", base / "popularity" / "1", base / "popularity" / "2"):
        assert (version / "saved_model.pb").is_file()
        assert (version / "variables" / "variables.index").is_file()
        assert (version / "assets.extra" / "tf_serving_warmup_requests").is_file()
    assert sorted(p.name for p in (base / "popularity").iterdir()) == ["1", "2"], "no temp folders left"


def test_warmup_records_match_the_signatures(exported):
    records = read_warmup_requests(exported["paths"]["lstm_two_tower"])
    by_signature = {name: set(inputs) for name, inputs in records}
    assert by_signature == {"score": {"user_id", "history", "candidates"}, "retrieve": {"user_id", "history"},
                            "explain": {"user_id", "history", "candidates"},
                            "user_embedding": {"user_id", "history"}, "item_embedding": {"item_id"}}


@pytest.mark.parametrize("name, dim", [("lstm_two_tower", 8), ("popularity", 1)])
def test_signature_names_inputs_and_dtypes_follow_the_contract(exported, name, dim):
    served = exported["served"][name]
    assert served["imported"] == [], "the serving process must not need mmrec_tf"
    signatures = served["signatures"]
    assert set(signatures) == CONTRACT_SIGNATURES
    user_inputs = {"user_id": ["string", [None]], "history": ["string", [None, None]]}
    assert signatures["score"]["inputs"] == {**user_inputs, "candidates": ["string", [None, None]]}
    assert signatures["retrieve"]["inputs"] == user_inputs
    assert signatures["user_embedding"]["inputs"] == user_inputs
    assert signatures["item_embedding"]["inputs"] == {"item_id": ["string", [None]]}
    assert signatures["score"]["outputs"] == {"scores": ["float32", [None, None]]}
    assert signatures["explain"]["inputs"] == signatures["score"]["inputs"]
    history_length = 6 if name == "lstm_two_tower" else None  # the model's max_history; popularity keeps all
    assert signatures["explain"]["outputs"] == {"weights": ["float32", [None, None, history_length]],
                                                "history_item_ids": ["string", [None, history_length]]}
    assert signatures["retrieve"]["outputs"] == {"item_ids": ["string", [None, K]], "scores": ["float32", [None, K]]}
    assert signatures["user_embedding"]["outputs"] == {"embedding": ["float32", [None, dim]]}
    assert signatures["item_embedding"]["outputs"] == {"embedding": ["float32", [None, dim]]}
    assert signatures["serving_default"] == signatures["retrieve"]


def test_model_names_cannot_escape_the_export_folder(exported, tiny_space):
    for bad in ("../evil", "a/b", "", ".."):
        with pytest.raises(ValueError, match="model name"):
            export_model(exported["models"]["popularity"], tiny_space, exported["base"], bad)
    assert not (exported["base"].parent / "evil").exists()


# === Same outputs as the Keras model ===


def keras_features(space, model, users, history):
    """What the Keras model sees: vocabulary indices, the most recent ``max_history`` known items first-padded."""
    history_index = np.array([space.item_vocab.lookup(row) for row in history], np.int32).reshape(len(history), -1)
    max_history = getattr(model, "max_history", None)
    if max_history:
        recent = np.zeros((len(history), max_history), np.int32)
        for row, indices in enumerate(history_index):
            known = indices[indices > 0][-max_history:]
            recent[row, : len(known)] = known
        model_history = recent
    else:
        model_history = history_index
    return {"user_id": space.user_vocab.lookup(users), "history": model_history}, history_index


def to_numpy(tensor):
    return keras.ops.convert_to_numpy(tensor).astype(np.float32)


@pytest.mark.parametrize("name", ["lstm_two_tower", "popularity"])
def test_served_outputs_equal_the_keras_model(exported, tiny_space, name):
    model, outputs = exported["models"][name], exported["served"][name]["outputs"]
    features, history_index = keras_features(tiny_space, model, USERS, HISTORY)
    users = to_numpy(model.encode_users(features))
    np.testing.assert_allclose(outputs["user_embedding"]["embedding"], users, atol=1e-5)

    items = to_numpy(model.encode_items(tiny_space.item_vocab.lookup(ITEM_IDS)))
    np.testing.assert_allclose(outputs["item_embedding"]["embedding"], items, atol=1e-5)
    np.testing.assert_allclose(outputs["item_embedding"]["embedding"][2], outputs["item_embedding"]["embedding"][3],
                               atol=1e-6, err_msg="unknown and non-ASCII unknown ids are both index 0")

    candidates = np.array([tiny_space.item_vocab.lookup(row) for row in CANDIDATES])
    scores = np.einsum("bd,bcd->bc", users, to_numpy(model.encode_items(candidates)))
    np.testing.assert_allclose(outputs["score"]["scores"], scores, atol=1e-5)

    catalog_scores = users @ model.all_item_embeddings().T
    for row in range(len(USERS)):
        seen = history_index[row][history_index[row] > 0] - 1
        catalog_scores[row, seen] = -np.inf
    for call in ("retrieve", "serving_default"):
        ids, served_scores = outputs[call]["item_ids"], np.array(outputs[call]["scores"])
        assert np.array(ids).shape == (len(USERS), K) and served_scores.shape == (len(USERS), K)
        expected_top = -np.sort(-catalog_scores, axis=1)[:, :K]
        np.testing.assert_allclose(served_scores, expected_top, atol=1e-5)
        for row, row_ids in enumerate(ids):
            assert len(set(row_ids)) == K and not set(row_ids) & set(HISTORY[row]), row_ids
            indices = tiny_space.item_vocab.lookup(row_ids)
            assert (indices > 0).all(), "retrieve returns catalog ids"
            np.testing.assert_allclose(catalog_scores[row, indices - 1], served_scores[row], atol=1e-5)
            assert np.all(np.diff(served_scores[row]) <= 1e-6), "best first"


def test_over_long_history_keeps_the_most_recent_items(exported, tiny_space):
    model, outputs = exported["models"]["lstm_two_tower"], exported["served"]["lstm_two_tower"]["outputs"]
    served = np.array(outputs["user_embedding"]["embedding"][0])
    oldest_first = {"user_id": tiny_space.user_vocab.lookup(USERS[:1]),
                    "history": tiny_space.item_vocab.lookup(HISTORY[0][: model.max_history])[None, :]}
    newest = {"user_id": oldest_first["user_id"],
              "history": tiny_space.item_vocab.lookup(HISTORY[0][-model.max_history:])[None, :]}
    np.testing.assert_allclose(served, to_numpy(model.encode_users(newest))[0], atol=1e-5)
    assert np.abs(served - to_numpy(model.encode_users(oldest_first))[0]).max() > 1e-3


def test_unknown_empty_and_short_inputs_give_valid_outputs(exported, tiny_space):
    for name in ("lstm_two_tower", "popularity"):
        model, outputs = exported["models"][name], exported["served"][name]["outputs"]
        for call in ("retrieve", "user_embedding", "score", "item_embedding"):
            for values in outputs[call].values():
                if isinstance(values[0][0], float):
                    assert np.isfinite(np.array(values)).all(), (name, call)
        # an empty-string-only history is the same as no history at all
        no_history = {"user_id": tiny_space.user_vocab.lookup(USERS),
                      "history": np.zeros((len(USERS), getattr(model, "max_history", None) or 1), np.int32)}
        np.testing.assert_allclose(outputs["user_embedding"]["embedding"][2],
                                   to_numpy(model.encode_users(no_history))[2], atol=1e-5)
        np.testing.assert_allclose(outputs["no_history"]["scores"][2], outputs["retrieve"]["scores"][2], atol=1e-5)
        # one history column (any L is accepted): only the last item of each row
        one = {"user_id": no_history["user_id"], "history": no_history["history"].copy()}
        one["history"][:, 0] = tiny_space.item_vocab.lookup([row[-1] for row in HISTORY])
        np.testing.assert_allclose(outputs["one_column_history"]["embedding"], to_numpy(model.encode_users(one)),
                                   atol=1e-5)
        assert outputs["empty_batch"]["item_ids"] == [] and outputs["empty_batch"]["scores"] == []


def test_retrieve_never_returns_history_items_even_when_k_covers_the_catalog(exported, tiny_space):
    import tensorflow as tf

    from mmrec_tf.export.serving_module import ServingModule

    module = ServingModule(exported["models"]["popularity"], tiny_space, k=tiny_space.num_items)
    result = module.retrieve(tf.constant(USERS[:1]), tf.constant(HISTORY[:1]))
    ids = [i.decode() for i in result["item_ids"].numpy()[0]]
    scores = result["scores"].numpy()[0]
    remaining = tiny_space.num_items - len(HISTORY[0])
    assert len(ids) == tiny_space.num_items
    assert sorted(ids[:remaining]) == sorted(set(tiny_space.item_vocab.ids) - set(HISTORY[0]))
    assert np.isfinite(scores[:remaining]).all()
    assert ids[remaining:] == [""] * len(HISTORY[0]) and np.isneginf(scores[remaining:]).all()
