"""LazyAdam: Adam on the rows a batch reads, other rows and their moments untouched."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from mmrec_tf.lazy_adam import LazyAdam

ROWS, DIM = 5, 3


def sparse(indices, values):
    return tf.IndexedSlices(tf.constant(values, tf.float32), tf.constant(indices), tf.constant([ROWS, DIM]))


def dense(indices, values):
    return tf.convert_to_tensor(sparse(indices, values))


def run(optimizer, gradients):
    table = keras.Variable(np.arange(ROWS * DIM, dtype="float32").reshape(ROWS, DIM) / 10)
    snapshots = []
    for gradient in gradients:
        optimizer.apply([gradient], [table])
        snapshots.append(table.numpy().copy())
    return snapshots


def test_rows_read_every_step_follow_adam_exactly():
    rng = np.random.default_rng(0)
    steps = [rng.normal(size=(ROWS, DIM)).astype("float32") for _ in range(3)]
    lazy = run(LazyAdam(learning_rate=0.05), [sparse(list(range(ROWS)), g) for g in steps])
    adam = run(keras.optimizers.Adam(learning_rate=0.05), [tf.constant(g) for g in steps])
    np.testing.assert_allclose(lazy, adam, rtol=1e-5, atol=1e-6)  # float32 rounding of the two code paths


def test_rows_not_read_keep_their_values_while_adam_moves_them():
    steps = [([0, 1], [[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]]), ([0], [[0.5, -1.0, 2.0]])]
    lazy = run(LazyAdam(learning_rate=0.1), [sparse(*step) for step in steps])
    adam = run(keras.optimizers.Adam(learning_rate=0.1), [dense(*step) for step in steps])
    np.testing.assert_array_equal(lazy[1][1], lazy[0][1])  # row 1 not read in step 2: unchanged
    assert not np.allclose(adam[1][1], adam[0][1])  # Adam's momentum moves it anyway
    np.testing.assert_allclose(lazy[1][0], adam[1][0], atol=1e-5)  # row 0 read both times: same as Adam
    np.testing.assert_array_equal(lazy[1][2:], lazy[0][2:])


def test_duplicate_rows_sum_their_gradients():
    once = run(LazyAdam(learning_rate=0.1), [sparse([3], [[3.0, -1.0, 0.5]])])
    twice = run(LazyAdam(learning_rate=0.1), [sparse([3, 3], [[1.0, -0.5, 0.0], [2.0, -0.5, 0.5]])])
    np.testing.assert_allclose(twice, once, rtol=1e-6)


def test_training_a_model_sends_embedding_gradients_down_the_sparse_path(monkeypatch):
    from mmrec_tf.data import FeatureSpace, build_examples, leave_last_out, load_dataset
    from mmrec_tf.registry import create_model
    from mmrec_tf.training import TrainingConfig, train_model

    seen = []
    original = LazyAdam.update_step
    monkeypatch.setattr(LazyAdam, "update_step", lambda self, gradient, variable, lr: (
        seen.append((variable.name.split("/", 1)[1], isinstance(gradient, tf.IndexedSlices))), original(self, gradient, variable, lr))[1])
    data = load_dataset("synthetic", num_users=30, num_items=20, num_clusters=2)
    space = FeatureSpace.build(data)
    train = build_examples(leave_last_out(data), space, max_history=5)["train"]
    keras.utils.set_random_seed(0)
    model = create_model("two_tower", space=space, embedding_dim=4)
    model.build()
    before = [w.numpy() for w in model.weights]
    # one step over the whole set from zero moments: each element read moves by lr * sign(its summed gradient)
    train_model(model, train, TrainingConfig(epochs=1, batch_size=len(train), optimizer="lazy_adam",
                                             learning_rate=0.01), verbose=0)
    assert sorted(set(seen)) == [("item_embedding/embeddings:0", True), ("user_embedding/embeddings:0", True)]
    for old, new in zip(before, [w.numpy() for w in model.weights]):
        moved = np.abs(new - old)
        assert moved[0].max() == 0  # row 0 (padding, never read) untouched
        np.testing.assert_allclose(moved[1:], 0.01, rtol=1e-2)  # every id of this data set is read


def _rows_after_a_second_training_without_them(space, train, optimizer_name):
    """Train ``two_tower`` on ``train``, then on it without user 1 and item 1, the optimizer carried over.

    Returns row 1 of the user and item tables, then of their first and second moments, after the
    first training and after the second.
    """
    from mmrec_tf.data.pipeline import Examples
    from mmrec_tf.registry import create_model
    from mmrec_tf.training import TrainingConfig, train_model

    keras.utils.set_random_seed(0)
    model = create_model("two_tower", space=space, embedding_dim=4)
    config = TrainingConfig(epochs=2, batch_size=16, optimizer=optimizer_name, learning_rate=0.05)
    train_model(model, train, config, verbose=0)  # TrainingConfig's speed defaults: XLA, several steps per call
    optimizer = model.optimizer
    tables = [model.user_embedding.embeddings, model.item_embedding.embeddings]

    def rows():
        return [variable.numpy()[1].copy() for variable in tables] + [
            slots[optimizer._get_variable_index(variable)].numpy()[1].copy()
            for slots in (optimizer._momentums, optimizer._velocities) for variable in tables]

    first = rows()
    keep = (train.user_id != 1) & (train.item_id != 1)
    assert 0 < keep.sum() < len(train)
    without = Examples(train.user_id[keep], train.item_id[keep], train.history[keep],
                       {name: value[keep] for name, value in train.extras.items()})
    train_model(model, without, config, verbose=0, optimizer=optimizer)
    assert int(optimizer.iterations.numpy()) > 0
    return first, rows()


def test_training_leaves_rows_not_read_and_their_moments_exactly_as_they_were(tiny_space, tiny_examples):
    train = tiny_examples["train"]
    before, after = _rows_after_a_second_training_without_them(tiny_space, train, "lazy_adam")
    for old, new in zip(before, after):  # user 1's and item 1's rows, then their first and second moments
        np.testing.assert_array_equal(new, old)
    assert np.abs(before[2]).max() > 0 and np.abs(before[4]).max() > 0  # the rows had moments to keep
    adam_before, adam_after = _rows_after_a_second_training_without_them(tiny_space, train, "adam")
    assert not np.allclose(adam_after[0], adam_before[0])  # Keras' Adam keeps moving them on its momentum
    assert not np.allclose(adam_after[2], adam_before[2])
