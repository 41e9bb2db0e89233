"""Every refusal of the command line is one `mmrec <cmd>: error: ...` line naming what is wrong, and exit status 2.

And `--resume` refuses to continue an interrupted run with another recipe unless `--force` (run.json then
records both).
"""

import json
import os

import keras
import pytest

import mmrec_tf.experiment as experiment
from mmrec_tf.cli import main
from mmrec_tf.resume_recipe import check_resume, differences, record_recipe


def _refusal(capsys, arguments) -> str:
    """Run ``mmrec ARGUMENTS``; assert exit status 2 and exactly one error line; return that line."""
    try:
        status = main(arguments)
    except SystemExit as exit_:  # argparse's own refusals exit from parse_args
        status = exit_.code
    captured = capsys.readouterr()
    assert status == 2
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"mmrec {arguments[0]}: error: ")
    assert "Traceback" not in captured.out
    return lines[0]


@pytest.mark.parametrize("option, value", [("--epochs", "0"), ("--epochs", "-2"), ("--batch-size", "0"),
                                           ("--epochs", "two"), ("--learning-rate", "0")])
def test_non_positive_training_settings_are_refused(capsys, option, value):
    line = _refusal(capsys, ["train", "two_tower", option, value])
    assert option in line and value in line


def test_a_run_dir_under_a_regular_file_is_refused_before_any_work(tmp_path, capsys):
    regular = tmp_path / "notes.txt"
    regular.write_text("x")
    line = _refusal(capsys, ["train", "two_tower", "--data", "synthetic", "--run-dir", str(regular / "run")])
    assert f"{regular} is a file, not a folder" in line


def test_a_set_value_that_is_not_plain_yaml_is_refused(tmp_path, capsys):
    line = _refusal(capsys, ["train", "two_tower", "--set", "embedding_dim=!!python/name:os.system",
                             "--run-dir", str(tmp_path / "run")])
    assert "--set embedding_dim=!!python/name:os.system" in line and "not plain YAML" in line


def test_a_schema_yaml_that_is_not_plain_data_is_refused(tmp_path, capsys):
    """yaml.safe_load refuses a Python tag with a YAMLError, which is no ValueError: it used to be a traceback."""
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "interactions.csv").write_text("user_id,item_id\nu1,a\nu1,b\n")
    (folder / "schema.yaml").write_text("items:\n  title: !!python/object/apply:os.system [echo]\n")
    line = _refusal(capsys, ["train", "two_tower", "--data", str(folder), "--run-dir", str(tmp_path / "run")])
    assert str(folder / "schema.yaml") in line and "line 2" in line and "not plain YAML data" in line
    assert not (tmp_path / "run").exists()


def test_a_diverged_training_is_refused_in_one_line(tmp_path, capsys):
    """A NaN loss stops training with TrainingDivergedError (a RuntimeError): one line naming the step, no traceback."""
    line = _refusal(capsys, ["train", "two_tower", "--data", "synthetic", "--epochs", "1", "--learning-rate", "1e30",
                             "--set", "embedding_dim=4", "--run-dir", str(tmp_path / "run")])
    assert "loss became" in line and "at epoch 1, batch" in line and "learning rate" in line
    assert not (tmp_path / "run" / "run.json").exists()


def test_a_symlink_loop_as_items_file_is_refused(tmp_path, capsys):
    os.symlink(tmp_path / "b.csv", tmp_path / "a.csv")
    os.symlink(tmp_path / "a.csv", tmp_path / "b.csv")
    line = _refusal(capsys, ["features", "--items", str(tmp_path / "a.csv"), "--out", str(tmp_path / "out"),
                             "--text", "t=title"])
    assert str(tmp_path / "a.csv") in line and "symbolic links" in line


def test_a_truncated_saved_model_is_refused_by_serve_check(tmp_path, capsys):
    version = tmp_path / "saved_models" / "din" / "1"
    version.mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"\x0a\xff\xff\xff")  # a length-delimited field cut short
    line = _refusal(capsys, ["serve-check", str(version.parent)])
    assert str(version / "saved_model.pb") in line and "truncated or corrupt" in line


def test_resume_differences_ignore_epochs_and_speed_settings(tmp_path):
    recipe = {"model": "two_tower", "training": {"seed": 0, "batch_size": 256, "epochs": 3, "jit_compile": "auto"}}
    record_recipe(tmp_path, recipe)
    longer = {"model": "two_tower", "training": {"seed": 0, "batch_size": 256, "epochs": 9, "jit_compile": False}}
    assert check_resume(tmp_path, longer) is None
    other = {"model": "two_tower", "training": {"seed": 1, "batch_size": 256, "epochs": 3}}
    assert differences(recipe, other) == {"training.seed": {"checkpointed": 0, "now": 1}}


class _StopAtSecondEpoch(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt


TRAIN = ["train", "two_tower", "--data", "synthetic", "--epochs", "2", "--set", "embedding_dim=4"]


def test_resume_with_another_recipe_is_refused_unless_forced(tmp_path, capsys, monkeypatch):
    run_dir = tmp_path / "run"
    real_run = experiment.run

    def interrupted_run(*arguments, callbacks=None, **options):
        return real_run(*arguments, callbacks=[*(callbacks or []), _StopAtSecondEpoch()], **options)

    monkeypatch.setattr(experiment, "run", interrupted_run)
    with pytest.raises(KeyboardInterrupt):
        main([*TRAIN, "--run-dir", str(run_dir)])
    monkeypatch.undo()
    assert (run_dir / "checkpoints" / "epoch-000001").is_dir()
    capsys.readouterr()

    line = _refusal(capsys, [*TRAIN, "--run-dir", str(run_dir), "--resume", "--seed", "5", "--batch-size", "64",
                             "--learning-rate", "0.01"])
    assert "training.seed 0 -> 5" in line and "training.batch_size 256 -> 64" in line
    assert "training.learning_rate 0.001 -> 0.01" in line and "--force" in line
    line = _refusal(capsys, [*TRAIN[:-1], "embedding_dim=8", "--run-dir", str(run_dir), "--resume"])
    assert "architecture.embedding_dim 4 -> 8" in line
    assert (run_dir / "checkpoints" / "epoch-000001").is_dir(), "a refused resume leaves the checkpoints alone"

    assert main([*TRAIN, "--run-dir", str(run_dir), "--resume", "--seed", "5", "--force"]) == 0
    record = json.loads((run_dir / "run.json").read_text())
    assert record["training"]["seed"] == 5
    assert record["resumed"]["differences"] == {"training.seed": {"checkpointed": 0, "now": 5}}
    assert record["resumed"]["checkpointed_recipe"]["training"]["seed"] == 0
