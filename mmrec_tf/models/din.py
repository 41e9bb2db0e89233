"""Deep Interest Network: the history is pooled with weights that depend on the target item."""

from __future__ import annotations

import keras
from keras import ops

from mmrec_tf.layers.target_attention import TargetAttention
from mmrec_tf.models.embedding_mlp import EmbeddingMLP
from mmrec_tf.registry import register_model


@register_model("din", task="ranking")
@keras.saving.register_keras_serializable(package="mmrec_tf")
class DIN(EmbeddingMLP):
    """Deep Interest Network (Zhou et al., "Deep Interest Network for Click-Through Rate Prediction", KDD 2018).

    :class:`~mmrec_tf.models.EmbeddingMLP` with its sum pooling replaced by
    target attention (:class:`~mmrec_tf.layers.TargetAttention`, the paper's
    local activation unit): each history item ``h_j`` gets weight
    ``w_j = MLP([h_j, t, h_j - t, h_j * t])`` against the target ``t``, and
    the user's interest is ``sum_j w_j h_j``, a different vector for every
    target. The weights are not softmax-normalised (as in the paper) and
    padded positions get weight 0. ``activation`` (``"dice"`` or
    ``"prelu"``) is used in the MLP and the activation unit.
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
    """

    def __init__(self, num_users: int, num_items: int, attention_units: tuple[int, ...] | list[int] = (80, 40),
                 activation: str = "dice", **kwargs):
        self.attention_units = [int(u) for u in attention_units]
        super().__init__(num_users=num_users, num_items=num_items, activation=activation, **kwargs)
        self.attention = TargetAttention(self.attention_units, activation=activation, name="target_attention")

    def build_pooling(self) -> None:
        size = self.item_encoder.output_size
        self.attention.build((None, self.max_history, size), (None, size))

    def pool_history(self, history_vectors, mask, target_vectors, training=False):
        """Target-attention pooling of the history vectors ``[B, L, D]`` → ``[B, D]``."""
        pooled, _ = self.attention(history_vectors, target_vectors, mask=mask, training=training)
        return pooled

    def attention_weights(self, features, candidates, training=False):
        """Weights ``[B, C, L]`` of each history position for each candidate item index ``[B, C]``."""
        candidates = ops.cast(candidates, "int32")
        history = ops.cast(features["history"], "int32")
        count = ops.shape(candidates)[1]
        history = ops.repeat(history, count, axis=0)
        _, weights = self.attention(self.item_encoder(history), self.item_encoder(ops.reshape(candidates, (-1,))),
                                    mask=ops.not_equal(history, 0), training=training)
        return ops.reshape(ops.cast(weights, "float32"), (ops.shape(candidates)[0], count, ops.shape(history)[1]))

    def get_config(self):
        config = super().get_config()
        config.update({"attention_units": self.attention_units})
        return config
