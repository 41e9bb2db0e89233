"""Two-tower retrieval whose item modalities attend to each other and to the user."""

from __future__ import annotations

import keras
from keras import ops

from mmrec_tf.layers.modality_cross_attention import ModalityCrossAttention
from mmrec_tf.models.multimodal_retrieval_model import MultimodalRetrievalModel, apply_stack, build_stack, dense_stack
from mmrec_tf.model_registration import register_model


@register_model("cross_attention_fusion", task="retrieval")
@keras.saving.register_keras_serializable(package="mmrec_tf")
class CrossAttentionFusion(MultimodalRetrievalModel):
    """Modality tokens attend to each other and the user's history attends to the candidate's modalities.

    Item tower: the per-modality tokens (see
    :class:`~mmrec_tf.models.multimodal_retrieval_model.MultimodalRetrievalModel`)
    get a modality-type embedding and attend to each other
    (``keras.layers.MultiHeadAttention``, absent modalities masked, merged by
    a :class:`~mmrec_tf.layers.GatedResidual`); the contextualised tokens
    are (a) concatenated and fused by an MLP into ``e_i`` as in
    ``concat_fusion`` and (b) turned into per-modality attention keys and
    values (:class:`~mmrec_tf.layers.ModalityCrossAttention`).

    User tower: the history's fused item vectors (mean and most recent) and
    the user id through an MLP give the user state ``s_u``, which is the
    query that attends to a candidate's modality tokens.

    Score: ``s_u . e_i + sum_{m,h} a_mh(u, i) (u_h . v_mh)`` where
    ``a_mh = phi(q_h) . phi(k_mh)`` is how much the user attends to the
    candidate's modality ``m`` in head ``h``. Kernelised attention keeps
    this a dot product of ``[s_u; phi(q) (x) u]`` and
    ``[e_i; sum_m phi(k_m) (x) v_m]``, so items are indexed for retrieval
    like any two-tower model; :meth:`modality_attention` gives the weights
    ``a`` normalised over modalities, per user and candidate, for
    explanations (absent modalities get 0). With ``normalize`` both vectors
    are L2-normalised (a cosine at ``temperature``).

    Args (beyond the base class's): ``num_heads``, ``key_dim``,
    ``value_dim`` of the attention, ``attention_dropout``.

    Example:
    >>> import numpy as np
    >>> specs = {"genres": {"kind": "multi_categorical", "shape": [3], "cardinality": 3}}
    >>> model = CrossAttentionFusion(num_users=4, num_items=6, item_feature_specs=specs, embedding_dim=8,
    ...                              hidden_units=[16], max_history=3, num_heads=2, key_dim=4, value_dim=4)
    >>> model.item_encoder.set_tables({"genres": np.eye(7, 3, dtype="float32")})
    >>> features = {"user_id": np.array([1, 2]), "history": np.array([[1, 2, 0], [3, 0, 0]])}
    >>> weights = model.modality_attention(features, np.array([[4, 5], [6, 1]]))
    >>> tuple(weights.shape), model.modality_names
    ((2, 2, 2), ['item_id', 'genres'])
    """

    def __init__(self, num_users: int, num_items: int, num_heads: int = 2, key_dim: int = 8, value_dim: int = 8,
                 attention_dropout: float = 0.0, **kwargs):
        super().__init__(num_users=num_users, num_items=num_items, **kwargs)
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = value_dim
        self.attention_dropout = attention_dropout
        self.cross_attention = ModalityCrossAttention(num_heads, key_dim, value_dim, dropout=attention_dropout,
                                                      name="modality_cross_attention")
        self.item_mlp = dense_stack(self.hidden_units, self.embedding_dim, "item_mlp")

    def _build_fusion(self) -> int:
        self.cross_attention.build(user_state_shape=(None, self.embedding_dim),
                                   tokens_shape=(None, self.num_modalities, self.embedding_dim))
        build_stack(self.item_mlp, self.num_modalities * self.embedding_dim)
        return self.embedding_dim

    def _fuse_items(self, tokens, present, training=False) -> dict:
        context = self.cross_attention.contextualize(tokens, present, training=training)
        flat = ops.reshape(context, (*ops.shape(context)[:-2], self.num_modalities * self.embedding_dim))
        fused = apply_stack(self.item_mlp, flat)
        attention = self.cross_attention.candidate_vectors(context, present)
        return {"fused": fused, "vector": ops.concatenate([fused, attention], axis=-1)}

    def _user_vector(self, user_state):
        return ops.concatenate([user_state, self.cross_attention.query_vectors(user_state)], axis=-1)

    def modality_attention(self, features, candidates):
        """Per-modality attention weights ``[B, C, M]`` of each user on each candidate (sum 1 over present ones).

        ``features`` holds ``user_id`` [B] and ``history`` [B, L] (indices),
        ``candidates`` item indices ``[B, C]``; modality ``m`` is
        ``self.modality_names[m]``.
        """
        state = self.user_state(features)
        tokens, present = self.modality_tokens(candidates)
        return self.cross_attention(state, tokens, present)[1]

    def get_config(self):
        config = super().get_config()
        config.update({"num_heads": self.num_heads, "key_dim": self.key_dim, "value_dim": self.value_dim,
                       "attention_dropout": self.attention_dropout})
        return config
