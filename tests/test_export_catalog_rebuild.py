"""Exporting over a new item catalog without retraining: known items keep their embeddings, new ones use content."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from mmrec_tf.cli import main as mmrec
from mmrec_tf.data.feature_space import FeatureSpace, extend_item_space, read_item_table, tokenize
from mmrec_tf.data.sources import load_dataset
from mmrec_tf.errors import DataError
from mmrec_tf.experiment import prepare_data, run, save_run
from mmrec_tf.export.item_catalog import prepare_catalog
from mmrec_tf.export.saved_model import export_model
from mmrec_tf.registry import create_model
from mmrec_tf.training import TrainingConfig, train_model

from conftest import TINY_MAX_HISTORY

K = 6
NEW_ITEMS = pd.DataFrame(
    {"title": ["amber item 3", "zebra quokka", ""], "genres": [("g0", "g3"), ("g9",), ()]},
    index=["n-amber", "n-unknown-words", "n-empty"],
)


@pytest.fixture(scope="module")
def trained(tiny_space, tiny_examples):
    model = create_model("lstm_two_tower", space=tiny_space, embedding_dim=8, lstm_units=8,
                         max_history=TINY_MAX_HISTORY)
    train_model(model, tiny_examples["train"], TrainingConfig(epochs=1, batch_size=128), verbose=0)
    return model


@pytest.fixture(scope="module")
def served(trained, tiny_space, tmp_path_factory):
    """Export over 10 known items + 3 new ones (brute force and bfloat16) and load both."""
    known = pd.DataFrame(index=list(tiny_space.item_vocab.ids[:10]))
    catalog = pd.concat([known, NEW_ITEMS])
    base = tmp_path_factory.mktemp("saved_models")
    exact = export_model(trained, tiny_space, base, "catalog", k=K, catalog=catalog, index="brute_force")
    fast = export_model(trained, tiny_space, base, "catalog", k=K, catalog=catalog, index="bfloat16")
    return {"catalog": list(catalog.index), "exact": tf.saved_model.load(str(exact)),
            "fast": tf.saved_model.load(str(fast))}


def hand_content_embedding(model, space, title, genres):
    """The item tower by hand for an item with no id embedding: genres and title parts, projection, L2 norm."""
    encoder = model.item_encoder
    genre_vocabulary = space.item_features["genres"].vocabulary
    multi_hot = np.array([[1.0 if g in genres else 0.0 for g in genre_vocabulary]], np.float32)
    genre_part = multi_hot @ encoder.feature_layers["genres"].kernel.numpy()
    token_vocabulary = space.item_features["title"].vocabulary
    tokens = [token_vocabulary.index(t) + 2 if t in token_vocabulary else 1 for t in tokenize(title)]
    token_vectors = encoder.feature_layers["title"].embeddings.numpy()[tokens]
    title_part = token_vectors.mean(axis=0, keepdims=True) if tokens else np.zeros((1, encoder.embedding_dim))
    merged = np.concatenate([np.zeros((1, encoder.embedding_dim)), genre_part, title_part], axis=1)
    projected = merged @ encoder.projection.kernel.numpy() + encoder.projection.bias.numpy()
    return (projected / np.linalg.norm(projected))[0]


def call(loaded, signature, **inputs):
    outputs = loaded.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
    return {k: v.numpy() for k, v in outputs.items()}


def test_new_items_are_embedded_from_their_content_known_items_keep_theirs(served, trained, tiny_space):
    known = list(tiny_space.item_vocab.ids[:3])
    embeddings = call(served["exact"], "item_embedding", item_id=known + list(NEW_ITEMS.index))["embedding"]
    np.testing.assert_allclose(embeddings[:3], trained.encode_items(tiny_space.item_vocab.lookup(known)),
                               atol=1e-5)
    for row, (title, genres) in enumerate(zip(NEW_ITEMS["title"], NEW_ITEMS["genres"]), start=3):
        np.testing.assert_allclose(embeddings[row], hand_content_embedding(trained, tiny_space, title, genres),
                                   atol=1e-5)
    assert np.abs(embeddings[3] - embeddings[4]).max() > 1e-3, "different content, different vectors"


def test_feature_rows_of_new_items_use_the_training_vocabularies(tiny_space):
    bigger = extend_item_space(tiny_space, NEW_ITEMS)
    assert bigger.num_items == tiny_space.num_items + 3 and tiny_space.num_items == 40
    assert bigger.item_vocab.lookup(list(NEW_ITEMS.index)).tolist() == [41, 42, 43]
    np.testing.assert_array_equal(bigger.item_features["genres"].values[:41], tiny_space.item_features["genres"].values)
    assert bigger.item_features["genres"].values[41:].tolist() == [[1, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]]
    vocabulary = tiny_space.item_features["title"].vocabulary
    amber = [vocabulary.index("amber") + 2, vocabulary.index("item") + 2, vocabulary.index("3") + 2]
    assert bigger.item_features["title"].values[41].tolist() == amber + [0] * 5
    assert bigger.item_features["title"].values[42].tolist() == [1, 1] + [0] * 6, "unknown words are OOV"
    assert bigger.item_titles[-3:] == ["amber item 3", "zebra quokka", ""]


def test_retrieve_returns_catalog_items_only_with_exact_scores(served, trained, tiny_space):
    users = list(tiny_space.user_vocab.ids[:4])
    history = [["n-amber", "i1", ""], ["i2", "", ""], ["", "", ""], ["zzz", "n-empty", "i0"]]
    for name in ("exact", "fast"):
        out = call(served[name], "retrieve", user_id=users, history=history)
        user_vectors = call(served[name], "user_embedding", user_id=users, history=history)["embedding"]
        for row, ids in enumerate(out["item_ids"].astype(str)):
            assert set(ids) <= set(served["catalog"]) and len(set(ids)) == K
            assert not set(ids) & set(history[row]), "history items are never returned"
            item_vectors = call(served[name], "item_embedding", item_id=list(ids))["embedding"]
            np.testing.assert_allclose(out["scores"][row], item_vectors @ user_vectors[row], atol=1e-5)
            everything = call(served[name], "item_embedding", item_id=served["catalog"])["embedding"]
            eligible = [i for i, item in enumerate(served["catalog"]) if item not in history[row]]
            best = np.sort(everything[eligible] @ user_vectors[row])[::-1][:K]
            np.testing.assert_allclose(out["scores"][row], best, atol=1e-5)


def test_new_items_in_histories_and_candidates_are_understood(served, tiny_space):
    user = list(tiny_space.user_vocab.ids[:1])
    with_new = call(served["exact"], "user_embedding", user_id=user, history=[["n-amber", ""]])["embedding"]
    with_unknown = call(served["exact"], "user_embedding", user_id=user, history=[["never-seen", ""]])["embedding"]
    assert np.abs(with_new - with_unknown).max() > 1e-4, "a new item's content reaches the user tower"
    candidates = [["n-amber", "n-unknown-words", "i5"]]
    scores = call(served["exact"], "score", user_id=user, history=[["i1"]], candidates=candidates)["scores"]
    user_vector = call(served["exact"], "user_embedding", user_id=user, history=[["i1"]])["embedding"][0]
    items = call(served["exact"], "item_embedding", item_id=candidates[0])["embedding"]
    np.testing.assert_allclose(scores[0], items @ user_vector, atol=1e-5)


@pytest.mark.parametrize("name", ["two_tower", "popularity"])
def test_models_without_content_reject_new_ids_by_name(name, tiny_space, tiny_examples, tmp_path):
    model = create_model(name, space=tiny_space)
    model.prepare(tiny_examples["train"])
    if not model.built:
        model.build()
    with pytest.raises(ValueError, match=r"2 item id\(s\) are unknown.*no content features.*'brand-new', 'x9'"):
        export_model(model, tiny_space, tmp_path, name, catalog=["i1", "brand-new", "x9"])
    assert not (tmp_path / name).exists(), "nothing is written when the catalog is rejected"
    catalog = prepare_catalog(model, tiny_space, ["i3", "i1"])
    assert catalog.model is model and catalog.item_ids == ["i3", "i1"] and catalog.new_item_ids == []


def test_catalog_errors_name_the_problem(trained, tiny_space, tmp_path):
    with pytest.raises(ValueError, match=r"no column \['genres'\].*'n-amber'"):
        prepare_catalog(trained, tiny_space, NEW_ITEMS.drop(columns=["genres"]))
    with pytest.raises(ValueError, match="'i1' appears twice"):
        prepare_catalog(trained, tiny_space, ["i1", "i2", "i1"])
    with pytest.raises(ValueError, match="no items"):
        prepare_catalog(trained, tiny_space, [])
    bad = tmp_path / "items.csv"
    bad.write_text("item_id,title,genres\nn1,a,g1\nn2,b,g2\nn1,c,g3\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"items.csv, line 4, field 'item_id': duplicate item id 'n1'"):
        export_model(trained, tiny_space, tmp_path, "bad", catalog=bad)


def test_numeric_features_of_new_items_are_standardised_like_training(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "interactions.csv").write_text("user_id,item_id\nu1,a\nu1,b\nu2,c\n", encoding="utf-8")
    (folder / "items.csv").write_text("item_id,length\na,90\nb,120\nc,150\n", encoding="utf-8")
    space = FeatureSpace.build(load_dataset("folder", str(folder)))
    raw = np.array([90.0, 120.0, 150.0])
    (tmp_path / "catalog.csv").write_text("item_id,length\na,90\nc,150\nnew,200\nblank,\n", encoding="utf-8")
    items = read_item_table(tmp_path / "catalog.csv", space.schema)
    bigger = extend_item_space(space, items)
    assert bigger.item_features["length"].values[4:, 0] == pytest.approx([(200 - raw.mean()) / raw.std(), 0.0])
    with pytest.raises(ValueError, match="at least two known items with different 'length' values"):
        extend_item_space(space, items.loc[["a", "new"]])


def test_mmrec_export_items_csv(tmp_path, capsys):
    data = prepare_data(load_dataset("synthetic", num_users=30, num_items=20, num_clusters=2), max_history=4)
    result = run("lstm_two_tower", data, training={"epochs": 1, "batch_size": 64}, verbose=0,
                 embedding_dim=8, lstm_units=8, max_history=4)
    run_dir = save_run(result, tmp_path / "run", {"dataset": "synthetic", "path": None})
    items = tmp_path / "items.csv"
    items.write_text("item_id,title,genres\ni1,basalt item 1,g1\nfresh,amber item,g0|g1\n", encoding="utf-8")
    saved_models = tmp_path / "saved_models"
    arguments = ["export", str(run_dir), "--saved-models", str(saved_models), "--items", str(items), "--k", "5"]
    assert mmrec(arguments + ["--index", "bfloat16"]) == 0
    loaded = tf.saved_model.load(str(saved_models / "lstm_two_tower" / "1"))
    ids = call(loaded, "retrieve", user_id=["u0"], history=[[""]])["item_ids"].astype(str)
    assert ids.shape == (1, 2) and sorted(ids[0]) == ["fresh", "i1"], "k is clipped to the 2-item catalog"

    items.write_text("item_id,title\nfresh,amber item\n", encoding="utf-8")
    assert mmrec(arguments) == 2
    assert "no column ['genres']" in capsys.readouterr().err
    assert sorted(p.name for p in (saved_models / "lstm_two_tower").iterdir()) == ["1"]


def test_a_ranking_model_scores_new_candidates_from_their_content(tiny_space, tmp_path):
    model = create_model("din", space=tiny_space, embedding_dim=4, hidden_units=[8], attention_units=[4],
                         max_history=TINY_MAX_HISTORY)
    model.build()
    version_dir = export_model(model, tiny_space, tmp_path, "din", catalog=pd.concat(
        [pd.DataFrame(index=["i1", "i2"]), NEW_ITEMS]))
    loaded = tf.saved_model.load(str(version_dir))
    assert "retrieve" not in loaded.signatures
    scores = call(loaded, "score", user_id=["u1"], history=[["i1", "n-amber"]],
                  candidates=[["n-amber", "n-unknown-words", "never-seen", "i2"]])["scores"][0]
    assert np.isfinite(scores).all() and abs(scores[0] - scores[2]) > 1e-6, "content, not an unknown id"
