"""Grow a trained run's feature space with the users and items of new data, keeping every known index.

A served model looks ids up by index, and its embedding tables are indexed the
same way, so known ids must keep their index when data arrives: new ids are
appended after the known ones (:func:`grow_space`), and their feature-table rows
are encoded with the run's own rules and vocabularies
(:func:`~mmrec_tf.data.feature_space.extend_item_space`: unknown categories map
to "missing", unknown words to the out-of-vocabulary token, numbers are
standardised with the training mean and deviation).

Hashed user vocabularies (:class:`~mmrec_tf.data.hashed_vocabulary.HashedVocabulary`)
do not grow: their listed users keep their rows and every new user already
has a trained row, the bucket its id hashes to. Appending new users to the
listed ids would move every bucket (bucket ``b`` is index ``N + 1 + b``), so
the frequent-user list is fixed at training time; rebuild it with a full
retrain (``with_user_buckets``) to give new frequent users rows of their own.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from mmrec_tf.data.dataset import Dataset
from mmrec_tf.data.feature_space import FeatureSpace, FeatureTable, extend_item_space
from mmrec_tf.data.hashed_vocabulary import HashedVocabulary
from mmrec_tf.data.vocabulary import Vocabulary
from mmrec_tf.data.schema import FeatureKind, FeatureRole, Schema

__all__ = ["VocabularyGrowth", "grow_space", "id_type_difference", "schema_difference", "with_spare_rows"]

MODEL_INPUT_KINDS = (FeatureKind.CATEGORICAL, FeatureKind.MULTI_CATEGORICAL, FeatureKind.NUMERIC,
                     FeatureKind.TEXT, FeatureKind.VECTOR)


@dataclasses.dataclass
class VocabularyGrowth:
    """How many users and items a space had before an update and how many were appended.

    ``users_hashed`` counts new users sent to hash buckets (hashed user
    vocabularies do not grow, see the module docstring).

    Example:
    >>> VocabularyGrowth(users_before=3, users_added=1, items_before=5, items_added=2).record()["items_added"]
    2
    """

    users_before: int
    users_added: int
    items_before: int
    items_added: int
    users_hashed: int = 0

    def record(self) -> dict:
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        hashed = f" ({self.users_hashed} new users hashed to trained buckets)" if self.users_hashed else ""
        return (f"users {self.users_before} + {self.users_added}{hashed}, "
                f"items {self.items_before} + {self.items_added}")


def schema_difference(trained: Schema, new: Schema) -> str | None:
    """What differs between a run's schema and new data's, in one sentence (None when they agree).

    Compared: the user and item features a model reads (name, role, kind)
    and the interaction columns (``rating``, ``timestamp``, ``label``).
    ``vector`` features are compared only when the new data has any, since
    a folder of CSV files carries no precomputed vectors (new items then
    have no vector, as :func:`~mmrec_tf.data.feature_space.extend_item_space`
    documents).

    Example:
    >>> from mmrec_tf.data.schema import Feature
    >>> base = [Feature("user_id", "id", "user"), Feature("item_id", "id", "item")]
    >>> old = Schema([*base, Feature("genres", "multi_categorical", "item")])
    >>> schema_difference(old, Schema([*base, Feature("genres", "categorical", "item")]))
    "item feature 'genres' is item categorical in the new data but item multi_categorical in the run"
    >>> schema_difference(old, Schema(base))
    "the new data lacks item feature 'genres' (multi_categorical) that the run was trained with"
    """
    def described(schema: Schema, with_vectors: bool) -> dict[str, tuple[str, str]]:
        kinds = [*MODEL_INPUT_KINDS[:4], FeatureKind.TIMESTAMP, FeatureKind.LABEL, FeatureKind.ID]
        if with_vectors:
            kinds.append(FeatureKind.VECTOR)
        return {f.name: (f.role.value, f.kind.value) for f in schema if f.kind in kinds}

    with_vectors = any(f.kind == FeatureKind.VECTOR for f in new)
    old, fresh = described(trained, with_vectors), described(new, with_vectors)
    for name, (role, kind) in old.items():
        noun = "interaction column" if role == FeatureRole.INTERACTION.value else f"{role} feature"
        if name not in fresh:
            return f"the new data lacks {noun} {name!r} ({kind}) that the run was trained with"
        if fresh[name] != (role, kind):
            return (f"{noun} {name!r} is {' '.join(fresh[name])} in the new data but {role} {kind} in the run")
    for name, (role, kind) in fresh.items():
        if name not in old:
            noun = "interaction column" if role == FeatureRole.INTERACTION.value else f"{role} feature"
            return f"the new data has {noun} {name!r} ({kind}) that the run was not trained with"
    return None


def id_type_difference(space: FeatureSpace, dataset: Dataset) -> str | None:
    """Whether the new data's ids look like another id scheme than the run's (all-digit vs not), else None.

    Ids are strings everywhere, so ``"42"`` and ``"u42"`` are different ids:
    new data whose user (or item) ids are all numbers while the run's are not
    (or the reverse) shares no id with the run and would only add users or
    items, silently. Refused instead.

    Example:
    >>> from mmrec_tf.data.sources import make_synthetic
    >>> ds = make_synthetic(num_users=3, num_items=4, num_clusters=2)
    >>> id_type_difference(FeatureSpace.build(ds), ds) is None
    True
    """
    for column, vocab in (("user_id", space.user_vocab), ("item_id", space.item_vocab)):
        known = [str(i) for i in vocab.ids]
        fresh = [str(i) for i in pd.unique(dataset.interactions[column])]
        if not known or not fresh or any(i in vocab for i in fresh[:1000]):
            continue
        known_digits = all(i.isdigit() for i in known[:1000])
        fresh_digits = all(i.isdigit() for i in fresh[:1000])
        if known_digits != fresh_digits:
            kind = lambda digits: "numbers" if digits else "text"  # noqa: E731
            return (f"{column} values are {kind(fresh_digits)} in the new data (e.g. {fresh[0]!r}) but "
                    f"{kind(known_digits)} in the run (e.g. {known[0]!r}); no new id matches a known one")
    return None


def grow_space(space: FeatureSpace, dataset: Dataset) -> tuple[FeatureSpace, VocabularyGrowth]:
    """``space`` with the users and items of ``dataset`` it lacks appended, and how much it grew.

    Known ids keep their index and their feature-table rows (whatever
    ``dataset`` says about them). New items are the dataset's item-table ids
    and interaction item ids the space lacks, in that order; their rows are
    encoded by :func:`~mmrec_tf.data.feature_space.extend_item_space` from
    ``dataset.items``, and their ``vector`` rows come from
    ``dataset.item_vectors`` when it has the feature (else absent). New users
    likewise from ``dataset.users``; a hashed user vocabulary stays as it is.

    Example:
    >>> from mmrec_tf.data.sources import make_synthetic
    >>> ds = make_synthetic(num_users=4, num_items=6, num_clusters=2)
    >>> small = Dataset("small", ds.interactions[ds.interactions["user_id"] != ds.user_ids()[-1]], ds.schema,
    ...                 items=ds.items.iloc[:4])
    >>> space = FeatureSpace.build(small)
    >>> grown, growth = grow_space(space, ds)
    >>> str(growth), grown.item_vocab.lookup(space.item_vocab.ids).tolist() == list(range(1, space.num_items + 1))
    ('users 3 + 1, items 5 + 1', True)
    """
    items = _raw_rows(dataset.items, dataset.item_ids())
    grown = extend_item_space(space, items)
    new_item_ids = list(grown.item_vocab.ids[space.num_items:])
    for name, table in grown.item_features.items():
        if table.kind == FeatureKind.VECTOR and name in dataset.item_vectors and new_item_ids:
            grown.item_features[name] = _with_vectors(table, dataset.item_vectors[name], space.num_items,
                                                      new_item_ids)
    user_vocab, user_tables, hashed = space.user_vocab, space.user_features, 0
    new_users = [user for user in dataset.user_ids() if user not in space.user_vocab]
    if isinstance(space.user_vocab, HashedVocabulary):
        hashed = len(new_users)
    elif new_users:
        users = _raw_rows(dataset.users, dataset.user_ids())
        # the user tables are encoded by the same rules as item tables: view them as a catalog and extend it
        as_catalog = FeatureSpace(space.item_vocab, space.user_vocab, space.user_features, {}, [], space.schema)
        extended = extend_item_space(as_catalog, users)
        user_vocab, user_tables = extended.item_vocab, extended.item_features
    result = FeatureSpace(user_vocab, grown.item_vocab, grown.item_features, user_tables, grown.item_titles,
                          space.schema)
    growth = VocabularyGrowth(users_before=space.num_users, users_added=result.num_users - space.num_users,
                              items_before=space.num_items, items_added=len(new_item_ids), users_hashed=hashed)
    return result, growth


def _raw_rows(table: pd.DataFrame | None, ids: list[str]) -> pd.DataFrame:
    """The raw feature rows of ``ids`` (ids the table lacks: all missing)."""
    if table is None:
        return pd.DataFrame(index=pd.Index(ids))
    return table.reindex(ids)


def _with_vectors(table: FeatureTable, vectors, known: int, new_ids: list[str]) -> FeatureTable:
    values, present = vectors.to_index_matrix(new_ids)
    if values.shape[1] != table.values.shape[1]:
        raise ValueError(f"vector feature: the new data's vectors have {values.shape[1]} dimensions, the run's "
                         f"{table.values.shape[1]}")
    merged = table.values.copy()
    merged[known + 1:] = values
    mask = table.present.copy()
    mask[known + 1:] = present
    return FeatureTable(table.kind, merged, list(table.vocabulary), mask, dict(table.provenance))



SPARE_PREFIX = "\x00spare-"


def with_spare_rows(space: FeatureSpace, users: int, items: int) -> FeatureSpace:
    """``space`` with ``users`` and ``items`` placeholder ids appended, each with empty feature rows.

    Only for building a model whose tables have spare rows to grow into
    (:func:`~mmrec_tf.update.grow_model`); the placeholders (ids starting
    with ``"\\x00spare-"``) are never looked up. A hashed user vocabulary
    gets no spare users (it does not grow).

    Example:
    >>> from mmrec_tf.data.sources import make_synthetic
    >>> space = FeatureSpace.build(make_synthetic(num_users=4, num_items=6, num_clusters=2))
    >>> padded = with_spare_rows(space, users=2, items=3)
    >>> padded.num_users, padded.num_items, float(padded.item_features["genres"].values[7:].sum())
    (6, 9, 0.0)
    """
    def padded(tables: dict[str, FeatureTable], count: int) -> dict[str, FeatureTable]:
        result = {}
        for name, table in tables.items():
            values = np.concatenate([table.values, np.zeros((count, *table.values.shape[1:]), table.values.dtype)])
            present = None if table.present is None else np.concatenate([table.present, np.zeros(count, bool)])
            result[name] = FeatureTable(table.kind, values, list(table.vocabulary), present, dict(table.provenance))
        return result

    if isinstance(space.user_vocab, HashedVocabulary):
        users = 0
    user_vocab = (Vocabulary([*space.user_vocab.ids, *(f"{SPARE_PREFIX}{i}" for i in range(users))]) if users
                  else space.user_vocab)
    item_vocab = Vocabulary([*space.item_vocab.ids, *(f"{SPARE_PREFIX}{i}" for i in range(items))])
    return FeatureSpace(user_vocab, item_vocab, padded(space.item_features, items),
                        padded(space.user_features, users), [*space.item_titles, *[""] * items], space.schema)
