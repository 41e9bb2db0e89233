"""The ``sampled`` label: every interaction a positive, random untouched items as negatives (DIN paper, sec. 6.1)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmrec_tf.data.dataset import Dataset
from mmrec_tf.data.feature_space import FeatureSpace
from mmrec_tf.data.label_spec import parse_label
from mmrec_tf.data.labels import build_sampled_examples
from mmrec_tf.data.schema import Feature, Schema
from mmrec_tf.data.splits import leave_last_out
from mmrec_tf.errors import ConfigError
from mmrec_tf.experiment import prepare_data


def _dataset() -> Dataset:
    # u1 touches a, b, c; u2 touches a, d; six items in all (e, f untouched by anyone)
    rows = [("u1", "a", 1), ("u1", "b", 2), ("u1", "c", 3), ("u2", "a", 1), ("u2", "d", 2)]
    interactions = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    items = pd.DataFrame(index=pd.Index(list("abcdef"), name="item_id"))
    schema = Schema([Feature("user_id", "id", "user"), Feature("item_id", "id", "item"),
                     Feature("timestamp", "timestamp", "interaction")])
    return Dataset(name="toy", interactions=interactions, items=items, schema=schema)


def test_label_forms():
    assert parse_label("sampled").negatives == 1 and parse_label(" sampled : 3 ").negatives == 3
    assert parse_label("sampled:2").text == "sampled:2" and parse_label("rating >= 4").negatives == 0
    with pytest.raises(ConfigError, match="at least 1"):
        parse_label("sampled:0")
    with pytest.raises(ConfigError, match="cannot read"):
        parse_label("sampled:x")


def test_each_interaction_is_followed_by_untouched_negatives_with_its_user_history_and_time():
    dataset = _dataset()
    space = FeatureSpace.build(dataset)
    examples = build_sampled_examples(leave_last_out(dataset), space, max_history=3, negatives=2, seed=7)
    index = space.item_vocab.lookup
    touched = {space.user_vocab.lookup(["u1"])[0]: set(index(list("abc"))),
               space.user_vocab.lookup(["u2"])[0]: set(index(list("ad")))}
    # leave-last-out keeps u2's two interactions in train: train a, a, d; valid b; test c
    for name, interactions in (("train", 3), ("valid", 1), ("test", 1)):
        split = examples[name]
        assert len(split) == 3 * interactions
        assert split.extras["label"].tolist() == [1.0, 0.0, 0.0] * interactions
        groups = np.arange(len(split)) // 3  # a positive and its two negatives
        for group in range(interactions):
            rows = np.flatnonzero(groups == group)
            assert len(set(split.user_id[rows])) == 1 and len(set(split.extras["timestamp"][rows])) == 1
            assert (split.history[rows] == split.history[rows[0]]).all()
            assert not touched[split.user_id[rows[0]]] & set(split.item_id[rows[1:]].tolist())
    # u1's test example (c) sees a, b; its negatives come from d, e, f only
    test = examples["test"]
    u1 = np.flatnonzero(test.user_id == space.user_vocab.lookup(["u1"])[0])
    assert test.history[u1[0]].tolist() == [*index(["a", "b"]), 0]
    assert set(test.item_id[u1[1:]].tolist()) <= set(index(list("def")))
    again = build_sampled_examples(leave_last_out(dataset), space, max_history=3, negatives=2, seed=7)
    assert (again["train"].item_id == examples["train"].item_id).all()


def test_prepare_data_records_the_sampled_protocol():
    data = prepare_data(_dataset(), "leave_last_out", max_history=3, task="ranking", label="sampled")
    assert data.record()["label"] == "sampled:1" and data.record()["history"] == "all"
    assert data.examples["train"].extras["label"].tolist() == [1.0, 0.0] * 3
    assert data.user_history("u1") == ["a", "b", "c"]
    with pytest.raises(ValueError, match="every earlier interaction"):
        prepare_data(_dataset(), "leave_last_out", max_history=3, task="ranking", label="sampled",
                     history="positive")
