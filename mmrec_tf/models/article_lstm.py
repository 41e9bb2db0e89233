"""The model of the source article, reproduced as written: LSTMs over one user id and one item id."""

from __future__ import annotations

import keras
from keras import ops

from mmrec_tf.models.ranking_model import RankingModel
from mmrec_tf.model_registration import register_model


@register_model("article_lstm", task="ranking")
@keras.saving.register_keras_serializable(package="mmrec_tf")
class ArticleLSTM(RankingModel):
    """The source article's click model: ``Embedding(128) → LSTM(64)`` for user and item, concatenated, ``Dense(1, sigmoid)``.

    What it computes, plainly: the user id is turned into a sequence of
    **length 1** (one 128-d embedding), an LSTM reads that one step and emits
    64 numbers; the same for the item id; the two 64-d vectors are
    concatenated and a single sigmoid unit gives the click probability,
    trained with binary cross-entropy. An LSTM over one step is a gated
    non-linear map of one embedding — there is no sequence for it to model.
    And because the last layer is linear in the concatenation, the logit is
    ``f(user) + g(item)``: a user bias plus an item bias, with no interaction
    between who the user is and what the item is.

    What it lacks:

    - **no history**: the user's past items never enter the model, so it
      cannot say "this user liked these three films, so this fourth one
      fits"; ``history`` is accepted and ignored (``uses_history = False``);
    - **no content**: titles, genres and user attributes are unused, so a new
      item or user is a zero vector;
    - **no user-item interaction**: see above, the score is additive.

    :class:`~mmrec_tf.models.EmbeddingMLP` adds the history (sum-pooled),
    content features and an MLP over their concatenation;
    :class:`~mmrec_tf.models.DIN` then weights each history item by its
    relevance to the target. Tutorial ``02_from_the_article_to_din`` walks
    that path. The sigmoid is applied by :class:`RankingModel` to this
    model's ``Dense(1)`` logit, which is the same function.

    Example:
    >>> import numpy as np
    >>> model = ArticleLSTM(num_users=3, num_items=5)
    >>> tuple(model({"user_id": np.array([1, 2]), "history": np.zeros((2, 4), "int32"),
    ...              "item_id": np.array([4, 5])}).shape)
    (2,)
    """

    uses_history = False

    def __init__(self, num_users: int, num_items: int, embedding_dim: int = 128, lstm_units: int = 64,
                 task_loss: str = "binary_crossentropy", label_feature: str = "label", **kwargs):
        super().__init__(num_users=num_users, num_items=num_items, task_loss=task_loss,
                         label_feature=label_feature, **kwargs)
        self.embedding_dim = embedding_dim
        self.lstm_units = lstm_units
        self.user_embedding = keras.layers.Embedding(num_users + 1, embedding_dim, name="user_embedding")
        self.item_embedding = keras.layers.Embedding(num_items + 1, embedding_dim, name="item_embedding")
        self.user_lstm = keras.layers.LSTM(lstm_units, name="user_lstm")
        self.item_lstm = keras.layers.LSTM(lstm_units, name="item_lstm")
        self.output_layer = keras.layers.Dense(1, name="logit")

    def build(self, input_shape=None):
        for embedding, lstm in ((self.user_embedding, self.user_lstm), (self.item_embedding, self.item_lstm)):
            embedding.build((None, 1))
            lstm.build((None, 1, self.embedding_dim))
        self.output_layer.build((None, 2 * self.lstm_units))

    def raw_score(self, features, training=False):
        user = ops.reshape(ops.cast(features["user_id"], "int32"), (-1, 1))
        item = ops.reshape(ops.cast(features["item_id"], "int32"), (-1, 1))
        user_state = self.user_lstm(self.user_embedding(user), training=training)
        item_state = self.item_lstm(self.item_embedding(item), training=training)
        return self.output_layer(ops.concatenate([user_state, item_state], axis=-1))

    def get_config(self):
        config = super().get_config()
        config.update({"embedding_dim": self.embedding_dim, "lstm_units": self.lstm_units})
        return config
