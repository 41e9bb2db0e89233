"""Checkpoints are complete before they get their name, verified on resume, and a bad one falls back to the last."""

import logging

import keras
import numpy as np
import pytest

from mmrec_tf.checkpoints import (KEEP, WEIGHTS_FILE, UnreadableCheckpointError, checkpoint_folders, find_checkpoint,
                                  write_checkpoint)
from mmrec_tf.registry import create_model
from mmrec_tf.training import TrainingConfig, train_model

CONFIG = TrainingConfig(epochs=3, batch_size=32, learning_rate=0.05, jit_compile=False, steps_per_execution=1)


def _small_model(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    return model


def test_each_save_is_a_named_complete_folder_and_only_the_newest_are_kept(tmp_path):
    model = _small_model()
    for epoch in (1, 2, 3):
        write_checkpoint(tmp_path, model, epoch)
    assert [path.name for path in checkpoint_folders(tmp_path)] == ["epoch-000003", "epoch-000002"][:KEEP]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["epoch-000002", "epoch-000003"]
    found = find_checkpoint(tmp_path)
    assert found.epoch == 3 and found.weights_path == tmp_path / "epoch-000003" / WEIGHTS_FILE
    restored = _small_model(seed=1)
    restored.load_weights(found.weights_path)
    for got, expected in zip(restored.get_weights(), model.get_weights()):
        assert np.array_equal(got, expected)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "no_metadata"])
def test_an_unreadable_newest_checkpoint_falls_back_to_the_previous_with_a_log_line(tmp_path, caplog, damage):
    model = _small_model()
    write_checkpoint(tmp_path, model, 1)
    newest = write_checkpoint(tmp_path, model, 2)
    weights = newest / WEIGHTS_FILE
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "garbage":
        size = weights.stat().st_size
        weights.write_bytes(b"\x00garbage" * (size // 8) + b"\x00" * (size % 8))  # same size, other bytes
    elif damage == "empty":
        weights.write_bytes(b"")
    else:
        (newest / "checkpoint.json").unlink()
    with caplog.at_level(logging.WARNING, logger="mmrec_tf.checkpoints"):
        found = find_checkpoint(tmp_path)
    assert found.epoch == 1
    assert f"checkpoint {newest} is unreadable" in caplog.text and "epoch-000001 (epoch 1) instead" in caplog.text


def test_no_readable_checkpoint_is_a_clear_error(tmp_path):
    newest = write_checkpoint(tmp_path, _small_model(), 1)
    (newest / WEIGHTS_FILE).write_bytes(b"")
    with pytest.raises(UnreadableCheckpointError, match="no readable checkpoint.*epoch-000001.*delete the folder"):
        find_checkpoint(tmp_path)


def test_a_half_written_checkpoint_is_not_a_checkpoint(tmp_path):
    write_checkpoint(tmp_path, _small_model(), 1)
    partial = tmp_path / ".partial-epoch-000002-123"  # what a kill inside write_checkpoint leaves
    partial.mkdir()
    (partial / WEIGHTS_FILE).write_bytes(b"\x89HDF")
    assert find_checkpoint(tmp_path).epoch == 1
    write_checkpoint(tmp_path, _small_model(), 2)
    assert not partial.exists()


class _StopAfter(keras.callbacks.Callback):
    """Interrupts training when epoch ``epochs`` would begin (``epochs`` finished epochs are checkpointed)."""

    def __init__(self, epochs):
        super().__init__()
        self.epochs = epochs

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epochs:
            raise KeyboardInterrupt


def _train(space, examples, checkpoint_dir=None, callbacks=()):
    keras.utils.set_random_seed(7)
    model = create_model("two_tower", space=space, embedding_dim=4)
    train_model(model, examples, CONFIG, verbose=0, checkpoint_dir=checkpoint_dir, callbacks=list(callbacks))
    return model.get_weights()


def test_resuming_past_a_truncated_newest_checkpoint_ends_on_identical_weights(tmp_path, tiny_space, tiny_examples,
                                                                                caplog):
    train = tiny_examples["train"]
    reference = _train(tiny_space, train)
    checkpoints = tmp_path / "checkpoints"
    with pytest.raises(KeyboardInterrupt):
        _train(tiny_space, train, checkpoints, callbacks=[_StopAfter(2)])
    newest = checkpoint_folders(checkpoints)[0]
    assert newest.name == "epoch-000002"
    (newest / WEIGHTS_FILE).write_bytes((newest / WEIGHTS_FILE).read_bytes()[:100])
    with caplog.at_level(logging.WARNING, logger="mmrec_tf.checkpoints"):
        resumed = _train(tiny_space, train, checkpoints)
    assert "epoch-000002 is unreadable" in caplog.text
    assert len(resumed) == len(reference)
    for got, expected in zip(resumed, reference):
        assert np.array_equal(got, expected)
    assert not checkpoints.exists()
