"""Delimited files as spreadsheet programs and other operating systems write them.

Every encoding that names itself (UTF-8 with or without a byte-order mark, UTF-16 / UTF-32 with one)
and every line-ending style loads to the same table; a corrupt file is refused with one line that names
the file, the line and the field.
"""

from __future__ import annotations

import codecs
import time

import pytest

from mmrec_tf.data.sources.delimited import FIELD_SIZE_LIMIT, Column, parse_float, read_delimited
from mmrec_tf.data.sources.folder import load_folder
from mmrec_tf.errors import DataError

COLUMNS = [Column("item_id"), Column("title", str, "a title"), Column("price", parse_float, "a number")]
ROWS = [["a", "Café crème", "2.5"], ["b", "Smørrebrød, \"open\"", "3"], ["c", "Ærø – €", "4.25"]]
EXPECTED = {"item_id": ["a", "b", "c"], "title": ["Café crème", "Smørrebrød, \"open\"", "Ærø – €"],
            "price": [2.5, 3.0, 4.25]}


def csv_text(newline: str) -> str:
    """The table as a spreadsheet writes it: a header, quotes only where a field needs them."""
    quoted = [[f'"{field.replace(chr(34), 2 * chr(34))}"' if ("," in field or '"' in field) else field
               for field in row] for row in [["item_id", "title", "price"], *ROWS]]
    return "".join(",".join(row) + newline for row in quoted)


def read(path, **options):
    return read_delimited(path, COLUMNS, **options)


def refusal(path, **options) -> DataError:
    with pytest.raises(DataError) as error:
        read(path, **options)
    assert len(str(error.value).splitlines()) == 1, str(error.value)
    assert str(path) in str(error.value)
    return error.value


ENCODINGS = {
    "utf-8": lambda text: text.encode("utf-8"),
    "utf-8 with BOM (Excel 'CSV UTF-8')": lambda text: codecs.BOM_UTF8 + text.encode("utf-8"),
    "utf-16-le with BOM (Excel 'Unicode text')": lambda text: codecs.BOM_UTF16_LE + text.encode("utf-16-le"),
    "utf-16-be with BOM": lambda text: codecs.BOM_UTF16_BE + text.encode("utf-16-be"),
    "utf-32-le with BOM": lambda text: codecs.BOM_UTF32_LE + text.encode("utf-32-le"),
}
NEWLINES = {"LF": "\n", "CRLF": "\r\n", "CR": "\r"}


@pytest.mark.parametrize("newline", sorted(NEWLINES))
@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_every_self_describing_encoding_and_line_ending_loads_the_same_table(tmp_path, encoding, newline):
    path = tmp_path / "items.csv"
    path.write_bytes(ENCODINGS[encoding](csv_text(NEWLINES[newline])))
    result = read(path)
    assert result.frame.to_dict("list") == EXPECTED
    assert result.lines == [2, 3, 4]


@pytest.mark.parametrize("newline", sorted(NEWLINES))
def test_lines_are_counted_in_the_file_not_in_records(tmp_path, newline):
    """A quoted field may hold line breaks; the line named is where the bad row starts in the file."""
    n = NEWLINES[newline]
    path = tmp_path / "items.csv"
    path.write_bytes(f'item_id,title,price{n}a,"two{n}lines",1{n}{n}b,Beta,cheap{n}'.encode())
    error = refusal(path)
    assert (error.line, error.field) == (5, "price")
    assert read(path, skip_bad_rows=True).frame.to_dict("list") == {
        "item_id": ["a"], "title": [f"two{n}lines"], "price": [1.0]}


def test_a_utf8_bom_is_not_part_of_the_first_column_name(tmp_path):
    """Excel's "CSV UTF-8" starts with a BOM; the folder loader must still find `user_id`."""
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "interactions.csv").write_bytes(codecs.BOM_UTF8 + b"user_id,item_id\r\nu1,a\r\nu2,b\r\n")
    dataset = load_folder(folder)
    assert dataset.interactions[["user_id", "item_id"]].values.tolist() == [["u1", "a"], ["u2", "b"]]


def test_an_eight_bit_file_is_refused_naming_the_line_and_what_to_do(tmp_path):
    """Without a BOM a file must be UTF-8: cp1252 bytes are equally valid cp1250/cp1251/latin-1 text, so no guess."""
    path = tmp_path / "items.csv"
    path.write_bytes("item_id,title,price\na,Alpha,1\nb,Caf\xe9 cr\xe8me,2\n".encode("cp1252"))
    error = refusal(path)
    assert error.line == 3
    assert "cannot decode byte 0xe9 as utf-8" in str(error)
    assert "'é' in cp1252" in str(error) and "save it as UTF-8" in str(error)
    assert read(path, encoding="cp1252").frame["title"].tolist() == ["Alpha", "Café crème"]


def test_utf16_without_a_bom_is_refused_by_name(tmp_path):
    path = tmp_path / "items.csv"
    path.write_bytes(csv_text("\r\n").encode("utf-16-le"))
    error = refusal(path)
    assert "UTF-16 without a byte-order mark" in str(error)


@pytest.mark.parametrize("character", ["\x00", "\x1b", "\x7f", "\x85"])
def test_a_control_character_inside_a_field_is_refused(tmp_path, character):
    path = tmp_path / "items.csv"
    path.write_bytes(f"item_id,title,price\na,Alpha,1\nb,Be{character}ta,2\n".encode())
    error = refusal(path)
    assert (error.line, error.field) == (3, "title")
    assert f"control character U+{ord(character):04X}" in str(error)


def test_a_tab_inside_a_field_is_text(tmp_path):
    path = tmp_path / "items.csv"
    path.write_bytes(b"item_id,title,price\na,Alpha\tBeta,1\n")
    assert read(path).frame["title"].tolist() == ["Alpha\tBeta"]


def test_a_truncated_row_is_refused(tmp_path):
    path = tmp_path / "items.csv"
    path.write_bytes(b"item_id,title,price\na,Alpha,1\nb,Be")
    error = refusal(path)
    assert error.line == 3
    assert "expected 3 fields (item_id, title, price), got 2" in str(error)


def test_a_file_cut_inside_a_quoted_field_is_refused(tmp_path):
    """An unclosed quote used to swallow the rest of the file into one field and load a row too few."""
    path = tmp_path / "items.csv"
    path.write_bytes(b'item_id,title,price\na,"Alpha,1\nb,Beta,2\nc,Gamma,3\n')
    error = refusal(path)
    assert (error.line, error.field) == (2, "title")
    assert "quoted field is never closed" in str(error)


def test_text_after_a_closing_quote_is_refused(tmp_path):
    path = tmp_path / "items.csv"
    path.write_bytes(b'item_id,title,price\na,"Alpha" (1995),1\n')
    error = refusal(path)
    assert error.line == 2
    assert "after a closing quote" in str(error)


def test_a_field_over_the_size_limit_names_file_line_and_field(tmp_path):
    """csv's own limit used to end in a bare `_csv.Error: field larger than field limit` traceback."""
    path = tmp_path / "items.csv"
    path.write_bytes(b"item_id,title,price\na,Alpha,1\nb," + b"x" * (FIELD_SIZE_LIMIT + 1) + b",2\n")
    error = refusal(path)
    assert (error.line, error.field) == (3, "title")
    assert f"{FIELD_SIZE_LIMIT + 1:,} characters" in str(error)
    path.write_bytes(b"item_id,title,price\na,Alpha,1\nb," + b"x" * FIELD_SIZE_LIMIT + b",2\n")
    assert len(read(path).frame["title"][1]) == FIELD_SIZE_LIMIT


def test_the_duplicate_column_check_is_linear(tmp_path):
    """40,000 columns took 32 s with a list.count per name; the check must be instant."""
    names = [f"feature_{i}" for i in range(40_000)]
    path = tmp_path / "wide.csv"
    path.write_text(",".join(["item_id", *names, "feature_7"]) + "\n" + ",".join(["a"] + ["1"] * 40_001) + "\n")
    start = time.perf_counter()
    with pytest.raises(DataError, match=r"duplicate column\(s\) \['feature_7'\]") as error:
        read_delimited(path, [Column("item_id")], extra_columns=True)
    assert time.perf_counter() - start < 3.0
    assert error.value.line == 1
    path.write_text(",".join(["item_id", *names]) + "\n" + ",".join(["a"] + ["1"] * 39_999) + "\n")
    start = time.perf_counter()
    with pytest.raises(DataError, match="expected 40001 fields") as error:  # every header check passed
        read_delimited(path, [Column("item_id")], extra_columns=True)
    assert time.perf_counter() - start < 3.0
    assert error.value.line == 2
