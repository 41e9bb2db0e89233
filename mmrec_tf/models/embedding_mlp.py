"""Embedding & MLP: the DIN paper's BaseModel, the baseline target attention must beat."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from mmrec_tf.layers.dice import activation_layer
from mmrec_tf.layers.item_feature_encoder import ItemFeatureEncoder
from mmrec_tf.models.ranking_model import RankingModel
from mmrec_tf.model_registration import register_model


def _select_specs(available: dict, names: list[str] | None, role: str) -> dict:
    chosen = list(available) if names is None else list(names)
    unknown = [n for n in chosen if n not in available]
    if unknown:
        raise ValueError(f"{role}_features {unknown} are not in the feature space; it has {sorted(available)}")
    return {n: available[n] for n in chosen}


@register_model("embedding_mlp", task="ranking")
@keras.saving.register_keras_serializable(package="mmrec_tf")
class EmbeddingMLP(RankingModel):
    """Embeddings, sum-pooled history, target and user features concatenated, then an MLP.

    The Base Model of Zhou et al., "Deep Interest Network for Click-Through
    Rate Prediction" (KDD 2018, sec. 4.2). Items (the target and every history
    item, shared weights) are encoded by
    :class:`~mmrec_tf.layers.ItemFeatureEncoder` as the concatenation of an id
    embedding and one ``embedding_dim`` vector per item feature table (on
    MovieLens: genres, title words, year); users likewise from an id embedding
    and their feature tables (age, gender, occupation). The history's vectors
    are summed (padding masked), so the user's interest is one fixed vector
    whatever the target is — the limitation DIN's target attention removes.
    ``[user, pooled history, target]`` go through ``hidden_units`` dense layers
    with PReLU or Dice activations to one logit.

    ``rating_levels`` (default 0: off) makes the behaviours rating-aware:
    each history position's rating ``1..rating_levels`` (the
    ``history_rating`` feature, aligned with ``history``, 0 at padding; see
    :func:`~mmrec_tf.data.labels.build_rating_examples` with
    ``history="rated"``) is embedded into a vector of the item vectors' size
    and added to that behaviour's item vector, so a history can hold disliked
    movies too and say so. Sum pooling then only adds up the rating vectors
    (how the user rates on average); target attention can weigh how the user
    rated the movies like the target.

    ``embedding_l2`` turns on the paper's mini-batch aware regularization
    (sec. 5.1) of the user and item id embeddings, in its exact
    per-occurrence form: each batch adds ``embedding_l2 * ||w_j||^2 / n_j``
    for every id ``j`` it looks up (targets, history items, users), ``n_j``
    being how often ``j`` occurs in the training examples (counted by
    :meth:`prepare`). Over an epoch every id row is penalised by
    ``embedding_l2 * ||w_j||^2`` however rare it is, and a batch only
    computes the rows it uses.

    Example:
    >>> import numpy as np
    >>> model = EmbeddingMLP(num_users=3, num_items=5, embedding_dim=4, hidden_units=(8,), max_history=2)
    >>> probability = model({"user_id": np.array([1, 2]), "history": np.array([[1, 2], [3, 0]]),
    ...                      "item_id": np.array([4, 5])})
    >>> tuple(probability.shape), bool(((probability > 0) & (probability < 1)).numpy().all())
    ((2,), True)
    >>> rated = EmbeddingMLP(num_users=3, num_items=5, embedding_dim=4, hidden_units=(8,), max_history=2,
    ...                      rating_levels=5)
    >>> features = {"user_id": np.array([1]), "history": np.array([[1, 2]]), "item_id": np.array([4])}
    >>> liked = rated({**features, "history_rating": np.array([[5, 5]])})
    >>> disliked = rated({**features, "history_rating": np.array([[1, 1]])})
    >>> bool(liked.numpy()[0] != disliked.numpy()[0])
    True
    """

    def __init__(self, num_users: int, num_items: int, item_feature_specs: dict | None = None,
                 user_feature_specs: dict | None = None, embedding_dim: int = 16,
                 hidden_units: tuple[int, ...] | list[int] = (200, 80), activation: str = "prelu",
                 dropout: float = 0.0, max_history: int = 50, use_user_id: bool = True, embedding_l2: float = 0.0,
                 rating_levels: int = 0, task_loss: str = "binary_crossentropy", label_feature: str = "label",
                 **kwargs):
        super().__init__(num_users=num_users, num_items=num_items, task_loss=task_loss,
                         label_feature=label_feature, **kwargs)
        if max_history < 1:
            raise ValueError(f"max_history must be at least 1, got {max_history}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if embedding_l2 < 0:
            raise ValueError(f"embedding_l2 must be >= 0, got {embedding_l2}")
        if isinstance(rating_levels, bool) or int(rating_levels) != rating_levels or rating_levels < 0:
            raise ValueError(f"rating_levels must be a whole number >= 0, got {rating_levels!r}")
        self.item_feature_specs = dict(item_feature_specs or {})
        self.user_feature_specs = dict(user_feature_specs or {})
        self.embedding_dim = embedding_dim
        self.hidden_units = [int(u) for u in hidden_units]
        self.activation = activation
        self.dropout = dropout
        self.max_history = max_history
        self.use_user_id = use_user_id
        self.embedding_l2 = embedding_l2
        self.rating_levels = int(rating_levels)
        self.item_encoder = ItemFeatureEncoder(num_items, embedding_dim, feature_specs=self.item_feature_specs,
                                               name="item_encoder")
        self.rating_embedding = (keras.layers.Embedding(self.rating_levels + 1, self.item_encoder.output_size,
                                                        name="history_rating_embedding")
                                 if self.rating_levels else None)
        self.user_encoder = (ItemFeatureEncoder(num_users, embedding_dim, feature_specs=self.user_feature_specs,
                                                use_id=use_user_id, name="user_encoder")
                             if use_user_id or self.user_feature_specs else None)
        self.hidden_layers = [keras.layers.Dense(u, name=f"mlp_dense_{i}") for i, u in enumerate(self.hidden_units)]
        self.hidden_activations = [activation_layer(activation, name=f"mlp_{activation}_{i}")
                                   for i in range(len(self.hidden_units))]
        self.hidden_dropout = keras.layers.Dropout(dropout, name="mlp_dropout")
        self.output_layer = keras.layers.Dense(1, name="logit")

    @classmethod
    def from_feature_space(cls, space, item_features: list[str] | None = None,
                           user_features: list[str] | None = None, **kwargs):
        """Build for a feature space; ``item_features`` / ``user_features`` name the tables to use (default: all)."""
        item_specs = _select_specs(space.item_feature_specs(), item_features, "item")
        user_specs = _select_specs(space.user_feature_specs(), user_features, "user")
        model = cls(num_users=space.num_users, num_items=space.num_items, item_feature_specs=item_specs,
                    user_feature_specs=user_specs, **kwargs)
        model.item_encoder.set_tables({n: space.item_features[n] for n in item_specs})
        if model.user_encoder is not None:
            model.user_encoder.set_tables({n: space.user_features[n] for n in user_specs})
        return model

    def build(self, input_shape=None):
        for encoder in (self.item_encoder, self.user_encoder):
            if encoder is not None and not encoder.built:
                encoder.build()
        if self.rating_embedding is not None:
            self.rating_embedding.build((None, self.max_history))
        self.build_pooling()
        width = self.mlp_input_size()
        for dense, activation in zip(self.hidden_layers, self.hidden_activations):
            dense.build((None, width))
            activation.build((None, dense.units))
            width = dense.units
        self.output_layer.build((None, width))
        if self.embedding_l2:
            self.item_frequency = self.add_weight(name="item_frequency", shape=(self.num_items + 1,),
                                                  initializer="ones", trainable=False)
            if self.use_user_id:
                self.user_frequency = self.add_weight(name="user_frequency", shape=(self.num_users + 1,),
                                                      initializer="ones", trainable=False)

    def check_examples(self, examples) -> None:
        """Also check the ``history_rating`` feature of a rating-aware model (aligned, ``0..rating_levels``)."""
        super().check_examples(examples)
        if not self.rating_levels:
            return
        ratings = examples.extras.get("history_rating")
        if ratings is None:
            raise ValueError(f"{type(self).__name__}: rating_levels={self.rating_levels} needs the examples' "
                             f"'history_rating' field (they have {sorted(examples.extras)}); build them with "
                             "build_rating_examples(..., history='rated')")
        ratings = np.asarray(ratings)
        if ratings.shape != examples.history.shape:
            raise ValueError(f"{type(self).__name__}: history_rating has shape {ratings.shape}, history "
                             f"{examples.history.shape}; they must be aligned")
        if ((ratings < 0) | (ratings > self.rating_levels)).any() or ((ratings == 0) != (examples.history == 0)).any():
            raise ValueError(f"{type(self).__name__}: history_rating must be 1..{self.rating_levels} at every "
                             "history item and 0 at padding")

    def prepare(self, train_examples) -> None:
        """Check the training examples; with ``embedding_l2``, count how often each id occurs in them."""
        super().prepare(train_examples)
        if not self.embedding_l2:
            return
        if not self.built:
            self.build()
        items = np.concatenate([train_examples.item_id.ravel(), train_examples.history.ravel()])
        self.item_frequency.assign(np.maximum(np.bincount(items, minlength=self.num_items + 1), 1).astype("float32"))
        if self.use_user_id:
            users = np.bincount(train_examples.user_id, minlength=self.num_users + 1)
            self.user_frequency.assign(np.maximum(users, 1).astype("float32"))

    def regularization(self, features):
        """Mini-batch aware L2 of the id embeddings this batch looks up (``None`` without ``embedding_l2``)."""
        if not self.embedding_l2:
            return None
        items = ops.concatenate([ops.reshape(ops.cast(features["item_id"], "int32"), (-1,)),
                                 ops.reshape(ops.cast(features["history"], "int32"), (-1,))])
        lookups = [(items, self.item_encoder.id_embedding.embeddings, self.item_frequency)]
        if self.use_user_id:
            users = ops.reshape(ops.cast(features["user_id"], "int32"), (-1,))
            lookups.append((users, self.user_encoder.id_embedding.embeddings, self.user_frequency))
        penalty = 0.0
        for ids, table, frequency in lookups:
            norms = ops.sum(ops.square(ops.cast(ops.take(table, ids, axis=0), "float32")), axis=-1)
            known = ops.cast(ops.not_equal(ids, 0), "float32")
            penalty = penalty + ops.sum(known * norms / ops.take(frequency, ids, axis=0))
        return self.embedding_l2 * penalty

    def build_pooling(self) -> None:
        """Build the history pooling's weights (sum pooling has none)."""

    def mlp_input_size(self) -> int:
        user = self.user_encoder.output_size if self.user_encoder is not None else 0
        return user + 2 * self.item_encoder.output_size

    def pool_history(self, history_vectors, mask, target_vectors, training=False):
        """Sum of the history item vectors ``[B, L, D]`` where ``mask`` is True → ``[B, D]``."""
        return ops.sum(history_vectors * ops.expand_dims(ops.cast(mask, history_vectors.dtype), -1), axis=1)

    def encode_history(self, features):
        """The behaviours' vectors ``[B, L, D]`` (item vector, plus its rating's with ``rating_levels``) and mask."""
        history = ops.cast(features["history"], "int32")
        vectors = self.item_encoder(history)
        if self.rating_embedding is not None:
            if "history_rating" not in features:
                raise ValueError(f"{type(self).__name__}: rating_levels={self.rating_levels} needs the "
                                 "'history_rating' feature, aligned with 'history'")
            ratings = ops.clip(ops.cast(features["history_rating"], "int32"), 0, self.rating_levels)
            vectors = vectors + ops.cast(self.rating_embedding(ratings), vectors.dtype)
        return vectors, ops.not_equal(history, 0)

    def raw_score(self, features, training=False):
        target = self.item_encoder(ops.cast(features["item_id"], "int32"))
        history_vectors, mask = self.encode_history(features)
        pooled = self.pool_history(history_vectors, mask, target, training=training)
        parts = [pooled, target]
        if self.user_encoder is not None:
            parts.insert(0, self.user_encoder(ops.cast(features["user_id"], "int32")))
        hidden = ops.concatenate(parts, axis=-1)
        for dense, activation in zip(self.hidden_layers, self.hidden_activations):
            hidden = self.hidden_dropout(activation(dense(hidden), training=training), training=training)
        return self.output_layer(hidden)

    def get_config(self):
        config = super().get_config()
        config.update({"item_feature_specs": self.item_feature_specs, "user_feature_specs": self.user_feature_specs,
                       "embedding_dim": self.embedding_dim, "hidden_units": self.hidden_units,
                       "activation": self.activation, "dropout": self.dropout, "max_history": self.max_history,
                       "use_user_id": self.use_user_id, "embedding_l2": self.embedding_l2,
                       "rating_levels": self.rating_levels})
        return config
