"""MovieLens-100K with plot text and posters: the ``movielens-100k-mm`` dataset.

Layout of the folder the user gives (``../shared/data`` here)::

    ml-100k/                                  GroupLens files (u.data, u.item, u.user)
    ml-100k-plots/movielens100k_details.csv   IMDb details keyed by movie_id (= item id)
    ml-100k-posters/<item id>.jpg             one poster per item that has one

On top of ``movielens-100k`` (ratings, ``title``, ``genres``, ``year``, user
features) each item gets ``description`` (text: the plot paragraph; None
when the CSV has no row for the item) and ``poster_file`` (image: the poster
path; None when there is no file). Missing plots and posters are normal:
1,591 and 1,646 of the 1,682 items have one. Poster and plot *vectors*
(computed once by ``mmrec features``) are attached as ``vector`` features
from a features folder (see :mod:`.item_media`).
"""

from __future__ import annotations

import logging
import os
import pathlib

import pandas as pd

from mmrec_tf.data.dataset import Dataset
from mmrec_tf.data.schema import Feature, Schema
from mmrec_tf.data.sources.delimited import Column, read_delimited
from mmrec_tf.data.sources.item_media import ItemFeaturesArgument, find_item_images, read_item_feature_tables
from mmrec_tf.data.sources.movielens import MOVIELENS_SCHEMA, load_grouplens_folder
from mmrec_tf.errors import DataError

MOVIELENS_FOLDER = "ml-100k"
PLOTS_FILE = pathlib.Path("ml-100k-plots") / "movielens100k_details.csv"
POSTERS_FOLDER = "ml-100k-posters"

MOVIELENS_MM_SCHEMA = Schema([
    *MOVIELENS_SCHEMA,
    Feature("description", "text", "item", "IMDb plot paragraph (ml-100k-plots); None when absent"),
    Feature("poster_file", "image", "item", "poster JPEG (ml-100k-posters); None when absent"),
])

logger = logging.getLogger(__name__)


def load_movielens_100k_mm(path: str | os.PathLike | None, item_features: ItemFeaturesArgument = None,
                           skip_bad_rows: bool = False) -> Dataset:
    """Load ``movielens-100k-mm`` from a folder holding ``ml-100k/``, ``ml-100k-plots/`` and ``ml-100k-posters/``.

    ``ml-100k/`` is required; without the plots CSV or the poster folder every
    item lacks that modality (a warning is logged). ``item_features`` names
    precomputed vector tables to attach (a folder of ``<name>.npz``, a mapping,
    or None for the default features folder, see :mod:`.item_media`); pass
    ``{}`` to attach none.

    Example:
    >>> ds = load_movielens_100k_mm("../shared/data", item_features={})  # doctest: +SKIP
    >>> int(ds.items["poster_file"].notna().sum()), int(ds.items["description"].notna().sum())  # doctest: +SKIP
    (1646, 1591)
    """
    if path is None:
        raise DataError("movielens-100k-mm needs the folder that holds ml-100k/, ml-100k-plots/ and "
                        "ml-100k-posters/ (e.g. ../shared/data)")
    root = pathlib.Path(path)
    if not (root / MOVIELENS_FOLDER).is_dir():
        raise DataError(f"expected a folder with {MOVIELENS_FOLDER}/ (and ml-100k-plots/, ml-100k-posters/)",
                        path=root)
    base = load_grouplens_folder(root / MOVIELENS_FOLDER, skip_bad_rows=skip_bad_rows)
    items = base.items.copy()
    # object columns keep None for "absent" (a list of str and None would become a string column with NaN).
    items["description"] = pd.Series(_read_plots(root / PLOTS_FILE, items.index, skip_bad_rows), index=items.index,
                                     dtype=object)
    items["poster_file"] = pd.Series(_find_posters(root / POSTERS_FOLDER, items.index), index=items.index,
                                     dtype=object)
    dataset = Dataset(
        name="movielens-100k-mm", interactions=base.interactions, items=items, users=base.users,
        schema=MOVIELENS_MM_SCHEMA, source=str(root), item_title_feature="title",
    )
    tables = read_item_feature_tables(item_features, dataset.name)
    return dataset.with_item_vectors(tables) if tables else dataset


def _read_plots(file: pathlib.Path, item_ids, skip_bad_rows: bool) -> list[str | None]:
    if not file.is_file():
        logger.warning("%s not found: no item of movielens-100k-mm has a plot", file)
        return [None] * len(item_ids)
    result = read_delimited(file, [Column("movie_id"), Column("description", str, "plot text")],
                            extra_columns=True, skip_bad_rows=skip_bad_rows)
    known = set(item_ids)
    plots: dict[str, str] = {}
    for row, (movie_id, text) in enumerate(zip(result.frame["movie_id"], result.frame["description"])):
        problem = None
        if movie_id not in known:
            problem = f"movie_id {movie_id!r} is not an ml-100k item id"
        elif movie_id in plots:
            problem = f"movie_id {movie_id!r} appears twice"
        if problem is None:
            if text.strip():
                plots[movie_id] = text.strip()
            continue
        if not skip_bad_rows:
            # Without skipped rows the frame's row r is data line r + 2 (after the header).
            raise DataError(problem, path=file, line=row + 2, field="movie_id")
        logger.warning("%s: skipped a row: %s", file, problem)
    return [plots.get(item_id) for item_id in item_ids]


def _find_posters(folder: pathlib.Path, item_ids) -> list[str | None]:
    if not folder.is_dir():
        logger.warning("%s not found: no item of movielens-100k-mm has a poster", folder)
        return [None] * len(item_ids)
    images = find_item_images(folder)
    unknown = sorted(set(images) - set(item_ids))
    if unknown:
        logger.warning("%s: %d image(s) are not ml-100k items and are ignored, e.g. %s", folder, len(unknown),
                       unknown[:3])
    return [str(images[item_id]) if item_id in images else None for item_id in item_ids]
