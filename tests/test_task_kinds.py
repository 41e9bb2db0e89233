"""The task kind object (issue #12): one place that says what retrieval and ranking decide."""

import dataclasses
import json
import re

import keras
import numpy as np
import pytest

from mmrec_tf.cli import main
from mmrec_tf.data.sources import make_synthetic
from mmrec_tf.evaluation.full_ranking import evaluate_retrieval
from mmrec_tf.evaluation.ranking_evaluator import predict_examples
from mmrec_tf.evaluation.ranking_metrics import gauc
from mmrec_tf.experiment import BestValidationEpoch, data_settings, prepare_data, run, save_run
from mmrec_tf.export.serving_module import ServingModule
from mmrec_tf.model_registration import model_task_kind
from mmrec_tf.registry import create_model, list_models, registered_model
from mmrec_tf.report.numbers import check_run_folder
from mmrec_tf.task_kinds import RANKING, RETRIEVAL, TASK_KINDS, TASK_NAMES, TaskKind, task_kind
from mmrec_tf.zoo_entry import load_zoo_entries


def _rated(num_users=30):
    return make_synthetic(num_users=num_users, num_items=12, num_clusters=2, interactions_per_user=20, seed=1)


def test_lookup_by_name_returns_the_one_instance_and_a_kind_is_returned_as_it_is():
    assert task_kind("retrieval") is RETRIEVAL and task_kind("ranking") is RANKING
    assert task_kind(RANKING) is RANKING
    assert TASK_KINDS == (RETRIEVAL, RANKING) and TASK_NAMES == ("retrieval", "ranking")


@pytest.mark.parametrize("name", ["regression", "Ranking", "", None])
def test_an_unknown_name_is_refused_naming_the_valid_choices(name):
    expected = f"task must be one of ('retrieval', 'ranking'), got {name!r}"
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        task_kind(name)


def test_a_task_kind_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        RANKING.default_split = "random"
    assert isinstance(RETRIEVAL, TaskKind)


def test_every_name_written_in_the_zoo_and_the_registry_is_a_kind():
    entries = load_zoo_entries()
    assert {task_kind(entry.task) for entry in entries.values()} == {RETRIEVAL, RANKING}
    assert {registered_model(name).task for name in list_models()} == {"retrieval", "ranking"}
    assert list_models(task=RANKING) == list_models(task="ranking") == ["article_lstm", "bst", "din", "embedding_mlp"]


def test_the_default_split_of_each_kind_is_the_one_prepare_data_makes():
    dataset = _rated()
    retrieval = prepare_data(dataset, max_history=3)
    ranking = prepare_data(dataset, task="ranking", max_history=3)
    assert retrieval.split.method == RETRIEVAL.default_split == "leave_last_out"
    assert ranking.split.method == RANKING.default_split == "temporal_fraction"
    assert (retrieval.task, retrieval.kind, ranking.task, ranking.kind) == ("retrieval", RETRIEVAL, "ranking", RANKING)
    by_object = prepare_data(dataset, task=RANKING, max_history=3)
    assert by_object.task == "ranking" and by_object.record() == ranking.record()
    assert dataclasses.replace(ranking, task=RANKING).task == "ranking"  # a TaskKind given is kept as its name
    with pytest.raises(ValueError, match="ranking examples need a preprocessor with a label"):
        dataclasses.replace(retrieval, task=RANKING)  # the examples were made for retrieval
    with pytest.raises(ValueError, match="task must be one of"):
        dataclasses.replace(retrieval, task="regression")
    assert "label" in ranking.examples["train"].extras and "label" not in retrieval.examples["train"].extras
    assert (RANKING.labelled, RETRIEVAL.labelled) == (True, False)


def test_a_model_kind_is_its_registered_task():
    space = prepare_data(_rated(8), max_history=3).space
    assert model_task_kind(create_model("din", space=space)) is RANKING
    assert model_task_kind(create_model("two_tower", space=space)) is RETRIEVAL
    assert model_task_kind(object()) is RETRIEVAL  # an unregistered model counts as retrieval, as before


class _ValidGauc(keras.callbacks.Callback):
    """Records each epoch's validation GAUC, computed apart from the run's own epoch selection."""

    def __init__(self, examples):
        super().__init__()
        self.examples, self.values = examples, []

    def on_epoch_end(self, epoch, logs=None):
        labels = np.asarray(self.examples.extras["label"], dtype=np.float64)
        self.values.append(gauc(self.examples.user_id, labels, predict_examples(self.model, self.examples)))


def test_ranking_keeps_the_epoch_with_the_best_valid_selection_metric(tmp_path):
    """Ranking runs (and so the ranking benchmark, which calls run) keep the best epoch by valid GAUC."""
    assert RANKING.selection_metric == "gauc" and RETRIEVAL.selection_metric is None
    data = prepare_data(_rated(), **data_settings("embedding_mlp", max_history=3))
    recorder = _ValidGauc(data.examples["valid"])
    result = run("embedding_mlp", data, training={"epochs": 4, "jit_compile": False}, verbose=0, callbacks=[recorder],
                 embedding_dim=4, hidden_units=[8], max_history=3)
    assert len(recorder.values) == 4
    assert result.best_epoch == int(np.argmax(recorder.values)) + 1
    assert result.valid.metrics[RANKING.selection_metric] == pytest.approx(max(recorder.values), abs=1e-6)
    save_run(result, tmp_path / "run", {"dataset": "synthetic", "path": None})
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["task"] == "ranking"
    assert record["selection"] == {"metric": "valid gauc", "best_epoch": result.best_epoch}


def test_retrieval_keeps_the_last_epoch_and_is_measured_by_full_ranking(tmp_path):
    data = prepare_data(_rated(), max_history=3)
    result = run("popularity", data, ks=(5,))
    assert result.best_epoch is None and result.selection_seconds == 0.0
    assert result.test.metrics == evaluate_retrieval(result.model, data.examples["test"], data.seen("test"),
                                                     ks=(5,)).metrics
    assert "hr@5" in result.test.metrics
    save_run(result, tmp_path / "run", {"dataset": "synthetic", "path": None})
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["task"] == "retrieval" and "selection" not in record


@pytest.mark.parametrize("model_name, kind", [("lstm_two_tower", RETRIEVAL), ("din", RANKING)])
def test_the_serving_module_writes_the_kind_signatures(model_name, kind):
    data = prepare_data(_rated(8), max_history=3)
    model = create_model(model_name, space=data.space, max_history=3)
    module = ServingModule(model, data.space, k=5)
    expected, default = {"retrieval": (("score", "retrieve", "user_embedding", "item_embedding", "explain"), "retrieve"),
                         "ranking": (("score", "explain"), "score")}[kind.name]
    assert tuple(module.signature_inputs) == expected
    signatures = module.signatures()
    assert set(signatures) == {*expected, "serving_default"}
    assert signatures["serving_default"] is signatures[default]
    assert kind.retrieves == ("retrieve" in signatures)


def test_best_validation_epoch_refuses_a_metric_it_does_not_compute():
    data = prepare_data(_rated(), task="ranking", max_history=3)
    with pytest.raises(ValueError, match=r"^BestValidationEpoch selects epochs by 'gauc' only, got 'auc'$"):
        BestValidationEpoch(data.examples["valid"], metric="auc")


def test_a_run_json_naming_an_unknown_task_is_refused_in_one_line_naming_the_file(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps({"name": "x", "model": "two_tower", "task": "regression",
                                                  "data": {}, "training": {}}))
    (run_dir / "model.keras").write_bytes(b"")
    assert main(["export", str(run_dir), "--saved-models", str(tmp_path / "saved")]) == 2
    assert capsys.readouterr().err.strip() == (f"mmrec export: error: {run_dir / 'run.json'}: task must be one of "
                                               "('retrieval', 'ranking'), got 'regression'")
    assert not (tmp_path / "saved").exists()
    with pytest.raises(ValueError, match=r"^" + re.escape(f"{run_dir / 'run.json'}: task must be one of")):
        check_run_folder(run_dir)
