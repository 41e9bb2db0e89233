"""Errors that say where bad input is and what was expected."""

from __future__ import annotations

import os


class DataError(ValueError):
    """Malformed input data: names the file, line and field, and what was expected.

    Example:
    >>> str(DataError("rating must be a number, got 'five'", path="u.data", line=3, field="rating"))
    "u.data, line 3, field 'rating': rating must be a number, got 'five'"
    """

    def __init__(
        self,
        message: str,
        path: str | os.PathLike | None = None,
        line: int | None = None,
        field: str | None = None,
    ):
        self.path = os.fspath(path) if path is not None else None
        self.line = line
        self.field = field
        self.message = message
        where = [p for p in (self.path, f"line {line}" if line is not None else None,
                             f"field {field!r}" if field is not None else None) if p]
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class ConfigError(ValueError):
    """A zoo entry or config with an unknown key or a wrong type; names the key's path.

    Example:
    >>> print(ConfigError("unknown key", key_path="training.epochz", source="zoo/x.yaml"))
    zoo/x.yaml: training.epochz: unknown key
    """

    def __init__(self, message: str, key_path: str = "", source: str | None = None):
        self.key_path = key_path
        self.source = source
        prefix = ": ".join(p for p in (source, key_path) if p)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the message names the step and likely causes.

    (Defined here, without TensorFlow, so ``mmrec`` turns it into its one-line refusal.)
    """
