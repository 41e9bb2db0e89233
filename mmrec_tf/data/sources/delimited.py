"""Line-checked reading of delimited text files (CSV, TSV, GroupLens ``|`` files)."""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from mmrec_tf.errors import DataError

logger = logging.getLogger(__name__)


def parse_int(text: str) -> int:
    return int(text.strip())


def parse_float(text: str) -> float:
    value = float(text.strip())
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def parse_timestamp(text: str) -> int:
    """Unix seconds, written as an integer or a float with a zero fraction."""
    value = float(text.strip())
    if value != int(value):
        raise ValueError(f"{text!r} has a fractional part")
    return int(value)


def parse_id(text: str) -> str:
    value = text.strip()
    if not value:
        raise ValueError("empty id")
    return value


@dataclasses.dataclass(frozen=True)
class Column:
    """One expected column: its name, a parser that raises ValueError, and what it expects.

    Example:
    >>> Column("rating", parse_float, "a number").parse("4")
    4.0
    """

    name: str
    parse: Callable[[str], Any] = parse_id
    expected: str = "a non-empty id"
    required: bool = True


@dataclasses.dataclass
class ReadResult:
    """The parsed table, each row's line number in the file, and the lines skipped under ``skip_bad_rows``."""

    frame: pd.DataFrame
    skipped: list[str]
    lines: list[int] = dataclasses.field(default_factory=list)


def decode_file(path: str | os.PathLike, encoding: str) -> str:
    """Read a whole text file; a decoding error names the line it happened on."""
    with open(path, "rb") as handle:
        raw = handle.read()
    if not raw.strip():
        raise DataError("the file is empty; expected at least one row", path=path)
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(
            f"cannot decode byte {raw[exc.start]:#04x} as {encoding}; "
            "pass the file's encoding (GroupLens u.item is ISO-8859-1)",
            path=path,
            line=line,
        ) from None


def read_delimited(
    path: str | os.PathLike,
    columns: Sequence[Column],
    delimiter: str = ",",
    header: bool = True,
    encoding: str = "utf-8",
    quoting: bool = True,
    extra_columns: bool = False,
    skip_bad_rows: bool = False,
) -> ReadResult:
    """Parse a delimited file, checking every row.

    With ``header=True`` the columns are found by name (required ones must be
    present; with ``extra_columns=True`` unknown columns are kept as text).
    Without a header the file must have exactly ``len(columns)`` fields a row.
    A bad row raises :class:`DataError` naming file, line and field; with
    ``skip_bad_rows=True`` it is skipped, counted and logged instead.

    Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.csv"
    >>> _ = p.write_text("user_id,item_id\\nu1,i9\\n")
    >>> read_delimited(p, [Column("user_id"), Column("item_id")]).frame.to_dict("records")
    [{'user_id': 'u1', 'item_id': 'i9'}]
    """
    text = decode_file(path, encoding)
    reader = csv.reader(
        io.StringIO(text), delimiter=delimiter, quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE
    )
    rows = iter(enumerate(reader, start=1))
    if header:
        try:
            _, names = next(rows)
        except StopIteration:
            raise DataError("the file has no header row", path=path) from None
        names = [n.strip() for n in names]
        by_name = {c.name: c for c in columns}
        missing = [c.name for c in columns if c.required and c.name not in names]
        if missing:
            raise DataError(
                f"missing column(s) {missing} in header {names}", path=path, line=1, field=missing[0]
            )
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise DataError(f"duplicate column(s) {duplicates} in the header", path=path, line=1)
        unknown = [n for n in names if n not in by_name]
        if unknown and not extra_columns:
            raise DataError(
                f"unexpected column(s) {unknown}; expected some of {list(by_name)}", path=path, line=1
            )
        layout = [by_name.get(n, Column(n, str, "text")) for n in names]
    else:
        layout = list(columns)

    records: dict[str, list[Any]] = {c.name: [] for c in layout}
    skipped: list[str] = []
    kept_lines: list[int] = []
    for line, fields in rows:
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue
        try:
            values = _parse_row(fields, layout, path, line)
        except DataError as exc:
            if not skip_bad_rows:
                raise
            skipped.append(str(exc))
            continue
        for column, value in zip(layout, values):
            records[column.name].append(value)
        kept_lines.append(line)
    if skipped:
        logger.warning("%s: skipped %d bad row(s); first: %s", path, len(skipped), skipped[0])
    frame = pd.DataFrame(records)
    if frame.empty:
        raise DataError("the file has no data rows", path=path)
    return ReadResult(frame, skipped, kept_lines)


def _parse_row(fields: list[str], layout: Sequence[Column], path, line: int) -> list[Any]:
    if len(fields) != len(layout):
        raise DataError(
            f"expected {len(layout)} fields ({', '.join(c.name for c in layout)}), got {len(fields)}",
            path=path,
            line=line,
        )
    values = []
    for column, raw in zip(layout, fields):
        try:
            values.append(column.parse(raw))
        except (ValueError, TypeError) as exc:
            raise DataError(
                f"expected {column.expected}, got {raw!r} ({exc})", path=path, line=line, field=column.name
            ) from None
    return values
