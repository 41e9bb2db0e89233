"""Image file decoding for tf.data pipelines and item feature building.

`decode_image` turns a JPEG/PNG file (a path or its bytes) into a float32
[size, size, 3] RGB tensor, ready for an image encoder. It is made of TensorFlow
ops, so it runs eagerly and inside `tf.data.Dataset.map`. A file that cannot be
decoded raises an error that names the file (not TensorFlow's bare "Invalid
JPEG data"): the decoding step runs through `tf.py_function` so the failure can
be caught and re-raised with the path. Decoding through `tf.py_function` cannot
be exported in a SavedModel; this function is meant for input pipelines and
offline feature extraction, not for serving graphs.
"""

from __future__ import annotations

import os
import re

import numpy as np
import tensorflow as tf

NORMALIZATIONS = ("raw", "unit", "efficientnet_lite", "imagenet")
_IMAGENET_MEAN = (0.485 * 255.0, 0.456 * 255.0, 0.406 * 255.0)
_IMAGENET_STDDEV = (0.229 * 255.0, 0.224 * 255.0, 0.225 * 255.0)


class ImageDecodeError(ValueError):
    """An image file could not be decoded as JPEG or PNG."""


def _decode_eager(contents: tf.Tensor, name: tf.Tensor) -> tf.Tensor:
    label = name.numpy().decode("utf-8", "replace")
    data = contents.numpy()
    if not (data.startswith(b"\xff\xd8\xff") or data.startswith(b"\x89PNG\r\n\x1a\n")):
        raise ImageDecodeError(
            f"cannot decode image {label}: expected a JPEG or PNG file, got "
            f"{len(data)} bytes starting with {data[:8]!r}"
        )
    try:
        return tf.io.decode_image(contents, channels=3, dtype=tf.uint8, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as error:
        reason = re.sub(r"\{\{[^}]*\}\}\s*", "", error.message)
        raise ImageDecodeError(f"cannot decode image {label}: {reason}") from None


def _resize(image: tf.Tensor, size: tuple[int, int], crop_to_aspect_ratio: bool) -> tf.Tensor:
    height, width = size
    if crop_to_aspect_ratio:
        shape = tf.shape(image)
        in_h, in_w = shape[0], shape[1]
        # Largest centred window with the target aspect ratio.
        crop_h = tf.minimum(in_h, tf.cast(tf.round(tf.cast(in_w * height, tf.float32) / width),
                                          tf.int32))
        crop_w = tf.minimum(in_w, tf.cast(tf.round(tf.cast(in_h * width, tf.float32) / height),
                                          tf.int32))
        crop_h = tf.maximum(crop_h, 1)
        crop_w = tf.maximum(crop_w, 1)
        image = tf.image.crop_to_bounding_box(
            image, (in_h - crop_h) // 2, (in_w - crop_w) // 2, crop_h, crop_w
        )
    image = tf.image.resize(tf.cast(image, tf.float32), (height, width), method="bilinear",
                            antialias=True)
    return tf.clip_by_value(image, 0.0, 255.0)


def _normalize(image: tf.Tensor, normalization: str) -> tf.Tensor:
    if normalization == "raw":
        return image
    if normalization == "unit":
        return image / 255.0
    if normalization == "efficientnet_lite":
        return (image - 127.0) / 128.0
    return (image - tf.constant(_IMAGENET_MEAN)) / tf.constant(_IMAGENET_STDDEV)


def decode_image(path_or_bytes, size: int | tuple[int, int], *, normalization: str = "unit",
                 crop_to_aspect_ratio: bool = False, source: str = "auto") -> tf.Tensor:
    """Decodes a JPEG/PNG image, resizes it and normalises its pixels.

    Args:
        path_or_bytes: a file path (`str`, `os.PathLike`, or a scalar string
            tensor, e.g. inside `Dataset.map`) or the file's bytes (`bytes`, or a
            scalar string tensor with `source="bytes"`).
        size: output size, `int` for square or `(height, width)`.
        normalization: `"raw"` -> float pixels in [0, 255] (what
            `EfficientNetLite0ImageEncoder(include_preprocessing=True)` takes);
            `"unit"` -> [0, 1]; `"efficientnet_lite"` -> `(pixel - 127) / 128`;
            `"imagenet"` -> per-channel ImageNet mean/std of [0, 255] pixels.
        crop_to_aspect_ratio: centre-crop the largest window with the target
            aspect ratio before resizing (no distortion); otherwise the image is
            stretched.
        source: `"auto"` (Python `bytes` are contents, anything else a path),
            `"path"` or `"bytes"`.

    Returns:
        float32 tensor [height, width, 3], RGB (grey images are expanded, alpha
        dropped). Resizing is bilinear with antialiasing.

    Raises:
        ImageDecodeError (eagerly) or a `tf.errors` error whose message contains
        "cannot decode image <path>" (inside tf.data) when the file is not a
        decodable JPEG/PNG; a missing file raises TensorFlow's `NotFoundError`,
        which names the path.

    Example:
    ```python
    paths = tf.data.Dataset.from_tensor_slices(["1.jpg", "2.jpg"])
    images = paths.map(lambda p: decode_image(p, 224, normalization="raw")).batch(32)
    ```
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(
            f"decode_image: normalization must be one of {NORMALIZATIONS}, got {normalization!r}"
        )
    if source not in ("auto", "path", "bytes"):
        raise ValueError(f"decode_image: source must be 'auto', 'path' or 'bytes', got {source!r}")
    height, width = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if int(height) <= 0 or int(width) <= 0:
        raise ValueError(f"decode_image: size must be positive, got {size!r}")
    is_bytes = source == "bytes" or (source == "auto" and isinstance(path_or_bytes, bytes))
    if is_bytes:
        contents = tf.convert_to_tensor(path_or_bytes, dtype=tf.string)
        name = tf.constant("<image bytes>")
    else:
        if isinstance(path_or_bytes, os.PathLike):
            path_or_bytes = os.fspath(path_or_bytes)
        name = tf.convert_to_tensor(path_or_bytes, dtype=tf.string)
        contents = tf.io.read_file(name)
    if tf.executing_eagerly():
        image = _decode_eager(contents, name)
    else:
        image = tf.py_function(_decode_eager, [contents, name], Tout=tf.uint8)
    image.set_shape([None, None, 3])
    image = _resize(image, (int(height), int(width)), crop_to_aspect_ratio)
    return _normalize(image, normalization)
