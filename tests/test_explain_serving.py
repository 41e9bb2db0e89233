"""``explain`` for every catalog model: served weights equal a numpy computation from the Keras model."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import mmrec_tf
from mmrec_tf.data.labels import sample_negatives
from mmrec_tf.export.explanations import explanation_kind, item_vectors
from mmrec_tf.export.saved_model import export_model
from mmrec_tf.export.serving_module import ServingModule
from mmrec_tf.registry import accepted_arguments, create_model, registered_model

from conftest import TINY_MAX_HISTORY

TINY = {"embedding_dim": 4, "lstm_units": 4, "hidden_units": [8], "attention_units": [4],
        "max_history": TINY_MAX_HISTORY}


def tiny_model(name, space, train):
    accepted = accepted_arguments(registered_model(name).cls)
    model = create_model(name, space=space, **{k: v for k, v in TINY.items() if k in accepted})
    if registered_model(name).task == "ranking":
        train = sample_negatives(train, space.num_items, ratio=1, seed=0)
    model.prepare(train)
    return model


def requests(space):
    items = list(space.item_vocab.ids)
    users = list(space.user_vocab.ids[:2])
    history = [items[:3] + [""], items[10:12] + ["", ""]]
    candidates = [items[20:23], items[3:6]]
    return users, history, candidates


def expected_weights(model, space, users, history, candidates):
    """The explanation computed in numpy from the Keras model's own methods."""
    max_history = getattr(model, "max_history", None) or len(history[0])
    index = np.zeros((len(history), max_history), np.int32)
    for row, items in enumerate(history):
        known = [i for i in space.item_vocab.lookup([i for i in items if i]).tolist() if i > 0][-max_history:]
        index[row, :len(known)] = known
    wanted = space.item_vocab.lookup(np.asarray(candidates).ravel()).reshape(len(candidates), -1).astype(np.int32)
    features = {"user_id": space.user_vocab.lookup(users).astype(np.int32), "history": index}
    if explanation_kind(model) == "attention":
        return np.asarray(model.attention_weights(features, wanted)), index, features, wanted
    past = np.asarray(item_vectors(model, index), np.float64)
    new = np.asarray(item_vectors(model, wanted), np.float64)
    past /= np.maximum(np.linalg.norm(past, axis=-1, keepdims=True), 1e-12)
    new /= np.maximum(np.linalg.norm(new, axis=-1, keepdims=True), 1e-12)
    return np.einsum("bcd,bld->bcl", new, past) * (index > 0)[:, None, :], index, features, wanted


@pytest.mark.parametrize("name", mmrec_tf.list_models())
def test_explain_signature_matches_keras_model(name, tiny_space, tiny_examples):
    model = tiny_model(name, tiny_space, tiny_examples["train"])
    module = ServingModule(model, tiny_space, k=5)
    users, history, candidates = requests(tiny_space)
    outputs = module.explain(tf.constant(users), tf.constant(history), tf.constant(candidates))
    weights, index, features, wanted = expected_weights(model, tiny_space, users, history, candidates)
    np.testing.assert_allclose(outputs["weights"].numpy(), weights, atol=1e-5)
    ids = outputs["history_item_ids"].numpy().astype(str)
    assert ids[0, :3].tolist() == history[0][:3] and ids[1, :2].tolist() == history[1][:2]
    assert (ids[index == 0] == "").all()
    if hasattr(model, "modality_attention"):
        np.testing.assert_allclose(outputs["modality_weights"].numpy(),
                                   np.asarray(model.modality_attention(features, wanted)), atol=1e-5)


def test_similarity_is_one_for_a_history_item_recommended_again(tiny_space, tiny_examples):
    model = tiny_model("two_tower", tiny_space, tiny_examples["train"])
    module = ServingModule(model, tiny_space, k=5)
    items = list(tiny_space.item_vocab.ids)
    outputs = module.explain(tf.constant(list(tiny_space.user_vocab.ids[:1])), tf.constant([[items[0], items[1]]]), tf.constant([[items[1]]]))
    assert outputs["weights"].numpy()[0, 0, 1] == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("name", ["lstm_two_tower"])
def test_saved_model_explain_equals_keras(name, tiny_space, tiny_examples, tmp_path):
    model = tiny_model(name, tiny_space, tiny_examples["train"])
    version_dir = export_model(model, tiny_space, tmp_path, name, k=5, warmup=False)
    served = tf.saved_model.load(str(version_dir)).signatures["explain"]
    users, history, candidates = requests(tiny_space)
    outputs = served(user_id=tf.constant(users), history=tf.constant(history), candidates=tf.constant(candidates))
    weights, *_ = expected_weights(model, tiny_space, users, history, candidates)
    np.testing.assert_allclose(outputs["weights"].numpy(), weights, atol=1e-5)
