"""Splits (leave-last-out, random, predefined) and the example pipeline's history rules, by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmrec_tf.data.dataset import Dataset
from mmrec_tf.data.feature_space import FeatureSpace
from mmrec_tf.data.pipeline import (
    Examples,
    build_examples,
    item_frequencies,
    make_tf_dataset,
    seen_items,
    steps_per_epoch,
)
from mmrec_tf.data.schema import Feature, Schema
from mmrec_tf.data.sources.synthetic import make_synthetic
from mmrec_tf.data.splits import leave_last_out, make_split, predefined_split, random_split

SCHEMA = Schema([Feature("user_id", "id", "user"), Feature("item_id", "id", "item"),
                 Feature("rating", "label", "interaction"), Feature("timestamp", "timestamp", "interaction")])


def two_user_dataset(split_labels=None) -> Dataset:
    """u1: a@10, c@20, then b and d tied at 30 (b first in the file); u2: x and y tied at 5, z@7.

    Item vocabulary (first seen in the file): a=1, x=2, b=3, c=4, y=5, z=6, d=7.
    """
    rows = [("u1", "a", 10), ("u2", "x", 5), ("u1", "b", 30), ("u1", "c", 20), ("u2", "y", 5), ("u2", "z", 7),
            ("u1", "d", 30)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    frame.insert(2, "rating", np.arange(1, len(rows) + 1, dtype=np.float32))
    return Dataset("two_users", frame, SCHEMA, split_labels=split_labels)


# === Splits ===


def test_leave_last_out_by_hand_with_timestamp_ties():
    split = leave_last_out(two_user_dataset())
    log = split.log
    assert split.method == "leave_last_out"
    assert log["user_id"].tolist() == ["u1"] * 4 + ["u2"] * 3
    assert log["item_id"].tolist() == ["a", "c", "b", "d", "x", "y", "z"]
    assert log["position"].tolist() == [0, 1, 2, 3, 0, 1, 2]
    assert log["split"].tolist() == ["train", "train", "valid", "test", "train", "valid", "test"]
    assert split.train["item_id"].tolist() == ["a", "c", "x"]
    assert split.valid["item_id"].tolist() == ["b", "y"]
    assert split.test["item_id"].tolist() == ["d", "z"]
    assert log["rating"].tolist() == [1, 4, 3, 7, 2, 5, 6]  # the rows' own columns travel with them


def test_leave_last_out_can_order_tied_timestamps_at_random_by_seed():
    # seed 2 draws the row keys [5, 6, 2, 3, 4, 0, 1] (numpy's default_rng(2).permutation(7)): d (1) before b (2),
    # y (4) before x (6); seed 1 draws [5, 0, 1, 4, 2, 6, 3]: b (1) before d (3), x (0) before y (2), the file order
    shuffled = make_split(two_user_dataset(), "leave_last_out", seed=2, shuffle_ties=True)
    assert shuffled.log["item_id"].tolist() == ["a", "c", "d", "b", "y", "x", "z"]
    assert shuffled.test["item_id"].tolist() == ["b", "z"] and shuffled.valid["item_id"].tolist() == ["d", "x"]
    assert shuffled.log["rating"].tolist() == [1, 4, 7, 3, 5, 2, 6]
    pd.testing.assert_frame_equal(make_split(two_user_dataset(), "leave_last_out", seed=2, shuffle_ties=True).log,
                                  shuffled.log)
    kept = make_split(two_user_dataset(), "leave_last_out", seed=1, shuffle_ties=True)
    pd.testing.assert_frame_equal(kept.log, leave_last_out(two_user_dataset()).log)
    assert make_split(two_user_dataset(), "leave_last_out", seed=2).log["item_id"].tolist() == [
        "a", "c", "b", "d", "x", "y", "z"], "without shuffle_ties the seed changes nothing"


def test_leave_last_out_keeps_short_histories_in_train():
    frame = pd.DataFrame({"user_id": ["u1", "u1", "u2", "u2", "u2"], "item_id": ["a", "b", "a", "b", "c"],
                          "timestamp": [2, 1, 1, 2, 3]})
    split = leave_last_out(Dataset("d", frame, SCHEMA))
    assert split.log["split"].tolist() == ["train", "train", "train", "valid", "test"]
    assert split.log["item_id"].tolist() == ["b", "a", "a", "b", "c"]
    assert leave_last_out(Dataset("d", frame, SCHEMA), min_interactions=2).log["split"].tolist() == [
        "valid", "test", "train", "valid", "test"]


def test_without_timestamps_file_order_is_time_order():
    frame = pd.DataFrame({"user_id": ["u1", "u2", "u1", "u1"], "item_id": ["a", "b", "c", "d"]})
    log = leave_last_out(Dataset("d", frame, SCHEMA)).log
    assert log["item_id"].tolist() == ["a", "c", "d", "b"]
    assert log["split"].tolist() == ["train", "valid", "test", "train"]


def test_random_split_proportions_and_seed_determinism():
    dataset = make_synthetic(num_users=500, num_items=40, num_clusters=2, interactions_per_user=20)
    split = random_split(dataset, valid_fraction=0.2, test_fraction=0.1, seed=3)
    fractions = split.log["split"].value_counts(normalize=True)
    assert abs(fractions["valid"] - 0.2) < 0.02 and abs(fractions["test"] - 0.1) < 0.02
    assert split.method == "random" and len(split.log) == 10_000
    again = random_split(dataset, valid_fraction=0.2, test_fraction=0.1, seed=3)
    pd.testing.assert_frame_equal(split.log, again.log)
    other = random_split(dataset, valid_fraction=0.2, test_fraction=0.1, seed=4)
    assert (other.log["split"] != split.log["split"]).mean() > 0.2
    assert (make_split(dataset, "random", seed=3).log["split"] == random_split(dataset, seed=3).log["split"]).all()
    # Rows keep their own values: the same (user, item, timestamp) triples as the source.
    source = dataset.interactions.sort_values(["user_id", "timestamp"]).reset_index(drop=True)
    result = split.log[source.columns].sort_values(["user_id", "timestamp"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(result, source)


@pytest.mark.parametrize("valid, test", [(-0.1, 0.1), (0.5, 0.5), (0.1, -0.2)])
def test_random_split_rejects_bad_fractions(valid, test):
    with pytest.raises(ValueError, match="valid_fraction and test_fraction"):
        random_split(two_user_dataset(), valid_fraction=valid, test_fraction=test)


def test_predefined_split_follows_each_row():
    labels = pd.Series(["train", "train", "test", "valid", "valid", "test", "train"])
    split = predefined_split(two_user_dataset(split_labels=labels))
    assert split.method == "predefined"
    # log order is per-user time order: a, c, b, d | x, y, z
    assert split.log["item_id"].tolist() == ["a", "c", "b", "d", "x", "y", "z"]
    assert split.log["split"].tolist() == ["train", "valid", "test", "train", "train", "valid", "test"]
    assert make_split(two_user_dataset(split_labels=labels), "predefined").log.equals(split.log)
    with pytest.raises(ValueError, match="no predefined split"):
        predefined_split(two_user_dataset())


def test_make_split_rejects_unknown_names():
    assert make_split(two_user_dataset()).method == "leave_last_out"
    with pytest.raises(ValueError, match="unknown split 'temporal'"):
        make_split(two_user_dataset(), "temporal")
    with pytest.raises(ValueError, match="split name must be one of"):
        leave_last_out(two_user_dataset()).rows("holdout")


# === History rules, by hand ===


@pytest.fixture(scope="module")
def hand_split():
    dataset = two_user_dataset()
    return leave_last_out(dataset), FeatureSpace.build(dataset)


def test_vocabulary_of_the_hand_example(hand_split):
    _, space = hand_split
    assert space.item_vocab.lookup(["a", "x", "b", "c", "y", "z", "d"]).tolist() == [1, 2, 3, 4, 5, 6, 7]
    assert space.user_vocab.lookup(["u1", "u2"]).tolist() == [1, 2]


def test_histories_by_hand(hand_split):
    split, space = hand_split
    examples = build_examples(split, space, max_history=3)
    train, valid, test = examples["train"], examples["valid"], examples["test"]
    # train rows: u1 a (nothing before), u1 c (sees a), u2 x (nothing before)
    np.testing.assert_array_equal(train.user_id, [1, 1, 2])
    np.testing.assert_array_equal(train.item_id, [1, 4, 2])
    np.testing.assert_array_equal(train.history, [[0, 0, 0], [1, 0, 0], [0, 0, 0]])
    # valid rows see the earlier train rows: u1 b ← a, c; u2 y ← x
    np.testing.assert_array_equal(valid.item_id, [3, 5])
    np.testing.assert_array_equal(valid.history, [[1, 4, 0], [2, 0, 0]])
    # test rows see train and valid: u1 d ← a, c, b (b is the valid item); u2 z ← x, y
    np.testing.assert_array_equal(test.item_id, [7, 6])
    np.testing.assert_array_equal(test.history, [[1, 4, 3], [2, 5, 0]])
    assert test.history.dtype == np.int32
    # extras travel with their rows
    np.testing.assert_array_equal(test.extras["rating"], [7, 6])
    np.testing.assert_array_equal(test.extras["timestamp"], [30, 7])
    assert test.extras["rating"].dtype == np.float32 and test.extras["timestamp"].dtype == np.int64
    assert set(test.features()) == {"user_id", "history", "item_id", "rating", "timestamp"}


def test_max_history_keeps_the_most_recent(hand_split):
    split, space = hand_split
    examples = build_examples(split, space, max_history=2)
    np.testing.assert_array_equal(examples["test"].history, [[4, 3], [2, 5]])  # u1: a dropped, c, b kept
    np.testing.assert_array_equal(examples["valid"].history, [[1, 4], [2, 0]])
    one = build_examples(split, space, max_history=1)
    np.testing.assert_array_equal(one["test"].history, [[3], [5]])
    np.testing.assert_array_equal(one["train"].history, [[0], [1], [0]])
    with pytest.raises(ValueError, match="max_history must be at least 1"):
        build_examples(split, space, max_history=0)


def test_predefined_split_histories_skip_invisible_splits():
    # u1's time order: a(train) c(valid) b(test) d(train); u2: x(train) y(valid) z(test)
    labels = pd.Series(["train", "train", "test", "valid", "valid", "test", "train"])
    dataset = two_user_dataset(split_labels=labels)
    examples = build_examples(predefined_split(dataset), FeatureSpace.build(dataset), max_history=4)
    # train row d (after valid c and test b) sees only train rows: a
    np.testing.assert_array_equal(examples["train"].item_id, [1, 7, 2])
    np.testing.assert_array_equal(examples["train"].history, [[0, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
    # test row b sees train a and valid c, but not the later train row d
    np.testing.assert_array_equal(examples["test"].item_id, [3, 6])
    np.testing.assert_array_equal(examples["test"].history, [[1, 4, 0, 0], [2, 5, 0, 0]])
    np.testing.assert_array_equal(examples["valid"].history, [[1, 0, 0, 0], [2, 0, 0, 0]])


def unique_item_dataset(seed: int = 0) -> Dataset:
    """Every interaction has its own item, timestamps have ties, rows are shuffled."""
    rng = np.random.default_rng(seed)
    rows = [(f"u{u}", f"i{u}_{k}", int(rng.integers(0, 6))) for u in range(25)
            for k in range(int(rng.integers(1, 12)))]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).sample(frac=1.0, random_state=seed)
    return Dataset("unique", frame.reset_index(drop=True), SCHEMA)


@pytest.mark.parametrize("method", ["leave_last_out", "random"])
def test_no_history_contains_its_own_or_a_later_interaction(method):
    dataset = unique_item_dataset()
    split = make_split(dataset, method, seed=1)
    space = FeatureSpace.build(dataset)
    max_history = 4
    examples = build_examples(split, space, max_history=max_history)
    log = split.log.assign(item_index=space.item_vocab.lookup(split.log["item_id"]))
    info = {row.item_index: row for row in log.itertuples()}
    visible = {"train": {"train"}, "valid": {"train"}, "test": {"train", "valid"}}
    checked = 0
    for name, part in examples.items():
        for user, target, history in zip(part.user_id, part.item_id, part.history):
            me = info[target]
            past = [i for i in history if i != 0]
            assert list(history[len(past):]) == [0] * (max_history - len(past)), "padding only at the end"
            for item in past:
                other = info[item]
                assert other.user_id == me.user_id
                assert other.position < me.position, "history item at or after the target"
                assert other.timestamp <= me.timestamp
                assert other.split in visible[name]
            # the most recent visible items, oldest first
            expected = log[(log.user_id == me.user_id) & (log.position < me.position)
                           & log.split.isin(visible[name])]["item_index"].tolist()[-max_history:]
            assert past == expected
            checked += 1
    assert checked == len(dataset.interactions)


def test_histories_of_synthetic_data_never_leak(tiny_split, tiny_space, tiny_examples):
    log = tiny_split.log
    items = tiny_space.item_vocab.lookup(log["item_id"])
    users = tiny_space.user_vocab.lookup(log["user_id"])
    labels = log["split"].to_numpy()
    visible = {"train": ("train",), "valid": ("train",), "test": ("train", "valid")}
    for name, part in tiny_examples.items():
        rows = np.flatnonzero(labels == name)
        assert len(rows) == len(part)
        for row, history in zip(rows, part.history):
            same_user = (users == users[row]) & (np.arange(len(log)) < row) & np.isin(labels, visible[name])
            expected = items[same_user][-history.shape[0]:]
            np.testing.assert_array_equal(history[: len(expected)], expected)
            assert not history[len(expected):].any()


# === seen_items, item_frequencies ===


def test_seen_items_by_hand(hand_split):
    split, space = hand_split
    seen_test = seen_items(split, space, target="test")
    assert {u: v.tolist() for u, v in seen_test.items()} == {1: [1, 3, 4], 2: [2, 5]}
    seen_valid = seen_items(split, space, target="valid")
    assert {u: v.tolist() for u, v in seen_valid.items()} == {1: [1, 4], 2: [2]}


def test_item_frequencies_by_hand(hand_split):
    split, space = hand_split
    train = build_examples(split, space, max_history=2)["train"]  # targets a, c, x = 1, 4, 2
    np.testing.assert_allclose(item_frequencies(train, space.num_items), [0, 1 / 3, 1 / 3, 0, 1 / 3, 0, 0, 0])
    with_unknown = Examples(np.array([1, 1, 1, 1]), np.array([2, 2, 0, 5]), np.zeros((4, 1), np.int32), {})
    frequencies = item_frequencies(with_unknown, 6)
    assert frequencies.dtype == np.float32 and frequencies.shape == (7,)
    np.testing.assert_allclose(frequencies, [0, 0, 2 / 3, 0, 0, 1 / 3, 0], rtol=1e-6)


# === make_tf_dataset ===


def numbered_examples(count: int = 50) -> Examples:
    """Example ``i`` has user index ``i`` so batches can be traced back to rows."""
    return Examples(user_id=np.arange(count, dtype=np.int32), item_id=(np.arange(count) % 7 + 1).astype(np.int32),
                    history=np.tile(np.arange(3, dtype=np.int32), (count, 1)),
                    extras={"rating": np.linspace(1, 5, count).astype(np.float32)})


def epoch_order(dataset) -> list[int]:
    return [int(u) for batch in dataset for u in batch["user_id"].numpy()]


def test_tf_dataset_batches_keys_and_shapes():
    examples = numbered_examples(10)
    probability = np.linspace(0, 0.7, 8).astype(np.float32)
    batches = list(make_tf_dataset(examples, batch_size=4, item_probability=probability))
    assert [len(b["user_id"]) for b in batches] == [4, 4, 2]
    for batch in batches:
        assert set(batch) == {"user_id", "item_id", "history", "rating", "item_probability"}
        assert batch["history"].shape[1:] == (3,)
        rows = batch["user_id"].numpy()
        np.testing.assert_array_equal(batch["item_id"].numpy(), examples.item_id[rows])
        np.testing.assert_array_equal(batch["rating"].numpy(), examples.extras["rating"][rows])
        np.testing.assert_array_equal(batch["item_probability"].numpy(), probability[examples.item_id[rows]])
    dropped = list(make_tf_dataset(examples, batch_size=4, drop_remainder=True))
    assert [len(b["user_id"]) for b in dropped] == [4, 4]
    assert "item_probability" not in next(iter(make_tf_dataset(examples, batch_size=4)))


def test_tf_dataset_covers_every_example_and_reshuffles_each_epoch():
    dataset = make_tf_dataset(numbered_examples(50), batch_size=8, seed=7)
    first, second = epoch_order(dataset), epoch_order(dataset)
    assert sorted(first) == list(range(50)) and sorted(second) == list(range(50))
    assert first != second, "each epoch must be shuffled anew"
    assert first != list(range(50))
    assert epoch_order(make_tf_dataset(numbered_examples(50), batch_size=8, seed=7)) == first, "seeded"
    assert epoch_order(make_tf_dataset(numbered_examples(50), batch_size=8, shuffle=False)) == list(range(50))


def test_tf_dataset_with_epochs_is_a_resumable_stream_of_shuffled_epochs():
    examples = numbered_examples(20)
    stream = [[int(u) for u in batch["user_id"].numpy()] for batch in
              make_tf_dataset(examples, batch_size=6, seed=3, epochs=3)]
    assert [len(b) for b in stream] == [6, 6, 6, 2] * 3
    epochs = [sum(stream[4 * e: 4 * e + 4], []) for e in range(3)]
    assert all(sorted(order) == list(range(20)) for order in epochs)
    assert epochs[0] != epochs[1] and epochs[1] != epochs[2]
    resumed = [[int(u) for u in batch["user_id"].numpy()] for batch in
               make_tf_dataset(examples, batch_size=6, seed=3, epochs=3, first_epoch=1)]
    assert resumed == stream[4:], "a run resumed at epoch 1 sees the same batches"
    assert steps_per_epoch(20, 6) == 4 and steps_per_epoch(20, 6, drop_remainder=True) == 3
