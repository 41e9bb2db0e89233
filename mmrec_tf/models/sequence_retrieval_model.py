"""Base class of the retrieval models whose user tower reads the history through the shared item tower."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from mmrec_tf.layers.history import most_recent_history
from mmrec_tf.layers.item_feature_encoder import ItemFeatureEncoder
from mmrec_tf.models.retrieval_model import RetrievalModel, with_item_tables


class SequenceRetrievalModel(RetrievalModel):
    """A retrieval model with one :class:`~mmrec_tf.layers.ItemFeatureEncoder` for targets and history items.

    It owns what ``lstm_two_tower`` and ``sasrec`` share: the item tower (item
    id embedding plus the item's feature tables, projected to
    ``embedding_dim``), ``max_history``, ``dropout``, the optional L2
    normalisation of both towers, ``from_feature_space`` over the space's
    tables and the shared part of ``get_config``. Subclasses add the sequence
    encoder and ``encode_users``, reading history items through
    :meth:`item_vectors`.

    Items without interactions: with ``zero_untrained_ids`` an item that has
    no training interaction (:meth:`prepare` records which have one: a
    cold-start item, or one added after training) is encoded from its
    content alone, its id embedding hidden, instead of from a random id
    vector nothing trained. With ``id_dropout`` every item occurrence in
    training (target, history item, catalog row) hides its id with that
    probability, so the tower learns to place items by their content alone;
    without it a content-only vector lies where no user vector points (a
    model that must recommend new items from their features needs both).

    Example:
    >>> from mmrec_tf.models import LSTMTwoTower, SASRec
    >>> issubclass(LSTMTwoTower, SequenceRetrievalModel), issubclass(SASRec, SequenceRetrievalModel)
    (True, True)
    """

    uses_history = True

    def __init__(self, num_users: int, num_items: int, item_feature_specs: dict | None = None,
                 embedding_dim: int = 64, max_history: int = 50, dropout: float = 0.0, normalize: bool = True,
                 id_dropout: float = 0.0, zero_untrained_ids: bool = False, **kwargs):
        super().__init__(num_users=num_users, num_items=num_items, **kwargs)
        if not 0.0 <= id_dropout < 1.0:
            raise ValueError(f"id_dropout must be in [0, 1), got {id_dropout!r}")
        self.item_feature_specs = dict(item_feature_specs or {})
        self.embedding_dim = embedding_dim
        self.max_history = max_history
        self.dropout = dropout
        self.normalize = normalize
        self.id_dropout = float(id_dropout)
        self.zero_untrained_ids = bool(zero_untrained_ids)
        self.item_encoder = ItemFeatureEncoder(num_items, embedding_dim, output_dim=embedding_dim,
                                               feature_specs=self.item_feature_specs, name="item_encoder")
        # made after the item encoder (which draws its initial weights' seeds): the order sasrec's earlier id
        # dropout layer had, so a seed gives the same initial weights as before
        self.id_dropout_seed_generator = (keras.random.SeedGenerator(name="id_dropout_seed_generator")
                                          if id_dropout > 0 else None)

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
        if self.zero_untrained_ids and not hasattr(self, "item_trained"):
            self.item_trained = self.add_weight(name="item_trained", shape=(self.num_items + 1,), initializer="ones",
                                                trainable=False)

    def prepare(self, train_examples) -> None:
        """Target frequencies for logQ; with ``zero_untrained_ids`` which items the examples train (targets, histories)."""
        super().prepare(train_examples)
        if self.zero_untrained_ids:
            self.record_trained_items(np.concatenate([np.asarray(train_examples.item_id).ravel(),
                                                      np.asarray(train_examples.history).ravel()]))

    def record_trained_items(self, item_indices: np.ndarray) -> None:
        """Mark ``item_indices`` (any shape, 0 = padding) as the items with training interactions, the rest untrained.

        Rows after the catalog (the spare rows an update grows into) stay untrained.
        """
        if not self.built:
            self.build()
        trained = np.zeros(self.item_trained.shape[0], "float32")
        seen = np.asarray(item_indices, np.int64).ravel()
        trained[np.unique(seen[(seen > 0) & (seen < len(trained))])] = 1.0
        self.item_trained.assign(trained)

    def recent_history(self, history):
        """The ``max_history`` most recent items of a ``[B, L]`` index history of any ``L``, 0-padded at the end.

        What the export's signatures keep of a request's history, so a model
        given longer histories in training (data prepared with a larger
        ``max_history``) reads the same items there as in serving.
        """
        return most_recent_history(history, self.max_history)

    def item_vectors(self, item_index, training=False):
        """The item tower's vectors of ``item_index`` (any shape), ids hidden where untrained or dropped (class doc)."""
        scale = None
        if self.zero_untrained_ids:
            scale = ops.take(self.item_trained, ops.cast(item_index, "int32"), axis=0)
        if self.id_dropout_seed_generator is not None and training:
            draws = keras.random.uniform(ops.shape(item_index), seed=self.id_dropout_seed_generator)
            keep = ops.cast(ops.greater_equal(draws, self.id_dropout), "float32")
            scale = keep if scale is None else scale * keep
        return self.item_encoder(item_index, id_scale=scale)

    def _finish(self, vectors):
        """L2-normalise in float32: under mixed_float16 a zero vector would otherwise become NaN."""
        return ops.normalize(ops.cast(vectors, "float32"), axis=-1) if self.normalize else vectors

    def encode_items(self, item_index, training=False):
        return self._finish(self.item_vectors(item_index, training=training))

    def get_config(self):
        config = super().get_config()
        config.update({"item_feature_specs": self.item_feature_specs, "embedding_dim": self.embedding_dim,
                       "max_history": self.max_history, "dropout": self.dropout, "normalize": self.normalize,
                       "id_dropout": self.id_dropout, "zero_untrained_ids": self.zero_untrained_ids})
        return config
