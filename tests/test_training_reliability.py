"""Training stops loudly on a diverging loss, and a SIGKILLed run resumes to the same result."""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from mmrec_tf.checkpoints import checkpoint_folders
from mmrec_tf.registry import create_model
from mmrec_tf.training import TrainingConfig, TrainingDivergedError, train_model

SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import keras, numpy as np, tensorflow as tf
    tf.config.experimental.enable_op_determinism()
    from mmrec_tf.data import load_dataset
    from mmrec_tf.experiment import prepare_data, run

    checkpoints, kill_at, kill_in_write, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

    class KillMidEpoch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            self.seen = getattr(self, "seen", 0) + 1
            if self.seen == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    if kill_in_write:  # the kill_in_write-th weights file is half written when the process is killed
        save_weights, saves = keras.Model.save_weights, []

        def save_weights_and_die(model, filepath, *args, **kwargs):
            save_weights(model, filepath, *args, **kwargs)
            saves.append(filepath)
            if len(saves) == kill_in_write:
                os.truncate(filepath, os.path.getsize(filepath) // 2)
                os.kill(os.getpid(), signal.SIGKILL)

        keras.Model.save_weights = save_weights_and_die

    data = prepare_data(load_dataset("synthetic", num_users=80, num_items=40, num_clusters=4), max_history=5)
    result = run("lstm_two_tower", data, training={"epochs": 4, "batch_size": 64, "seed": 3}, verbose=0,
                 checkpoint_dir=checkpoints or None, callbacks=[KillMidEpoch()] if kill_at else None,
                 embedding_dim=8, lstm_units=8, max_history=5)
    np.savez(out, *result.model.get_weights(), hr_at_10=result.test.metrics["hr@10"])
""")


def _train(checkpoints, out, kill_at=0, kill_in_write=0):
    return subprocess.run([sys.executable, "-c", SCRIPT, str(checkpoints or ""), str(kill_at), str(kill_in_write),
                           str(out)], capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def _saved(path):
    with np.load(path) as saved:
        return [saved[f"arr_{i}"] for i in range(len(saved.files) - 1)], float(saved["hr_at_10"])


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "weights.npz"
    reference = _train(None, out)
    assert reference.returncode == 0, reference.stderr[-2000:]
    return _saved(out)


def _assert_identical(out, uninterrupted):
    weights, hr_at_10 = _saved(out)
    expected_weights, expected_hr = uninterrupted
    assert len(weights) == len(expected_weights)
    for got, expected in zip(weights, expected_weights):
        assert np.array_equal(got, expected)
    assert hr_at_10 == expected_hr


@pytest.mark.slow
def test_sigkilled_training_resumes_to_the_uninterrupted_result(tmp_path, uninterrupted):
    checkpoints = tmp_path / "checkpoints"
    killed = _train(checkpoints, tmp_path / "killed.npz", kill_at=30)
    assert killed.returncode == -signal.SIGKILL
    assert [path.name for path in checkpoint_folders(checkpoints)] == ["epoch-000001"], \
        "killed in the second epoch: one finished epoch is checkpointed"
    resumed = _train(checkpoints, tmp_path / "resumed.npz")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    _assert_identical(tmp_path / "resumed.npz", uninterrupted)
    assert not checkpoints.exists(), "checkpoints are removed once training completes"


@pytest.mark.slow
def test_a_kill_inside_the_checkpoint_write_resumes_to_the_uninterrupted_result(tmp_path, uninterrupted):
    checkpoints = tmp_path / "checkpoints"
    killed = _train(checkpoints, tmp_path / "killed.npz", kill_in_write=3)  # while saving epoch 3
    assert killed.returncode == -signal.SIGKILL
    assert [path.name for path in checkpoint_folders(checkpoints)] == ["epoch-000002", "epoch-000001"]
    resumed = _train(checkpoints, tmp_path / "resumed.npz")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    _assert_identical(tmp_path / "resumed.npz", uninterrupted)


def test_non_finite_loss_stops_training_and_names_the_step(tiny_space, tiny_examples):
    model = create_model("two_tower", space=tiny_space, embedding_dim=4)
    config = TrainingConfig(epochs=3, batch_size=16, learning_rate=1e30, optimizer="sgd")
    with pytest.raises(TrainingDivergedError, match=r"at epoch \d+, batch \d+ \(global step \d+\).*learning rate"):
        train_model(model, tiny_examples["train"], config, verbose=0)
    assert not np.isfinite(np.concatenate([w.ravel() for w in model.get_weights()])).all()


def test_zero_epochs_builds_the_model_and_leaves_its_weights(tiny_space, tiny_examples):
    model = create_model("two_tower", space=tiny_space, embedding_dim=4)
    model.build()
    before = [w.copy() for w in model.get_weights()]
    history = train_model(model, tiny_examples["train"], TrainingConfig(epochs=0), verbose=0)
    assert history.history == {} and history.epoch == []
    for got, expected in zip(model.get_weights(), before):
        np.testing.assert_array_equal(got, expected)
