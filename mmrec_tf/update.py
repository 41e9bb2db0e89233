"""Continue training a finished run on new interactions, with new users and items (``mmrec update``).

An update never starts from scratch and never touches its parent run:

1. The run's feature space grows (:func:`~mmrec_tf.data.vocabulary_growth.grow_space`):
   new users and items are appended, known ids keep their indices.
2. The model is rebuilt for the grown space with the same architecture
   (:func:`grow_model`): every weight is copied; embedding tables indexed by
   user or item (whose first dimension grew) keep their trained rows and get
   zero rows for the new ids (a new item starts from its features alone).
   In a long-lived process (rolling evaluation) the rebuilt model can keep
   spare rows, and later updates that fit in them grow it in place
   (:func:`grow_in_place`): no new model, the compiled training step reused.
3. The optimizer state grows the same way (:func:`grow_optimizer`): Adam's
   moments of known rows and its step count continue.
4. Training continues on the interactions the run has not trained on
   (:func:`new_interactions`), each with the user's history over everything
   seen so far; counts a model keeps (item frequencies for logQ, which items
   have interactions, popularity) are taken over everything seen.
5. The result is written as a new run folder (:func:`update`) whose
   ``run.json`` names its parent, the data it saw and the vocabulary growth.
   Files are written aside and renamed, ``run.json`` last, so a killed update
   leaves an unfinished folder (resumable with ``resume=True``) and never a
   half-written run; the parent and every exported version are never opened
   for writing.

Example:
>>> result = update("runs/lstm_two_tower", "new_week/", epochs=1)  # doctest: +SKIP
>>> str(result.growth)  # doctest: +SKIP
'users 943 + 12, items 1682 + 30'
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import shutil
import time

import keras
import numpy as np
import pandas as pd

from mmrec_tf.data.dataset import Dataset
from mmrec_tf.data.feature_space import FeatureSpace
from mmrec_tf.data.pipeline import Examples
from mmrec_tf.data.preprocessor import Preprocessor
from mmrec_tf.data.splits import Split
from mmrec_tf.data.sources import load_dataset
from mmrec_tf.data.vocabulary_growth import (VocabularyGrowth, grow_space, id_type_difference, schema_difference,
                                              with_spare_rows)
from mmrec_tf.experiment import MODEL_FILE, RUN_FILE, SPACE_FOLDER, load_run, load_run_data, run_preprocessor
from mmrec_tf.layers.item_feature_encoder import table_arrays
from mmrec_tf.registry import accepted_arguments
from mmrec_tf.training import OPTIMIZERS, TrainingConfig, train_model, training_dataset

UPDATE_KEY = "update"
_CONFIG_ONLY = ("num_users", "num_items", "trainable", "dtype")
_BASE_KEYS = ("name", "model", "task", "data", "training")


@dataclasses.dataclass
class UpdatedModel:
    """What :func:`continue_training` returns: the grown, further-trained model and its preprocessor.

    ``new_examples`` counts the interactions trained on, ``seen_examples``
    everything the model has now seen; ``train_seconds`` is the wall time of
    the whole update: growing the space, building the examples, the grown
    model and optimizer, and the gradient steps (``fit``). ``in_place``: the
    model was grown into its spare rows (:func:`grow_in_place`) rather than
    rebuilt.
    """

    model: keras.Model
    preprocessor: Preprocessor
    growth: VocabularyGrowth
    new_examples: int
    seen_examples: int
    train_seconds: float
    in_place: bool = False

    @property
    def space(self) -> FeatureSpace:
        """The grown vocabularies and item feature tables."""
        return self.preprocessor.space


def architecture_arguments(model) -> dict:
    """The ``create_model`` arguments that rebuild ``model``'s architecture for another feature space.

    From the model's config: vocabulary sizes are dropped (the space gives
    them) and the feature specs become the names of the tables to use.

    Example:
    >>> from mmrec_tf.data import FeatureSpace, load_dataset
    >>> from mmrec_tf.registry import create_model
    >>> space = FeatureSpace.build(load_dataset("synthetic", num_users=5, num_items=8, num_clusters=2))
    >>> arguments = architecture_arguments(create_model("lstm_two_tower", space=space, embedding_dim=8))
    >>> arguments["embedding_dim"], sorted(arguments["item_features"])
    (8, ['genres', 'title'])
    """
    accepted = accepted_arguments(type(model))
    arguments = {}
    for key, value in model.get_config().items():
        if key in _CONFIG_ONLY:
            continue
        if key in ("item_feature_specs", "user_feature_specs") and f"{key.split('_')[0]}_features" in accepted:
            arguments[f"{key.split('_')[0]}_features"] = list(value or {})
        elif key in accepted:
            arguments[key] = value
    return arguments


def _copy_grown(source, target) -> None:
    """Assign ``source``'s value to ``target``; a first dimension that grew keeps or zeroes ``target``'s extra rows.

    Extra rows of a trainable table (embeddings of new ids) start at zero, so
    a new id adds nothing until it is trained: a new item is embedded from
    its features alone, a new user from the history. Extra rows of other
    tables (feature tables, optimizer slots) keep ``target``'s values.
    A source with spare rows (:func:`grow_model`; never trained, all zero)
    may be larger than ``target``: its rows after ``target``'s must be zero.
    """
    old = keras.ops.convert_to_numpy(source)
    if len(old.shape) and len(target.shape) and old.shape[0] > target.shape[0] and not old[target.shape[0]:].any():
        old = old[: target.shape[0]]
    if tuple(old.shape) == tuple(target.shape):
        target.assign(old)
        return
    if len(old.shape) != len(target.shape) or old.shape[1:] != tuple(target.shape[1:]) \
            or old.shape[0] > target.shape[0]:
        raise ValueError(f"cannot grow {source.path} of shape {tuple(old.shape)} into {tuple(target.shape)}: only "
                         "tables indexed by user or item (first dimension) may grow")
    value = (np.zeros(tuple(target.shape), old.dtype) if target.trainable
             else keras.ops.convert_to_numpy(target).copy())
    value[: old.shape[0]] = old
    target.assign(value)


def _build(model, examples: Examples, batch_size: int = 64) -> None:
    model.prepare(examples)
    if not model.built:
        model.build()
    model(next(iter(training_dataset(model, examples, batch_size, shuffle=False, epochs=1))))


def _local_path(model, variable) -> str:
    """A weight's path without the model's name (tables attached before the model is built lack it)."""
    prefix = f"{model.name}/"
    return variable.path[len(prefix):] if variable.path.startswith(prefix) else variable.path


def grow_model(model, space: FeatureSpace, examples: Examples, spare_users: float = 0.0, spare_items: float = 0.0):
    """``model``'s architecture built for the grown ``space``, with every trained weight copied in.

    ``examples`` (of the grown space) build the new model. Weights are matched
    in order and by path; a weight whose first dimension grew (an embedding
    table of users or items, a per-item table) keeps its trained rows
    ``0..N``; the rows after them are zero in trainable tables (see
    :func:`_copy_grown`). Tables that grew and are not trained (feature
    tables, counts) are the grown model's own, built from ``space``: the
    same rows for known ids, the new ids' rows after them (rows a model
    with spare rows left empty are never copied over them).

    ``spare_users`` (``spare_items``) > 0 gives the user (item) tables
    ``ceil(spare * n)`` rows more than the space's ``n`` users (items), for
    later updates to grow into in place
    (:func:`grow_in_place`, same model object, its compiled training step
    reused). Such a model's ``num_users`` / ``num_items`` count the ids in
    use, its tables are larger, so it is meant for training in the same
    process (rolling evaluation), not for saving.

    Example:
    >>> grown = grow_model(model, grown_space, examples["train"])  # doctest: +SKIP
    """
    arguments = architecture_arguments(model)
    built_for = space
    spare = spare_users > 0 or spare_items > 0
    if spare:
        built_for = with_spare_rows(space, math.ceil(spare_users * space.num_users),
                                    math.ceil(spare_items * space.num_items))
    grown = type(model).from_feature_space(built_for, **arguments)
    _build(grown, examples)
    old_weights, new_weights = model.weights, grown.weights
    if len(old_weights) != len(new_weights):
        raise ValueError(f"{type(model).__name__}: the grown model has {len(new_weights)} weights, the trained one "
                         f"{len(old_weights)}; cannot carry the training over")
    for old, new in zip(old_weights, new_weights):
        if _local_path(model, old) != _local_path(grown, new):
            raise ValueError(f"{type(model).__name__}: weight {old.path} has no counterpart in the grown model "
                             f"(found {new.path})")
        if not new.trainable and tuple(old.shape) != tuple(new.shape):
            continue  # a per-id table of the data (features, counts): built for the grown space, known rows alike
        _copy_grown(old, new)
    if spare:
        grown.row_capacity = (built_for.num_users, built_for.num_items)
        _use_rows(grown, space.num_users, space.num_items)
    return grown


def with_spare_capacity(model, space: FeatureSpace, examples: Examples, spare_users: float,
                        spare_items: float):
    """A copy of the untrained ``model`` (built for ``space``) with spare user and item rows, ready to train.

    For a long-lived trainer that will grow the model later
    (:func:`grow_in_place`): even its first update then keeps the model
    object and its compiled training step. The copy starts from ``model``'s
    initial weights; its spare embedding rows are zero (see :func:`grow_model`,
    whose ``spare_users`` and ``spare_items`` these are). ``examples`` (of
    ``space``) build both models.

    Example:
    >>> model = with_spare_capacity(create_model("two_tower", space=space), space, examples, 4.0, 0.5)  # doctest: +SKIP
    >>> model.row_capacity  # doctest: +SKIP
    (100, 36)
    """
    _build(model, examples)
    return grow_model(model, space, examples, spare_users, spare_items)


def _use_rows(model, num_users: int, num_items: int) -> None:
    """Make a model with spare rows serve ``num_users`` and ``num_items`` ids; forget steps traced for fewer."""
    model.num_users, model.num_items = num_users, num_items
    model.test_function = model.predict_function = None  # their full-catalog metric read num_items when traced


def grow_in_place(model, space: FeatureSpace) -> bool:
    """Grow a model built with spare rows (:func:`grow_model`) to ``space`` without rebuilding it; True if done.

    Possible when the model's class keeps nothing sized by the catalog in its
    training step (``grows_in_place``) and ``space`` fits in its spare rows:
    the new items' feature rows are written into the item tables, the new
    ids' embedding rows are already zero (spare rows are never trained), the
    optimizer state continues as it is, and the compiled training step is
    reused. Otherwise nothing changes and False is returned.

    Example:
    >>> grown = grow_model(model, space, examples, spare_users=1.0, spare_items=1.0)  # doctest: +SKIP
    >>> grow_in_place(grown, bigger_space)  # doctest: +SKIP
    True
    """
    capacity = getattr(model, "row_capacity", None)
    if capacity is None or not getattr(type(model), "grows_in_place", False) \
            or space.num_users > capacity[0] or space.num_items > capacity[1]:
        return False
    encoder = getattr(model, "item_encoder", None)
    for name, variable in (encoder.tables.items() if encoder is not None else ()):
        values, present = table_arrays(name, encoder.feature_specs[name]["kind"], space.item_features[name])
        if present is not None:
            values = np.where(present[:, None], values, 0.0)
            encoder.presence[name].assign(_padded(present.astype("float32"), variable.shape[0]))
        variable.assign(_padded(values.astype(variable.dtype), variable.shape[0]))
    _use_rows(model, space.num_users, space.num_items)
    return True


def _padded(values: np.ndarray, rows: int) -> np.ndarray:
    return np.concatenate([values, np.zeros((rows - len(values), *values.shape[1:]), values.dtype)])


def grow_optimizer(optimizer, model):
    """A copy of the trained ``optimizer`` built for ``model``'s (grown) weights, its state carried over.

    Slot variables (Adam's moments, Adagrad's accumulators) of grown tables
    keep the trained rows; rows of new ids start at the optimizer's initial
    state. The step count continues. ``None`` (the run never compiled an
    optimizer, e.g. popularity) gives ``None``.

    Example:
    >>> grown = grow_optimizer(model.optimizer, grown_model)  # doctest: +SKIP
    """
    if optimizer is None or not getattr(optimizer, "built", False):
        return None
    grown = type(optimizer).from_config(optimizer.get_config())
    grown.build(model.trainable_variables)
    if len(optimizer.variables) != len(grown.variables):
        raise ValueError(f"the trained optimizer has {len(optimizer.variables)} variables, the grown model's "
                         f"{len(grown.variables)}; cannot continue its state")
    for old, new in zip(optimizer.variables, grown.variables):
        _copy_grown(old, new)
    return grown


def ordered_log(seen: pd.DataFrame, new: pd.DataFrame, new_split: str = "train") -> tuple[pd.DataFrame, np.ndarray]:
    """Seen then new interactions in per-user time order as one log; and each log row's place in seen + new.

    Seen rows are split ``"train"``, new rows ``new_split``. Users come in the
    order they first appear; a user's rows by timestamp (when there are
    timestamps), then seen before new, then by their order in the frames.

    Example:
    >>> seen = pd.DataFrame({"user_id": ["u", "v"], "item_id": ["a", "b"], "timestamp": [5, 1]})
    >>> log, source_row = ordered_log(seen, pd.DataFrame({"user_id": ["u"], "item_id": ["c"], "timestamp": [2]}),
    ...                               new_split="test")
    >>> log["item_id"].tolist(), log["split"].tolist(), source_row.tolist()
    (['c', 'a', 'b'], ['test', 'train', 'train'], [2, 0, 1])
    """
    combined = pd.concat([seen, new], ignore_index=True)
    first_seen = {user: rank for rank, user in enumerate(pd.unique(combined["user_id"]))}
    keys = pd.DataFrame({"rank": combined["user_id"].map(first_seen).to_numpy(), "row": np.arange(len(combined))})
    order_by = ["rank", "row"]
    if "timestamp" in combined.columns:
        keys.insert(1, "timestamp", combined["timestamp"].to_numpy())
        order_by = ["rank", "timestamp", "row"]
    order = keys.sort_values(order_by, kind="stable").index.to_numpy()
    log = combined.iloc[order].reset_index(drop=True)
    log["position"] = log.groupby("user_id", sort=False).cumcount().astype("int32")
    log["split"] = np.where(order >= len(seen), new_split, "train")
    return log, order


def update_examples(preprocessor: Preprocessor, seen: pd.DataFrame, new: pd.DataFrame, replay: float = 0.0,
                    seed: int = 0) -> tuple[Examples, Examples]:
    """``(new, everything)``: examples of the ``new`` interactions and of all, histories over seen + new.

    ``preprocessor`` makes them, as it made the run's: each example's history
    is the user's interactions before it, seen or new (the rule of a training
    row, :mod:`~mmrec_tf.data.pipeline`), and ranking examples are labelled
    as the run's (a ``"sampled"`` label draws fresh negatives for every interaction).
    ``replay`` > 0 adds to the first a uniform sample (by ``seed``) of
    ``round(replay * len(new))`` seen interactions (at most all of them),
    replayed so an update does not drift away from the past.

    Example:
    >>> log = pd.DataFrame({"user_id": ["u", "u"], "item_id": ["a", "b"], "timestamp": [1, 2]})
    >>> from mmrec_tf.data.feature_space import FeatureSpace
    >>> from mmrec_tf.data.sources import make_synthetic
    >>> preprocessor = Preprocessor(FeatureSpace.build(make_synthetic(num_users=2, num_items=3, num_clusters=1)),
    ...                             max_history=2)
    >>> ids = list(preprocessor.space.item_vocab.ids)
    >>> seen = pd.DataFrame({"user_id": ["0"], "item_id": [ids[0]], "timestamp": [1]})
    >>> fresh = pd.DataFrame({"user_id": ["0"], "item_id": [ids[1]], "timestamp": [2]})
    >>> new, everything = update_examples(preprocessor, seen, fresh)
    >>> len(new), len(everything), new.history[0].tolist()
    (1, 2, [1, 0])
    >>> len(update_examples(preprocessor, seen, fresh, replay=1.0)[0])  # the seen row replayed too
    2
    """
    log, source_row = ordered_log(seen, new)
    is_new = source_row >= len(seen)
    if replay > 0:
        old = np.flatnonzero(~is_new)
        chosen = np.random.default_rng(seed).choice(old, min(len(old), round(replay * len(new))), replace=False)
        is_new[chosen] = True
    everything = preprocessor.examples(Split(log=log, method="update"))["train"]
    is_new = np.repeat(is_new, preprocessor.examples_per_interaction)  # an interaction's negatives follow it
    new_examples = Examples(everything.user_id[is_new], everything.item_id[is_new], everything.history[is_new],
                            {key: value[is_new] for key, value in everything.extras.items()})
    return new_examples, everything


def new_interactions(seen: pd.DataFrame, data: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``data`` that are not in ``seen``, as a multiset (a row seen twice is skipped twice).

    Rows match on ``user_id``, ``item_id`` and ``timestamp`` when both have
    timestamps, else on the ids alone. So new data may hold only its new rows
    or everything: the rows a run already trained on are not trained again.

    Example:
    >>> seen = pd.DataFrame({"user_id": ["u", "u"], "item_id": ["a", "b"]})
    >>> data = pd.DataFrame({"user_id": ["u", "u", "v"], "item_id": ["a", "a", "b"]})
    >>> new_interactions(seen, data).to_dict("list")
    {'user_id': ['u', 'v'], 'item_id': ['a', 'b']}
    """
    keys = ["user_id", "item_id"] + (["timestamp"] if "timestamp" in seen.columns and
                                     "timestamp" in data.columns else [])
    occurrence = data.groupby(keys, sort=False).cumcount()
    seen_counts = seen.groupby(keys, sort=False).size()
    index = pd.MultiIndex.from_frame(data[keys])
    already = seen_counts.reindex(index).fillna(0).to_numpy()
    return data[occurrence.to_numpy() >= already].reset_index(drop=True)


def continue_training(model, preprocessor: Preprocessor, seen: pd.DataFrame, new: pd.DataFrame, dataset: Dataset,
                      config: TrainingConfig, checkpoint_dir: str | os.PathLike | None = None, verbose: int | str = 0,
                      spare_users: float = 0.0, spare_items: float = 0.0, replay: float = 0.0) -> UpdatedModel:
    """Grow ``model`` and ``preprocessor``'s space with ``dataset``'s new users and items, then train on ``new``.

    ``seen`` are the interactions the model was trained on (histories and
    counts), ``new`` those to train on now (see :func:`new_interactions`);
    ``config.epochs`` passes over them (0: grow only), together with
    ``replay`` times as many of the ``seen`` interactions drawn at random
    (:func:`update_examples`). The optimizer's state continues.

    ``model`` is not changed, except a model an earlier call returned with
    spare rows: when the grown space fits in them it is grown and trained
    in place (:func:`grow_in_place`; the same object is returned, its
    compiled training step reused). Else a grown copy is built
    (:func:`grow_model`, with ``spare_users`` and ``spare_items`` rows per
    row in use for the next call).

    Example:
    >>> updated = continue_training(model, preprocessor, seen, new, dataset, TrainingConfig(epochs=1))  # doctest: +SKIP
    """
    started = time.perf_counter()
    grown_space, growth = grow_space(preprocessor.space, dataset)
    grown_preprocessor = preprocessor.with_space(grown_space)
    new_examples, everything = update_examples(grown_preprocessor, seen, new, replay, config.seed + len(seen))
    if not len(new_examples):
        raise ValueError("the new data holds no interaction the run has not trained on; nothing to update")
    in_place = grow_in_place(model, grown_space)
    if in_place:
        grown, optimizer = model, model.optimizer
    else:
        grown = grow_model(model, grown_space, everything, spare_users, spare_items)
        optimizer = grow_optimizer(getattr(model, "optimizer", None), grown)
    if optimizer is not None and type(optimizer) is not OPTIMIZERS[config.optimizer]:  # another optimizer asked
        optimizer = None
    if optimizer is not None:  # the state continues, at the learning rate asked for now (a variable: no retrace)
        optimizer.learning_rate = config.learning_rate
    train_model(grown, new_examples, config, verbose=verbose, checkpoint_dir=checkpoint_dir,
                prepare_examples=everything, optimizer=optimizer)
    return UpdatedModel(grown, grown_preprocessor, growth, len(new_examples), len(everything),
                        time.perf_counter() - started, in_place)


@dataclasses.dataclass
class UpdateResult:
    """What :func:`update` wrote: the new run folder, its parent, the growth and the interactions trained on."""

    run_dir: pathlib.Path
    parent: pathlib.Path
    growth: VocabularyGrowth
    new_interactions: int
    train_seconds: float


def default_update_dir(run_dir: str | os.PathLike) -> pathlib.Path:
    """``<run_dir>.update<N>``, the first such folder that does not hold a finished run.

    Example:
    >>> default_update_dir("runs/does-not-exist").name
    'does-not-exist.update1'
    """
    run_dir = pathlib.Path(run_dir)
    number = 1
    while (run_dir.parent / f"{run_dir.name}.update{number}" / RUN_FILE).exists():
        number += 1
    return run_dir.parent / f"{run_dir.name}.update{number}"


def _interaction_columns(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[[c for c in ("user_id", "item_id", "rating", "timestamp", "label") if c in frame.columns]]


def _source_rows(source: dict) -> pd.DataFrame:
    """Every interaction of a data source recorded in ``run.json``."""
    return _interaction_columns(load_dataset(source["dataset"], source.get("path"),
                                             **source.get("options", {})).interactions)


def seen_interactions(record: dict, space: FeatureSpace) -> pd.DataFrame:
    """The interactions a run has trained on: its training split, plus the new rows of every update since.

    Example:
    >>> seen = seen_interactions(record, space)  # doctest: +SKIP
    """
    update_record = record.get(UPDATE_KEY)
    base = update_record["data_seen"][0] if update_record else {"run": record}
    seen = _interaction_columns(load_run_data(base["run"], space).split.train)
    for source in (update_record["data_seen"][1:] if update_record else []):
        seen = pd.concat([seen, new_interactions(seen, _source_rows(source))], ignore_index=True)
    return seen


def _load_new_data(new_data) -> tuple[Dataset, dict]:
    if isinstance(new_data, Dataset):
        return new_data, {"dataset": new_data.name, "path": None}
    path = pathlib.Path(new_data)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such folder; --data takes a folder of CSV files in the training "
                                "data's format (interactions.csv, items.csv, users.csv)")
    return load_dataset("folder", path), {"dataset": "folder", "path": str(path.resolve())}


def check_new_data(space: FeatureSpace, dataset: Dataset, where: str) -> None:
    """Raise ValueError naming the first schema or id-type difference between a run and new data."""
    difference = schema_difference(space.schema, dataset.schema) or id_type_difference(space, dataset)
    if difference:
        raise ValueError(f"{where}: {difference}; an update continues the run on data of the same format")


def _publish(run_dir: pathlib.Path, model, space: FeatureSpace, record: dict) -> None:
    """Write the run's files aside, rename them in, ``run.json`` last (a run folder is finished only with it)."""
    partial = run_dir / f".partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    model.save(partial / MODEL_FILE)
    space.save(partial / SPACE_FOLDER)
    (partial / RUN_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")
    os.replace(partial / MODEL_FILE, run_dir / MODEL_FILE)
    shutil.rmtree(run_dir / SPACE_FOLDER, ignore_errors=True)
    os.rename(partial / SPACE_FOLDER, run_dir / SPACE_FOLDER)
    os.replace(partial / RUN_FILE, run_dir / RUN_FILE)
    shutil.rmtree(partial, ignore_errors=True)


def update(run_dir: str | os.PathLike, new_data, run_dir_out: str | os.PathLike | None = None,
           epochs: int = 1, resume: bool = False, verbose: int | str = 0) -> UpdateResult:
    """Continue a finished run on new interactions; write the result as a new run folder.

    ``new_data`` is a folder in the training data's format (or a
    :class:`~mmrec_tf.data.Dataset`) holding only the new interactions or
    everything: rows the run already trained on are skipped
    (:func:`new_interactions`). Its schema must be the run's (same user and
    item feature columns and kinds, same interaction columns, same id kind),
    else ValueError names the difference. ``epochs`` passes over the new
    interactions (0: only grow the vocabularies) with the run's batch size and
    the trained optimizer's state; one pass is what
    ``benchmarks/rolling_update.py`` measured.

    Ranking examples are labelled as the run's were; a ``sampled`` label
    draws the new negatives with the run's training seed.

    ``run_dir_out`` (default :func:`default_update_dir`) must not hold a
    finished run. Checkpoints are kept in ``<run_dir_out>/checkpoints`` while
    training; an update killed at any point resumes with ``resume=True``. The
    parent is only read. Its ``run.json`` gains nothing; the new one records
    ``update``: the parent, every data source seen, the vocabulary growth.

    Example:
    >>> result = update("runs/lstm_two_tower", "data/week_2", epochs=1)  # doctest: +SKIP
    >>> result.run_dir.name, str(result.growth)  # doctest: +SKIP
    ('lstm_two_tower.update1', 'users 943 + 12, items 1682 + 30')
    """
    parent = pathlib.Path(run_dir)
    model, space, record = load_run(parent)
    out = pathlib.Path(run_dir_out) if run_dir_out is not None else default_update_dir(parent)
    if out.resolve() == parent.resolve():
        raise ValueError(f"{out}: an update never overwrites its parent run; give another --run-dir")
    if (out / RUN_FILE).exists():
        raise FileExistsError(f"{out} holds a finished run already; give another --run-dir")
    checkpoints = out / "checkpoints"
    if checkpoints.exists() and not resume:
        raise ValueError(f"{checkpoints} holds an interrupted update; pass --resume to continue it, or delete it")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be an int >= 0, got {epochs!r}")
    dataset, source = _load_new_data(new_data)
    check_new_data(space, dataset, str(source["path"] or source["dataset"]))
    seen = seen_interactions(record, space)
    fresh = new_interactions(seen, _interaction_columns(dataset.interactions))
    preprocessor = run_preprocessor(record, space, parent / RUN_FILE)
    config = TrainingConfig(**{**record["training"], "epochs": epochs})
    out.mkdir(parents=True, exist_ok=True)
    updated = continue_training(model, preprocessor, seen, fresh, dataset, config, checkpoint_dir=checkpoints,
                                verbose=verbose)
    parent_update = record.get(UPDATE_KEY)
    data_seen = parent_update["data_seen"] if parent_update else [{"run": {key: record[key] for key in _BASE_KEYS
                                                                           if key in record}}]
    new_record = {
        **{key: value for key, value in record.items() if key not in ("metrics", "selection", UPDATE_KEY)},
        "data": {**record["data"], **source},
        "training": dataclasses.asdict(config),
        "train_seconds": updated.train_seconds,
        UPDATE_KEY: {"parent": str(parent.resolve()), "parent_name": record["name"],
                     "data_seen": [*data_seen, source], "new_interactions": len(fresh),
                     "skipped_interactions": len(dataset.interactions) - len(fresh),
                     "vocabulary": updated.growth.record()},
    }
    _publish(out, updated.model, updated.space, new_record)
    shutil.rmtree(checkpoints, ignore_errors=True)
    return UpdateResult(out, parent, updated.growth, len(fresh), updated.train_seconds)
