"""Beyond-accuracy metrics of top-K recommendation lists: coverage, exposure concentration, popularity, diversity, calibration.

Every function takes the lists as an int matrix ``lists [U, K]`` of item
indices (``1..num_items``, ``0`` = an empty slot) and is vectorised over users
with numpy. Item-side inputs (``popularity``, ``features``, ``genres``) are
indexed by item index too, row ``0`` being the padding item.

Definitions (with sources):

- catalog coverage: share of the catalog that appears in at least one list;
- exposure: how many list slots each item gets; its concentration is measured
  by the Gini index (0 = every item equally exposed, 1 = one item takes all)
  and the Shannon entropy in bits (``log2(num_items)`` = uniform);
- average recommendation popularity (ARP, Abdollahpouri et al., FLAIRS 2019):
  mean training popularity of a list's items, averaged over users;
- long-tail share: share of list slots holding long-tail items, the items
  outside the *head*: the most popular items that together make up 20 % of
  the interactions (see :func:`long_tail_mask`);
- novelty: mean self-information ``-log2 p(i)`` of the recommended items,
  ``p(i)`` the share of users who interacted with ``i`` (Zhou et al., PNAS
  2010);
- intra-list diversity: mean pairwise cosine distance ``1 - cos`` between a
  list's items, over any item vectors (multi-hot genres, item embeddings;
  Ziegler et al., WWW 2005);
- calibration: ``KL(p || q~)`` between the genre mix ``p`` of a user's
  history and ``q`` of their list, ``q~ = (1 - alpha) q + alpha p`` with
  ``alpha = 0.01`` (Steck, "Calibrated Recommendations", RecSys 2018, eq. 2-5;
  an item's genres share its weight equally).

Example:
>>> lists = np.array([[1, 2], [1, 3]])
>>> catalog_coverage(lists, num_items=4)
0.75
>>> exposure_counts(lists, num_items=4).tolist()
[2, 1, 1, 0]
"""

from __future__ import annotations

import numpy as np

HEAD_SHARE = 0.2
STECK_ALPHA = 0.01


def _lists(lists) -> np.ndarray:
    lists = np.asarray(lists)
    if lists.ndim != 2:
        raise ValueError(f"lists must be a [users, K] matrix of item indices, got shape {lists.shape}")
    return lists.astype(np.int64)


def exposure_counts(lists, num_items: int) -> np.ndarray:
    """How many list slots each item ``1..num_items`` gets (length ``num_items``; empty slots are not counted).

    Example:
    >>> exposure_counts(np.array([[3, 0], [3, 1]]), num_items=3).tolist()
    [1, 0, 2]
    """
    lists = _lists(lists)
    return np.bincount(lists.ravel(), minlength=num_items + 1)[1:num_items + 1]


def catalog_coverage(lists, num_items: int) -> float:
    """Share of the ``num_items`` catalog items that appear in at least one list.

    Example:
    >>> catalog_coverage(np.array([[1, 2], [2, 0]]), num_items=8)
    0.25
    """
    return float((exposure_counts(lists, num_items) > 0).mean())


def gini_index(values) -> float:
    """Gini index of non-negative amounts (e.g. exposure per catalog item): 0 equal, ``1 - 1/n`` one holds all.

    With the amounts sorted ascending ``x_1..x_n``:
    ``G = sum_i (2 i - n - 1) x_i / (n sum_i x_i)``.

    Example:
    >>> gini_index([1, 1, 1, 1]), gini_index([0, 0, 0, 4])
    (0.0, 0.75)
    """
    x = np.sort(np.asarray(values, np.float64))
    if x.ndim != 1 or not len(x):
        raise ValueError("gini_index needs a non-empty 1-D array of amounts")
    if (x < 0).any():
        raise ValueError("gini_index: amounts must be non-negative")
    total = x.sum()
    if total == 0:
        return 0.0
    n = len(x)
    rank = np.arange(1, n + 1)
    return float(((2 * rank - n - 1) * x).sum() / (n * total))


def shannon_entropy(values) -> float:
    """Entropy in bits of the distribution proportional to ``values`` (0 log 0 = 0).

    Example:
    >>> shannon_entropy([1, 1, 1, 1]), shannon_entropy([2, 0, 0])
    (2.0, 0.0)
    """
    x = np.asarray(values, np.float64)
    total = x.sum()
    if total <= 0:
        return 0.0
    p = x[x > 0] / total
    return float(-(p * np.log2(p)).sum() + 0.0)


def lorenz_curve(values) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative share of items (x) against cumulative share of the amount (y), least exposed first.

    Both start at 0 and end at 1; the Gini index is one minus twice the area under ``y``.

    Example:
    >>> x, y = lorenz_curve([0, 0, 0, 4])
    >>> x.tolist(), y.tolist()
    ([0.0, 0.25, 0.5, 0.75, 1.0], [0.0, 0.0, 0.0, 0.0, 1.0])
    """
    x = np.sort(np.asarray(values, np.float64))
    total = x.sum()
    shares = np.cumsum(x) / total if total > 0 else np.linspace(0, 1, len(x) + 1)[1:]
    return np.linspace(0.0, 1.0, len(x) + 1), np.concatenate([[0.0], shares])


def average_popularity(lists, popularity) -> float:
    """ARP: the mean ``popularity[item]`` of each list's items, averaged over users (empty slots skipped).

    ``popularity`` is indexed by item index (row 0 unused), e.g. training interaction counts.

    Example:
    >>> popularity = np.array([0, 10, 2, 4])
    >>> average_popularity(np.array([[1, 2], [3, 0]]), popularity)  # ((10 + 2) / 2 + 4) / 2
    5.0
    """
    lists = _lists(lists)
    popularity = np.asarray(popularity, np.float64)
    filled = lists > 0
    per_user = (popularity[lists] * filled).sum(axis=1) / np.maximum(filled.sum(axis=1), 1)
    return float(per_user[filled.any(axis=1)].mean())


def long_tail_mask(popularity, head_share: float = HEAD_SHARE) -> np.ndarray:
    """Boolean mask over item indices: True for long-tail items.

    The head is the smallest set of most popular items whose interactions
    make up at least ``head_share`` of all interactions (ties in popularity
    broken by item index); every other item, including index 0's slot
    (False), is long tail.

    Example:
    >>> long_tail_mask(np.array([0, 50, 30, 10, 10])).tolist()  # item 1 alone holds 50 % >= 20 %
    [False, False, True, True, True]
    """
    popularity = np.asarray(popularity, np.float64)
    counts = popularity[1:]
    order = np.argsort(-counts, kind="stable")
    cumulative = np.cumsum(counts[order])
    head_size = int(np.searchsorted(cumulative, head_share * counts.sum() - 1e-9)) + 1
    tail = np.ones(len(counts), bool)
    tail[order[:head_size]] = False
    return np.concatenate([[False], tail])


def long_tail_share(lists, tail_mask) -> float:
    """Share of the filled list slots that hold long-tail items (``tail_mask`` from :func:`long_tail_mask`).

    Example:
    >>> long_tail_share(np.array([[1, 2], [3, 0]]), np.array([False, False, True, True]))
    0.6666666666666666
    """
    lists = _lists(lists)
    filled = lists > 0
    return float(np.asarray(tail_mask, bool)[lists][filled].mean())


def novelty(lists, user_counts, num_users: int) -> float:
    """Mean self-information ``-log2(user_counts[i] / num_users)`` over the filled slots, in bits.

    ``user_counts[i]``: how many training users interacted with item ``i``;
    an item nobody interacted with counts as one user (the most novel value,
    ``log2(num_users)``).

    Example:
    >>> novelty(np.array([[1, 2]]), np.array([0, 4, 1]), num_users=4)  # (0 + 2) / 2
    1.0
    """
    lists = _lists(lists)
    p = np.maximum(np.asarray(user_counts, np.float64), 1.0) / num_users
    filled = lists > 0
    return float(-np.log2(p[lists][filled]).mean())


def intra_list_diversity(lists, features) -> float:
    """Mean pairwise cosine distance ``1 - cos(f_i, f_j)`` within each list, averaged over lists with 2+ items.

    ``features [num_items + 1, D]``: any item vectors, e.g. multi-hot genres
    or item embeddings. An all-zero vector (an item without genres) has
    cosine 0 to every item.

    Example:
    >>> genres = np.array([[0, 0], [1, 0], [1, 0], [0, 1]])
    >>> intra_list_diversity(np.array([[1, 2, 3]]), genres)  # pairs 1-2: 0, 1-3: 1, 2-3: 1
    0.6666666666666666
    """
    lists = _lists(lists)
    features = np.asarray(features, np.float64)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    unit = np.divide(features, norms, out=np.zeros_like(features), where=norms > 0)
    vectors = unit[lists]
    similarity = np.einsum("ukd,uld->ukl", vectors, vectors)
    filled = lists > 0
    pairs = filled[:, :, None] & filled[:, None, :] & ~np.eye(lists.shape[1], dtype=bool)[None]
    count = pairs.sum(axis=(1, 2))
    per_list = ((1.0 - similarity) * pairs).sum(axis=(1, 2)) / np.maximum(count, 1)
    return float(per_list[count > 0].mean())


def genre_distribution(items, genres) -> np.ndarray:
    """Steck's ``p(g|u)``: each item spreads weight 1 evenly over its genres; rows normalised (0 if none).

    ``items [U, N]`` (0 = padding), ``genres [num_items + 1, G]`` multi-hot.

    Example:
    >>> genre_distribution(np.array([[1, 2]]), np.array([[0, 0], [1, 1], [1, 0]])).tolist()
    [[0.75, 0.25]]
    """
    items = _lists(items)
    genres = np.asarray(genres, np.float64)
    per_item = genres / np.maximum(genres.sum(axis=1, keepdims=True), 1.0)
    mix = per_item[items].sum(axis=1)
    return mix / np.maximum(mix.sum(axis=1, keepdims=True), 1e-12)


def calibration_kl(lists, histories, genres, alpha: float = STECK_ALPHA) -> float:
    """Steck's miscalibration ``KL(p || (1 - alpha) q + alpha p)``, in nats, averaged over users.

    ``p`` is the genre mix of a user's history, ``q`` of their list (both by
    :func:`genre_distribution`); users whose history has no genre are skipped.
    0 = the list mirrors the history's genres; NaN when no history has a genre.

    Example:
    >>> genres = np.array([[0, 0], [1, 0], [0, 1]])
    >>> round(calibration_kl(np.array([[1]]), np.array([[1, 2]]), genres), 4)  # p=(.5,.5), q~=(.995,.005)
    1.9585
    """
    p = genre_distribution(histories, genres)
    q = genre_distribution(lists, genres)
    smoothed = (1.0 - alpha) * q + alpha * p
    ratio = np.divide(p, smoothed, out=np.ones_like(p), where=p > 0)
    per_user = (p * np.log(ratio)).sum(axis=1)
    rated = p.sum(axis=1) > 0
    return float(per_user[rated].mean()) if rated.any() else float("nan")
