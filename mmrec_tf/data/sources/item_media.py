"""Item-side files that multimodal sources attach: images keyed by item id, and vector tables.

Two conventions shared by the multimodal sources and ``mmrec features``:

- an image folder holds ``<item id>.jpg`` (or ``.jpeg`` / ``.png``); an item
  without a file has no image, which is normal input;
- a features folder holds one :class:`~mmrec_tf.data.ItemFeatureTable` per
  modality as ``<feature name>.npz`` (what ``mmrec features --out`` writes).
  A source given no folder looks in ``$MMREC_FEATURES_DIR/<dataset>`` or
  else ``runs/features/<dataset>`` (relative to the working directory, where
  ``mmrec features`` writes by default; ``<dataset>`` without its ``-mm``
  suffix) and attaches what it finds there.
"""

from __future__ import annotations

import logging
import os
import pathlib
from collections.abc import Mapping

from mmrec_tf.data.item_feature_table import ItemFeatureTable, ItemFeatureTableError
from mmrec_tf.data.schema import Feature
from mmrec_tf.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
FEATURES_DIR_VARIABLE = "MMREC_FEATURES_DIR"

logger = logging.getLogger(__name__)

ItemFeaturesArgument = str | os.PathLike | Mapping[str, "str | os.PathLike | ItemFeatureTable"] | None


def find_item_images(folder: str | os.PathLike) -> dict[str, pathlib.Path]:
    """Image files of a folder by item id: ``<id>.jpg|.jpeg|.png`` → path (other files are ignored).

    Raises :class:`DataError` when the folder is missing or one id has two
    image files.

    Example:
    >>> import tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "42.jpg").write_bytes(b"")
    >>> _ = (folder / "notes.txt").write_text("not an image")
    >>> {item: path.name for item, path in find_item_images(folder).items()}
    {'42': '42.jpg'}
    """
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise DataError("expected a folder of <item id>.jpg images", path=folder)
    images: dict[str, pathlib.Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES or path.name.startswith(".") or not path.is_file():
            continue
        if path.stem in images:
            raise DataError(f"item {path.stem!r} has two images: {images[path.stem].name} and {path.name}",
                            path=folder)
        images[path.stem] = path
    return images


def default_item_features_dir(dataset_name: str) -> pathlib.Path:
    """``$MMREC_FEATURES_DIR/<name>`` if that variable is set, else ``runs/features/<name>``.

    ``<name>`` is the dataset name without a ``-mm`` suffix: item vectors
    belong to the items, so ``movielens-100k`` and ``movielens-100k-mm`` share
    them.

    Example:
    >>> default_item_features_dir("movielens-100k-mm").parts[-2:]
    ('features', 'movielens-100k')
    """
    name = dataset_name.removesuffix("-mm")
    base = os.environ.get(FEATURES_DIR_VARIABLE)
    return pathlib.Path(base) / name if base else pathlib.Path("runs") / "features" / name


def read_item_feature_tables(item_features: ItemFeaturesArgument, dataset_name: str) -> dict[str, ItemFeatureTable]:
    """Item feature tables by feature name, from a folder, a mapping, or the default folder.

    ``item_features`` is a folder (every ``<name>.npz`` in it), a mapping of
    feature name to a table or its ``.npz`` path, or None: the default folder
    of :func:`default_item_features_dir` if it exists, else nothing.

    Example:
    >>> read_item_feature_tables({}, "toy")
    {}
    """
    if item_features is None:
        folder = default_item_features_dir(dataset_name)
        if not folder.is_dir():
            return {}
        item_features = folder
    if isinstance(item_features, Mapping):
        entries = dict(item_features)
    else:
        folder = pathlib.Path(item_features)
        if not folder.is_dir():
            raise DataError("expected a folder of item feature tables (<name>.npz)", path=folder)
        entries = {path.stem: path for path in sorted(folder.glob("*.npz")) if not path.name.startswith(".")}
    tables = {}
    for name, entry in entries.items():
        try:
            Feature(name, "vector", "item")
        except ValueError as exc:
            raise DataError(str(exc), path=entry if not isinstance(entry, ItemFeatureTable) else None) from None
        if isinstance(entry, ItemFeatureTable):
            tables[name] = entry
            continue
        try:
            tables[name] = ItemFeatureTable.load(entry)
        except (ItemFeatureTableError, OSError) as exc:
            raise DataError(f"cannot read item feature table {name!r}: {exc}", path=entry) from None
        logger.info("attached item feature table %r from %s: %r", name, entry, tables[name])
    return tables
