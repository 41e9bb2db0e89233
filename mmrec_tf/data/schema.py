"""Typed feature schema: what each column is and which tower it feeds."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Iterator


class FeatureKind(str, enum.Enum):
    """What kind of values a feature holds.

    The kind decides how a feature is encoded into a table the model can look up:
    ``categorical`` → one index, ``multi_categorical`` → a multi-hot row,
    ``numeric`` → a standardised float, ``text`` → token ids, ``id`` → the
    user or item vocabulary itself, ``vector`` → a precomputed dense vector
    per item (text, image or audio features from a frozen encoder, read from an
    :class:`~mmrec_tf.data.ItemFeatureTable`) with a per-item presence mask.
    ``image`` names an item's image file (None when it has none); models do
    not read it, ``mmrec features`` turns it into a ``vector`` table offline.
    ``timestamp`` and ``label`` describe interactions and are used by splits
    and ranking tasks.
    """

    ID = "id"
    CATEGORICAL = "categorical"
    MULTI_CATEGORICAL = "multi_categorical"
    NUMERIC = "numeric"
    TEXT = "text"
    VECTOR = "vector"
    IMAGE = "image"
    TIMESTAMP = "timestamp"
    LABEL = "label"


class FeatureRole(str, enum.Enum):
    """Which entity a feature describes, and so which tower it feeds."""

    USER = "user"
    ITEM = "item"
    INTERACTION = "interaction"


@dataclasses.dataclass(frozen=True)
class Feature:
    """One named, typed feature.

    Example:
    >>> Feature("genres", FeatureKind.MULTI_CATEGORICAL, FeatureRole.ITEM).kind.value
    'multi_categorical'
    """

    name: str
    kind: FeatureKind
    role: FeatureRole
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", FeatureKind(self.kind))
        object.__setattr__(self, "role", FeatureRole(self.role))
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ValueError(
                f"feature name {self.name!r}: expected letters, digits and underscores "
                "(it becomes a serving input name)"
            )


class Schema:
    """An ordered set of features, looked up by name.

    A schema drives the models: item-role features feed the item tower,
    user-role features the user tower. Its names are the names that appear in
    the model's input dicts and in the exported signatures.

    Example:
    >>> schema = Schema([
    ...     Feature("user_id", "id", "user"),
    ...     Feature("item_id", "id", "item"),
    ...     Feature("genres", "multi_categorical", "item"),
    ... ])
    >>> [f.name for f in schema.select(role="item", kinds=["multi_categorical"])]
    ['genres']
    """

    def __init__(self, features: Iterable[Feature]):
        self._features: dict[str, Feature] = {}
        for feature in features:
            if feature.name in self._features:
                raise ValueError(f"schema: feature {feature.name!r} is declared twice")
            self._features[feature.name] = feature

    def __getitem__(self, name: str) -> Feature:
        try:
            return self._features[name]
        except KeyError:
            raise KeyError(
                f"schema has no feature {name!r}; it has {sorted(self._features)}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._features

    def __iter__(self) -> Iterator[Feature]:
        return iter(self._features.values())

    def __len__(self) -> int:
        return len(self._features)

    def __repr__(self) -> str:
        body = ", ".join(f"{f.name}:{f.role.value}/{f.kind.value}" for f in self)
        return f"Schema({body})"

    @property
    def names(self) -> list[str]:
        return list(self._features)

    def select(
        self, role: str | FeatureRole | None = None, kinds: Iterable[str] | None = None
    ) -> list[Feature]:
        """Features of one role and/or some kinds, in declaration order."""
        role = FeatureRole(role) if role is not None else None
        kinds = {FeatureKind(k) for k in kinds} if kinds is not None else None
        return [
            f
            for f in self
            if (role is None or f.role == role) and (kinds is None or f.kind in kinds)
        ]

    def to_dict(self) -> list[dict[str, str]]:
        return [
            {"name": f.name, "kind": f.kind.value, "role": f.role.value, "description": f.description}
            for f in self
        ]

    @classmethod
    def from_dict(cls, rows: list[dict[str, str]]) -> "Schema":
        return cls(Feature(**row) for row in rows)
