"""The cold-start split and the per-user evaluation with several held-out items, by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mmrec_tf.data.dataset import Dataset
from mmrec_tf.data.feature_space import FeatureSpace
from mmrec_tf.data.pipeline import build_examples, seen_items
from mmrec_tf.data.schema import Feature, Schema
from mmrec_tf.data.sources.synthetic import make_synthetic
from mmrec_tf.data.splits import Split, cold_item_ids, cold_start_split, leave_last_out
from mmrec_tf.data.preprocessor import Preprocessor
from mmrec_tf.data.user_queries import UserQueries, user_queries
from mmrec_tf.evaluation.cold_start import ColdStartReport, evaluate_cold_start, evaluate_user_targets
from mmrec_tf.evaluation.full_ranking import evaluate_retrieval
from mmrec_tf.models import Popularity, TwoTower


# === cold_start_split ===


@pytest.fixture(scope="module")
def synthetic():
    return make_synthetic(num_users=80, num_items=60, num_clusters=3, interactions_per_user=12, seed=1)


def test_cold_items_never_reach_train_and_warm_items_are_split_leave_last_out(synthetic):
    split = cold_start_split(synthetic, cold_fraction=0.25, seed=3)
    log = split.log
    assert len(log) == synthetic.num_interactions and split.method == "cold_start"
    interacted = sorted(set(synthetic.interactions["item_id"]))
    held_out = set(log.loc[log["split"] != "train", "item_id"]) - set(split.train["item_id"])
    assert len(held_out) >= round(0.25 * len(interacted)) == 15
    cold = cold_item_ids(split)
    assert cold == held_out and not split.train["item_id"].isin(cold).any()
    valid_cold = set(split.valid["item_id"]) & cold
    test_cold = set(split.test["item_id"]) & cold
    assert not valid_cold & test_cold, "a cold item's interactions all go to one split"
    assert len(valid_cold) + len(test_cold) == len(cold)
    # Warm interactions: per user, last → test, second-last → valid, in time order.
    warm = log[~log["item_id"].isin(cold)]
    for _, rows in warm.groupby("user_id"):
        assert rows["position"].is_monotonic_increasing
        assert rows["split"].tolist() == ["train"] * (len(rows) - 2) + ["valid", "test"]


def test_cold_start_split_is_seeded_and_checks_its_arguments(synthetic):
    first = cold_item_ids(cold_start_split(synthetic, 0.2, seed=0))
    assert first == cold_item_ids(cold_start_split(synthetic, 0.2, seed=0))
    assert first != cold_item_ids(cold_start_split(synthetic, 0.2, seed=1))
    with pytest.raises(ValueError, match=r"cold_fraction must be in \(0, 1\)"):
        cold_start_split(synthetic, 1.0)
    with pytest.raises(ValueError, match="at least one cold item"):
        cold_start_split(synthetic, 0.001)
    with pytest.raises(ValueError, match="valid_share"):
        cold_start_split(synthetic, 0.2, valid_share=1.5)


def test_histories_never_show_a_cold_item_in_training(synthetic):
    split = cold_start_split(synthetic, 0.25, seed=0)
    space = FeatureSpace.build(synthetic)
    train = build_examples(split, space, max_history=5)["train"]
    cold = space.item_vocab.lookup(sorted(cold_item_ids(split)))
    assert not np.isin(train.item_id, cold).any() and not np.isin(train.history, cold).any()


# === user_queries ===


def tiny_split() -> tuple[Split, FeatureSpace]:
    interactions = pd.DataFrame({"user_id": ["u1"] * 5 + ["u2"] * 3, "item_id": list("abcde") + list("cab")})
    schema = Schema([Feature("user_id", "id", "user"), Feature("item_id", "id", "item")])
    dataset = Dataset("toy", interactions, schema)
    log = dataset.interactions.assign(position=[0, 1, 2, 3, 4, 0, 1, 2],
                                      split=["train", "train", "valid", "test", "test", "train", "train", "valid"])
    return Split(log=log, method="toy"), FeatureSpace.build(dataset)


def test_user_queries_by_hand():
    split, space = tiny_split()
    index = dict(zip(space.item_vocab.ids, range(1, space.num_items + 1)))
    queries = user_queries(split, space, max_history=2, target="test")
    assert len(queries) == 1 and queries.user_id.tolist() == space.user_vocab.lookup(["u1"]).tolist()
    assert queries.history.tolist() == [[index["b"], index["c"]]], "the two most recent visible items"
    assert queries.targets[0].tolist() == sorted([index["d"], index["e"]])
    assert queries.seen[0].tolist() == sorted([index["a"], index["b"], index["c"]])
    valid = user_queries(split, space, max_history=3, target="valid")
    assert [t.tolist() for t in valid.targets] == [[index["c"]], [index["b"]]]
    assert valid.history.tolist() == [[index["a"], index["b"], 0], [index["c"], index["a"], 0]]
    with pytest.raises(ValueError, match="target must be one of"):
        user_queries(split, space, target="train")


# === evaluate_user_targets ===


def fixed_model(item_scores: list[float]) -> TwoTower:
    """A two-tower model whose every user scores item index i + 1 with ``item_scores[i]``."""
    model = TwoTower(num_users=3, num_items=len(item_scores), embedding_dim=1)
    model.build()
    model.user_embedding.embeddings.assign(np.ones((4, 1), "float32"))
    model.item_embedding.embeddings.assign(np.array([[0.0], *[[s] for s in item_scores]], "float32"))
    return model


def test_metrics_by_hand_with_several_targets():
    #                 item index:  1    2    3    4    5    6
    model = fixed_model([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    queries = UserQueries(np.array([1, 2]), np.zeros((2, 1), np.int32),
                          targets=[np.array([2, 5]), np.array([6])], seen=[np.array([1]), np.array([])])
    metrics = evaluate_user_targets(model, queries, ks=(2, 4))
    # user 1: item 1 excluded; ranking 2, 3, 4, 5, 6 → targets at ranks 0 and 3 of 5 ranked items.
    # user 2: ranking 1..6 → target 6 at rank 5 of 6.
    dcg = lambda ranks: sum(1 / math.log2(r + 2) for r in ranks)  # noqa: E731
    assert metrics["recall@2"] == pytest.approx((1 / 2 + 0) / 2)
    assert metrics["recall@4"] == pytest.approx((2 / 2 + 0) / 2)
    assert metrics["hr@2"] == pytest.approx((1 + 0) / 2)
    assert metrics["ndcg@2"] == pytest.approx((dcg([0]) / dcg([0, 1]) + 0) / 2)
    assert metrics["ndcg@4"] == pytest.approx((dcg([0, 3]) / dcg([0, 1]) + 0) / 2)
    assert metrics["random_recall@4"] == pytest.approx((4 / 5 + 4 / 6) / 2)
    assert (metrics["num_users"], metrics["num_targets"], metrics["num_candidates"]) == (2, 3, 5.5)
    # Among candidates 4..6 only, user 1's target 2 is not a candidate: only target 5 counts.
    among = evaluate_user_targets(model, queries, ks=(1,), candidates=np.array([4, 5, 6]))
    assert among["recall@1"] == pytest.approx((0 + 0) / 2) and among["num_candidates"] == 3
    assert evaluate_user_targets(model, queries, ks=(2,), candidates=np.array([4, 5, 6]),
                                 target_items=np.array([6]))["num_users"] == 1


def test_queries_sharing_a_user_index_each_exclude_their_own_seen_items():
    """Hashed-bucket users share one index: each query's own seen items are excluded, not another's."""
    model = fixed_model([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    queries = UserQueries(np.array([3, 3]), np.zeros((2, 1), np.int32),
                          targets=[np.array([3]), np.array([3])], seen=[np.array([1, 2]), np.array([], np.int64)])
    metrics = evaluate_user_targets(model, queries, ks=(1, 3))
    # query 0: items 1, 2 excluded -> target 3 ranks first of 4; query 1: nothing excluded -> third of 6
    assert metrics["recall@1"] == pytest.approx((1 + 0) / 2)
    assert metrics["recall@3"] == pytest.approx((1 + 1) / 2)
    assert metrics["num_candidates"] == pytest.approx((4 + 6) / 2)


def test_ties_are_broken_at_random_in_expectation():
    model = fixed_model([0.5, 0.5, 0.5, 0.5, 0.1])
    queries = UserQueries(np.array([1]), np.zeros((1, 1), np.int32), targets=[np.array([1, 2])],
                          seen=[np.array([], np.int64)])
    metrics = evaluate_user_targets(model, queries, ks=(2, 3))
    assert metrics["recall@2"] == pytest.approx(0.5)  # each target in the top 2 with probability 2/4
    assert metrics["hr@2"] == pytest.approx(1 - 1 / 6)  # both slots taken by the 2 non-targets: 1 of C(4, 2)
    assert metrics["hr@3"] == pytest.approx(1.0)  # 3 slots among 4 tied items always catch a target
    flat = evaluate_user_targets(Popularity(num_users=3, num_items=5), queries, ks=(3,))
    assert flat["recall@3"] == pytest.approx(flat["random_recall@3"]) == pytest.approx(3 / 5)


def test_one_target_per_user_matches_the_full_ranking_evaluator(tiny_dataset):
    space = FeatureSpace.build(tiny_dataset)
    split = leave_last_out(tiny_dataset)
    examples = build_examples(split, space, max_history=4)
    model = TwoTower(num_users=space.num_users, num_items=space.num_items, embedding_dim=3)
    model.build()
    reference = evaluate_retrieval(model, examples["test"], seen_items(split, space, "test"), ks=(5, 10))
    ours = evaluate_user_targets(model, user_queries(split, space, max_history=4), ks=(5, 10))
    for k in (5, 10):
        assert ours[f"recall@{k}"] == pytest.approx(reference.metrics[f"hr@{k}"], abs=1e-9)
        assert ours[f"hr@{k}"] == pytest.approx(reference.metrics[f"hr@{k}"], abs=1e-9)
        assert ours[f"ndcg@{k}"] == pytest.approx(reference.metrics[f"ndcg@{k}"], abs=1e-9)


# === evaluate_cold_start ===


def test_cold_start_report_sections(synthetic):
    split = cold_start_split(synthetic, 0.25, seed=0)
    space = FeatureSpace.build(synthetic)
    model = Popularity(num_users=space.num_users, num_items=space.num_items)
    model.prepare(build_examples(split, space, max_history=3)["train"])
    report = evaluate_cold_start(model, split, Preprocessor(space, 3), ks=(10,))
    assert isinstance(report, ColdStartReport) and list(report.sections) == [
        "all", "warm", "cold_among_cold", "cold_among_all"]
    num_cold = len(cold_item_ids(split))
    assert report["cold_among_cold"]["num_candidates"] <= num_cold
    # popularity scores every cold item 0: among cold items it is random, among all items last.
    assert report["cold_among_cold"]["recall@10"] == pytest.approx(report["cold_among_cold"]["random_recall@10"])
    assert report["cold_among_all"]["recall@10"] == 0.0
    assert report["warm"]["recall@10"] > 1.5 * report["warm"]["random_recall@10"]
    assert "cold_among_cold" in str(report)
    with pytest.raises(KeyError, match="no section 'cold'"):
        report["cold"]
    warm_only = evaluate_cold_start(model, split, Preprocessor(space, 3), ks=(10,), cold_items=set())
    assert list(warm_only.sections) == ["all", "warm"]
