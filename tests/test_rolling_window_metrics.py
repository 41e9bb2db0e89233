"""One window of the rolling protocol scored by hand: new items ranked among every unseen item and among new ones."""

import numpy as np
import pandas as pd
import pytest

from mmrec_tf.data.dataset import Dataset
from mmrec_tf.data.feature_space import FeatureSpace
from mmrec_tf.data.preprocessor import Preprocessor
from mmrec_tf.data.schema import Feature, Schema
from mmrec_tf.evaluation.rolling import FRESH_SLOTS, evaluate_window, new_item_reference, window_examples
from mmrec_tf.models import TwoTower

OLD = [f"old{k}" for k in range(11)]  # old0 seen by both users before the window; old1..old10 unseen
NEW = [f"new{k}" for k in range(1, 13)]  # first seen in the window


@pytest.fixture()
def window_setup():
    before = pd.DataFrame({"user_id": ["u1", "u2"], "item_id": ["old0", "old0"], "timestamp": [0, 1]})
    window = pd.DataFrame({"user_id": ["u1", "u2", "u1"], "item_id": ["new12", "new1", "old1"],
                           "timestamp": [2, 3, 4]})
    catalog = pd.concat([before, window, pd.DataFrame({"user_id": "u1", "item_id": OLD + NEW, "timestamp": 9})])
    schema = Schema([Feature("user_id", "id", "user"), Feature("item_id", "id", "item")])
    space = FeatureSpace.build(Dataset("toy", catalog, schema))
    model = TwoTower(num_users=space.num_users, num_items=space.num_items, embedding_dim=1)
    model.build()
    model.user_embedding.embeddings.assign(np.ones((space.num_users + 1, 1), "float32"))
    # an item's score is its value: old items 100.., new item newK scores K
    values = {**{item: 100.0 + k for k, item in enumerate(OLD)}, **{item: float(k) for k, item in enumerate(NEW, 1)}}
    table = np.zeros((space.num_items + 1, 1), "float32")
    table[space.item_vocab.lookup(list(values)), 0] = list(values.values())
    model.item_embedding.embeddings.assign(table)
    return model, space, before, window


def test_new_items_are_scored_among_all_unseen_items_and_among_new_ones(window_setup):
    model, space, before, window = window_setup
    metrics = evaluate_window(model, Preprocessor(space, 2), before, window, new_items=set(NEW),
                              recent_items=set())
    # among everything unseen, the ten old items old1..old10 (scores 101..110) fill the top 10: no new item is found
    assert metrics["hr@10_new_items"] == 0.0
    # among the 12 new items only, u1's new12 ranks 1st (a hit) and u2's new1 ranks 12th (a miss)
    assert metrics["hr@10_new_among_new"] == 0.5
    # all three interactions: only u1's old1 (10th of u1's unseen, after old10..old2) is in a top 10
    assert metrics["hr@10"] == pytest.approx(1 / 3)
    assert np.isnan(metrics["hr@10_recent_items"]) and metrics["examples"] == 3.0
    # two of the ten places kept for new items: u1's picks are new12 (found) and new11, u2's new12 and new11 (new1
    # missed); the eight other places hold old10..old3, so u1's old1 is now missed
    assert FRESH_SLOTS == 2
    assert metrics["hr@10_new_items_fresh_slots"] == 0.5 and metrics["hr@10_fresh_slots"] == pytest.approx(1 / 3)


def test_new_items_the_model_does_not_know_count_as_misses_among_new(window_setup):
    model, space, before, window = window_setup
    metrics = evaluate_window(model, Preprocessor(space, 2), before, window, new_items=set(NEW) | {"unreleased"},
                              recent_items=set())
    assert metrics["hr@10_new_among_new"] == 0.5
    unknown = pd.concat([window, pd.DataFrame({"user_id": ["u2"], "item_id": ["unreleased"], "timestamp": [5]})])
    metrics = evaluate_window(model, Preprocessor(space, 2), before, unknown, new_items=set(NEW) | {"unreleased"},
                              recent_items=set())
    assert metrics["hr@10_new_among_new"] == pytest.approx(1 / 3)  # one hit in three, the unknown target a miss


def test_random_ranking_reference_among_new_items_is_k_over_the_window_new_items():
    # window 2 (rows 3..5): 3 new items, met by a and twice by b; 6 catalog items then, a saw 2 of them, b 1
    log = pd.DataFrame({"user_id": list("aab" "abb"), "item_id": list("xyw" "pqr"), "timestamp": range(6)})
    [(count, new_items, among_unseen, among_new)] = new_item_reference(log, windows=2, k=2)
    assert count == 3 and new_items == 3
    assert among_unseen == pytest.approx((2 / 4 + 2 / 5 + 2 / 5) / 3)
    assert among_new == pytest.approx(2 / 3)


def test_a_model_that_does_not_know_the_new_items_misses_them_among_new():
    # the never-updated model: its space was built before the window's new items were released
    before = pd.DataFrame({"user_id": ["u1", "u2"], "item_id": ["old0", "old1"], "timestamp": [0, 1]})
    window = pd.DataFrame({"user_id": ["u1", "u2"], "item_id": ["new1", "old0"], "timestamp": [2, 3]})
    schema = Schema([Feature("user_id", "id", "user"), Feature("item_id", "id", "item")])
    space = FeatureSpace.build(Dataset("toy", before, schema))
    model = TwoTower(num_users=space.num_users, num_items=space.num_items, embedding_dim=2)
    metrics = evaluate_window(model, Preprocessor(space, 2), before, window, new_items={"new1"},
                              recent_items=set())
    assert metrics["hr@10_new_among_new"] == 0.0 and metrics["hr@10_new_items"] == 0.0
    assert metrics["hr@10"] == 0.5  # u2's old0 is the only item u2 has not seen: first of one


def test_users_the_model_does_not_know_keep_their_own_seen_items():
    # the space knows u1 and items a, b, c only; u2 and u3 came later and share the unknown user index 0
    known = pd.DataFrame({"user_id": ["u1", "u1", "u1"], "item_id": ["a", "b", "c"], "timestamp": [0, 1, 2]})
    schema = Schema([Feature("user_id", "id", "user"), Feature("item_id", "id", "item")])
    space = FeatureSpace.build(Dataset("toy", known, schema))
    before = pd.DataFrame({"user_id": ["u2", "u3", "u2", "u3"], "item_id": ["a", "b", "later", "c"],
                           "timestamp": [3, 4, 5, 6]})
    window = pd.DataFrame({"user_id": ["u3", "u2", "u9"], "item_id": ["a", "c", "a"], "timestamp": [7, 8, 9]})
    evaluated, examples, seen, known_targets = window_examples(Preprocessor(space, 3), before, window)
    assert evaluated["user_id"].tolist() == ["u3", "u2"]
    assert examples.user_id.tolist() == [0, 0] and examples.item_id.tolist() == [1, 3]  # u9 has no past: left out
    assert examples.history.tolist() == [[2, 3, 0], [1, 0, 0]]  # u3: b, c; u2: a (the unknown "later" skipped)
    assert [items.tolist() for items in seen] == [[2, 3], [1]]
    assert known_targets.tolist() == [True, True]
