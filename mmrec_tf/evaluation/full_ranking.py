"""Full-corpus ranking evaluation with each user's seen items excluded."""

from __future__ import annotations

import dataclasses

import numpy as np
from keras import ops

from mmrec_tf.data.pipeline import Examples


@dataclasses.dataclass
class RetrievalReport:
    """Full-ranking retrieval metrics (what :func:`evaluate_retrieval` returns), plus what was evaluated.

    ``metrics`` maps names like ``"hr@10"``, ``"ndcg@10"``, ``"mrr"``,
    ``"coverage@10"`` and ``"factorized_top_k@10"`` to floats.

    Example:
    >>> print(RetrievalReport({"hr@10": 0.5, "ndcg@10": 0.25}, num_examples=4, num_items=20))
    hr@10=0.5000  ndcg@10=0.2500  (examples=4, items=20)
    """

    metrics: dict[str, float]
    num_examples: int
    num_items: int

    def __str__(self) -> str:
        body = "  ".join(f"{k}={v:.4f}" for k, v in self.metrics.items())
        return f"{body}  (examples={self.num_examples}, items={self.num_items})"


def expected_hits_and_gains(greater: np.ndarray, ties: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """HR@k and NDCG@k of one relevant item, in expectation over random tie-breaking.

    ``greater`` counts items scored above the target, ``ties`` other items with
    exactly its score. The target's 0-based rank is uniform on
    ``greater .. greater + ties``, so a model that gives every item the same
    score gets the random-ranking value instead of a lucky or unlucky one.

    Example:
    >>> hr, ndcg = expected_hits_and_gains(np.array([0, 9]), np.array([0, 1]), k=10)
    >>> hr.tolist(), np.round(ndcg, 4).tolist()
    ([1.0, 0.5], [1.0, 0.1445])
    """
    discount = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(k) + 2.0))])
    low = np.minimum(greater, k)
    high = np.minimum(greater + ties + 1, k)
    count = ties + 1.0
    hits = (high - low) / count
    gains = (discount[high] - discount[low]) / count
    return hits, gains


def expected_reciprocal_rank(greater: np.ndarray, ties: np.ndarray) -> np.ndarray:
    """Mean of 1 / (rank + 1) over the tied positions (exact, via harmonic numbers)."""
    top = int((greater + ties).max()) + 2 if len(greater) else 2
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, top))])
    return (harmonic[greater + ties + 1] - harmonic[greater]) / (ties + 1.0)


@dataclasses.dataclass
class RankedTargets:
    """One chunk of queries scored against the catalog by :func:`rank_targets`.

    ``scores [B, N]`` are every item's scores (item index ``i`` in column
    ``i - 1``), ``-inf`` where the item is not ranked for that query
    (``ranked [B, N]`` is False). The targets of the chunk are flattened:
    ``row [T]`` is each target's query (row of the chunk), ``target [T]`` its
    item index (0: unknown, never found), ``target_score [T]`` its score
    (``-inf`` when unknown); ``greater [T]`` and ``ties [T]`` count the ranked
    items above it and the other ranked items with its score,
    ``unfiltered_greater [T]`` every item above it (nothing excluded), and
    ``hits[k]`` / ``gains[k]`` are its expected HR@k and DCG@k
    (:func:`expected_hits_and_gains`).
    """

    start: int
    scores: np.ndarray
    ranked: np.ndarray
    row: np.ndarray
    target: np.ndarray
    target_score: np.ndarray
    greater: np.ndarray
    ties: np.ndarray
    unfiltered_greater: np.ndarray
    hits: dict[int, np.ndarray]
    gains: dict[int, np.ndarray]


def seen_by_user(seen: dict[int, np.ndarray] | None, user_ids) -> list[np.ndarray]:
    """``seen[user]`` for each of ``user_ids`` (none for users it lacks): the per-query list :func:`rank_targets` takes.

    Example:
    >>> [items.tolist() for items in seen_by_user({1: np.array([4, 5])}, np.array([1, 2, 1]))]
    [[4, 5], [], [4, 5]]
    """
    seen = seen or {}
    nothing = np.zeros(0, np.int64)
    return [np.asarray(seen.get(int(user), nothing), np.int64) for user in user_ids]


def _count_above_and_tied(row_scores: np.ndarray, target_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each target score: how many of ``row_scores`` are greater, and how many equal (one sort, no T x N copy)."""
    ordered = np.sort(row_scores)
    below_or_equal = np.searchsorted(ordered, target_scores, side="right")
    return len(ordered) - below_or_equal, below_or_equal - np.searchsorted(ordered, target_scores, side="left")


def rank_targets(model, features: dict[str, np.ndarray], targets, seen: list[np.ndarray] | None = None,
                 candidates: np.ndarray | None = None, ks: tuple[int, ...] = (10, 20), batch_size: int = 1024):
    """Score the catalog for each query and count where each of its targets lands; yields :class:`RankedTargets`.

    ``features`` are the model's user features, one row per query, encoded
    ``batch_size`` rows at a time; ``targets[q]`` are query ``q``'s item
    indices to place (any number), ``seen[q]`` the items query ``q``'s user
    already had (:func:`seen_by_user` builds it from a dict by user). Ranked
    for query ``q``: the ``candidates`` (item indices, default every item)
    not in ``seen[q]``, and always ``q``'s targets.

    Example (item 1 scores 3, item 2 scores 2, item 3 scores 1; the query has
    seen item 1 and its targets are items 2 and 3):
    >>> from mmrec_tf.models import TwoTower
    >>> model = TwoTower(num_users=1, num_items=3, embedding_dim=1)
    >>> model.build()
    >>> _ = model.user_embedding.embeddings.assign(np.ones((2, 1), "float32"))
    >>> _ = model.item_embedding.embeddings.assign(np.array([[0.0], [3.0], [2.0], [1.0]], "float32"))
    >>> features = {"user_id": np.array([1]), "history": np.zeros((1, 1), np.int32)}
    >>> [chunk] = rank_targets(model, features, [np.array([2, 3])], seen=[np.array([1])], ks=(1,))
    >>> chunk.greater.tolist(), chunk.unfiltered_greater.tolist(), chunk.hits[1].tolist()
    ([0, 1], [1, 2], [1.0, 0.0])
    """
    if seen is not None and len(seen) != len(targets):
        raise ValueError(f"rank_targets: {len(seen)} seen lists for {len(targets)} queries; give one per query")
    items = model.all_item_embeddings()
    num_items = items.shape[0]
    allowed = np.ones(num_items + 1, bool)
    if candidates is not None:
        allowed[:] = False
        allowed[np.asarray(candidates, np.int64)] = True
    nothing = np.zeros(0, np.int64)
    for start in range(0, len(targets), batch_size):
        batch = {name: value[start:start + batch_size] for name, value in features.items()}
        scores = ops.convert_to_numpy(model.encode_users(batch)).astype(np.float32) @ items.T
        chunk_targets = [np.asarray(t, np.int64) for t in targets[start:start + batch_size]]
        chunk_seen = seen[start:start + batch_size] if seen is not None else [nothing] * len(chunk_targets)
        lengths = [len(t) for t in chunk_targets]
        rows = np.repeat(np.arange(len(chunk_targets)), lengths)
        bounds = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
        target = np.concatenate(chunk_targets) if chunk_targets else np.zeros(0, np.int64)
        target_score = np.where(target > 0, scores[rows, np.maximum(target - 1, 0)], -np.inf)
        ranked = np.tile(allowed, (len(chunk_targets), 1))
        unfiltered_greater, greater, ties = (np.zeros(len(target), np.int64) for _ in range(3))
        for row, (row_seen, row_targets) in enumerate(zip(chunk_seen, chunk_targets)):
            ranked[row, np.asarray(row_seen, np.int64)] = False
            ranked[row, row_targets] = True
            placed = slice(bounds[row], bounds[row + 1])
            if lengths[row]:
                unfiltered_greater[placed] = _count_above_and_tied(scores[row], target_score[placed])[0]
            scores[row, ~ranked[row, 1:]] = -np.inf
            if lengths[row]:
                greater[placed], ties[placed] = _count_above_and_tied(scores[row], target_score[placed])
        ranked = ranked[:, 1:]
        ties -= target > 0
        hits, gains = {}, {}
        for k in ks:
            hits[k], gains[k] = expected_hits_and_gains(greater, ties, k)
        yield RankedTargets(start, scores, ranked, rows, target, target_score, greater, ties, unfiltered_greater,
                            hits, gains)


def evaluate_retrieval(
    model,
    examples: Examples,
    seen: dict[int, np.ndarray] | list[np.ndarray] | None = None,
    ks: tuple[int, ...] = (10, 20),
    batch_size: int = 1024,
) -> RetrievalReport:
    """Rank every item for each example's user; score where the target lands.

    ``model`` is a :class:`~mmrec_tf.models.RetrievalModel`. For each example
    all ``num_items`` items are scored (:func:`rank_targets`); the items in
    ``seen[user]`` other than the target are excluded (the user already had
    them); a list instead gives each example its own (for users a model does
    not know, who share user index 0). Reports, averaged over examples: ``hr@k`` (= recall@k with one
    held-out item), ``ndcg@k``, ``mrr`` (all with ties broken at random in
    expectation), ``coverage@k`` (share of items in at least one user's top k)
    and TFRS' ``factorized_top_k@k`` (the target's score among all items'
    scores, nothing excluded), for comparison with TFRS tutorial numbers.
    """
    if len(examples) == 0:
        raise ValueError("evaluate_retrieval: no examples to evaluate")
    top_k = max(ks)
    hits = {k: [] for k in ks}
    gains = {k: [] for k in ks}
    factorized = {k: [] for k in ks}
    covered = {k: [] for k in ks}
    reciprocal = []
    if isinstance(seen, list) and len(seen) != len(examples):
        raise ValueError(f"evaluate_retrieval: {len(seen)} seen-item lists for {len(examples)} examples")
    per_example = seen if isinstance(seen, list) else seen_by_user(seen, examples.user_id)
    for chunk in rank_targets(model, examples.features(), examples.item_id[:, None], per_example, ks=ks,
                              batch_size=batch_size):
        num_items = chunk.scores.shape[1]
        for k in ks:
            factorized[k].append((chunk.unfiltered_greater < k).astype(np.float64))
            hits[k].append(chunk.hits[k])
            gains[k].append(chunk.gains[k])
        reciprocal.append(expected_reciprocal_rank(chunk.greater, chunk.ties))
        top = np.argpartition(-chunk.scores, min(top_k, num_items - 1), axis=1)[:, :top_k]
        top_scores = np.take_along_axis(chunk.scores, top, axis=1)
        best = np.take_along_axis(top, np.argsort(-top_scores, axis=1, kind="stable"), axis=1)
        for k in ks:
            covered[k].append(best[:, :k].ravel())
    metrics = {}
    for k in ks:
        metrics[f"hr@{k}"] = float(np.concatenate(hits[k]).mean())
        metrics[f"ndcg@{k}"] = float(np.concatenate(gains[k]).mean())
    metrics["mrr"] = float(np.concatenate(reciprocal).mean())
    for k in ks:
        coverage = np.zeros(num_items, bool)
        coverage[np.concatenate(covered[k])] = True
        metrics[f"coverage@{k}"] = float(coverage.mean())
        metrics[f"factorized_top_k@{k}"] = float(np.concatenate(factorized[k]).mean())
    return RetrievalReport(metrics, len(examples), num_items)
