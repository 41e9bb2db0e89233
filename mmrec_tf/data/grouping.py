"""Walking arrays user by user: the runs of equal consecutive keys, and each user's distinct items."""

from __future__ import annotations

import numpy as np


def run_bounds(keys) -> np.ndarray:
    """Where the runs of equal consecutive ``keys`` start, then ``len(keys)``: run ``i`` is ``keys[b[i]:b[i + 1]]``.

    Example:
    >>> run_bounds(np.array([3, 3, 1, 5, 5])).tolist()
    [0, 2, 3, 5]
    >>> run_bounds(np.array([])).tolist()
    [0]
    """
    keys = np.asarray(keys)
    if not len(keys):
        return np.zeros(1, np.int64)
    return np.flatnonzero(np.r_[True, keys[1:] != keys[:-1], True])


def items_by_user(users, items) -> dict[int, np.ndarray]:
    """Per user index, the sorted distinct item indices paired with it in ``(users[i], items[i])``.

    Example:
    >>> {u: v.tolist() for u, v in items_by_user([2, 1, 1, 2], [7, 4, 3, 7]).items()}
    {1: [3, 4], 2: [7]}
    """
    users = np.asarray(users, np.int64)
    items = np.asarray(items, np.int64)
    order = np.lexsort((items, users))
    users, items = users[order], items[order]
    bounds = run_bounds(users)
    return {int(users[start]): np.unique(items[start:end]) for start, end in zip(bounds[:-1], bounds[1:])}
