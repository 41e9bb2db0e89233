"""Vocabularies with out-of-vocabulary hash buckets, for id sets too large or too open to list.

A :class:`HashedVocabulary` keeps indices ``1..N`` for the ids it lists and
sends every other non-empty id to one of ``num_oov_buckets`` shared indices
``N+1..N+B`` chosen by the id's FarmHash Fingerprint64 — the hash of
``tf.strings.to_hash_bucket_fast`` and of ``tf.lookup.StaticVocabularyTable``,
so the Python lookup of the input pipeline and the lookup table baked into a
SavedModel (:meth:`HashedVocabulary.make_tf_lookup`) agree on every string.
``""`` stays index 0 (padding). With no listed ids at all it is the plain
hashing trick.

Use it for users (:func:`~mmrec_tf.data.user_buckets.with_user_buckets`): list the frequent users and
hash the long tail, whose buckets are then trained by the tail's
interactions, and users first seen at serving time land in a trained bucket
instead of the untrained index 0. Items keep an exact vocabulary: an item
bucket is not an item one can recommend, and retrieval, evaluation and the
export rank exactly the items ``1..N``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

import numpy as np
import tensorflow as tf

from mmrec_tf.data.vocabulary import Vocabulary

HASH = "fingerprint64"


class HashedVocabulary(Vocabulary):
    """Listed ids → ``1..N``; any other non-empty id → ``N + 1 + Fingerprint64(id) mod B``; ``""`` → 0.

    ``len()`` counts every index but 0 (``N + B``), so models built from a
    :class:`~mmrec_tf.data.FeatureSpace` holding it get an embedding row per
    bucket; ``ids`` lists the ``N`` known ids; ``id_of`` a bucket index is
    ``""`` (it stands for many ids).

    Example:
    >>> vocab = HashedVocabulary(["a", "b"], num_oov_buckets=3)
    >>> vocab.lookup(["b", "", "a"]).tolist(), len(vocab), vocab.size
    ([2, 0, 1], 5, 6)
    >>> 3 <= int(vocab.lookup(["never seen"])[0]) <= 5
    True
    """

    def __init__(self, ids: Iterable[str], num_oov_buckets: int):
        super().__init__(ids)
        if isinstance(num_oov_buckets, bool) or not isinstance(num_oov_buckets, (int, np.integer)) \
                or num_oov_buckets < 1:
            raise ValueError(f"num_oov_buckets must be a positive int, got {num_oov_buckets!r}")
        self.num_oov_buckets = int(num_oov_buckets)

    @property
    def size(self) -> int:
        return len(self.ids) + self.num_oov_buckets + 1

    def __len__(self) -> int:
        return len(self.ids) + self.num_oov_buckets

    def lookup(self, values: Iterable[str]) -> np.ndarray:
        values = [str(v) for v in values]
        indices = super().lookup(values)
        unknown = np.flatnonzero((indices == 0) & (np.asarray([v != "" for v in values], bool)))
        if unknown.size:
            strings = tf.constant([values[i] for i in unknown], dtype=tf.string)
            buckets = tf.strings.to_hash_bucket_fast(strings, self.num_oov_buckets).numpy()
            indices[unknown] = len(self.ids) + 1 + buckets.astype(np.int32)
        return indices

    def id_of(self, index: int) -> str:
        return "" if index == 0 or index > len(self.ids) else str(self.ids[index - 1])

    def make_tf_lookup(self, name: str = "vocabulary"):
        """A TensorFlow lookup with exactly this mapping: ``.lookup(strings)`` → int32 indices.

        Example:
        >>> vocab = HashedVocabulary(["a", "b"], num_oov_buckets=3)
        >>> table = vocab.make_tf_lookup()
        >>> table.lookup(tf.constant(["b", "", "x"])).numpy().tolist() == vocab.lookup(["b", "", "x"]).tolist()
        True
        """
        return HashedLookup(self.ids, self.num_oov_buckets, name=name)

    def save(self, path: str | os.PathLike) -> None:
        with open(path, "w", encoding="utf-8") as handle:
            json.dump({"ids": list(self.ids), "num_oov_buckets": self.num_oov_buckets, "hash": HASH}, handle,
                      ensure_ascii=False)

    @classmethod
    def from_json(cls, content: dict, path: str | os.PathLike = "<json>") -> "HashedVocabulary":
        """Rebuild from what :meth:`save` wrote (``path`` names the file in errors)."""
        ids, buckets = content.get("ids"), content.get("num_oov_buckets")
        if content.get("hash") != HASH:
            raise ValueError(f"{path}: field 'hash' must be {HASH!r}, got {content.get('hash')!r}")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ValueError(f"{path}: field 'ids' must be a list of id strings")
        if not isinstance(buckets, int) or buckets < 1:
            raise ValueError(f"{path}: field 'num_oov_buckets' must be a positive int, got {buckets!r}")
        return cls(ids, buckets)


class HashedLookup(tf.Module):
    """The graph form of a :class:`HashedVocabulary`: listed ids, then Fingerprint64 buckets; int32 out.

    Wraps ``tf.lookup.StaticVocabularyTable`` (keys ``"", id_1 .. id_N`` →
    ``0..N``; other keys → ``N + 1 + Fingerprint64 mod B``) and casts its
    int64 result to int32, like the plain vocabulary's table.

    Example:
    >>> HashedLookup(["a"], 2).lookup(tf.constant(["a", ""])).numpy().tolist()
    [1, 0]
    """

    def __init__(self, ids, num_oov_buckets: int, name: str = "vocabulary"):
        super().__init__(name=name)
        keys = tf.constant(np.asarray(["", *[str(i) for i in ids]], dtype=object).astype(str), dtype=tf.string)
        initializer = tf.lookup.KeyValueTensorInitializer(keys, tf.range(len(ids) + 1, dtype=tf.int64))
        self.table = tf.lookup.StaticVocabularyTable(initializer, num_oov_buckets=num_oov_buckets,
                                                     lookup_key_dtype=tf.string)

    def lookup(self, keys):
        return tf.cast(self.table.lookup(keys), tf.int32)


def load_vocabulary(path: str | os.PathLike) -> Vocabulary:
    """Read a vocabulary file: a :class:`HashedVocabulary` when :meth:`HashedVocabulary.save` wrote it, else a
    :class:`~mmrec_tf.data.vocabulary.Vocabulary`.

    Example:
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "users.json"
    >>> HashedVocabulary(["a"], num_oov_buckets=2).save(path)
    >>> type(load_vocabulary(path)).__name__, len(load_vocabulary(path))
    ('HashedVocabulary', 3)
    """
    with open(path, encoding="utf-8") as handle:
        content = json.load(handle)
    if isinstance(content, dict):
        return HashedVocabulary.from_json(content, path)
    return Vocabulary.from_json(content, path)
