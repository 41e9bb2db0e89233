"""What a ranking model learns to predict: a zoo entry's ``data.label``, parsed.

Two forms are accepted:

- ``"<column> >= <number>"``, e.g. ``"rating >= 4"``: explicit ratings become
  clicks (the DIN paper's MovieLens protocol, 4 and 5 stars positive);
- ``"<column>"``, e.g. ``"label"``: the interactions already hold a 0/1
  label column (clicks, purchases).

The column is an interaction column that can hold numbers: ``rating`` or
``label`` (see :data:`~mmrec_tf.data.dataset.INTERACTION_COLUMNS`). Anything
else is a :class:`~mmrec_tf.errors.ConfigError` naming the key path.
"""

from __future__ import annotations

import dataclasses
import math
import re

from mmrec_tf.errors import ConfigError

LABEL_COLUMNS = ("rating", "label")
"""Interaction columns a label can be read from."""

_THRESHOLD = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*>=\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
_COLUMN = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*$")
FORMS = "'<column> >= <number>' (e.g. 'rating >= 4') or a 0/1 label column ('label')"


@dataclasses.dataclass(frozen=True)
class LabelSpec:
    """A parsed label: positive where ``column >= threshold``; ``explicit`` when the column itself is 0/1.

    An explicit column is read as ``column >= 1`` once its values are
    checked to be 0 or 1, so both forms build examples the same way (see
    :func:`~mmrec_tf.data.labels.build_rating_examples`).

    Example:
    >>> parse_label("rating >= 4")
    LabelSpec(column='rating', threshold=4.0, explicit=False)
    >>> parse_label("label").text
    'label'
    """

    column: str
    threshold: float
    explicit: bool = False

    @property
    def text(self) -> str:
        """The canonical spelling, as written into ``run.json``."""
        return self.column if self.explicit else f"{self.column} >= {self.threshold:g}"


def parse_label(text, key_path: str = "data.label", source: str | None = None) -> LabelSpec:
    """Parse ``"rating >= 4"`` or ``"label"``; anything else raises a ConfigError naming ``key_path``.

    Example:
    >>> parse_label(" rating>=3.5 ")
    LabelSpec(column='rating', threshold=3.5, explicit=False)
    >>> parse_label("rating > 4")
    Traceback (most recent call last):
    ...
    mmrec_tf.errors.ConfigError: data.label: cannot read 'rating > 4'; expected '<column> >= <number>' \
(e.g. 'rating >= 4') or a 0/1 label column ('label')
    """
    if not isinstance(text, str):
        raise ConfigError(f"expected a string, {FORMS}; got {type(text).__name__} {text!r}", key_path=key_path,
                          source=source)
    threshold = _THRESHOLD.match(text)
    column = _COLUMN.match(text)
    if threshold:
        spec = LabelSpec(threshold.group(1), float(threshold.group(2)))
    elif column:
        spec = LabelSpec(column.group(1), 1.0, explicit=True)
    else:
        raise ConfigError(f"cannot read {text!r}; expected {FORMS}", key_path=key_path, source=source)
    if spec.column not in LABEL_COLUMNS:
        raise ConfigError(f"{text!r} reads column {spec.column!r}; a label comes from one of the interaction "
                          f"columns {list(LABEL_COLUMNS)}", key_path=key_path, source=source)
    if not math.isfinite(spec.threshold):
        raise ConfigError(f"{text!r}: the threshold must be a finite number", key_path=key_path, source=source)
    return spec
