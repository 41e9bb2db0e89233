"""Vocabularies and per-item / per-user feature tables that models look up by index."""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import pathlib
import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from mmrec_tf.data.dataset import Dataset
from mmrec_tf.data.item_feature_table import ItemFeatureTable
from mmrec_tf.data.schema import Feature, FeatureKind, FeatureRole, Schema
from mmrec_tf.data.hashed_vocabulary import load_vocabulary
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
    multi-hot), float32 ``[V, 1]`` (numeric, standardised), int32
    ``[V, max_tokens]`` (text: token indices, 0 = padding, 1 = out of
    vocabulary, then ``vocabulary``) or float32 ``[V, D]`` (vector:
    precomputed modality vectors; ``vocabulary`` is empty).

    ``present`` (vector tables only) is bool ``[V]``: True where the item has a
    vector. A False row is an absent modality (no poster, no plot), not a
    zero vector; row 0 is always False. ``provenance`` records where vectors
    came from (``modality``, ``encoder``, ``encoder_version``).

    Example:
    >>> table = FeatureTable(FeatureKind.VECTOR, np.zeros((3, 2), np.float32), [],
    ...                      present=np.array([False, True, False]))
    >>> table.spec()
    {'kind': 'vector', 'shape': [2], 'cardinality': 2}
    """

    kind: FeatureKind
    values: np.ndarray
    vocabulary: list[str]
    present: np.ndarray | None = None
    provenance: dict[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.kind = FeatureKind(self.kind)
        if self.kind == FeatureKind.VECTOR:
            if self.present is None or self.values.ndim != 2:
                raise ValueError("a vector FeatureTable needs values [V, D] and a bool present mask [V]")
            self.present = np.asarray(self.present)
            if self.present.shape != self.values.shape[:1] or self.present.dtype != np.bool_:
                raise ValueError(f"vector FeatureTable: present must be bool of shape {self.values.shape[:1]}, "
                                 f"got {self.present.dtype} {self.present.shape}")
        elif self.present is not None:
            raise ValueError(f"only vector tables have a presence mask, not {self.kind.value} tables")

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
    def build(cls, dataset: Dataset, max_text_tokens: int = 8, text_vocabulary_size: int = 5000,
              item_feature_tables: Mapping[str, ItemFeatureTable] | None = None) -> "FeatureSpace":
        """Vocabularies and tables of ``dataset``.

        Item ``vector`` tables come from ``dataset.item_vectors`` and from
        ``item_feature_tables`` (name → :class:`ItemFeatureTable`), aligned
        to the item vocabulary (see :meth:`add_item_vectors`).
        """
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
        space = cls(user_vocab, item_vocab, tables[FeatureRole.ITEM], tables[FeatureRole.USER], titles,
                    dataset.schema)
        for name, table in dataset.item_vectors.items():
            space.item_features[name] = vector_feature_table(table, item_vocab, name)
        for name, table in (item_feature_tables or {}).items():
            space.add_item_vectors(name, table)
        return space

    def add_item_vectors(self, name: str, table: ItemFeatureTable) -> FeatureTable:
        """Add a modality's vectors as item feature ``name`` (kind ``vector``), aligned to the item vocabulary.

        Row ``i`` of the new table is the vector of item index ``i`` (row 0 and
        items the table lacks or marks missing: zeros, ``present`` False). The
        schema gains ``name`` as an item ``vector`` feature.

        Example:
        >>> from mmrec_tf.data.sources import make_synthetic
        >>> space = FeatureSpace.build(make_synthetic(num_users=5, num_items=8, num_clusters=2))
        >>> ids = list(space.item_vocab.ids[:2])
        >>> poster = ItemFeatureTable(ids, [[1.0, 2.0, 2.0], [0.0, 0.0, 0.0]], np.array([True, False]),
        ...                           modality="image", encoder="toy", encoder_version="1")
        >>> space.add_item_vectors("poster", poster).present[:4].tolist()
        [False, True, False, False]
        """
        Feature(name, FeatureKind.VECTOR, FeatureRole.ITEM)  # checks the name
        if name in self.item_features or name in self.schema:
            raise ValueError(f"add_item_vectors: the feature space already has a feature {name!r}")
        feature_table = vector_feature_table(table, self.item_vocab, name)
        self.item_features[name] = feature_table
        self.schema = Schema([*self.schema, Feature(name, FeatureKind.VECTOR, FeatureRole.ITEM,
                                                    f"{table.modality} vectors from {table.encoder}")])
        return feature_table

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
                if table.kind == FeatureKind.VECTOR:
                    arrays[f"{role}.{name}.present"] = table.present
                    meta["tables"][f"{role}.{name}"]["provenance"] = table.provenance
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
                kind = FeatureKind(info["kind"])
                present = arrays[f"{key}.present"] if kind == FeatureKind.VECTOR else None
                tables[role][name] = FeatureTable(kind, arrays[key], info["vocabulary"], present,
                                                  dict(info.get("provenance", {})))
        return cls(load_vocabulary(folder / "user_ids.json"), load_vocabulary(folder / "item_ids.json"),
                   tables["item"], tables["user"], meta["item_titles"], Schema.from_dict(meta["schema"]))


def vector_feature_table(table: ItemFeatureTable, item_vocab: Vocabulary, name: str = "") -> FeatureTable:
    """An :class:`ItemFeatureTable` aligned to a vocabulary: row ``i`` = item index ``i``, row 0 absent.

    Raises ValueError when no item of the vocabulary has a vector in ``table``
    (a table built for another dataset or with a wrong id map).

    Example:
    >>> poster = ItemFeatureTable(["b"], np.ones((1, 2)), np.array([True]), modality="image",
    ...                           encoder="toy", encoder_version="1")
    >>> aligned = vector_feature_table(poster, Vocabulary(["a", "b"]))
    >>> aligned.values.tolist(), aligned.present.tolist()
    ([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]], [False, False, True])
    """
    if not isinstance(table, ItemFeatureTable):
        raise ValueError(f"vector feature {name!r}: expected an ItemFeatureTable, got {type(table).__name__}")
    values, present = table.to_index_matrix(["", *item_vocab.ids])
    if not present.any():
        raise ValueError(
            f"vector feature {name!r}: none of the {len(item_vocab)} items has a vector in the table "
            f"({table.modality}, {table.encoder}; {len(table)} ids such as {table.item_ids[:3].tolist()}, "
            f"{table.num_present} present)")
    provenance = {"modality": table.modality, "encoder": table.encoder, "encoder_version": table.encoder_version}
    return FeatureTable(FeatureKind.VECTOR, values, [], present, provenance)


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


# === Catalogs of new items, encoded with an existing space's vocabularies ===

CATALOG_TITLE_COLUMNS = ("title", "name")


def read_item_table(path: str | os.PathLike, schema: Schema) -> pd.DataFrame:
    """Read an ``items.csv`` (``item_id`` + feature columns) with the feature kinds of ``schema``.

    Columns named like an item feature of ``schema`` are parsed as the folder
    loader parses them for training: ``numeric`` → float (an empty cell is
    missing), ``multi_categorical`` → a tuple of the ``|``-separated values,
    ``categorical`` / ``text`` → stripped text. Other columns stay text. The
    frame is indexed by ``item_id``; a duplicate id or a bad number raises
    :class:`~mmrec_tf.errors.DataError` naming the file, line and field.

    Example:
    >>> import tempfile, pathlib
    >>> from mmrec_tf.data.schema import Feature
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "items.csv"
    >>> _ = path.write_text("item_id,genres,year\\nm1,Drama|War,1998\\nm2,,\\n")
    >>> schema = Schema([Feature("item_id", "id", "item"), Feature("genres", "multi_categorical", "item"),
    ...                  Feature("year", "numeric", "item")])
    >>> read_item_table(path, schema).to_dict("index")
    {'m1': {'genres': ('Drama', 'War'), 'year': 1998.0}, 'm2': {'genres': (), 'year': nan}}
    """
    from mmrec_tf.data.sources.delimited import Column, read_delimited
    from mmrec_tf.errors import DataError

    raw = read_delimited(path, [Column("item_id")], extra_columns=True).frame
    duplicated = raw["item_id"].duplicated().to_numpy()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated)[0])
        raise DataError(f"duplicate item id {raw['item_id'].iloc[row]!r}", path=path, line=row + 2, field="item_id")
    kinds = {feature.name: feature.kind for feature in schema.select(role=FeatureRole.ITEM, kinds=TABLE_KINDS)}
    table = pd.DataFrame(index=pd.Index(raw["item_id"].tolist(), name="item_id"))
    for column in raw.columns:
        if column == "item_id":
            continue
        text = raw[column].fillna("").astype(str).str.strip()
        kind = kinds.get(column)
        if kind == FeatureKind.NUMERIC:
            numbers = pd.to_numeric(text.where(text != ""), errors="coerce")
            bad = (numbers.isna() & (text != "")).to_numpy()
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise DataError(f"expected a number, got {text.iloc[row]!r}", path=path, line=row + 2, field=column)
            table[column] = numbers.astype("float64").to_numpy()
        elif kind == FeatureKind.MULTI_CATEGORICAL:
            table[column] = [tuple(v.strip() for v in value.split("|") if v.strip()) for value in text]
        else:
            table[column] = text.tolist()
    return table


def extend_item_space(space: FeatureSpace, items: pd.DataFrame) -> FeatureSpace:
    """A copy of ``space`` whose item vocabulary also holds the ids of ``items`` it lacks.

    New items are appended after the known ones (known indices do not
    change). Their rows of every item feature table are built from the
    columns of ``items`` with the space's own vocabularies, exactly as
    :meth:`FeatureSpace.build` encodes training items: unknown categories and
    tags map to "missing", unknown text tokens to the out-of-vocabulary token,
    numbers are standardised with the training mean and deviation (recovered
    from known items listed in ``items`` with their raw values, since the
    table stores standardised values only). ``vector`` features (precomputed
    modality vectors), and features ``items`` has no column for, are missing
    for new items. Rows of known items are kept as they are, whatever
    ``items`` says about them.

    Raises:
        ValueError: a numeric feature's standardisation cannot be recovered.

    Example:
    >>> from mmrec_tf.data.sources import make_synthetic
    >>> space = FeatureSpace.build(make_synthetic(num_users=5, num_items=8, num_clusters=2))
    >>> genre = space.item_features["genres"].vocabulary[0]
    >>> items = pd.DataFrame({"genres": [(genre,)], "title": ["A brand new item"]}, index=["new-1"])
    >>> bigger = extend_item_space(space, items)
    >>> bigger.num_items, bigger.item_vocab.lookup(["new-1"]).tolist()
    (9, [9])
    >>> bigger.item_features["genres"].values[9].tolist().index(1.0)
    0
    """
    ids = [str(item) for item in items.index]
    new_ids = [item for item in dict.fromkeys(ids) if item not in space.item_vocab]
    new_rows = items.set_axis(ids).loc[new_ids] if new_ids else items.iloc[:0]
    known_rows = items.set_axis(ids).loc[[item for item in dict.fromkeys(ids) if item in space.item_vocab]]
    tables = {}
    for name, table in space.item_features.items():
        tables[name] = _extended_table(space, name, table, new_rows, known_rows)
    title = next((column for column in CATALOG_TITLE_COLUMNS if column in items.columns), None)
    titles = list(space.item_titles) + [str(new_rows.at[item, title]) if title else item for item in new_ids]
    return FeatureSpace(space.user_vocab, Vocabulary([*space.item_vocab.ids, *new_ids]), tables,
                        space.user_features, titles, space.schema)


def _extended_table(space: FeatureSpace, name: str, table: FeatureTable, new_rows: pd.DataFrame,
                    known_rows: pd.DataFrame) -> FeatureTable:
    count = len(new_rows)
    if table.kind.value == "vector":
        values = np.concatenate([table.values, np.zeros((count, table.values.shape[1]), table.values.dtype)])
        present = np.concatenate([table.present, np.zeros(count, bool)])
        return FeatureTable(table.kind, values, list(table.vocabulary), present=present,
                            provenance=dict(table.provenance))
    column = new_rows[name] if count and name in new_rows.columns else pd.Series([None] * count, dtype=object)
    if table.kind == FeatureKind.CATEGORICAL:
        index = {value: position + 1 for position, value in enumerate(table.vocabulary)}
        rows = np.array([index.get(str(v), 0) if _is_present(v) else 0 for v in column], np.int32)
    elif table.kind == FeatureKind.MULTI_CATEGORICAL:
        index = {value: position for position, value in enumerate(table.vocabulary)}
        rows = np.zeros((count, len(table.vocabulary)), np.float32)
        for row, tags in enumerate(column):
            known = [index[str(tag)] for tag in (tags if _is_present(tags) else ()) if str(tag) in index]
            rows[row, known] = 1.0
    elif table.kind == FeatureKind.TEXT:
        index = {token: position + 2 for position, token in enumerate(table.vocabulary)}
        rows = np.zeros((count, table.values.shape[1]), np.int32)
        for row, text in enumerate(column):
            tokens = [index.get(token, 1) for token in (tokenize(text) if _is_present(text) else [])]
            tokens = tokens[: table.values.shape[1]]
            rows[row, : len(tokens)] = tokens
    elif table.kind == FeatureKind.NUMERIC:
        rows = np.zeros((count, 1), np.float32)
        numbers = pd.to_numeric(column, errors="coerce").astype("float64").to_numpy()
        finite = np.isfinite(numbers)
        if finite.any():
            mean, deviation = _numeric_standardisation(space, name, table, known_rows)
            rows[finite, 0] = (numbers[finite] - mean) / deviation
    else:
        raise ValueError(f"item feature {name!r}: kind {table.kind.value!r} cannot be built for new items")
    return FeatureTable(table.kind, np.concatenate([table.values, rows.astype(table.values.dtype)]),
                        list(table.vocabulary))


def _is_present(value) -> bool:
    return value is not None and not (isinstance(value, float) and np.isnan(value))


def _numeric_standardisation(space: FeatureSpace, name: str, table: FeatureTable,
                             known_rows: pd.DataFrame) -> tuple[float, float]:
    """The training ``(mean, deviation)`` of a numeric feature, fitted on known items' raw and stored values."""
    raw = pd.to_numeric(known_rows[name], errors="coerce").astype("float64").to_numpy() if len(known_rows) else []
    raw = np.asarray(raw, np.float64)
    stored = table.values[space.item_vocab.lookup(list(known_rows.index)), 0].astype(np.float64)
    usable = np.isfinite(raw)
    if len(np.unique(raw[usable])) < 2 or len(np.unique(stored[usable])) < 2:
        raise ValueError(
            f"numeric item feature {name!r}: new items' values cannot be standardised like the training "
            f"items' (the run stores standardised values only); list at least two known items with different "
            f"{name!r} values in the catalog so the training mean and deviation can be recovered")
    deviation, mean = np.polyfit(stored[usable], raw[usable], 1)
    if not np.allclose(mean + deviation * stored[usable], raw[usable], rtol=1e-3, atol=1e-3 * np.abs(raw).max()):
        raise ValueError(f"numeric item feature {name!r}: the catalog's values of known items differ from the "
                         "values the model was trained with; cannot standardise new items consistently")
    return float(mean), float(deviation)
