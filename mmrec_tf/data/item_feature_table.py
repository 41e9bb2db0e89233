"""On-disk table of one modality's item vectors, and a resumable builder for it.

Item-side modality features (text, image, audio embeddings) are computed once by
a frozen encoder and looked up by item inside the models. An `ItemFeatureTable`
holds them for a set of item ids, records which items have no vector (no poster,
no text...) as *missing* -- never as a silent zero vector -- and names the
encoder that made them.

File format (`.npz`, readable with `numpy.load(path, allow_pickle=False)`):

| key | dtype / shape | meaning |
|---|---|---|
| `format_version` | int64 scalar | 1 |
| `item_ids` | unicode `<U*` [N] | unique item ids |
| `vectors` | float32 [N, D] | rows of missing items are all zero |
| `present` | bool [N] | False = the item has no vector |
| `modality`, `encoder`, `encoder_version` | unicode scalars | provenance |

Files are written to a temporary name in the target folder and renamed into
place (`os.replace`), so a reader never sees a half-written table.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from mmrec_tf.atomic_file import write_atomically

FORMAT_VERSION = 1
_KEYS = ("format_version", "item_ids", "vectors", "present", "modality", "encoder",
         "encoder_version")


class ItemFeatureTableError(ValueError):
    """An item feature table, its file or its inputs are invalid."""


def _atomic_savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    def savez(temporary: str) -> None:
        with open(temporary, "wb") as file:  # a file object: np.savez would add ".npz" to a name
            np.savez(file, **arrays)

    write_atomically(path, savez)


def _as_id_array(item_ids) -> np.ndarray:
    if isinstance(item_ids, np.ndarray):
        if item_ids.dtype.kind != "U" and item_ids.size:
            raise ItemFeatureTableError(f"item_ids must be strings, got dtype {item_ids.dtype}")
        return item_ids.astype(str)
    item_ids = list(item_ids)
    for row, item_id in enumerate(item_ids):
        if not isinstance(item_id, str):
            raise ItemFeatureTableError(
                f"item_ids row {row} is {item_id!r} ({type(item_id).__name__}); ids must be strings"
            )
    return np.array(item_ids, dtype=str) if item_ids else np.zeros(0, dtype="<U1")


class ItemFeatureTable:
    """One modality's vectors for a set of items, with missing items marked.

    Args:
        item_ids: N unique, non-empty item id strings.
        vectors: float [N, D]; rows of missing items must be all zero.
        present: bool [N]; False marks an item without a vector.
        modality: e.g. "text", "image", "audio".
        encoder: name of the encoder that made the vectors.
        encoder_version: its version (weights / code), free text.

    Example:
    ```python
    table = ItemFeatureTable(["a", "b"], np.array([[1.0, 2.0], [0.0, 0.0]]),
                             present=[True, False], modality="image",
                             encoder="efficientnet_lite0", encoder_version="1")
    table.save("/tmp/posters.npz")
    matrix, mask = ItemFeatureTable.load("/tmp/posters.npz").to_index_matrix(["", "b", "a"])
    # matrix [[0, 0], [0, 0], [1, 2]], mask [False, False, True]
    ```
    """

    def __init__(self, item_ids: Sequence[str], vectors, present, modality: str, encoder: str,
                 encoder_version: str):
        ids = _as_id_array(item_ids)
        if ids.ndim != 1:
            raise ItemFeatureTableError(
                f"item_ids must be a 1-d sequence of strings, got dtype {ids.dtype} shape "
                f"{ids.shape}"
            )
        ids = ids.astype(str)
        vectors = np.asarray(vectors)
        if vectors.ndim != 2 or vectors.shape[0] != ids.shape[0]:
            raise ItemFeatureTableError(
                f"vectors must have shape [{ids.shape[0]}, D] (one row per item id), got "
                f"{vectors.shape}"
            )
        if not np.issubdtype(vectors.dtype, np.number):
            raise ItemFeatureTableError(f"vectors must be numeric, got dtype {vectors.dtype}")
        vectors = vectors.astype(np.float32)
        present = np.asarray(present)
        if present.shape != ids.shape or present.dtype != np.bool_:
            raise ItemFeatureTableError(
                f"present must be a bool array of shape {ids.shape}, got dtype {present.dtype} "
                f"shape {present.shape}"
            )
        empty = np.flatnonzero(ids == "")
        if empty.size:
            raise ItemFeatureTableError(f"item_ids row {empty[0]} is the empty string")
        unique, counts = np.unique(ids, return_counts=True)
        if (counts > 1).any():
            raise ItemFeatureTableError(f"duplicate item id {str(unique[counts > 1][0])!r}")
        bad = ~np.isfinite(vectors).all(axis=1) & present
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ItemFeatureTableError(
                f"vector of item {str(ids[row])!r} (row {row}) has non-finite values"
            )
        nonzero_missing = (vectors != 0).any(axis=1) & ~present
        if nonzero_missing.any():
            row = int(np.flatnonzero(nonzero_missing)[0])
            raise ItemFeatureTableError(
                f"item {str(ids[row])!r} (row {row}) is marked missing but has a non-zero vector"
            )
        for field, value in (("modality", modality), ("encoder", encoder),
                             ("encoder_version", encoder_version)):
            if not isinstance(value, str) or not value:
                raise ItemFeatureTableError(f"{field} must be a non-empty string, got {value!r}")
        self.item_ids = ids
        self.vectors = vectors
        self.present = present
        self.modality = modality
        self.encoder = encoder
        self.encoder_version = encoder_version

    def __len__(self) -> int:
        return int(self.item_ids.shape[0])

    def __repr__(self) -> str:
        return (f"ItemFeatureTable(modality={self.modality!r}, encoder={self.encoder!r}, "
                f"encoder_version={self.encoder_version!r}, items={len(self)}, "
                f"present={self.num_present}, dim={self.dim})")

    @property
    def dim(self) -> int:
        """Vector width D."""
        return int(self.vectors.shape[1])

    @property
    def num_present(self) -> int:
        """Number of items that have a vector."""
        return int(self.present.sum())

    def save(self, path: str | os.PathLike) -> Path:
        """Writes the table as `.npz` (no pickle), atomically; returns the path.

        Example:
        ```python
        table.save("/tmp/text_minilm.npz")
        ```
        """
        path = Path(path)
        _atomic_savez(path, {
            "format_version": np.int64(FORMAT_VERSION),
            "item_ids": self.item_ids,
            "vectors": self.vectors,
            "present": self.present,
            "modality": np.array(self.modality),
            "encoder": np.array(self.encoder),
            "encoder_version": np.array(self.encoder_version),
        })
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ItemFeatureTable":
        """Reads a table written by `save` (`allow_pickle=False`).

        Errors name the file and the missing or malformed field.

        Example:
        ```python
        table = ItemFeatureTable.load("/tmp/text_minilm.npz")
        ```
        """
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = [k for k in _KEYS if k not in data.files]
                if missing:
                    raise ItemFeatureTableError(f"{path}: not an item feature table, missing {missing}")
                arrays = {k: data[k] for k in _KEYS}
        except ItemFeatureTableError:
            raise
        except Exception as error:  # zipfile, numpy format and I/O errors alike
            raise ItemFeatureTableError(
                f"{path}: cannot read item feature table (object arrays are refused): "
                f"{type(error).__name__}: {error}"
            ) from error
        version = int(arrays["format_version"])
        if version != FORMAT_VERSION:
            raise ItemFeatureTableError(
                f"{path}: format_version {version} is not supported (expected {FORMAT_VERSION})"
            )
        for key in ("modality", "encoder", "encoder_version"):
            if arrays[key].shape != () or arrays[key].dtype.kind != "U":
                raise ItemFeatureTableError(f"{path}: field {key} must be a unicode scalar")
        try:
            return cls(arrays["item_ids"], arrays["vectors"], arrays["present"],
                       modality=str(arrays["modality"]), encoder=str(arrays["encoder"]),
                       encoder_version=str(arrays["encoder_version"]))
        except ItemFeatureTableError as error:
            raise ItemFeatureTableError(f"{path}: {error}") from None

    def to_index_matrix(self, vocabulary_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Aligns the vectors to a model's item vocabulary.

        Args:
            vocabulary_ids: V item ids in the model's index order (may include
                padding/OOV entries such as "" that are not in the table).

        Returns:
            `(matrix, mask)`: float32 [V, D] with row i = the vector of
            `vocabulary_ids[i]`, zeros where it has none; bool [V], True where it
            has one (present in the table and not marked missing).

        Example:
        ```python
        matrix, mask = table.to_index_matrix(["", "[UNK]", "item_1", "item_2"])
        ```
        """
        vocabulary = np.asarray(vocabulary_ids)
        if vocabulary.ndim != 1:
            raise ItemFeatureTableError(
                f"vocabulary_ids must be 1-d, got shape {vocabulary.shape}"
            )
        lookup = {item_id: row for row, item_id in enumerate(self.item_ids.tolist())}
        rows = np.array([lookup.get(item_id, -1) for item_id in vocabulary.astype(str).tolist()],
                        dtype=np.int64)
        mask = rows >= 0
        mask[mask] = self.present[rows[mask]]
        matrix = np.zeros((vocabulary.shape[0], self.dim), dtype=np.float32)
        matrix[mask] = self.vectors[rows[mask]]
        return matrix, mask


# === Resumable builder ===


def _ids_digest(item_ids: np.ndarray) -> str:
    digest = hashlib.sha256()
    for item_id in item_ids:
        digest.update(item_id.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def _check_batch_output(result, batch_ids: np.ndarray, batch_index: int
                        ) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(result, tuple):
        if len(result) != 2:
            raise ItemFeatureTableError(
                f"encode_batch_fn returned a tuple of {len(result)} for batch {batch_index}; "
                "expected vectors or (vectors, present)"
            )
        vectors, present = result
        present = np.asarray(present)
    else:
        vectors, present = result, None
    vectors = np.asarray(vectors)
    size = batch_ids.shape[0]
    where = f"batch {batch_index} (items {str(batch_ids[0])!r}..{str(batch_ids[-1])!r})"
    if vectors.ndim != 2 or vectors.shape[0] != size:
        raise ItemFeatureTableError(
            f"encode_batch_fn returned vectors of shape {vectors.shape} for {where}; "
            f"expected [{size}, D]"
        )
    if not np.issubdtype(vectors.dtype, np.number):
        raise ItemFeatureTableError(
            f"encode_batch_fn returned non-numeric vectors ({vectors.dtype}) for {where}"
        )
    if present is None:
        present = np.ones(size, dtype=bool)
    if present.shape != (size,) or present.dtype != np.bool_:
        raise ItemFeatureTableError(
            f"encode_batch_fn returned present of dtype {present.dtype} shape {present.shape} "
            f"for {where}; expected bool [{size}]"
        )
    vectors = vectors.astype(np.float32)
    bad = ~np.isfinite(vectors).all(axis=1) & present
    if bad.any():
        raise ItemFeatureTableError(
            f"encode_batch_fn returned non-finite values for item {str(batch_ids[bad][0])!r} in {where}"
        )
    vectors[~present] = 0.0
    return vectors, present


def build_item_feature_table(
    item_ids: Sequence[str],
    encode_batch_fn: Callable[[list[str]], object],
    output_path: str | os.PathLike,
    batch_size: int = 64,
    modality: str = "",
    encoder: str = "",
    encoder_version: str = "",
    progress: bool = True,
) -> ItemFeatureTable:
    """Encodes items batch by batch into an `ItemFeatureTable` file; resumes after a crash.

    Each finished batch is saved (atomically) into the side folder
    `<output_path>.partial/` together with a manifest of the run (item ids digest,
    batch size, modality, encoder, encoder version). Rerunning with the same
    arguments after an interruption skips the finished batches -- their items
    are not passed to `encode_batch_fn` again -- and produces the same table.
    When all batches are done the table is written atomically to `output_path`
    (an existing file is replaced) and the side folder is removed. A side folder
    left by a run with different arguments raises an error naming it.

    Args:
        item_ids: unique item ids, in the order of the table.
        encode_batch_fn: called with a list of at most `batch_size` ids; returns
            float [b, D] vectors, or `(vectors, present)` with a bool [b] array
            marking items that have no vector (their rows are ignored).
        output_path: the `.npz` table to write.
        batch_size: items per call.
        modality, encoder, encoder_version: provenance stored in the table.
        progress: show a tqdm progress bar (batches).

    Returns:
        the table (also written to `output_path`).

    Example:
    ```python
    def encode(ids):
        return np.stack([np.full(4, float(len(i))) for i in ids])

    table = build_item_feature_table(["a", "bb", "ccc"], encode, "/tmp/t.npz", batch_size=2,
                                     modality="text", encoder="length", encoder_version="1")
    ```
    """
    ids = _as_id_array(item_ids)
    if ids.ndim != 1 or ids.size == 0:
        raise ItemFeatureTableError("build_item_feature_table: item_ids must be a non-empty list")
    if batch_size < 1:
        raise ItemFeatureTableError(f"build_item_feature_table: batch_size must be >= 1, got {batch_size}")
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise ItemFeatureTableError(
            f"build_item_feature_table: duplicate item id {str(unique[counts > 1][0])!r}"
        )
    for field, value in (("modality", modality), ("encoder", encoder),
                         ("encoder_version", encoder_version)):
        if not isinstance(value, str) or not value:
            raise ItemFeatureTableError(
                f"build_item_feature_table: {field} must be a non-empty string, got {value!r}"
            )
    output_path = Path(output_path)
    partial_dir = output_path.with_name(output_path.name + ".partial")
    manifest = {
        "format_version": FORMAT_VERSION,
        "num_items": int(ids.size),
        "item_ids_sha256": _ids_digest(ids),
        "batch_size": int(batch_size),
        "modality": modality,
        "encoder": encoder,
        "encoder_version": encoder_version,
    }
    manifest_path = partial_dir / "manifest.json"
    if manifest_path.exists():
        previous = json.loads(manifest_path.read_text())
        changed = sorted(k for k in manifest if previous.get(k) != manifest[k])
        if changed:
            raise ItemFeatureTableError(
                f"{partial_dir} holds partial results of a different run (differs in {changed}); "
                "delete that folder to start over"
            )
    else:
        partial_dir.mkdir(parents=True, exist_ok=True)
        write_atomically(manifest_path, lambda temporary: Path(temporary).write_text(json.dumps(manifest, indent=1)))

    num_batches = (ids.size + batch_size - 1) // batch_size

    def chunk_path(index: int) -> Path:
        return partial_dir / f"batch_{index:08d}.npz"

    done = [index for index in range(num_batches) if chunk_path(index).exists()]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=num_batches, initial=len(done), unit="batch",
                   desc=f"{modality}/{encoder}")
    dim = None
    if done:
        with np.load(chunk_path(done[0]), allow_pickle=False) as chunk:
            dim = int(chunk["vectors"].shape[1])
    try:
        for index in range(num_batches):
            if chunk_path(index).exists():
                continue
            batch_ids = ids[index * batch_size:(index + 1) * batch_size]
            vectors, present = _check_batch_output(
                encode_batch_fn([str(i) for i in batch_ids]), batch_ids, index
            )
            if dim is None:
                dim = vectors.shape[1]
            elif vectors.shape[1] != dim:
                raise ItemFeatureTableError(
                    f"encode_batch_fn returned width {vectors.shape[1]} for batch {index} "
                    f"(items {str(batch_ids[0])!r}..), but width {dim} before"
                )
            _atomic_savez(chunk_path(index), {"item_ids": batch_ids, "vectors": vectors,
                                              "present": present})
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()

    vectors_parts, present_parts = [], []
    for index in range(num_batches):
        batch_ids = ids[index * batch_size:(index + 1) * batch_size]
        with np.load(chunk_path(index), allow_pickle=False) as chunk:
            if not np.array_equal(chunk["item_ids"], batch_ids):
                raise ItemFeatureTableError(
                    f"{chunk_path(index)}: its item ids do not match batch {index}; delete "
                    f"{partial_dir} to start over"
                )
            vectors, present = chunk["vectors"], chunk["present"]
        if vectors.shape[1] != dim:
            raise ItemFeatureTableError(
                f"{chunk_path(index)}: width {vectors.shape[1]}, other batches have {dim}; "
                f"delete {partial_dir} to start over"
            )
        vectors_parts.append(vectors)
        present_parts.append(present)
    table = ItemFeatureTable(ids, np.concatenate(vectors_parts), np.concatenate(present_parts),
                             modality=modality, encoder=encoder, encoder_version=encoder_version)
    table.save(output_path)
    shutil.rmtree(partial_dir)
    return table
