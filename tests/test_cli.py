"""The `mmrec` command line, end to end on a user's own CSV folder."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from mmrec_tf.cli import main
from mmrec_tf.data.sources import make_synthetic


@pytest.fixture(scope="module")
def user_folder(tmp_path_factory):
    """A folder in the documented layout: interactions.csv + items.csv, built from planted data."""
    folder = tmp_path_factory.mktemp("shop")
    synthetic = make_synthetic(num_users=40, num_items=30, num_clusters=3, interactions_per_user=12, seed=3)
    synthetic.interactions[["user_id", "item_id", "timestamp"]].to_csv(folder / "interactions.csv", index=False)
    items = synthetic.items.assign(genres=["|".join(g) for g in synthetic.items["genres"]])
    items.to_csv(folder / "items.csv")
    return folder


@pytest.fixture(scope="module")
def trained_run(user_folder, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "shop_two_tower"
    code = main(["train", "lstm_two_tower", "--data", str(user_folder), "--epochs", "10", "--learning-rate", "0.02",
                 "--run-dir", str(run_dir),
                 "--set", "embedding_dim=8", "--set", "lstm_units=8", "--set", "max_history=10"])
    assert code == 0
    return run_dir


@pytest.fixture(scope="module")
def popularity_run(user_folder, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "shop_popularity"
    assert main(["train", "popularity", "--data", str(user_folder), "--run-dir", str(run_dir)]) == 0
    return json.loads((run_dir / "run.json").read_text())["metrics"]


def test_list_shows_models_and_zoo(capsys):
    assert main(["list", "--task", "retrieval"]) == 0
    listed = capsys.readouterr().out
    assert "lstm_two_tower" in listed and "popularity" in listed
    assert main(["list", "--zoo", "lstm*"]) == 0
    assert "lstm_two_tower.movielens_100k" in capsys.readouterr().out


def test_train_writes_a_run_folder(trained_run, popularity_run):
    record = json.loads((trained_run / "run.json").read_text())
    assert record["model"] == "lstm_two_tower" and record["data"]["dataset"] == "folder"
    assert (trained_run / "model.keras").is_file() and (trained_run / "feature_space" / "item_ids.json").is_file()
    # users walk their own cluster (10 of the 30 items): a trained model ranks that cluster first, popularity cannot
    assert record["metrics"]["test"]["hr@10"] >= popularity_run["test"]["hr@10"] + 0.25


def test_evaluate_reproduces_the_training_time_test_metrics(trained_run, capsys):
    assert main(["evaluate", str(trained_run)]) == 0
    measured = json.loads((trained_run / "metrics_test.json").read_text())
    recorded = json.loads((trained_run / "run.json").read_text())["metrics"]["test"]
    assert measured["hr@10"] == pytest.approx(recorded["hr@10"], abs=1e-6)
    assert "ndcg@10" in capsys.readouterr().out


def test_folder_model_exports_and_serves_the_contract(trained_run, user_folder, tmp_path, capsys):
    saved = tmp_path / "saved_models"
    assert main(["export", str(trained_run), "--saved-models", str(saved), "--k", "5"]) == 0
    assert (saved / "lstm_two_tower" / "1" / "saved_model.pb").is_file()
    assert (saved / "models.config").is_file() and (saved / "batching_parameters.txt").is_file()
    assert "docker run --gpus all" in capsys.readouterr().out
    assert json.loads((saved / "lstm_two_tower" / "1" / "assets.extra" / "mmrec_inputs.json").read_text()) == {
        "max_history": 10, "history_rule": "every earlier item of the user, oldest first; the model keeps the 10 "
                                           "most recent known ones"}
    code = textwrap.dedent(f"""
        import json, tensorflow as tf
        served = tf.saved_model.load({str(saved / "lstm_two_tower" / "1")!r})
        out = served.signatures["serving_default"](user_id=tf.constant(["u1", "never-seen"]),
                                                   history=tf.constant([["i0", "i3", ""], ["", "", ""]]))
        print(json.dumps({{k: v.numpy().tolist() for k, v in out.items()}}, default=lambda b: b.decode()))
    """)
    reply = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    outputs = json.loads(reply.stdout.strip().splitlines()[-1])
    assert np.array(outputs["scores"]).shape == (2, 5)
    assert len(outputs["item_ids"][0]) == 5 and not {"i0", "i3"} & set(outputs["item_ids"][0])
    assert main(["query", str(saved / "lstm_two_tower"), "--run", str(trained_run), "--user", "u1", "--top", "3"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("score=") == 3 and "item" in printed


def test_bad_folder_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "interactions.csv").write_text("user_id,item_id,rating\nu1,i1,5\nu1,i2,five\n")
    assert main(["train", "two_tower", "--data", str(tmp_path), "--epochs", "1"]) == 2
    error = capsys.readouterr().err
    assert "interactions.csv" in error and "line 3" in error and "rating" in error


def test_interrupted_run_needs_resume(tmp_path, capsys):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints" / "epoch-000001").mkdir(parents=True)
    assert main(["train", "popularity", "--data", "synthetic", "--run-dir", str(run_dir)]) == 2
    assert "--resume" in capsys.readouterr().err
