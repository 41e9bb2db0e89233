"""Per-user evaluation queries: each user's visible history, held-out items and already-seen items."""

from __future__ import annotations

import dataclasses

import numpy as np

from mmrec_tf.data.feature_space import FeatureSpace
from mmrec_tf.data.pipeline import VISIBLE_HISTORY, user_histories
from mmrec_tf.data.splits import Split


@dataclasses.dataclass
class UserQueries:
    """One row per evaluated user: what the model sees and what it should find.

    ``user_id`` [U] and ``history`` [U, L] are indices (the history is the
    user's items visible before the target split, oldest first, the most
    recent ``L``, 0-padded at the end: the serving layout); ``targets[u]``
    are the user's held-out item indices, ``seen[u]`` the visible ones
    (excluded from the ranking).

    Example:
    >>> from mmrec_tf.data.sources import make_synthetic
    >>> from mmrec_tf.data.splits import leave_last_out
    >>> ds = make_synthetic(num_users=3, num_items=8, num_clusters=2, interactions_per_user=5)
    >>> queries = user_queries(leave_last_out(ds), FeatureSpace.build(ds), max_history=3)
    >>> queries.history.shape, [len(t) for t in queries.targets]
    ((3, 3), [1, 1, 1])
    """

    user_id: np.ndarray
    history: np.ndarray
    targets: list[np.ndarray]
    seen: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.user_id)


def user_queries(split: Split, space: FeatureSpace, max_history: int = 50, target: str = "test") -> UserQueries:
    """The users with ``target`` interactions, their visible history and their held-out items.

    Visible rows follow the pipeline's rule (test: train and valid rows;
    valid: train rows), taken whole: a user's targets are all ranked from one
    history, the most recent ``max_history`` visible items in the split's
    per-user order (as in multimodal toolkits, where every test item of a user
    is ranked against the user's whole training profile).

    Example:
    >>> from mmrec_tf.data.sources import make_synthetic
    >>> from mmrec_tf.data.splits import cold_start_split
    >>> ds = make_synthetic(num_users=4, num_items=10, num_clusters=2, interactions_per_user=6)
    >>> queries = user_queries(cold_start_split(ds, cold_fraction=0.3), FeatureSpace.build(ds), max_history=4)
    >>> all(len(targets) >= 1 for targets in queries.targets), queries.history.shape[1]
    (True, 4)
    """
    if target not in ("valid", "test"):
        raise ValueError(f"target must be one of ['test', 'valid'], got {target!r}")
    log = split.log
    users = space.user_vocab.lookup(log["user_id"])
    items = space.item_vocab.lookup(log["item_id"])
    labels = log["split"].to_numpy()
    bounds, histories = user_histories(split, items, max_history, target)
    rows, kept_histories, targets, seen = [], [], [], []
    for start, end, history in zip(bounds[:-1], bounds[1:], histories):
        held_out = items[start:end][labels[start:end] == target]
        if not len(held_out):
            continue
        past = items[start:end][np.isin(labels[start:end], VISIBLE_HISTORY[target])]
        rows.append(users[start])
        kept_histories.append(history)
        targets.append(np.unique(held_out[held_out > 0]))
        seen.append(np.unique(past[past > 0]))
    return UserQueries(np.asarray(rows, np.int32), np.asarray(kept_histories, np.int32).reshape(-1, max_history),
                       targets, seen)
