"""Base class of the retrieval models whose user tower reads the history through the shared item tower."""

from __future__ import annotations

from keras import ops

from mmrec_tf.layers.item_feature_encoder import ItemFeatureEncoder
from mmrec_tf.models.retrieval_model import RetrievalModel, with_item_tables


class SequenceRetrievalModel(RetrievalModel):
    """A retrieval model with one :class:`~mmrec_tf.layers.ItemFeatureEncoder` for targets and history items.

    It owns what ``lstm_two_tower`` and ``sasrec`` share: the item tower (item
    id embedding plus the item's feature tables, projected to
    ``embedding_dim``), ``max_history``, ``dropout``, the optional L2
    normalisation of both towers, ``from_feature_space`` over the space's
    tables and the shared part of ``get_config``. Subclasses add the sequence
    encoder and ``encode_users``.

    Example:
    >>> from mmrec_tf.models import LSTMTwoTower, SASRec
    >>> issubclass(LSTMTwoTower, SequenceRetrievalModel), issubclass(SASRec, SequenceRetrievalModel)
    (True, True)
    """

    uses_history = True

    def __init__(self, num_users: int, num_items: int, item_feature_specs: dict | None = None,
                 embedding_dim: int = 64, max_history: int = 50, dropout: float = 0.0, normalize: bool = True,
                 **kwargs):
        super().__init__(num_users=num_users, num_items=num_items, **kwargs)
        self.item_feature_specs = dict(item_feature_specs or {})
        self.embedding_dim = embedding_dim
        self.max_history = max_history
        self.dropout = dropout
        self.normalize = normalize
        self.item_encoder = ItemFeatureEncoder(num_items, embedding_dim, output_dim=embedding_dim,
                                               feature_specs=self.item_feature_specs, name="item_encoder")

    @classmethod
    def from_feature_space(cls, space, item_features: list[str] | None = None, **kwargs):
        """Build for a feature space; ``item_features`` names the item tables to use (default: all).

        Any table kind works, precomputed ``vector`` features (poster, plot,
        audio vectors with their presence masks) included.
        """
        return with_item_tables(cls, space, item_features, **kwargs)

    def build(self, input_shape=None):
        if not self.item_encoder.built:
            self.item_encoder.build()

    def _finish(self, vectors):
        """L2-normalise in float32: under mixed_float16 a zero vector would otherwise become NaN."""
        return ops.normalize(ops.cast(vectors, "float32"), axis=-1) if self.normalize else vectors

    def encode_items(self, item_index, training=False):
        return self._finish(self.item_encoder(item_index))

    def get_config(self):
        config = super().get_config()
        config.update({"item_feature_specs": self.item_feature_specs, "embedding_dim": self.embedding_dim,
                       "max_history": self.max_history, "dropout": self.dropout, "normalize": self.normalize})
        return config
