"""Attention over an item's modality tokens: among themselves, and from the user's history."""

from __future__ import annotations

import keras
from keras import ops

from mmrec_tf.layers.gated_residual import GatedResidual


@keras.saving.register_keras_serializable(package="mmrec_tf")
class ModalityCrossAttention(keras.layers.Layer):
    """Modality tokens of an item attend to each other; a user query attends to a candidate's tokens.

    Two attention steps, for items described by ``M`` modality tokens
    ``[..., M, D]`` (id, genres, plot, poster, audio, ...) with a presence
    mask ``[..., M]``:

    1. **Modality self-attention** (:meth:`contextualize`): a learned
       modality-type embedding is added to each token, then the tokens of one
       item attend to each other with ``keras.layers.MultiHeadAttention``
       (absent modalities are masked out as keys), and a
       :class:`~mmrec_tf.layers.GatedResidual` merges the result into the
       tokens. A poster token can so be read in the light of the plot.
    2. **User → candidate attention**: a user state (a summary of the user's
       history, from the model's user tower) gives per head a query ``q_h``
       and a value ``u_h``; each candidate modality ``m`` gives a key
       ``k_mh`` and a value ``v_mh``. Modality ``m`` gets the attention
       weight ``a_mh = phi(q_h) . phi(k_mh)`` (``phi(x) = elu(x) + 1 > 0``,
       kernelised attention as in Katharopoulos et al., "Transformers are
       RNNs", ICML 2020; absent modalities get weight 0) and the score is
       ``sum_{m,h} a_mh (u_h . v_mh)``: the user's agreement with each
       modality, weighted by how much the user attends to it.

    Because the kernelised weights are not normalised inside the score, the
    score is a dot product of a user vector, ``phi(q_h) (x) u_h`` per head
    (:meth:`query_vectors`), and a candidate vector,
    ``sum_m phi(k_mh) (x) v_mh`` (:meth:`candidate_vectors`; ``(x)`` is the
    outer product), so a two-tower retrieval model can precompute and index
    item vectors and still let the user attend to each candidate's
    modalities. :meth:`call` computes the same scores directly, with the
    weights normalised over modalities (and averaged over heads) for
    explanations.

    Args:
        num_heads: attention heads of both steps.
        key_dim: per-head query/key size of both steps.
        value_dim: per-head value size of the user → candidate step.
        dropout: attention dropout of the self-attention step.

    Example:
    >>> import numpy as np
    >>> layer = ModalityCrossAttention(num_heads=2, key_dim=4, value_dim=3)
    >>> layer.build(user_state_shape=(None, 6), tokens_shape=(None, None, 3, 8))
    >>> user = np.ones((2, 6), "float32")
    >>> tokens = np.random.default_rng(0).normal(size=(2, 5, 3, 8)).astype("float32")
    >>> present = np.array([[1.0, 1.0, 0.0]] * 5 * 2, "float32").reshape(2, 5, 3)
    >>> scores, weights = layer(user, tokens, present)
    >>> tuple(scores.shape), tuple(weights.shape), float(weights[0, 0, 2])
    ((2, 5), (2, 5, 3), 0.0)
    """

    def __init__(self, num_heads: int = 2, key_dim: int = 8, value_dim: int = 8, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = value_dim
        self.dropout = dropout
        self.self_attention = keras.layers.MultiHeadAttention(num_heads, key_dim, dropout=dropout,
                                                              name="modality_self_attention")
        self.residual = GatedResidual(name="modality_residual")
        self.query = keras.layers.Dense(num_heads * key_dim, name="user_query")
        self.user_value = keras.layers.Dense(num_heads * value_dim, name="user_value")
        self.key = keras.layers.Dense(num_heads * key_dim, name="modality_key")
        self.value = keras.layers.Dense(num_heads * value_dim, name="modality_value")
        self.modality_embedding = None

    @property
    def vector_size(self) -> int:
        """Width of :meth:`query_vectors` and :meth:`candidate_vectors`."""
        return self.num_heads * self.key_dim * self.value_dim

    def build(self, user_state_shape, tokens_shape, present_shape=None):
        num_modalities, dim = tokens_shape[-2], tokens_shape[-1]
        if num_modalities is None or dim is None:
            raise ValueError(f"ModalityCrossAttention needs tokens [..., M, D] with known M and D, got {tokens_shape}")
        self.modality_embedding = self.add_weight(name="modality_type_embedding", shape=(num_modalities, dim),
                                                  initializer="zeros")
        self.self_attention.build((None, num_modalities, dim), (None, num_modalities, dim))
        self.residual.build((None, num_modalities, dim))
        self.key.build((None, dim))
        self.value.build((None, dim))
        self.query.build((None, user_state_shape[-1]))
        self.user_value.build((None, user_state_shape[-1]))

    def contextualize(self, tokens, present, training=False):
        """Tokens ``[..., M, D]`` after self-attention among an item's present modalities."""
        num_modalities, dim = tokens.shape[-2], tokens.shape[-1]
        leading = ops.shape(tokens)[:-2]
        flat = ops.reshape(tokens + ops.cast(self.modality_embedding, tokens.dtype), (-1, num_modalities, dim))
        keys_present = ops.reshape(ops.cast(present, "bool"), (-1, 1, num_modalities))
        mask = ops.broadcast_to(keys_present, (ops.shape(flat)[0], num_modalities, num_modalities))
        attended = self.self_attention(flat, flat, attention_mask=mask, training=training)
        return ops.reshape(self.residual(flat, attended), (*leading, num_modalities, dim))

    def _keys_values(self, context, present):
        heads = (self.num_heads, self.key_dim)
        keys = _positive(ops.reshape(self.key(context), (*ops.shape(context)[:-1], *heads)))
        keys = keys * ops.cast(present, keys.dtype)[..., None, None]
        values = ops.reshape(self.value(context), (*ops.shape(context)[:-1], self.num_heads, self.value_dim))
        return keys, values

    def _queries_values(self, user_state):
        queries = _positive(ops.reshape(self.query(user_state), (-1, self.num_heads, self.key_dim)))
        values = ops.reshape(self.user_value(user_state), (-1, self.num_heads, self.value_dim))
        return queries, values

    def candidate_vectors(self, context, present):
        """``sum_m phi(k_mh) (x) v_mh`` flattened: ``[..., H * key_dim * value_dim]`` (contextualised tokens in)."""
        keys, values = self._keys_values(context, present)
        outer = ops.einsum("...mhk,...mhv->...hkv", keys, values)
        return ops.reshape(outer, (*ops.shape(context)[:-2], self.vector_size))

    def query_vectors(self, user_state):
        """``phi(q_h) (x) u_h`` flattened: ``[B, H * key_dim * value_dim]``."""
        queries, values = self._queries_values(user_state)
        return ops.reshape(ops.einsum("bhk,bhv->bhkv", queries, values), (-1, self.vector_size))

    def call(self, user_state, tokens, present, training=False):
        """Scores ``[B, C]`` of candidates ``tokens [B, C, M, D]`` and modality weights ``[B, C, M]``."""
        context = self.contextualize(tokens, present, training=training)
        keys, values = self._keys_values(context, present)
        queries, user_values = self._queries_values(user_state)
        attention = ops.einsum("bhk,bcmhk->bcmh", queries, keys)
        agreement = ops.einsum("bhv,bcmhv->bcmh", user_values, values)
        scores = ops.sum(attention * agreement, axis=(-2, -1))
        total = ops.sum(attention, axis=-2, keepdims=True)
        weights = ops.mean(attention / ops.maximum(total, 1e-12), axis=-1)
        return scores, weights

    def compute_output_shape(self, user_state_shape, tokens_shape, present_shape=None):
        return tuple(tokens_shape[:-2]), tuple(tokens_shape[:-1])

    def get_config(self):
        config = super().get_config()
        config.update({"num_heads": self.num_heads, "key_dim": self.key_dim, "value_dim": self.value_dim,
                       "dropout": self.dropout})
        return config


def _positive(x):
    """The feature map ``elu(x) + 1`` of kernelised attention: positive, so weights are never negative."""
    return ops.elu(x) + 1.0
