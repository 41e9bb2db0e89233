"""Last.fm HetRec-2011 (2K users) with audio and text vectors: the ``lastfm-2k-mm`` dataset.

Layout (``lfm2k-mm/``, or a folder holding it)::

    lfm2k.inter          userID itemID rating x_label   (tab separated, ids remapped to 0..N-1;
                                                          x_label 0 = train, 1 = valid, 2 = test)
    lfm2k_og_ids.inter   the same rows with the original HetRec ids, row for row
    vggish.npy           [N, 128] audio vectors (VGGish on song previews), row i = itemID i
    whisper.npy          [N, 512] audio vectors (Whisper encoder), row i = itemID i
    all-MiniLM-L6-v2.npy [N, 384] text vectors (MiniLM on the artist's tags), row i = itemID i
    lfm2k_text.tsv       artistID text   (original ids; comma-joined tags)
    artists.dat          id name url pictureURL   (original ids)

The dataset has the fixed split as ``split_labels`` (use
``predefined_split``), no timestamps (rows keep file order) and no rating
(every row is a listened artist; the file's rating column is 1 throughout).
Items have ``name`` (the artist) and ``tags`` (text, None when the artist
has no tags), and the vector features ``vggish``, ``whisper`` and
``tags_minilm``; an item whose vector row is not finite has no vector.
Only ``lfm2k.inter`` is required; a missing side file is logged and its
feature left out (vectors) or left empty (names, tags).
"""

from __future__ import annotations

import hashlib
import logging
import os
import pathlib

import numpy as np
import pandas as pd

from mmrec_tf.data.dataset import Dataset
from mmrec_tf.data.item_feature_table import ItemFeatureTable
from mmrec_tf.data.schema import Feature, Schema
from mmrec_tf.data.sources.delimited import Column, read_delimited
from mmrec_tf.data.sources.item_media import ItemFeaturesArgument, read_item_feature_tables
from mmrec_tf.errors import DataError

FOLDER = "lfm2k-mm"
INTERACTIONS_FILE = "lfm2k.inter"
ORIGINAL_IDS_FILE = "lfm2k_og_ids.inter"
TEXT_FILE = "lfm2k_text.tsv"
ARTISTS_FILE = "artists.dat"
SPLIT_NAMES = {"0": "train", "1": "valid", "2": "test"}
INTER_COLUMNS = ("userID", "itemID", "rating", "x_label")
# feature name, file, modality, encoder
VECTOR_FILES = (
    ("vggish", "vggish.npy", "audio", "VGGish"),
    ("whisper", "whisper.npy", "audio", "Whisper encoder"),
    ("tags_minilm", "all-MiniLM-L6-v2.npy", "text", "all-MiniLM-L6-v2"),
)

LASTFM_MM_SCHEMA = Schema([
    Feature("user_id", "id", "user"),
    Feature("item_id", "id", "item", "remapped artist id (itemID of lfm2k.inter)"),
    Feature("name", "text", "item", "artist name (artists.dat)"),
    Feature("tags", "text", "item", "comma-joined Last.fm tags (lfm2k_text.tsv); None when absent"),
])

logger = logging.getLogger(__name__)


def load_lastfm_2k_mm(path: str | os.PathLike | None, item_features: ItemFeaturesArgument = None,
                      skip_bad_rows: bool = False) -> Dataset:
    """Load ``lastfm-2k-mm`` from the ``lfm2k-mm`` folder or a folder holding it.

    ``item_features`` attaches further vector tables beside the shipped
    ones (a folder of ``<name>.npz``, a mapping, or None for the default
    features folder, see :mod:`.item_media`). With ``skip_bad_rows`` a bad row
    of either ``.inter`` file drops that row from both.

    Example:
    >>> ds = load_lastfm_2k_mm("../shared/data")  # doctest: +SKIP
    >>> ds.num_interactions, {n: t.dim for n, t in ds.item_vectors.items()}  # doctest: +SKIP
    (56345, {'vggish': 128, 'whisper': 512, 'tags_minilm': 384})
    """
    if path is None:
        raise DataError("lastfm-2k-mm needs the lfm2k-mm folder or the folder that holds it (e.g. ../shared/data)")
    folder = pathlib.Path(path)
    if not (folder / INTERACTIONS_FILE).is_file() and (folder / FOLDER / INTERACTIONS_FILE).is_file():
        folder = folder / FOLDER
    if not (folder / INTERACTIONS_FILE).is_file():
        raise DataError(f"expected {INTERACTIONS_FILE} here or in {FOLDER}/", path=folder)
    rows, original_items = _read_interactions(folder, skip_bad_rows)
    interactions = pd.DataFrame({"user_id": rows["userID"].to_numpy(), "item_id": rows["itemID"].to_numpy()})
    split_labels = pd.Series(rows["x_label"].map(SPLIT_NAMES).to_numpy(), name="split")
    item_ids = sorted(set(interactions["item_id"]), key=int)
    names, tags = _read_side_texts(folder, original_items, item_ids)
    index = pd.Index(item_ids, name="item_id")
    items = pd.DataFrame({"name": pd.Series(names, index=index, dtype=object),
                          "tags": pd.Series(tags, index=index, dtype=object)}, index=index)
    dataset = Dataset(
        name="lastfm-2k-mm", interactions=interactions, items=items, schema=LASTFM_MM_SCHEMA, source=str(folder),
        item_title_feature="name", split_labels=split_labels,
    )
    tables = _read_vectors(folder, int(item_ids[-1]) + 1)
    extra = read_item_feature_tables(item_features, dataset.name)
    clash = sorted(set(extra) & set(tables))
    if clash:
        raise DataError(f"item_features {clash} clash with the shipped vector features {sorted(tables)}",
                        path=folder)
    return dataset.with_item_vectors({**tables, **extra})


def _read_inter(file: pathlib.Path) -> pd.DataFrame:
    return read_delimited(file, [Column(name, str, "text") for name in INTER_COLUMNS], delimiter="\t",
                          quoting=False).frame


def _row_problem(values: tuple[str, ...]) -> str | None:
    user, item, rating, label = (v.strip() for v in values)
    for field, value in (("userID", user), ("itemID", item)):
        if not value.isdigit():
            return f"{field}: expected a non-negative integer, got {value!r}"
    if label not in SPLIT_NAMES:
        return f"x_label: expected 0 (train), 1 (valid) or 2 (test), got {label!r}"
    try:
        float(rating)
    except ValueError:
        return f"rating: expected a number, got {rating!r}"
    return None


def _read_interactions(folder: pathlib.Path, skip_bad_rows: bool) -> tuple[pd.DataFrame, dict[str, str]]:
    """Rows of lfm2k.inter (ids as canonical integer strings) and the remapped → original item id map."""
    rows = _read_inter(folder / INTERACTIONS_FILE)
    original_file = folder / ORIGINAL_IDS_FILE
    original = _read_inter(original_file) if original_file.is_file() else None
    if original is None:
        logger.warning("%s not found: items get no artist names or tags", original_file)
    elif len(original) != len(rows):
        raise DataError(f"{len(original)} rows, but {INTERACTIONS_FILE} has {len(rows)}; the two files must match "
                        "row for row", path=original_file)
    keep = np.ones(len(rows), dtype=bool)
    others = original[list(INTER_COLUMNS)].itertuples(index=False) if original is not None else None
    for row, values in enumerate(rows[list(INTER_COLUMNS)].itertuples(index=False)):
        problems = [(folder / INTERACTIONS_FILE, _row_problem(values))]
        if others is not None:
            other = next(others)
            problem = _row_problem(other)
            if problem is None and other[3].strip() != values[3].strip():
                problem = f"x_label {other[3]!r} differs from {values[3]!r} in {INTERACTIONS_FILE}"
            problems.append((original_file, problem))
        for file, problem in problems:
            if problem is None:
                continue
            if not skip_bad_rows:
                raise DataError(problem, path=file, line=row + 2)
            logger.warning("%s, line %d: skipped: %s", file, row + 2, problem)
            keep[row] = False
    rows = rows[keep].reset_index(drop=True)
    for column in INTER_COLUMNS:
        rows[column] = rows[column].str.strip()
    for column in ("userID", "itemID"):
        rows[column] = rows[column].astype("int64").astype(str)
    if rows.empty:
        raise DataError("no valid rows", path=folder / INTERACTIONS_FILE)
    if original is None:
        return rows, {}
    original_items = original.loc[keep, "itemID"].str.strip().astype("int64").astype(str).to_numpy()
    pairs = pd.DataFrame({"item": rows["itemID"].to_numpy(), "original": original_items})
    counts = pairs.groupby("item")["original"].nunique()
    if (counts > 1).any():
        item = counts.index[counts > 1][0]
        found = sorted(pairs.loc[pairs["item"] == item, "original"].unique())
        raise DataError(f"itemID {item} maps to several original ids {found[:5]}; expected one", path=original_file)
    return rows, dict(zip(pairs["item"], pairs["original"]))


def _read_side_texts(folder: pathlib.Path, original_items: dict[str, str], item_ids: list[str]):
    names, tags = {}, {}
    if original_items:
        artists_file, text_file = folder / ARTISTS_FILE, folder / TEXT_FILE
        if artists_file.is_file():
            frame = read_delimited(artists_file, [Column("id"), Column("name", str, "an artist name")],
                                   delimiter="\t", quoting=False, extra_columns=True).frame
            names = dict(zip(frame["id"], frame["name"].str.strip()))
        else:
            logger.warning("%s not found: items get no artist names", artists_file)
        if text_file.is_file():
            frame = read_delimited(text_file, [Column("artistID"), Column("text", str, "comma-joined tags")],
                                   delimiter="\t", quoting=False).frame
            tags = dict(zip(frame["artistID"], frame["text"].str.strip()))
        else:
            logger.warning("%s not found: items get no tags", text_file)
    item_names = [names.get(original_items.get(i)) or None for i in item_ids]
    item_tags = [tags.get(original_items.get(i)) or None for i in item_ids]
    return item_names, item_tags


def _read_vectors(folder: pathlib.Path, num_rows: int) -> dict[str, ItemFeatureTable]:
    """Each vector file as a table; row i is itemID i, so a file needs at least max(itemID) + 1 rows."""
    tables = {}
    for name, file_name, modality, encoder in VECTOR_FILES:
        file = folder / file_name
        if not file.is_file():
            logger.warning("%s not found: no %r vectors", file, name)
            continue
        try:
            vectors = np.load(file, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read a numpy array: {exc}", path=file) from None
        if vectors.ndim != 2 or vectors.shape[0] < num_rows or not np.issubdtype(vectors.dtype, np.number):
            raise DataError(f"expected a numeric [N, D] array with a row per itemID (row i = itemID i, so at least "
                            f"{num_rows} rows), got {vectors.dtype} {vectors.shape}", path=file)
        vectors = vectors.astype(np.float32)
        finite = np.isfinite(vectors).all(axis=1)
        if not finite.all():
            logger.warning("%s: %d row(s) are not finite and count as missing, e.g. itemID %d", file,
                           int((~finite).sum()), int(np.flatnonzero(~finite)[0]))
        vectors[~finite] = 0.0
        digest = hashlib.sha256(file.read_bytes()).hexdigest()[:16]
        tables[name] = ItemFeatureTable([str(i) for i in range(len(vectors))], vectors, finite, modality=modality,
                                        encoder=encoder, encoder_version=f"{FOLDER}/{file_name} sha256:{digest}")
    return tables
