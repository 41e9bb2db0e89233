"""Top-K lists of a retrieval model over its test users, and the beyond-accuracy summary of those lists.

The lists are what :func:`~mmrec_tf.evaluation.full_ranking.evaluate_retrieval`
ranks (every item scored, the user's seen items other than the target
excluded), kept as item indices so that coverage, popularity, diversity,
calibration and group fairness can be measured on them
(:mod:`mmrec_tf.evaluation.beyond_accuracy`,
:mod:`mmrec_tf.evaluation.fairness`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mmrec_tf.data.pipeline import Examples
from mmrec_tf.evaluation import beyond_accuracy as ba
from mmrec_tf.evaluation.full_ranking import rank_targets, seen_by_user


@dataclasses.dataclass
class RecommendationLists:
    """One row per evaluated example: ``user_id [U]``, ``history [U, L]``, ``target [U]``, ``lists [U, K]``.

    All are item / user indices; ``lists`` is best first, 0 = empty slot.

    Example:
    >>> lists = RecommendationLists(np.array([1, 2]), np.zeros((2, 1), int), np.array([3, 4]),
    ...                             np.array([[3, 1], [1, 2]]))
    >>> lists.hits(1).tolist(), lists.hits(2).tolist()
    ([1.0, 0.0], [1.0, 0.0])
    """

    user_id: np.ndarray
    history: np.ndarray
    target: np.ndarray
    lists: np.ndarray

    def __len__(self) -> int:
        return len(self.user_id)

    def hits(self, k: int) -> np.ndarray:
        """Per example: 1.0 if the target is in the top ``k`` (HR@k per user), else 0.0."""
        return (self.lists[:, :k] == self.target[:, None]).any(axis=1).astype(np.float64)

    def top(self, k: int) -> np.ndarray:
        return self.lists[:, :k]


def ranked_items(model, examples: Examples, seen: dict[int, np.ndarray] | None = None, k: int = 10,
                 batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Each example's best ``k`` item indices ``[U, k]`` (0 = empty slot) and their scores (``-inf`` when empty).

    Scored by :func:`~mmrec_tf.evaluation.full_ranking.rank_targets` (the
    user's seen items other than the target excluded); ties are broken by
    item index (stable sort), so the lists are deterministic.
    """
    lists, list_scores = [], []
    for chunk in rank_targets(model, examples.features(), examples.item_id[:, None],
                              seen_by_user(seen, examples.user_id), ks=(), batch_size=batch_size):
        order = np.argsort(-chunk.scores, axis=1, kind="stable")[:, :k]
        top_scores = np.take_along_axis(chunk.scores, order, axis=1)
        lists.append(np.where(np.isfinite(top_scores), order + 1, 0))
        list_scores.append(top_scores)
    return np.concatenate(lists).astype(np.int64), np.concatenate(list_scores)


def recommend(model, examples: Examples, seen: dict[int, np.ndarray] | None = None, k: int = 10,
              batch_size: int = 1024) -> RecommendationLists:
    """Each example's top-``k`` items by the model's scores, the user's seen items (but the target) excluded.

    Ties are broken by item index (stable sort), so the lists are deterministic.

    Example:
    >>> from mmrec_tf.data.sources import make_synthetic
    >>> from mmrec_tf.data.splits import leave_last_out
    >>> from mmrec_tf.data.pipeline import build_examples
    >>> from mmrec_tf import FeatureSpace, create_model
    >>> ds = make_synthetic(num_users=4, num_items=9, num_clusters=2, interactions_per_user=4)
    >>> space = FeatureSpace.build(ds)
    >>> examples = build_examples(leave_last_out(ds), space, max_history=3)["test"]
    >>> recommend(create_model("two_tower", space=space, embedding_dim=4), examples, k=5).lists.shape
    (4, 5)
    """
    lists, _ = ranked_items(model, examples, seen, k, batch_size)
    return RecommendationLists(examples.user_id.copy(), examples.history.copy(), examples.item_id.copy(), lists)


def rerank_lists(reranker, shortlist: np.ndarray, scores: np.ndarray, history: np.ndarray,
                 batch_size: int = 1024) -> np.ndarray:
    """Apply an export re-ranker (:mod:`mmrec_tf.export.reranking`) offline to shortlists of item indices.

    ``shortlist [U, S]`` and ``scores [U, S]`` from :func:`ranked_items`,
    ``history [U, L]`` item indices; the catalog position of item index ``i``
    is ``i - 1`` (the catalog of a run's own items). Returns the re-ranked
    ``[U, k]`` item indices (0 = empty), exactly what ``retrieve`` of an export
    with the same ``--rerank`` returns as ids.
    """
    import tensorflow as tf

    chosen = []
    for start in range(0, len(shortlist), batch_size):
        rows = slice(start, start + batch_size)
        positions, _ = reranker.rerank(tf.constant(shortlist[rows] - 1, tf.int32),
                                       tf.constant(scores[rows], tf.float32), tf.constant(history[rows], tf.int32))
        chosen.append(positions.numpy() + 1)
    return np.concatenate(chosen).astype(np.int64)


def item_popularity(train: Examples, num_items: int) -> tuple[np.ndarray, np.ndarray]:
    """``(interactions, users)`` per item index (length ``num_items + 1``) in the training examples.

    Example:
    >>> train = Examples(np.array([1, 1, 2]), np.array([1, 1, 2]), np.zeros((3, 1), int), {})
    >>> [a.tolist() for a in item_popularity(train, num_items=2)]
    [[0, 2, 1], [0, 1, 1]]
    """
    interactions = np.bincount(train.item_id, minlength=num_items + 1)
    pairs = np.unique(np.stack([train.user_id, train.item_id]), axis=1)
    users = np.bincount(pairs[1], minlength=num_items + 1)
    return interactions, users


def beyond_accuracy_metrics(lists: np.ndarray, histories: np.ndarray, num_items: int, popularity: np.ndarray,
                            user_counts: np.ndarray, num_users: int, genres: np.ndarray | None = None,
                            embeddings: np.ndarray | None = None) -> dict[str, float]:
    """Every list-level metric of :mod:`~mmrec_tf.evaluation.beyond_accuracy` for top-K ``lists``.

    ``genres [num_items + 1, G]`` (multi-hot) adds ``ild_genres`` and
    ``calibration_kl``; ``embeddings [num_items + 1, D]`` adds
    ``ild_embeddings``.

    Example:
    >>> metrics = beyond_accuracy_metrics(np.array([[1, 2], [1, 3]]), np.zeros((2, 1), int), 4,
    ...                                   np.array([0, 6, 2, 1, 1]), np.array([0, 2, 1, 1, 1]), 2)
    >>> metrics["coverage"], metrics["long_tail_share"], metrics["gini"]
    (0.75, 0.5, 0.375)
    """
    counts = ba.exposure_counts(lists, num_items)
    metrics = {
        "coverage": ba.catalog_coverage(lists, num_items),
        "gini": ba.gini_index(counts),
        "entropy": ba.shannon_entropy(counts),
        "average_popularity": ba.average_popularity(lists, popularity),
        "long_tail_share": ba.long_tail_share(lists, ba.long_tail_mask(popularity)),
        "novelty": ba.novelty(lists, user_counts, num_users),
    }
    if genres is not None:
        metrics["ild_genres"] = ba.intra_list_diversity(lists, genres)
        metrics["calibration_kl"] = ba.calibration_kl(lists, histories, genres)
    if embeddings is not None:
        metrics["ild_embeddings"] = ba.intra_list_diversity(lists, embeddings)
    return metrics
