"""Base class of the pointwise ranking models (click-through / rating prediction)."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from mmrec_tf.data.pipeline import LABELLED_EXAMPLES, Examples
from mmrec_tf.tasks import Ranking
from mmrec_tf.tasks.replicas import replica_share

TASK_LOSSES = ("binary_crossentropy", "mse")


class RankingModel(keras.Model):
    """Scores one (user, history, target item) example: a click probability or a rating.

    Subclasses implement ``raw_score(features, training)`` → ``[B]`` (a logit
    for ``task_loss="binary_crossentropy"``, the predicted value for
    ``"mse"``); ``call`` returns the probability (sigmoid of the logit) or the
    value, float32 ``[B]``. Features are dicts of indices from a
    :class:`~mmrec_tf.data.FeatureSpace`: ``user_id`` [B], ``history`` [B, L]
    (oldest first, 0-padded at the end), ``item_id`` [B]; for training also
    the target ``label_feature`` (``"label"``, see :mod:`mmrec_tf.data.labels`).
    The model owns a :class:`~mmrec_tf.tasks.Ranking` task (TFRS semantics):
    its loss trains the model and its metrics (``auc`` and ``log_loss``, or
    ``rmse``) are reported by ``fit`` and ``evaluate``. ``score_candidates``
    scores ``C`` candidate items per user, which the export's ``score``
    signature calls.

    Example:
    >>> from mmrec_tf.models import EmbeddingMLP
    >>> import numpy as np
    >>> model = EmbeddingMLP(num_users=3, num_items=5, embedding_dim=4, hidden_units=(8,), max_history=2)
    >>> features = {"user_id": np.array([1, 2]), "history": np.array([[1, 2], [3, 0]])}
    >>> tuple(model.score_candidates(features, np.array([[4, 5, 1], [2, 3, 0]])).shape)
    (2, 3)
    """

    uses_history = True
    example_layout = LABELLED_EXAMPLES  # training_dataset checks and batches its labelled examples as they are
    #: the per-user inputs ``score_candidates`` repeats for every candidate (those present in the features)
    context_features = ("user_id", "history", "history_rating")

    def __init__(self, num_users: int, num_items: int, task_loss: str = "binary_crossentropy",
                 label_feature: str = "label", **kwargs):
        super().__init__(**kwargs)
        if task_loss not in TASK_LOSSES:
            raise ValueError(f"task_loss must be one of {TASK_LOSSES}, got {task_loss!r}")
        if num_users < 1 or num_items < 1:
            raise ValueError(f"num_users and num_items must be at least 1, got {num_users} and {num_items}")
        self.num_users = num_users
        self.num_items = num_items
        self.task_loss = task_loss
        self.label_feature = label_feature
        self.task = Ranking(loss=task_loss, name="ranking_task")

    @classmethod
    def from_feature_space(cls, space, **kwargs):
        """Build the model for a :class:`~mmrec_tf.data.FeatureSpace` (vocabulary sizes)."""
        return cls(num_users=space.num_users, num_items=space.num_items, **kwargs)

    def raw_score(self, features, training=False):
        """The logit (binary cross-entropy) or predicted value (MSE) of each example, ``[B]`` or ``[B, 1]``."""
        raise NotImplementedError(f"{type(self).__name__} must implement raw_score(features, training)")

    def call(self, features, training=False):
        raw = ops.cast(ops.reshape(self.raw_score(features, training=training), (-1,)), "float32")
        return ops.sigmoid(raw) if self.task_loss == "binary_crossentropy" else raw

    def score_candidates(self, features, candidates, training=False):
        """Scores ``[B, C]`` of candidate item indices ``[B, C]``: each user's row is repeated ``C`` times.

        The user's row is every :attr:`context_features` input present in ``features``.
        """
        candidates = ops.cast(candidates, "int32")
        count = ops.shape(candidates)[1]
        rows = {name: ops.repeat(ops.cast(features[name], "int32"), count, axis=0)
                for name in self.context_features if name in features}
        rows["item_id"] = ops.reshape(candidates, (-1,))
        return ops.reshape(self(rows, training=training), ops.shape(candidates))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        labels = y if y is not None else x.get(self.label_feature) if isinstance(x, dict) else None
        if labels is None:
            raise ValueError(f"{type(self).__name__}: each batch needs the target feature "
                             f"{self.label_feature!r}; build batches with mmrec_tf.training.training_dataset from "
                             "labelled examples (mmrec_tf.data.labels)")
        loss = self.task(labels, y_pred, sample_weight=sample_weight)
        self.task.update_metrics(labels, y_pred, sample_weight=sample_weight)
        if training:
            penalty = self.regularization(x)
            if penalty is not None:
                loss = loss + replica_share(penalty)
        if self.losses:
            loss = loss + replica_share(ops.sum(self.losses))
        return loss

    def regularization(self, features):
        """A training-only penalty for this batch added to the loss (``None``: no penalty)."""
        return None

    def check_examples(self, examples: Examples) -> None:
        """Raise if ``examples`` lack the target, hold labels the loss cannot take, or misfit the history length."""
        if self.label_feature not in examples.extras:
            raise ValueError(f"{type(self).__name__}: examples have no {self.label_feature!r} field (they have "
                             f"{sorted(examples.extras)}); add labels with mmrec_tf.data.labels")
        labels = np.asarray(examples.extras[self.label_feature], dtype=np.float64)
        if self.task_loss == "binary_crossentropy":
            bad = np.flatnonzero((labels != 0) & (labels != 1))
            if bad.size:
                raise ValueError(f"{type(self).__name__}: field {self.label_feature!r} must be 0 or 1 for binary "
                                 f"cross-entropy; example {int(bad[0])} has {float(labels[bad[0]])}")
        elif not np.isfinite(labels).all():
            row = int(np.flatnonzero(~np.isfinite(labels))[0])
            raise ValueError(f"{type(self).__name__}: field {self.label_feature!r} of example {row} is not finite")
        max_history = getattr(self, "max_history", None)
        if self.uses_history and max_history is not None and examples.history.shape[1] != max_history:
            raise ValueError(f"{type(self).__name__}: examples have histories of length {examples.history.shape[1]} "
                             f"but the model serves max_history={max_history}; build them with "
                             f"build_examples(..., max_history={max_history})")

    def prepare(self, train_examples: Examples) -> None:
        """Check the training examples before gradients (labels present and valid)."""
        self.check_examples(train_examples)

    def get_config(self):
        config = super().get_config()
        config.update({"num_users": self.num_users, "num_items": self.num_items, "task_loss": self.task_loss,
                       "label_feature": self.label_feature})
        return config
