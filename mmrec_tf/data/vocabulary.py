"""String ids ↔ dense indices, with index 0 for unknown ids and padding."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

import numpy as np


class Vocabulary:
    """Maps string ids to indices ``1..N``; every unknown id and ``""`` map to 0.

    Index 0 doubles as padding, so a history padded with ``""`` and an unknown
    item look the same to a model: no information.

    Example:
    >>> vocab = Vocabulary(["a", "b"])
    >>> vocab.lookup(["b", "zzz", ""]).tolist(), vocab.size
    ([2, 0, 0], 3)
    """

    def __init__(self, ids: Iterable[str]):
        self.ids = np.asarray([str(i) for i in ids], dtype=object)
        self._index = {item: position + 1 for position, item in enumerate(self.ids)}
        if len(self._index) != len(self.ids):
            seen: set[str] = set()
            duplicate = next(i for i in self.ids if i in seen or seen.add(i))
            raise ValueError(f"vocabulary ids must be unique; {duplicate!r} appears twice")
        if "" in self._index:
            raise ValueError("the empty string is reserved for padding and cannot be an id")

    @property
    def size(self) -> int:
        """Number of indices including the reserved 0."""
        return len(self.ids) + 1

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, item: object) -> bool:
        return item in self._index

    def lookup(self, values: Iterable[str]) -> np.ndarray:
        get = self._index.get
        return np.fromiter((get(v, 0) for v in values), dtype=np.int32)

    def id_of(self, index: int) -> str:
        return "" if index == 0 else str(self.ids[index - 1])

    def make_tf_lookup(self, name: str = "vocabulary"):
        """The same mapping as a TensorFlow lookup table (for SavedModels): ``table.lookup(strings)`` → int32.

        Example:
        >>> import tensorflow as tf
        >>> Vocabulary(["a", "b"]).make_tf_lookup().lookup(tf.constant(["b", "zzz", ""])).numpy().tolist()
        [2, 0, 0]
        """
        import tensorflow as tf

        keys = tf.constant(np.asarray(self.ids, dtype=object).astype(str), dtype=tf.string)
        values = tf.range(1, len(self.ids) + 1, dtype=tf.int32)
        return tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, values), default_value=0,
                                         name=name)

    def save(self, path: str | os.PathLike) -> None:
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(list(self.ids), handle, ensure_ascii=False)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocabulary":
        """Read a vocabulary written by :meth:`save` (any kind: :func:`~mmrec_tf.data.hashed_vocabulary.load_vocabulary`)."""
        with open(path, encoding="utf-8") as handle:
            return cls.from_json(json.load(handle), path)

    @classmethod
    def from_json(cls, ids, path: str | os.PathLike = "<json>") -> "Vocabulary":
        """Rebuild from what :meth:`save` wrote, a JSON list of id strings (``path`` names the file in errors)."""
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ValueError(f"{path}: expected a JSON list of id strings")
        return cls(ids)
