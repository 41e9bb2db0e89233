"""What an export records of its preprocessor: the history a client must send, and a refused mismatch."""

import json

import pytest

from mmrec_tf.data import FeatureSpace
from mmrec_tf.data.label_spec import parse_label
from mmrec_tf.data.preprocessor import Preprocessor
from mmrec_tf.data.sources import make_synthetic
from mmrec_tf.export.saved_model import export_model
from mmrec_tf.export.serve_check import format_serve_check_report
from mmrec_tf.export.tf_serving import SERVING_INPUTS_RELATIVE_PATH
from mmrec_tf.registry import create_model


@pytest.fixture(scope="module")
def space():
    return FeatureSpace.build(make_synthetic(num_users=6, num_items=8, num_clusters=2, interactions_per_user=5))


def test_the_export_records_the_preprocessors_history_rule(space, tmp_path):
    model = create_model("embedding_mlp", space=space, embedding_dim=4, hidden_units=[4], max_history=3)
    preprocessor = Preprocessor(space, 3, parse_label("rating >= 4"))
    version = export_model(model, preprocessor, tmp_path, "mlp", warmup=False)
    assert json.loads((version / SERVING_INPUTS_RELATIVE_PATH).read_text()) == {
        "max_history": 3, "label": "rating >= 4", "history": "positive",
        "history_rule": "the user's earlier items with rating >= 4, oldest first; the model keeps the 3 most recent "
                        "known ones"}


def test_a_preprocessor_with_shorter_histories_than_the_model_is_refused_before_anything_is_written(space, tmp_path):
    model = create_model("lstm_two_tower", space=space, embedding_dim=4, lstm_units=4, max_history=5)
    with pytest.raises(ValueError, match="keeps max_history=5 but the preprocessor's examples keep 3"):
        export_model(model, Preprocessor(space, 3), tmp_path, "lstm", warmup=False)
    assert not (tmp_path / "lstm").exists()


def test_a_ranking_model_needs_examples_of_exactly_its_history(space, tmp_path):
    model = create_model("din", space=space, embedding_dim=4, hidden_units=[4], attention_units=[4], max_history=3)
    with pytest.raises(ValueError, match="keeps max_history=3 but the preprocessor's examples keep 5; a ranking "
                                         "model's examples keep exactly its history"):
        export_model(model, Preprocessor(space, 5, parse_label("rating >= 4")), tmp_path, "din", warmup=False)
    assert not (tmp_path / "din").exists()


def test_a_model_keeping_fewer_items_than_its_examples_records_the_length_it_serves(space, tmp_path):
    model = create_model("lstm_two_tower", space=space, embedding_dim=4, lstm_units=4, max_history=3)
    version = export_model(model, Preprocessor(space, 5), tmp_path, "lstm", warmup=False)
    recorded = json.loads((version / SERVING_INPUTS_RELATIVE_PATH).read_text())
    assert recorded["max_history"] == 3 and recorded["history_rule"].endswith("the model keeps the 3 most recent known ones")


def test_a_bare_feature_space_exports_without_a_history_rule(space, tmp_path):
    version = export_model(create_model("two_tower", space=space, embedding_dim=4), space, tmp_path, "tt",
                           warmup=False)
    assert (version / "saved_model.pb").is_file() and not (version / SERVING_INPUTS_RELATIVE_PATH).exists()


def test_anything_else_is_refused_in_one_line(space, tmp_path):
    with pytest.raises(TypeError, match="needs the Preprocessor the model's examples were made with .* got dict"):
        export_model(create_model("two_tower", space=space, embedding_dim=4), {}, tmp_path, "tt", warmup=False)


def test_serve_check_prints_the_history_to_send():
    text = format_serve_check_report({"version_dir": "m/1", "servable": True, "history_rule": "every earlier item"})
    assert text.splitlines() == ["serve-check m/1: servable", "  history to send: every earlier item"]
