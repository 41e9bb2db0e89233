"""A bare model name trains with the recipe of the zoo entry measured best for it; run.json names the recipe."""

from __future__ import annotations

import json

import pytest
import yaml

import mmrec_tf.zoo_entry as zoo_entry
from mmrec_tf.cli import main
from mmrec_tf.data.sources import load_dataset, make_synthetic
from mmrec_tf.errors import ConfigError
from mmrec_tf.experiment import data_settings, prepare_data, run, save_run
from mmrec_tf.registry import create_model, list_models
from mmrec_tf.zoo_entry import get_zoo_entry, recipe_for


def test_a_bare_name_takes_its_default_entrys_whole_recipe():
    entry = get_zoo_entry("two_tower.movielens_100k")
    recipe = recipe_for("two_tower")
    assert recipe.name == "two_tower.movielens_100k" and recipe.model == "two_tower"
    assert recipe.architecture == entry.architecture == {"embedding_dim": 32, "logq_correction": True,
                                                         "remove_accidental_hits": True}
    assert recipe.training == entry.training and recipe.training["learning_rate"] == 0.001
    assert recipe.data == {"max_history": 50}, "the split and dataset are the entry's own, not the recipe's"



def test_a_bare_sasrec_trains_with_the_measured_movielens_recipe():
    entry = get_zoo_entry("sasrec.movielens_100k")
    recipe = recipe_for("sasrec")
    assert recipe.name == "sasrec.movielens_100k" and entry.default
    # item tables name the data's own columns: on other data a bare name takes all of the data's tables,
    # on the entry's own dataset exactly the entry's (ML-100K: genres and title, not the year)
    assert recipe.architecture == {k: v for k, v in entry.architecture.items() if k != "item_features"}
    assert recipe.architecture["full_softmax"] is True and entry.architecture["item_features"] == ["genres", "title"]
    assert recipe.model_arguments(dataset="movielens-100k") == {**entry.architecture, "max_history": 50}
    assert "item_features" not in recipe.model_arguments(dataset="movielens-100k-mm")
    assert recipe.training == entry.training == {"epochs": 30, "batch_size": 64, "learning_rate": 0.003,
                                                 "optimizer": "adam", "seed": 0, "jit_compile": False}
    assert recipe.data == {"max_history": 50}


def test_run_builds_a_bare_name_on_its_entrys_dataset_with_the_entrys_item_tables(monkeypatch):
    data = prepare_data(load_dataset("synthetic", num_users=30, num_items=20, num_clusters=2),
                        **data_settings("sasrec", max_history=5))
    assert sorted(data.space.item_feature_specs()) == ["genres", "title"]
    elsewhere = run("sasrec", data, training={"epochs": 1, "batch_size": 16}, verbose=0, embedding_dim=8)
    assert sorted(elsewhere.model.item_feature_specs) == ["genres", "title"]  # every table of the data
    # the same data under the entry's dataset name, the entry naming one of its tables: the bare name takes it
    entries = zoo_entry.load_zoo_entries()
    entry = entries["sasrec.movielens_100k"]
    entries["sasrec.movielens_100k"] = zoo_entry.ZooEntry(
        **{**vars(entry), "architecture": {**entry.architecture, "item_features": ["genres"]}})
    monkeypatch.setattr(zoo_entry, "load_zoo_entries", lambda: entries)
    data.dataset.name = "movielens-100k"
    own = run("sasrec", data, training={"epochs": 1, "batch_size": 16}, verbose=0, embedding_dim=8)
    assert own.recipe == "sasrec.movielens_100k" and list(own.model.item_feature_specs) == ["genres"]


def test_a_bare_multimodal_name_leaves_out_the_features_named_by_its_entrys_dataset():
    recipe = recipe_for("vbpr")
    assert recipe.name == "vbpr.movielens_100k_mm"
    assert "item_features" not in recipe.architecture and recipe.architecture["logq_correction"] is True
    assert recipe.data == {"max_history": 20}
    assert recipe_for("vbpr.lastfm_2k_mm").architecture["item_features"] == ["tags_minilm", "vggish", "whisper"]


def test_an_entry_name_gives_its_data_settings_but_the_dataset():
    assert recipe_for("din.movielens_100k").data == {"split": "temporal_fraction", "max_history": 50,
                                                     "label": "rating >= 4"}
    assert data_settings("din") == {"max_history": 50, "task": "ranking"}


@pytest.mark.parametrize("model", list_models())
def test_every_catalog_model_with_zoo_entries_has_one_default_recipe(model):
    entries = [name for name in list_models(zoo=True) if name.startswith(model + ".")]
    recipe = recipe_for(model)
    assert recipe.name in entries if entries else recipe.name == "none"


def _entry(name: str, default: bool = False) -> zoo_entry.ZooEntry:
    return zoo_entry.ZooEntry(name=name, model=name.split(".")[0], task="retrieval", description="", architecture={},
                              data={}, training={"epochs": 1}, metrics={}, references=[], source=f"{name}.yaml",
                              default=default)


def test_several_entries_need_one_marked_default(monkeypatch):
    entries = {"two_tower.a": _entry("two_tower.a"), "two_tower.b": _entry("two_tower.b")}
    monkeypatch.setattr(zoo_entry, "load_zoo_entries", lambda: entries)
    with pytest.raises(ConfigError, match="none is marked 'default: true'"):
        recipe_for("two_tower")
    entries["two_tower.b"] = _entry("two_tower.b", default=True)
    assert recipe_for("two_tower").name == "two_tower.b"
    entries["two_tower.a"] = _entry("two_tower.a", default=True)
    with pytest.raises(ConfigError, match="all marked default"):
        recipe_for("two_tower")


def test_a_model_without_entries_trains_with_class_defaults(monkeypatch):
    monkeypatch.setattr(zoo_entry, "load_zoo_entries", lambda: {})
    recipe = recipe_for("two_tower")
    assert (recipe.name, recipe.architecture, recipe.data, recipe.training) == ("none", {}, {}, {})


def test_max_history_is_written_once_per_entry_under_data():
    content = yaml.safe_load(open(get_zoo_entry("din.movielens_100k").source, encoding="utf-8"))
    content["architecture"]["max_history"] = 50
    with pytest.raises(ConfigError, match="write max_history once") as raised:
        zoo_entry.parse_zoo_entry(content, source="din.yaml")
    assert raised.value.key_path == "architecture.max_history"


def test_create_model_from_an_entry_keeps_the_history_of_its_data_section(tiny_space):
    model = create_model("concat_fusion.movielens_100k_mm", space=tiny_space, item_features=["genres"],
                         embedding_dim=4, hidden_units=[4])
    assert model.max_history == get_zoo_entry("concat_fusion.movielens_100k_mm").data["max_history"] == 20


def test_run_trains_a_bare_name_with_its_recipe_and_run_json_records_it(tmp_path):
    data = prepare_data(load_dataset("synthetic", num_users=30, num_items=20, num_clusters=2),
                        **data_settings("two_tower"))
    result = run("two_tower", data, training={"epochs": 1}, verbose=0)
    model = result.model
    assert result.recipe == "two_tower.movielens_100k"
    assert (model.embedding_dim, model.logq_correction, model.remove_accidental_hits) == (32, True, True)
    assert (result.training.learning_rate, result.training.batch_size, result.training.epochs) == (0.001, 256, 1)
    save_run(result, tmp_path / "run", {"dataset": "synthetic"})
    assert json.loads((tmp_path / "run" / "run.json").read_text())["recipe"] == "two_tower.movielens_100k"


def test_a_bare_ranking_name_keeps_the_history_its_data_carries():
    data = prepare_data(load_dataset("synthetic", num_users=30, num_items=12, num_clusters=2,
                                     interactions_per_user=20), **data_settings("embedding_mlp", max_history=4))
    result = run("embedding_mlp", data, training={"epochs": 1, "jit_compile": False}, verbose=0, hidden_units=[8])
    assert result.recipe == "embedding_mlp.movielens_100k"
    assert (result.model.max_history, result.model.embedding_dim, result.model.embedding_l2) == (4, 16, 0.01)
    assert result.training.learning_rate == 0.002


@pytest.fixture(scope="module")
def shop_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shop")
    synthetic = make_synthetic(num_users=30, num_items=20, num_clusters=2, interactions_per_user=8, seed=1)
    synthetic.interactions[["user_id", "item_id", "timestamp"]].to_csv(folder / "interactions.csv", index=False)
    return folder


@pytest.mark.parametrize("name, recipe", [("two_tower", "two_tower.movielens_100k"),
                                          ("two_tower.movielens_100k", "two_tower.movielens_100k")])
def test_mmrec_train_on_a_folder_records_the_recipe_it_used(shop_folder, tmp_path, name, recipe):
    run_dir = tmp_path / "run"
    assert main(["train", name, "--data", str(shop_folder), "--epochs", "1", "--run-dir", str(run_dir)]) == 0
    record = json.loads((run_dir / "run.json").read_text())
    assert record["recipe"] == recipe and record["model"] == "two_tower"
    assert record["data"]["dataset"] == "folder" and record["data"]["max_history"] == 50
    assert record["training"]["learning_rate"] == get_zoo_entry(recipe).training["learning_rate"]
