"""The TFRS basic-retrieval model: a user id embedding and an item id embedding."""

from __future__ import annotations

import keras
from keras import ops

from mmrec_tf.models.retrieval_model import RetrievalModel
from mmrec_tf.model_registration import register_model


@register_model("two_tower", task="retrieval")
@keras.saving.register_keras_serializable(package="mmrec_tf")
class TwoTower(RetrievalModel):
    """User-id and item-id embeddings scored by their dot product (matrix factorisation).

    The model of the TFRS "basic retrieval" tutorial, trained with in-batch
    softmax. It ignores histories and item features: the baseline the sequence
    and multimodal models must beat.

    Example:
    >>> import numpy as np
    >>> model = TwoTower(num_users=5, num_items=7, embedding_dim=4)
    >>> out = model({"user_id": np.array([1, 2]), "history": np.zeros((2, 3), "int32"),
    ...              "item_id": np.array([3, 0])})
    >>> tuple(out["user_embedding"].shape), tuple(out["item_embedding"].shape)
    ((2, 4), (2, 4))
    """

    grows_in_place = True

    def __init__(self, num_users: int, num_items: int, embedding_dim: int = 32, **kwargs):
        super().__init__(num_users=num_users, num_items=num_items, **kwargs)
        self.embedding_dim = embedding_dim
        self.user_embedding = keras.layers.Embedding(num_users + 1, embedding_dim, name="user_embedding")
        self.item_embedding = keras.layers.Embedding(num_items + 1, embedding_dim, name="item_embedding")

    def build(self, input_shape=None):
        self.user_embedding.build((None,))
        self.item_embedding.build((None,))

    def encode_users(self, features, training=False):
        return self.user_embedding(ops.cast(features["user_id"], "int32"))

    def encode_items(self, item_index, training=False):
        return self.item_embedding(ops.cast(item_index, "int32"))

    def item_table(self):
        """The item embedding variable (row ``i`` = item index ``i``) when lookups return it unchanged (float32).

        Example:
        >>> model = TwoTower(num_users=5, num_items=7, embedding_dim=4)
        >>> model.build()
        >>> tuple(model.item_table().shape)
        (8, 4)
        """
        if not self.item_embedding.built:
            self.build()
        embedding = self.item_embedding
        if embedding.compute_dtype != "float32" or embedding.embeddings.dtype != "float32":
            return None
        return embedding.embeddings

    def get_config(self):
        return {**super().get_config(), "embedding_dim": self.embedding_dim}
