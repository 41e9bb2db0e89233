"""Multimodal datasets (movielens-100k-mm, lastfm-2k-mm), vector feature tables with presence masks,
the ItemFeatureEncoder's use of presence, and LSTMTwoTower on vector features."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from multimodal_layouts import (
    LFM_NAMES,
    LFM_TAGS,
    ML_PLOTS,
    lfm_vectors,
    write_lfm2k_mm,
    write_movielens_mm,
)

from conftest import shared_data_dir
from mmrec_tf.data.feature_space import FeatureSpace
from mmrec_tf.data.item_feature_builders import build_image_features, load_item_image, make_image_encoder
from mmrec_tf.data.item_feature_table import ItemFeatureTable
from mmrec_tf.data.pipeline import build_examples
from mmrec_tf.data.schema import FeatureKind
from mmrec_tf.data.sources import load_dataset
from mmrec_tf.data.splits import leave_last_out, predefined_split
from mmrec_tf.encoders.image_decoding import ImageDecodeError
from mmrec_tf.errors import DataError
from mmrec_tf.layers.item_feature_encoder import ItemFeatureEncoder
from mmrec_tf.models.lstm_two_tower import LSTMTwoTower
from mmrec_tf.registry import create_model


@pytest.fixture
def movielens_root(tmp_path):
    return write_movielens_mm(tmp_path / "data")


@pytest.fixture
def lfm_folder(tmp_path):
    return write_lfm2k_mm(tmp_path / "lfm2k-mm")


def _table(ids, rows, present, modality="image", encoder="toy"):
    return ItemFeatureTable(ids, np.asarray(rows, np.float32), np.asarray(present, bool), modality=modality,
                            encoder=encoder, encoder_version="1")


def _features_folder(folder):
    folder.mkdir(parents=True, exist_ok=True)
    # Item 4 has a poster row but it is marked missing; "99" is not an ml-100k item.
    _table(["1", "2", "4", "99"], [[1, 0, 0], [0, 2, 0], [0, 0, 0], [5, 5, 5]], [True, True, False, True]).save(
        folder / "poster.npz")
    _table(["3", "1"], [[0.6, 0.8], [1, 0]], [True, True], modality="text", encoder="minilm").save(
        folder / "plot.npz")
    return folder


# === movielens-100k-mm ===


def test_movielens_mm_reads_plots_and_posters(movielens_root):
    ds = load_dataset("movielens-100k-mm", movielens_root, item_features={})
    assert ds.name == "movielens-100k-mm" and ds.num_interactions == 10 and ds.item_vectors == {}
    assert ds.items["description"].to_dict() == {"1": ML_PLOTS["1"], "2": None, "3": ML_PLOTS["3"], "4": None}
    posters = ds.items["poster_file"].to_dict()
    assert posters["3"] is None
    assert {k: v.rsplit("/", 1)[-1] for k, v in posters.items() if v} == {"1": "1.jpg", "2": "2.jpg", "4": "4.jpg"}
    assert ds.schema["description"].kind == FeatureKind.TEXT and ds.schema["poster_file"].kind == FeatureKind.IMAGE
    assert ds.items.loc["1", "genres"] == ("Animation", "Children's", "Comedy")
    space = FeatureSpace.build(ds)
    assert sorted(space.item_features) == ["description", "genres", "title", "year"]  # image paths are no table


def test_movielens_mm_plot_rows_are_checked(movielens_root):
    plots = movielens_root / "ml-100k-plots" / "movielens100k_details.csv"
    plots.write_text(plots.read_text() + '"[1]",99,"Nope (1999)","A film that is not in ML-100K.",[]\n')
    with pytest.raises(DataError) as error:
        load_dataset("movielens-100k-mm", movielens_root, item_features={})
    assert "movielens100k_details.csv" in str(error.value) and error.value.line == 4
    assert "'99' is not an ml-100k item id" in str(error.value)
    skipped = load_dataset("movielens-100k-mm", movielens_root, item_features={}, skip_bad_rows=True)
    assert skipped.items["description"].notna().sum() == 2
    with pytest.raises(DataError, match="needs the folder"):
        load_dataset("movielens-100k-mm", None)
    with pytest.raises(DataError, match="ml-100k/"):
        load_dataset("movielens-100k-mm", movielens_root / "ml-100k-posters")


def test_poster_features_record_missing_and_corrupt_images(movielens_root, tmp_path):
    ids = ["1", "2", "3", "4"]
    posters = movielens_root / "ml-100k-posters"
    with pytest.raises(ImageDecodeError, match="4.jpg"):
        build_image_features(ids, posters, tmp_path / "poster.npz", encoder="small_cnn", batch_size=2, progress=False)
    result = build_image_features(ids, posters, tmp_path / "poster.npz", encoder="small_cnn", batch_size=2,
                                  skip_bad_files=True, progress=False)
    table = result.table
    assert table.item_ids.tolist() == ids and table.present.tolist() == [True, True, False, False]
    assert [p.rsplit("/", 1)[-1] for p in result.bad_files] == ["4.jpg"]
    assert not table.vectors[2:].any()
    encode, normalization, _, _ = make_image_encoder("small_cnn", seed=0)
    expected = encode(np.stack([np.asarray(load_item_image(posters / f"{i}.jpg", 224, normalization))
                                for i in ("1", "2")]))
    np.testing.assert_allclose(table.vectors[:2], expected, rtol=1e-5, atol=1e-5)
    assert not np.allclose(table.vectors[0], table.vectors[1])  # a red and a blue poster


def test_movielens_mm_attaches_vector_tables(movielens_root, tmp_path, monkeypatch):
    features = _features_folder(tmp_path / "features" / "movielens-100k")
    ds = load_dataset("movielens-100k-mm", movielens_root, item_features=features)
    assert sorted(ds.item_vectors) == ["plot", "poster"]
    assert ds.schema["poster"].kind == FeatureKind.VECTOR and ds.schema["poster"].role.value == "item"
    monkeypatch.setenv("MMREC_FEATURES_DIR", str(tmp_path / "features"))
    found = load_dataset("movielens-100k-mm", movielens_root)  # the default folder: $MMREC_FEATURES_DIR/<name>
    assert sorted(found.item_vectors) == ["plot", "poster"]
    np.testing.assert_array_equal(found.item_vectors["poster"].vectors, ds.item_vectors["poster"].vectors)

    space = FeatureSpace.build(ds)
    order = [space.item_vocab.id_of(i) for i in range(space.num_items + 1)]
    assert order == ["", "1", "2", "3", "4"]
    poster, plot = space.item_features["poster"], space.item_features["plot"]
    np.testing.assert_array_equal(poster.values, [[0, 0, 0], [1, 0, 0], [0, 2, 0], [0, 0, 0], [0, 0, 0]])
    assert poster.present.tolist() == [False, True, True, False, False]
    np.testing.assert_allclose(plot.values, [[0, 0], [1, 0], [0, 0], [0.6, 0.8], [0, 0]])
    assert plot.present.tolist() == [False, True, False, True, False]
    assert poster.spec() == {"kind": "vector", "shape": [3], "cardinality": 3}
    assert plot.provenance == {"modality": "text", "encoder": "minilm", "encoder_version": "1"}

    space.save(tmp_path / "space")
    loaded = FeatureSpace.load(tmp_path / "space")
    for name in ("poster", "plot"):
        np.testing.assert_array_equal(loaded.item_features[name].values, space.item_features[name].values)
        np.testing.assert_array_equal(loaded.item_features[name].present, space.item_features[name].present)
        assert loaded.item_features[name].provenance == space.item_features[name].provenance
    assert loaded.schema["plot"].kind == FeatureKind.VECTOR
    assert loaded.item_feature_specs() == space.item_feature_specs()
    with np.load(tmp_path / "space" / "tables.npz", allow_pickle=False) as arrays:
        assert arrays["item.poster.present"].dtype == np.bool_


def test_vector_tables_that_match_no_item_are_rejected(movielens_root, tmp_path):
    stranger = _table(["x", "y"], [[1.0], [2.0]], [True, True])
    with pytest.raises(DataError, match="none of the 2 item ids of vector table 'poster'"):
        load_dataset("movielens-100k-mm", movielens_root, item_features={"poster": stranger})
    ds = load_dataset("movielens-100k-mm", movielens_root, item_features={})
    space = FeatureSpace.build(ds)
    with pytest.raises(ValueError, match="none of the 4 items has a vector"):
        space.add_item_vectors("poster", stranger)
    with pytest.raises(ValueError, match="already has a feature 'title'"):
        space.add_item_vectors("title", _table(["1"], [[1.0]], [True]))
    with pytest.raises(DataError, match="already exists"):
        ds.with_item_vectors({"genres": _table(["1"], [[1.0]], [True])})
    added = space.add_item_vectors("poster", _table(["2"], [[3.0]], [True]))
    assert added.present.tolist() == [False, False, True, False, False]
    assert space.schema["poster"].kind == FeatureKind.VECTOR


# === lastfm-2k-mm ===


def test_lastfm_mm_dataset_split_texts_and_vectors(lfm_folder):
    ds = load_dataset("lastfm-2k-mm", lfm_folder.parent)  # the folder holding lfm2k-mm/ works too
    assert ds.name == "lastfm-2k-mm" and ds.num_interactions == 9
    assert list(ds.interactions.columns) == ["user_id", "item_id"]
    assert ds.interactions["item_id"].tolist()[:3] == ["0", "1", "2"]
    assert ds.split_labels.tolist() == ["train", "train", "test", "train", "valid", "test", "train", "train",
                                        "valid"]
    split = predefined_split(ds)
    assert (len(split.train), len(split.valid), len(split.test)) == (5, 2, 2)
    assert ds.items["name"].tolist() == [LFM_NAMES[51], LFM_NAMES[52], LFM_NAMES[53]]
    assert ds.items["tags"].tolist() == [LFM_TAGS[51], None, LFM_TAGS[53]]
    assert ds.item_title("2") == "New Order"

    raw = lfm_vectors()
    assert {n: t.dim for n, t in ds.item_vectors.items()} == {"vggish": 4, "whisper": 6, "tags_minilm": 5}
    vggish = ds.item_vectors["vggish"]
    assert vggish.present.tolist() == [True, False, True] and vggish.modality == "audio"
    np.testing.assert_allclose(vggish.vectors[[0, 2]], raw["vggish.npy"][[0, 2]].astype(np.float32))
    assert "sha256:" in vggish.encoder_version
    assert ds.item_vectors["tags_minilm"].modality == "text"

    space = FeatureSpace.build(ds)
    assert [space.item_vocab.id_of(i) for i in range(1, 4)] == ["0", "1", "2"]
    assert space.item_features["vggish"].present.tolist() == [False, True, False, True]
    np.testing.assert_allclose(space.item_features["whisper"].values[1:], raw["whisper.npy"])
    assert space.item_features["whisper"].present.tolist() == [False, True, True, True]
    examples = build_examples(split, space, max_history=3)
    assert len(examples["test"]) == 2


def test_lastfm_mm_errors_name_file_and_line(lfm_folder):
    original = lfm_folder / "lfm2k_og_ids.inter"
    good = original.read_text()
    lines = good.splitlines(keepends=True)
    lines[2] = lines[2].replace("\t0\n", "\t1\n")  # row 2 (file line 3) now disagrees on x_label
    original.write_text("".join(lines))
    with pytest.raises(DataError) as error:
        load_dataset("lastfm-2k-mm", lfm_folder)
    assert error.value.path.endswith("lfm2k_og_ids.inter") and error.value.line == 3
    assert "x_label" in str(error.value)
    skipped = load_dataset("lastfm-2k-mm", lfm_folder, skip_bad_rows=True)
    assert skipped.num_interactions == 8 and len(skipped.split_labels) == 8
    assert skipped.interactions.iloc[1].tolist() == ["0", "2"]  # the bad row left both files

    original.write_text(good)
    inter = lfm_folder / "lfm2k.inter"
    inter.write_text(inter.read_text().replace("2\t2\t1\t0\n", "2\t2\t1\t7\n"))
    with pytest.raises(DataError, match=r"x_label: expected 0 \(train\), 1 \(valid\) or 2 \(test\), got '7'") as error:
        load_dataset("lastfm-2k-mm", lfm_folder)
    assert error.value.path.endswith("lfm2k.inter") and error.value.line == 8


def test_lastfm_mm_vector_file_must_cover_every_item(lfm_folder):
    np.save(lfm_folder / "whisper.npy", np.zeros((2, 6), np.float32))
    with pytest.raises(DataError) as error:
        load_dataset("lastfm-2k-mm", lfm_folder)
    assert error.value.path.endswith("whisper.npy") and "at least 3 rows" in str(error.value)
    with pytest.raises(DataError, match="expected lfm2k.inter"):
        load_dataset("lastfm-2k-mm", lfm_folder / "nowhere")


# === ItemFeatureEncoder and LSTMTwoTower on vector features ===


def test_item_feature_encoder_uses_the_presence_mask():
    specs = {"poster": {"kind": "vector", "shape": [2], "cardinality": 2}}
    encoder = ItemFeatureEncoder(num_items=3, embedding_dim=4, feature_specs=specs, use_id=False)
    values = np.array([[0, 0], [0, 0], [0, 0], [3, 4]], np.float32)  # items 1 and 2: the same zero vector
    present = np.array([False, True, False, True])
    encoder.set_tables({"poster": (values, present)})
    out = keras.ops.convert_to_numpy(encoder(np.array([0, 1, 2, 3])))
    missing = keras.ops.convert_to_numpy(encoder.missing_embeddings["poster"])
    kernel = keras.ops.convert_to_numpy(encoder.feature_layers["poster"].kernel)
    np.testing.assert_allclose(out[0], 0.0)  # padding: nothing
    np.testing.assert_allclose(out[1], 0.0)  # present zero vector: its projection, zero
    np.testing.assert_allclose(out[2], missing, rtol=1e-6)  # absent: the learned "missing" embedding
    assert np.abs(out[1] - out[2]).max() > 1e-3
    unit_rms = np.array([3, 4]) / 5.0 * np.sqrt(2.0)
    np.testing.assert_allclose(out[3], unit_rms @ kernel, rtol=1e-5)
    with pytest.raises(ValueError, match="vector feature: pass its FeatureTable"):
        encoder.set_tables({"poster": values})
    with pytest.raises(ValueError, match="presence mask must be bool"):
        encoder.set_tables({"poster": (values, present[:3])})


def test_lstm_two_tower_trains_on_vector_features(movielens_root, tmp_path):
    features = _features_folder(tmp_path / "features")
    ds = load_dataset("movielens-100k-mm", movielens_root, item_features=features)
    space = FeatureSpace.build(ds)
    names = ["genres", "title", "poster", "plot"]
    model = create_model("lstm_two_tower", space=space, item_features=names, embedding_dim=8, lstm_units=8,
                         max_history=3, logq_correction=False)
    assert isinstance(model, LSTMTwoTower) and list(model.item_feature_specs) == names
    encoder = model.item_encoder
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(encoder.presence["poster"]), [0, 1, 1, 0, 0])
    examples = build_examples(leave_last_out(ds), space, max_history=3)
    before = keras.ops.convert_to_numpy(encoder.missing_embeddings["poster"]).copy()
    features = examples["train"].features()
    optimizer = keras.optimizers.Adam(learning_rate=0.05)
    for _ in range(3):  # a few eager steps: gradients reach the "missing" embedding of absent posters
        with tf.GradientTape() as tape:
            loss = model.compute_loss(features, y_pred=model(features, training=True))
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
    after = keras.ops.convert_to_numpy(encoder.missing_embeddings["poster"])
    assert np.abs(after - before).max() > 1e-4  # absent posters are a trained signal
    items = keras.ops.convert_to_numpy(model.encode_items(np.arange(1, 5)))
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(reloaded.encode_items(np.arange(1, 5))), items,
                               rtol=1e-5, atol=1e-6)


# === Real data (skipped when ../shared/data is absent) ===


@pytest.mark.real_data
def test_real_lastfm_2k_mm():
    if not (shared_data_dir() / "lfm2k-mm" / "lfm2k.inter").is_file():
        pytest.skip(f"{shared_data_dir() / 'lfm2k-mm'} not found (set MMREC_SHARED_DATA)")
    ds = load_dataset("lastfm-2k-mm", shared_data_dir(), item_features={})
    assert ds.num_interactions == 56345
    assert len(set(ds.interactions["user_id"])) == 1858 and len(ds.item_ids()) == 1425
    assert {n: t.dim for n, t in ds.item_vectors.items()} == {"vggish": 128, "whisper": 512, "tags_minilm": 384}
    assert all(t.num_present == 1425 for t in ds.item_vectors.values())
    assert ds.split_labels.value_counts().to_dict() == {"train": 44327, "test": 7219, "valid": 4799}
    assert ds.items["tags"].notna().all() and ds.items["name"].notna().all()


@pytest.mark.real_data
def test_real_movielens_100k_mm():
    if not (shared_data_dir() / "ml-100k-posters").is_dir():
        pytest.skip(f"{shared_data_dir() / 'ml-100k-posters'} not found (set MMREC_SHARED_DATA)")
    ds = load_dataset("movielens-100k-mm", shared_data_dir(), item_features={})
    assert ds.num_interactions == 100000 and len(ds.item_ids()) == 1682
    assert ds.items["poster_file"].notna().sum() == 1646
    assert ds.items["description"].notna().sum() == 1591
