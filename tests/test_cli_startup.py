"""The command line starts fast and prints only what is meant for its reader.

`mmrec list` and `--help` answer without importing TensorFlow; TensorFlow's
start-up lines stay off the terminal unless `--verbose`; training progress is a
live bar on a terminal and one plain line per epoch anywhere else.
"""

import io
import os
import subprocess
import sys

import pytest

import mmrec_tf
from mmrec_tf.catalog import model_summaries, zoo_summaries
from mmrec_tf.cli import main
from mmrec_tf.registry import list_models, registered_model

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _mmrec(*arguments, python_options=()):
    """Run ``python -m mmrec_tf.cli ARGUMENTS`` from this checkout; returns the completed process."""
    env = {**os.environ, "PYTHONPATH": REPOSITORY}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # what a user's shell has: the CLI must quieten TensorFlow itself
    return subprocess.run([sys.executable, *python_options, "-m", "mmrec_tf.cli", *arguments], capture_output=True,
                          text=True, env=env, timeout=120)


def _imported_modules(importtime_stderr: str) -> set[str]:
    """Module names from ``python -X importtime`` lines (``import time: self | cumulative | name``)."""
    return {line.rsplit("|", 1)[1].strip() for line in importtime_stderr.splitlines()
            if line.startswith("import time:") and line.count("|") == 2}


@pytest.mark.parametrize("arguments", [["list"], ["list", "--zoo", "din*"], ["--help"], ["train", "--help"],
                                       ["export", "--help"]])
def test_list_and_help_do_not_import_tensorflow(arguments):
    reply = _mmrec(*arguments, python_options=("-X", "importtime"))
    assert reply.returncode == 0, reply.stderr[-2000:]
    modules = _imported_modules(reply.stderr)
    assert {"mmrec_tf", "mmrec_tf.console"} <= modules  # the check sees the CLI's own imports
    assert not {name for name in modules if name.split(".")[0] in ("tensorflow", "keras")}
    assert reply.stdout.strip()


def test_list_matches_the_registry_and_the_zoo(capsys):
    summaries = model_summaries()
    builtin = [name for name in list_models() if registered_model(name).cls.__module__.startswith("mmrec_tf.models.")]
    assert list(summaries) == builtin  # a model registered by other code (a docstring's example) is not listed
    for name, summary in summaries.items():
        registered = registered_model(name)
        assert (summary.task, summary.description) == (registered.task, registered.description)
    assert list(zoo_summaries()) == list_models(zoo=True)
    assert main(["list", "--task", "ranking"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == [name for name in list_models(task="ranking") if name in summaries]
    assert main(["list", "--zoo", "--task", "retrieval", "*movielens_100k"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == list_models("*movielens_100k", task="retrieval", zoo=True)


def test_the_public_api_is_reachable_from_the_package():
    for name in mmrec_tf.__all__:
        assert getattr(mmrec_tf, name) is not None
        assert name in dir(mmrec_tf)
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        mmrec_tf.not_a_name  # noqa: B018


def test_tensorflow_start_up_lines_are_hidden_unless_verbose(tmp_path):
    missing = tmp_path / "no-such-run"
    quiet = _mmrec("evaluate", str(missing))
    assert quiet.returncode == 2
    assert quiet.stderr.splitlines() == [f"mmrec evaluate: error: {missing}: not a run folder (no run.json); "
                                         "create one with `mmrec train`"]
    verbose = _mmrec("evaluate", str(missing), "--verbose")
    assert verbose.returncode == 2
    # TensorFlow 2.21 on a CPU logs its oneDNN / CUDA-stub notices through absl before anything else
    assert len(verbose.stderr.splitlines()) > 1 and verbose.stderr.splitlines()[-1] == quiet.stderr.strip()


TRAIN = ["train", "two_tower", "--data", "synthetic", "--epochs", "2", "--set", "embedding_dim=4"]


def test_progress_in_a_log_is_one_plain_line_per_epoch(tmp_path, capsys):
    assert main([*TRAIN, "--run-dir", str(tmp_path / "run")]) == 0
    printed = capsys.readouterr().out
    assert "\r" not in printed and "\x1b" not in printed and "\b" not in printed
    epochs = [line for line in printed.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in epochs] == ["1/2", "2/2"]
    assert all(" loss " in line and " val_loss " in line for line in epochs)


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_on_a_terminal_is_a_live_bar(tmp_path, monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    assert main([*TRAIN, "--run-dir", str(tmp_path / "run")]) == 0
    printed = terminal.getvalue()
    assert "\r" in printed and "Epoch 2/2" in printed
    assert not [line for line in printed.splitlines() if line.startswith("epoch ")]
