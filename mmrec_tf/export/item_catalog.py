"""Export a trained model over a different set of items, without retraining.

A *catalog* is the set of items ``retrieve`` may return. By default it is
every item the model was trained on; :func:`prepare_catalog` makes a model and
feature space for another one:

* items the model knows keep their trained embeddings;
* items it does not know get embeddings from their content - when the
  model's item tower reads item features (an
  :class:`~mmrec_tf.layers.ItemFeatureEncoder` with feature tables, as
  ``lstm_two_tower``): their feature rows are built with the training run's
  vocabularies (:func:`~mmrec_tf.data.feature_space.extend_item_space`) and
  their id embedding is zero, exactly what the model computes for an item
  whose id it never saw but whose features it can read (the catalog must
  have a column for every feature the item tower reads; empty cells are
  missing values, as in training; precomputed ``vector`` features are
  missing for new items). They are understood
  everywhere: ``retrieve`` returns them, ``score`` and ``item_embedding``
  take them, and in a ``history`` they feed the user tower through their
  content;
* a model without content features (``two_tower``, ``popularity``) cannot
  embed an unknown id, so new ids are rejected with an error naming them;
* known items left out of the catalog are never returned by ``retrieve``,
  but are still understood in histories and by ``score``;
* ranking models have no ``retrieve``: for them a catalog only adds new
  items, whose content ``score`` (and ``explain``) then read.

Command line: ``mmrec export RUN --items items.csv`` (``item_id`` plus the
feature columns of the training data, e.g. ``title,genres``).

Example (``export_model(model, data.preprocessor, "saved_models", "lstm_two_tower",
catalog="new_items.csv")`` does this first, then serves ``catalog.model``):

    catalog = prepare_catalog(model, space, "new_items.csv")
    catalog.model, catalog.space, catalog.item_ids, catalog.new_item_ids
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import keras
import numpy as np
import pandas as pd

from mmrec_tf.data.feature_space import FeatureSpace, extend_item_space, read_item_table
from mmrec_tf.layers.item_feature_encoder import ItemFeatureEncoder

MAX_LISTED_IDS = 10


@dataclasses.dataclass
class ItemCatalog:
    """A model and feature space ready to export over ``item_ids``.

    ``model`` and ``space`` are the trained ones when every catalog item is
    known, else copies whose item vocabulary also holds ``new_item_ids``.

    Example:
    >>> from mmrec_tf.data.sources import make_synthetic
    >>> from mmrec_tf import FeatureSpace, create_model
    >>> space = FeatureSpace.build(make_synthetic(num_users=5, num_items=8, num_clusters=2))
    >>> model = create_model("two_tower", space=space, embedding_dim=4)
    >>> catalog = prepare_catalog(model, space, list(space.item_vocab.ids[:3]))
    >>> len(catalog.item_ids), catalog.new_item_ids, catalog.model is model
    (3, [], True)
    """

    model: keras.Model
    space: FeatureSpace
    item_ids: list[str]
    new_item_ids: list[str]


def prepare_catalog(model: keras.Model, space: FeatureSpace,
                    catalog: str | os.PathLike | pd.DataFrame | Sequence[str]) -> ItemCatalog:
    """The model, feature space and item ids to export for ``catalog`` (see the module docstring).

    Args:
        model: the trained model.
        space: its feature space (vocabularies and item feature tables).
        catalog: an ``items.csv`` path (``item_id`` + feature columns, parsed
            with the kinds of ``space.schema``), a DataFrame indexed by item id
            (or with an ``item_id`` column) whose columns hold parsed feature
            values (tuples for multi-categorical features), or a list of ids
            (known items only).

    Raises:
        ValueError: an empty catalog, a duplicate or empty id, new ids for a
            model without content features, or new ids without the feature
            columns the model's item tower reads (the message names them).

    Example:
    >>> from mmrec_tf.data.sources import make_synthetic
    >>> from mmrec_tf import FeatureSpace, create_model
    >>> space = FeatureSpace.build(make_synthetic(num_users=5, num_items=8, num_clusters=2))
    >>> model = create_model("lstm_two_tower", space=space, embedding_dim=4, lstm_units=4, max_history=3)
    >>> items = pd.DataFrame({"title": ["a new film"], "genres": [()]}, index=["new-1"])
    >>> catalog = prepare_catalog(model, space, items)
    >>> catalog.new_item_ids, catalog.model.num_items
    (['new-1'], 9)
    """
    items = _catalog_frame(catalog, space)
    ids = list(items.index)
    new_ids = [item for item in ids if item not in space.item_vocab]
    if not new_ids:
        return ItemCatalog(model, space, ids, [])
    listed = f"{new_ids[:MAX_LISTED_IDS]}" + (f" and {len(new_ids) - MAX_LISTED_IDS} more"
                                             if len(new_ids) > MAX_LISTED_IDS else "")
    encoder = getattr(model, "item_encoder", None)
    features = sorted(encoder.feature_specs) if isinstance(encoder, ItemFeatureEncoder) else []
    if not features:
        raise ValueError(
            f"catalog: {len(new_ids)} item id(s) are unknown to the model and its item tower "
            f"({type(model).__name__}) has no content features to embed them from: {listed}; drop them from "
            "the catalog or retrain with them")
    readable = [name for name in features if space.item_features[name].kind.value != "vector"]
    if not readable:
        raise ValueError(
            f"catalog: {len(new_ids)} item id(s) are unknown to the model and its item features {features} are "
            f"precomputed vectors a catalog table cannot supply: {listed}")
    missing = [name for name in readable if name not in items.columns]
    if missing:
        raise ValueError(
            f"catalog: {len(new_ids)} new item id(s) are embedded from the item features the model reads "
            f"({readable}), but the catalog has no column {missing}: {listed}")
    bigger_space = extend_item_space(space, items)
    return ItemCatalog(_with_more_items(model, bigger_space), bigger_space, ids, new_ids)


def _catalog_frame(catalog, space: FeatureSpace) -> pd.DataFrame:
    if isinstance(catalog, (str, os.PathLike)):
        items = read_item_table(catalog, space.schema)
    elif isinstance(catalog, pd.DataFrame):
        items = catalog.set_index("item_id") if "item_id" in catalog.columns else catalog
    elif isinstance(catalog, Sequence):
        items = pd.DataFrame(index=list(catalog))
    else:
        raise ValueError(f"catalog must be an items.csv path, a DataFrame or a list of item ids, "
                         f"got {type(catalog).__name__}")
    items = items.set_axis([str(item).strip() for item in items.index])
    if len(items.index) == 0:
        raise ValueError("catalog: no items; retrieve needs at least one")
    if "" in items.index:
        raise ValueError(f"catalog: item {list(items.index).index('') + 1} has an empty id")
    duplicated = items.index.duplicated()
    if duplicated.any():
        raise ValueError(f"catalog: item id {items.index[duplicated][0]!r} appears twice")
    return items


def _with_more_items(model: keras.Model, space: FeatureSpace) -> keras.Model:
    """A copy of ``model`` for ``space.num_items`` items: item-indexed weights padded, item tables refilled."""
    config = model.get_config()
    if "num_items" not in config:
        raise ValueError(f"{type(model).__name__} has no num_items argument; cannot add items to it")
    old_rows, new_rows = config["num_items"] + 1, space.num_items + 1
    if not model.built:
        model.build()
    bigger = type(model).from_config({**config, "num_items": space.num_items})
    bigger.build()
    if len(bigger.weights) != len(model.weights):
        raise ValueError(f"{type(model).__name__}: the enlarged copy has {len(bigger.weights)} weights, "
                         f"the model {len(model.weights)}; cannot transfer them")
    for old, new in zip(model.weights, bigger.weights):
        old_shape, new_shape = tuple(old.shape), tuple(new.shape)
        if old.name != new.name:
            raise ValueError(f"{type(model).__name__}: weight {new.path!r} of the enlarged copy does not match "
                             f"{old.path!r}; cannot transfer weights")
        values = keras.ops.convert_to_numpy(old.value)
        if old_shape != new_shape:
            if old_shape[0] != old_rows or new_shape != (new_rows, *old_shape[1:]):
                raise ValueError(f"{type(model).__name__}: weight {old.path!r} changes from {old_shape} to "
                                 f"{new_shape} with the number of items; only rows per item can be added")
            values = np.concatenate([values, np.zeros((new_rows - old_rows, *old_shape[1:]), values.dtype)])
        new.assign(values)
    encoder = bigger.item_encoder
    encoder.set_tables({name: space.item_features[name] for name in encoder.feature_specs})
    return bigger
