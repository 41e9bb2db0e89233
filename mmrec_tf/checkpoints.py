"""Training checkpoints that survive a kill at any moment, including in the middle of writing one.

Keras' ``BackupAndRestore`` overwrites ``latest.weights.h5`` in place: a
process killed while h5py writes it leaves a truncated file (0 bytes was
observed) next to metadata naming the epoch, and the run cannot be resumed.
Here every checkpoint is a folder ``epoch-NNNNNN`` that is complete before it
gets its name:

1. the weights (model and optimizer variables) and ``checkpoint.json`` (the
   epoch, and the weights file's size and SHA-256) are written into a
   ``.partial-*`` folder and each file is ``fsync``-ed;
2. the folder is renamed to ``epoch-NNNNNN`` (``rename`` is atomic on POSIX
   file systems) and the parent folder is ``fsync``-ed;
3. only then are checkpoints older than the newest :data:`KEEP` removed.

:func:`find_checkpoint` takes the newest checkpoint whose weights match the
recorded size and digest; one that does not is reported in a log line and
the one before it is used. A kill leaves at worst a ``.partial-*`` folder,
which the next save removes.

Example:
>>> import tempfile
>>> find_checkpoint(tempfile.mkdtemp()) is None
True
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import pathlib
import shutil

KEEP = 2
PREFIX = "epoch-"
PARTIAL_PREFIX = ".partial-"
WEIGHTS_FILE = "weights.weights.h5"
METADATA_FILE = "checkpoint.json"
LEGACY_WEIGHTS, LEGACY_METADATA = "latest.weights.h5", "training_metadata.json"  # keras BackupAndRestore's files

log = logging.getLogger(__name__)


class UnreadableCheckpointError(ValueError):
    """Checkpoints exist but none of them can be read back; the message lists each one and why."""


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A verified checkpoint: the number of finished epochs it holds and its weights file."""

    epoch: int
    weights_path: pathlib.Path


def _fsync_file(path: pathlib.Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_folder(path: pathlib.Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _digest(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_folders(folder: str | os.PathLike) -> list[pathlib.Path]:
    """The ``epoch-*`` checkpoint folders in ``folder``, newest first."""
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        return []
    found = [path for path in folder.iterdir() if path.name.startswith(PREFIX) and path.name[len(PREFIX):].isdigit()]
    return sorted(found, key=lambda path: int(path.name[len(PREFIX):]), reverse=True)


def write_checkpoint(folder: str | os.PathLike, model, epoch: int) -> pathlib.Path:
    """Save ``model``'s weights and optimizer state after ``epoch`` finished epochs; returns the checkpoint folder.

    The checkpoint appears under its final name only once it is complete and
    on disk; the newest :data:`KEEP` checkpoints are kept.
    """
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(PARTIAL_PREFIX + "*"):
        shutil.rmtree(stale, ignore_errors=True)
    partial = folder / f"{PARTIAL_PREFIX}{PREFIX}{epoch:06d}-{os.getpid()}"
    partial.mkdir()
    weights = partial / WEIGHTS_FILE
    model.save_weights(weights)
    _fsync_file(weights)
    metadata = {"epoch": int(epoch), "weights_bytes": weights.stat().st_size, "weights_sha256": _digest(weights)}
    (partial / METADATA_FILE).write_text(json.dumps(metadata), encoding="utf-8")
    _fsync_file(partial / METADATA_FILE)
    _fsync_folder(partial)
    final = folder / f"{PREFIX}{epoch:06d}"
    if final.exists():  # the same epoch trained again after a fall-back from an unreadable checkpoint
        replaced = folder / f"{PARTIAL_PREFIX}replaced-{final.name}-{os.getpid()}"
        final.rename(replaced)
        shutil.rmtree(replaced)
    partial.rename(final)
    _fsync_folder(folder)
    for old in checkpoint_folders(folder)[KEEP:]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _verified(path: pathlib.Path) -> Checkpoint:
    """The checkpoint in folder ``path``; raises ValueError saying what is wrong with it."""
    try:
        metadata = json.loads((path / METADATA_FILE).read_text(encoding="utf-8"))
        epoch, size, digest = int(metadata["epoch"]), int(metadata["weights_bytes"]), metadata["weights_sha256"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{METADATA_FILE} unreadable ({type(error).__name__}: {error})") from None
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise ValueError(f"{WEIGHTS_FILE} is missing")
    if weights.stat().st_size != size:
        raise ValueError(f"{WEIGHTS_FILE} has {weights.stat().st_size} bytes, {size} were written")
    if _digest(weights) != digest:
        raise ValueError(f"{WEIGHTS_FILE} differs from what was written (SHA-256 mismatch)")
    return Checkpoint(epoch, weights)


def _legacy_checkpoint(folder: pathlib.Path) -> Checkpoint | None:
    """A checkpoint in the layout of ``keras.callbacks.BackupAndRestore`` (runs interrupted before this module).

    Raises ValueError if its files are there but cannot be what was saved.
    """
    weights, metadata = folder / LEGACY_WEIGHTS, folder / LEGACY_METADATA
    if not (weights.exists() or metadata.exists()):
        return None
    if not weights.is_file() or not weights.stat().st_size:
        raise ValueError(f"{weights} is missing or empty")
    try:
        return Checkpoint(int(json.loads(metadata.read_text(encoding="utf-8"))["epoch"]), weights)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{metadata} unreadable ({type(error).__name__}: {error})") from None


def find_checkpoint(folder: str | os.PathLike) -> Checkpoint | None:
    """The newest readable checkpoint in ``folder`` (None if it holds none).

    An unreadable newer checkpoint is logged (``mmrec_tf.checkpoints``,
    WARNING) and skipped. Raises :class:`UnreadableCheckpointError` when
    checkpoints exist but none can be read.
    """
    folder = pathlib.Path(folder)
    problems = []
    for path in checkpoint_folders(folder):
        try:
            checkpoint = _verified(path)
        except ValueError as error:
            problems.append(f"{path}: {error}")
            log.warning("checkpoint %s is unreadable (%s); trying the one before it", path, error)
            continue
        if problems:
            log.warning("resuming from %s (epoch %d) instead", path, checkpoint.epoch)
        return checkpoint
    try:
        legacy = _legacy_checkpoint(folder)
    except ValueError as error:
        problems.append(str(error))
    else:
        if legacy is not None:
            return legacy
    if problems:
        raise UnreadableCheckpointError(f"{folder}: no readable checkpoint ({'; '.join(problems)}); delete the "
                                        "folder to train from the start")
    return None
