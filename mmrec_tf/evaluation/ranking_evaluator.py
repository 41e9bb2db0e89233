"""Evaluate a pointwise ranking model on labelled examples: AUC, GAUC, log loss, RMSE."""

from __future__ import annotations

import dataclasses

import numpy as np

from mmrec_tf.data.pipeline import Examples, make_tf_dataset
from mmrec_tf.evaluation.ranking_metrics import auc, gauc, log_loss, rmse


def predict_examples(model, examples: Examples, batch_size: int = 4096) -> np.ndarray:
    """The model's float32 prediction ``[N]`` for every example, in order.

    Example:
    >>> predict_examples(model, examples["test"])  # doctest: +SKIP
    array([0.71, 0.42, ...], dtype=float32)
    """
    if len(examples) == 0:
        raise ValueError("predict_examples: no examples")
    dataset = make_tf_dataset(examples, batch_size, shuffle=False)
    return np.asarray(model.predict(dataset, verbose=0), dtype=np.float32).reshape(-1)


@dataclasses.dataclass
class PointwiseReport:
    """Metrics of a ranking model on labelled examples (what :func:`evaluate_ranking` returns), printable.

    Example:
    >>> print(PointwiseReport({"auc": 0.78125, "gauc": 0.7, "gauc_users": 12, "num_examples": 40}))
    auc=0.7812  gauc=0.7000  gauc_users=12  (examples=40)
    """

    metrics: dict[str, float]

    @property
    def num_examples(self) -> int:
        return int(self.metrics.get("num_examples", 0))

    def __str__(self) -> str:
        body = "  ".join(f"{k}={v}" if isinstance(v, (int, np.integer)) else f"{k}={v:.4f}"
                         for k, v in self.metrics.items() if k != "num_examples")
        return f"{body}  (examples={self.num_examples})"


def evaluate_ranking(model, examples: Examples, batch_size: int = 4096) -> PointwiseReport:
    """Exact metrics of a :class:`~mmrec_tf.models.RankingModel` on labelled ``examples``.

    The report's ``metrics`` (what ``mmrec train`` / ``evaluate`` record)
    hold, with binary cross-entropy (click probability), ``auc``,
    ``gauc`` (the DIN paper's impression-weighted per-user AUC, see
    :func:`~mmrec_tf.evaluation.ranking_metrics.gauc`), ``gauc_users`` (users
    with both a positive and a negative, the only ones GAUC can count),
    ``log_loss`` and ``rmse`` (of probabilities: the root Brier score); with
    MSE (rating regression) only ``rmse``. Always ``num_examples`` and
    ``positive_rate`` / ``mean_label``. Counts are ints, the rest floats.
    Labels are ``examples.extras[model.label_feature]``.

    Example:
    >>> evaluate_ranking(model, labelled["test"]).metrics  # doctest: +SKIP
    {'auc': 0.78, 'gauc': 0.74, 'gauc_users': 801, 'log_loss': 0.55, 'rmse': 0.43, ...}
    """
    name = getattr(model, "label_feature", "label")
    if name not in examples.extras:
        raise ValueError(f"evaluate_ranking: examples have no {name!r} field (they have {sorted(examples.extras)}); "
                         "add labels with mmrec_tf.data.labels")
    labels = np.asarray(examples.extras[name], dtype=np.float64)
    scores = predict_examples(model, examples, batch_size)
    if getattr(model, "task_loss", "binary_crossentropy") == "mse":
        metrics = {"rmse": rmse(labels, scores), "num_examples": len(examples), "mean_label": float(labels.mean())}
    else:
        value, users = gauc(examples.user_id, labels, scores, return_num_users=True)
        metrics = {"auc": auc(labels, scores), "gauc": value, "gauc_users": users, "log_loss": log_loss(labels, scores),
                   "rmse": rmse(labels, scores), "num_examples": len(examples), "positive_rate": float(labels.mean())}
    return PointwiseReport({k: int(v) if isinstance(v, (int, np.integer)) else float(v) for k, v in metrics.items()})
