"""Model-ready examples as sharded TFRecord files, for data larger than memory.

``write_tfrecord_examples`` turns a split dataset into a folder::

    spec.json                          format, features (dtype, shape), splits (count, shards)
    feature_space/                     vocabularies and item tables (FeatureSpace.save)
    train-00000-of-00004.tfrecord ...  tf.train.Example records, one per example
    train.item_id.npy ...              the same examples column by column (memory-mapped)

Each record holds ``user_id``, ``item_id`` (vocabulary indices), ``history``
(``max_history`` item indices, oldest first, 0-padded at the end) and the
extras (``rating``, ``timestamp``, ``label`` when the source has them) — the
fields of :class:`~mmrec_tf.data.pipeline.Examples`. Examples are built a
group of users at a time, so the histories of the whole dataset are never
in memory at once, and dealt to the shards in a seeded random order, so every
shard is a sample of all users. The ``.npy`` columns serve models'
``prepare`` (one pass of counting over ids and labels) through memory maps.
The folder appears complete or not at all (written aside, then renamed).

:class:`ShardedExamples` reads one split back: shard files interleaved in
parallel, records shuffled through a buffer, parsed a batch at a time with
``tf.io.parse_example``; batches have the dtypes and names of
:func:`~mmrec_tf.data.pipeline.make_tf_dataset`, so
:func:`~mmrec_tf.training.train_model` trains from them unchanged.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import tempfile

import numpy as np
import tensorflow as tf

from mmrec_tf.data.feature_space import FeatureSpace
from mmrec_tf.data.pipeline import Examples, steps_per_epoch
from mmrec_tf.data.preprocessor import Preprocessor
from mmrec_tf.data.splits import SPLITS, Split

SPEC_FILE = "spec.json"
SPACE_FOLDER = "feature_space"
FORMAT = "mmrec_tf.tfrecord_examples/1"
ID_FEATURES = ("user_id", "item_id")
DEFAULT_CHUNK_ROWS = 500_000


class TFRecordSpecError(ValueError):
    """A TFRecord example folder is missing, incomplete, or not in the expected format."""


def _shard_name(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}.tfrecord"


def _feature_specs(examples: Examples) -> dict[str, dict]:
    specs = {"user_id": {"dtype": "int32", "shape": []}, "item_id": {"dtype": "int32", "shape": []},
             "history": {"dtype": "int32", "shape": [int(examples.history.shape[1])]}}
    for name, values in examples.extras.items():
        dtype = np.dtype(values.dtype)
        specs[name] = {"dtype": "float32" if dtype.kind == "f" else "int64", "shape": []}
    return specs


def _user_chunks(log, rows_per_chunk: int) -> list[tuple[int, int]]:
    """Row ranges of ``log`` (sorted by user) that never cut a user's rows apart."""
    users = log["user_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    ends = np.r_[starts[1:], len(users)]
    chunks, begin = [], 0
    for end in ends:
        if end - begin >= rows_per_chunk:
            chunks.append((begin, int(end)))
            begin = int(end)
    if begin < len(users):
        chunks.append((begin, len(users)))
    return chunks


def _serialize(examples: Examples, row: int, specs: dict[str, dict]) -> bytes:
    features = {}
    for name, values in examples.features().items():
        value = values[row]
        if specs[name]["dtype"] == "float32":
            features[name] = tf.train.Feature(float_list=tf.train.FloatList(value=np.atleast_1d(value).tolist()))
        else:
            features[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=np.atleast_1d(value).tolist()))
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def write_tfrecord_examples(split: Split, preprocessor: Preprocessor, folder: str | os.PathLike,
                            num_shards: int = 8, seed: int = 0, source: dict | None = None,
                            rows_per_chunk: int = DEFAULT_CHUNK_ROWS) -> pathlib.Path:
    """Write the train / valid / test retrieval examples of ``split`` as TFRecord shards under ``folder``; return it.

    ``preprocessor`` (unlabelled) makes them, exactly as it makes them in
    memory (built ``rows_per_chunk`` interactions' worth of users at a time);
    its space is saved beside the shards. ``seed`` deals the examples to the shards.
    ``source`` (e.g. ``{"dataset": "movielens-100k", "path": ...}``) is
    recorded in ``spec.json``. Raises FileExistsError if ``folder`` exists.

    Example:
    >>> import tempfile, pathlib
    >>> from mmrec_tf.data.sources import make_synthetic
    >>> from mmrec_tf.data.splits import leave_last_out
    >>> ds = make_synthetic(num_users=6, num_items=8, num_clusters=2, interactions_per_user=5)
    >>> out = write_tfrecord_examples(leave_last_out(ds), Preprocessor(FeatureSpace.build(ds), max_history=3),
    ...                               pathlib.Path(tempfile.mkdtemp()) / "shards", num_shards=2)
    >>> sorted(p.name for p in out.glob("train-*"))
    ['train-00000-of-00002.tfrecord', 'train-00001-of-00002.tfrecord']
    """
    folder = pathlib.Path(folder)
    if num_shards < 1:
        raise ValueError(f"num_shards must be at least 1, got {num_shards}")
    if rows_per_chunk < 1:
        raise ValueError(f"rows_per_chunk must be at least 1, got {rows_per_chunk}")
    if preprocessor.labelled:
        raise ValueError(f"TFRecord shards hold retrieval examples; this preprocessor labels them "
                         f"({preprocessor.label.text!r})")
    if folder.exists():
        raise FileExistsError(f"{folder} already exists; choose a new --out folder or delete it")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{folder.name}.partial-", dir=folder.parent))
    try:
        spec = _write_shards(split, preprocessor, staging, num_shards, seed, rows_per_chunk)
        spec["source"] = source or {}
        preprocessor.space.save(staging / SPACE_FOLDER)
        (staging / SPEC_FILE).write_text(json.dumps(spec, indent=2), encoding="utf-8")
        staging.rename(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def _write_shards(split: Split, preprocessor: Preprocessor, staging: pathlib.Path, num_shards: int, seed: int,
                  rows_per_chunk: int) -> dict:
    log = split.log
    counts = {name: int((log["split"] == name).sum()) for name in SPLITS}
    writers = {name: [tf.io.TFRecordWriter(str(staging / _shard_name(name, i, num_shards)))
                      for i in range(num_shards)] for name in SPLITS}
    columns, filled, specs = {name: {} for name in SPLITS}, dict.fromkeys(SPLITS, 0), None
    dealt = dict.fromkeys(SPLITS, 0)
    rng = np.random.default_rng(seed)
    try:
        for begin, end in _user_chunks(log, rows_per_chunk):
            chunk = preprocessor.examples(Split(log.iloc[begin:end], split.method))
            if specs is None:
                specs = _feature_specs(chunk["train"])
            for name, examples in chunk.items():
                if not len(examples):
                    continue
                for feature, values in examples.features().items():
                    if feature not in columns[name]:
                        columns[name][feature] = np.lib.format.open_memmap(
                            staging / f"{name}.{feature}.npy", mode="w+", dtype=np.dtype(specs[feature]["dtype"]),
                            shape=(counts[name], *specs[feature]["shape"]))
                    columns[name][feature][filled[name]:filled[name] + len(examples)] = values
                filled[name] += len(examples)
                for row in rng.permutation(len(examples)):
                    writers[name][dealt[name] % num_shards].write(_serialize(examples, int(row), specs))
                    dealt[name] += 1
    finally:
        for shard_writers in writers.values():
            for writer in shard_writers:
                writer.close()
        for split_columns in columns.values():
            for column in split_columns.values():
                column.flush()
    if specs is None:
        raise ValueError("the split has no interactions; nothing to write")
    return {
        "format": FORMAT,
        "max_history": preprocessor.max_history,
        "features": specs,
        "splits": {name: {"count": counts[name],
                          "shards": [_shard_name(name, i, num_shards) for i in range(num_shards)],
                          "columns": {feature: f"{name}.{feature}.npy" for feature in columns[name]}}
                   for name in SPLITS},
        "split_method": split.method,
        "feature_space": SPACE_FOLDER,
    }


def read_tfrecord_spec(folder: str | os.PathLike) -> dict:
    """The ``spec.json`` of a TFRecord example folder, checked (format, splits, files present).

    Example:
    >>> try:
    ...     read_tfrecord_spec("/nonexistent")
    ... except TFRecordSpecError as error:
    ...     print(error)
    /nonexistent/spec.json: not a TFRecord example folder (no spec.json); write one with `mmrec convert-data`
    """
    folder = pathlib.Path(folder)
    path = folder / SPEC_FILE
    if not path.is_file():
        raise TFRecordSpecError(f"{path}: not a TFRecord example folder (no {SPEC_FILE}); write one with "
                                "`mmrec convert-data`")
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise TFRecordSpecError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise TFRecordSpecError(f"{path}: field 'format' must be {FORMAT!r}, got "
                                f"{spec.get('format') if isinstance(spec, dict) else spec!r}")
    for field in ("features", "splits", "max_history"):
        if field not in spec:
            raise TFRecordSpecError(f"{path}: field {field!r} is missing")
    for name, info in spec["splits"].items():
        missing = [f for f in [*info["shards"], *info["columns"].values()] if not (folder / f).is_file()]
        if missing:
            raise TFRecordSpecError(f"{path}: split {name!r} lists files that do not exist: {missing[:3]}")
    return spec


class ShardedExamples:
    """One split of a TFRecord example folder (see :func:`write_tfrecord_examples`), read from disk.

    Has ``len()`` like :class:`~mmrec_tf.data.pipeline.Examples`; pass it to
    :func:`~mmrec_tf.training.train_model` in place of in-memory examples.
    :meth:`make_dataset` streams its batches, :meth:`prepare_view` gives
    models' ``prepare`` the columns as memory-mapped arrays, and
    :meth:`feature_space` the vocabularies the indices refer to.

    Example:
    >>> import tempfile, pathlib
    >>> from mmrec_tf.data.sources import make_synthetic
    >>> from mmrec_tf.data.splits import leave_last_out
    >>> ds = make_synthetic(num_users=6, num_items=8, num_clusters=2, interactions_per_user=5)
    >>> out = write_tfrecord_examples(leave_last_out(ds), Preprocessor(FeatureSpace.build(ds), max_history=3),
    ...                               pathlib.Path(tempfile.mkdtemp()) / "shards", num_shards=2)
    >>> train = ShardedExamples(out, "train")
    >>> len(train), [b["history"].shape[0] for b in train.make_dataset(8, shuffle=False)]
    (18, [8, 8, 2])
    """

    def __init__(self, folder: str | os.PathLike, split: str = "train"):
        self.folder = pathlib.Path(folder)
        self.spec = read_tfrecord_spec(self.folder)
        if split not in self.spec["splits"]:
            raise TFRecordSpecError(f"{self.folder / SPEC_FILE}: no split {split!r}; it has "
                                    f"{sorted(self.spec['splits'])}")
        self.split = split
        self.info = self.spec["splits"][split]
        self.max_history = int(self.spec["max_history"])

    def __len__(self) -> int:
        return int(self.info["count"])

    @property
    def shard_paths(self) -> list[str]:
        return [str(self.folder / name) for name in self.info["shards"]]

    def feature_space(self) -> FeatureSpace:
        """The feature space the examples' indices refer to (saved beside the shards)."""
        return FeatureSpace.load(self.folder / self.spec["feature_space"])

    def prepare_view(self) -> Examples:
        """The split as :class:`Examples` over memory-mapped ``.npy`` columns (read on demand, not loaded)."""
        columns = {feature: np.load(self.folder / name, mmap_mode="r")
                   for feature, name in self.info["columns"].items()}
        if not columns:
            columns = {name: np.zeros((0, *spec["shape"]), spec["dtype"])
                       for name, spec in self.spec["features"].items()}
        extras = {name: values for name, values in columns.items() if name not in (*ID_FEATURES, "history")}
        return Examples(columns["user_id"], columns["item_id"], columns["history"], extras)

    def _parse(self, serialized, item_probability):
        description = {}
        for name, spec in self.spec["features"].items():
            dtype = tf.float32 if spec["dtype"] == "float32" else tf.int64
            description[name] = tf.io.FixedLenFeature(spec["shape"], dtype)
        parsed = tf.io.parse_example(serialized, description)
        batch = {name: tf.cast(value, self.spec["features"][name]["dtype"]) for name, value in parsed.items()}
        if item_probability is not None:
            batch["item_probability"] = tf.gather(item_probability, batch["item_id"])
        return batch

    def make_dataset(self, batch_size: int, shuffle: bool = True, seed: int = 0, epochs: int | None = None,
                     first_epoch: int = 0, item_probability: np.ndarray | None = None, drop_remainder: bool = False,
                     shuffle_buffer: int | None = None, cycle_length: int = 4,
                     epoch: tf.Variable | None = None) -> tf.data.Dataset:
        """Batches of feature dicts read from the shards, like :func:`~mmrec_tf.data.pipeline.make_tf_dataset`.

        Shards are read ``cycle_length`` at a time, interleaved in parallel
        (deterministic order); with ``shuffle`` each epoch reads the shards in
        a seeded order and permutes the records within consecutive blocks of
        ``shuffle_buffer`` (default: 16 batches, at least 10,000, at most the
        split's size) by a stateless shuffle. Epoch ``e``'s order depends only
        on ``(seed, e)`` — not on the global TF seed — so a run resumed at
        epoch ``e`` sees the batches an uninterrupted one would. It is not a
        full permutation of the split, but the writer already dealt the
        examples to the shards in random order.
        ``epochs`` / ``first_epoch`` / ``epoch`` / ``item_probability`` /
        ``drop_remainder`` as in ``make_tf_dataset``.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        files = tf.constant(self.shard_paths)
        buffer = shuffle_buffer or min(max(16 * batch_size, 10_000), max(len(self), 1))
        probability = None if item_probability is None else tf.constant(np.asarray(item_probability, np.float32))
        cycle = max(1, min(cycle_length, len(self.shard_paths)))

        def epoch_records(epoch):
            epoch = tf.cast(epoch, tf.int64)
            order = files
            if shuffle:
                noise = tf.random.stateless_uniform([tf.size(files)], seed=tf.stack([tf.cast(seed, tf.int64), epoch]))
                order = tf.gather(files, tf.argsort(noise, stable=True))
            records = tf.data.Dataset.from_tensor_slices(order).interleave(
                tf.data.TFRecordDataset, cycle_length=cycle, block_length=1,
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            if shuffle:
                records = records.batch(buffer).enumerate().map(
                    lambda block, window: tf.random.experimental.stateless_shuffle(
                        window, seed=tf.stack([tf.cast(seed, tf.int64) * 1_000_003 + epoch, block])),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).unbatch()
            return records.batch(batch_size, drop_remainder=drop_remainder)

        if epochs is not None and epoch is not None:
            raise ValueError("make_dataset: pass epochs (a stream of epochs) or epoch (one epoch), not both")
        if epoch is not None:
            batches = tf.data.Dataset.from_tensors(0).flat_map(lambda _: epoch_records(epoch.read_value()))
        elif epochs is None:
            batches = epoch_records(tf.constant(first_epoch, tf.int64))
        else:
            batches = tf.data.Dataset.range(first_epoch, epochs).flat_map(epoch_records)
        per_epoch = steps_per_epoch(len(self), batch_size, drop_remainder)
        count = per_epoch if epochs is None else per_epoch * max(epochs - first_epoch, 0)
        batches = batches.apply(tf.data.experimental.assert_cardinality(count))
        return batches.map(lambda serialized: self._parse(serialized, probability),
                           num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)


def make_tfrecord_dataset(folder: str | os.PathLike, batch_size: int, split: str = "train",
                          **options) -> tf.data.Dataset:
    """Batches of one split of a TFRecord example folder; ``options`` as in :meth:`ShardedExamples.make_dataset`.

    Example:
    >>> import tempfile, pathlib
    >>> from mmrec_tf.data.sources import make_synthetic
    >>> from mmrec_tf.data.splits import leave_last_out
    >>> ds = make_synthetic(num_users=6, num_items=8, num_clusters=2, interactions_per_user=5)
    >>> out = write_tfrecord_examples(leave_last_out(ds), Preprocessor(FeatureSpace.build(ds), max_history=3),
    ...                               pathlib.Path(tempfile.mkdtemp()) / "shards", num_shards=3)
    >>> batch = next(iter(make_tfrecord_dataset(out, 4, split="test", shuffle=False)))
    >>> sorted(batch), batch["history"].dtype.name
    (['history', 'item_id', 'rating', 'timestamp', 'user_id'], 'int32')
    """
    return ShardedExamples(folder, split).make_dataset(batch_size, **options)
