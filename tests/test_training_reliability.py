"""Training stops loudly on a diverging loss, and a SIGKILLed run resumes to the same result."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from mmrec_tf.registry import create_model
from mmrec_tf.training import TrainingConfig, TrainingDivergedError, train_model

SCRIPT = textwrap.dedent("""
    import json, os, signal, sys
    import keras, numpy as np, tensorflow as tf
    tf.config.experimental.enable_op_determinism()
    from mmrec_tf.data import load_dataset
    from mmrec_tf.experiment import prepare_data, run

    checkpoints, kill_at = sys.argv[1], int(sys.argv[2])

    class KillMidEpoch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            self.seen = getattr(self, "seen", 0) + 1
            if self.seen == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    data = prepare_data(load_dataset("synthetic", num_users=80, num_items=40, num_clusters=4), max_history=5)
    result = run("lstm_two_tower", data, training={"epochs": 4, "batch_size": 64, "seed": 3}, verbose=0,
                 checkpoint_dir=checkpoints or None, callbacks=[KillMidEpoch()] if kill_at else None,
                 embedding_dim=8, lstm_units=8, max_history=5)
    weights = np.concatenate([w.ravel() for w in result.model.get_weights()])
    print(json.dumps({"hr@10": result.test.metrics["hr@10"], "weights": float(np.abs(weights).sum())}))
""")


def _train(checkpoints, kill_at):
    return subprocess.run([sys.executable, "-c", SCRIPT, str(checkpoints or ""), str(kill_at)],
                          capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


@pytest.mark.slow
def test_sigkilled_training_resumes_to_the_uninterrupted_result(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    reference = _train(None, 0)
    assert reference.returncode == 0, reference.stderr[-2000:]
    killed = _train(checkpoints, kill_at=30)
    assert killed.returncode == -signal.SIGKILL
    saved = json.loads((checkpoints / "training_metadata.json").read_text())
    assert saved["epoch"] == 1, "killed in the second epoch: one finished epoch is checkpointed"
    resumed = _train(checkpoints, 0)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    expected = json.loads(reference.stdout.strip().splitlines()[-1])
    got = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert got["weights"] == pytest.approx(expected["weights"], rel=1e-4)
    assert got["hr@10"] == pytest.approx(expected["hr@10"], abs=0.02)
    assert not checkpoints.exists(), "checkpoints are removed once training completes"


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
