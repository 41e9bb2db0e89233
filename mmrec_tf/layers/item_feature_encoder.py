"""Encodes items from their index: id embedding plus looked-up feature tables."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="mmrec_tf")
class ItemFeatureEncoder(keras.layers.Layer):
    """Item index → vector, from an id embedding and per-item feature tables.

    The feature tables (genres, title tokens, ... built by
    :class:`~mmrec_tf.data.FeatureSpace`) live in the layer as non-trainable
    weights, so callers pass only item indices and an exported model needs
    only item ids. Each table is encoded into ``embedding_dim`` values
    (multi-hot → linear map, categorical → embedding, text tokens → masked mean
    of token embeddings, numeric → linear map, vector → see below); the parts
    are concatenated and projected to ``output_dim``. Index 0 (unknown item or
    padding) has zero features and a zeroed id embedding, so its vector
    depends on no learned id.

    A ``vector`` feature (precomputed text / image / audio vectors) comes with
    a presence mask. A present item's vector is scaled to unit RMS per
    component (L2-normalised, times ``sqrt(D)``: raw VGGish vectors have norms
    near 1,500, MiniLM's are 1) and mapped linearly to ``embedding_dim``; an
    absent item gets a learned "missing" embedding of that feature instead, so
    a missing poster is an explicit signal, never a silent zero vector. Its
    tables are given as ``(values, present)`` or as the
    :class:`~mmrec_tf.data.FeatureTable` itself.

    Example:
    >>> import numpy as np
    >>> specs = {"genres": {"kind": "multi_categorical", "shape": [3], "cardinality": 3}}
    >>> encoder = ItemFeatureEncoder(num_items=4, embedding_dim=8, output_dim=5, feature_specs=specs)
    >>> encoder.set_tables({"genres": np.eye(5, 3, dtype="float32")})
    >>> tuple(encoder(np.array([[1, 2], [0, 4]])).shape)
    (2, 2, 5)
    """

    def __init__(self, num_items: int, embedding_dim: int, output_dim: int | None = None,
                 feature_specs: dict | None = None, use_id: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.num_items = num_items
        self.embedding_dim = embedding_dim
        self.output_dim = output_dim
        self.feature_specs = dict(feature_specs or {})
        self.use_id = use_id
        if not use_id and not self.feature_specs:
            raise ValueError("ItemFeatureEncoder needs use_id=True or at least one feature table")
        self.id_embedding = (keras.layers.Embedding(num_items + 1, embedding_dim, name="item_id_embedding")
                             if use_id else None)
        self.feature_layers = {}
        for name, spec in sorted(self.feature_specs.items()):
            kind = spec["kind"]
            if kind in ("multi_categorical", "numeric", "vector"):
                layer = keras.layers.Dense(embedding_dim, use_bias=False, name=f"{name}_projection")
            elif kind in ("categorical", "text"):
                layer = keras.layers.Embedding(spec["cardinality"], embedding_dim, name=f"{name}_embedding")
            else:
                raise ValueError(f"feature {name!r}: kind {kind!r} cannot be encoded by ItemFeatureEncoder")
            self.feature_layers[name] = layer
        self.projection = (keras.layers.Dense(output_dim, name="item_projection")
                           if output_dim is not None else None)
        self.tables = {}
        self.presence = {}
        self.missing_embeddings = {}

    def build(self, input_shape=None):
        for name, spec in sorted(self.feature_specs.items()):
            dtype = "int32" if spec["kind"] in ("categorical", "text") else "float32"
            self.tables[name] = self.add_weight(
                name=f"{name}_table", shape=(self.num_items + 1, *spec["shape"]), dtype=dtype,
                initializer="zeros", trainable=False)
            if spec["kind"] == "vector":
                self.presence[name] = self.add_weight(
                    name=f"{name}_present", shape=(self.num_items + 1,), dtype="float32", initializer="zeros",
                    trainable=False)
                self.missing_embeddings[name] = self.add_weight(
                    name=f"{name}_missing_embedding", shape=(self.embedding_dim,), initializer="random_normal")
            layer = self.feature_layers[name]
            if spec["kind"] in ("multi_categorical", "numeric", "vector"):
                layer.build((None, *spec["shape"]))
            else:
                layer.build((None,))
        if self.id_embedding is not None:
            self.id_embedding.build((None,))
        if self.projection is not None:
            self.projection.build((None, self.embedding_dim * self._num_parts()))

    def _num_parts(self) -> int:
        return len(self.feature_specs) + int(self.use_id)

    @property
    def output_size(self) -> int:
        return self.output_dim if self.output_dim is not None else self.embedding_dim * self._num_parts()

    def set_tables(self, tables: dict) -> None:
        """Load the feature tables (row ``i`` = item index ``i``; row 0 all zeros).

        Each entry is an array, or a :class:`~mmrec_tf.data.FeatureTable`;
        a ``vector`` feature needs its presence mask too: pass its
        ``FeatureTable`` or a ``(values, present)`` pair.
        """
        if not self.built:
            self.build()
        missing = set(self.feature_specs) - set(tables)
        if missing:
            raise ValueError(f"set_tables: missing tables {sorted(missing)}")
        for name, variable in self.tables.items():
            values, present = table_arrays(name, self.feature_specs[name]["kind"], tables[name])
            if tuple(values.shape) != tuple(variable.shape):
                raise ValueError(f"table {name!r}: expected shape {tuple(variable.shape)}, got {values.shape}")
            if present is not None:
                if present.shape != (self.num_items + 1,) or present.dtype != np.bool_:
                    raise ValueError(f"table {name!r}: presence mask must be bool of shape ({self.num_items + 1},), "
                                     f"got {present.dtype} {present.shape}")
                if not np.isfinite(values[present]).all():
                    raise ValueError(f"table {name!r}: present rows must hold finite values")
                self.presence[name].assign(present.astype("float32"))
                values = np.where(present[:, None], values, 0.0)
            variable.assign(values.astype(variable.dtype))

    def call(self, item_index, id_scale=None):
        """``id_scale`` (shaped like ``item_index``), if given, multiplies each item's id embedding (0 hides it)."""
        item_index = ops.cast(item_index, "int32")
        known = ops.expand_dims(ops.cast(ops.not_equal(item_index, 0), self.compute_dtype), -1)
        parts = []
        if self.id_embedding is not None:
            scale = known if id_scale is None else known * ops.expand_dims(ops.cast(id_scale, self.compute_dtype), -1)
            parts.append(self.id_embedding(item_index) * scale)
        for name, spec in sorted(self.feature_specs.items()):
            values = ops.take(self.tables[name], item_index, axis=0)
            layer = self.feature_layers[name]
            if spec["kind"] == "text":
                mask = ops.expand_dims(ops.cast(ops.not_equal(values, 0), self.compute_dtype), -1)
                summed = ops.sum(layer(values) * mask, axis=-2)
                parts.append(summed / ops.maximum(ops.sum(mask, axis=-2), 1.0))
            elif spec["kind"] == "vector":
                parts.append(self._encode_vector(name, values, item_index) * known)
            elif spec["kind"] == "categorical":
                parts.append(layer(values))
            else:
                parts.append(layer(ops.cast(values, self.compute_dtype)))
        merged = parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=-1)
        return self.projection(merged) if self.projection is not None else merged

    def _encode_vector(self, name, values, item_index):
        values = ops.cast(values, self.compute_dtype)
        norm = ops.sqrt(ops.sum(ops.square(values), axis=-1, keepdims=True))
        scale = float(np.sqrt(self.feature_specs[name]["shape"][-1]))
        projected = self.feature_layers[name](values * (scale / ops.maximum(norm, 1e-12)))
        present = ops.expand_dims(ops.cast(ops.take(self.presence[name], item_index, axis=0), self.compute_dtype), -1)
        missing = ops.cast(self.missing_embeddings[name], self.compute_dtype)
        return present * projected + (1.0 - present) * missing

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.output_size)

    def get_config(self):
        config = super().get_config()
        config.update({"num_items": self.num_items, "embedding_dim": self.embedding_dim,
                       "output_dim": self.output_dim, "feature_specs": self.feature_specs,
                       "use_id": self.use_id})
        return config


def table_arrays(name: str, kind: str, table) -> tuple[np.ndarray, np.ndarray | None]:
    """``(values, present)`` of one ``set_tables`` entry; ``present`` only for vector features.

    Example:
    >>> values, present = table_arrays("genres", "multi_categorical", np.eye(3, 2, dtype="float32"))
    >>> values.shape, present is None
    ((3, 2), True)
    """
    if hasattr(table, "values") and hasattr(table, "kind"):
        values, present = table.values, getattr(table, "present", None)
    elif isinstance(table, tuple):
        if len(table) != 2:
            raise ValueError(f"table {name!r}: expected (values, present), got a tuple of {len(table)}")
        values, present = table
    else:
        values, present = table, None
    if kind == "vector":
        if present is None:
            raise ValueError(f"table {name!r} is a vector feature: pass its FeatureTable "
                             "(space.item_features[name]) or (values, present) so absent items are known")
        return np.asarray(values), np.asarray(present)
    if present is not None:
        raise ValueError(f"table {name!r} is a {kind} feature and takes no presence mask")
    return np.asarray(values), None
