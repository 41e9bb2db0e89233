"""Planted multi-interest data: a click depends only on whether the target is like one of the user's interests.

Each example's history holds two items from each of four interest groups (of 24; item ``i`` is in
group ``i % 24``), shuffled; the target is from one of those groups (label 1) or from another group
(label 0), half and half. Users are all unknown (index 0), so the history is the only signal, and
it takes comparing the target with each behaviour: a sum of the history's vectors blurs the four
interests together. Target attention (DIN) and self-attention over [history, target] (BST) must
beat the sum-pooling baseline (embedding_mlp) by a wide margin.
"""

import keras
import numpy as np
import pytest

from mmrec_tf.data.pipeline import Examples
from mmrec_tf.evaluation.ranking_evaluator import predict_examples
from mmrec_tf.evaluation.ranking_metrics import auc
from mmrec_tf.registry import create_model
from mmrec_tf.training import TrainingConfig, train_model

ITEMS, GROUPS, INTERESTS, PER_INTEREST = 96, 24, 4, 2
ARCHITECTURE = {"embedding_mlp": {}, "din": {"attention_units": [16]}, "bst": {"num_heads": 2}}


def planted_examples(seed: int, rows: int) -> Examples:
    rng = np.random.default_rng(seed)
    items = np.arange(1, ITEMS + 1)
    histories, targets, labels = [], [], []
    for _ in range(rows):
        interests = rng.choice(GROUPS, INTERESTS, replace=False)
        history = np.concatenate([rng.choice(items[items % GROUPS == group], PER_INTEREST, replace=False)
                                  for group in interests])
        rng.shuffle(history)
        liked = rng.random() < 0.5
        group = rng.choice(interests) if liked else rng.choice(np.setdiff1d(np.arange(GROUPS), interests))
        histories.append(history)
        targets.append(rng.choice(items[items % GROUPS == group]))
        labels.append(float(liked))
    return Examples(np.zeros(rows, np.int32), np.array(targets, np.int32), np.array(histories, np.int32),
                    {"label": np.array(labels, np.float32)})


@pytest.fixture(scope="module")
def test_auc():
    train, test = planted_examples(0, 4000), planted_examples(1, 2000)
    measured = {}
    for name, arguments in ARCHITECTURE.items():
        keras.utils.set_random_seed(0)
        model = create_model(name, num_users=1, num_items=ITEMS, embedding_dim=16, hidden_units=[32],
                             max_history=INTERESTS * PER_INTEREST, **arguments)
        train_model(model, train, TrainingConfig(epochs=20, batch_size=64, learning_rate=0.003, jit_compile=False),
                    verbose=0)
        measured[name] = auc(test.extras["label"], predict_examples(model, test))
    return measured


@pytest.mark.slow
@pytest.mark.parametrize("name", ["din", "bst"])
def test_attention_beats_sum_pooling_by_a_wide_margin(test_auc, name):
    assert test_auc[name] >= test_auc["embedding_mlp"] + 0.05, test_auc


@pytest.mark.slow
def test_sum_pooling_learns_something(test_auc):
    # the baseline is not broken: it beats random scores, so the margin above is attention's, not a failed baseline's
    test = planted_examples(1, 2000)
    random_auc = auc(test.extras["label"], np.random.default_rng(0).random(len(test)))
    assert test_auc["embedding_mlp"] > random_auc + 0.1, (test_auc, random_auc)
