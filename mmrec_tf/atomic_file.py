"""Writing a file so that a reader sees the old file or the complete new one, never a half-written one."""

from __future__ import annotations

import os
import pathlib
import tempfile
from collections.abc import Callable


def write_atomically(path: str | os.PathLike, write_to: Callable[[str], None], suffix: str = ".tmp") -> pathlib.Path:
    """Call ``write_to(temporary_path)`` beside ``path``, flush it to disk, then rename it over ``path``.

    The temporary file is in ``path``'s folder (so the rename is atomic),
    hidden (``.<name>.*``) and ends with ``suffix`` (for writers that pick a
    format by extension, e.g. ``".keras"``). A failure or interrupt removes
    it and leaves ``path`` as it was. Returns ``path``.

    Example:
    >>> import pathlib, tempfile
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "numbers.txt"
    >>> write_atomically(target, lambda tmp: pathlib.Path(tmp).write_text("1 2 3")).read_text()
    '1 2 3'
    >>> sorted(p.name for p in target.parent.iterdir())
    ['numbers.txt']
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(handle)
    try:
        write_to(temporary)
        with open(temporary, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    return path
