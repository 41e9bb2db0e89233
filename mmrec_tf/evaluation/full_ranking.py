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


def evaluate_retrieval(
    model,
    examples: Examples,
    seen: dict[int, np.ndarray] | None = None,
    ks: tuple[int, ...] = (10, 20),
    batch_size: int = 1024,
) -> RetrievalReport:
    """Rank every item for each example's user; score where the target lands.

    ``model`` is a :class:`~mmrec_tf.models.RetrievalModel`. For each example
    all ``num_items`` items are scored; the items in ``seen[user]`` other than
    the target are excluded (the user already had them). Reports, averaged over
    examples: ``hr@k`` (= recall@k with one held-out item), ``ndcg@k``, ``mrr``
    (all with ties broken at random in expectation), ``coverage@k`` (share of
    items in at least one user's top k) and TFRS' ``factorized_top_k@k`` (the
    target's score among all items' scores, nothing excluded), for comparison
    with TFRS tutorial numbers.
    """
    if len(examples) == 0:
        raise ValueError("evaluate_retrieval: no examples to evaluate")
    seen = seen or {}
    items = model.all_item_embeddings()
    num_items = items.shape[0]
    top_k = max(ks)
    hits = {k: [] for k in ks}
    gains = {k: [] for k in ks}
    factorized = {k: [] for k in ks}
    reciprocal = []
    coverage_sets = {k: np.zeros(num_items, bool) for k in ks}
    features = examples.features()
    for start in range(0, len(examples), batch_size):
        batch = {name: value[start:start + batch_size] for name, value in features.items()}
        users = ops.convert_to_numpy(model.encode_users(batch)).astype(np.float32)
        scores = users @ items.T
        targets = batch["item_id"] - 1
        rows = np.arange(len(targets))
        target_scores = np.where(targets >= 0, scores[rows, np.maximum(targets, 0)], -np.inf)
        raw_greater = (scores > target_scores[:, None]).sum(axis=1)
        for k in ks:
            factorized[k].append((raw_greater < k).astype(np.float64))
        for row, user in enumerate(batch["user_id"]):
            excluded = seen.get(int(user))
            if excluded is not None and len(excluded):
                excluded = excluded[(excluded != batch["item_id"][row]) & (excluded > 0)] - 1
                scores[row, excluded] = -np.inf
        greater = (scores > target_scores[:, None]).sum(axis=1)
        ties = (scores == target_scores[:, None]).sum(axis=1) - (targets >= 0)
        for k in ks:
            hit, gain = expected_hits_and_gains(greater, ties, k)
            hits[k].append(hit)
            gains[k].append(gain)
        reciprocal.append(expected_reciprocal_rank(greater, ties))
        top = np.argpartition(-scores, min(top_k, num_items - 1), axis=1)[:, :top_k]
        top_scores = np.take_along_axis(scores, top, axis=1)
        ranked = np.take_along_axis(top, np.argsort(-top_scores, axis=1, kind="stable"), axis=1)
        for k in ks:
            coverage_sets[k][ranked[:, :k].ravel()] = True
    metrics = {}
    for k in ks:
        metrics[f"hr@{k}"] = float(np.concatenate(hits[k]).mean())
        metrics[f"ndcg@{k}"] = float(np.concatenate(gains[k]).mean())
    metrics["mrr"] = float(np.concatenate(reciprocal).mean())
    for k in ks:
        metrics[f"coverage@{k}"] = float(coverage_sets[k].mean())
        metrics[f"factorized_top_k@{k}"] = float(np.concatenate(factorized[k]).mean())
    return RetrievalReport(metrics, len(examples), num_items)
