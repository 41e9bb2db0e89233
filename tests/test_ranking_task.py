"""Tests for `mmrec_tf.tasks.Ranking`.

Expected values are worked out by hand in the comments. The default
reduction (`sum_over_batch_size`) numbers also equal what
tensorflow_recommenders 0.7.7 `tfrs.tasks.Ranking()` returns on tf_keras 2.21
for the same inputs (0.383119 and 0.311199 below), whose default loss is
`tf.keras.losses.BinaryCrossentropy()` with the AUTO (= mean) reduction.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest

from mmrec_tf.tasks import Ranking

LABELS = np.array([1.0, 0.0, 1.0, 0.0], "float32")
PROBS = np.array([0.9, 0.2, 0.6, 0.5], "float32")
WEIGHTS = np.array([1.0, 2.0, 0.0, 1.0], "float32")
# Per-example binary cross-entropy:
#   -log 0.9 = 0.105361, -log 0.8 = 0.223144, -log 0.6 = 0.510826, -log 0.5 = 0.693147
BCE_SUM = 0.105361 + 0.223144 + 0.510826 + 0.693147  # = 1.532477
BCE_WEIGHTED_SUM = 0.105361 + 2 * 0.223144 + 0 * 0.510826 + 0.693147  # = 1.244795


def test_binary_crossentropy_default_is_mean_over_batch_like_tfrs():
    loss = Ranking()(LABELS, PROBS)
    assert float(loss) == pytest.approx(BCE_SUM / 4, abs=1e-5)  # 0.383119


def test_binary_crossentropy_weighted_divides_by_batch_size():
    # TFRS / tf.keras SUM_OVER_BATCH_SIZE divides by B = 4, not by sum(weights).
    loss = Ranking()(LABELS, PROBS, sample_weight=WEIGHTS)
    assert float(loss) == pytest.approx(BCE_WEIGHTED_SUM / 4, abs=1e-5)  # 0.311199


def test_sum_reduction():
    loss = Ranking(reduction="sum")(LABELS, PROBS, sample_weight=WEIGHTS)
    assert float(loss) == pytest.approx(BCE_WEIGHTED_SUM, abs=1e-5)


def test_column_predictions_equal_vector_predictions():
    task = Ranking()
    column = task(LABELS[:, None], PROBS[:, None], sample_weight=WEIGHTS)
    mixed = task(LABELS, PROBS[:, None], sample_weight=WEIGHTS[:, None])
    assert float(column) == pytest.approx(BCE_WEIGHTED_SUM / 4, abs=1e-5)
    assert float(mixed) == pytest.approx(float(column), abs=1e-7)


def test_binary_crossentropy_from_logits():
    # label 1, logit 2:  log(1 + e^-2) = 0.126928
    # label 0, logit -1: log(1 + e^-1) = 0.313262
    loss = Ranking(from_logits=True)(
        np.array([1.0, 0.0]), np.array([2.0, -1.0], "float32")
    )
    assert float(loss) == pytest.approx((0.126928 + 0.313262) / 2, abs=1e-5)


def test_mse():
    # squared errors (4 - 3.5)^2 = 0.25, (2 - 2)^2 = 0, (5 - 3)^2 = 4
    labels = np.array([4.0, 2.0, 5.0], "float32")
    predictions = np.array([[3.5], [2.0], [3.0]], "float32")
    assert float(Ranking(loss="mse")(labels, predictions)) == pytest.approx(4.25 / 3)
    weighted = Ranking(loss="mse", reduction="sum")(
        labels, predictions, sample_weight=np.array([2.0, 1.0, 0.5])
    )
    assert float(weighted) == pytest.approx(2 * 0.25 + 0.5 * 4)  # 2.5


def test_mixed_precision_inputs_give_float32_loss():
    loss = Ranking()(LABELS.astype("float16"), PROBS.astype("float16"))
    assert keras.backend.standardize_dtype(loss.dtype) == "float32"
    assert float(loss) == pytest.approx(BCE_SUM / 4, abs=1e-3)


# === Metrics ===


def test_binary_metrics_are_exposed_and_updated_only_by_update_metrics():
    task = Ranking()
    assert [m.name for m in task.metrics] == ["auc", "log_loss"]
    task(LABELS, PROBS)
    assert float(task.log_loss.result()) == 0.0
    labels = np.array([0, 0, 1, 1], "float32")
    scores = np.array([0.1, 0.4, 0.35, 0.8], "float32")
    task.update_metrics(labels, scores)
    # exact AUC: positives 0.35 and 0.8 beat 0.1; 0.8 beats 0.4 -> 3 of 4 pairs
    assert float(task.auc.result()) == pytest.approx(0.75, abs=1e-3)
    # log loss: (-log 0.9 - log 0.6 - log 0.35 - log 0.8) / 4
    #         = (0.105361 + 0.510826 + 1.049822 + 0.223144) / 4 = 0.472288
    assert float(task.log_loss.result()) == pytest.approx(0.472288, abs=1e-5)
    for metric in task.metrics:
        metric.reset_state()
    assert float(task.log_loss.result()) == 0.0


def test_binary_metrics_from_logits_and_weights():
    task = Ranking(from_logits=True)
    task.update_metrics(
        np.array([1.0, 0.0, 0.0]),
        np.array([[2.0], [-1.0], [3.0]], "float32"),
        sample_weight=np.array([1.0, 1.0, 0.0]),
    )
    # the weight-0 row is ignored: (0.126928 + 0.313262) / 2, AUC 1
    assert float(task.log_loss.result()) == pytest.approx(0.220095, abs=1e-5)
    assert float(task.auc.result()) == pytest.approx(1.0, abs=1e-6)


def test_rmse_metric():
    task = Ranking(loss="mse")
    assert [m.name for m in task.metrics] == ["rmse"]
    task.update_metrics(np.array([4.0, 2.0, 5.0]), np.array([3.5, 2.0, 3.0]))
    # sqrt((0.25 + 0 + 4) / 3) = sqrt(1.416667) = 1.190238
    assert float(task.rmse.result()) == pytest.approx(1.190238, abs=1e-5)


class ToyRanker(keras.Model):
    """A logistic-regression ranker whose loss and metrics come from a Ranking task."""

    def __init__(self, task, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(1, activation="sigmoid")
        self.task = task

    def call(self, inputs):
        return self.dense(inputs)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        self.task.update_metrics(y, y_pred, sample_weight)
        return self.task(y, y_pred, sample_weight)


def test_model_reports_task_metrics_and_trains():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    features = rng.normal(size=(64, 3)).astype("float32")
    labels = (features @ np.array([1.5, -2.0, 0.5]) > 0).astype("float32")
    model = ToyRanker(Ranking())
    model.compile(optimizer=keras.optimizers.Adam(0.1), jit_compile=True)
    history = model.fit(features, labels, batch_size=16, epochs=10, verbose=0)
    assert set(history.history) == {"loss", "auc", "log_loss"}
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    logs = model.evaluate(features, labels, batch_size=64, return_dict=True, verbose=0)
    probabilities = keras.ops.convert_to_numpy(model(features))[:, 0]
    clipped = np.clip(probabilities, 1e-7, 1 - 1e-7)
    expected = -np.mean(labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped))
    assert logs["log_loss"] == pytest.approx(expected, rel=1e-4)
    assert logs["loss"] == pytest.approx(expected, rel=1e-4)
    assert logs["auc"] > 0.95


# === Errors and serialization ===


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(loss="hinge"), "loss"),
        (dict(loss="mse", from_logits=True), "from_logits"),
        (dict(from_logits=1), "from_logits"),
        (dict(reduction="mean"), "reduction"),
    ],
)
def test_bad_constructor_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Ranking(**kwargs)


def test_mismatched_inputs_raise():
    with pytest.raises(ValueError, match="rows"):
        Ranking()(LABELS, PROBS[:3])
    with pytest.raises(ValueError, match="sample_weight"):
        Ranking()(LABELS, PROBS, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="predictions"):
        Ranking()(LABELS, np.ones((4, 2), "float32"))


@pytest.mark.parametrize(
    "kwargs",
    [dict(), dict(from_logits=True, reduction="sum"), dict(loss="mse", name="rating")],
)
def test_serialization_round_trip(kwargs):
    task = Ranking(**kwargs)
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(task)
    )
    assert isinstance(restored, Ranking)
    assert restored.get_config() == task.get_config()
    assert [m.name for m in restored.metrics] == [m.name for m in task.metrics]
    assert float(restored(LABELS, PROBS)) == pytest.approx(float(task(LABELS, PROBS)))
