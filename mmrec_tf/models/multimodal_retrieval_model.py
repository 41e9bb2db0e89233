"""Base class of the multimodal fusion two-tower models: modality tokens, dropout, cold items, history."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from mmrec_tf.layers.history import most_recent_history
from mmrec_tf.layers.item_feature_encoder import ItemFeatureEncoder
from mmrec_tf.layers.modality_dropout import ModalityDropout
from mmrec_tf.models.retrieval_model import RetrievalModel, with_item_tables

ID_MODALITY = "item_id"


class MultimodalRetrievalModel(RetrievalModel):
    """Two towers over per-modality item tokens; subclasses say how tokens are fused.

    **Item tokens.** Every item is ``M = 1 + F`` tokens of ``embedding_dim``
    values: its id embedding, then one token per item feature table (in
    name order), each projected on its own by an
    :class:`~mmrec_tf.layers.ItemFeatureEncoder` (multi-hot genres → linear,
    categorical → embedding, text tokens → mean embedding, precomputed
    text / image / audio vectors → unit-RMS scaling and a linear map, with a
    learned "missing" token where an item lacks the vector). Each token has a
    presence flag: the id token is present only for items that had training
    interactions (:meth:`prepare` records them; the id embedding of any other
    item is zeroed, so an item never trained on - a cold-start item, or a new
    one added by the catalog export - is embedded from content alone, never
    from a random, untrained id vector), a vector token where the item has
    that vector, a table token where the item's row is not empty.

    **Training for missing modalities.** A
    :class:`~mmrec_tf.layers.ModalityDropout` hides the id token with
    probability ``id_dropout`` and each content token with probability
    ``modality_dropout``, per item and step, replacing it by exactly what an
    item lacking it gets. So the model learns to embed an item from any
    subset of its modalities, content alone included.

    **User tower.** The history (most recent ``max_history`` items, 0-padded
    at the end) goes through the item tower; its fused item vectors are
    summarised by their masked mean and the most recent one, concatenated
    with a user id embedding (zero for unknown users) and passed through an
    MLP (``hidden_units``, then ``embedding_dim``).

    With ``encode_catalog_per_step`` the item tower runs once per training
    step over the whole catalog and the batch's targets and history items are
    gathered from it: cheaper than encoding ``batch x (max_history + 1)``
    items when the catalog is smaller than that (MovieLens-100K: 1,683 rows
    against 256 x 21). Inference always encodes just the items asked for;
    both give the same vectors outside training.

    Args:
        num_users, num_items: vocabulary sizes (index 0 = unknown).
        item_feature_specs: ``{name: spec}`` of the item tables to read
            (``FeatureSpace.item_feature_specs()``; ``from_feature_space``
            fills it and loads the tables).
        embedding_dim: width of every modality token and of the user state.
        hidden_units: hidden layers of the fusion and user MLPs.
        max_history: most recent history items the user tower reads.
        modality_dropout, id_dropout: training drop rates of content
            tokens and of the id token.
        use_user_id: add a user id embedding to the user tower.
        normalize, temperature, logq_correction, remove_accidental_hits:
            as in :class:`~mmrec_tf.models.LSTMTwoTower`.
        encode_catalog_per_step: see above.
        seed: seed of the modality dropout.

    Subclasses implement ``_fuse_items(tokens, present, training)`` →
    ``{"fused": [..., F], "vector": [..., V]}`` and
    ``_user_vector(user_state)`` → ``[B, V]`` and build their layers in
    ``_build_fusion()``.

    Example (through a subclass):
    >>> import numpy as np
    >>> from mmrec_tf.models import ConcatFusion
    >>> specs = {"poster": {"kind": "vector", "shape": [3], "cardinality": 3}}
    >>> model = ConcatFusion(num_users=2, num_items=3, item_feature_specs=specs, embedding_dim=4, max_history=2)
    >>> model.item_encoder.set_tables({"poster": (np.ones((4, 3), "float32"), np.array([False, True, False, True]))})
    >>> tokens, present = model.modality_tokens(np.array([1, 2]))
    >>> tuple(tokens.shape), present.numpy().tolist()  # [id, poster] per item; item 2 has no poster
    ((2, 2, 4), [[1.0, 1.0], [1.0, 0.0]])
    """

    uses_history = True
    grows_in_place = True

    def __init__(self, num_users: int, num_items: int, item_feature_specs: dict | None = None,
                 embedding_dim: int = 32, hidden_units: list[int] | tuple[int, ...] = (64,), max_history: int = 50,
                 modality_dropout: float = 0.1, id_dropout: float = 0.3, use_user_id: bool = True,
                 normalize: bool = True, temperature: float | None = 0.1, logq_correction: bool = True,
                 remove_accidental_hits: bool = True, encode_catalog_per_step: bool = True, seed: int | None = None,
                 **kwargs):
        super().__init__(num_users=num_users, num_items=num_items, temperature=temperature,
                         logq_correction=logq_correction, remove_accidental_hits=remove_accidental_hits, **kwargs)
        self.item_feature_specs = dict(item_feature_specs or {})
        self.embedding_dim = embedding_dim
        self.hidden_units = [int(u) for u in hidden_units]
        self.max_history = max_history
        self.modality_dropout = modality_dropout
        self.id_dropout = id_dropout
        self.use_user_id = use_user_id
        self.normalize = normalize
        self.encode_catalog_per_step = encode_catalog_per_step
        self.seed = seed
        self.modality_names = [ID_MODALITY, *sorted(self.item_feature_specs)]
        self.item_encoder = ItemFeatureEncoder(num_items, embedding_dim, output_dim=None,
                                               feature_specs=self.item_feature_specs, name="item_encoder")
        self.dropout_layer = ModalityDropout([id_dropout] + [modality_dropout] * len(self.item_feature_specs),
                                             seed=seed, name="modality_dropout")
        self.user_id_embedding = (keras.layers.Embedding(num_users + 1, embedding_dim, name="user_id_embedding")
                                  if use_user_id else None)
        self.user_mlp = dense_stack(self.hidden_units, embedding_dim, "user_mlp")

    @classmethod
    def from_feature_space(cls, space, item_features: list[str] | None = None, **kwargs):
        """Build for a feature space; ``item_features`` names the item tables to use (default: all)."""
        return with_item_tables(cls, space, item_features, **kwargs)

    @property
    def num_modalities(self) -> int:
        return len(self.modality_names)

    # === Build ===

    def build(self, input_shape=None):
        if not self.item_encoder.built:
            self.item_encoder.build()
        self.item_trained = self.add_weight(name="item_trained", shape=(self.num_items + 1,), initializer="ones",
                                            trainable=False)
        if self.user_id_embedding is not None:
            self.user_id_embedding.build((None,))
        fused = self._build_fusion()
        build_stack(self.user_mlp, 2 * fused + self.embedding_dim * int(self.use_user_id))
        self.built = True

    def _build_fusion(self) -> int:
        """Build the subclass's item-side layers; return the width of the fused item vector."""
        raise NotImplementedError

    def prepare(self, train_examples) -> None:
        """Item frequencies for logQ, and which items have training interactions (the others get no id)."""
        super().prepare(train_examples)
        if not self.built:
            self.build()
        # rows after the catalog (spare rows an update grows into, mmrec_tf.update.grow_model) are untrained
        trained = np.zeros(self.item_trained.shape[0], "float32")
        trained[: len(self.item_probability)] = self.item_probability > 0
        self.item_trained.assign(trained)

    # === Item tokens ===

    def modality_tokens(self, item_index, training=False):
        """``(tokens [..., M, D], present [..., M])`` of items, modality dropout applied in training."""
        if not self.built:
            self.build()
        item_index = ops.cast(item_index, "int32")
        encoded = self.item_encoder(item_index)
        tokens = ops.reshape(encoded, (*ops.shape(item_index), self.num_modalities, self.embedding_dim))
        present = self._presence(item_index)
        tokens = tokens * ops.expand_dims(ops.concatenate(
            [present[..., :1], ops.ones_like(present[..., 1:])], axis=-1), -1)
        return self.dropout_layer(tokens, present, fill=self._absent_tokens(), training=training)

    def _presence(self, item_index):
        flags = [ops.take(self.item_trained, item_index, axis=0)]
        for name, spec in sorted(self.item_feature_specs.items()):
            if spec["kind"] == "vector":
                flags.append(ops.take(self.item_encoder.presence[name], item_index, axis=0))
                continue
            values = ops.take(self.item_encoder.tables[name], item_index, axis=0)
            nonzero = ops.not_equal(values, 0)
            flags.append(ops.cast(nonzero if spec["kind"] == "categorical" else ops.any(nonzero, axis=-1),
                                  "float32"))
        known = ops.cast(ops.not_equal(item_index, 0), "float32")
        return ops.stack(flags, axis=-1) * ops.expand_dims(known, -1)

    def _absent_tokens(self):
        """``[M, D]``: what an item lacking each modality gets (the learned missing token for vectors)."""
        rows = [ops.zeros((self.embedding_dim,))]
        for name, spec in sorted(self.item_feature_specs.items()):
            if spec["kind"] == "vector":
                rows.append(ops.cast(self.item_encoder.missing_embeddings[name], "float32"))
            elif spec["kind"] == "categorical":
                rows.append(self.item_encoder.feature_layers[name](ops.zeros((), "int32")))
            else:
                rows.append(ops.zeros((self.embedding_dim,)))
        return ops.cast(ops.stack(rows, axis=0), self.compute_dtype)

    def _fuse_items(self, tokens, present, training=False) -> dict:
        raise NotImplementedError

    def _user_vector(self, user_state):
        raise NotImplementedError

    def _item_states(self, item_index, training=False) -> dict:
        tokens, present = self.modality_tokens(item_index, training=training)
        return self._fuse_items(tokens, present, training=training)

    def _finish(self, vectors):
        return ops.normalize(vectors, axis=-1) if self.normalize else vectors

    # === Towers ===

    def encode_items(self, item_index, training=False):
        return self._finish(self._item_states(item_index, training=training)["vector"])

    def user_state(self, features, training=False, catalog=None):
        """The user state ``s_u`` ``[B, embedding_dim]``: the user MLP over history summary and user id."""
        history = most_recent_history(features["history"], self.max_history)
        if catalog is None:
            fused = self._item_states(history, training=training)["fused"]
        else:
            fused = ops.take(catalog["fused"], history, axis=0)
        mask = ops.expand_dims(ops.cast(ops.not_equal(history, 0), fused.dtype), -1)
        count = ops.sum(mask, axis=1)
        mean = ops.sum(fused * mask, axis=1) / ops.maximum(count, 1.0)
        last_position = ops.maximum(ops.cast(count, "int32") - 1, 0)
        last = ops.take_along_axis(fused, ops.expand_dims(last_position, -1), axis=1)[:, 0]
        parts = [mean, last * ops.cast(count > 0, fused.dtype)]
        if self.user_id_embedding is not None:
            user = ops.cast(features["user_id"], "int32")
            known = ops.expand_dims(ops.cast(ops.not_equal(user, 0), fused.dtype), -1)
            parts.append(self.user_id_embedding(user) * known)
        return apply_stack(self.user_mlp, ops.concatenate(parts, axis=-1))

    def encode_users(self, features, training=False):
        return self._finish(self._user_vector(self.user_state(features, training=training)))

    def call(self, features, training=False):
        if not (training and self.encode_catalog_per_step):
            return super().call(features, training=training)
        # every row of the tables (spare rows included): the traced step then holds for a catalog grown in place
        catalog = self._item_states(ops.arange(self.item_trained.shape[0], dtype="int32"), training=True)
        users = self._finish(self._user_vector(self.user_state(features, training=True, catalog=catalog)))
        items = self._finish(ops.take(catalog["vector"], ops.cast(features["item_id"], "int32"), axis=0))
        return {"user_embedding": users, "item_embedding": items}

    def get_config(self):
        config = super().get_config()
        config.update({"item_feature_specs": self.item_feature_specs, "embedding_dim": self.embedding_dim,
                       "hidden_units": self.hidden_units, "max_history": self.max_history,
                       "modality_dropout": self.modality_dropout, "id_dropout": self.id_dropout,
                       "use_user_id": self.use_user_id, "normalize": self.normalize,
                       "encode_catalog_per_step": self.encode_catalog_per_step, "seed": self.seed})
        return config


def dense_stack(hidden_units: list[int], output_units: int, name: str) -> list[keras.layers.Dense]:
    """ReLU layers of ``hidden_units`` then a linear layer of ``output_units``.

    Example:
    >>> [layer.units for layer in dense_stack([8, 4], 2, "mlp")]
    [8, 4, 2]
    """
    layers = [keras.layers.Dense(units, activation="relu", name=f"{name}_{i}") for i, units in enumerate(hidden_units)]
    return layers + [keras.layers.Dense(output_units, name=f"{name}_out")]


def build_stack(layers: list[keras.layers.Dense], width: int) -> int:
    """Build ``layers`` in order for ``[None, width]`` inputs; returns the output width.

    Example:
    >>> build_stack(dense_stack([3], 2, "mlp"), 5)
    2
    """
    for layer in layers:
        layer.build((None, width))
        width = layer.units
    return width


def apply_stack(layers: list[keras.layers.Dense], inputs):
    """``inputs`` through ``layers`` in order.

    Example:
    >>> import numpy as np
    >>> stack = dense_stack([3], 2, "mlp")
    >>> tuple(apply_stack(stack, np.ones((4, 5), "float32")).shape)
    (4, 2)
    """
    for layer in layers:
        inputs = layer(inputs)
    return inputs
