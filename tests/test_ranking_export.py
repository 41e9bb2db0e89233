"""The exported din answers `score` and `explain` in a process that imports only TensorFlow."""

import json
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest

from mmrec_tf.data.feature_space import FeatureSpace
from mmrec_tf.data.labels import build_rating_examples
from mmrec_tf.data.sources import make_synthetic
from mmrec_tf.data.splits import leave_last_out
from mmrec_tf.export.saved_model import export_model
from mmrec_tf.registry import create_model
from mmrec_tf.training import TrainingConfig, train_model

MAX_HISTORY = 4
USERS = ["u1", "u3", "nobody"]
# oldest first, "" padding anywhere, one unknown id; the model keeps the 4 most recent known items
HISTORY = [["i1", "", "i2", "i3", "i4", "i5"], ["i7", "unknown", "", "i0", "", ""], ["", "", "", "", "", ""]]
KEPT = [["i2", "i3", "i4", "i5"], ["i7", "i0", "", ""], ["", "", "", ""]]
CANDIDATES = [["i2", "i9", "zzz"], ["i0", "i1", "i11"], ["i3", "i4", "i5"]]

LOAD_AND_CALL = """
import json, sys
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
request = json.loads(sys.argv[2])
inputs = {name: tf.constant(request[name]) for name in ("user_id", "history", "candidates")}
score = loaded.signatures["score"](**inputs)
explain = loaded.signatures["explain"](**inputs)
default = loaded.signatures["serving_default"](**inputs)
print(json.dumps({
    "signatures": sorted(loaded.signatures),
    "score_inputs": sorted(loaded.signatures["score"].structured_input_signature[1]),
    "scores": score["scores"].numpy().tolist(),
    "default_scores": default["scores"].numpy().tolist(),
    "weights": explain["weights"].numpy().tolist(),
    "history_item_ids": [[v.decode() for v in row] for row in explain["history_item_ids"].numpy()],
    "foreign_modules": sorted(m for m in sys.modules if m.split(".")[0] in ("mmrec_tf", "keras_hub", "keras_rs")),
}))
"""


@pytest.fixture(scope="module")
def trained_din():
    dataset = make_synthetic(num_users=10, num_items=12, num_clusters=2, interactions_per_user=8)
    space = FeatureSpace.build(dataset)
    examples = build_rating_examples(leave_last_out(dataset), space, max_history=MAX_HISTORY)
    keras.utils.set_random_seed(0)
    model = create_model("din", space=space, embedding_dim=8, hidden_units=[16], attention_units=[8],
                         max_history=MAX_HISTORY)
    # a few steps, so the Dice moving statistics are no longer their initial values
    train_model(model, examples["train"], TrainingConfig(epochs=2, batch_size=16, jit_compile=False), verbose=0)
    return model, space


def test_exported_din_scores_and_explains_like_the_keras_model(trained_din, tmp_path):
    model, space = trained_din
    folder = export_model(model, space, tmp_path / "saved_models", "din")
    assert folder == tmp_path / "saved_models" / "din" / "1" and (folder / "saved_model.pb").is_file()
    request = {"user_id": USERS, "history": HISTORY, "candidates": CANDIDATES}
    completed = subprocess.run([sys.executable, "-c", LOAD_AND_CALL, str(folder), json.dumps(request)],
                               capture_output=True, text=True, timeout=240,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert completed.returncode == 0, completed.stderr[-3000:]
    served = json.loads(completed.stdout.strip().splitlines()[-1])

    assert {"score", "explain", "serving_default"} <= set(served["signatures"])
    assert served["score_inputs"] == ["candidates", "history", "user_id"]
    assert served["foreign_modules"] == []

    features = {"user_id": space.user_vocab.lookup(USERS),
                "history": np.stack([space.item_vocab.lookup(row) for row in KEPT])}
    candidates = np.stack([space.item_vocab.lookup(row) for row in CANDIDATES])
    assert features["user_id"][2] == 0 and candidates[0, 2] == 0  # unknown ids are index 0
    expected_scores = np.asarray(model.score_candidates(features, candidates))
    expected_weights = np.asarray(model.attention_weights(features, candidates))
    np.testing.assert_allclose(served["scores"], expected_scores, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(served["default_scores"], expected_scores, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(served["weights"], expected_weights, rtol=1e-5, atol=1e-6)
    assert np.asarray(served["weights"]).shape == (3, 3, MAX_HISTORY)
    assert served["history_item_ids"] == KEPT
    assert (np.asarray(served["weights"])[1, :, 2:] == 0).all() and (np.asarray(served["weights"])[2] == 0).all()


def test_exported_rating_aware_din_takes_each_history_items_rating(tmp_path):
    import tensorflow as tf

    dataset = make_synthetic(num_users=10, num_items=12, num_clusters=2, interactions_per_user=8)
    space = FeatureSpace.build(dataset)
    keras.utils.set_random_seed(0)
    model = create_model("din", space=space, embedding_dim=8, hidden_units=[16], attention_units=[8],
                         max_history=MAX_HISTORY, rating_levels=5, attention_softmax=True,
                         attention_features="content")
    # aligned with HISTORY: the rating of "unknown" (3) is dropped with it, padding has 0
    ratings = [[1, 0, 2, 3, 4, 5], [5, 3, 0, 4, 0, 0], [0, 0, 0, 0, 0, 0]]
    kept_ratings = [[2, 3, 4, 5], [5, 4, 0, 0], [0, 0, 0, 0]]
    folder = export_model(model, space, tmp_path / "saved_models", "din_rated")
    loaded = tf.saved_model.load(str(folder))
    inputs = {"user_id": tf.constant(USERS), "history": tf.constant(HISTORY), "candidates": tf.constant(CANDIDATES),
              "history_rating": tf.constant(ratings, tf.int32)}
    assert sorted(loaded.signatures["score"].structured_input_signature[1]) == [
        "candidates", "history", "history_rating", "user_id"]
    served = loaded.signatures["score"](**inputs)["scores"].numpy()
    explained = loaded.signatures["explain"](**inputs)

    features = {"user_id": space.user_vocab.lookup(USERS),
                "history": np.stack([space.item_vocab.lookup(row) for row in KEPT]),
                "history_rating": np.array(kept_ratings, np.int32)}
    candidates = np.stack([space.item_vocab.lookup(row) for row in CANDIDATES])
    np.testing.assert_allclose(served, model.score_candidates(features, candidates), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(explained["weights"], model.attention_weights(features, candidates), rtol=1e-5,
                               atol=1e-6)
    assert [[v.decode() for v in row] for row in explained["history_item_ids"].numpy()] == KEPT
    # the served score depends on the ratings
    flipped = dict(inputs, history_rating=tf.constant([[5, 0, 4, 3, 2, 1], [1, 3, 0, 2, 0, 0], [0] * 6], tf.int32))
    assert not np.allclose(loaded.signatures["score"](**flipped)["scores"].numpy()[:2], served[:2])
