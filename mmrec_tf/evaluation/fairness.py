"""Fairness across user groups (any per-user metric split by a users.csv column) and item groups (exposure, hits).

User side: :func:`user_group_report` splits a per-user metric (e.g. HR@10
per user) by a group label per user and reports each group's mean with a
bootstrap 95 % interval, the gap between the best and the worst group, their
ratio, and a bootstrap interval of the gap, so a reader can tell a real gap
from noise (percentile bootstrap, Efron & Tibshirani 1993, resampling users
within each group; seeded).

Item side: :func:`item_group_exposure` gives each item group's share of the
list slots (exposure) and of the hits, next to its share of the catalog and
of the training interactions; :func:`popularity_deciles` makes the groups
from popularity.

Example:
>>> report = user_group_report(np.array([1.0, 0.0, 1.0, 1.0]), np.array(["F", "F", "M", "M"]), num_resamples=200)
>>> report.groups["F"]["value"], report.gap, report.ratio, (report.best, report.worst)
(0.5, 0.5, 0.5, ('M', 'F'))
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

# GroupLens' age bands of MovieLens-1M (its README), used for ML-100K's numeric ages too.
AGE_BANDS = ((0, 18, "under 18"), (18, 25, "18-24"), (25, 35, "25-34"), (35, 45, "35-44"), (45, 50, "45-49"),
             (50, 56, "50-55"), (56, 200, "56+"))


@dataclasses.dataclass
class GroupReport:
    """A metric per group: ``groups[name] = {"value", "low", "high", "users"}`` plus the best-worst gap.

    ``gap = value[best] - value[worst]`` with its bootstrap interval
    ``gap_low..gap_high``; ``ratio = value[worst] / value[best]`` (1 = parity).
    """

    metric: str
    column: str
    groups: dict[str, dict[str, float]]
    best: str
    worst: str
    gap: float
    gap_low: float
    gap_high: float
    ratio: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def age_band(ages) -> np.ndarray:
    """MovieLens age bands (``"18-24"``, ...) of numeric ages; missing ages become ``"unknown"``.

    Example:
    >>> age_band([17, 18, 34.0, 56, float("nan")]).tolist()
    ['under 18', '18-24', '25-34', '56+', 'unknown']
    """
    ages = np.asarray(ages, np.float64)
    labels = np.full(len(ages), "unknown", dtype=object)
    for low, high, name in AGE_BANDS:
        labels[(ages >= low) & (ages < high)] = name
    return labels


def user_groups(users: pd.DataFrame | None, user_ids, column: str) -> np.ndarray:
    """The group label of each user in ``user_ids`` from a users table column (``age`` becomes age bands).

    Users missing from the table, or with an empty cell, are ``"unknown"``.

    Example:
    >>> users = pd.DataFrame({"gender": ["M", "F"], "age": [24, 53]}, index=["1", "2"])
    >>> user_groups(users, ["2", "1", "9"], "gender").tolist(), user_groups(users, ["1"], "age").tolist()
    (['F', 'M', 'unknown'], ['18-24'])
    """
    if users is None or column not in users.columns:
        have = [] if users is None else sorted(users.columns)
        raise ValueError(f"users table has no column {column!r}; it has {have}")
    values = users[column].reindex([str(user) for user in user_ids])
    if column == "age":
        return age_band(pd.to_numeric(values, errors="coerce").to_numpy())
    return np.asarray([str(v) if pd.notna(v) and str(v) != "" else "unknown" for v in values], dtype=object)


def user_group_report(values, groups, metric: str = "metric", column: str = "group", num_resamples: int = 1000,
                      seed: int = 0, min_users: int = 1) -> GroupReport:
    """Mean of per-user ``values`` per group, bootstrap 95 % intervals, and the best-worst gap with its interval.

    Groups with fewer than ``min_users`` users are left out. Each resample
    draws every group's users with replacement (``num_resamples`` times, a
    ``numpy`` generator seeded with ``seed``); the gap's interval resamples
    the gap between the groups that are best and worst on the full data.

    Example:
    >>> r = user_group_report(np.array([0.0, 1.0, 1.0, 1.0]), np.array(["a", "a", "b", "b"]), num_resamples=500)
    >>> r.groups["b"], r.gap_high
    ({'value': 1.0, 'low': 1.0, 'high': 1.0, 'users': 2}, 1.0)
    """
    values = np.asarray(values, np.float64)
    groups = np.asarray(groups, dtype=object)
    if values.shape != groups.shape or values.ndim != 1:
        raise ValueError(f"values and groups must be 1-D and aligned, got {values.shape} and {groups.shape}")
    rng = np.random.default_rng(seed)
    names = [name for name in sorted(set(groups.tolist()), key=str) if (groups == name).sum() >= min_users]
    if not names:
        raise ValueError(f"no group has at least {min_users} users")
    samples, table = {}, {}
    for name in names:
        member = values[groups == name]
        draws = member[rng.integers(0, len(member), size=(num_resamples, len(member)))].mean(axis=1)
        samples[name] = draws
        low, high = np.percentile(draws, [2.5, 97.5])
        table[str(name)] = {"value": float(member.mean()), "low": float(low), "high": float(high),
                            "users": int(len(member))}
    best = max(table, key=lambda n: table[n]["value"])
    worst = min(table, key=lambda n: table[n]["value"])
    gaps = samples[best] - samples[worst]
    gap_low, gap_high = np.percentile(gaps, [2.5, 97.5])
    top = table[best]["value"]
    return GroupReport(metric, column, table, best, worst, float(top - table[worst]["value"]), float(gap_low),
                       float(gap_high), float(table[worst]["value"] / top) if top else 1.0)


def popularity_deciles(popularity) -> np.ndarray:
    """Popularity decile ``0..9`` of each item index (row 0 gets -1): equal-sized groups, 9 = most popular.

    Items are ordered by popularity (ties by index) and cut into ten groups
    of (nearly) equal size.

    Example:
    >>> popularity_deciles(np.array([0, 5, 1, 3, 9, 0, 2, 2, 7, 4, 6])).tolist()
    [-1, 6, 1, 4, 9, 0, 2, 3, 8, 5, 7]
    """
    counts = np.asarray(popularity, np.float64)[1:]
    order = np.argsort(counts, kind="stable")
    deciles = np.empty(len(counts), np.int64)
    deciles[order] = np.arange(len(counts)) * 10 // len(counts)
    return np.concatenate([[-1], deciles])


def item_group_exposure(lists, item_groups, popularity, hits=None) -> pd.DataFrame:
    """Per item group: share of catalog items, of training interactions, of list slots and of hits.

    ``lists [U, K]`` item indices (0 empty), ``item_groups`` a label per item
    index (row 0 ignored), ``popularity`` training interactions per item
    index, ``hits [U, K]`` True where the slot holds one of the user's
    held-out items (optional). A group exposed in proportion to its
    interactions has ``exposure_share == interaction_share``.

    Example:
    >>> table = item_group_exposure(np.array([[1, 2], [1, 3]]), np.array([-1, 0, 0, 1]), np.array([0, 3, 1, 4]),
    ...                             hits=np.array([[True, False], [False, True]]))
    >>> table.loc[1].tolist()  # 1 of 3 items, 4 of 8 interactions, 1 of 4 slots, 1 of 2 hits
    [0.3333333333333333, 0.5, 0.25, 0.5]
    """
    lists = np.asarray(lists, np.int64)
    item_groups = np.asarray(item_groups, dtype=object)
    popularity = np.asarray(popularity, np.float64)
    filled = lists > 0
    slot_groups = item_groups[lists][filled]
    catalog = item_groups[1:]
    rows = {}
    hit_groups = item_groups[lists][filled & np.asarray(hits, bool)] if hits is not None else None
    for name in sorted(set(catalog.tolist()), key=str):
        row = {"catalog_share": float((catalog == name).mean()),
               "interaction_share": float(popularity[1:][catalog == name].sum() / max(popularity[1:].sum(), 1e-12)),
               "exposure_share": float((slot_groups == name).mean()) if len(slot_groups) else 0.0}
        if hit_groups is not None:
            row["hit_share"] = float((hit_groups == name).mean()) if len(hit_groups) else 0.0
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index")
