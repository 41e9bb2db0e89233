"""Exact NumPy metrics for pointwise ranking models: AUC, GAUC, log loss, RMSE.

These are the reference implementations used to report final numbers; the
streaming Keras metrics of `mmrec_tf.tasks.Ranking` approximate AUC with
thresholds and are meant for training curves.
"""

from __future__ import annotations

import numpy as np


def _vector(values, argument: str, function: str) -> np.ndarray:
    """Returns `values` as a 1-D array; `[N, 1]` columns are flattened."""
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(
            f"{function}: `{argument}` must be 1-D (or an [N, 1] column), got "
            f"shape {array.shape}."
        )
    if array.size == 0:
        raise ValueError(f"{function}: `{argument}` is empty.")
    return array


def _same_length(function: str, **arrays: np.ndarray) -> None:
    """Raises ValueError naming the arguments whose lengths differ."""
    lengths = {name: len(array) for name, array in arrays.items()}
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"`{name}` has {n}" for name, n in lengths.items())
        raise ValueError(f"{function}: inputs must have the same length; {described}.")


def _numbers(values, argument: str, function: str) -> np.ndarray:
    """Returns a float64 1-D array without NaN, or raises ValueError."""
    array = _vector(values, argument, function)
    if array.dtype.kind not in "biuf":
        raise ValueError(
            f"{function}: `{argument}` must be numeric, got dtype {array.dtype}."
        )
    array = array.astype(np.float64)
    nan = np.flatnonzero(np.isnan(array))
    if nan.size:
        raise ValueError(
            f"{function}: `{argument}` contains NaN at index {int(nan[0])} "
            f"({nan.size} NaN values in total)."
        )
    return array


def _binary_labels(values, function: str) -> np.ndarray:
    """Returns labels as a bool array, or raises unless every label is 0 or 1."""
    labels = _numbers(values, "labels", function)
    bad = np.flatnonzero((labels != 0) & (labels != 1))
    if bad.size:
        raise ValueError(
            f"{function}: `labels` must be 0 or 1; found {float(labels[bad[0]])!r} "
            f"at index {int(bad[0])} ({bad.size} such values)."
        )
    return labels == 1


def _tie_averaged_ranks(sorted_scores: np.ndarray, group_starts: np.ndarray) -> np.ndarray:
    """1-based ranks of already-sorted scores within groups, ties averaged.

    `group_starts[i]` is True where a new group begins; scores are sorted
    ascending inside each group.
    """
    n = sorted_scores.size
    positions = np.arange(n)
    new_run = group_starts.copy()
    new_run[1:] |= sorted_scores[1:] != sorted_scores[:-1]
    run_ids = np.cumsum(new_run) - 1
    run_starts = positions[new_run]
    run_lengths = np.diff(np.append(run_starts, n))
    group_offset = np.maximum.accumulate(np.where(group_starts, positions, 0))
    # Positions a .. a+len-1 hold ranks a+1 .. a+len; their mean is a + (len+1)/2.
    return run_starts[run_ids] + (run_lengths[run_ids] + 1) / 2.0 - group_offset


def auc(labels, scores) -> float:
    """Exact area under the ROC curve; tied scores count 1/2.

    AUC is the probability that a random positive scores higher than a random
    negative (Mann-Whitney U / (n_pos * n_neg)), computed from tie-averaged
    ranks in O(n log n).

    Args:
        labels: 1-D array of 0/1 (or bool) labels.
        scores: 1-D array of real scores, same length; NaN is rejected.

    Returns:
        AUC in [0, 1].

    Raises:
        ValueError: on shape/length mismatch, labels other than 0/1, NaN
            scores, or when only one class is present.

    Example:

    >>> auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    positive = _binary_labels(labels, "auc")
    values = _numbers(scores, "scores", "auc")
    _same_length("auc", labels=positive, scores=values)
    num_positive = int(positive.sum())
    num_negative = positive.size - num_positive
    if num_positive == 0 or num_negative == 0:
        only = "1 (positive)" if num_negative == 0 else "0 (negative)"
        raise ValueError(
            f"auc: all {positive.size} labels are {only}; AUC needs at least one "
            "positive and one negative label."
        )
    order = np.argsort(values, kind="stable")
    starts = np.zeros(values.size, dtype=bool)
    starts[0] = True
    ranks = _tie_averaged_ranks(values[order], starts)
    positive_rank_sum = ranks[positive[order]].sum()
    u_statistic = positive_rank_sum - num_positive * (num_positive + 1) / 2.0
    return float(u_statistic / (num_positive * num_negative))


def gauc(user_ids, labels, scores, return_num_users: bool = False):
    """Group AUC (Zhou et al., "Deep Interest Network", KDD 2018, eq. 9).

    `GAUC = sum_u w_u * AUC_u / sum_u w_u`, where `AUC_u` is the AUC over
    user `u`'s samples and `w_u` is the user's number of impressions
    (samples). Users whose samples are all one class have no AUC and are
    skipped (they add nothing to numerator or denominator).

    Args:
        user_ids: 1-D array of user ids (any hashable dtype: int, str, ...).
        labels: 1-D array of 0/1 labels, same length.
        scores: 1-D array of scores, same length; NaN is rejected.
        return_num_users: Also return how many users were counted.

    Returns:
        The GAUC as a float, or `(gauc, num_users_counted)` when
        `return_num_users=True`.

    Raises:
        ValueError: on shape/length mismatch, labels other than 0/1, NaN
            scores, or when no user has both a positive and a negative.

    Example:

    >>> users = ["a", "a", "a", "b", "b", "c"]
    >>> labels = [1, 0, 0, 1, 0, 1]
    >>> scores = [0.9, 0.5, 0.95, 0.2, 0.3, 0.7]
    >>> # a: AUC 1/2 over 3 samples; b: AUC 0 over 2; c: one class, skipped
    >>> gauc(users, labels, scores, return_num_users=True)
    (0.3, 2)
    """
    users = _vector(user_ids, "user_ids", "gauc")
    positive = _binary_labels(labels, "gauc")
    values = _numbers(scores, "scores", "gauc")
    _same_length("gauc", user_ids=users, labels=positive, scores=values)
    _, user_codes = np.unique(users, return_inverse=True)
    user_codes = user_codes.reshape(-1)
    order = np.lexsort((values, user_codes))
    sorted_users = user_codes[order]
    sorted_positive = positive[order]
    starts = np.ones(users.size, dtype=bool)
    starts[1:] = sorted_users[1:] != sorted_users[:-1]
    ranks = _tie_averaged_ranks(values[order], starts)

    impressions = np.bincount(sorted_users).astype(np.float64)
    num_positive = np.bincount(sorted_users, weights=sorted_positive.astype(np.float64))
    num_negative = impressions - num_positive
    positive_rank_sum = np.bincount(sorted_users, weights=ranks * sorted_positive)
    counted = (num_positive > 0) & (num_negative > 0)
    if not counted.any():
        raise ValueError(
            f"gauc: none of the {impressions.size} users has both a positive and a "
            "negative label, so no per-user AUC exists."
        )
    n_pos = num_positive[counted]
    user_auc = (positive_rank_sum[counted] - n_pos * (n_pos + 1) / 2.0) / (
        n_pos * num_negative[counted]
    )
    weights = impressions[counted]
    value = float(np.sum(weights * user_auc) / np.sum(weights))
    if return_num_users:
        return value, int(counted.sum())
    return value


def log_loss(labels, probs, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy of probabilities, clipped to [eps, 1 - eps].

    Args:
        labels: 1-D array of labels in [0, 1].
        probs: 1-D array of predicted probabilities in [0, 1], same length
            (apply a sigmoid to logits first).
        eps: Clip value, 0 < eps < 0.5; 1e-7 matches Keras' epsilon.

    Returns:
        `mean(-(y * log(p) + (1 - y) * log(1 - p)))`.

    Example:

    >>> round(log_loss([1, 0], [0.5, 0.5]), 6)  # -log(0.5)
    0.693147
    """
    if not 0.0 < eps < 0.5:
        raise ValueError(f"log_loss: `eps` must be in (0, 0.5), got {eps!r}.")
    y = _numbers(labels, "labels", "log_loss")
    p = _numbers(probs, "probs", "log_loss")
    _same_length("log_loss", labels=y, probs=p)
    for name, array in (("labels", y), ("probs", p)):
        bad = np.flatnonzero((array < 0) | (array > 1))
        if bad.size:
            raise ValueError(
                f"log_loss: `{name}` must lie in [0, 1]; found {float(array[bad[0]])!r} at "
                f"index {int(bad[0])} ({bad.size} such values)."
            )
    p = np.clip(p, eps, 1.0 - eps)
    return float(np.mean(-(y * np.log(p) + (1.0 - y) * np.log(1.0 - p))))


def rmse(labels, preds) -> float:
    """Root mean squared error.

    Args:
        labels: 1-D array of targets.
        preds: 1-D array of predictions, same length.

    Example:

    >>> rmse([1.0, 2.0, 3.0], [1.0, 2.0, 5.0])  # sqrt((0 + 0 + 4) / 3)
    1.1547005383792515
    """
    y = _numbers(labels, "labels", "rmse")
    p = _numbers(preds, "preds", "rmse")
    _same_length("rmse", labels=y, preds=p)
    return float(np.sqrt(np.mean((y - p) ** 2)))
