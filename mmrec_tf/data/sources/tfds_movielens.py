"""MovieLens-100K through TensorFlow Datasets (``movielens/100k-ratings``).

TFDS downloads the data the first time, so this source needs a network; on
machines without one use :func:`~mmrec_tf.data.sources.movielens.load_movielens_100k`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mmrec_tf.data.dataset import Dataset
from mmrec_tf.data.sources.movielens import MOVIELENS_SCHEMA

TFDS_GENRES = (
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
    "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "Unknown", "War",
    "Western", "(no genres listed)",
)
GROUPLENS_SPELLING = {"Children": "Children's", "Unknown": "unknown"}


def tfds_genre_name(label: int) -> str | None:
    """The GroupLens spelling of a TFDS ``movie_genres`` label (None for "no genres listed")."""
    name = TFDS_GENRES[label]
    return None if name.startswith("(") else GROUPLENS_SPELLING.get(name, name)


def load_tfds_movielens(split: str = "train", data_dir: str | None = None) -> Dataset:
    """Load ``movielens/100k-ratings`` and convert it to a :class:`Dataset`.

    TFDS numbers genres in its own 21-name list (:data:`TFDS_GENRES`); they are
    converted to the GroupLens spellings the other MovieLens sources use.
    Titles carry the year.

    Example:
    >>> ds = load_tfds_movielens()  # doctest: +SKIP
    """
    import tensorflow_datasets as tfds

    ratings = tfds.load("movielens/100k-ratings", split=split, data_dir=data_dir)
    columns = {k: [] for k in ("user_id", "item_id", "rating", "timestamp", "title", "genres",
                               "age", "gender", "occupation")}
    for row in tfds.as_numpy(ratings):
        columns["user_id"].append(row["user_id"].decode())
        columns["item_id"].append(row["movie_id"].decode())
        columns["rating"].append(float(row["user_rating"]))
        columns["timestamp"].append(int(row["timestamp"]))
        columns["title"].append(row["movie_title"].decode("utf-8", errors="replace"))
        names = (tfds_genre_name(int(g)) for g in np.atleast_1d(row["movie_genres"]))
        columns["genres"].append(tuple(n for n in names if n is not None))
        columns["age"].append(float(row["raw_user_age"]) if "raw_user_age" in row else float(row["bucketized_user_age"]))
        columns["gender"].append("M" if bool(row["user_gender"]) else "F")
        columns["occupation"].append(row["user_occupation_text"].decode())
    frame = pd.DataFrame(columns)
    interactions = frame[["user_id", "item_id", "rating", "timestamp"]].astype(
        {"rating": "float32", "timestamp": "int64"})
    items = frame.drop_duplicates("item_id").set_index("item_id")[["title", "genres"]]
    items = items.assign(year=items["title"].str.extract(r"\((\d{4})\)\s*$", expand=False).fillna(""))
    users = frame.drop_duplicates("user_id").set_index("user_id")[["age", "gender", "occupation"]]
    users = users.astype({"age": "float32"})
    return Dataset(
        name="movielens-100k", interactions=interactions, items=items, users=users,
        schema=MOVIELENS_SCHEMA, source=f"tfds:movielens/100k-ratings[{split}]", item_title_feature="title",
    )
