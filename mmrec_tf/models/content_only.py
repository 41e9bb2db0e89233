"""Content-only baseline: how close a candidate's content is to the content of the user's history."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from mmrec_tf.layers.history import most_recent_history
from mmrec_tf.models.retrieval_model import RetrievalModel
from mmrec_tf.model_registration import register_model

CONTENT_KINDS = ("vector", "multi_categorical", "numeric")


@register_model("content_only", task="retrieval")
@keras.saving.register_keras_serializable(package="mmrec_tf")
class ContentOnly(RetrievalModel):
    """Mean over modalities of the cosine between a candidate's vector and the history's mean vector.

    For each content table ``f`` (precomputed text / image / audio vectors,
    multi-hot genres), item vectors are centred (the mean over items that
    have one is subtracted, so that a component every item shares does not
    dominate the cosine) and L2-normalised; an item lacking the modality has
    none. A user's profile for ``f`` is the mean of the normalised vectors of
    the history items that have one, normalised again. The score is
    ``(1 / F) sum_f cos(profile_f(u), v_f(i))`` over the ``F`` tables, 0 for a
    modality the item or the history lacks. It learns nothing from
    interactions and never uses ids: the yardstick that says how much of a
    fusion model's cold-start quality comes from the content alone. Like
    ``popularity`` it is a two-tower model without trainable weights (user
    vector = concatenated profiles / sqrt(F), item vector = concatenated
    normalised vectors / sqrt(F)), so it evaluates and exports like the others.

    Example:
    >>> import numpy as np
    >>> specs = {"genres": {"kind": "multi_categorical", "shape": [2], "cardinality": 2}}
    >>> model = ContentOnly(num_users=2, num_items=3, item_feature_specs=specs, max_history=2)
    >>> model.set_tables({"genres": np.array([[0, 0], [1, 0], [0, 1], [1, 0]], "float32")})
    >>> features = {"user_id": np.array([1]), "history": np.array([[1, 0]])}
    >>> np.round(model.score_candidates(features, np.array([[3, 2]])), 3).tolist()
    [[1.0, -1.0]]
    """

    uses_history = True

    def __init__(self, num_users: int, num_items: int, item_feature_specs: dict | None = None,
                 max_history: int = 50, **kwargs):
        super().__init__(num_users=num_users, num_items=num_items, **kwargs)
        self.item_feature_specs = dict(item_feature_specs or {})
        self.max_history = max_history
        if not self.item_feature_specs:
            raise ValueError(f"ContentOnly needs at least one item content table of kind {CONTENT_KINDS}")
        wrong = {n: s["kind"] for n, s in self.item_feature_specs.items() if s["kind"] not in CONTENT_KINDS}
        if wrong:
            raise ValueError(f"ContentOnly compares content vectors; tables {wrong} are not of kind {CONTENT_KINDS}")
        self.tables = {}

    @classmethod
    def from_feature_space(cls, space, item_features: list[str] | None = None, **kwargs):
        """Build for a feature space; ``item_features`` default: every vector / multi-hot / numeric table."""
        specs = space.item_feature_specs()
        if item_features is None:
            item_features = [n for n, s in specs.items() if s["kind"] in CONTENT_KINDS]
        unknown = [n for n in item_features if n not in specs]
        if unknown:
            raise ValueError(f"item_features {unknown} are not in the feature space; it has {sorted(specs)}")
        model = cls(num_users=space.num_users, num_items=space.num_items,
                    item_feature_specs={n: specs[n] for n in item_features}, **kwargs)
        model.set_tables({n: space.item_features[n] for n in item_features})
        return model

    def build(self, input_shape=None):
        for name, spec in sorted(self.item_feature_specs.items()):
            self.tables[name] = self.add_weight(name=f"{name}_unit_vectors", shape=(self.num_items + 1, *spec["shape"]),
                                                initializer="zeros", trainable=False)

    def set_tables(self, tables: dict) -> None:
        """Load content tables: arrays ``[num_items + 1, D]``, or ``FeatureTable`` s / ``(values, present)``.

        Row ``i`` is item index ``i``. Without a presence mask an all-zero
        row counts as absent.
        """
        if not self.built:
            self.build()
        missing = sorted(set(self.item_feature_specs) - set(tables))
        if missing:
            raise ValueError(f"set_tables: missing tables {missing}")
        for name, variable in self.tables.items():
            values, present = _values_and_presence(tables[name])
            if values.shape != tuple(variable.shape):
                raise ValueError(f"table {name!r}: expected shape {tuple(variable.shape)}, got {values.shape}")
            present = present.copy()
            present[0] = False
            if not np.isfinite(values[present]).all():
                raise ValueError(f"table {name!r}: present rows must hold finite values")
            centred = np.zeros_like(values, dtype=np.float64)
            if present.any():
                centred[present] = values[present] - values[present].mean(axis=0)
            norms = np.linalg.norm(centred, axis=1, keepdims=True)
            unit = np.where(norms > 1e-12, centred / np.maximum(norms, 1e-12), 0.0)
            variable.assign(unit.astype("float32"))

    def _scale(self):
        return 1.0 / float(np.sqrt(len(self.item_feature_specs)))

    def encode_items(self, item_index, training=False):
        if not self.built:
            self.build()
        item_index = ops.cast(item_index, "int32")
        parts = [ops.take(self.tables[name], item_index, axis=0) for name in sorted(self.tables)]
        return ops.concatenate(parts, axis=-1) * self._scale()

    def encode_users(self, features, training=False):
        if not self.built:
            self.build()
        history = most_recent_history(features["history"], self.max_history)
        parts = []
        for name in sorted(self.tables):
            vectors = ops.take(self.tables[name], history, axis=0)
            parts.append(ops.normalize(ops.sum(vectors, axis=1), axis=-1))
        return ops.concatenate(parts, axis=-1) * self._scale()

    def get_config(self):
        config = super().get_config()
        config.update({"item_feature_specs": self.item_feature_specs, "max_history": self.max_history})
        return config


def _values_and_presence(table) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(table, "values") and hasattr(table, "kind"):
        values, present = np.asarray(table.values), getattr(table, "present", None)
    elif isinstance(table, tuple):
        values, present = table
        values = np.asarray(values)
    else:
        values, present = np.asarray(table), None
    values = values.astype(np.float64)
    if values.ndim != 2:
        raise ValueError(f"content tables must be [num_items + 1, D]; got shape {values.shape}")
    present = (np.abs(values).sum(axis=1) > 0) if present is None else np.asarray(present, bool)
    return values, present
