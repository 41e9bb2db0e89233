"""Full-corpus ranking metrics on a fake model with fixed embeddings, computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmrec_tf.data.pipeline import Examples
from mmrec_tf.evaluation.full_ranking import (
    evaluate_retrieval,
    expected_hits_and_gains,
    expected_reciprocal_rank,
    rank_targets,
)


class FixedEmbeddingModel:
    """A retrieval model stand-in: user ``u`` has vector ``users[u]``, item ``i`` vector ``items[i - 1]``."""

    def __init__(self, users, items):
        self.users = np.asarray(users, np.float32)
        self.items = np.asarray(items, np.float32)
        self.num_items = len(self.items)

    def all_item_embeddings(self):
        return self.items

    def encode_users(self, features, training=False):
        return self.users[np.asarray(features["user_id"])]


def examples(users, targets) -> Examples:
    return Examples(np.asarray(users, np.int32), np.asarray(targets, np.int32),
                    np.zeros((len(users), 2), np.int32), {})


# Items 1..5 score 5, 4, 4, 3, 1 for a user with vector [1]; user 3 has [-1] (order reversed).
MODEL = FixedEmbeddingModel(users=[[0.0], [1.0], [1.0], [-1.0]], items=[[5.0], [4.0], [4.0], [3.0], [1.0]])
# A: user 1, target item 3 — item 1 above it, item 2 tied with it: rank 1 or 2 (0-based), each with p=1/2.
# B: user 2, target item 4 (score 3), has seen items 2 and 4: item 2 is excluded, the target is not;
#    items 1 and 3 remain above it: rank 2.
# C: user 3, target item 5 (score -1, the best), has seen items 5 and 2: rank 0.
HAND = examples(users=[1, 2, 3], targets=[3, 4, 5])
SEEN = {2: np.array([2, 4]), 3: np.array([5, 2])}

L2, L3, L4 = math.log2(2), math.log2(3), math.log2(4)
EXPECTED = {
    "hr@1": (0 + 0 + 1) / 3,
    "hr@2": (0.5 + 0 + 1) / 3,
    "hr@3": (1 + 1 + 1) / 3,
    "ndcg@1": (0 + 0 + 1) / 3,
    "ndcg@2": (0.5 / L3 + 0 + 1) / 3,
    "ndcg@3": (0.5 * (1 / L3 + 1 / L4) + 1 / L4 + 1) / 3,
    "mrr": (0.5 * (1 / 2 + 1 / 3) + 1 / 3 + 1) / 3,
    # factorized top-k: nothing excluded, only strictly higher scores count
    # (A: 1 above, B: 3 above, C: none above).
    "factorized_top_k@1": 1 / 3,
    "factorized_top_k@2": 2 / 3,
    "factorized_top_k@3": 2 / 3,
    # coverage: top-1 lists are {1}, {1}, {5}; top-3 lists cover every item:
    # A {1, 2, 3}, B {1, 3, 4} (2 excluded), C {5, 4, 3} (2 excluded).
    "coverage@1": 2 / 5,
    "coverage@3": 5 / 5,
}


@pytest.mark.parametrize("batch_size", [1, 2, 1024])
def test_metrics_by_hand(batch_size):
    report = evaluate_retrieval(MODEL, HAND, seen=SEEN, ks=(1, 2, 3), batch_size=batch_size)
    assert report.num_examples == 3 and report.num_items == 5
    for name, value in EXPECTED.items():
        assert report.metrics[name] == pytest.approx(value, abs=1e-9), name
    assert "hr@3=1.0000" in str(report)


def test_rank_targets_counts_several_targets_among_candidates_by_hand():
    # User 1 scores items 1..5: 5, 4, 4, 3, 1. Query 0 (user 1): candidates 2..5, seen 2 and 5, targets 3 and 5:
    # ranked items 3, 4, 5 (5 seen but a target) -> target 3 first, target 5 last.
    # Query 1 (user 3, scores reversed): targets 0 (unknown) and 1; nothing seen: ranked 2, 3, 4, 5 and target 1.
    features = {"user_id": np.array([1, 3])}
    targets = [np.array([3, 5]), np.array([0, 1])]
    [chunk] = rank_targets(MODEL, features, targets, seen=[np.array([2, 5]), np.array([], np.int64)],
                           candidates=np.array([2, 3, 4, 5]), ks=(1, 3))
    assert chunk.start == 0 and chunk.row.tolist() == [0, 0, 1, 1] and chunk.target.tolist() == [3, 5, 0, 1]
    assert chunk.ranked.tolist() == [[False, False, True, True, True], [True, True, True, True, True]]
    assert chunk.scores[0].tolist() == [-np.inf, -np.inf, 4.0, 3.0, 1.0]
    assert chunk.target_score.tolist() == [4.0, 1.0, -np.inf, -5.0]
    assert chunk.greater.tolist() == [0, 2, 5, 4] and chunk.ties.tolist() == [0, 0, 0, 0]
    assert chunk.unfiltered_greater.tolist() == [1, 4, 5, 4]  # nothing excluded: items 1 (and 2, 3, 4) count
    assert chunk.hits[1].tolist() == [1.0, 0.0, 0.0, 0.0] and chunk.hits[3].tolist() == [1.0, 1.0, 0.0, 0.0]
    np.testing.assert_allclose(chunk.gains[3], [1.0, 1 / L4, 0.0, 0.0])


def test_seen_items_are_excluded_but_never_the_target():
    only_b = examples(users=[2], targets=[4])
    excluded = evaluate_retrieval(MODEL, only_b, seen={2: np.array([2, 4])}, ks=(3,)).metrics
    assert excluded["hr@3"] == 1.0 and excluded["mrr"] == pytest.approx(1 / 3)
    nothing_excluded = evaluate_retrieval(MODEL, only_b, seen=None, ks=(3,)).metrics
    assert nothing_excluded["hr@3"] == 0.0 and nothing_excluded["mrr"] == pytest.approx(1 / 4)
    target_only = evaluate_retrieval(MODEL, only_b, seen={2: np.array([4])}, ks=(3,)).metrics
    assert target_only == nothing_excluded, "excluding only the target itself must change nothing"
    # Seen items of other users do not matter, and index 0 in a seen list is ignored.
    others = evaluate_retrieval(MODEL, only_b, seen={1: np.array([1, 2, 3]), 2: np.array([0, 2])}, ks=(3,))
    assert others.metrics == excluded


def test_all_ties_give_the_random_ranking_value():
    flat = FixedEmbeddingModel(users=[[0.0], [1.0], [1.0]], items=np.ones((5, 1)))
    report = evaluate_retrieval(flat, examples(users=[1, 2], targets=[2, 5]), ks=(1, 2, 5)).metrics
    for k in (1, 2, 5):
        assert report[f"hr@{k}"] == pytest.approx(k / 5)
        assert report[f"ndcg@{k}"] == pytest.approx(sum(1 / math.log2(r + 2) for r in range(k)) / 5)
    assert report["mrr"] == pytest.approx(sum(1 / r for r in range(1, 6)) / 5)
    assert report["factorized_top_k@1"] == 1.0  # no item scores strictly above the target


def test_expected_hits_gains_and_reciprocal_rank_by_hand():
    greater, ties = np.array([0, 3, 9, 2]), np.array([0, 0, 1, 3])
    hits, gains = expected_hits_and_gains(greater, ties, k=4)
    # ranks: {0}, {3}, {9, 10}, {2, 3, 4, 5}
    np.testing.assert_allclose(hits, [1, 1, 0, 0.5])
    np.testing.assert_allclose(gains, [1, 1 / math.log2(5), 0, (1 / math.log2(4) + 1 / math.log2(5)) / 4])
    np.testing.assert_allclose(expected_reciprocal_rank(greater, ties),
                               [1, 1 / 4, (1 / 10 + 1 / 11) / 2, (1 / 3 + 1 / 4 + 1 / 5 + 1 / 6) / 4])


def test_expected_values_match_random_tie_breaking():
    rng = np.random.default_rng(0)
    greater, ties = np.array([4]), np.array([6])
    ranks = greater[0] + rng.integers(0, ties[0] + 1, size=200_000)
    hits, gains = expected_hits_and_gains(greater, ties, k=8)
    assert hits[0] == pytest.approx(np.mean(ranks < 8), abs=5e-3)
    assert gains[0] == pytest.approx(np.mean(np.where(ranks < 8, 1 / np.log2(ranks + 2), 0)), abs=5e-3)
    assert expected_reciprocal_rank(greater, ties)[0] == pytest.approx(np.mean(1 / (ranks + 1)), abs=5e-3)


def test_unknown_target_never_counts_as_a_hit():
    report = evaluate_retrieval(MODEL, examples(users=[1], targets=[0]), ks=(5,)).metrics
    assert report["hr@5"] == 0.0 and report["factorized_top_k@5"] == 0.0


def test_no_examples_is_an_error():
    with pytest.raises(ValueError, match="no examples"):
        evaluate_retrieval(MODEL, examples(users=[], targets=[]))
