"""Two-tower retrieval with concatenation fusion of per-modality item projections."""

from __future__ import annotations

import keras
from keras import ops

from mmrec_tf.models.multimodal_retrieval_model import MultimodalRetrievalModel, apply_stack, build_stack, dense_stack
from mmrec_tf.model_registration import register_model


@register_model("concat_fusion", task="retrieval")
@keras.saving.register_keras_serializable(package="mmrec_tf")
class ConcatFusion(MultimodalRetrievalModel):
    """Per-modality projections (id, categorical, text, image, audio) concatenated, then an MLP.

    The fusion of the source article: each modality is projected on its own
    to ``embedding_dim`` values, the projections are concatenated and an MLP
    (``hidden_units``, then ``embedding_dim``) maps them to the item vector,
    ``e_i = MLP([e_id; e_genres; e_plot; e_poster; ...])``. A missing
    modality enters as its learned "missing" token, an item never trained on
    with a zero id token (see
    :class:`~mmrec_tf.models.multimodal_retrieval_model.MultimodalRetrievalModel`,
    which also describes the modality dropout and the user tower). The user
    tower fuses the same way over the history: the history items' fused
    vectors (mean and most recent) with the user id, through an MLP. With
    ``normalize`` both vectors are L2-normalised and trained with in-batch
    softmax at ``temperature``, logQ correction and accidental-hit removal.

    Example:
    >>> import numpy as np
    >>> specs = {"genres": {"kind": "multi_categorical", "shape": [3], "cardinality": 3}}
    >>> model = ConcatFusion(num_users=4, num_items=6, item_feature_specs=specs, embedding_dim=8,
    ...                      hidden_units=[16], max_history=3)
    >>> model.item_encoder.set_tables({"genres": np.eye(7, 3, dtype="float32")})
    >>> out = model({"user_id": np.array([1, 0]), "history": np.array([[1, 2, 0], [0, 0, 0]]),
    ...              "item_id": np.array([3, 4])})
    >>> tuple(out["user_embedding"].shape), tuple(out["item_embedding"].shape)
    ((2, 8), (2, 8))
    """

    def __init__(self, num_users: int, num_items: int, **kwargs):
        super().__init__(num_users=num_users, num_items=num_items, **kwargs)
        self.item_mlp = dense_stack(self.hidden_units, self.embedding_dim, "item_mlp")

    def _build_fusion(self) -> int:
        build_stack(self.item_mlp, self.num_modalities * self.embedding_dim)
        return self.embedding_dim

    def _fuse_items(self, tokens, present, training=False) -> dict:
        flat = ops.reshape(tokens, (*ops.shape(tokens)[:-2], self.num_modalities * self.embedding_dim))
        fused = apply_stack(self.item_mlp, flat)
        return {"fused": fused, "vector": fused}

    def _user_vector(self, user_state):
        return user_state
