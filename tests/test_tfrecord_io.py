"""Sharded TFRecord examples: exact round trip, deterministic resumable epochs, training from shards, atomic writes."""

import json

import numpy as np
import pytest
import tensorflow as tf

from mmrec_tf.cli import main
from mmrec_tf.data.pipeline import build_examples, steps_per_epoch
from mmrec_tf.data.preprocessor import Preprocessor
from mmrec_tf.data.tfrecord_io import (ShardedExamples, TFRecordSpecError, make_tfrecord_dataset,
                                       read_tfrecord_spec, write_tfrecord_examples)
from mmrec_tf.registry import create_model
from mmrec_tf.training import TrainingConfig, train_model
from conftest import TINY_MAX_HISTORY


@pytest.fixture(scope="module")
def shards(tiny_split, tiny_space, tmp_path_factory):
    return write_tfrecord_examples(tiny_split, Preprocessor(tiny_space, TINY_MAX_HISTORY),
                                   tmp_path_factory.mktemp("tfr") / "examples", num_shards=3, seed=4, rows_per_chunk=97)


def _rows(batches) -> list[tuple]:
    rows = []
    for batch in batches:
        batch = {name: np.asarray(value) for name, value in batch.items()}
        for i in range(len(batch["item_id"])):
            rows.append((int(batch["user_id"][i]), int(batch["item_id"][i]), tuple(batch["history"][i].tolist()),
                         float(batch["rating"][i]), int(batch["timestamp"][i])))
    return sorted(rows)


def _example_rows(examples) -> list[tuple]:
    return _rows([examples.features()])


@pytest.mark.parametrize("split", ["train", "valid", "test"])
def test_shards_hold_exactly_the_in_memory_examples(shards, tiny_examples, split):
    read = ShardedExamples(shards, split)
    assert len(read) == len(tiny_examples[split])
    batches = list(read.make_dataset(16, shuffle=False))
    assert [b["item_id"].shape[0] for b in batches][:-1] == [16] * (len(batches) - 1)
    assert {name: value.dtype.name for name, value in batches[0].items()} == {
        "user_id": "int32", "item_id": "int32", "history": "int32", "rating": "float32", "timestamp": "int64"}
    assert _rows(batches) == _example_rows(tiny_examples[split])


def test_chunked_writing_keeps_every_users_history(shards, tiny_examples):
    """Built 97 interactions' worth of users at a time, histories still match building all at once."""
    view = ShardedExamples(shards, "train").prepare_view()
    assert _example_rows(view) == _example_rows(tiny_examples["train"])
    assert isinstance(view.history, np.memmap)


def test_every_shard_mixes_users(shards):
    users_per_shard = []
    for path in ShardedExamples(shards, "train").shard_paths:
        records = [tf.train.Example.FromString(record.numpy()) for record in tf.data.TFRecordDataset(path)]
        users_per_shard.append({r.features.feature["user_id"].int64_list.value[0] for r in records})
    assert all(len(users) > 40 for users in users_per_shard), [len(u) for u in users_per_shard]


def test_epochs_are_seeded_and_a_resumed_stream_repeats_them(shards):
    train = ShardedExamples(shards, "train")
    steps = steps_per_epoch(len(train), 32)
    full = [b["item_id"].numpy().tolist() for b in train.make_dataset(32, seed=7, epochs=3)]
    resumed = [b["item_id"].numpy().tolist() for b in train.make_dataset(32, seed=7, epochs=3, first_epoch=1)]
    assert len(full) == 3 * steps
    assert resumed == full[steps:]
    epoch_orders = [sum(full[e * steps:(e + 1) * steps], []) for e in range(3)]
    assert epoch_orders[0] != epoch_orders[1] != epoch_orders[2]
    assert sorted(epoch_orders[0]) == sorted(epoch_orders[1]), "each epoch is one pass over all examples"
    other_seed = [b["item_id"].numpy().tolist() for b in train.make_dataset(32, seed=8, epochs=1)]
    assert other_seed != full[:steps]


def test_item_probability_is_gathered_per_example(shards):
    probability = np.linspace(0.0, 1.0, 41, dtype=np.float32)
    batch = next(iter(make_tfrecord_dataset(shards, 8, shuffle=False, item_probability=probability)))
    np.testing.assert_allclose(batch["item_probability"], probability[batch["item_id"].numpy()])


def test_train_from_shards_matches_the_in_memory_loss_scale(shards, tiny_space, tiny_examples):
    train = ShardedExamples(shards, "train")
    model = create_model("two_tower", space=train.feature_space(), embedding_dim=8, logq_correction=True)
    history = train_model(model, train, TrainingConfig(epochs=3, batch_size=64, learning_rate=0.05),
                          valid=ShardedExamples(shards, "valid"), verbose=0)
    losses = history.history["loss"]
    assert len(losses) == 3 and np.isfinite(losses).all()
    assert losses[-1] < losses[0]
    np.testing.assert_allclose(model.item_probability.sum(), 1.0, rtol=1e-6)
    reference = create_model("two_tower", space=tiny_space, embedding_dim=8, logq_correction=True)
    reference.prepare(tiny_examples["train"])
    np.testing.assert_allclose(model.item_probability, reference.item_probability)


@pytest.mark.parametrize("name, expected", [
    ("sasrec", "sasrec trains on next-item sequences laid out from each user's consecutive examples, and "
               "TFRecord shards deal a user's examples to different shards; train it on in-memory examples "
               "(Preprocessor.examples)"),
    ("din", "din is a ranking model and trains on labelled examples; TFRecord shards (mmrec convert-data) hold "
            "retrieval examples, without labels"),
])
@pytest.mark.parametrize("where", ["train", "valid"])
def test_models_that_cannot_read_shards_are_refused_before_anything_is_built(shards, name, expected, where):
    train = ShardedExamples(shards, "train")
    model = create_model(name, space=train.feature_space(), embedding_dim=8, max_history=TINY_MAX_HISTORY)
    given = {"train": train, "valid": None}
    if where == "valid":  # in-memory training examples, shards only for validation
        given = {"train": train.prepare_view(), "valid": ShardedExamples(shards, "valid")}
    with pytest.raises(ValueError) as refused:
        train_model(model, given["train"], TrainingConfig(epochs=1), valid=given["valid"], verbose=0)
    assert str(refused.value) == expected
    assert not model.built


def test_existing_folder_is_refused_and_a_failed_write_leaves_nothing(tiny_split, tiny_space, tmp_path, monkeypatch):
    target = tmp_path / "examples"
    target.mkdir()
    with pytest.raises(FileExistsError, match="already exists"):
        write_tfrecord_examples(tiny_split, Preprocessor(tiny_space), target)
    target.rmdir()

    def broken_save(self, folder):
        raise OSError("disk full")

    monkeypatch.setattr(type(tiny_space), "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        write_tfrecord_examples(tiny_split, Preprocessor(tiny_space), target, num_shards=2)
    assert list(tmp_path.iterdir()) == []


def test_bad_spec_names_the_file_and_field(shards, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    spec = json.loads((shards / "spec.json").read_text())
    (copy / "spec.json").write_text(json.dumps({**spec, "format": "something/9"}))
    with pytest.raises(TFRecordSpecError, match=r"copy/spec.json: field 'format' must be"):
        read_tfrecord_spec(copy)
    (copy / "spec.json").write_text(json.dumps(spec))
    with pytest.raises(TFRecordSpecError, match="lists files that do not exist"):
        read_tfrecord_spec(copy)
    with pytest.raises(TFRecordSpecError, match="no split 'tests'"):
        ShardedExamples(shards, "tests")


def test_cli_convert_data_writes_readable_shards(tmp_path, capsys):
    out = tmp_path / "shards"
    assert main(["convert-data", "synthetic", "--out", str(out), "--shards", "2", "--max-history", "4"]) == 0
    assert "wrote" in capsys.readouterr().out
    spec = read_tfrecord_spec(out)
    assert spec["features"]["history"]["shape"] == [4]
    assert spec["source"]["dataset"] == "synthetic"
    assert len(list(out.glob("train-*.tfrecord"))) == 2
    train = ShardedExamples(out, "train")
    space = train.feature_space()
    assert sum(int(b["item_id"].shape[0]) for b in train.make_dataset(100, shuffle=False)) == len(train)
    assert int(np.max(train.prepare_view().item_id)) <= space.num_items
    assert main(["convert-data", "synthetic", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_examples_from_a_direct_build_equal_conversion_with_one_chunk(tiny_split, tiny_space, tmp_path):
    out = write_tfrecord_examples(tiny_split, Preprocessor(tiny_space, 3), tmp_path / "one", num_shards=1)
    direct = build_examples(tiny_split, tiny_space, max_history=3)
    assert _example_rows(ShardedExamples(out, "test").prepare_view()) == _example_rows(direct["test"])
