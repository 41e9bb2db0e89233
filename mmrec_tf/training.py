"""Training recipe: what a zoo entry's ``training`` section holds, and the loop that applies it.

Training runs on TensorFlow's own distribution engine: pass a
``tf.distribute`` strategy (see :func:`make_strategy`) and the model is built
and compiled under its scope, Keras ``fit`` splits every global batch of
``batch_size`` examples across the replicas, and checkpoints are written by
the chief only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import pathlib
import shutil
import tempfile

import keras
import tensorflow as tf

from mmrec_tf.checkpoints import Checkpoint, find_checkpoint, write_checkpoint
from mmrec_tf.data.pipeline import (LABELLED_EXAMPLES, NEXT_ITEM_SEQUENCES, Examples, make_tf_dataset,
                                   next_item_sequences, steps_per_epoch)
from mmrec_tf.data.tfrecord_io import ShardedExamples
from mmrec_tf.errors import TrainingDivergedError
from mmrec_tf.lazy_adam import LazyAdam

OPTIMIZERS = {"adam": keras.optimizers.Adam, "lazy_adam": LazyAdam, "adagrad": keras.optimizers.Adagrad,
              "sgd": keras.optimizers.SGD}
STRATEGIES = ("mirrored", "multi_worker", "parameter_server")
AUTO_STEPS_PER_EXECUTION = 32
BATCH_HOOKS = ("on_train_batch_begin", "on_train_batch_end", "on_batch_begin", "on_batch_end")


@dataclasses.dataclass
class TrainingConfig:
    """Hyper-parameters of one training run.

    ``jit_compile`` and ``steps_per_execution`` are speed settings that do
    not change the trained weights; their ``"auto"`` defaults pick what
    ``benchmarks/training_throughput.py`` measured fastest (see
    :func:`resolve_jit_compile` and :func:`resolve_steps_per_execution`).

    Example:
    >>> TrainingConfig(epochs=2).optimizer
    'adam'
    """

    epochs: int = 5
    batch_size: int = 256
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    seed: int = 0
    jit_compile: bool | str = "auto"
    steps_per_execution: int | str = "auto"

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.jit_compile not in (True, False, "auto"):
            raise ValueError(f"jit_compile must be True, False or 'auto', got {self.jit_compile!r}")
        if self.steps_per_execution != "auto" and (isinstance(self.steps_per_execution, bool) or not isinstance(
                self.steps_per_execution, int) or self.steps_per_execution < 1):
            raise ValueError(f"steps_per_execution must be a positive int or 'auto', got {self.steps_per_execution!r}")
        if self.epochs < 0 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ValueError(f"epochs >= 0, batch_size >= 1 and learning_rate > 0 expected; got {self}")


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops training at the first batch whose loss is NaN or infinite, and says where and why.

    Example:
    >>> callback = StopOnNonFiniteLoss(learning_rate=0.1)
    """

    def __init__(self, learning_rate: float | None = None):
        super().__init__()
        self.learning_rate = learning_rate
        self.epoch = 0
        self.steps = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_begin(self, logs=None):
        self.steps = self.params.get("steps") if self.params else None

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(float(loss)):
            return
        self.model.stop_training = True
        if self.steps:  # an epoch's last compiled call may run fewer than steps_per_execution batches
            batch = min(batch, self.steps - 1)
        step = self.epoch * self.steps + batch + 1 if self.steps else batch + 1
        executed = int(getattr(self.model, "steps_per_execution", 1) or 1)
        checked = (f"; the loss is checked every {executed} batches (steps_per_execution), so it may have become "
                   "non-finite up to that many batches earlier" if executed > 1 else "")
        raise TrainingDivergedError(
            f"loss became {float(loss)} at epoch {self.epoch + 1}, batch {batch + 1} (global step {step}){checked}. "
            f"Likely causes: a learning rate too high for this model (it is {self.learning_rate}); "
            "non-finite values in numeric features or sample weights; a temperature close to 0. "
            "Lower the learning rate or check the input data."
        )


class DataEpoch(keras.callbacks.Callback):
    """Sets ``variable`` to each epoch's number as it begins: the epoch a dataset made with ``epoch=variable`` yields.

    ``fit`` makes the dataset's iterator after the epoch's callbacks began,
    so epoch ``e`` trains on exactly the batches of epoch ``e`` of the
    seeded stream (see :func:`~mmrec_tf.data.pipeline.make_tf_dataset`),
    resumed runs included.

    Example:
    >>> callback = DataEpoch(tf.Variable(0, dtype=tf.int64))
    >>> callback.on_epoch_begin(3)
    >>> int(callback.variable.numpy())
    3
    """

    def __init__(self, variable: tf.Variable):
        super().__init__()
        self.variable = variable

    def on_epoch_begin(self, epoch, logs=None):
        self.variable.assign(epoch)


class StrategyError(ValueError):
    """A distribution strategy cannot be created or used as asked; the message says why and what to do."""


def _tf_config() -> dict:
    raw = os.environ.get("TF_CONFIG", "")
    if not raw:
        return {}
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise StrategyError(f"TF_CONFIG is not valid JSON ({error}); expected e.g. "
                            '{"cluster": {"worker": ["host1:port", "host2:port"]}, '
                            '"task": {"type": "worker", "index": 0}}') from None
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict) or \
            not isinstance(config.get("task"), dict):
        raise StrategyError(f"TF_CONFIG must be a JSON object with 'cluster' and 'task' objects, got {raw!r}")
    return config


def _require_cluster(name: str, jobs: tuple[str, ...]) -> dict:
    config = _tf_config()
    if not config:
        raise StrategyError(f"--strategy {name} needs the TF_CONFIG environment variable describing the cluster "
                            f"(jobs {', '.join(jobs)}) and this process's task, set on every process")
    cluster, task = config["cluster"], config["task"]
    missing = [job for job in jobs if not cluster.get(job)]
    if missing:
        raise StrategyError(f"--strategy {name}: TF_CONFIG's cluster has no {' or '.join(missing)} job; it has "
                            f"{sorted(cluster)}")
    if task.get("type") not in cluster or not isinstance(task.get("index"), int) or \
            not 0 <= task["index"] < len(cluster[task["type"]]):
        raise StrategyError(f"--strategy {name}: TF_CONFIG's task {task} names no task of the cluster {cluster}")
    return config


def make_strategy(name: str | None) -> tf.distribute.Strategy | None:
    """The ``tf.distribute`` strategy called ``name`` (``None`` or ``"none"``: train on the default device).

    - ``"mirrored"``: :class:`tf.distribute.MirroredStrategy` over this
      machine's GPUs (its CPU when it has none).
    - ``"multi_worker"``: :class:`tf.distribute.MultiWorkerMirroredStrategy`;
      every worker runs the same command with ``TF_CONFIG`` naming the
      cluster's ``worker`` job and its own task (worker 0 is the chief).
    - ``"parameter_server"``: checks ``TF_CONFIG`` (a ``ps`` job and a
      ``chief``), then raises :class:`StrategyError`: Keras 3's ``Model.fit``
      has no ``ClusterCoordinator`` (tf-keras created one in ``compile``), so
      it cannot drive :class:`tf.distribute.ParameterServerStrategy`; a
      dataset passed to it fails with "you need to pass this dataset to
      ClusterCoordinator.create_per_worker_dataset". Use ``multi_worker``.

    Example:
    >>> make_strategy(None) is None
    True
    >>> make_strategy("mirrored").num_replicas_in_sync >= 1
    True
    """
    if name in (None, "", "none"):
        return None
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        _require_cluster(name, ("worker",))
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "parameter_server":
        _require_cluster(name, ("ps", "chief"))
        raise StrategyError(
            "--strategy parameter_server: Keras 3's Model.fit cannot drive tf.distribute.ParameterServerStrategy "
            "(it has no ClusterCoordinator, which tf-keras created in compile), and mmrec_tf trains with fit, not a "
            "loop of its own; use --strategy multi_worker (synchronous all-reduce) on the same cluster's workers")
    raise StrategyError(f"unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}")


def is_chief(strategy: tf.distribute.Strategy | None = None) -> bool:
    """True unless this process is a non-chief worker of a multi-worker ``strategy``.

    The chief is the ``chief`` task if the cluster has one, else worker 0:
    the process that writes checkpoints, run folders and exports.

    Example:
    >>> is_chief(None)
    True
    """
    resolver = getattr(strategy, "cluster_resolver", None) if strategy is not None else None
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    if resolver.task_type == "chief":
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0 and \
        "chief" not in resolver.cluster_spec().as_dict()


@contextlib.contextmanager
def chief_output(path: str | os.PathLike, strategy: tf.distribute.Strategy | None = None):
    """Where this process writes ``path``: ``path`` itself on the chief, a scratch copy removed afterwards elsewhere.

    Every worker of a ``MultiWorkerMirroredStrategy`` must run the same saving
    code (reading some variables, e.g. metric states, is a collective
    all-reduce), but only the chief's files may land: the others write into
    a temporary folder that is deleted when the block ends.

    Example:
    >>> with chief_output("runs/x") as target:
    ...     str(target)
    'runs/x'
    """
    if is_chief(strategy):
        yield pathlib.Path(path)
        return
    scratch = tempfile.mkdtemp(prefix="mmrec-worker-")
    try:
        yield pathlib.Path(scratch) / pathlib.Path(path).name
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def strategy_name(strategy: tf.distribute.Strategy | None) -> str:
    """The ``--strategy`` name of ``strategy`` (``"none"`` without one; other strategies: their class name).

    Example:
    >>> strategy_name(None)
    'none'
    """
    if strategy is None:
        return "none"
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "multi_worker"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "mirrored"
    return type(strategy).__name__


def num_replicas(strategy: tf.distribute.Strategy | None) -> int:
    """How many replicas share each global batch (1 without a strategy)."""
    return 1 if strategy is None else int(strategy.num_replicas_in_sync)


def resolve_jit_compile(setting: bool | str, model, strategy: tf.distribute.Strategy | None = None) -> bool:
    """The ``jit_compile`` a model trains with; ``"auto"`` picks XLA where it is supported and pays off.

    ``"auto"``: XLA on a single device when the model supports it (no layer
    opts out, e.g. ``StringLookup``; op determinism off), else no XLA. Under a
    strategy with more than one replica or worker, no XLA: a jit-compiled step
    cannot read the replicas' variables on other devices ("Trying to access
    resource ... located in device CPU:1 from device CPU:0"). Keras' own
    ``"auto"`` turns XLA off on every CPU-only machine; measured on 2 CPU
    cores it is worth turning on (``benchmarks/training_throughput.py``).

    Example:
    >>> resolve_jit_compile(False, model=None)
    False
    """
    if setting != "auto":
        return bool(setting)
    if num_replicas(strategy) > 1 or _multi_worker(strategy):
        return False
    layers = model._flatten_layers() if hasattr(model, "_flatten_layers") else []
    return all(getattr(layer, "supports_jit", True) for layer in layers) and not _op_determinism_enabled()


def resolve_steps_per_execution(setting: int | str, callbacks, steps: int,
                                strategy: tf.distribute.Strategy | None = None) -> int:
    """How many batches each compiled ``fit`` call runs; ``"auto"`` runs several unless a callback needs each one.

    ``"auto"``: :data:`AUTO_STEPS_PER_EXECUTION` (at most an epoch's
    ``steps``), whether or not it divides the epoch: :func:`train_model`
    gives ``fit`` one epoch's dataset at a time, so the last call of an epoch
    runs only the batches left. (Keras 3.15 on one stream of epochs would
    run whole calls past the epoch's end into the next epoch's batches,
    which is why this used to pick a divisor of ``steps``: 1 for a prime
    count, several times slower per example, as
    ``benchmarks/training_throughput.py`` measures.) It is 1
    when one of ``callbacks`` has its own per-batch hook
    (``on_train_batch_end`` ...), which Keras would otherwise call only once
    per execution, and 1 under a strategy with several replicas or workers
    (Keras 3.15's multi-step loop fails under ``MultiWorkerMirroredStrategy``:
    "You must feed a value for placeholder tensor ... multi_step_on_iterator").
    Several steps per call save the Python round trip of each
    batch: the same batches, the same updates, the same weights
    (``benchmarks/training_throughput.py`` measures it); per-batch callbacks
    and the non-finite-loss check then see every Nth batch.

    Example:
    >>> resolve_steps_per_execution("auto", [], steps=10), resolve_steps_per_execution("auto", [], steps=701)
    (10, 32)
    >>> resolve_steps_per_execution("auto", [keras.callbacks.LambdaCallback(on_train_batch_end=print)], steps=10)
    1
    """
    if setting != "auto":
        return int(setting)
    if num_replicas(strategy) > 1 or _multi_worker(strategy) or \
            any(_has_batch_hook(callback) for callback in callbacks or []):
        return 1
    return max(1, min(AUTO_STEPS_PER_EXECUTION, steps))


def _has_batch_hook(callback) -> bool:
    """True if ``callback`` overrides a per-batch hook (in its class, or per instance as ``LambdaCallback`` does)."""
    return any(hook in vars(callback) or getattr(type(callback), hook) is not getattr(keras.callbacks.Callback, hook)
               for hook in BATCH_HOOKS)


def _op_determinism_enabled() -> bool:
    from tensorflow.python.framework import config as framework_config

    return bool(framework_config.is_op_determinism_enabled())


def _multi_worker(strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None) if strategy is not None else None
    return resolver is not None and bool(resolver.cluster_spec().as_dict())


class ChiefBackupAndRestore(keras.callbacks.Callback):
    """Kill-safe checkpoints at the end of every epoch (:mod:`mmrec_tf.checkpoints`), written by the chief only.

    Replaces :class:`keras.callbacks.BackupAndRestore`, which overwrites its
    weights file in place (a kill during the write leaves it truncated and the
    run unresumable). ``restore`` (from
    :func:`~mmrec_tf.checkpoints.find_checkpoint`) is loaded when training
    begins. Every worker restores from ``backup_dir`` (it must be storage all
    workers see); non-chief workers save their (identical) state into a
    scratch folder that is removed at the end, since saving may read
    variables collectively and so must run on every worker. The checkpoints
    are removed when training ends.

    Example:
    >>> callback = ChiefBackupAndRestore("checkpoints")
    """

    def __init__(self, backup_dir: str | os.PathLike, strategy: tf.distribute.Strategy | None = None,
                 restore: Checkpoint | None = None):
        super().__init__()
        self.backup_dir = pathlib.Path(backup_dir)
        self.strategy = strategy
        self.restore = restore
        self.scratch = None if is_chief(strategy) else tempfile.mkdtemp(prefix="mmrec-worker-backup-")

    def on_train_begin(self, logs=None):
        if self.restore is None:
            return
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(self.restore.weights_path)

    def on_epoch_end(self, epoch, logs=None):
        write_checkpoint(self.scratch or self.backup_dir, self.model, epoch + 1)

    def on_train_end(self, logs=None):
        shutil.rmtree(self.scratch or self.backup_dir, ignore_errors=True)


def _model_name(model) -> str:
    return getattr(model, "registry_name", type(model).__name__)


def _logq_probability(model):
    """The training target frequencies the model counted in ``prepare``, when it corrects its softmax by them."""
    if not getattr(model, "logq_correction", False):
        return None
    probability = getattr(model, "item_probability", None)
    if probability is None:
        raise ValueError(f"{_model_name(model)}: call model.prepare(train_examples) before laying out its batches; "
                         "logQ correction needs the training item frequencies")
    return probability


def training_dataset(model, examples: Examples | ShardedExamples, batch_size: int, shuffle: bool = True,
                     seed: int = 0, **options) -> tf.data.Dataset:
    """The ``tf.data`` batches ``model`` trains and validates on (after ``model.prepare``), laid out in this one place.

    The model's ``example_layout`` (a class attribute) decides the layout;
    the rows themselves come from the
    :class:`~mmrec_tf.data.preprocessor.Preprocessor`:

    - ``"labelled_examples"`` (every :class:`~mmrec_tf.models.RankingModel`):
      the labelled examples as they are, after ``model.check_examples``
      (labels present and valid, history length the model's);
    - ``"next_item_sequences"`` (SASRec): the
      rows re-laid by :func:`~mmrec_tf.data.pipeline.next_item_sequences`
      (windows of ``model.max_history`` every ``model.sequence_stride``
      items), each position's next item with its logQ probability
      (``next_item_probability``) when ``model.logq_correction``;
    - none (every other retrieval model): the examples as they are, each
      target with its logQ probability (``item_probability``) when
      ``model.logq_correction``.

    ``examples`` may be :class:`~mmrec_tf.data.tfrecord_io.ShardedExamples`
    for the models :func:`shard_refusal` does not refuse. ``options``
    (``epochs``, ``first_epoch``, ``epoch``) go to
    :func:`~mmrec_tf.data.pipeline.make_tf_dataset`, or for shards to
    :meth:`~mmrec_tf.data.tfrecord_io.ShardedExamples.make_dataset`.

    Example:
    >>> from mmrec_tf.data import FeatureSpace, build_examples, leave_last_out, load_dataset
    >>> from mmrec_tf.registry import create_model
    >>> ds = load_dataset("synthetic", num_users=6, num_items=8, num_clusters=2, interactions_per_user=6)
    >>> space = FeatureSpace.build(ds)
    >>> train = build_examples(leave_last_out(ds), space, max_history=4)["train"]
    >>> sasrec = create_model("sasrec", space=space, max_history=4, embedding_dim=8)
    >>> sasrec.prepare(train)
    >>> batch = next(iter(training_dataset(sasrec, train, 64, shuffle=False)))
    >>> len(train), tuple(batch["next_items"].shape), epoch_steps(sasrec, train, 64)
    (24, (6, 4), 1)
    """
    refusal = shard_refusal(model) if isinstance(examples, ShardedExamples) else None
    if refusal:
        raise ValueError(refusal)
    probability = _logq_probability(model)
    if isinstance(examples, ShardedExamples):
        return examples.make_dataset(batch_size, shuffle=shuffle, seed=seed, item_probability=probability, **options)
    layout = getattr(model, "example_layout", None)
    if layout == LABELLED_EXAMPLES:
        model.check_examples(examples)
        return make_tf_dataset(examples, batch_size, shuffle=shuffle, seed=seed, **options)
    if layout == NEXT_ITEM_SEQUENCES:
        sequences = next_item_sequences(examples, model.max_history, model.sequence_stride)
        if not len(sequences):
            raise ValueError(f"{_model_name(model)}: none of the {len(examples)} examples has a history to learn from")
        if probability is not None:
            sequences.extras["next_item_probability"] = probability[sequences.extras["next_items"]]
        return make_tf_dataset(sequences, batch_size, shuffle=shuffle, seed=seed, **options)
    return make_tf_dataset(examples, batch_size, shuffle=shuffle, seed=seed, item_probability=probability, **options)


def shard_refusal(model) -> str | None:
    """Why ``model`` cannot train from TFRecord shards (:class:`~mmrec_tf.data.tfrecord_io.ShardedExamples`), or None.

    Shards hold one retrieval example a row, dealt across the shards, and
    stream them as they are. By its ``example_layout``, a ranking model needs
    labelled examples, and a model trained on next-item sequences (SASRec)
    needs each user's consecutive examples in memory, in order.

    Example:
    >>> from mmrec_tf.data.sources import make_synthetic
    >>> from mmrec_tf.data.feature_space import FeatureSpace
    >>> from mmrec_tf.registry import create_model
    >>> space = FeatureSpace.build(make_synthetic(num_users=4, num_items=6, num_clusters=2))
    >>> shard_refusal(create_model("lstm_two_tower", space=space)) is None
    True
    >>> shard_refusal(create_model("din", space=space)).split(";")[0]
    'din is a ranking model and trains on labelled examples'
    """
    name, layout = _model_name(model), getattr(model, "example_layout", None)
    if layout == LABELLED_EXAMPLES:
        return (f"{name} is a ranking model and trains on labelled examples; TFRecord shards (mmrec convert-data) "
                "hold retrieval examples, without labels")
    if layout == NEXT_ITEM_SEQUENCES:
        return (f"{name} trains on next-item sequences laid out from each user's consecutive examples, and "
                "TFRecord shards deal a user's examples to different shards; train it on in-memory examples "
                "(Preprocessor.examples)")
    return None


def _shard_by_data(dataset):
    """Multi-worker input: every worker builds the same pipeline and keeps its share of each global batch."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def epoch_steps(model, train, batch_size: int) -> int:
    """Batches in one epoch of :func:`training_dataset` ``(model, train, batch_size)``."""
    if getattr(model, "example_layout", None) == NEXT_ITEM_SEQUENCES and not isinstance(train, ShardedExamples):
        return steps_per_epoch(len(next_item_sequences(train, model.max_history, model.sequence_stride)), batch_size)
    return steps_per_epoch(len(train), batch_size)


def train_model(model, train: Examples | ShardedExamples, config: TrainingConfig,
                valid: Examples | ShardedExamples | None = None, callbacks=None, verbose: int | str = "auto",
                checkpoint_dir: str | os.PathLike | None = None, strategy: tf.distribute.Strategy | None = None,
                prepare_examples: Examples | None = None, optimizer: keras.optimizers.Optimizer | None = None):
    """Fit ``model`` on ``train`` examples with ``config``; returns the Keras History (or None).

    The model counts what it needs from the training data
    (``model.prepare(train)``: logQ frequencies, popularity counts, which
    items are trained), then trains on the batches :func:`training_dataset`
    lays out for it, so retrieval and ranking models share this loop.
    ``train`` may also be :class:`~mmrec_tf.data.tfrecord_io.ShardedExamples`
    (TFRecord shards written by ``mmrec convert-data``, read from disk), for
    the models :func:`shard_refusal` does not refuse (refused before
    anything is built).
    Counting-based models (no trainable weights, e.g. popularity) are only
    prepared. With ``valid`` the validation loss and metrics are reported
    each epoch. Training stops with :class:`TrainingDivergedError` at the
    first non-finite loss. ``config.jit_compile`` and
    ``config.steps_per_execution`` are resolved by :func:`resolve_jit_compile`
    and :func:`resolve_steps_per_execution` (``callbacks`` with per-batch
    hooks get every batch).

    An update of a trained model (:mod:`mmrec_tf.update`) passes
    ``prepare_examples``, everything the model has seen (counts such as
    item frequencies are taken from them instead of from ``train``, the new
    interactions alone), and ``optimizer``, the trained optimizer grown with
    the model (its state continues instead of starting from zero). When it is
    the model's own optimizer (the model was grown in place), the model is
    not compiled again and ``fit`` reuses its traced training step (see
    :func:`_continues_compiled`).

    With ``checkpoint_dir`` the weights, optimizer state and epoch are saved
    at the end of every epoch; calling again with the same directory after an
    interruption (even SIGKILL, even inside a checkpoint write: see
    :mod:`mmrec_tf.checkpoints`) resumes from the last finished epoch whose
    checkpoint verifies, logging any it skips. Each
    epoch's shuffle depends only on the seed and the epoch number, so a
    resumed run sees the same batches as an uninterrupted one. ``fit`` gets
    one epoch's dataset at a time (:class:`DataEpoch`), so every epoch
    trains exactly its own batches whether or not ``steps_per_execution``
    divides their number (an epoch's last call runs the batches left).

    With ``strategy`` (a ``tf.distribute.Strategy``; the model must have been
    created under ``strategy.scope()``) the model is built and compiled under
    the scope and ``fit`` distributes the dataset: each global batch of
    ``config.batch_size`` examples is split evenly across the replicas
    (multi-worker: every worker builds the same pipeline and keeps its share,
    ``AutoShardPolicy.DATA``). Loss scaling: Keras sums the replicas'
    gradients. The retrieval task's loss is a SUM over its batch (TFRS), so
    each replica returns the sum over its own rows unscaled, and the summed
    gradient is the gradient of the sum over the global batch, as on one
    device; mean-reduced losses (the ranking task's) divide their sum by
    the global batch (:func:`~mmrec_tf.tasks.replicas.replica_share`). The in-batch softmax, though, runs per replica:
    each query's negatives are the other candidates of its replica's
    ``batch_size / replicas`` rows, not of the global batch (candidates are
    not all-gathered, as TFRS under ``MirroredStrategy``). The reported loss
    is the sum over the global batch. Only the chief writes checkpoints
    (:class:`ChiefBackupAndRestore`).

    Example:
    >>> from mmrec_tf.data import FeatureSpace, build_examples, leave_last_out, load_dataset
    >>> from mmrec_tf.registry import create_model
    >>> ds = load_dataset("synthetic", num_users=20, num_items=12, num_clusters=2)
    >>> space = FeatureSpace.build(ds)
    >>> examples = build_examples(leave_last_out(ds), space, max_history=5)
    >>> model = create_model("two_tower", space=space, embedding_dim=4)
    >>> history = train_model(model, examples["train"], TrainingConfig(epochs=1), verbose=0)
    >>> len(history.history["loss"])
    1
    """
    if strategy is not None and model.distribute_strategy is not strategy:
        raise StrategyError(f"{type(model).__name__} was not created under the strategy's scope; create it inside "
                            "`with strategy.scope():` (mmrec_tf.experiment.run does) so its variables are "
                            "replicated")
    for examples in (train, valid):
        refusal = shard_refusal(model) if isinstance(examples, ShardedExamples) else None
        if refusal:
            raise ValueError(refusal)
    keras.utils.set_random_seed(config.seed)
    # which epoch the dataset yields; made outside the strategy's scope, where it would be a distributed variable
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="data_epoch")
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        if prepare_examples is None:
            prepare_examples = train.prepare_view() if isinstance(train, ShardedExamples) else train
        model.prepare(prepare_examples)
        if not model.built:
            model.build()
        if not model.trainable_weights:
            return None
        first_epoch = 0
        user_callbacks = list(callbacks or [])
        callbacks = [StopOnNonFiniteLoss(config.learning_rate), *user_callbacks]
        if checkpoint_dir is not None:
            checkpoint_dir = pathlib.Path(checkpoint_dir)
            restore = find_checkpoint(checkpoint_dir)
            first_epoch = min(restore.epoch if restore is not None else 0, config.epochs)
            callbacks.append(ChiefBackupAndRestore(checkpoint_dir, strategy, restore))
        callbacks.append(DataEpoch(epoch))
        dataset = training_dataset(model, train, config.batch_size, shuffle=True, seed=config.seed, epoch=epoch)
        validation = (training_dataset(model, valid, config.batch_size, shuffle=False)
                      if valid is not None and len(valid) else None)
        if strategy is not None:
            dataset = _shard_by_data(dataset)
            validation = _shard_by_data(validation) if validation is not None else None
        steps = epoch_steps(model, train, config.batch_size)
        jit_compile = resolve_jit_compile(config.jit_compile, model, strategy)
        steps_per_execution = resolve_steps_per_execution(config.steps_per_execution, user_callbacks, steps, strategy)
        continuing = _continues_compiled(model, optimizer, jit_compile, steps_per_execution,
                                         config.steps_per_execution == "auto" and num_replicas(strategy) == 1
                                         and not _multi_worker(strategy)
                                         and not any(_has_batch_hook(callback) for callback in user_callbacks))
        if not continuing:
            model.compile(optimizer=optimizer or OPTIMIZERS[config.optimizer](learning_rate=config.learning_rate),
                          jit_compile=jit_compile, steps_per_execution=steps_per_execution)
            # one batch builds and traces the model, taken from a separate unshuffled pipeline
            model(next(iter(training_dataset(model, train, config.batch_size, shuffle=False, epochs=1))))
        with _multi_worker_dict_inputs(model, strategy):
            return model.fit(dataset, epochs=config.epochs, initial_epoch=first_epoch, validation_data=validation,
                             callbacks=callbacks, verbose=verbose, shuffle=False)


def _continues_compiled(model, optimizer, jit_compile: bool, steps_per_execution: int, free_steps: bool) -> bool:
    """Whether ``fit`` may keep ``model``'s compiled (already traced) training step instead of compiling again.

    Only when the model continues with its own optimizer (an update grown in
    place, :func:`mmrec_tf.update.grow_in_place`) under the same XLA setting,
    and the compiled steps per execution are the ones asked for, or any
    count would do (``free_steps``: ``"auto"``, no per-batch callback, one
    replica; each epoch's last call runs the batches left, see
    :func:`resolve_steps_per_execution`).
    """
    if optimizer is None or optimizer is not getattr(model, "optimizer", None) or not getattr(model, "compiled", False) \
            or bool(model.jit_compile) != bool(jit_compile):
        return False
    return int(model.steps_per_execution) == steps_per_execution or free_steps


@contextlib.contextmanager
def _multi_worker_dict_inputs(model, strategy):
    """Work around two Keras 3.15 ``fit`` bugs under ``MultiWorkerMirroredStrategy`` (a no-op otherwise).

    1. ``fit`` first "symbolically builds" a model that recorded a strategy,
       by ``strategy.reduce("MEAN", batch)``; the collective strategy cannot
       reduce a dict batch ("Attempt to convert a value ({'user_id':
       PerReplica...}) ... to a Tensor", keras-team/keras#20329). The model is
       already built here, so for the length of ``fit`` it forgets the
       recorded strategy (``fit`` finds the same one in the enclosing scope)
       and the optimizer variables that build would have made are made first.
    2. Step logs are averaged over replicas with ``strategy.reduce("MEAN",
       value, axis=0)``, which fails on the scalar logs ("Invalid reduction
       dimension 0 for input with 0 dimensions"); the steps return them as
       ``[1]`` vectors, which that reduction averages to the same scalar
       ``MirroredStrategy`` reports.
    """
    if not _multi_worker(strategy):
        yield
        return
    model.optimizer.build(model.trainable_variables)
    recorded, model._distribute_strategy = model._distribute_strategy, None
    model.train_step = _logs_as_vectors(model.train_step)
    model.test_step = _logs_as_vectors(model.test_step)
    try:
        yield
    finally:
        model._distribute_strategy = recorded
        del model.train_step, model.test_step


def _logs_as_vectors(step):
    def step_with_vector_logs(data):
        return keras.tree.map_structure(lambda value: tf.reshape(value, [1]) if value.shape.rank == 0 else value,
                                        step(data))

    return step_with_vector_logs
