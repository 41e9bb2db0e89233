"""Pointwise ranking task (click / rating prediction) with TFRS semantics."""

from __future__ import annotations

import keras
from keras import ops

from mmrec_tf.tasks.replicas import replica_share

_LOSSES = ("binary_crossentropy", "mse")
_REDUCTIONS = ("sum_over_batch_size", "sum")


def _as_column(tensor, argument: str):
    """Casts to float32 and reshapes `[B]` or `[B, 1]` to `[B, 1]`."""
    tensor = ops.cast(tensor, "float32")
    if len(tensor.shape) == 2 and tensor.shape[1] == 1:
        return tensor
    if len(tensor.shape) != 1:
        raise ValueError(
            f"Ranking: `{argument}` must have shape [B] or [B, 1], got shape "
            f"{tuple(tensor.shape)}."
        )
    return ops.expand_dims(tensor, 1)


def _columns(labels, predictions, sample_weight):
    """Returns labels, predictions `[B, 1]` and weights `[B]` (or None)."""
    labels = _as_column(labels, "labels")
    predictions = _as_column(predictions, "predictions")
    if None not in (labels.shape[0], predictions.shape[0]) and (
        labels.shape[0] != predictions.shape[0]
    ):
        raise ValueError(
            f"Ranking: `labels` has {labels.shape[0]} rows but `predictions` has "
            f"{predictions.shape[0]}."
        )
    if sample_weight is not None:
        sample_weight = ops.reshape(_as_column(sample_weight, "sample_weight"), (-1,))
        if None not in (sample_weight.shape[0], labels.shape[0]) and (
            sample_weight.shape[0] != labels.shape[0]
        ):
            raise ValueError(
                f"Ranking: `sample_weight` has {sample_weight.shape[0]} entries but "
                f"`labels` has {labels.shape[0]} rows."
            )
    return labels, predictions, sample_weight


@keras.saving.register_keras_serializable(package="mmrec_tf")
class Ranking(keras.layers.Layer):
    """Pointwise ranking loss plus streaming metrics, as `tfrs.tasks.Ranking`.

    `loss="binary_crossentropy"` is the TFRS default (click-through
    prediction); `loss="mse"` is the rating-regression setup of the TFRS
    ranking tutorial. The per-example losses are weighted by `sample_weight`
    and reduced like TFRS 0.7.7 reduces them: `tfrs.tasks.Ranking` builds
    `tf.keras.losses.BinaryCrossentropy()` (and the tutorial
    `tf.keras.losses.MeanSquaredError()`), whose default reduction is
    `SUM_OVER_BATCH_SIZE`, i.e. `sum(weight * loss) / B` — not a plain sum.
    Pass `reduction="sum"` for `sum(weight * loss)`. Under a `tf.distribute`
    strategy with N replicas, `B` is the global batch (each replica divides
    its sum by its own batch and by N), so N replicas take the step one
    device takes on the whole batch.

    The task owns streaming Keras metrics, listed by the inherited `metrics`
    property so a model that holds the task reports and resets them:
    `auc` (1000 thresholds) and `log_loss` for binary cross-entropy, `rmse`
    for MSE. They change only through `update_metrics`.

    Args:
        loss: `"binary_crossentropy"` or `"mse"`.
        from_logits: Predictions are logits (binary cross-entropy only).
        reduction: `"sum_over_batch_size"` (TFRS) or `"sum"`.
        name: Layer name.
        **kwargs: Base layer arguments (`dtype`, `trainable`); the dtype
            policy defaults to float32.

    Example:

    >>> import numpy as np
    >>> task = Ranking(loss="mse")
    >>> labels = np.array([4.0, 2.0], "float32")
    >>> predictions = np.array([3.0, 2.0], "float32")
    >>> float(task(labels, predictions))  # ((4 - 3)^2 + 0^2) / 2
    0.5
    >>> task.update_metrics(labels, predictions)
    >>> round(float(task.rmse.result()), 4)  # sqrt(0.5)
    0.7071
    """

    def __init__(
        self,
        loss: str = "binary_crossentropy",
        from_logits: bool = False,
        reduction: str = "sum_over_batch_size",
        name: str | None = None,
        **kwargs,
    ) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(name=name, **kwargs)
        if loss not in _LOSSES:
            raise ValueError(f"Ranking: `loss` must be one of {_LOSSES}, got {loss!r}.")
        if not isinstance(from_logits, bool):
            raise ValueError(
                f"Ranking: `from_logits` must be True or False, got {from_logits!r}."
            )
        if from_logits and loss != "binary_crossentropy":
            raise ValueError(
                "Ranking: `from_logits=True` only applies to "
                f"loss='binary_crossentropy', got loss={loss!r}."
            )
        if reduction not in _REDUCTIONS:
            raise ValueError(
                f"Ranking: `reduction` must be one of {_REDUCTIONS}, got {reduction!r}."
            )
        self.loss = loss
        self.from_logits = from_logits
        self.reduction = reduction
        if loss == "binary_crossentropy":
            self.auc = keras.metrics.AUC(
                num_thresholds=1000, from_logits=from_logits, name="auc"
            )
            self.log_loss = keras.metrics.BinaryCrossentropy(
                from_logits=from_logits, name="log_loss"
            )
            self._task_metrics = [self.auc, self.log_loss]
        else:
            self.rmse = keras.metrics.RootMeanSquaredError(name="rmse")
            self._task_metrics = [self.rmse]
        self.built = True

    def call(self, labels, predictions, sample_weight=None):
        """Returns the scalar float32 loss of a batch.

        Args:
            labels: `[B]` or `[B, 1]` labels (0/1 for binary cross-entropy).
            predictions: `[B]` or `[B, 1]` probabilities, logits or ratings.
            sample_weight: Optional `[B]` weight per example.
        """
        labels, predictions, weights = _columns(labels, predictions, sample_weight)
        if self.loss == "binary_crossentropy":
            losses = keras.losses.binary_crossentropy(
                labels, predictions, from_logits=self.from_logits
            )
        else:
            losses = ops.mean(ops.square(labels - predictions), axis=-1)
        if weights is not None:
            losses = losses * weights
        total = ops.sum(losses)
        if self.reduction == "sum":
            return total
        return replica_share(total / ops.cast(ops.shape(losses)[0], "float32"))

    def update_metrics(self, labels, predictions, sample_weight=None) -> None:
        """Updates the task's streaming metrics with a batch.

        Args:
            labels: `[B]` or `[B, 1]` labels.
            predictions: `[B]` or `[B, 1]` predictions, as passed to `call`.
            sample_weight: Optional `[B]` weight per example.
        """
        labels, predictions, weights = _columns(labels, predictions, sample_weight)
        for metric in self._task_metrics:
            metric.update_state(labels, predictions, sample_weight=weights)

    def get_config(self) -> dict:
        """Returns every constructor argument."""
        config = super().get_config()
        config.update(
            {
                "loss": self.loss,
                "from_logits": self.from_logits,
                "reduction": self.reduction,
            }
        )
        return config
