"""What lstm_two_tower and sasrec share: items without interactions are encoded from their content alone."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmrec_tf.registry import create_model, registered_model
from mmrec_tf.training import TrainingConfig, train_model

from conftest import TINY_MAX_HISTORY

TINY = {"lstm_two_tower": {"embedding_dim": 8, "lstm_units": 8, "max_history": TINY_MAX_HISTORY},
        "sasrec": {"embedding_dim": 8, "num_heads": 2, "num_blocks": 1, "max_history": TINY_MAX_HISTORY}}


def _without_item(examples, item):
    keep = (examples.item_id != item) & ~(examples.history == item).any(axis=1)
    return type(examples)(examples.user_id[keep], examples.item_id[keep], examples.history[keep],
                          {key: value[keep] for key, value in examples.extras.items()})


@pytest.mark.parametrize("name", sorted(TINY))
def test_an_item_never_trained_on_is_encoded_from_its_content_alone(name, tiny_space, tiny_examples):
    model = create_model(name, space=tiny_space, zero_untrained_ids=True, id_dropout=0.5, **TINY[name])
    train = tiny_examples["train"]
    dropped = int(train.item_id[-1])  # hidden from training: it becomes a cold item
    subset = _without_item(train, dropped)
    train_model(model, subset, TrainingConfig(epochs=1, batch_size=16, jit_compile=False), verbose=0)
    trained = keras.ops.convert_to_numpy(model.item_trained)
    expected = np.zeros(tiny_space.num_items + 1, "float32")
    expected[np.unique(np.concatenate([subset.item_id, subset.history.ravel()]))] = 1.0
    expected[0] = 0.0
    np.testing.assert_array_equal(trained, expected)
    # the cold item's vector does not move with its id embedding row (the id is hidden); a trained item's does
    table = model.item_encoder.id_embedding.embeddings
    cold_before, warm_before = (keras.ops.convert_to_numpy(model.encode_items(np.array([item])))
                                for item in (dropped, int(subset.item_id[0])))
    table.assign(keras.ops.convert_to_numpy(table) + 1.0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model.encode_items(np.array([dropped]))), cold_before,
                               atol=1e-6)
    assert np.abs(keras.ops.convert_to_numpy(model.encode_items(np.array([int(subset.item_id[0])])))
                  - warm_before).max() > 1e-3
    restored = registered_model(name).cls.from_config(model.get_config())
    assert (restored.id_dropout, restored.zero_untrained_ids) == (0.5, True)


@pytest.mark.parametrize("name", sorted(TINY))
def test_id_dropout_hides_whole_ids_at_its_rate_in_training_only(name, tiny_space):
    model = create_model(name, space=tiny_space, id_dropout=0.3, **TINY[name])
    items = np.tile(np.arange(1, tiny_space.num_items + 1, dtype="int32"), 10_000 // tiny_space.num_items + 1)
    without_id = keras.ops.convert_to_numpy(model.item_encoder(items, id_scale=np.zeros(len(items), "float32")))
    full = keras.ops.convert_to_numpy(model.item_encoder(items))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model.item_vectors(items)), full, atol=1e-6)
    dropped = keras.ops.convert_to_numpy(model.item_vectors(items, training=True))
    hidden = np.isclose(dropped, without_id, atol=1e-6).all(axis=-1)
    kept = np.isclose(dropped, full, atol=1e-6).all(axis=-1)
    assert (hidden ^ kept).all()  # every row is either the full vector or the content-only one, never scaled
    assert hidden.mean() == pytest.approx(0.3, abs=0.03)  # 10,000+ draws: 6 standard deviations


def test_id_dropout_draws_a_new_mask_at_every_step_of_a_traced_function(tiny_space):
    """Inside a tf.function (as in fit) the seed state advances: two calls hide different ids, each at the rate."""
    model = create_model("lstm_two_tower", space=tiny_space, id_dropout=0.3, **TINY["lstm_two_tower"])
    items = np.tile(np.arange(1, tiny_space.num_items + 1, dtype="int32"), 10_000 // tiny_space.num_items + 1)
    without_id = keras.ops.convert_to_numpy(model.item_encoder(items, id_scale=np.zeros(len(items), "float32")))
    step = tf.function(lambda: model.item_vectors(items, training=True))
    masks = [np.isclose(keras.ops.convert_to_numpy(step()), without_id, atol=1e-6).all(axis=-1) for _ in range(2)]
    assert (masks[0] != masks[1]).mean() == pytest.approx(2 * 0.3 * 0.7, abs=0.03)  # independent draws
    assert masks[0].mean() == pytest.approx(0.3, abs=0.03) and masks[1].mean() == pytest.approx(0.3, abs=0.03)


def test_lstm_two_tower_reads_history_items_through_the_same_id_rule(tiny_space, tiny_examples):
    """An untrained item in a history changes the user vector only through its content, never its id row."""
    model = create_model("lstm_two_tower", space=tiny_space, zero_untrained_ids=True, **TINY["lstm_two_tower"])
    train = tiny_examples["train"]
    dropped = int(train.item_id[-1])
    model.prepare(_without_item(train, dropped))
    features = {"user_id": np.array([1]), "history": np.array([[dropped, 2, 3] + [0] * (TINY_MAX_HISTORY - 3)])}
    before = keras.ops.convert_to_numpy(model.encode_users(features))
    table = model.item_encoder.id_embedding.embeddings
    values = keras.ops.convert_to_numpy(table).copy()
    values[dropped] += 1.0
    table.assign(values)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model.encode_users(features)), before, atol=1e-6)
    values[2] += 1.0  # a trained history item's id row does count
    table.assign(values)
    assert np.abs(keras.ops.convert_to_numpy(model.encode_users(features)) - before).max() > 1e-4
