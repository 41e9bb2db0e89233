"""Line-checked reading of delimited text files (CSV, TSV, GroupLens ``|`` files).

Files as spreadsheet programs and other operating systems write them load: a
byte-order mark names the encoding (UTF-8, as Excel's "CSV UTF-8" writes it;
UTF-16, as its "Unicode text" writes it; UTF-32) and is not part of the first
column's name; LF, CRLF and CR line endings all work, also mixed. A file
without a byte-order mark is read in the ``encoding`` asked for (UTF-8 unless a
format says otherwise). There is no guessing beyond that: the bytes of a file
that is not UTF-8, such as Excel's "CSV (Comma delimited)" in Windows'
cp1252, are equally valid cp1250, cp1251 or latin-1 text, and a wrong guess
would silently change ids and titles; such a file is refused naming the line
and how its first bad byte reads in cp1252, with what to do.

A corrupt file is refused with one line naming file, line and field: a
control character inside a field (C0 and C1 controls other than tab and line
breaks, DEL), a row with too few or too many fields, a quoted field that is
never closed or has text after its closing quote, and a field longer than
:data:`FIELD_SIZE_LIMIT` characters (csv's own limit, which otherwise ends in a
bare ``_csv.Error`` that names neither file nor line). ``skip_bad_rows``
skips rows with bad values, field counts, lengths or control characters, but
never a quoting error: where quotes go wrong, the rows after it cannot be
trusted either.
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import csv
import dataclasses
import io
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import pandas as pd

from mmrec_tf.errors import DataError

logger = logging.getLogger(__name__)

#: the longest field accepted, in characters (the csv module's default limit); longer ones are refused
FIELD_SIZE_LIMIT = 131_072
#: byte-order marks and the encodings they name; UTF-32's come first, UTF-32-LE's starts with UTF-16-LE's
BYTE_ORDER_MARKS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
                    (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


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
    """Read a whole text file in the encoding its byte-order mark names, else ``encoding``.

    A decoding error names the line it happened on, how the byte reads in
    cp1252 and what to do (see the module docstring for why there is no guess).
    """
    with open(path, "rb") as handle:
        raw = handle.read()
    bom_encoding = next((name for bom, name in BYTE_ORDER_MARKS if raw.startswith(bom)), None)
    if bom_encoding is None and raw.count(b"\x00") * 4 >= len(raw) > 0:
        raise DataError("the file looks like UTF-16 without a byte-order mark (every other byte is 0); "
                        "save it as UTF-8, or as UTF-16 with a byte-order mark (Excel's 'Unicode text')", path=path)
    try:
        text = raw.decode(bom_encoding or encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        byte = raw[exc.start]
        in_cp1252 = bytes([byte]).decode("cp1252", errors="replace")
        raise DataError(
            f"cannot decode byte {byte:#04x} as {bom_encoding or encoding} ({in_cp1252!r} in cp1252, the "
            "encoding of Windows spreadsheet exports); save it as UTF-8 (Excel: 'CSV UTF-8') or pass the "
            "file's encoding (GroupLens u.item is ISO-8859-1)",
            path=path,
            line=line,
        ) from None
    if not text.strip():
        raise DataError("the file is empty; expected at least one row", path=path)
    return text


@contextlib.contextmanager
def _unlimited_csv_fields() -> Iterator[None]:
    """Lift csv's field size limit while reading, so :func:`read_delimited` can name the field that is too long."""
    previous = csv.field_size_limit(sys.maxsize)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def _records(text: str, path, delimiter: str, quoting: bool,
             field_names: Sequence[str]) -> Iterator[tuple[int, list[str]]]:
    """``(line the record starts on, its fields)`` for each record of ``text``.

    A quoting error names its line and the field it is in: ``field_names``
    (filled in by the caller once the header is read) or its position.
    """
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=quoting,
                        quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE)
    start = 1
    with _unlimited_csv_fields():
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                record = "".join(io.StringIO(text, newline="").readlines()[start - 1:])
                index = _quoted_field_index(record, delimiter)
                field = field_names[index] if index < len(field_names) else f"#{index + 1}"
                message = ("a quoted field is never closed (the rest of the file would be one field)"
                           if "unexpected end of data" in str(exc) else
                           "text after a closing quote; a quote inside a quoted field is written twice")
                raise DataError(message, path=path, line=start, field=field) from None
            yield start, fields
            start = reader.line_num + 1


def _quoted_field_index(record: str, delimiter: str) -> int:
    """The 0-based position of the field whose quoting is broken in ``record`` (text from the record's start).

    It is the field still open at the end of the text, or the one with text
    after its closing quote: the first place where the quoting rules fail.
    """
    index, in_quotes, at_start, closed = 0, False, True, False
    for character in record:
        if in_quotes:
            in_quotes, closed = character != '"', character == '"'
        elif closed and character == '"':  # a doubled quote inside the quoted field
            in_quotes, closed = True, False
        elif character == delimiter:
            index, at_start, closed = index + 1, True, False
        elif character in "\r\n" or closed:
            break
        else:
            in_quotes, at_start = at_start and character == '"', False
    return index


def _check_fields(fields: list[str], names: Sequence[str], path, line: int) -> None:
    """Refuse a field longer than :data:`FIELD_SIZE_LIMIT` or holding a control character."""
    for name, raw in zip(names, fields):
        if len(raw) > FIELD_SIZE_LIMIT:
            raise DataError(f"the field is {len(raw):,} characters long, more than the {FIELD_SIZE_LIMIT:,} "
                            "allowed (an unclosed quote?)", path=path, line=line, field=name)
        control = CONTROL_CHARACTERS.search(raw)
        if control:
            raise DataError(f"control character U+{ord(control.group()):04X} at position {control.start() + 1} "
                            "of the field; the file is corrupt or not text", path=path, line=line, field=name)


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
    field_names: list[str] = []
    rows = _records(text, path, delimiter, quoting, field_names)
    if header:
        try:
            line, names = next(rows)
        except StopIteration:
            raise DataError("the file has no header row", path=path) from None
        _check_fields(names, [f"#{i}" for i in range(1, len(names) + 1)], path, line)
        names = [n.strip() for n in names]
        by_name = {c.name: c for c in columns}
        present = set(names)
        missing = [c.name for c in columns if c.required and c.name not in present]
        if missing:
            raise DataError(
                f"missing column(s) {missing} in header [{_listed(names)}]", path=path, line=line, field=missing[0]
            )
        duplicates = sorted(name for name, count in collections.Counter(names).items() if count > 1)
        if duplicates:
            raise DataError(f"duplicate column(s) {duplicates} in the header", path=path, line=line)
        unknown = [n for n in names if n not in by_name]
        if unknown and not extra_columns:
            raise DataError(
                f"unexpected column(s) {unknown}; expected some of {list(by_name)}", path=path, line=line
            )
        layout = [by_name.get(n, Column(n, str, "text")) for n in names]
    else:
        layout = list(columns)

    records: dict[str, list[Any]] = {c.name: [] for c in layout}
    skipped: list[str] = []
    kept_lines: list[int] = []
    field_names += [c.name for c in layout]
    for line, fields in rows:
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue
        try:
            _check_fields(fields, field_names, path, line)
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
            f"expected {len(layout)} fields ({_listed(c.name for c in layout)}), got {len(fields)}",
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


def _listed(names: Iterable[str], most: int = 20) -> str:
    """Comma-joined names, the first ``most`` of them when there are more."""
    names = list(names)
    shown = ", ".join(names[:most])
    return shown if len(names) <= most else f"{shown}, ... {len(names) - most} more"
