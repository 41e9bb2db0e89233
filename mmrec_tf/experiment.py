"""Train, evaluate and save a catalog model in a few calls; what the CLI, tutorials and benchmarks use."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import time

import keras
import numpy as np
import tensorflow as tf

from mmrec_tf.atomic_file import write_atomically
from mmrec_tf.data.dataset import Dataset
from mmrec_tf.data.feature_space import FeatureSpace
from mmrec_tf.data.pipeline import Examples
from mmrec_tf.data.preprocessor import Preprocessor
from mmrec_tf.data.sources import load_dataset
from mmrec_tf.data.splits import Split, make_split
from mmrec_tf.evaluation.full_ranking import RetrievalReport
from mmrec_tf.evaluation.ranking_evaluator import PointwiseReport, predict_examples
from mmrec_tf.evaluation.ranking_metrics import gauc
from mmrec_tf.model_registration import model_task_kind
from mmrec_tf.registry import create_model, registered_model
from mmrec_tf.task_kinds import RETRIEVAL, TaskKind, task_kind
from mmrec_tf.training import TrainingConfig, chief_output, is_chief, num_replicas, strategy_name, train_model
from mmrec_tf.zoo_entry import NO_RECIPE, recipe_for

RUN_FILE = "run.json"
MODEL_FILE = "model.keras"
SPACE_FOLDER = "feature_space"
BEST_STATE = "best_valid_epoch"
_SOURCE_KEYS = ("dataset", "path", "options", "split", "max_history")


def task_of(model_or_entry: str) -> str:
    """``"retrieval"`` or ``"ranking"``: the zoo entry's ``task``, else the registered model's.

    Example:
    >>> task_of("din.movielens_100k"), task_of("lstm_two_tower")
    ('ranking', 'retrieval')
    """
    return recipe_for(model_or_entry).task


def data_settings(model_or_entry: str, **overrides) -> dict:
    """:func:`prepare_data` keyword arguments of a name's recipe (:func:`~mmrec_tf.zoo_entry.recipe_for`), and its task.

    A zoo entry gives its ``data`` section but the dataset; a bare model
    name, what its default recipe carries to any data (``max_history``).
    ``overrides`` replace settings (e.g. ``max_history=10``).

    Example:
    >>> data_settings("din.movielens_100k")
    {'split': 'temporal_fraction', 'max_history': 50, 'label': 'rating >= 4', 'task': 'ranking'}
    >>> data_settings("two_tower"), data_settings("two_tower", max_history=10)
    ({'max_history': 50, 'task': 'retrieval'}, {'max_history': 10, 'task': 'retrieval'})
    """
    recipe = recipe_for(model_or_entry)
    return {**recipe.data, **overrides, "task": recipe.task}


@dataclasses.dataclass
class PreparedData:
    """A dataset with its split, its :class:`~mmrec_tf.data.preprocessor.Preprocessor` and the examples it made.

    ``task`` names what the examples are for (:attr:`kind`; a
    :class:`~mmrec_tf.task_kinds.TaskKind` given is kept as its name):
    ``"retrieval"`` (interactions, evaluated by full ranking) or
    ``"ranking"`` (labelled by the preprocessor's ``label``). ``split_options``
    are what the split was made with beyond its name (e.g. fractions).

    Example:
    >>> data = prepare_data(load_dataset("synthetic", num_users=20, num_items=12, num_clusters=2))
    >>> len(data.examples["test"]), data.kind is RETRIEVAL, data.max_history
    (20, True, 50)
    """

    dataset: Dataset
    split: Split
    preprocessor: Preprocessor
    examples: dict[str, Examples]
    task: str = RETRIEVAL.name
    split_options: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self.task = task_kind(self.task).name  # a TaskKind given is kept as its name, what run.json writes
        if self.kind.labelled != self.preprocessor.labelled:
            raise ValueError(f"{self.task} examples need a preprocessor "
                             f"{'with' if self.kind.labelled else 'without'} a label")

    @property
    def kind(self) -> TaskKind:
        """The :class:`~mmrec_tf.task_kinds.TaskKind` named by ``task``."""
        return task_kind(self.task)

    @property
    def space(self) -> FeatureSpace:
        """The preprocessor's vocabularies and item feature tables."""
        return self.preprocessor.space

    @property
    def max_history(self) -> int:
        return self.preprocessor.max_history

    @property
    def label(self) -> str | None:
        """The label's canonical spelling (``"rating >= 4"``, ``"sampled:1"``), None for retrieval examples."""
        return None if self.preprocessor.label is None else self.preprocessor.label.text

    @property
    def history(self) -> str | None:
        """Which earlier rows a labelled example's history keeps; None for retrieval examples."""
        return self.preprocessor.history

    def seen(self, target: str = "test"):
        """Per user index, the item indices visible before ``target`` rows (a ranking excludes them)."""
        return self.preprocessor.seen(self.split, target)

    def record(self) -> dict:
        """How to rebuild these examples, as ``run.json``'s ``data`` section records it (without the source)."""
        return {"split": self.split.method, **self.split_options, **self.preprocessor.record()}

    def user_history(self, user: str) -> list[str]:
        """A user's item ids, oldest first, as a model of this task sees them after all their interactions."""
        return self.preprocessor.user_history(self.split.log, user)


def prepare_data(dataset: Dataset, split: str | None = None, max_history: int = 50, seed: int = 0,
                 space: FeatureSpace | None = None, task: str | TaskKind = RETRIEVAL.name, label: str | None = None,
                 history: str | None = None, **split_options) -> PreparedData:
    """Split ``dataset``, build its feature space (unless given), its preprocessor and the examples of every split.

    ``task`` (a name or a :class:`~mmrec_tf.task_kinds.TaskKind`) decides the
    examples (:meth:`~mmrec_tf.data.preprocessor.Preprocessor.examples`):
    retrieval trains on the interactions; ranking on examples labelled by
    ``label`` (``"rating >= 4"``, a 0/1 column such as ``"label"``, or
    ``"sampled"``: every interaction positive with a random untouched item as
    its negative, drawn with ``seed``; see
    :func:`~mmrec_tf.data.label_spec.parse_label`; default
    :func:`~mmrec_tf.data.preprocessor.default_label`) with ``history`` as
    their history rule. ``split`` defaults to the task's usual protocol
    (:attr:`~mmrec_tf.task_kinds.TaskKind.default_split`: ``leave_last_out`` for retrieval,
    ``temporal_fraction`` for ranking, where every user needs several test
    examples for GAUC); ``split_options`` go to
    :func:`~mmrec_tf.data.splits.make_split` (e.g. ``valid_fraction=0.1``).
    :func:`data_settings` gives a zoo entry's arguments.

    Example:
    >>> ds = load_dataset("synthetic", num_users=20, num_items=12, num_clusters=2)
    >>> data = prepare_data(ds, task="ranking", label="rating >= 4", max_history=5, test_fraction=0.2)
    >>> data.split.method, sorted(data.examples["test"].extras)
    ('temporal_fraction', ['label', 'rating', 'timestamp'])
    >>> data.record()["label"], data.record()["history"], data.record()["test_fraction"]
    ('rating >= 4', 'positive', 0.2)
    """
    kind = task_kind(task)
    space = space if space is not None else FeatureSpace.build(dataset)
    preprocessor = Preprocessor.for_data(dataset, space, max_history, kind.labelled, label, history, seed)
    split_log = make_split(dataset, split or kind.default_split, seed=seed, **split_options)
    return PreparedData(dataset, split_log, preprocessor, preprocessor.examples(split_log), task=kind.name,
                        split_options=dict(split_options))


class BestValidationEpoch(keras.callbacks.Callback):
    """Score the validation examples after each epoch (GAUC); at the end, restore the best epoch's weights.

    ``metric`` names the selection metric and must be ``"gauc"``, the one
    this callback computes (:data:`~mmrec_tf.task_kinds.RANKING`'s
    ``selection_metric``): :func:`run` selects every ranking model's epoch with it (the ranking zoo
    entries' numbers come from ``benchmarks/ranking_movielens.py`` calling
    :func:`run`). With ``state_dir`` the best epoch so far (its value,
    number and weights) is kept there, so a run resumed from its checkpoints
    still ends on the best epoch of the whole run; only the chief writes it.
    ``seconds`` is the time spent scoring and keeping the best epoch.

    Example:
    >>> callback = BestValidationEpoch(examples["valid"])  # doctest: +SKIP
    >>> train_model(model, examples["train"], config, callbacks=[callback])  # doctest: +SKIP
    >>> callback.best_epoch, callback.best_value  # doctest: +SKIP
    (4, 0.7183)
    """

    def __init__(self, examples: Examples, state_dir: str | os.PathLike | None = None,
                 strategy: tf.distribute.Strategy | None = None, metric: str = "gauc"):
        super().__init__()
        if metric != "gauc":
            raise ValueError(f"BestValidationEpoch selects epochs by 'gauc' only, got {metric!r}")
        self.metric = metric
        self.examples = examples
        self.labels = np.asarray(examples.extras["label"], dtype=np.float64)
        self.state_dir = pathlib.Path(state_dir) if state_dir is not None else None
        self.strategy = strategy
        self.best_value, self.best_epoch, self.best_weights = -np.inf, None, None
        self.seconds = 0.0

    def on_train_begin(self, logs=None):
        if self.state_dir is None or not (self.state_dir / f"{BEST_STATE}.json").is_file():
            return
        state = json.loads((self.state_dir / f"{BEST_STATE}.json").read_text(encoding="utf-8"))
        with np.load(self.state_dir / f"{BEST_STATE}.npz") as saved:
            weights = [saved[f"arr_{i}"] for i in range(len(saved.files))]
        self.best_value, self.best_epoch, self.best_weights = state["value"], state["epoch"], weights

    def on_epoch_end(self, epoch, logs=None):
        started = time.perf_counter()
        value = gauc(self.examples.user_id, self.labels, predict_examples(self.model, self.examples))
        if value > self.best_value:
            self.best_value, self.best_epoch, self.best_weights = value, epoch + 1, self.model.get_weights()
            if self.state_dir is not None and is_chief(self.strategy):
                self._save()
        self.seconds += time.perf_counter() - started

    def _save(self):
        def savez(temporary: str) -> None:
            with open(temporary, "wb") as file:  # a file object: np.savez would add ".npz" to a name
                np.savez(file, *self.best_weights)

        write_atomically(self.state_dir / f"{BEST_STATE}.npz", savez)
        state = {"value": float(self.best_value), "epoch": self.best_epoch, "metric": self.metric}
        write_atomically(self.state_dir / f"{BEST_STATE}.json",
                         lambda temporary: pathlib.Path(temporary).write_text(json.dumps(state), encoding="utf-8"))

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


def _check_ranking_split(examples: Examples, name: str) -> None:
    """GAUC needs a user with both a positive and a negative example in the split."""
    labels = np.asarray(examples.extras["label"])
    users = np.asarray(examples.user_id)
    mixed = len(examples) and np.intersect1d(users[labels == 1], users[labels == 0]).size
    if not mixed:
        raise ValueError(f"the {name} split has {len(examples)} ranking examples and no user with both a positive "
                         "and a negative one, so GAUC cannot be measured; give users several held-out "
                         "interactions (split temporal_fraction, larger valid_fraction / test_fraction) or more data")


def evaluate_split(model, data: PreparedData, name: str = "test", ks=(10, 20)) -> RetrievalReport | PointwiseReport:
    """Measure ``model`` on one split of ``data`` the way its task is measured.

    Retrieval: full-corpus ranking with each user's seen items excluded
    (:func:`~mmrec_tf.evaluation.full_ranking.evaluate_retrieval`, cut-offs
    ``ks``). Ranking: AUC, GAUC, log loss on the labelled examples
    (:func:`~mmrec_tf.evaluation.ranking_evaluator.evaluate_ranking`).

    Example:
    >>> data = prepare_data(load_dataset("synthetic", num_users=20, num_items=12, num_clusters=2))
    >>> model = create_model("popularity", space=data.space)
    >>> train_model(model, data.examples["train"], TrainingConfig())  # counts the items
    >>> sorted(evaluate_split(model, data, "valid", ks=(5,)).metrics)[:2]
    ['coverage@5', 'factorized_top_k@5']
    """
    return data.kind.evaluate(model, data, name, ks=ks)


@dataclasses.dataclass
class RunResult:
    """A trained model and what was measured on it.

    ``valid`` and ``test`` are :class:`~mmrec_tf.evaluation.full_ranking.RetrievalReport`
    for retrieval models and :class:`~mmrec_tf.evaluation.ranking_evaluator.PointwiseReport`
    for ranking models, whose kept weights are those of ``best_epoch`` (best
    validation GAUC). ``recipe`` is the zoo entry whose recipe was used
    (``"none"``: the model has no entry, class defaults). ``train_seconds``
    includes ``selection_seconds``, the time spent scoring the validation
    split to pick the best epoch.
    """

    name: str
    model: keras.Model
    data: PreparedData
    training: TrainingConfig
    valid: RetrievalReport | PointwiseReport
    test: RetrievalReport | PointwiseReport
    train_seconds: float
    strategy: tf.distribute.Strategy | None = None
    best_epoch: int | None = None
    recipe: str = NO_RECIPE
    selection_seconds: float = 0.0

    @property
    def examples_per_second(self) -> float:
        seen = len(self.data.examples["train"]) * self.training.epochs
        return seen / self.train_seconds if self.train_seconds > 0 and self.model.trainable_weights else 0.0


def run(model_or_entry: str, data: PreparedData, training: dict | None = None, ks=(10, 20),
        verbose: int | str = "auto", checkpoint_dir: str | os.PathLike | None = None, callbacks=None,
        strategy: tf.distribute.Strategy | None = None, **overrides) -> RunResult:
    """Create a catalog model, train it on ``data`` with its recipe, evaluate valid and test.

    The recipe (:func:`~mmrec_tf.zoo_entry.recipe_for`) is the zoo entry's
    when ``model_or_entry`` names one, else that of the architecture's
    default entry (the one measured best), so a bare name trains as well as
    the zoo does (on the entry's own dataset with the entry's item tables,
    elsewhere with all of the data's); ``RunResult.recipe`` names it. ``training`` replaces
    fields of its ``training`` section (:class:`TrainingConfig` defaults for
    the rest); ``overrides`` replace architecture arguments. A model that
    keeps a history keeps ``data.max_history`` items unless overridden. With ``checkpoint_dir`` an interrupted run resumes
    from its last finished epoch (see :func:`~mmrec_tf.training.train_model`).
    With ``strategy`` (a ``tf.distribute.Strategy``, e.g. from
    :func:`~mmrec_tf.training.make_strategy`) the model is created under its
    scope and trained across its replicas; on a multi-worker cluster every
    worker calls ``run`` alike, and only the chief should keep what it saves
    (:func:`save_run` writes on the chief only).

    The model's task decides the rest, and ``data`` must have been prepared
    for it (``prepare_data(..., **data_settings(name))``). Retrieval models
    are measured by full ranking (HR@k, NDCG@k, MRR, coverage for ``ks``).
    Ranking models keep the weights of the epoch with the best validation
    GAUC (:class:`BestValidationEpoch`) and
    are measured by AUC, GAUC and log loss.

    Example:
    >>> data = prepare_data(load_dataset("synthetic", num_users=20, num_items=12, num_clusters=2))
    >>> result = run("popularity", data)
    >>> result.recipe, round(result.test.metrics["mrr"], 4)
    ('popularity.movielens_100k', 0.7429)
    >>> ranking = prepare_data(load_dataset("synthetic", num_users=30, num_items=12, num_clusters=2,
    ...                                     interactions_per_user=20), **data_settings("din", max_history=4))
    >>> result = run("embedding_mlp", ranking, training={"epochs": 2, "jit_compile": False}, verbose=0,
    ...              embedding_dim=4, hidden_units=[8], max_history=4)
    >>> result.best_epoch, round(result.test.metrics["gauc"], 4), result.test.metrics["gauc_users"]
    (1, 0.8125, 8)
    """
    recipe = recipe_for(model_or_entry)
    config = TrainingConfig(**{**recipe.training, **(training or {})})
    keras.utils.set_random_seed(config.seed)
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = create_model(recipe.model, space=data.space,
                             **{**recipe.model_arguments(max_history=data.max_history, dataset=data.dataset.name),
                                **overrides})
    kind = model_task_kind(model)
    if kind is not data.kind:
        raise ValueError(f"{model_or_entry} is a {kind.name} model but the data was prepared for {data.task}; prepare "
                         f"it with prepare_data(..., task={kind.name!r}) or prepare_data(..., **data_settings(name))")
    _check_examples_fit(model, data)
    selector = (BestValidationEpoch(data.examples["valid"], state_dir=checkpoint_dir, strategy=strategy,
                                    metric=kind.selection_metric)
                if kind.selection_metric is not None else None)
    started = time.perf_counter()
    train_model(model, data.examples["train"], config, valid=data.examples["valid"], verbose=verbose,
                checkpoint_dir=checkpoint_dir, callbacks=[*(callbacks or []), *([selector] if selector else [])],
                strategy=strategy)
    seconds = time.perf_counter() - started
    valid = kind.evaluate(model, data, "valid", ks=ks)
    test = kind.evaluate(model, data, "test", ks=ks)
    best_epoch, selection_seconds = (selector.best_epoch, selector.seconds) if selector else (None, 0.0)
    return RunResult(model_or_entry, model, data, config, valid, test, seconds, strategy, best_epoch=best_epoch,
                     recipe=recipe.name, selection_seconds=selection_seconds)


def _check_examples_fit(model, data: PreparedData) -> None:
    """Refuse data whose histories the model cannot read, or labelled splits where GAUC cannot be measured.

    Labelled examples carry exactly the model's history, so a ranking model
    needs ``max_history`` equal to the data's; a retrieval model may keep
    fewer items than the data holds.
    """
    model_history = getattr(model, "max_history", None)
    if not data.kind.labelled:
        if model_history is not None and model_history > data.max_history:
            raise ValueError(f"the model keeps {model_history} history items but the data was prepared with "
                             f"max_history={data.max_history}")
        return
    if getattr(model, "uses_history", True) and model_history is not None and model_history != data.max_history:
        raise ValueError(f"the model keeps {model_history} history items but the data was prepared with "
                         f"max_history={data.max_history}; a ranking model needs them equal (prepare the data with "
                         f"max_history={model_history})")
    for split_name in ("valid", "test"):
        _check_ranking_split(data.examples[split_name], split_name)


def save_run(result: RunResult, run_dir: str | os.PathLike, data_source: dict,
             resumed: dict | None = None) -> pathlib.Path:
    """Write the model (``model.keras``), feature space and ``run.json`` (how to rebuild the data).

    After a multi-worker run every worker calls this alike (saving may read
    variables collectively) but only the chief's files are kept; the others
    write into a scratch folder that is removed. ``resumed`` (from
    :func:`~mmrec_tf.resume_recipe.check_resume` under ``--force``) is
    recorded as ``run.json``'s ``resumed``. Returns ``run_dir``.
    """
    with chief_output(run_dir, result.strategy) as target:
        _write_run(result, target, data_source, resumed)
    return pathlib.Path(run_dir)


def _write_run(result: RunResult, run_dir: pathlib.Path, data_source: dict, resumed: dict | None = None) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    result.model.save(run_dir / MODEL_FILE)
    result.data.space.save(run_dir / SPACE_FOLDER)
    record = {
        "name": result.name,
        "model": result.model.registry_name,
        "recipe": result.recipe,
        "task": result.data.task,
        "data": {**data_source, **result.data.record()},
        "training": dataclasses.asdict(result.training),
        "metrics": {"valid": result.valid.metrics, "test": result.test.metrics},
        "train_seconds": result.train_seconds,
    }
    if result.best_epoch is not None:
        record["selection"] = {"metric": f"valid {result.data.kind.selection_metric}", "best_epoch": result.best_epoch}
    if resumed is not None:
        record["resumed"] = resumed
    if result.strategy is not None:
        record["distribution"] = {"strategy": strategy_name(result.strategy),
                                  "replicas": num_replicas(result.strategy)}
    (run_dir / RUN_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")


def load_run(run_dir: str | os.PathLike):
    """Read back ``(model, feature_space, run_record)``; the model loads with ``safe_mode=True``."""
    run_dir = pathlib.Path(run_dir)
    if not (run_dir / RUN_FILE).is_file():
        raise FileNotFoundError(f"{run_dir}: not a run folder (no {RUN_FILE}); create one with `mmrec train`")
    record = json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8"))
    registered_model(record["model"])
    run_task_kind(record, run_dir / RUN_FILE)
    model = keras.saving.load_model(run_dir / MODEL_FILE, safe_mode=True)
    return model, FeatureSpace.load(run_dir / SPACE_FOLDER), record


def run_task_kind(record: dict, record_file: str | os.PathLike = RUN_FILE) -> TaskKind:
    """The :class:`~mmrec_tf.task_kinds.TaskKind` of a ``run.json`` record.

    The record's ``task``; a record written before ranking runs existed has
    none and is its model's registered task. An unknown name is refused with
    one line naming ``record_file``.

    Example:
    >>> run_task_kind({"task": "ranking"}, "runs/din/run.json").name, run_task_kind({"model": "two_tower"}).name
    ('ranking', 'retrieval')
    >>> run_task_kind({"task": "regression"}, "runs/x/run.json")
    Traceback (most recent call last):
    ...
    ValueError: runs/x/run.json: task must be one of ('retrieval', 'ranking'), got 'regression'
    """
    try:
        return task_kind(record.get("task") or registered_model(record["model"]).task)
    except ValueError as error:
        raise ValueError(f"{record_file}: {error}") from None


def run_preprocessor(record: dict, space: FeatureSpace, record_file: str | os.PathLike = RUN_FILE) -> Preprocessor:
    """The :class:`~mmrec_tf.data.preprocessor.Preprocessor` a run's examples were made with, from ``run.json``.

    Read from the record's ``data`` section over the run's saved ``space``, with the run's training seed
    (its sampled negatives); no data is loaded. A record whose labelling disagrees with its task is
    refused in one line naming ``record_file``.

    Example:
    >>> from mmrec_tf.data.sources import make_synthetic
    >>> space = FeatureSpace.build(make_synthetic(num_users=2, num_items=4, num_clusters=1))
    >>> record = {"task": "ranking", "data": {"max_history": 5, "label": "rating >= 4", "history": "positive"},
    ...           "training": {"seed": 3}}
    >>> run_preprocessor(record, space).record(), run_preprocessor(record, space).seed
    ({'max_history': 5, 'label': 'rating >= 4', 'history': 'positive'}, 3)
    >>> run_preprocessor({**record, "training": {}}, space, "runs/din/run.json")
    Traceback (most recent call last):
    ...
    ValueError: runs/din/run.json: expected training.seed, as mmrec train writes it; the record has none
    """
    labelled = run_task_kind(record, record_file).labelled
    for section, key in (("data", "max_history"), ("training", "seed")):
        if not isinstance(record.get(section), dict) or key not in record[section]:
            raise ValueError(f"{record_file}: expected {section}.{key}, as mmrec train writes it; the record has none")
    try:
        return Preprocessor.from_record(record["data"], space, seed=record["training"]["seed"], labelled=labelled)
    except ValueError as error:
        raise ValueError(f"{record_file}: {error}") from None


def load_run_data(record: dict, space: FeatureSpace) -> PreparedData:
    """Rebuild the exact split and examples a run was trained on from its ``run.json`` record and saved space.

    The task is :func:`run_task_kind`'s; the label, history mode and split options are read back from the
    record's ``data`` section.
    """
    source = record["data"]
    task = run_task_kind(record)
    dataset = load_dataset(source["dataset"], source.get("path"), **source.get("options", {}))
    settings = {key: value for key, value in source.items() if key not in _SOURCE_KEYS}
    return prepare_data(dataset, source["split"], source["max_history"], seed=record["training"]["seed"],
                        space=space, task=task, **settings)
