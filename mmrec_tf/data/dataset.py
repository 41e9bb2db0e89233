"""The in-memory dataset every source produces."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import pandas as pd

from mmrec_tf.data.item_feature_table import ItemFeatureTable
from mmrec_tf.data.schema import Feature, FeatureKind, FeatureRole, Schema
from mmrec_tf.errors import DataError

INTERACTION_COLUMNS = ("user_id", "item_id", "rating", "timestamp", "label")


@dataclasses.dataclass
class Dataset:
    """Interactions plus optional item and user tables, typed by a schema.

    ``interactions`` has string columns ``user_id`` and ``item_id`` and
    optional ``rating`` (float), ``timestamp`` (int64 seconds) and ``label``
    (float). ``items`` and ``users`` are indexed by the string id; their
    columns are the item- and user-role features of ``schema``
    (multi-categorical values are tuples of strings, text is ``str``).
    ``split_labels``, when the source fixes a split (explicit train/test files),
    holds ``"train"``, ``"valid"`` or ``"test"`` for each interaction row.
    ``item_vectors`` holds precomputed item modality vectors (poster, plot,
    audio...) as :class:`~mmrec_tf.data.ItemFeatureTable` s by feature name;
    each is declared in ``schema`` as an item feature of kind ``vector`` (use
    :meth:`with_item_vectors` to attach them). Items a table lacks, or marks
    missing, simply have no vector for that modality.

    Example:
    >>> import pandas as pd
    >>> from mmrec_tf.data.schema import Feature, Schema
    >>> ds = Dataset(
    ...     name="toy",
    ...     interactions=pd.DataFrame({"user_id": ["u1", "u1"], "item_id": ["a", "b"]}),
    ...     schema=Schema([Feature("user_id", "id", "user"), Feature("item_id", "id", "item")]),
    ... )
    >>> ds.num_interactions, sorted(ds.item_ids())
    (2, ['a', 'b'])
    """

    name: str
    interactions: pd.DataFrame
    schema: Schema
    items: pd.DataFrame | None = None
    users: pd.DataFrame | None = None
    source: str = ""
    item_title_feature: str | None = None
    split_labels: pd.Series | None = None
    item_vectors: dict[str, ItemFeatureTable] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self._ids_as_strings()
        self.validate()

    def _ids_as_strings(self) -> None:
        """Ids are strings everywhere (the serving inputs are strings): convert numeric id columns."""
        for column in ("user_id", "item_id"):
            if column in self.interactions.columns and not pd.api.types.is_string_dtype(self.interactions[column]):
                self.interactions = self.interactions.assign(**{column: self.interactions[column].astype(str)})
        for name in ("items", "users"):
            table = getattr(self, name)
            if table is not None and not pd.api.types.is_string_dtype(table.index):
                setattr(self, name, table.set_axis(table.index.astype(str), axis=0))

    @property
    def num_interactions(self) -> int:
        return len(self.interactions)

    @property
    def has_timestamps(self) -> bool:
        return "timestamp" in self.interactions.columns

    def item_ids(self) -> list[str]:
        """Every item id known to the dataset: the item table's, then any only seen in interactions."""
        known = list(self.items.index) if self.items is not None else []
        seen = set(known)
        extra = [i for i in pd.unique(self.interactions["item_id"]) if i not in seen]
        return known + extra

    def user_ids(self) -> list[str]:
        known = list(self.users.index) if self.users is not None else []
        seen = set(known)
        extra = [u for u in pd.unique(self.interactions["user_id"]) if u not in seen]
        return known + extra

    def item_title(self, item_id: str) -> str:
        """A display name for an item: its title feature when there is one, else its id."""
        if self.item_title_feature and self.items is not None and item_id in self.items.index:
            title = self.items.at[item_id, self.item_title_feature]
            if not pd.isna(title) and str(title).strip():
                return str(title)
        return item_id

    def validate(self) -> None:
        """Check columns and dtypes against the schema; raise DataError naming the field."""
        where = self.source or self.name
        for column in ("user_id", "item_id"):
            if column not in self.interactions.columns:
                raise DataError(
                    f"interactions need a {column!r} column; got {list(self.interactions.columns)}",
                    path=where,
                    field=column,
                )
        unknown = [c for c in self.interactions.columns if c not in INTERACTION_COLUMNS]
        if unknown:
            raise DataError(
                f"unexpected interaction columns {unknown}; expected some of {list(INTERACTION_COLUMNS)}",
                path=where,
            )
        if self.split_labels is not None:
            if len(self.split_labels) != len(self.interactions):
                raise DataError(
                    f"{len(self.split_labels)} split labels for {len(self.interactions)} interactions",
                    path=where, field="split",
                )
            bad = set(self.split_labels) - {"train", "valid", "test"}
            if bad:
                raise DataError(
                    f"split labels must be train, valid or test; got {sorted(bad)}", path=where, field="split"
                )
        for table, role in ((self.items, FeatureRole.ITEM), (self.users, FeatureRole.USER)):
            if table is None:
                continue
            if table.index.has_duplicates:
                dup = table.index[table.index.duplicated()][0]
                raise DataError(f"duplicate {role.value} id {dup!r}", path=where, field=f"{role.value}_id")
            declared = {f.name for f in self.schema.select(role=role)
                        if f.kind not in (FeatureKind.ID, FeatureKind.VECTOR)}
            missing = declared - set(table.columns)
            if missing:
                raise DataError(
                    f"schema declares {role.value} features {sorted(missing)} that the {role.value} table lacks",
                    path=where,
                )
        self._validate_item_vectors(where)

    def _validate_item_vectors(self, where: str) -> None:
        declared = {f.name for f in self.schema.select(role=FeatureRole.ITEM, kinds=[FeatureKind.VECTOR])}
        unattached = sorted(declared - set(self.item_vectors))
        if unattached:
            raise DataError(f"schema declares vector feature(s) {unattached} but item_vectors has no table for them",
                            path=where, field=unattached[0])
        known = None
        for name, table in sorted(self.item_vectors.items()):
            if name not in declared:
                raise DataError(f"item_vectors[{name!r}] is not declared in the schema as an item 'vector' "
                                "feature; attach tables with Dataset.with_item_vectors", path=where, field=name)
            if not isinstance(table, ItemFeatureTable):
                raise DataError(f"item_vectors[{name!r}] must be an ItemFeatureTable, got {type(table).__name__}",
                                path=where, field=name)
            known = set(self.item_ids()) if known is None else known
            if not any(item_id in known for item_id in table.item_ids.tolist()):
                raise DataError(
                    f"none of the {len(table)} item ids of vector table {name!r} ({table.modality}, "
                    f"{table.encoder}) is an item of this dataset, e.g. {table.item_ids[:3].tolist()} vs "
                    f"{sorted(known)[:3]}; was it built for another dataset or with another id map?",
                    path=where, field=name)

    def with_item_vectors(self, tables: Mapping[str, ItemFeatureTable]) -> "Dataset":
        """A copy with ``tables`` attached as item ``vector`` features (added to the schema).

        Example:
        >>> import numpy as np
        >>> from mmrec_tf.data.sources import make_synthetic
        >>> ds = make_synthetic(num_users=3, num_items=4, num_clusters=2)
        >>> poster = ItemFeatureTable(ds.item_ids()[:2], [[1.0, 2.0], [0.0, 0.0]], np.array([True, False]),
        ...                           modality="image", encoder="toy", encoder_version="1")
        >>> ds.with_item_vectors({"poster": poster}).schema["poster"].kind.value
        'vector'
        """
        features = list(self.schema)
        vectors = dict(self.item_vectors)
        for name, table in tables.items():
            if name in self.schema:
                raise DataError(f"feature {name!r} already exists ({self.schema[name].kind.value}); "
                                "pick another name for the vector table", path=self.source or self.name, field=name)
            features.append(Feature(name, FeatureKind.VECTOR, FeatureRole.ITEM,
                                    f"{getattr(table, 'modality', '?')} vectors from {getattr(table, 'encoder', '?')}"))
            vectors[name] = table
        return dataclasses.replace(self, schema=Schema(features), item_vectors=vectors)
