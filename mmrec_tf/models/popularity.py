"""Most-popular baseline."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from mmrec_tf.models.retrieval_model import RetrievalModel
from mmrec_tf.model_registration import register_model


@register_model("popularity", task="retrieval")
@keras.saving.register_keras_serializable(package="mmrec_tf")
class Popularity(RetrievalModel):
    """Scores every item by log(1 + its number of training interactions), for every user.

    A one-dimensional two-tower model (user vector ``[1]``, item vector
    ``[log1p(count)]``), so it evaluates and exports like the others. It has no
    trainable weights: :meth:`prepare` counts the training targets.

    Example:
    >>> import numpy as np
    >>> from mmrec_tf.data.pipeline import Examples
    >>> model = Popularity(num_users=2, num_items=3)
    >>> model.prepare(Examples(np.array([1, 2]), np.array([3, 3]), np.zeros((2, 1), "int32"), {}))
    >>> [round(float(v), 3) for v in model.all_item_embeddings()[:, 0]]
    [0.0, 0.0, 1.099]
    """

    def build(self, input_shape=None):
        self.log_counts = self.add_weight(name="log_counts", shape=(self.num_items + 1, 1),
                                          initializer="zeros", trainable=False)

    def prepare(self, train_examples) -> None:
        """Count each item's training interactions."""
        super().prepare(train_examples)
        if not self.built:
            self.build()
        counts = np.bincount(train_examples.item_id, minlength=self.num_items + 1)[: self.num_items + 1]
        counts[0] = 0
        self.log_counts.assign(np.log1p(counts).astype("float32")[:, None])

    def encode_users(self, features, training=False):
        return ops.ones((ops.shape(features["user_id"])[0], 1), dtype=self.compute_dtype)

    def encode_items(self, item_index, training=False):
        if not self.built:
            self.build()
        return ops.take(self.log_counts, ops.cast(item_index, "int32"), axis=0)
