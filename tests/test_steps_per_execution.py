"""Several batches per compiled call whatever the epoch's length: every epoch trains exactly its own batches."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmrec_tf.errors import TrainingDivergedError
from mmrec_tf.models import TwoTower
from mmrec_tf.training import AUTO_STEPS_PER_EXECUTION, TrainingConfig, epoch_steps, train_model, training_dataset

BATCH = 13  # the tiny training split's 480 examples make 37 batches (36 of 13, one of 12): a prime count


def recording_model(space, seen: tf.Variable):
    """A two-tower that appends the item ids of every batch it trains on to ``seen``."""

    class Recording(TwoTower):
        def train_step(self, data):
            seen.assign(tf.concat([seen, tf.cast(data["item_id"], tf.int64)], 0))
            return super().train_step(data)

    keras.utils.set_random_seed(0)
    return Recording(num_users=space.num_users, num_items=space.num_items, embedding_dim=4)


def epoch_stream(model, train, epochs: int, first_epoch: int = 0) -> list[list[int]]:
    """Each epoch's item ids, in order, as the seeded stream of epochs lays them out."""
    batches = [b["item_id"].numpy().tolist() for b in training_dataset(model, train, BATCH, shuffle=True, seed=0,
                                                                       epochs=epochs, first_epoch=first_epoch)]
    steps = epoch_steps(model, train, BATCH)
    return [sum(batches[e * steps:(e + 1) * steps], []) for e in range(epochs - first_epoch)]


def train_recording(space, train, epochs: int, stop_at: int | None = None,
                    **options) -> tuple[keras.Model, list[list[int]]]:
    """A recording model trained ``epochs`` epochs (interrupted as epoch ``stop_at`` begins); each epoch's item ids."""
    seen = tf.Variable(tf.zeros([0], tf.int64), shape=[None])
    model = recording_model(space, seen)
    ends = []

    def interrupt(epoch, logs):
        if epoch == stop_at:
            raise KeyboardInterrupt

    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: ends.append(int(tf.size(seen))),
                                            on_epoch_begin=interrupt)
    train_model(model, train, TrainingConfig(epochs=epochs, batch_size=BATCH, jit_compile=False), callbacks=[record],
                verbose=0, **options)
    ids = seen.numpy().tolist()
    return model, [ids[start:end] for start, end in zip([0, *ends[:-1]], ends)]


def test_a_prime_step_count_trains_each_epoch_on_exactly_its_examples(tiny_space, tiny_examples):
    train = tiny_examples["train"]
    model, per_epoch = train_recording(tiny_space, train, epochs=3)
    assert (len(train), epoch_steps(model, train, BATCH)) == (480, 37)
    assert model.steps_per_execution == AUTO_STEPS_PER_EXECUTION == 32  # 37 = 32 + a last call of 5
    assert [len(ids) for ids in per_epoch] == [480, 480, 480]
    assert per_epoch == epoch_stream(model, train, epochs=3)
    assert int(model.optimizer.iterations.numpy()) == 3 * 37


def test_a_resumed_run_trains_the_epochs_left_on_their_own_batches(tiny_space, tiny_examples, tmp_path):
    train = tiny_examples["train"]
    with pytest.raises(KeyboardInterrupt):  # killed as the third epoch begins: two epochs checkpointed
        train_recording(tiny_space, train, epochs=3, stop_at=2, checkpoint_dir=tmp_path / "checkpoints")
    model, per_epoch = train_recording(tiny_space, train, epochs=3, checkpoint_dir=tmp_path / "checkpoints")
    assert per_epoch == epoch_stream(model, train, epochs=3, first_epoch=2)


class NaNOnShortBatch(TwoTower):
    """Its loss is NaN on a batch of fewer than ``BATCH`` examples: the last of each epoch."""

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = super().compute_loss(x, y, y_pred, sample_weight, training)
        return loss + tf.where(tf.shape(x["item_id"])[0] < BATCH, np.nan, 0.0)


def test_the_loss_check_names_the_last_batch_of_a_short_last_call(tiny_space, tiny_examples):
    keras.utils.set_random_seed(0)
    model = NaNOnShortBatch(num_users=tiny_space.num_users, num_items=tiny_space.num_items, embedding_dim=4)
    with pytest.raises(TrainingDivergedError, match=r"epoch 1, batch 37 \(global step 37\); the loss is checked "
                                                    r"every 32 batches"):
        train_model(model, tiny_examples["train"], TrainingConfig(epochs=2, batch_size=BATCH), verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 37
