"""Vocabularies and per-item / per-user feature tables that models look up by index."""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import pathlib
import re

import numpy as np
import pandas as pd

from mmrec_tf.data.dataset import Dataset
from mmrec_tf.data.schema import FeatureKind, FeatureRole, Schema
from mmrec_tf.data.vocabulary import Vocabulary

TOKEN_PATTERN = re.compile(r"\w+")
TABLE_KINDS = (FeatureKind.CATEGORICAL, FeatureKind.MULTI_CATEGORICAL, FeatureKind.NUMERIC, FeatureKind.TEXT)


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens, as used for in-graph bag-of-words text features.

    Example:
    >>> tokenize("Toy Story (1995)")
    ['toy', 'story', '1995']
    """
    return TOKEN_PATTERN.findall(str(text).lower())


@dataclasses.dataclass
class FeatureTable:
    """One feature for every index of a vocabulary; row 0 (unknown) is all zeros.

    ``values`` is int32 ``[V]`` (categorical: an index into ``vocabulary``,
    0 = missing), float32 ``[V, len(vocabulary)]`` (multi-categorical,
    multi-hot), float32 ``[V, 1]`` (numeric, standardised) or int32
    ``[V, max_tokens]`` (text: token indices, 0 = padding, 1 = out of
    vocabulary, then ``vocabulary``).
    """

    kind: FeatureKind
    values: np.ndarray
    vocabulary: list[str]

    @property
    def cardinality(self) -> int:
        """Number of distinct indices the values can take (for embeddings)."""
        if self.kind == FeatureKind.TEXT:
            return len(self.vocabulary) + 2
        if self.kind == FeatureKind.CATEGORICAL:
            return len(self.vocabulary) + 1
        return self.values.shape[-1]

    def spec(self) -> dict:
        """What a model needs to build its layers for this table (shapes, not values)."""
        return {"kind": self.kind.value, "shape": list(self.values.shape[1:]), "cardinality": self.cardinality}


class FeatureSpace:
    """Everything index-shaped a model needs: id vocabularies and feature tables.

    Build it once from a dataset; models are created from it
    (:func:`mmrec_tf.create_model` takes ``space=``), pipelines use its
    vocabularies, and the export bakes them into the SavedModel so serving
    takes raw string ids.

    Example:
    >>> from mmrec_tf.data.sources import make_synthetic
    >>> space = FeatureSpace.build(make_synthetic(num_users=5, num_items=8, num_clusters=2))
    >>> space.num_items, sorted(space.item_features)
    (8, ['genres', 'title'])
    >>> space.item_features["title"].values.shape
    (9, 8)
    """

    def __init__(self, user_vocab: Vocabulary, item_vocab: Vocabulary,
                 item_features: dict[str, FeatureTable], user_features: dict[str, FeatureTable],
                 item_titles: list[str], schema: Schema):
        self.user_vocab = user_vocab
        self.item_vocab = item_vocab
        self.item_features = item_features
        self.user_features = user_features
        self.item_titles = item_titles
        self.schema = schema

    @property
    def num_users(self) -> int:
        return len(self.user_vocab)

    @property
    def num_items(self) -> int:
        return len(self.item_vocab)

    @classmethod
    def build(cls, dataset: Dataset, max_text_tokens: int = 8, text_vocabulary_size: int = 5000) -> "FeatureSpace":
        user_vocab = Vocabulary(dataset.user_ids())
        item_vocab = Vocabulary(dataset.item_ids())
        tables = {}
        for role, vocab, frame in ((FeatureRole.ITEM, item_vocab, dataset.items),
                                   (FeatureRole.USER, user_vocab, dataset.users)):
            tables[role] = {}
            if frame is None:
                continue
            aligned = frame.reindex(list(vocab.ids))
            for feature in dataset.schema.select(role=role, kinds=TABLE_KINDS):
                tables[role][feature.name] = _build_table(
                    feature.kind, aligned[feature.name], max_text_tokens, text_vocabulary_size)
        titles = [dataset.item_title(i) for i in item_vocab.ids]
        return cls(user_vocab, item_vocab, tables[FeatureRole.ITEM], tables[FeatureRole.USER], titles,
                   dataset.schema)

    def item_feature_specs(self) -> dict[str, dict]:
        return {name: table.spec() for name, table in self.item_features.items()}

    def user_feature_specs(self) -> dict[str, dict]:
        return {name: table.spec() for name, table in self.user_features.items()}

    def save(self, folder: str | os.PathLike) -> None:
        """Write vocabularies (JSON), tables (``.npz`` without pickle) and metadata."""
        folder = pathlib.Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.user_vocab.save(folder / "user_ids.json")
        self.item_vocab.save(folder / "item_ids.json")
        arrays, meta = {}, {"schema": self.schema.to_dict(), "item_titles": self.item_titles, "tables": {}}
        for role, tables in (("item", self.item_features), ("user", self.user_features)):
            for name, table in tables.items():
                arrays[f"{role}.{name}"] = table.values
                meta["tables"][f"{role}.{name}"] = {"kind": table.kind.value, "vocabulary": table.vocabulary}
        np.savez(folder / "tables.npz", **arrays)
        (folder / "feature_space.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "FeatureSpace":
        folder = pathlib.Path(folder)
        meta = json.loads((folder / "feature_space.json").read_text(encoding="utf-8"))
        tables: dict[str, dict[str, FeatureTable]] = {"item": {}, "user": {}}
        with np.load(folder / "tables.npz", allow_pickle=False) as arrays:
            for key, info in meta["tables"].items():
                role, name = key.split(".", 1)
                tables[role][name] = FeatureTable(FeatureKind(info["kind"]), arrays[key], info["vocabulary"])
        return cls(Vocabulary.load(folder / "user_ids.json"), Vocabulary.load(folder / "item_ids.json"),
                   tables["item"], tables["user"], meta["item_titles"], Schema.from_dict(meta["schema"]))


def _build_table(kind: FeatureKind, column: pd.Series, max_tokens: int, text_vocabulary_size: int) -> FeatureTable:
    present = column.notna().to_numpy()
    rows = len(column) + 1
    if kind == FeatureKind.CATEGORICAL:
        values = [str(v) for v, ok in zip(column, present) if ok and str(v) != ""]
        vocabulary = sorted(set(values))
        index = {v: i + 1 for i, v in enumerate(vocabulary)}
        table = np.zeros(rows, np.int32)
        table[1:] = [index.get(str(v), 0) if ok else 0 for v, ok in zip(column, present)]
        return FeatureTable(kind, table, vocabulary)
    if kind == FeatureKind.MULTI_CATEGORICAL:
        vocabulary = sorted({str(v) for tags, ok in zip(column, present) if ok for v in tags})
        index = {v: i for i, v in enumerate(vocabulary)}
        table = np.zeros((rows, len(vocabulary)), np.float32)
        for row, (tags, ok) in enumerate(zip(column, present), start=1):
            if ok:
                table[row, [index[str(v)] for v in tags]] = 1.0
        return FeatureTable(kind, table, vocabulary)
    if kind == FeatureKind.NUMERIC:
        numbers = column.astype("float64").to_numpy()
        finite = np.isfinite(numbers)
        mean = numbers[finite].mean() if finite.any() else 0.0
        std = numbers[finite].std() if finite.any() else 1.0
        table = np.zeros((rows, 1), np.float32)
        table[1:, 0] = np.where(finite, (numbers - mean) / (std or 1.0), 0.0)
        return FeatureTable(kind, table, [])
    if kind == FeatureKind.TEXT:
        token_lists = [tokenize(t) if ok else [] for t, ok in zip(column, present)]
        counts = collections.Counter(token for tokens in token_lists for token in tokens)
        vocabulary = [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))][:text_vocabulary_size]
        index = {t: i + 2 for i, t in enumerate(vocabulary)}
        table = np.zeros((rows, max_tokens), np.int32)
        for row, tokens in enumerate(token_lists, start=1):
            ids = [index.get(t, 1) for t in tokens][:max_tokens]
            table[row, : len(ids)] = ids
        return FeatureTable(kind, table, vocabulary)
    raise ValueError(f"feature kind {kind.value!r} has no table form")
