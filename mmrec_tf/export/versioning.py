"""Atomic, never-overwriting version folders for TF Serving model directories.

TF Serving watches ``<model_base_dir>/`` and loads the child folder whose name is
the largest integer; it polls for new ones (tensorflow/serving docs,
"serving_config.md": "By default the server will serve the version with the
largest version number"). A version folder that appears before its files are
complete can therefore be picked up half-written. The functions here write a
version into a temporary sibling folder whose name is not an integer (TF Serving
ignores it) and publish it with a single ``os.rename``, which is atomic on POSIX
file systems when source and target share a file system - they do, both live in
``model_base_dir``.

Example:

>>> import tempfile, pathlib
>>> base = pathlib.Path(tempfile.mkdtemp()) / "din"
>>> next_version(base)
1
>>> path = write_version_atomically(
...     base, lambda tmp: (tmp / "saved_model.pb").write_bytes(b"..."))
>>> path.name, next_version(base)
('1', 2)
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

__all__ = ["clean_stale_temp_dirs", "list_versions", "next_version", "write_version_atomically"]

_VERSION_NAME = re.compile(r"[0-9]+")
# `.tmp-<version>-<pid>-<hex>`: starts with a dot and contains dashes, so it is
# never a valid integer version name for TF Serving.
_TEMP_NAME = re.compile(r"\.tmp-(?P<version>[0-9]+)-(?P<pid>[0-9]+)-(?P<token>[0-9a-f]+)")
#: how many successive free version numbers an automatic version tries before giving up
MAX_VERSION_ATTEMPTS = 100


def list_versions(model_base_dir: str | os.PathLike) -> dict[int, Path]:
    """Maps each integer version of a model folder to its version folder, sorted by version.

    Only child folders whose names are all ASCII digits count (as for TF Serving);
    a missing ``model_base_dir`` has no versions.

    Example:

    >>> import tempfile, pathlib
    >>> base = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("2", "10", ".tmp-11-1-ab"):
    ...     (base / name).mkdir()
    >>> [(version, path.name) for version, path in list_versions(base).items()]
    [(2, '2'), (10, '10')]
    """
    base = Path(model_base_dir)
    if not base.is_dir():
        return {}
    found = {
        int(child.name): child
        for child in base.iterdir()
        if child.is_dir() and _VERSION_NAME.fullmatch(child.name)
    }
    return dict(sorted(found.items()))


def next_version(model_base_dir: str | os.PathLike) -> int:
    """Returns 1 + the highest all-digit child folder of ``model_base_dir`` (1 if none).

    Files and folders whose names are not all ASCII digits (temp folders,
    ``assets``...) are ignored, as TF Serving ignores them. A missing
    ``model_base_dir`` counts as empty.

    Example:

    >>> import tempfile, pathlib
    >>> base = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("1", "7", ".tmp-9-1-ab", "notes"):
    ...     (base / name).mkdir()
    >>> next_version(base)
    8
    """
    return max(list_versions(model_base_dir), default=0) + 1


def write_version_atomically(
    model_base_dir: str | os.PathLike,
    write_fn: Callable[[Path], object],
    version: int | None = None,
) -> Path:
    """Writes a new version folder so it never exists half-written and is never overwritten.

    ``write_fn(tmp_path)`` must write the whole version (``saved_model.pb``,
    ``variables/``, ``assets.extra/``...) into ``tmp_path``, an existing empty folder
    named ``.tmp-<version>-<pid>-<random>`` inside ``model_base_dir``. Afterwards
    the folder is renamed to ``<model_base_dir>/<version>``.

    Without ``version`` the version is taken when the write is complete: the
    rename into the next free number either succeeds or finds that another
    writer took that number meanwhile, and then tries the number after it. So
    concurrent exports of one model into one folder each get their own
    version. Temp folders of killed writers are removed first
    (:func:`clean_stale_temp_dirs`); a live writer's are left alone.

    Args:
        model_base_dir: the model's folder, e.g. ``saved_models/din``; created if missing.
        write_fn: callable receiving the temporary folder as a ``pathlib.Path``.
        version: the integer version to publish; ``None`` means the next free version
            (:func:`next_version` when the write completes).

    Returns:
        The published version folder.

    Raises:
        FileExistsError: the given ``version`` exists already (checked before and
            after ``write_fn``); nothing is overwritten and the temp folder is removed.
        ValueError: ``version`` is not a non-negative integer.
        Any exception of ``write_fn`` (including ``KeyboardInterrupt``) is re-raised
        after the temp folder has been removed. A process killed with SIGKILL
        leaves only the temp folder, which TF Serving ignores and
        :func:`clean_stale_temp_dirs` removes.

    Example:

    >>> import tempfile, pathlib
    >>> base = pathlib.Path(tempfile.mkdtemp())
    >>> def write(tmp):
    ...     (tmp / "saved_model.pb").write_bytes(b"...")
    >>> write_version_atomically(base, write, version=3).name
    '3'
    >>> try:
    ...     write_version_atomically(base, write, version=3)
    ... except FileExistsError:
    ...     print("version 3 exists, nothing overwritten")
    version 3 exists, nothing overwritten
    """
    base = Path(model_base_dir)
    automatic = version is None
    if not automatic and (isinstance(version, bool) or not isinstance(version, int) or version < 0):
        raise ValueError(
            f"version must be a non-negative int (TF Serving version folder name), got {version!r}"
        )
    base.mkdir(parents=True, exist_ok=True)
    clean_stale_temp_dirs(base)
    if automatic:
        version = next_version(base)
    else:
        _raise_if_version_exists(base, version)

    tmp = base / f".tmp-{version}-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        write_fn(tmp)
        if not tmp.is_dir():
            raise FileNotFoundError(
                f"write_fn removed or replaced the temporary version folder {tmp}"
            )
        for _ in range(MAX_VERSION_ATTEMPTS):
            if automatic:
                version = next_version(base)
            final = base / str(version)
            if _publish(tmp, base, version):
                return final
            if not automatic:
                raise FileExistsError(
                    f"model version folder {final} appeared while version {version} "
                    f"was being written; refusing to overwrite it"
                )
        raise FileExistsError(
            f"{base}: another writer took each of the next {MAX_VERSION_ATTEMPTS} versions while this "
            f"one was being published; nothing was overwritten"
        )
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _publish(tmp: Path, base: Path, version: int) -> bool:
    """Rename ``tmp`` to ``base/version``; False (nothing changed) when that version exists."""
    if version in list_versions(base):
        return False
    try:
        os.rename(tmp, base / str(version))
    except OSError as error:
        # POSIX rename refuses to replace a non-empty directory: another writer published it first.
        if error.errno in (errno.EEXIST, errno.ENOTEMPTY):
            return False
        raise
    return True


def _raise_if_version_exists(base: Path, version: int) -> None:
    existing = list_versions(base).get(version)
    if existing is not None:
        raise FileExistsError(
            f"model version folder {existing} exists already (version {version}); "
            f"refusing to overwrite it - pick another version or use next_version()"
        )


def _process_is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temp_dirs(model_base_dir: str | os.PathLike) -> list[Path]:
    """Removes temp folders left by writers that were killed (e.g. SIGKILL, power loss).

    Only folders named like :func:`write_version_atomically`'s temp folders
    (``.tmp-<version>-<pid>-<hex>``) are touched, and only when the process id in
    the name is not running on this machine, so a concurrent export in progress is
    left alone. (On a file system shared by several machines a process id is not
    meaningful; run this on the machine that wrote the folder.)

    Returns:
        The removed folders, sorted.

    Example:

    >>> import tempfile, pathlib
    >>> base = pathlib.Path(tempfile.mkdtemp())
    >>> (base / ".tmp-1-999999999-00ff").mkdir()   # no such process
    >>> [p.name for p in clean_stale_temp_dirs(base)]
    ['.tmp-1-999999999-00ff']
    """
    base = Path(model_base_dir)
    if not base.is_dir():
        return []
    removed = []
    for child in sorted(base.iterdir()):
        match = _TEMP_NAME.fullmatch(child.name)
        if match is None or not child.is_dir():
            continue
        if _process_is_alive(int(match["pid"])):
            continue
        shutil.rmtree(child)
        removed.append(child)
    return removed
