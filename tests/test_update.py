"""`mmrec update`: a finished run continues on new interactions, users and items; its parent is never touched."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from mmrec_tf.cli import main as mmrec
from mmrec_tf.data.preprocessor import Preprocessor
from mmrec_tf.data.sources import load_dataset
from mmrec_tf.experiment import load_run, prepare_data, run, save_run
from mmrec_tf.export.saved_model import export_model
from mmrec_tf.registry import accepted_arguments, list_models, registered_model
from mmrec_tf.training import TrainingConfig
from mmrec_tf.update import continue_training, update

GENRES = ["Action", "Comedy", "Drama"]
MAX_HISTORY = 4
TINY = {"embedding_dim": 4, "lstm_units": 4, "hidden_units": [4], "max_history": MAX_HISTORY}


def _write_folder(folder: Path, users: range, items: range, rows_per_user: int, start_time: int) -> Path:
    """A folder dataset: user u rates items of genre u % 3, timestamps after ``start_time``."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(start_time)
    interactions = []
    for user in users:
        liked = [item for item in items if item % 3 == user % 3]
        for step, item in enumerate(rng.choice(liked, size=rows_per_user, replace=False)):
            interactions.append((f"u{user}", f"m{item}", float(3 + (step + user) % 3), start_time + 10 * user + step))
    pd.DataFrame(interactions, columns=["user_id", "item_id", "rating", "timestamp"]).to_csv(
        folder / "interactions.csv", index=False)
    pd.DataFrame({"item_id": [f"m{i}" for i in items], "genres": [GENRES[i % 3] + "|Film" for i in items],
                  "title": [f"{GENRES[i % 3]} story number {i}" for i in items]}).to_csv(folder / "items.csv",
                                                                                       index=False)
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    base = tmp_path_factory.mktemp("update")
    old = _write_folder(base / "old", range(0, 24), range(0, 24), rows_per_user=6, start_time=1000)
    new = _write_folder(base / "new", range(18, 30), range(0, 30), rows_per_user=5, start_time=5000)
    return old, new


def _train(model_name: str, data_folder: Path, run_dir: Path, epochs: int = 1) -> Path:
    task = registered_model(model_name).task
    settings = {"task": task, "max_history": MAX_HISTORY}
    if task == "ranking":
        settings.update(split="temporal_fraction", label="rating >= 4", valid_fraction=0.34, test_fraction=0.34)
    data = prepare_data(load_dataset("folder", data_folder), **settings)
    accepted = accepted_arguments(registered_model(model_name).cls)
    architecture = {key: value for key, value in TINY.items() if key in accepted}
    result = run(model_name, data, training={"epochs": epochs, "batch_size": 16, "jit_compile": False},
                 verbose=0, **architecture)
    save_run(result, run_dir, {"dataset": "folder", "path": str(data_folder)})
    return run_dir


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("model_name", list_models())
def test_zero_step_update_keeps_every_known_row_and_appends_new_ids(model_name, folders, tmp_path):
    old, new = folders
    parent = _train(model_name, old, tmp_path / "parent")
    before = _hashes(parent)
    result = update(parent, new, tmp_path / "child", epochs=0)
    assert _hashes(parent) == before
    old_model, old_space, _ = load_run(parent)
    new_model, new_space, record = load_run(result.run_dir)
    assert (result.growth.users_added, result.growth.items_added) == (6, 6)
    assert new_space.user_vocab.ids[:24].tolist() == old_space.user_vocab.ids.tolist()
    assert new_space.item_vocab.ids[:24].tolist() == old_space.item_vocab.ids.tolist()
    assert new_space.item_vocab.lookup(["m29", "m24"]).tolist() == [30, 25]
    data_state = {"log_counts", "item_trained", "item_frequency", "user_frequency"}  # counts over the data seen
    for old_weight, new_weight in zip(old_model.weights, new_model.weights):
        if old_weight.name in data_state:
            continue
        old_value, new_value = np.asarray(old_weight.numpy()), np.asarray(new_weight.numpy())
        np.testing.assert_array_equal(new_value[: len(old_value)] if old_value.ndim else new_value, old_value,
                                      err_msg=old_weight.path)
    assert record["update"]["parent_name"] == json.loads((parent / "run.json").read_text())["name"]
    assert record["update"]["vocabulary"] == {"users_before": 24, "users_added": 6, "items_before": 24,
                                              "items_added": 6, "users_hashed": 0}


def test_updated_run_trains_on_new_rows_only_and_serves_the_new_ids(folders, tmp_path):
    old, new = folders
    parent = _train("lstm_two_tower", old, tmp_path / "parent")
    saved = tmp_path / "saved_models"
    model, space, _ = load_run(parent)
    export_model(model, space, saved, "lstm", warmup=False)
    served_before = _hashes(saved)
    before = _hashes(parent)
    result = update(parent, new, tmp_path / "child", epochs=2)
    assert _hashes(parent) == before and _hashes(saved) == served_before
    new_rows = len(pd.read_csv(new / "interactions.csv"))
    assert result.new_interactions == new_rows  # disjoint timestamps: nothing of NEW was seen
    with pytest.raises(ValueError, match="holds no interaction the run has not trained on"):
        update(result.run_dir, new, tmp_path / "grandchild", epochs=0)
    grown, grown_space, _ = load_run(result.run_dir)
    version = export_model(grown, grown_space, saved, "lstm", warmup=False, k=30)
    assert version.name == "2" and (saved / "lstm" / "1").is_dir()
    served = tf.saved_model.load(str(version)).signatures["retrieve"](
        user_id=tf.constant(["u29"]), history=tf.constant([["m29", "m26", "", ""]]))
    ids = [i.decode() for i in served["item_ids"].numpy()[0]]
    user = grown_space.user_vocab.lookup(["u29"])
    history = grown_space.item_vocab.lookup(["m29", "m26", "", ""])[None, :]
    scores = grown.all_item_embeddings() @ np.asarray(grown.encode_users({"user_id": user, "history": history}))[0]
    kept = [i for i in ids if i]  # the history's items are excluded, their slots padded with ""
    assert set(kept) == {f"m{i}" for i in range(30)} - {"m29", "m26"}
    served_scores = served["scores"].numpy()[0][: len(kept)]
    np.testing.assert_allclose(served_scores, scores[grown_space.item_vocab.lookup(kept) - 1], rtol=1e-4, atol=1e-5)


def test_new_data_with_another_schema_is_refused_with_the_difference_named(folders, tmp_path, capsys):
    old, new = folders
    parent = _train("two_tower", old, tmp_path / "parent")
    changed = tmp_path / "changed"
    changed.mkdir()
    (changed / "interactions.csv").write_text((new / "interactions.csv").read_text())
    items = pd.read_csv(new / "items.csv")
    items.drop(columns=["genres"]).to_csv(changed / "items.csv", index=False)
    assert mmrec(["update", str(parent), "--data", str(changed)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error == [f"mmrec update: error: {changed.resolve()}: the new data lacks item feature 'genres' "
                     "(multi_categorical) that the run was trained with; an update continues the run on data of "
                     "the same format"]
    items.assign(studio="x").to_csv(changed / "items.csv", index=False)
    assert mmrec(["update", str(parent), "--data", str(changed)]) == 2
    assert "the new data has item feature 'studio' (categorical)" in capsys.readouterr().err
    interactions = pd.read_csv(new / "interactions.csv")
    items.to_csv(changed / "items.csv", index=False)
    interactions.assign(user_id=interactions["user_id"].str[1:]).to_csv(changed / "interactions.csv", index=False)
    assert mmrec(["update", str(parent), "--data", str(changed)]) == 2
    assert "user_id values are numbers in the new data (e.g. '18') but text in the run" in capsys.readouterr().err
    assert not (tmp_path / "parent.update1").exists()


KILLED_UPDATE = """
import os, signal, sys
import keras
import mmrec_tf.update as updating

class KillInSecondEpoch(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            os.kill(os.getpid(), signal.SIGKILL)

train = updating.train_model
updating.train_model = lambda *args, **kwargs: train(*args, callbacks=[KillInSecondEpoch()], **kwargs)
updating.update(sys.argv[1], sys.argv[2], sys.argv[3], epochs=3)
"""


def test_killed_update_leaves_the_parent_intact_and_resumes(folders, tmp_path, capsys):
    old, new = folders
    parent = _train("two_tower", old, tmp_path / "parent")
    before = _hashes(parent)
    out = tmp_path / "child"
    killed = subprocess.run([sys.executable, "-c", KILLED_UPDATE, str(parent), str(new), str(out)],
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert _hashes(parent) == before
    assert not (out / "run.json").exists() and (out / "checkpoints").is_dir()
    assert mmrec(["update", str(parent), "--data", str(new), "--run-dir", str(out), "--epochs", "3"]) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert mmrec(["update", str(parent), "--data", str(new), "--run-dir", str(out), "--epochs", "3",
                  "--resume"]) == 0
    assert _hashes(parent) == before
    record = json.loads((out / "run.json").read_text())
    assert record["update"]["parent"] == str(parent.resolve()) and not (out / "checkpoints").exists()
    assert mmrec(["update", str(parent), "--data", str(new), "--run-dir", str(out)]) == 2
    assert "holds a finished run already" in capsys.readouterr().err


@pytest.mark.parametrize("model_name", ["lstm_two_tower", "concat_fusion"])
def test_update_grows_in_place_into_spare_rows_exactly_as_a_rebuild(model_name, folders, tmp_path):
    old, new = folders
    parent = _train(model_name, old, tmp_path / "parent")
    full = load_dataset("folder", new)
    seen = load_dataset("folder", old).interactions
    fresh = full.interactions
    first = fresh[fresh["user_id"].isin([f"u{u}" for u in range(18, 24)]) & (fresh["item_id"].str[1:].astype(int) < 27)]
    second = fresh.drop(first.index)
    stages = [(seen, first, dataclasses.replace(full, interactions=pd.concat([seen, first]), items=full.items.iloc[:27])),
              (pd.concat([seen, first]), second, full)]
    results = {}
    for spare in (0.0, 1.0):  # rebuilt twice vs rebuilt with spare rows, then grown in place
        model, space, record = load_run(parent)
        preprocessor = Preprocessor(space, MAX_HISTORY)
        config = TrainingConfig(**{**record["training"], "epochs": 0})
        steps = []
        for before, rows, dataset in stages:
            updated = continue_training(model, preprocessor, before, rows, dataset, config, spare_users=spare,
                                        spare_items=spare)
            steps.append(updated)
            model, preprocessor = updated.model, updated.preprocessor
        results[spare] = steps
    rebuilt, grown = results[0.0], results[1.0]
    assert [s.in_place for s in rebuilt] == [False, False] and [s.in_place for s in grown] == [False, True]
    assert grown[1].model is grown[0].model and (grown[1].growth.users_added, grown[1].growth.items_added) == (6, 3)
    model, space = grown[1].model, grown[1].space
    assert (model.num_users, model.num_items) == (space.num_users, space.num_items) == (30, 30)
    assert space.item_vocab.ids.tolist() == rebuilt[1].space.item_vocab.ids.tolist()
    np.testing.assert_allclose(model.all_item_embeddings(), rebuilt[1].model.all_item_embeddings(), atol=1e-6)
    users = {"user_id": np.arange(31), "history": np.tile(np.array([[30, 27, 3, 0]]), (31, 1))}
    np.testing.assert_allclose(np.asarray(model.encode_users(users)),
                               np.asarray(rebuilt[1].model.encode_users(users)), atol=1e-6)
    new_items = space.item_vocab.lookup(["m27", "m28", "m29"])
    if model_name == "lstm_two_tower":  # a new item's id row is zero: its vector comes from its features alone
        assert not np.asarray(model.item_encoder.id_embedding.embeddings)[new_items].any()
    else:  # the fusion model drops the id token of items without interactions, and of the spare rows
        interacted = space.item_vocab.lookup(pd.unique(pd.concat([seen, fresh])["item_id"]))
        np.testing.assert_array_equal(np.flatnonzero(np.asarray(model.item_trained)), np.sort(interacted))
    genres = np.asarray(model.item_encoder.tables["genres"])  # written in place: rows like known items' of the genre
    np.testing.assert_array_equal(genres[new_items], genres[space.item_vocab.lookup(["m0", "m1", "m2"])])
    assert genres[new_items].sum() == 6  # the genre and "Film"


@pytest.mark.parametrize("optimizer", ["adam", "lazy_adam", "adagrad", "sgd"])
def test_update_continues_the_optimizer_state_of_every_optimizer(optimizer, folders):
    old, new = folders
    data = prepare_data(load_dataset("folder", old), max_history=MAX_HISTORY)
    training = {"epochs": 1, "batch_size": 16, "jit_compile": False, "optimizer": optimizer}
    result = run("two_tower", data, training=training, verbose=0, embedding_dim=8)
    trained_steps = int(result.model.optimizer.iterations)
    full = load_dataset("folder", new)
    rows = full.interactions[full.interactions["user_id"].isin([f"u{u}" for u in range(24, 30)])]
    updated = continue_training(result.model, data.preprocessor, data.dataset.interactions, rows, full,
                                TrainingConfig(**training))
    assert type(updated.model.optimizer) is type(result.model.optimizer)
    assert int(updated.model.optimizer.iterations) == trained_steps + -(-len(rows) // 16)  # counted on, not restarted
