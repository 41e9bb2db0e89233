"""Train / valid / test splits of an interaction log."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pandas as pd

from mmrec_tf.data.dataset import Dataset

SPLITS = ("train", "valid", "test")
SPLIT_METHODS = ("leave_last_out", "random", "predefined", "temporal_fraction")
"""The split names :func:`make_split` knows."""


@dataclasses.dataclass
class Split:
    """An interaction log in per-user time order with a ``split`` label per row.

    ``log`` holds the dataset's interaction columns plus ``split`` and
    ``position`` (the row's rank in its user's time order, from 0); it is sorted
    by user (in first-seen order), then position. Rows with equal timestamps keep
    their order in the source file, unless the split was asked to shuffle ties
    (``leave_last_out(..., shuffle_ties=True)``): then they are in a random order
    drawn from its ``seed``.

    Example:
    >>> from mmrec_tf.data.sources import make_synthetic
    >>> split = leave_last_out(make_synthetic(num_users=4, num_items=8, num_clusters=2,
    ...                                       interactions_per_user=5))
    >>> len(split.train), len(split.valid), len(split.test)
    (12, 4, 4)
    """

    log: pd.DataFrame
    method: str

    def rows(self, name: str) -> pd.DataFrame:
        if name not in SPLITS:
            raise ValueError(f"split name must be one of {SPLITS}, got {name!r}")
        return self.log[self.log["split"] == name]

    @property
    def train(self) -> pd.DataFrame:
        return self.rows("train")

    @property
    def valid(self) -> pd.DataFrame:
        return self.rows("valid")

    @property
    def test(self) -> pd.DataFrame:
        return self.rows("test")


def _time_ordered(dataset: Dataset, tie_seed: int | None = None) -> pd.DataFrame:
    """The log in per-user time order; equal timestamps in file order, or in a random order seeded by ``tie_seed``."""
    log = dataset.interactions.copy()
    log["_row"] = np.arange(len(log)) if tie_seed is None else np.random.default_rng(tie_seed).permutation(len(log))
    order_keys = ["user_id", "timestamp", "_row"] if dataset.has_timestamps else ["user_id", "_row"]
    first_seen = {u: i for i, u in enumerate(pd.unique(log["user_id"]))}
    log["_user_rank"] = log["user_id"].map(first_seen)
    log = log.sort_values(["_user_rank"] + order_keys[1:], kind="stable")
    log["position"] = log.groupby("user_id", sort=False).cumcount().astype("int32")
    return log


def _finish(log: pd.DataFrame, labels: np.ndarray, method: str) -> Split:
    log = log.assign(split=labels).drop(columns=["_row", "_user_rank"]).reset_index(drop=True)
    return Split(log=log, method=method)


def leave_last_out(dataset: Dataset, min_interactions: int = 3, shuffle_ties: bool = False, seed: int = 0) -> Split:
    """Per user in time order: last → test, second-last → valid, the rest → train.

    Users with fewer than ``min_interactions`` interactions keep them all in train.
    Interactions with the same timestamp keep their order in the source file;
    with ``shuffle_ties`` they are put in a random order drawn from ``seed``
    (MovieLens stores whole seconds, and 44 % of ML-100K users' last two
    ratings share one, so which of them is "last" is otherwise the file's choice).

    Example:
    >>> frame = pd.DataFrame({"user_id": ["u"] * 4, "item_id": ["a", "b", "c", "d"], "timestamp": [1, 2, 2, 2]})
    >>> from mmrec_tf.data.schema import Feature, Schema
    >>> ds = Dataset("tied", frame, Schema([Feature("user_id", "id", "user"), Feature("item_id", "id", "item"),
    ...                                     Feature("timestamp", "timestamp", "interaction")]))
    >>> leave_last_out(ds).log["item_id"].tolist()
    ['a', 'b', 'c', 'd']
    >>> [leave_last_out(ds, shuffle_ties=True, seed=seed).log["item_id"].tolist() for seed in (2, 3)]
    [['a', 'c', 'd', 'b'], ['a', 'd', 'c', 'b']]
    """
    log = _time_ordered(dataset, tie_seed=seed if shuffle_ties else None)
    counts = log.groupby("user_id", sort=False)["position"].transform("size").to_numpy()
    position = log["position"].to_numpy()
    labels = np.full(len(log), "train", dtype=object)
    eligible = counts >= min_interactions
    labels[eligible & (position == counts - 1)] = "test"
    labels[eligible & (position == counts - 2)] = "valid"
    return _finish(log, labels, "leave_last_out")


def random_split(dataset: Dataset, valid_fraction: float = 0.1, test_fraction: float = 0.1,
                 seed: int = 0) -> Split:
    """Each interaction independently to valid/test with the given probabilities."""
    if not (0 <= valid_fraction and 0 <= test_fraction and valid_fraction + test_fraction < 1):
        raise ValueError(
            f"valid_fraction and test_fraction must be >= 0 and sum below 1; got {valid_fraction}, {test_fraction}"
        )
    log = _time_ordered(dataset)
    draw = np.random.default_rng(seed).random(len(log))
    labels = np.where(draw < test_fraction, "test",
                      np.where(draw < test_fraction + valid_fraction, "valid", "train")).astype(object)
    return _finish(log, labels, "random")


def predefined_split(dataset: Dataset) -> Split:
    """The split the source fixed (explicit train/valid/test files, or a split column)."""
    if dataset.split_labels is None:
        raise ValueError(f"dataset {dataset.name!r} has no predefined split; use leave_last_out or random_split")
    log = _time_ordered(dataset)
    labels = dataset.split_labels.to_numpy()[log["_row"].to_numpy()]
    return _finish(log, labels.astype(object), "predefined")


def make_split(dataset: Dataset, method: str = "leave_last_out", seed: int = 0, **options) -> Split:
    """Split by name: ``leave_last_out``, ``random``, ``predefined`` or ``temporal_fraction``.

    ``options`` go to the split's function: ``valid_fraction`` and
    ``test_fraction`` for ``random`` (:func:`random_split`) and
    ``temporal_fraction`` (:func:`temporal_fraction_split`),
    ``min_interactions`` for ``leave_last_out`` and ``temporal_fraction``,
    ``shuffle_ties`` for ``leave_last_out`` (:func:`leave_last_out`); ``seed``
    is used by ``random`` and by ``leave_last_out`` with ``shuffle_ties``. An
    option the split does not take is an error.

    Example:
    >>> from mmrec_tf.data.sources import make_synthetic
    >>> ds = make_synthetic(num_users=2, num_items=8, num_clusters=2, interactions_per_user=20)
    >>> split = make_split(ds, "temporal_fraction", valid_fraction=0.1, test_fraction=0.2)
    >>> split.method, len(split.valid), len(split.test)
    ('temporal_fraction', 4, 8)
    >>> make_split(ds, "leave_last_out", test_fraction=0.2)
    Traceback (most recent call last):
    ...
    ValueError: split 'leave_last_out' takes no option 'test_fraction'; it takes ['min_interactions', 'shuffle_ties']
    """
    if method not in SPLIT_METHODS:
        raise ValueError(f"unknown split {method!r}; expected one of {', '.join(SPLIT_METHODS)}")
    function = {"leave_last_out": leave_last_out, "random": random_split, "predefined": predefined_split,
                "temporal_fraction": temporal_fraction_split}[method]
    accepted = [name for name in inspect.signature(function).parameters if name not in ("dataset", "seed")]
    for name in options:
        if name not in accepted:
            raise ValueError(f"split {method!r} takes no option {name!r}; it takes {accepted}")
    if "seed" in inspect.signature(function).parameters:
        options = {**options, "seed": seed}
    return function(dataset, **options)


def temporal_fraction_split(dataset: Dataset, valid_fraction: float = 0.1, test_fraction: float = 0.1,
                            min_interactions: int = 3) -> Split:
    """Per user in time order: the last ``test_fraction`` → test, the ``valid_fraction`` before → valid.

    Each eligible user (at least ``min_interactions`` interactions) gives
    ``max(1, round(fraction * n))`` of their ``n`` interactions to each split
    whose fraction is above 0; everything earlier is train. So every model
    predicts a user's future from their past, the per-user temporal protocol
    of the DIN paper's MovieLens experiment (Zhou et al., KDD 2018) adapted to
    a held-out future instead of held-out users. Users with fewer interactions
    keep them all in train.

    Example:
    >>> from mmrec_tf.data.sources import make_synthetic
    >>> split = temporal_fraction_split(make_synthetic(num_users=2, num_items=8, num_clusters=2,
    ...                                                interactions_per_user=20), 0.1, 0.2)
    >>> len(split.train), len(split.valid), len(split.test)
    (28, 4, 8)
    """
    for name, fraction in (("valid_fraction", valid_fraction), ("test_fraction", test_fraction)):
        if not 0 <= fraction < 1:
            raise ValueError(f"{name} must be in [0, 1), got {fraction}")
    if valid_fraction + test_fraction >= 1:
        raise ValueError(f"valid_fraction + test_fraction must be below 1; got {valid_fraction} + {test_fraction}")
    if min_interactions < 1:
        raise ValueError(f"min_interactions must be at least 1, got {min_interactions}")
    log = _time_ordered(dataset)
    counts = log.groupby("user_id", sort=False)["position"].transform("size").to_numpy()
    position = log["position"].to_numpy()

    def share(fraction: float) -> np.ndarray:
        return np.maximum(1, np.round(fraction * counts)).astype(np.int64) if fraction > 0 else np.zeros_like(counts)

    num_test, num_valid = share(test_fraction), share(valid_fraction)
    eligible = (counts >= min_interactions) & (counts - num_test - num_valid >= 1)
    labels = np.full(len(log), "train", dtype=object)
    labels[eligible & (position >= counts - num_test)] = "test"
    labels[eligible & (position < counts - num_test) & (position >= counts - num_test - num_valid)] = "valid"
    return _finish(log, labels, "temporal_fraction")


def cold_start_split(dataset: Dataset, cold_fraction: float = 0.2, seed: int = 0, min_interactions: int = 3,
                     valid_share: float = 0.5) -> Split:
    """A share of items held out of training entirely, the others split leave-last-out.

    ``round(cold_fraction * n)`` of the ``n`` items that have interactions are
    drawn at random (``seed``) as *cold* items; ``valid_share`` of them
    (rounded) are validation items, the rest test items. Every interaction with
    a validation cold item goes to ``valid``, with a test cold item to
    ``test``: no cold item is ever in ``train``, so a model can only know it
    through its content. The *warm* interactions are split per user like
    :func:`leave_last_out`: the user's last warm interaction → test, the
    second-last → valid, the rest → train (users with fewer than
    ``min_interactions`` warm interactions keep them all in train).

    Use :func:`cold_item_ids` for the items a model never saw in training
    (the held-out ones, plus any warm item whose interactions all fell in
    valid or test).

    Example:
    >>> from mmrec_tf.data.sources import make_synthetic
    >>> ds = make_synthetic(num_users=20, num_items=20, num_clusters=2, interactions_per_user=8)
    >>> split = cold_start_split(ds, cold_fraction=0.2, seed=0)
    >>> cold = cold_item_ids(split)
    >>> len(cold) >= 4, bool(split.train["item_id"].isin(cold).any())
    (True, False)
    """
    if not 0 < cold_fraction < 1:
        raise ValueError(f"cold_fraction must be in (0, 1), got {cold_fraction}")
    if not 0 <= valid_share <= 1:
        raise ValueError(f"valid_share must be in [0, 1], got {valid_share}")
    log = _time_ordered(dataset)
    items = np.array(sorted(pd.unique(log["item_id"])), dtype=object)
    count = int(round(cold_fraction * len(items)))
    if count < 1 or count >= len(items):
        raise ValueError(f"cold_fraction={cold_fraction} of {len(items)} items holds out {count}; "
                         "expected at least one cold item and at least one warm item")
    cold = np.random.default_rng(seed).permutation(items)[:count]
    valid_items = set(cold[: int(round(valid_share * count))])
    is_cold = log["item_id"].isin(set(cold)).to_numpy()
    labels = np.full(len(log), "train", dtype=object)
    labels[is_cold] = np.where(log["item_id"][is_cold].isin(valid_items).to_numpy(), "valid", "test")
    warm = log[~is_cold]
    position = warm.groupby("user_id", sort=False).cumcount().to_numpy()
    counts = warm.groupby("user_id", sort=False)["user_id"].transform("size").to_numpy()
    warm_labels = np.full(len(warm), "train", dtype=object)
    eligible = counts >= min_interactions
    warm_labels[eligible & (position == counts - 1)] = "test"
    warm_labels[eligible & (position == counts - 2)] = "valid"
    labels[~is_cold] = warm_labels
    return _finish(log, labels, "cold_start")


def cold_item_ids(split: Split) -> set[str]:
    """Ids of the items that appear in valid or test but never in train: items a model knows only by content.

    Example:
    >>> log = pd.DataFrame({"user_id": ["u", "u", "u"], "item_id": ["a", "b", "c"],
    ...                     "split": ["train", "valid", "test"], "position": [0, 1, 2]})
    >>> sorted(cold_item_ids(Split(log=log, method="toy")))
    ['b', 'c']
    """
    trained = set(split.train["item_id"])
    return {item for item in pd.unique(split.log["item_id"]) if item not in trained}
