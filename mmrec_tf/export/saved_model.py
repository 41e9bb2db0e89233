"""Export a trained model as a versioned SavedModel that TF Serving loads as it is."""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
import tensorflow as tf

from mmrec_tf.data.feature_space import FeatureSpace
from mmrec_tf.data.preprocessor import Preprocessor
from mmrec_tf.export.item_catalog import prepare_catalog
from mmrec_tf.export.serving_module import ServingModule
from mmrec_tf.export.tf_serving import SERVING_INPUTS_RELATIVE_PATH, write_warmup_requests
from mmrec_tf.export.versioning import write_version_atomically
from mmrec_tf.model_registration import model_task_kind

# Known users in each warm-up record: enough rows for `serve-check --compare` to measure top-K overlap.
WARMUP_USERS = 8
SAFE_NAME_CHARACTERS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


def check_model_name(name: str) -> str:
    """A model name is one folder name: letters, digits, ``_ - .``; never ``..`` or a path."""
    if not name or name in (".", "..") or not set(name) <= SAFE_NAME_CHARACTERS:
        raise ValueError(f"model name {name!r}: expected letters, digits, '_', '-' or '.', and no path")
    return name


def example_requests(space, max_history: int, num_candidates: int = 5, batch: int = 2,
                     rating_levels: int = 0) -> dict:
    """Realistic inputs for warm-up records: known users, their first items as history.

    With ``rating_levels`` also ``history_rating``: a rating ``1..rating_levels`` per history item, 0 at padding.
    """
    users = list(space.user_vocab.ids[:batch]) or ["unknown"]
    items = list(space.item_vocab.ids)
    history_length = min(max_history, max(1, len(items) - 1), 10)
    history = [[items[(row + j) % len(items)] for j in range(history_length)] + [""] for row in range(len(users))]
    candidates = [[items[(row * 7 + j) % len(items)] for j in range(num_candidates)] for row in range(len(users))]
    requests = {"user_id": users, "history": history, "candidates": candidates, "item_id": items[: len(users)]}
    if rating_levels:
        requests["history_rating"] = [[1 + (row + j) % rating_levels for j in range(history_length)] + [0]
                                      for row in range(len(users))]
    return requests


def served_space_and_inputs(model, preprocessor: Preprocessor | FeatureSpace) -> tuple[FeatureSpace, dict | None]:
    """``(space, serving inputs or None)`` of what :func:`export_model` is given, checked against ``model``.

    The signatures keep the model's ``max_history`` most recent items of a
    request's history. A retrieval model may keep fewer than its
    :class:`~mmrec_tf.data.preprocessor.Preprocessor`'s examples held (it
    reads only its most recent ones in training too), never more: served
    longer histories than it trained on, it would read other inputs. A ranking
    model's examples hold exactly its history. The returned
    :meth:`~mmrec_tf.data.preprocessor.Preprocessor.serving_inputs` name the
    length served; for a model that does not read the history they say so.
    A bare ``FeatureSpace`` says nothing of the history rule: None.
    """
    if isinstance(preprocessor, FeatureSpace):
        return preprocessor, None
    if not isinstance(preprocessor, Preprocessor):
        raise TypeError(f"export_model needs the Preprocessor the model's examples were made with (or its "
                        f"FeatureSpace), got {type(preprocessor).__name__}")
    kind = model_task_kind(model)
    model_history = getattr(model, "max_history", None)
    if model_history is None or not getattr(model, "uses_history", True):
        record = {key: value for key, value in preprocessor.record().items() if key != "max_history"}
        use = "retrieve leaves them out of its list" if kind.retrieves else "explain compares candidates with them"
        return preprocessor.space, {**record, "history_rule": f"the user's earlier items, oldest first; the model's "
                                                              f"scores do not read them, {use}"}
    model_history = int(model_history)
    if model_history > preprocessor.max_history or (kind.labelled and model_history != preprocessor.max_history):
        raise ValueError(f"{type(model).__name__} keeps max_history={model_history} but the preprocessor's examples "
                         f"keep {preprocessor.max_history}; a {kind.name} model's examples keep "
                         f"{'exactly its history' if kind.labelled else 'at least its history'}: export with the "
                         "preprocessor the model was trained with")
    return preprocessor.space, preprocessor.serving_inputs(model_history, int(getattr(model, "rating_levels", 0) or 0))


def export_model(model, preprocessor: Preprocessor | FeatureSpace, saved_models_dir: str | os.PathLike, name: str,
                 version: int | None = None, k: int = 100, warmup: bool = True, index: str = "auto",
                 catalog: str | os.PathLike | pd.DataFrame | Sequence[str] | None = None,
                 rerank: str | None = None, item_popularity: np.ndarray | None = None, fresh_slots: int = 0,
                 fresh_item_ids: Sequence[str] = ()) -> pathlib.Path:
    """Write ``<saved_models_dir>/<name>/<version>/`` atomically and return that folder.

    ``preprocessor`` is the :class:`~mmrec_tf.data.preprocessor.Preprocessor` the model's examples were
    made with (``data.preprocessor``; for a saved run
    :func:`~mmrec_tf.experiment.run_preprocessor`). Its vocabularies' lookups
    are exported, its histories must be as long as the model's (a retrieval
    model's may be longer, see :func:`served_space_and_inputs`), and what a
    request's ``history`` must hold (its
    :meth:`~mmrec_tf.data.preprocessor.Preprocessor.serving_inputs`, e.g. only
    liked items for a model trained on ``history="positive"`` examples) is
    written to ``assets.extra/mmrec_inputs.json``. A bare ``FeatureSpace`` is
    accepted too; the export then records no history rule.

    The folder holds the SavedModel with the contract's signatures (see
    :class:`~mmrec_tf.export.serving_module.ServingModule`) and, with
    ``warmup``, ``assets.extra/tf_serving_warmup_requests`` with one request
    per signature. The version is the next integer unless given; an existing
    version is never overwritten, and a crash leaves no version folder.

    ``index`` chooses how ``retrieve`` searches the catalog: ``"brute_force"``
    (exact float32), ``"bfloat16"`` (bfloat16 scan + exact float32 re-rank of
    a shortlist, for large catalogs on CPU), ``"ivf[:nlist=N,nprobe=M]"``
    (an inverted-file index: only the items of the ``nprobe`` partitions
    nearest the user are scored; new ``catalog`` items join the partitions of
    the known ones) or ``"auto"`` (by catalog size, see
    :func:`~mmrec_tf.export.index_choice.make_retrieval_index`).
    ``catalog`` replaces the set of items ``retrieve`` returns without
    retraining: an ``items.csv`` path, a DataFrame or a list of ids; items
    the model does not know are embedded from their features (see
    :func:`~mmrec_tf.export.item_catalog.prepare_catalog`). A ranking model
    has no ``retrieve``; its ``score`` then reads new candidates' content.
    ``rerank`` re-ranks a shortlist inside ``retrieve`` (``"mmr:0.3"``,
    ``"calibrated:0.5"``, ``"tail:0.2"``; see :mod:`~mmrec_tf.export.reranking`);
    ``"tail"`` needs ``item_popularity``, the training interactions per item index.
    ``fresh_slots`` keeps that many places of each ``retrieve`` list for the best-ranked fresh
    items: new ``catalog`` items and ``fresh_item_ids`` (see
    :class:`~mmrec_tf.export.fresh_slots.FreshSlots`).

    Example:
    >>> export_model(model, data.preprocessor, "saved_models", "lstm_two_tower")  # doctest: +SKIP
    PosixPath('saved_models/lstm_two_tower/1')
    >>> export_model(model, data.preprocessor, "saved_models", "lstm_two_tower", catalog="new_items.csv")  # doctest: +SKIP
    PosixPath('saved_models/lstm_two_tower/2')
    """
    check_model_name(name)
    space, serving_inputs = served_space_and_inputs(model, preprocessor)
    catalog_ids, new_item_ids = None, []
    if catalog is not None:
        prepared = prepare_catalog(model, space, catalog)
        model, space = prepared.model, prepared.space
        if model_task_kind(model).retrieves:
            catalog_ids, new_item_ids = prepared.item_ids, prepared.new_item_ids
    module = ServingModule(model, space, k=k, index=index, catalog_ids=catalog_ids, new_item_ids=new_item_ids,
                           rerank=rerank, item_popularity=item_popularity, fresh_slots=fresh_slots,
                           fresh_item_ids=fresh_item_ids)
    signatures = module.signatures()
    inputs = example_requests(space, module.max_history or 10, batch=WARMUP_USERS, rating_levels=module.rating_levels)

    def write(folder: pathlib.Path) -> None:
        tf.saved_model.save(module, str(folder), signatures=signatures)
        if warmup:
            requests = [(signature, {n: np.asarray(inputs[n], dtype=np.int32 if n == "history_rating" else object)
                                     for n in names})
                        for signature, names in module.signature_inputs.items()]
            write_warmup_requests(folder, requests, model_name=name)
        if serving_inputs is not None:
            path = folder / SERVING_INPUTS_RELATIVE_PATH
            path.parent.mkdir(exist_ok=True)
            path.write_text(json.dumps(serving_inputs, indent=2) + "\n", encoding="utf-8")

    return write_version_atomically(pathlib.Path(saved_models_dir) / name, write, version=version)
