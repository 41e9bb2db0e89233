"""Labelled examples for ranking models: a 0/1 ``label`` in ``Examples.extras``.

Three ways to get labels:

- :func:`label_from_column`: the source already has a ``label`` column
  (clicks, purchases; 1 = positive, 0 = negative).
- :func:`label_by_threshold`: explicit ratings become clicks, ``rating >= t``
  → 1, as the DIN paper does on MovieLens (4 and 5 stars positive).
- :func:`sample_negatives`: implicit data has only positives; each positive
  gets ``ratio`` sampled items the user never interacted with, labelled 0
  (:func:`build_sampled_examples` does it for every split, label ``"sampled"``).

:func:`build_rating_examples` does the DIN paper's MovieLens setup in one
call: threshold labels, and histories made of the user's earlier liked items
(or of every earlier rated item with its rating alongside, ``history="rated"``).
"""

from __future__ import annotations

import numpy as np

from mmrec_tf.data.feature_space import FeatureSpace
from mmrec_tf.data.grouping import items_by_user
from mmrec_tf.data.pipeline import Examples, build_examples, examples_by_split, row_histories
from mmrec_tf.data.splits import Split

SAMPLERS = ("uniform", "popularity")
HISTORIES = ("all", "positive", "rated")
DEFAULT_HISTORY_RULE = "positive"
"""Which earlier rows a labelled example's history holds unless told: the liked ones, as a click log would."""
MAX_REJECTION_ROUNDS = 50


def _with_label(examples: Examples, label: np.ndarray) -> Examples:
    return Examples(examples.user_id, examples.item_id, examples.history,
                    {**examples.extras, "label": label.astype(np.float32)})


def label_from_column(examples: Examples) -> Examples:
    """Use the source's own ``label`` column (it must hold only 0 and 1).

    Example:
    >>> import numpy as np
    >>> ex = Examples(np.array([1, 2]), np.array([3, 4]), np.zeros((2, 1), np.int32),
    ...               {"label": np.array([1.0, 0.0], np.float32)})
    >>> label_from_column(ex).extras["label"].tolist()
    [1.0, 0.0]
    """
    if "label" not in examples.extras:
        raise ValueError(f"label_from_column: the examples have no 'label' column; they have "
                         f"{sorted(examples.extras)} (use label_by_threshold or sample_negatives)")
    label = np.asarray(examples.extras["label"], dtype=np.float64)
    bad = np.flatnonzero((label != 0) & (label != 1))
    if bad.size:
        raise ValueError(f"label_from_column: field 'label' must be 0 or 1; example {int(bad[0])} has "
                         f"{float(label[bad[0]])} ({bad.size} such examples)")
    return _with_label(examples, label)


def label_by_threshold(examples: Examples, threshold: float = 4.0, column: str = "rating") -> Examples:
    """Label 1 where ``extras[column] >= threshold``, else 0 (DIN on MovieLens: rating ≥ 4).

    Example:
    >>> import numpy as np
    >>> ex = Examples(np.array([1, 1, 2]), np.array([3, 4, 5]), np.zeros((3, 1), np.int32),
    ...               {"rating": np.array([5.0, 3.0, 4.0], np.float32)})
    >>> label_by_threshold(ex, threshold=4).extras["label"].tolist()
    [1.0, 0.0, 1.0]
    """
    if column not in examples.extras:
        raise ValueError(f"label_by_threshold: the examples have no {column!r} column; they have "
                         f"{sorted(examples.extras)}")
    values = np.asarray(examples.extras[column], dtype=np.float64)
    missing = np.flatnonzero(~np.isfinite(values))
    if missing.size:
        raise ValueError(f"label_by_threshold: field {column!r} of example {int(missing[0])} is "
                         f"{float(values[missing[0]])}; expected a number ({missing.size} such examples)")
    return _with_label(examples, values >= threshold)


def user_positives(*examples: Examples) -> dict[int, np.ndarray]:
    """Per user index, the sorted item indices the user interacted with in any of ``examples``.

    Example:
    >>> import numpy as np
    >>> ex = Examples(np.array([1, 1, 2]), np.array([4, 3, 4]), np.zeros((3, 1), np.int32), {})
    >>> {u: v.tolist() for u, v in user_positives(ex).items()}
    {1: [3, 4], 2: [4]}
    """
    return items_by_user(np.concatenate([e.user_id for e in examples]), np.concatenate([e.item_id for e in examples]))


def sampling_distribution(num_items: int, sampler: str = "uniform", alpha: float = 0.75,
                          item_counts: np.ndarray | None = None) -> np.ndarray:
    """Probability of drawing each item index ``0..num_items`` as a negative (index 0 never).

    ``uniform``: every item alike. ``popularity``: proportional to
    ``count ** alpha`` (word2vec's unigram^0.75 with ``alpha=0.75``; items never
    seen get probability 0).

    Example:
    >>> sampling_distribution(3, "popularity", alpha=1.0, item_counts=np.array([0, 1, 1, 2])).tolist()
    [0.0, 0.25, 0.25, 0.5]
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    if num_items < 1:
        raise ValueError(f"num_items must be at least 1, got {num_items}")
    if sampler == "uniform":
        weights = np.ones(num_items + 1)
    else:
        if item_counts is None:
            raise ValueError("the popularity sampler needs item_counts (length num_items + 1, index 0 unused)")
        counts = np.asarray(item_counts, dtype=np.float64)
        if counts.shape != (num_items + 1,) or (counts < 0).any():
            raise ValueError(f"item_counts must be {num_items + 1} non-negative counts (index 0 unused); "
                             f"got shape {counts.shape}")
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        weights = np.where(counts > 0, counts ** alpha, 0.0)
    weights[0] = 0.0
    if weights.sum() <= 0:
        raise ValueError("no item can be sampled: every count is 0")
    return weights / weights.sum()


def sample_negatives(examples: Examples, num_items: int, ratio: int = 1, sampler: str = "uniform",
                     alpha: float = 0.75, known_positives: dict[int, np.ndarray] | None = None,
                     item_counts: np.ndarray | None = None, seed: int = 0) -> Examples:
    """Every example becomes a positive (label 1) followed by ``ratio`` sampled negatives (label 0).

    A negative keeps its positive's user, history and timestamp and swaps the
    item for one drawn from :func:`sampling_distribution` that is never among
    ``known_positives[user]`` (default: the users' items in ``examples``; pass
    :func:`user_positives` of every split to exclude all of a user's items).
    ``item_counts`` for the popularity sampler defaults to how often each item
    occurs in ``examples``. Extras other than ``timestamp`` describe the
    positive interaction only and are dropped. Same ``seed``, same negatives.

    Example:
    >>> import numpy as np
    >>> ex = Examples(np.array([1, 2]), np.array([1, 2]), np.zeros((2, 1), np.int32), {})
    >>> out = sample_negatives(ex, num_items=3, ratio=2, seed=0)
    >>> out.extras["label"].tolist(), out.user_id.tolist()
    ([1.0, 0.0, 0.0, 1.0, 0.0, 0.0], [1, 1, 1, 2, 2, 2])
    >>> bool(out.item_id[1] != 1 and out.item_id[2] != 1)
    True
    """
    if not isinstance(ratio, (int, np.integer)) or ratio < 1:
        raise ValueError(f"ratio must be a positive integer, got {ratio!r}")
    if len(examples) == 0:
        raise ValueError("sample_negatives: no examples")
    top = int(examples.item_id.max())
    if top > num_items:
        raise ValueError(f"sample_negatives: item index {top} is above num_items={num_items}")
    if sampler == "popularity" and item_counts is None:
        item_counts = np.bincount(examples.item_id, minlength=num_items + 1)
    probability = sampling_distribution(num_items, sampler, alpha, item_counts)
    positives = known_positives if known_positives is not None else user_positives(examples)
    keys = np.unique(np.concatenate([np.int64(u) * (num_items + 1) + np.asarray(items, np.int64)
                                     for u, items in positives.items()] or [np.array([], np.int64)]))
    sampleable = np.flatnonzero(probability > 0)
    users = np.repeat(examples.user_id.astype(np.int64), ratio)
    for user in np.unique(users):
        if np.isin(sampleable, positives.get(int(user), ())).all():
            raise ValueError(f"sample_negatives: user index {int(user)} has every sampleable item as a "
                             f"positive ({len(sampleable)} items); no negative exists")

    rng = np.random.default_rng(seed)
    cumulative = np.cumsum(probability)
    negatives = np.zeros(len(users), np.int64)
    pending = np.arange(len(users))
    for _ in range(MAX_REJECTION_ROUNDS):
        if not len(pending):
            break
        draws = np.minimum(np.searchsorted(cumulative, rng.random(len(pending)) * cumulative[-1], side="right"),
                           num_items)
        negatives[pending] = draws
        rejected = np.isin(users[pending] * (num_items + 1) + draws, keys) | (probability[draws] == 0)
        pending = pending[rejected]
    for row in pending:
        allowed = probability.copy()
        allowed[positives.get(int(users[row]), np.array([], np.int64))] = 0.0
        negatives[row] = rng.choice(num_items + 1, p=allowed / allowed.sum())

    group = ratio + 1
    size = len(examples) * group
    item_id = np.empty(size, np.int32)
    item_id[0::group] = examples.item_id
    for k in range(ratio):
        item_id[k + 1::group] = negatives[k::ratio]
    label = np.zeros(size, np.float32)
    label[0::group] = 1.0
    extras = {"label": label}
    if "timestamp" in examples.extras:
        extras["timestamp"] = np.repeat(examples.extras["timestamp"], group)
    return Examples(np.repeat(examples.user_id, group), item_id, np.repeat(examples.history, group, axis=0), extras)


def build_rating_examples(split: Split, space: FeatureSpace, max_history: int = 50, threshold: float = 4.0,
                          history: str = DEFAULT_HISTORY_RULE, column: str = "rating") -> dict[str, Examples]:
    """Examples per split labelled ``rating >= threshold``, with the history a click model should see.

    ``history="all"``: every earlier rated item (as
    :func:`~mmrec_tf.data.pipeline.build_examples`). ``history="positive"``:
    only the earlier items the user rated ``>= threshold`` — the behaviours a
    click log would hold, since a history of item ids cannot say whether the
    user liked them. ``history="rated"``: every earlier rated item, plus
    ``extras["history_rating"]`` (int32 ``[N, max_history]``, aligned with
    ``history``: position ``j`` holds the rating the user gave history item
    ``j``, 0 at padding), so a model can tell liked from disliked behaviours
    (:class:`~mmrec_tf.models.EmbeddingMLP`'s ``rating_levels``); the ratings
    must then be whole numbers ``>= 1`` (MovieLens: 1-5 stars). Either way
    the visibility rules are :func:`~mmrec_tf.data.pipeline.build_examples`'
    (a train row sees earlier train rows, valid rows earlier train rows, test
    rows earlier train and valid rows), so a history never holds the example's
    own or a later rating; histories are oldest first and 0-padded at the end.

    Example:
    >>> from mmrec_tf.data.sources import make_synthetic
    >>> from mmrec_tf.data.splits import leave_last_out
    >>> ds = make_synthetic(num_users=2, num_items=8, num_clusters=2, interactions_per_user=6)
    >>> examples = build_rating_examples(leave_last_out(ds), FeatureSpace.build(ds), max_history=4)
    >>> sorted(examples["test"].extras), examples["test"].history.shape
    (['label', 'rating', 'timestamp'], (2, 4))
    >>> rated = build_rating_examples(leave_last_out(ds), FeatureSpace.build(ds), max_history=4, history="rated")
    >>> sorted(rated["test"].extras), rated["test"].extras["history_rating"].shape
    (['history_rating', 'label', 'rating', 'timestamp'], (2, 4))
    >>> bool(((rated["test"].extras["history_rating"] > 0) == (rated["test"].history > 0)).all())
    True
    """
    if history not in HISTORIES:
        raise ValueError(f"history must be one of {HISTORIES}, got {history!r}")
    if column not in split.log.columns:
        raise ValueError(f"build_rating_examples: the interactions have no {column!r} column; they have "
                         f"{list(split.log.columns)}")
    log = split.log
    ratings = log[column].to_numpy(dtype=np.float64)
    kept = carried = None
    if history == "rated":
        bad = np.flatnonzero((ratings != np.round(ratings)) | (ratings < 1))
        if bad.size:
            raise ValueError(f"build_rating_examples(history='rated'): field {column!r} must hold whole numbers "
                             f">= 1 (they become rating levels); row {int(bad[0])} has {ratings[bad[0]]}")
        carried = ratings.astype(np.int32)
    elif history == "positive":
        kept = ratings >= threshold
    items = space.item_vocab.lookup(log["item_id"])
    histories, history_ratings = row_histories(split, items, max_history, kept=kept, carried=carried)
    examples = {name: label_by_threshold(part, threshold, column) for name, part in
                examples_by_split(log, space.user_vocab.lookup(log["user_id"]), items, histories).items()}
    if carried is not None:
        labels = log["split"].to_numpy()
        for name, part in examples.items():
            part.extras["history_rating"] = history_ratings[labels == name]
    return examples


def build_sampled_examples(split: Split, space: FeatureSpace, max_history: int = 50, negatives: int = 1,
                           seed: int = 0) -> dict[str, Examples]:
    """Implicit feedback as click examples: every interaction a positive, ``negatives`` untouched items as negatives.

    The DIN paper's protocol for data without negative feedback (Zhou et al.,
    KDD 2018, sec. 6.1, Amazon): each interaction of each split is a positive
    (label 1), followed by ``negatives`` items drawn uniformly from those the
    user never interacted with in *any* split, with the positive's user,
    history and timestamp (label 0). Histories are every earlier interaction,
    by :func:`~mmrec_tf.data.pipeline.build_examples`' visibility rules. Split
    ``i`` (train, valid, test) draws with ``seed + i``: same seed, same
    negatives.

    Example:
    >>> from mmrec_tf.data.sources import make_synthetic
    >>> from mmrec_tf.data.splits import leave_last_out
    >>> ds = make_synthetic(num_users=3, num_items=8, num_clusters=2, interactions_per_user=4)
    >>> examples = build_sampled_examples(leave_last_out(ds), FeatureSpace.build(ds), max_history=3)
    >>> examples["test"].extras["label"].tolist()
    [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    """
    by_split = build_examples(split, space, max_history)
    touched = user_positives(*by_split.values())
    return {name: sample_negatives(examples, space.num_items, ratio=negatives, known_positives=touched,
                                   seed=seed + index) if len(examples) else examples
            for index, (name, examples) in enumerate(by_split.items())}
