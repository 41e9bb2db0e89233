"""Train, evaluate and save a catalog model in a few calls; what the CLI, tutorials and benchmarks use."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import time

import keras
import tensorflow as tf

from mmrec_tf.data.dataset import Dataset
from mmrec_tf.data.feature_space import FeatureSpace
from mmrec_tf.data.pipeline import Examples, build_examples, seen_items
from mmrec_tf.data.sources import load_dataset
from mmrec_tf.data.splits import Split, make_split
from mmrec_tf.evaluation.full_ranking import RankingReport, evaluate_retrieval
from mmrec_tf.registry import create_model, registered_model
from mmrec_tf.training import TrainingConfig, chief_output, num_replicas, strategy_name, train_model
from mmrec_tf.zoo_entry import get_zoo_entry

RUN_FILE = "run.json"
MODEL_FILE = "model.keras"
SPACE_FOLDER = "feature_space"


@dataclasses.dataclass
class PreparedData:
    """A dataset with its split, feature space and model-ready examples.

    Example:
    >>> data = prepare_data(load_dataset("synthetic", num_users=20, num_items=12, num_clusters=2))
    >>> len(data.examples["test"])
    20
    """

    dataset: Dataset
    split: Split
    space: FeatureSpace
    examples: dict[str, Examples]
    max_history: int

    def seen(self, target: str = "test"):
        return seen_items(self.split, self.space, target)


def prepare_data(dataset: Dataset, split: str = "leave_last_out", max_history: int = 50,
                 seed: int = 0, space: FeatureSpace | None = None) -> PreparedData:
    """Split ``dataset``, build its feature space (unless given) and the examples of every split."""
    split_log = make_split(dataset, split, seed=seed)
    space = space if space is not None else FeatureSpace.build(dataset)
    return PreparedData(dataset, split_log, space, build_examples(split_log, space, max_history), max_history)


@dataclasses.dataclass
class RunResult:
    """A trained model and what was measured on it."""

    name: str
    model: keras.Model
    data: PreparedData
    training: TrainingConfig
    valid: RankingReport
    test: RankingReport
    train_seconds: float
    strategy: tf.distribute.Strategy | None = None

    @property
    def examples_per_second(self) -> float:
        seen = len(self.data.examples["train"]) * self.training.epochs
        return seen / self.train_seconds if self.train_seconds > 0 and self.model.trainable_weights else 0.0


def run(model_or_entry: str, data: PreparedData, training: dict | None = None, ks=(10, 20),
        verbose: int | str = "auto", checkpoint_dir: str | os.PathLike | None = None, callbacks=None,
        strategy: tf.distribute.Strategy | None = None, **overrides) -> RunResult:
    """Create a catalog model, train it on ``data`` with the entry's recipe, evaluate valid and test.

    ``training`` replaces fields of the recipe (a zoo entry's ``training``
    section, else :class:`TrainingConfig` defaults); ``overrides`` replace
    architecture arguments. With ``checkpoint_dir`` an interrupted run resumes
    from its last finished epoch (see :func:`~mmrec_tf.training.train_model`).
    With ``strategy`` (a ``tf.distribute.Strategy``, e.g. from
    :func:`~mmrec_tf.training.make_strategy`) the model is created under its
    scope and trained across its replicas; on a multi-worker cluster every
    worker calls ``run`` alike, and only the chief should keep what it saves
    (:func:`save_run` writes on the chief only).

    Example:
    >>> data = prepare_data(load_dataset("synthetic", num_users=20, num_items=12, num_clusters=2))
    >>> result = run("popularity", data)
    >>> 0.0 <= result.test.metrics["hr@10"] <= 1.0
    True
    """
    recipe = {}
    if "." in model_or_entry:
        recipe = dict(get_zoo_entry(model_or_entry).training)
    recipe.update(training or {})
    config = TrainingConfig(**recipe)
    keras.utils.set_random_seed(config.seed)
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = create_model(model_or_entry, space=data.space, **overrides)
    if getattr(model, "max_history", data.max_history) > data.max_history:
        raise ValueError(f"the model keeps {model.max_history} history items but the data was prepared with "
                         f"max_history={data.max_history}")
    started = time.perf_counter()
    train_model(model, data.examples["train"], config, valid=data.examples["valid"], verbose=verbose,
                checkpoint_dir=checkpoint_dir, callbacks=callbacks, strategy=strategy)
    seconds = time.perf_counter() - started
    valid = evaluate_retrieval(model, data.examples["valid"], data.seen("valid"), ks=ks)
    test = evaluate_retrieval(model, data.examples["test"], data.seen("test"), ks=ks)
    return RunResult(model_or_entry, model, data, config, valid, test, seconds, strategy)


def save_run(result: RunResult, run_dir: str | os.PathLike, data_source: dict) -> pathlib.Path:
    """Write the model (``model.keras``), feature space and ``run.json`` (how to rebuild the data).

    After a multi-worker run every worker calls this alike (saving may read
    variables collectively) but only the chief's files are kept; the others
    write into a scratch folder that is removed. Returns ``run_dir``.
    """
    with chief_output(run_dir, result.strategy) as target:
        _write_run(result, target, data_source)
    return pathlib.Path(run_dir)


def _write_run(result: RunResult, run_dir: pathlib.Path, data_source: dict) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    result.model.save(run_dir / MODEL_FILE)
    result.data.space.save(run_dir / SPACE_FOLDER)
    record = {
        "name": result.name,
        "model": result.model.registry_name,
        "data": {**data_source, "split": result.data.split.method, "max_history": result.data.max_history},
        "training": dataclasses.asdict(result.training),
        "metrics": {"valid": result.valid.metrics, "test": result.test.metrics},
        "train_seconds": result.train_seconds,
    }
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
    model = keras.saving.load_model(run_dir / MODEL_FILE, safe_mode=True)
    return model, FeatureSpace.load(run_dir / SPACE_FOLDER), record


def load_run_data(record: dict, space: FeatureSpace) -> PreparedData:
    """Rebuild the exact split a run was trained on from its ``run.json`` record and saved space."""
    source = record["data"]
    dataset = load_dataset(source["dataset"], source.get("path"), **source.get("options", {}))
    return prepare_data(dataset, source["split"], source["max_history"], seed=record["training"]["seed"],
                        space=space)
