"""What a ranking model learns to predict: a zoo entry's ``data.label``, parsed.

Three forms are accepted:

- ``"<column> >= <number>"``, e.g. ``"rating >= 4"``: explicit ratings become
  clicks (the DIN paper's MovieLens protocol, 4 and 5 stars positive);
- ``"<column>"``, e.g. ``"label"``: the interactions already hold a 0/1
  label column (clicks, purchases);
- ``"sampled"`` or ``"sampled:<n>"``: implicit feedback, every interaction is
  a positive and gets ``n`` (default 1) random items the user never touched
  as negatives (the DIN paper's protocol for its Amazon data, Zhou et al.,
  KDD 2018, sec. 6.1).

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
_SAMPLED = re.compile(r"^\s*sampled\s*(?::\s*(\d+)\s*)?$")
FORMS = ("'<column> >= <number>' (e.g. 'rating >= 4'), a 0/1 label column ('label') or 'sampled[:<negatives>]' "
         "(every interaction positive, random untouched items negative)")
SAMPLED = "sampled"


@dataclasses.dataclass(frozen=True)
class LabelSpec:
    """A parsed label: positive where ``column >= threshold``; ``explicit`` when the column itself is 0/1.

    An explicit column is read as ``column >= 1`` once its values are
    checked to be 0 or 1, so both forms build examples the same way (see
    :func:`~mmrec_tf.data.labels.build_rating_examples`). ``negatives > 0``
    is the sampled form: no column is read, every interaction is a positive
    with ``negatives`` sampled negatives
    (:func:`~mmrec_tf.data.labels.build_sampled_examples`).

    Example:
    >>> parse_label("rating >= 4")
    LabelSpec(column='rating', threshold=4.0, explicit=False, negatives=0)
    >>> parse_label("label").text, parse_label("sampled").text, parse_label("sampled:4").negatives
    ('label', 'sampled:1', 4)
    """

    column: str
    threshold: float
    explicit: bool = False
    negatives: int = 0

    @property
    def text(self) -> str:
        """The canonical spelling, as written into ``run.json``."""
        if self.negatives:
            return f"{SAMPLED}:{self.negatives}"
        return self.column if self.explicit else f"{self.column} >= {self.threshold:g}"


def parse_label(text, key_path: str = "data.label", source: str | None = None) -> LabelSpec:
    """Parse ``"rating >= 4"``, ``"label"`` or ``"sampled[:n]"``; anything else raises a ConfigError naming ``key_path``.

    Example:
    >>> parse_label(" rating>=3.5 ")
    LabelSpec(column='rating', threshold=3.5, explicit=False, negatives=0)
    >>> parse_label("rating > 4")
    Traceback (most recent call last):
    ...
    mmrec_tf.errors.ConfigError: data.label: cannot read 'rating > 4'; expected '<column> >= <number>' \
(e.g. 'rating >= 4'), a 0/1 label column ('label') or 'sampled[:<negatives>]' (every interaction positive, \
random untouched items negative)
    """
    if not isinstance(text, str):
        raise ConfigError(f"expected a string, {FORMS}; got {type(text).__name__} {text!r}", key_path=key_path,
                          source=source)
    sampled = _SAMPLED.match(text)
    if sampled:
        negatives = int(sampled.group(1) or 1)
        if negatives < 1:
            raise ConfigError(f"{text!r}: the number of sampled negatives must be at least 1", key_path=key_path,
                              source=source)
        return LabelSpec(SAMPLED, 1.0, negatives=negatives)
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
