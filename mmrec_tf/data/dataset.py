"""The in-memory dataset every source produces."""

from __future__ import annotations

import dataclasses

import pandas as pd

from mmrec_tf.data.schema import FeatureKind, FeatureRole, Schema
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

    def __post_init__(self) -> None:
        self.validate()

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
            return str(self.items.at[item_id, self.item_title_feature])
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
            declared = {f.name for f in self.schema.select(role=role) if f.kind != FeatureKind.ID}
            missing = declared - set(table.columns)
            if missing:
                raise DataError(
                    f"schema declares {role.value} features {sorted(missing)} that the {role.value} table lacks",
                    path=where,
                )
