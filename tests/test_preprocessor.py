"""The Preprocessor: one set of rules from interaction rows to model inputs, for training, evaluation and serving."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmrec_tf.data.dataset import Dataset
from mmrec_tf.data.feature_space import FeatureSpace
from mmrec_tf.data.label_spec import parse_label
from mmrec_tf.data.preprocessor import Preprocessor
from mmrec_tf.data.schema import Feature, Schema
from mmrec_tf.data.splits import Split
from mmrec_tf.experiment import prepare_data
from mmrec_tf.layers.history import most_recent_history

SCHEMA = Schema([Feature("user_id", "id", "user"), Feature("item_id", "id", "item"),
                 Feature("rating", "label", "interaction"), Feature("timestamp", "timestamp", "interaction")])


def _split(rows: list[tuple[str, str, float, str]]) -> Split:
    """A one-user-at-a-time log of (user, item, rating, split) rows, in time order."""
    log = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "split"])
    log["timestamp"] = np.arange(len(log))
    log["position"] = log.groupby("user_id", sort=False).cumcount()
    return Split(log=log, method="by_hand")


@pytest.fixture()
def space() -> FeatureSpace:
    """Items a..e (indices 1..5 in id order), users u and v."""
    interactions = pd.DataFrame({"user_id": list("uuuvv"), "item_id": list("abcde"), "rating": 4.0,
                                 "timestamp": range(5)})
    return FeatureSpace.build(Dataset("toy", interactions, SCHEMA))


def test_histories_by_hand_with_an_item_the_space_does_not_know(space):
    # u: a, b (rated 2), new (unknown to the space) in train, c in valid, d in test; histories hold known items only
    split = _split([("u", "a", 5, "train"), ("u", "b", 2, "train"), ("u", "new", 5, "train"),
                    ("u", "c", 5, "valid"), ("u", "d", 4, "test")])
    examples = Preprocessor(space, max_history=2).examples(split)
    assert examples["train"].history.tolist() == [[0, 0], [1, 0], [1, 2]]
    assert examples["train"].item_id.tolist() == [1, 2, 0]  # an unknown target stays visible as index 0
    assert examples["valid"].history.tolist() == [[1, 2]]  # the train rows a, b; the unknown one is skipped
    assert examples["test"].history.tolist() == [[2, 3]]  # the two most recent known of a, b, new, c
    liked = Preprocessor(space, max_history=3, label=parse_label("rating >= 4")).examples(split)
    assert liked["test"].history.tolist() == [[1, 3, 0]]  # b was rated 2: not a liked behaviour
    assert liked["test"].extras["label"].tolist() == [1.0]


def test_a_training_history_equals_what_serving_makes_of_the_same_raw_ids(space):
    split = _split([("u", "a", 5, "train"), ("u", "b", 5, "train"), ("u", "new", 5, "train"),
                    ("u", "c", 5, "train"), ("u", "e", 5, "train")])
    preprocessor = Preprocessor(space, max_history=2)
    trained = preprocessor.examples(split)["train"].history[-1]  # the last row sees a, b, new, c
    raw = np.array(["a", "b", "new", "c"], dtype=object)  # what a client would send
    served = most_recent_history(space.item_vocab.lookup(raw)[None, :], preprocessor.max_history)
    assert trained.tolist() == np.asarray(served)[0].tolist() == [2, 3]


def test_seen_items_leave_out_items_the_space_does_not_know(space):
    split = _split([("u", "a", 5, "train"), ("u", "new", 5, "train"), ("u", "b", 5, "test")])
    assert {user: items.tolist() for user, items in Preprocessor(space).seen(split).items()} == {1: [1]}


def test_queries_rank_every_target_of_a_user_from_one_history(space):
    split = _split([("u", "a", 5, "train"), ("u", "b", 5, "train"), ("u", "c", 5, "test"), ("u", "d", 5, "test"),
                    ("v", "e", 5, "train")])
    queries = Preprocessor(space, max_history=3).queries(split)
    assert queries.user_id.tolist() == [1] and queries.history.tolist() == [[1, 2, 0]]
    assert queries.targets[0].tolist() == [3, 4] and queries.seen[0].tolist() == [1, 2]


@pytest.mark.parametrize("label, history", [(None, None), ("rating >= 4", "positive"), ("rating >= 3.5", "rated"),
                                            ("label", "all"), ("sampled:3", "all")])
def test_record_round_trip(space, label, history):
    preprocessor = Preprocessor(space, 7, None if label is None else parse_label(label), history, seed=5)
    record = preprocessor.record()
    assert Preprocessor.from_record(record, space, seed=5) == preprocessor
    assert record == ({"max_history": 7} if label is None else
                      {"max_history": 7, "label": parse_label(label).text, "history": history})


def test_defaults_a_click_log_would_have(space):
    assert Preprocessor(space, label=parse_label("rating >= 4")).history == "positive"
    assert Preprocessor(space, label=parse_label("sampled")).history == "all"
    assert Preprocessor(space, label=parse_label("sampled:2")).examples_per_interaction == 3
    assert Preprocessor(space).examples_per_interaction == 1


@pytest.mark.parametrize("arguments, message", [
    ({"history": "positive"}, "history 'positive' describes labelled examples"),
    ({"label": parse_label("sampled"), "history": "positive"}, "every interaction is a positive"),
    ({"label": parse_label("rating >= 4"), "history": "liked"}, "data.history must be one of"),
    ({"max_history": 0}, "max_history must be a whole number >= 1, got 0"),
    ({"max_history": True}, "max_history must be a whole number >= 1, got True"),
])
def test_contradictory_rules_are_refused_in_one_line(space, arguments, message):
    with pytest.raises(ValueError, match=message) as caught:
        Preprocessor(space, **arguments)
    assert "\n" not in str(caught.value)


def test_a_run_record_must_agree_with_its_task(space):
    with pytest.raises(ValueError, match="a ranking run needs data.label, got None"):
        Preprocessor.from_record({"max_history": 5}, space, labelled=True)
    with pytest.raises(ValueError, match="a retrieval run has no data.label, got 'rating >= 4'"):
        Preprocessor.from_record({"max_history": 5, "label": "rating >= 4"}, space, labelled=False)


def test_labelled_examples_have_no_catalog_queries(space):
    split = _split([("u", "a", 5, "train"), ("u", "b", 5, "test")])
    with pytest.raises(ValueError, match=r"these examples are labelled \('rating >= 4'\)"):
        Preprocessor(space, label=parse_label("rating >= 4")).queries(split)


def test_an_explicit_label_column_with_another_value_names_the_row(space):
    split = _split([("u", "a", 1, "train"), ("v", "b", 2, "train")])
    split.log["label"] = [1.0, 2.0]
    with pytest.raises(ValueError, match=r"column 'label' must hold 0 or 1; user 'v', item 'b' has 2.0"):
        Preprocessor(space, label=parse_label("label")).examples(split)


def test_prepared_data_records_its_preprocessor_and_serves_its_history_rule():
    interactions = pd.DataFrame({"user_id": np.repeat(["u", "v", "w"], 6), "item_id": list("abcdef") * 3,
                                 "rating": [5, 1, 4, 4, 2, 5] * 3, "timestamp": np.arange(18)})
    data = prepare_data(Dataset("toy", interactions, SCHEMA), task="ranking", max_history=4, test_fraction=0.2)
    assert data.record() == {"split": "temporal_fraction", "test_fraction": 0.2, "max_history": 4,
                             "label": "rating >= 4", "history": "positive"}
    assert data.user_history("u") == ["a", "c", "d", "f"]  # the liked ones, what the served history holds
