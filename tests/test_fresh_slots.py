"""Fresh slots: places of every `retrieve` list kept for the items nobody has interacted with yet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from mmrec_tf.cli import main as mmrec
from mmrec_tf.data.dataset import Dataset
from mmrec_tf.data.feature_space import FeatureSpace
from mmrec_tf.data.schema import Feature, Schema
from mmrec_tf.experiment import load_run
from mmrec_tf.export.fresh_slots import FreshSlots
from mmrec_tf.export.serving_module import ServingModule
from mmrec_tf.models import TwoTower

SCORES = {"old0": 10.0, "old1": 11.0, "old2": 12.0, "old3": 13.0, "old4": 14.0, "old5": 15.0,
          "new1": 1.0, "new2": 2.0, "new3": 3.0}
FRESH = ["new1", "new2", "new3"]


@pytest.fixture(scope="module")
def scored():
    """A one-dimensional two-tower model whose score of an item is SCORES[item] for user u1."""
    interactions = pd.DataFrame({"user_id": "u1", "item_id": list(SCORES), "timestamp": range(len(SCORES))})
    space = FeatureSpace.build(Dataset("toy", interactions, Schema([Feature("user_id", "id", "user"),
                                                                    Feature("item_id", "id", "item")])))
    model = TwoTower(num_users=space.num_users, num_items=space.num_items, embedding_dim=1)
    model.build()
    model.user_embedding.embeddings.assign(np.ones((space.num_users + 1, 1), "float32"))
    table = np.zeros((space.num_items + 1, 1), "float32")
    table[space.item_vocab.lookup(list(SCORES)), 0] = list(SCORES.values())
    model.item_embedding.embeddings.assign(table)
    return model, space


def _retrieve(module, history: list[str]) -> list[tuple[str, float]]:
    out = module.retrieve(tf.constant(["u1"]), tf.constant([history]))
    return [(item.decode(), float(score)) for item, score in zip(out["item_ids"].numpy()[0], out["scores"].numpy()[0])]


def test_two_of_four_places_go_to_the_best_fresh_items_by_hand(scored):
    model, space = scored
    plain = ServingModule(model, space, k=4, index="brute_force")
    fresh = ServingModule(model, space, k=4, index="brute_force", fresh_slots=2, fresh_item_ids=FRESH)
    assert _retrieve(plain, ["old0"]) == [("old5", 15.0), ("old4", 14.0), ("old3", 13.0), ("old2", 12.0)]
    assert _retrieve(fresh, ["old0"]) == [("old5", 15.0), ("old4", 14.0), ("new3", 3.0), ("new2", 2.0)]
    # a fresh item the user had is not picked again: the next best fresh one is
    assert _retrieve(fresh, ["new3"]) == [("old5", 15.0), ("old4", 14.0), ("new2", 2.0), ("new1", 1.0)]


def test_a_fresh_item_the_index_found_is_not_listed_twice_and_rows_without_fresh_items_fill_from_the_index(scored):
    model, space = scored
    module = ServingModule(model, space, k=4, index="brute_force", fresh_slots=2, fresh_item_ids=["old4", "new3"])
    assert _retrieve(module, ["old0"]) == [("old5", 15.0), ("old4", 14.0), ("old3", 13.0), ("new3", 3.0)]
    # both fresh items already had: the four places go to the index's best
    assert _retrieve(module, ["old4", "new3"]) == [("old5", 15.0), ("old3", 13.0), ("old2", 12.0), ("old1", 11.0)]


def test_a_short_index_list_never_lists_a_fresh_pick_twice():
    # the index found 3 items (one of them the fresh position 3) and an empty place; one fresh slot
    slots = FreshSlots(np.array([3, 5]), np.array([[3.5], [0.5]], "float32"), slots=1, k=4, catalog_size=6)
    positions, scores = slots.merge(tf.constant([[1.0]]), tf.constant([[0, 3, 1, -1]]),
                                    tf.constant([[4.0, 3.5, 3.0, -np.inf]]), history_positions=tf.constant([[-1, 2]]))
    assert positions.numpy().tolist() == [[0, 3, 1, -1]]
    assert scores.numpy().tolist() == [[4.0, 3.5, 3.0, -np.inf]]


@pytest.mark.parametrize("arguments, message", [
    ({"fresh_slots": 5, "fresh_item_ids": FRESH}, r"from 1 to the list length k \(--k\) = 4, got 5"),
    ({"fresh_slots": 2}, "need fresh items, but every catalog item has training interactions"),
    ({"fresh_slots": 2, "fresh_item_ids": FRESH, "rerank": "tail:0.2", "item_popularity": np.ones(10)},
     "--fresh-slots and --rerank both choose the places of a `retrieve` list; use one"),
])
def test_impossible_fresh_slots_are_refused(scored, arguments, message):
    model, space = scored
    with pytest.raises(ValueError, match=message):
        ServingModule(model, space, k=4, index="brute_force", **arguments)


def _folder(folder: Path, users: range, listed: range, interacted: range) -> Path:
    """Users rate interacted items; items.csv lists more (the rest have no interactions)."""
    folder.mkdir(parents=True)
    rows = [(f"u{u}", f"m{i}", 4.0, 100 * u + i) for u in users for i in interacted if (u + i) % 2 == 0]
    pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"]).to_csv(folder / "interactions.csv",
                                                                                   index=False)
    genres = [["Action", "Drama"][i % 2] if i in interacted else "Western" for i in listed]  # a genre nobody rated
    pd.DataFrame({"item_id": [f"m{i}" for i in listed], "genres": genres}).to_csv(folder / "items.csv", index=False)
    return folder


def test_mmrec_export_fresh_slots_serves_an_updated_runs_best_never_trained_items(tmp_path, capsys):
    old = _folder(tmp_path / "old", range(0, 8), range(0, 12), range(0, 9))  # m9..m11 listed, never interacted
    new = _folder(tmp_path / "new", range(8, 12), range(0, 15), range(0, 9))  # m12..m14 arrive, no interactions
    training = ["--epochs", "1", "--batch-size", "8", "--set", "embedding_dim=4", "--set", "lstm_units=4",
                "--set", "max_history=3"]
    assert mmrec(["train", "lstm_two_tower", "--data", str(old), "--run-dir", str(tmp_path / "run"), *training]) == 0
    assert mmrec(["update", str(tmp_path / "run"), "--data", str(new), "--run-dir", str(tmp_path / "run2")]) == 0
    assert mmrec(["export", str(tmp_path / "run2"), "--saved-models", str(tmp_path / "saved"), "--k", "5",
                  "--fresh-slots", "2"]) == 0
    capsys.readouterr()
    model, space, _ = load_run(tmp_path / "run2")
    fresh = [f"m{i}" for i in range(9, 15)]
    users, history = ["u1", "u9"], [["m0", "m2", ""], ["m1", "m3", "m5"]]
    served = tf.saved_model.load(str(tmp_path / "saved" / "lstm_two_tower" / "1")).signatures["retrieve"]
    lists = served(user_id=tf.constant(users), history=tf.constant(history))["item_ids"].numpy()
    features = {"user_id": space.user_vocab.lookup(users),
                "history": np.array([space.item_vocab.lookup(row) for row in history])}
    scores = np.asarray(model.encode_users(features)) @ np.asarray(model.all_item_embeddings()).T
    changed = 0
    for row, (listed, seen) in enumerate(zip(lists, history)):
        listed = [item.decode() for item in listed]
        by_score = [space.item_vocab.ids[i] for i in np.argsort(-scores[row], kind="stable")
                    if space.item_vocab.ids[i] not in seen]
        best_fresh = [item for item in by_score if item in fresh][:2]
        best_others = [item for item in by_score if item not in best_fresh][:3]
        assert listed == [item for item in by_score if item in best_fresh + best_others]  # in score order
        changed += set(listed) != set(by_score[:5])
    assert changed  # the fresh items would not all have made the plain top 5
