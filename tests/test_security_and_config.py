"""Untrusted files and names: safe YAML, safe Keras loading, no path escapes, no shells."""

import pathlib
import re

import keras
import numpy as np
import pytest

from mmrec_tf.errors import ConfigError
from mmrec_tf.experiment import load_run
from mmrec_tf.export.saved_model import check_model_name, export_model
from mmrec_tf.registry import create_model
from mmrec_tf.zoo_entry import get_zoo_entry, load_zoo_file

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "mmrec_tf"
ENTRY = """\
name: two_tower.shop
model: two_tower
task: retrieval
description: test entry
architecture: {embedding_dim: 8}
data: {dataset: synthetic, split: leave_last_out, max_history: 5}
training: {epochs: 1, batch_size: 32, learning_rate: 0.01, optimizer: adam, seed: 0}
"""


def write_entry(tmp_path, text, name="two_tower.shop.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_valid_entry_loads(tmp_path):
    entry = load_zoo_file(write_entry(tmp_path, ENTRY))
    assert entry.architecture == {"embedding_dim": 8} and entry.training["epochs"] == 1


@pytest.mark.parametrize("edit, key_path", [
    (("training: {epochs: 1,", "training: {epochz: 1,"), "training.epochz"),
    (("training: {epochs: 1,", "training: {epochs: one,"), "training.epochs"),
    (("architecture: {embedding_dim: 8}", "architecture: {embedding_dims: 8}"), "architecture.embedding_dims"),
    (("data: {dataset: synthetic,", "data: {dataset: synthetic, shuffle: true,"), "data.shuffle"),
    (("description: test entry\n", "description: test entry\nowner: me\n"), "owner"),
    (("task: retrieval", "task: ranking"), "task"),
])
def test_unknown_keys_and_wrong_types_name_the_key_path(tmp_path, edit, key_path):
    with pytest.raises(ConfigError, match=re.escape(key_path)) as error:
        load_zoo_file(write_entry(tmp_path, ENTRY.replace(*edit)))
    assert "two_tower.shop.yaml" in str(error.value)


def test_yaml_is_read_with_safe_load_only(tmp_path):
    marker = tmp_path / "pwned"
    hostile = ENTRY + f"extra: !!python/object/apply:os.system ['touch {marker}']\n"
    with pytest.raises(ConfigError, match="safe_load"):
        load_zoo_file(write_entry(tmp_path, hostile))
    assert not marker.exists()


def test_zoo_names_are_lookups_not_paths():
    with pytest.raises(ConfigError, match="unknown zoo entry"):
        get_zoo_entry("../../etc/passwd")


@pytest.mark.parametrize("name", ["../evil", "a/b", "..", "", "x\\y", "name with space"])
def test_export_names_cannot_escape_the_saved_models_folder(tmp_path, tiny_space, name):
    with pytest.raises(ValueError, match="model name"):
        check_model_name(name)
    model = create_model("popularity", space=tiny_space)
    with pytest.raises(ValueError, match="model name"):
        export_model(model, tiny_space, tmp_path / "saved", name)
    assert not any(tmp_path.rglob("saved_model.pb"))


def test_runs_load_with_keras_safe_mode(tmp_path, tiny_space):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text('{"model": "popularity", "name": "popularity"}')
    hostile = keras.Sequential([keras.Input((2,)), keras.layers.Lambda(lambda x: x * 2)])
    hostile.save(run_dir / "model.keras")
    tiny_space.save(run_dir / "feature_space")
    with pytest.raises(ValueError, match="safe_mode"):
        load_run(run_dir)
    assert np.all(np.isfinite(hostile(np.ones((1, 2)))))


def test_no_shell_or_eval_in_the_package():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for pattern in (r"shell\s*=\s*True", r"\beval\(", r"\bexec\(", r"os\.system\(", r"allow_pickle\s*=\s*True",
                        r"safe_mode\s*=\s*False", r"yaml\.load\("):
            if re.search(pattern, text):
                offenders.append(f"{path.relative_to(PACKAGE)}: {pattern}")
    assert offenders == []
