"""Ranking zoo entries through `mmrec train / evaluate / export / query`, on a tiny rated CSV folder."""

import json

import numpy as np
import pytest
import yaml
from sklearn.metrics import log_loss as sklearn_log_loss
from sklearn.metrics import roc_auc_score

from mmrec_tf.cli import main
from mmrec_tf.data.dataset import Dataset
from mmrec_tf.data.sources import make_synthetic
from mmrec_tf.data.splits import make_split
from mmrec_tf.errors import ConfigError
from mmrec_tf.evaluation.ranking_evaluator import predict_examples
from mmrec_tf.experiment import data_settings, load_run, load_run_data, prepare_data
from mmrec_tf.zoo_entry import get_zoo_entry, parse_zoo_entry

TINY_DIN = ["--epochs", "2", "--batch-size", "128", "--set", "embedding_dim=4", "--set", "hidden_units=[8]",
            "--set", "attention_units=[4]", "--set", "max_history=5"]


@pytest.fixture(scope="module")
def rated_folder(tmp_path_factory):
    """interactions.csv with ratings (5 = followed the planted order, 3 = a jump) and timestamps, plus items.csv."""
    folder = tmp_path_factory.mktemp("rated")
    synthetic = make_synthetic(num_users=40, num_items=30, num_clusters=3, interactions_per_user=30, seed=3)
    synthetic.interactions.to_csv(folder / "interactions.csv", index=False)
    synthetic.items.assign(genres=["|".join(g) for g in synthetic.items["genres"]]).to_csv(folder / "items.csv")
    return folder


@pytest.fixture(scope="module")
def ranking_run(rated_folder, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "din"
    assert main(["train", "din.movielens_100k", "--data", str(rated_folder), "--run-dir", str(run_dir), *TINY_DIN]) == 0
    return run_dir


def test_train_records_ranking_metrics_and_the_data_recipe(ranking_run):
    record = json.loads((ranking_run / "run.json").read_text())
    assert record["task"] == "ranking" and record["model"] == "din"
    assert record["data"]["split"] == "temporal_fraction" and record["data"]["label"] == "rating >= 4"
    assert record["data"]["max_history"] == 5 and record["data"]["history"] == "positive"
    assert record["selection"]["best_epoch"] in (1, 2)
    model, space, _ = load_run(ranking_run)
    data = load_run_data(record, space)
    for name in ("valid", "test"):  # recomputed from the saved model's predictions with scikit-learn
        metrics, examples = record["metrics"][name], data.examples[name]
        labels, users = np.asarray(examples.extras["label"]), np.asarray(examples.user_id)
        scores = predict_examples(model, examples).astype(np.float64)
        assert metrics["auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-6)
        mixed = [user for user in np.unique(users) if len(set(labels[users == user])) == 2]
        per_user = [roc_auc_score(labels[users == user], scores[users == user]) for user in mixed]
        impressions = [int((users == user).sum()) for user in mixed]
        assert metrics["gauc"] == pytest.approx(np.average(per_user, weights=impressions), abs=1e-6)
        assert metrics["gauc_users"] == len(mixed) > 0
        assert metrics["log_loss"] == pytest.approx(sklearn_log_loss(labels, scores), abs=1e-5)
        assert "hr@10" not in metrics
    assert not (ranking_run / "checkpoints").exists()


def test_evaluate_reproduces_the_recorded_ranking_metrics(ranking_run, capsys):
    assert main(["evaluate", str(ranking_run)]) == 0
    measured = json.loads((ranking_run / "metrics_test.json").read_text())
    recorded = json.loads((ranking_run / "run.json").read_text())["metrics"]["test"]
    for key in ("gauc", "auc", "log_loss"):
        assert measured[key] == pytest.approx(recorded[key], abs=1e-6)
    assert measured["gauc_users"] == recorded["gauc_users"]
    printed = capsys.readouterr().out
    assert "temporal_fraction, test" in printed and "gauc_users" in printed and "ndcg" not in printed


def test_ranking_export_serves_score_and_query_prints_candidate_scores(ranking_run, tmp_path, capsys):
    import tensorflow as tf

    saved = tmp_path / "saved_models"
    assert main(["export", str(ranking_run), "--saved-models", str(saved)]) == 0
    served = tf.saved_model.load(str(saved / "din" / "1"))
    assert "retrieve" not in served.signatures and {"score", "explain"} <= set(served.signatures)
    default_inputs = served.signatures["serving_default"].structured_input_signature[1]
    assert sorted(default_inputs) == ["candidates", "history", "user_id"]
    # din.movielens_100k trains on histories of liked items only: a client must send those, and the export says so
    recorded = json.loads((saved / "din" / "1" / "assets.extra" / "mmrec_inputs.json").read_text())
    assert recorded == {"max_history": 5, "label": "rating >= 4", "history": "positive",
                        "history_rule": "the user's earlier items with rating >= 4, oldest first; the model keeps "
                                        "the 5 most recent known ones"}
    capsys.readouterr()

    assert main(["query", str(saved / "din"), "--user", "u1", "--run", str(ranking_run),
                 "--candidates", "i0", "i1", "i2", "unknown"]) == 0
    printed = capsys.readouterr().out
    assert "4 candidates scored for user u1" in printed and printed.count("score=") == 4
    scores = [float(line.rsplit("score=", 1)[1]) for line in printed.splitlines() if "score=" in line]
    assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)

    assert main(["query", str(saved / "din"), "--user", "u1", "--run", str(ranking_run), "--top", "3"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("score=") == 3 and "candidates scored" in printed and "most recent" in printed
    assert main(["query", str(saved / "din"), "--user", "u1"]) == 2
    refusal = capsys.readouterr().err.strip().splitlines()
    assert len(refusal) == 1 and "--candidates" in refusal[0] and refusal[0].startswith("mmrec query: error:")


def test_bad_label_is_a_clear_error(rated_folder, tmp_path, capsys):
    assert main(["train", "din.movielens_100k", "--data", str(rated_folder), "--run-dir", str(tmp_path / "r"),
                 "--label", "rating > 4", *TINY_DIN]) == 2
    error = capsys.readouterr().err
    assert "data.label" in error and "'rating > 4'" in error and "rating >= 4" in error


@pytest.mark.parametrize("label, message", [("rating > 4", "cannot read"), ("score >= 4", "column 'score'"),
                                            (4, "expected str"), ("rating >= 4 or label", "cannot read")])
def test_zoo_entry_rejects_a_bad_label_naming_the_key(label, message):
    content = yaml.safe_load(open(get_zoo_entry("din.movielens_100k").source, encoding="utf-8"))
    content["data"]["label"] = label
    with pytest.raises(ConfigError, match=message) as caught:
        parse_zoo_entry(content, source="din.yaml")
    assert caught.value.key_path == "data.label" and str(caught.value).startswith("din.yaml: data.label: ")


def test_zoo_entry_checks_split_and_fractions():
    content = yaml.safe_load(open(get_zoo_entry("din.movielens_100k").source, encoding="utf-8"))
    parse_zoo_entry({**content, "data": {**content["data"], "test_fraction": 0.2}}, source="din.yaml")
    with pytest.raises(ConfigError, match="unknown split 'temporal'") as caught:
        parse_zoo_entry({**content, "data": {**content["data"], "split": "temporal"}}, source="din.yaml")
    assert caught.value.key_path == "data.split"
    with pytest.raises(ConfigError, match="take fractions") as caught:
        parse_zoo_entry({**content, "data": {**content["data"], "split": "leave_last_out", "valid_fraction": 0.1}},
                        source="din.yaml")
    assert caught.value.key_path == "data.valid_fraction"


def test_make_split_takes_temporal_fraction_and_its_fractions():
    dataset = make_synthetic(num_users=3, num_items=8, num_clusters=2, interactions_per_user=10)
    split = make_split(dataset, "temporal_fraction", valid_fraction=0.2, test_fraction=0.3)
    assert split.method == "temporal_fraction" and (len(split.train), len(split.valid), len(split.test)) == (15, 6, 9)
    with pytest.raises(ValueError, match="takes no option 'valid_fraction'"):
        make_split(dataset, "predefined", valid_fraction=0.2)


def test_the_task_decides_the_examples():
    dataset = make_synthetic(num_users=6, num_items=8, num_clusters=2, interactions_per_user=10)
    assert data_settings("embedding_mlp.movielens_100k")["task"] == "ranking"
    ranking = prepare_data(dataset, **data_settings("embedding_mlp", max_history=3))
    retrieval = prepare_data(dataset, **data_settings("two_tower", max_history=3))
    assert ranking.split.method == "temporal_fraction" and retrieval.split.method == "leave_last_out"
    labels = ranking.examples["train"].extras["label"]
    assert set(np.unique(labels)) <= {0.0, 1.0}
    np.testing.assert_array_equal(labels, ranking.examples["train"].extras["rating"] >= 4)
    assert "label" not in retrieval.examples["train"].extras
    with pytest.raises(ValueError, match="label and history describe ranking examples"):
        prepare_data(dataset, task="retrieval", label="rating >= 4")


def test_an_explicit_label_column_is_used_and_checked():
    dataset = make_synthetic(num_users=6, num_items=8, num_clusters=2, interactions_per_user=10)
    clicks = dataset.interactions.drop(columns="rating").assign(label=np.arange(60) % 2)
    clicked = Dataset("clicks", clicks, dataset.schema, items=dataset.items, users=dataset.users)
    data = prepare_data(clicked, task="ranking", max_history=3)
    assert data.label == "label"
    log = data.split.log
    np.testing.assert_array_equal(data.examples["test"].extras["label"], log[log["split"] == "test"]["label"])
    bad = Dataset("clicks", clicks.assign(label=clicks["label"] * 2), dataset.schema, items=dataset.items)
    with pytest.raises(ValueError, match="must hold 0 or 1"):
        prepare_data(bad, task="ranking", label="label", max_history=3)
    unrated = Dataset("plain", clicks.drop(columns="label"), dataset.schema, items=dataset.items)
    with pytest.raises(ValueError, match="neither a 'label' nor a 'rating'"):
        prepare_data(unrated, task="ranking", max_history=3)


def test_best_epoch_survives_a_resume(tmp_path):
    """The best validation epoch is kept beside the checkpoints, so a resumed run still ends on it."""
    from mmrec_tf.experiment import BestValidationEpoch
    from mmrec_tf.registry import create_model
    from mmrec_tf.training import training_dataset

    dataset = make_synthetic(num_users=20, num_items=8, num_clusters=2, interactions_per_user=20)
    data = prepare_data(dataset, **data_settings("embedding_mlp", max_history=3))
    model = create_model("embedding_mlp", space=data.space, embedding_dim=4, hidden_units=[4], max_history=3)
    model(training_dataset(model, data.examples["valid"], 8, shuffle=False).take(1).get_single_element())
    first = BestValidationEpoch(data.examples["valid"], state_dir=tmp_path)
    first.set_model(model)
    first.on_epoch_end(2)
    kept = [w.copy() for w in model.get_weights()]
    model.set_weights([w + 1.0 for w in kept])
    resumed = BestValidationEpoch(data.examples["valid"], state_dir=tmp_path)
    resumed.set_model(model)
    resumed.on_train_begin()
    assert resumed.best_epoch == 3 and resumed.best_value == pytest.approx(first.best_value)
    resumed.on_train_end()
    for restored, expected in zip(model.get_weights(), kept):
        np.testing.assert_array_equal(restored, expected)
