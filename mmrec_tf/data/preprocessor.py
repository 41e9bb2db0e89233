"""The one object between interaction rows and a model's index tensors: :class:`Preprocessor`."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from mmrec_tf.data.dataset import Dataset
from mmrec_tf.data.feature_space import FeatureSpace
from mmrec_tf.data.label_spec import LabelSpec, parse_label
from mmrec_tf.data.labels import DEFAULT_HISTORY_RULE, HISTORIES, build_rating_examples, build_sampled_examples
from mmrec_tf.data.pipeline import Examples, build_examples, seen_items
from mmrec_tf.data.splits import Split
from mmrec_tf.data.user_queries import UserQueries, user_queries


def default_label(dataset: Dataset) -> str:
    """The label of a dataset's ranking examples when none is given: its 0/1 ``label`` column, else ``rating >= 4``.

    Example:
    >>> from mmrec_tf.data.sources import make_synthetic
    >>> default_label(make_synthetic(num_users=2, num_items=4, num_clusters=1))
    'rating >= 4'
    """
    columns = dataset.interactions.columns
    if "label" in columns:
        return "label"
    if "rating" in columns:
        return "rating >= 4"
    raise ValueError(f"ranking needs labels, but the interactions of {dataset.name!r} have neither a 'label' nor "
                     f"a 'rating' column (they have {list(columns)}); add one of them")


@dataclasses.dataclass(frozen=True)
class Preprocessor:
    """The rules that turn interaction rows into model inputs, kept in one object.

    This follows keras-hub's Backbone / Preprocessor / Task split: models read
    index tensors, and this object makes them from rows. It holds:

    - ``space``: the user and item vocabularies (exact or hashed) and the item
      feature tables (:class:`~mmrec_tf.data.feature_space.FeatureSpace`),
      whose lookups the export serves with (``make_tf_lookup``);
    - ``max_history`` and the history rule of :mod:`~mmrec_tf.data.pipeline`:
      a row sees its user's earlier rows of the splits it may see, the most
      recent ``max_history`` known items, oldest first, 0-padded at the end;
    - ``label``: a :class:`~mmrec_tf.data.label_spec.LabelSpec` for labelled
      (ranking) examples, None for the interactions themselves (retrieval);
    - ``history``: which earlier rows a labelled example's history keeps
      (``"positive"``, ``"all"`` or ``"rated"``; see
      :func:`~mmrec_tf.data.labels.build_rating_examples`). A ``sampled``
      label makes every interaction a positive, so its history is ``"all"``;
    - ``seed``: the draws of sampled negatives.

    Training examples (:meth:`examples`), per-user retrieval queries
    (:meth:`queries`), the items a full ranking excludes (:meth:`seen`) and a
    user's history as served (:meth:`user_history`) all come from it, so
    training, evaluation, updates and serving's inputs follow one rule.
    :meth:`record` is what ``run.json`` keeps of it, and :meth:`from_record`
    reads it back.

    Example:
    >>> from mmrec_tf.data.sources import make_synthetic
    >>> from mmrec_tf.data.splits import leave_last_out
    >>> ds = make_synthetic(num_users=3, num_items=6, num_clusters=2, interactions_per_user=4)
    >>> preprocessor = Preprocessor(FeatureSpace.build(ds), max_history=3)
    >>> examples = preprocessor.examples(leave_last_out(ds))
    >>> examples["test"].history.shape, preprocessor.record()
    ((3, 3), {'max_history': 3})
    >>> ranking = Preprocessor(preprocessor.space, max_history=3, label=parse_label("rating >= 4"))
    >>> ranking.history, ranking.record()
    ('positive', {'max_history': 3, 'label': 'rating >= 4', 'history': 'positive'})
    """

    space: FeatureSpace
    max_history: int = 50
    label: LabelSpec | None = None
    history: str | None = None
    seed: int = 0

    def __post_init__(self):
        if isinstance(self.max_history, bool) or not isinstance(self.max_history, (int, np.integer)) \
                or self.max_history < 1:
            raise ValueError(f"max_history must be a whole number >= 1, got {self.max_history!r}")
        if self.label is None:
            if self.history is not None:
                raise ValueError(f"history {self.history!r} describes labelled examples; without a label the "
                                 "examples are the interactions themselves")
            return
        if self.label.negatives and self.history not in (None, "all"):
            raise ValueError(f"data.history {self.history!r}: with data.label {self.label.text!r} every "
                             "interaction is a positive, so the history is every earlier interaction ('all')")
        if self.history is not None and self.history not in HISTORIES:
            raise ValueError(f"data.history must be one of {HISTORIES}, got {self.history!r}")
        if self.history is None:
            object.__setattr__(self, "history", "all" if self.label.negatives else DEFAULT_HISTORY_RULE)

    @classmethod
    def for_data(cls, dataset: Dataset, space: FeatureSpace, max_history: int = 50, labelled: bool = False,
                 label: str | None = None, history: str | None = None, seed: int = 0) -> Preprocessor:
        """The preprocessor of ``dataset``'s examples; labelled ones default to :func:`default_label`.

        Unlabelled examples take neither ``label`` nor ``history``.

        Example:
        >>> from mmrec_tf.data.sources import make_synthetic
        >>> ds = make_synthetic(num_users=2, num_items=4, num_clusters=1)
        >>> Preprocessor.for_data(ds, FeatureSpace.build(ds), labelled=True).label.text
        'rating >= 4'
        >>> Preprocessor.for_data(ds, FeatureSpace.build(ds), label="rating >= 4")
        Traceback (most recent call last):
        ...
        ValueError: label and history describe ranking examples; a retrieval model trains on the interactions themselves
        """
        if not labelled:
            if label is not None or history is not None:
                raise ValueError("label and history describe ranking examples; a retrieval model trains on the "
                                 "interactions themselves")
            return cls(space, max_history, seed=seed)
        spec = parse_label(label if label is not None else default_label(dataset))
        return cls(space, max_history, spec, history, seed)

    @classmethod
    def from_record(cls, data: dict, space: FeatureSpace, seed: int = 0, labelled: bool | None = None) -> Preprocessor:
        """Read back what :meth:`record` wrote (``run.json``'s ``data`` section) over a saved ``space``.

        ``labelled`` (the run's task labels its examples) is checked against
        the record when given: a ranking record without ``label`` is refused.

        Example:
        >>> from mmrec_tf.data.sources import make_synthetic
        >>> space = FeatureSpace.build(make_synthetic(num_users=2, num_items=4, num_clusters=1))
        >>> record = Preprocessor(space, 5, parse_label("sampled"), seed=1).record()
        >>> Preprocessor.from_record(record, space, seed=1) == Preprocessor(space, 5, parse_label("sampled"), seed=1)
        True
        """
        label = data.get("label")
        if labelled is not None and labelled != (label is not None):
            raise ValueError(f"{'a ranking run needs' if labelled else 'a retrieval run has no'} "
                             f"data.label, got {label!r}")
        return cls(space, data["max_history"], None if label is None else parse_label(label),
                   data.get("history") if label is not None else None, seed)

    def with_space(self, space: FeatureSpace) -> Preprocessor:
        """The same rules over another (e.g. grown) feature space."""
        return dataclasses.replace(self, space=space)

    @property
    def labelled(self) -> bool:
        """Whether :meth:`examples` carry a 0/1 ``label`` (ranking) or are the interactions (retrieval)."""
        return self.label is not None

    @property
    def examples_per_interaction(self) -> int:
        """How many examples :meth:`examples` makes of each interaction: 1, or 1 + its sampled negatives."""
        return 1 + (self.label.negatives if self.label is not None else 0)

    def record(self) -> dict:
        """What ``run.json``'s ``data`` section keeps of these rules (the split and source are recorded apart)."""
        record = {"max_history": int(self.max_history)}
        if self.label is not None:
            record.update(label=self.label.text, history=self.history)
        return record

    def serving_inputs(self, max_history: int | None = None, rating_levels: int = 0) -> dict:
        """What a client must send as ``history`` to an export of a model trained on these examples.

        :meth:`record` plus ``history_rule``, one sentence for people. A served
        history must hold the items the training histories held: with
        ``history="positive"`` only the interactions the label calls positive.
        ``max_history`` is how many of them the model keeps (default: this
        preprocessor's); ``rating_levels`` > 0 for a rating-aware model, which
        also takes each history item's rating.
        :func:`~mmrec_tf.export.saved_model.export_model` writes this to
        ``assets.extra/mmrec_inputs.json``.

        Example:
        >>> from mmrec_tf.data.sources import make_synthetic
        >>> space = FeatureSpace.build(make_synthetic(num_users=2, num_items=4, num_clusters=1))
        >>> Preprocessor(space, 20, parse_label("rating >= 4")).serving_inputs()["history_rule"]
        "the user's earlier items with rating >= 4, oldest first; the model keeps the 20 most recent known ones"
        >>> Preprocessor(space, 20, parse_label("label")).serving_inputs(max_history=5)["history_rule"]
        "the user's earlier items with label = 1, oldest first; the model keeps the 5 most recent known ones"
        >>> Preprocessor(space, 20, parse_label("rating >= 4"), "rated").serving_inputs(rating_levels=5)["history_rule"]
        'every earlier item the user rated, with its rating 1..5 in history_rating, oldest first; the model keeps the 20 most recent known ones'
        """
        kept = self.max_history if max_history is None else int(max_history)
        if self.label is None or self.history == "all":
            items = "every earlier item of the user"
        elif self.history == "positive":
            liked = f"{self.label.column} = 1" if self.label.explicit else self.label.text
            items = f"the user's earlier items with {liked}"
        elif rating_levels:
            items = f"every earlier item the user rated, with its rating 1..{rating_levels} in history_rating"
        else:
            items = "every earlier item the user rated, liked or not"
        return {**self.record(), "max_history": kept,
                "history_rule": f"{items}, oldest first; the model keeps the {kept} most recent known ones"}

    def examples(self, split: Split) -> dict[str, Examples]:
        """Examples of every split of ``split``: the interactions, or labelled per ``label`` and ``history``.

        A ``sampled`` label makes every interaction a positive followed by
        ``label.negatives`` random items the user never touched, drawn with
        ``seed`` (:func:`~mmrec_tf.data.labels.build_sampled_examples`). Other labels
        threshold or check a column (:func:`~mmrec_tf.data.labels.build_rating_examples`).
        A column that is missing or, for a 0/1 label, holds another value is refused
        in one line that names the user and item.
        """
        if self.label is None:
            return build_examples(split, self.space, self.max_history)
        spec = self.label
        if spec.negatives:
            return build_sampled_examples(split, self.space, self.max_history, spec.negatives, seed=self.seed)
        log = split.log
        if spec.column not in log.columns:
            raise ValueError(f"data.label {spec.text!r}: the interactions have no {spec.column!r} column; they have "
                             f"{[c for c in log.columns if c not in ('split', 'position')]}")
        if spec.explicit:
            values = log[spec.column].to_numpy(dtype=np.float64)
            bad = np.flatnonzero((values != 0) & (values != 1))
            if bad.size:
                raise ValueError(f"data.label {spec.text!r}: column {spec.column!r} must hold 0 or 1; user "
                                 f"{log['user_id'].iloc[bad[0]]!r}, item {log['item_id'].iloc[bad[0]]!r} has "
                                 f"{values[bad[0]]} ({bad.size} such rows); for ratings write e.g. "
                                 f"'{spec.column} >= 4'")
        return build_rating_examples(split, self.space, self.max_history, threshold=spec.threshold,
                                     history=self.history, column=spec.column)

    def queries(self, split: Split, target: str = "test") -> UserQueries:
        """One retrieval query per user with ``target`` rows: the visible history, the held-out and seen items.

        See :func:`~mmrec_tf.data.user_queries.user_queries`. Labelled (ranking) examples have no such
        queries: their evaluation scores each example.
        """
        if self.label is not None:
            raise ValueError(f"queries rank the whole catalog for retrieval; these examples are labelled "
                             f"({self.label.text!r}) and are evaluated example by example")
        return user_queries(split, self.space, self.max_history, target)

    def seen(self, split: Split, target: str = "test") -> dict[int, np.ndarray]:
        """Per user index, the item indices visible before ``target`` rows: what a full ranking excludes.

        Every visible row counts, whatever ``history`` keeps: a user who had
        an item, liked or not, is not recommended it again.
        """
        return seen_items(split, self.space, target)

    def user_history(self, interactions: pd.DataFrame, user: str) -> list[str]:
        """A user's item ids in ``interactions``, oldest first, as this preprocessor's histories keep them.

        Labelled examples with ``history="positive"`` keep only the positively
        labelled interactions, as a click log would.

        Example:
        >>> from mmrec_tf.data.sources import make_synthetic
        >>> space = FeatureSpace.build(make_synthetic(num_users=2, num_items=4, num_clusters=1))
        >>> rows = pd.DataFrame({"user_id": ["u", "u", "v"], "item_id": ["a", "b", "c"], "rating": [5, 2, 4]})
        >>> Preprocessor(space, 5).user_history(rows, "u"), \\
        ...     Preprocessor(space, 5, parse_label("rating >= 4")).user_history(rows, "u")
        (['a', 'b'], ['a'])
        """
        rows = interactions[interactions["user_id"] == user]
        if self.label is not None and self.history == "positive":
            rows = rows[rows[self.label.column].to_numpy(dtype=np.float64) >= self.label.threshold]
        return rows["item_id"].tolist()
