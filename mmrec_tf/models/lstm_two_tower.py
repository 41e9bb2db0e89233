"""Two-tower retrieval whose user tower runs an LSTM over the user's history."""

from __future__ import annotations

import keras
from keras import ops

from mmrec_tf.models.sequence_retrieval_model import SequenceRetrievalModel
from mmrec_tf.model_registration import register_model


@register_model("lstm_two_tower", task="retrieval")
@keras.saving.register_keras_serializable(package="mmrec_tf")
class LSTMTwoTower(SequenceRetrievalModel):
    """User history through an LSTM, scored against items encoded from id and content.

    Item tower: :class:`~mmrec_tf.layers.ItemFeatureEncoder` — item id
    embedding plus the item's feature tables (on MovieLens: genres and title
    tokens) projected to ``embedding_dim``. User tower: the same item tower
    applied to each history item (shared weights), an LSTM over that sequence
    (padding masked), concatenated with a user id embedding and projected to
    ``embedding_dim``. With ``normalize`` both towers' outputs are L2-normalised
    and scores are cosine similarities divided by ``temperature``. Trained as
    next-item prediction (the target is the interaction after the history),
    in the spirit of GRU4Rec (Hidasi et al., ICLR 2016) with in-batch softmax.
    ``id_dropout`` and ``zero_untrained_ids`` let it recommend items that
    have no interactions yet from their features (see
    :class:`~mmrec_tf.models.SequenceRetrievalModel`).

    Example:
    >>> import numpy as np
    >>> model = LSTMTwoTower(num_users=5, num_items=7, embedding_dim=8, lstm_units=8, max_history=4)
    >>> out = model({"user_id": np.array([1, 0]), "history": np.array([[1, 2, 0, 0], [0, 0, 0, 0]]),
    ...              "item_id": np.array([3, 4])})
    >>> tuple(out["user_embedding"].shape)
    (2, 8)
    """

    grows_in_place = True

    def __init__(self, num_users: int, num_items: int, item_feature_specs: dict | None = None,
                 embedding_dim: int = 64, lstm_units: int = 64, max_history: int = 50,
                 use_user_id: bool = True, dropout: float = 0.0, normalize: bool = True,
                 temperature: float | None = 0.1, logq_correction: bool = True,
                 remove_accidental_hits: bool = True, id_dropout: float = 0.0, zero_untrained_ids: bool = False,
                 **kwargs):
        super().__init__(num_users=num_users, num_items=num_items, item_feature_specs=item_feature_specs,
                         embedding_dim=embedding_dim, max_history=max_history, dropout=dropout,
                         normalize=normalize, id_dropout=id_dropout, zero_untrained_ids=zero_untrained_ids,
                         temperature=temperature, logq_correction=logq_correction,
                         remove_accidental_hits=remove_accidental_hits, **kwargs)
        self.lstm_units = lstm_units
        self.use_user_id = use_user_id
        self.lstm = keras.layers.LSTM(lstm_units, name="history_lstm")
        self.history_dropout = keras.layers.Dropout(dropout, name="history_dropout")
        self.user_id_embedding = (keras.layers.Embedding(num_users + 1, embedding_dim, name="user_id_embedding")
                                  if use_user_id else None)
        self.user_projection = keras.layers.Dense(embedding_dim, name="user_projection")

    def build(self, input_shape=None):
        super().build(input_shape)
        self.lstm.build((None, self.max_history, self.embedding_dim))
        if self.user_id_embedding is not None:
            self.user_id_embedding.build((None,))
        self.user_projection.build((None, self.lstm_units + self.embedding_dim * int(self.use_user_id)))

    def encode_users(self, features, training=False):
        history = self.recent_history(features["history"])
        sequence = self.history_dropout(self.item_vectors(history, training=training), training=training)
        parts = [self.lstm(sequence, mask=ops.not_equal(history, 0), training=training)]
        if self.user_id_embedding is not None:
            user = ops.cast(features["user_id"], "int32")
            known = ops.expand_dims(ops.cast(ops.not_equal(user, 0), self.compute_dtype), -1)
            parts.append(self.user_id_embedding(user) * known)
        return self._finish(self.user_projection(ops.concatenate(parts, axis=-1)))

    def get_config(self):
        config = super().get_config()
        config.update({"lstm_units": self.lstm_units, "use_user_id": self.use_user_id})
        return config
