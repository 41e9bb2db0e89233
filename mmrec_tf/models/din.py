"""Deep Interest Network: the history is pooled with weights that depend on the target item."""

from __future__ import annotations

import keras
from keras import ops

from mmrec_tf.layers.target_attention import TargetAttention
from mmrec_tf.models.embedding_mlp import EmbeddingMLP
from mmrec_tf.model_registration import register_model

ATTENTION_FEATURES = ("all", "content")


@register_model("din", task="ranking")
@keras.saving.register_keras_serializable(package="mmrec_tf")
class DIN(EmbeddingMLP):
    """Deep Interest Network (Zhou et al., "Deep Interest Network for Click-Through Rate Prediction", KDD 2018).

    :class:`~mmrec_tf.models.EmbeddingMLP` with its sum pooling replaced by
    target attention (:class:`~mmrec_tf.layers.TargetAttention`, the paper's
    local activation unit): each history item ``h_j`` gets weight
    ``w_j = MLP([h_j, t, h_j - t, h_j * t])`` against the target ``t``, and
    the user's interest is ``sum_j w_j h_j``, a different vector for every
    target. By default the weights are not softmax-normalised (as in the
    paper); ``attention_softmax=True`` normalises them over the history (as
    the authors' public code does). Padded positions get weight 0.
    ``activation`` (``"dice"`` or ``"prelu"``) is used in the MLP and the
    activation unit.

    ``attention_features`` chooses what the activation unit compares:
    ``"all"`` the whole item vectors (id embedding and item features),
    ``"content"`` only the item-feature part (on MovieLens genres, title
    words, year; the id embedding left out), so the weights say how alike two
    movies are by content and cannot memorise pairs of ids; the pooled vector
    is still made of the whole vectors. With ``rating_levels`` the
    behaviours' rating vectors are part of what is compared and pooled.
    :meth:`attention_weights` shows which history items drove a score; the
    export turns it into the ``explain`` signature.

    Example:
    >>> import numpy as np
    >>> model = DIN(num_users=3, num_items=5, embedding_dim=4, hidden_units=(8,), attention_units=(4,),
    ...             max_history=3)
    >>> features = {"user_id": np.array([1]), "history": np.array([[1, 2, 0]])}
    >>> weights = model.attention_weights(features, np.array([[4, 5]]))
    >>> tuple(weights.shape), float(weights[0, 0, 2])
    ((1, 2, 3), 0.0)
    >>> normalised = DIN(num_users=3, num_items=5, embedding_dim=4, hidden_units=(8,), attention_units=(4,),
    ...                  max_history=3, attention_softmax=True)
    >>> [round(float(v), 4) for v in normalised.attention_weights(features, np.array([[4, 5]]))[0].numpy().sum(-1)]
    [1.0, 1.0]
    """

    def __init__(self, num_users: int, num_items: int, attention_units: tuple[int, ...] | list[int] = (80, 40),
                 activation: str = "dice", attention_softmax: bool = False, attention_features: str = "all",
                 **kwargs):
        if attention_features not in ATTENTION_FEATURES:
            raise ValueError(f"attention_features must be one of {ATTENTION_FEATURES}, got {attention_features!r}")
        self.attention_units = [int(u) for u in attention_units]
        self.attention_softmax = bool(attention_softmax)
        self.attention_features = attention_features
        super().__init__(num_users=num_users, num_items=num_items, activation=activation, **kwargs)
        if attention_features == "content" and not self.item_feature_specs:
            raise ValueError("attention_features='content' compares items by their feature tables, and this model "
                             "has none (item_feature_specs is empty); use attention_features='all'")
        self.attention = TargetAttention(self.attention_units, activation=activation, softmax=self.attention_softmax,
                                         name="target_attention")

    def _key_start(self) -> int:
        """Where the compared part of an item vector starts: after the id embedding for ``"content"``."""
        return self.embedding_dim if self.attention_features == "content" else 0

    def build_pooling(self) -> None:
        if self.attention.built:  # already built by an attention_weights call before the model's first call
            return
        size = self.item_encoder.output_size - self._key_start()
        self.attention.build((None, self.max_history, size), (None, size))

    def _attend(self, history_vectors, mask, target_vectors, training=False):
        start = self._key_start()
        return self.attention(history_vectors[..., start:], target_vectors[..., start:], mask=mask,
                              values=history_vectors, training=training)

    def pool_history(self, history_vectors, mask, target_vectors, training=False):
        """Target-attention pooling of the history vectors ``[B, L, D]`` → ``[B, D]``."""
        pooled, _ = self._attend(history_vectors, mask, target_vectors, training=training)
        return pooled

    def attention_weights(self, features, candidates, training=False):
        """Weights ``[B, C, L]`` of each history position for each candidate item index ``[B, C]``."""
        candidates = ops.cast(candidates, "int32")
        count = ops.shape(candidates)[1]
        history_vectors, mask = self.encode_history(features)
        history_vectors, mask = ops.repeat(history_vectors, count, axis=0), ops.repeat(mask, count, axis=0)
        _, weights = self._attend(history_vectors, mask, self.item_encoder(ops.reshape(candidates, (-1,))),
                                  training=training)
        return ops.reshape(ops.cast(weights, "float32"), (ops.shape(candidates)[0], count, ops.shape(mask)[1]))

    def get_config(self):
        config = super().get_config()
        config.update({"attention_units": self.attention_units, "attention_softmax": self.attention_softmax,
                       "attention_features": self.attention_features})
        return config
