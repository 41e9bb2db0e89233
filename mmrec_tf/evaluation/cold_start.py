"""Per-user full ranking with several held-out items, reported for warm and cold-start items separately."""

from __future__ import annotations

import dataclasses

import numpy as np

from mmrec_tf.data.splits import Split, cold_item_ids
from mmrec_tf.data.preprocessor import Preprocessor
from mmrec_tf.data.user_queries import UserQueries
from mmrec_tf.evaluation.full_ranking import rank_targets

SECTIONS = ("all", "warm", "cold_among_cold", "cold_among_all")


def evaluate_user_targets(model, queries: UserQueries, ks: tuple[int, ...] = (10, 20),
                          candidates: np.ndarray | None = None, target_items: np.ndarray | None = None,
                          batch_size: int = 512) -> dict[str, float]:
    """Rank the candidate items for each user; measure how many of the user's targets come first.

    A view on :func:`~mmrec_tf.evaluation.full_ranking.rank_targets`, which
    scores: ``candidates`` (item indices, default every item) are the items
    ranked; a user's ``seen`` items other than their targets are excluded. Only
    targets that are candidates and, when given, in ``target_items`` count;
    users left with none are skipped. Per user, with ``R`` such targets and
    ``n`` ranked items, averaged over users:

    - ``recall@k``: targets in the top ``k`` / ``R``;
    - ``ndcg@k``: DCG of the targets in the top ``k`` / the ideal DCG of
      ``min(R, k)`` targets;
    - ``hr@k``: 1 if any target is in the top ``k``;
    - ``random_recall@k``: what a random ranking gets in expectation,
      ``min(k, n) / n``.

    Ties are broken at random *in expectation* (exactly: a model scoring
    every item alike gets the random values), the counts
    :func:`~mmrec_tf.evaluation.full_ranking.evaluate_retrieval` reports too. Also
    reported: ``num_users``, ``num_targets``, ``num_candidates`` (mean ``n``).

    Example:
    >>> from mmrec_tf.models import Popularity
    >>> model = Popularity(num_users=2, num_items=4)
    >>> queries = UserQueries(np.array([1, 2]), np.zeros((2, 1), np.int32), [np.array([1]), np.array([2, 3])],
    ...                       [np.array([4]), np.array([], np.int32)])
    >>> metrics = evaluate_user_targets(model, queries, ks=(2,))
    >>> metrics["random_recall@2"], metrics["hr@2"]  # all scores tie: a random ranking
    (0.5833333333333333, 0.75)
    """
    if len(queries) == 0:
        raise ValueError("evaluate_user_targets: no users to evaluate")
    counted = []
    for targets in queries.targets:
        targets = np.asarray(targets, np.int64)
        targets = targets[targets > 0]
        if candidates is not None:
            targets = targets[np.isin(targets, candidates)]
        if target_items is not None:
            targets = targets[np.isin(targets, target_items)]
        counted.append(targets)
    columns = {f"{name}@{k}": [] for k in ks for name in ("recall", "ndcg", "hr", "random_recall")}
    sizes, counts = [], []
    features = {"user_id": queries.user_id, "history": queries.history}
    for chunk in rank_targets(model, features, counted, queries.seen, candidates, ks=ks, batch_size=batch_size):
        bounds = np.concatenate([[0], np.cumsum(np.bincount(chunk.row, minlength=len(chunk.scores)))])
        for row, (first, last) in enumerate(zip(bounds[:-1], bounds[1:])):
            if first == last:
                continue
            ranked = chunk.scores[row][chunk.ranked[row]]
            sizes.append(len(ranked))
            counts.append(last - first)
            for k in ks:
                ideal = (1.0 / np.log2(np.arange(min(last - first, k)) + 2.0)).sum()
                columns[f"recall@{k}"].append(chunk.hits[k][first:last].sum() / (last - first))
                columns[f"ndcg@{k}"].append(chunk.gains[k][first:last].sum() / ideal)
                columns[f"hr@{k}"].append(_expected_any_hit(ranked, chunk.target_score[first:last], k))
                columns[f"random_recall@{k}"].append(min(k, len(ranked)) / len(ranked))
    if not counts:
        raise ValueError("evaluate_user_targets: no user has a target among the candidates")
    metrics = {name: float(np.mean(values)) for name, values in columns.items()}
    metrics.update({"num_users": float(len(counts)), "num_targets": float(np.sum(counts)),
                    "num_candidates": float(np.mean(sizes))})
    return metrics


def _expected_any_hit(ranked: np.ndarray, target_scores: np.ndarray, k: int) -> float:
    """P(at least one target in the top k) with ties at the k-th place broken uniformly at random."""
    if len(ranked) <= k:
        return 1.0
    kth = np.partition(-ranked, k - 1)[k - 1] * -1.0
    if (target_scores > kth).any():
        return 1.0
    above = int((ranked > kth).sum())
    tied = int((ranked == kth).sum())
    tied_targets = int((target_scores == kth).sum())
    slots = k - above
    miss = 1.0
    for j in range(slots):
        miss *= max(tied - tied_targets - j, 0) / (tied - j)
    return 1.0 - miss


@dataclasses.dataclass
class ColdStartReport:
    """Metrics per section: ``all``, ``warm``, ``cold_among_cold``, ``cold_among_all`` (absent: no such targets).

    Example:
    >>> report = ColdStartReport({"warm": {"recall@20": 0.3, "random_recall@20": 0.01, "num_users": 5.0}})
    >>> print(report)
    warm             recall@20=0.3000  random_recall@20=0.0100  num_users=5
    """

    sections: dict[str, dict[str, float]]

    def __getitem__(self, section: str) -> dict[str, float]:
        if section not in self.sections:
            raise KeyError(f"no section {section!r}; this report has {sorted(self.sections)}")
        return self.sections[section]

    def __str__(self) -> str:
        lines = []
        for section, metrics in self.sections.items():
            cells = [f"{name}={value:.0f}" if name.startswith("num_") else f"{name}={value:.4f}"
                     for name, value in metrics.items()]
            lines.append(f"{section:16s} " + "  ".join(cells))
        return "\n".join(lines)


def evaluate_cold_start(model, split: Split, preprocessor: Preprocessor, ks: tuple[int, ...] = (10, 20),
                        target: str = "test", cold_items: set[str] | None = None) -> ColdStartReport:
    """Warm and cold held-out items, reported apart (see :func:`evaluate_user_targets` for the metrics).

    Each user's query is ``preprocessor``'s (:meth:`~mmrec_tf.data.preprocessor.Preprocessor.queries`).

    Cold items are ``cold_items`` (ids; default :func:`~mmrec_tf.data.splits.cold_item_ids`:
    every item without a training interaction), warm items all the others.
    Sections:

    - ``all``: every target, every item ranked;
    - ``warm``: warm targets, every item ranked;
    - ``cold_among_cold``: cold targets, only cold items ranked (can the model
      order new items by the user's taste?);
    - ``cold_among_all``: cold targets, every item ranked (do new items
      reach the top against the trained ones?).

    A section with no target is left out.

    Example:
    >>> from mmrec_tf.data.sources import make_synthetic
    >>> from mmrec_tf.data.splits import cold_start_split
    >>> from mmrec_tf.models import Popularity
    >>> ds = make_synthetic(num_users=30, num_items=20, num_clusters=2, interactions_per_user=8)
    >>> from mmrec_tf.data.feature_space import FeatureSpace
    >>> split, preprocessor = cold_start_split(ds, cold_fraction=0.3), Preprocessor(FeatureSpace.build(ds), 5)
    >>> model = Popularity(num_users=preprocessor.space.num_users, num_items=preprocessor.space.num_items)
    >>> report = evaluate_cold_start(model, split, preprocessor)
    >>> sorted(report.sections)
    ['all', 'cold_among_all', 'cold_among_cold', 'warm']
    """
    space = preprocessor.space
    queries = preprocessor.queries(split, target)
    cold_ids = cold_item_ids(split) if cold_items is None else set(cold_items)
    cold = space.item_vocab.lookup(sorted(cold_ids))
    cold = cold[cold > 0]
    warm = np.setdiff1d(np.arange(1, space.num_items + 1), cold)
    plans = {"all": (None, None), "warm": (None, warm), "cold_among_cold": (cold, cold),
             "cold_among_all": (None, cold)}
    sections = {}
    for section, (candidates, target_items) in plans.items():
        if target_items is not None and not any(np.isin(t, target_items).any() for t in queries.targets):
            continue
        sections[section] = evaluate_user_targets(model, queries, ks=ks, candidates=candidates,
                                                  target_items=target_items)
    return ColdStartReport(sections)
