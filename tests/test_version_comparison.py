"""`serve-check --compare`: how much a new export's top-K lists overlap the version it replaces."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmrec_tf.cli import main as mmrec
from mmrec_tf.export.saved_model import WARMUP_USERS, export_model
from mmrec_tf.export.tf_serving import read_warmup_requests
from mmrec_tf.export.version_comparison import compare_versions, top_k_overlap
from mmrec_tf.registry import create_model
from mmrec_tf.training import TrainingConfig, train_model

K = 5


def _trained(space, train, seed: int):
    keras.utils.set_random_seed(seed)
    model = create_model("lstm_two_tower", space=space, embedding_dim=8, lstm_units=8,
                         max_history=train.history.shape[1])
    train_model(model, train, TrainingConfig(epochs=1, batch_size=128, seed=seed), verbose=0)
    return model


@pytest.fixture(scope="module")
def versions(tmp_path_factory, tiny_space, tiny_examples):
    """saved_models/lstm: 1 and 2 export one model, 3 another model trained from another seed."""
    base = tmp_path_factory.mktemp("saved_models")
    first = _trained(tiny_space, tiny_examples["train"], seed=1)
    for _ in range(2):
        export_model(first, tiny_space, base, "lstm", k=K)
    export_model(_trained(tiny_space, tiny_examples["train"], seed=2), tiny_space, base, "lstm", k=K)
    return base / "lstm"


def test_overlap_counts_shared_items_and_never_padding():
    new = np.array([["a", "b", "c", "d"], ["a", "", "", ""], ["x", "y", "z", "w"]])
    old = np.array([["d", "c", "b", "a"], ["a", "", "", ""], ["a", "b", "c", "d"]])
    assert top_k_overlap(new, old).tolist() == [1.0, 0.25, 0.0]


def test_the_same_model_exported_twice_overlaps_fully(versions):
    report = compare_versions(versions / "2")  # alone: the version below it
    assert report["old"] == str(versions / "1") and report["signature"] == "retrieve"
    assert (report["k"], report["rows"]) == (K, WARMUP_USERS)
    assert report["mean_overlap"] == report["min_overlap"] == 1.0 and report["identical_rows"] == WARMUP_USERS


def test_another_model_overlaps_as_its_served_lists_do(versions):
    report = compare_versions(versions)  # the newest, 3, against 2
    assert report["old"] == str(versions / "2")
    ((_, inputs),) = [r for r in read_warmup_requests(versions / "3") if r[0] == "retrieve"]
    lists = []
    for version in ("3", "2"):
        served = tf.saved_model.load(str(versions / version)).signatures["retrieve"](
            user_id=tf.constant(inputs["user_id"].astype(str)), history=tf.constant(inputs["history"].astype(str)))
        lists.append([[i.decode() for i in row] for row in served["item_ids"].numpy()])
    shares = [len({i for i in new if i} & set(old)) / K for new, old in zip(*lists)]
    assert report["mean_overlap"] == pytest.approx(np.mean(shares)) and report["min_overlap"] == min(shares)
    assert report["mean_overlap"] < 1.0  # two seeds do not give identical lists on this data
    assert report["identical_rows"] == sum(new == old for new, old in zip(*lists))


def test_cli_fails_the_check_below_min_overlap(versions, capsys):
    code = mmrec(["serve-check", str(versions), "--compare", "--min-overlap", "1.0", "--batch-sizes", "1",
                  "--repeats", "1"])
    captured = capsys.readouterr()
    assert code == 1 and f"compare {versions / '3'} with {versions / '2'} (retrieve, {WARMUP_USERS} warm-up rows)" \
        in captured.out
    assert captured.err.strip().startswith("mmrec serve-check: mean top-5 overlap")
    assert mmrec(["serve-check", str(versions / "2"), "--compare", str(versions / "1"), "--min-overlap", "1.0",
                  "--batch-sizes", "1", "--repeats", "1"]) == 0


def test_compare_without_an_older_version_is_one_line(versions, capsys):
    assert mmrec(["serve-check", str(versions / "1"), "--compare"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"mmrec serve-check: error: {versions} has no version older than 1 to compare with"]
