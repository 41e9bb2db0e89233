"""Training throughput on MovieLens-100K: every retrieval and ranking model, XLA, mixed precision, input pipeline.

Measures, in one process and one run:

1. For every registered retrieval and ranking model (popularity has no
   gradients and is skipped): training examples per second, the median of
   the steady-state epochs (the first epoch, which traces and compiles, is
   excluded), one step per compiled call without and with XLA
   (``jit_compile``), under the ``mixed_float16`` policy, and with
   ``TrainingConfig``'s defaults (``jit_compile="auto"``,
   ``steps_per_execution="auto"``); the variants of a model train epoch by
   epoch in alternation, so load changes hit them alike. Then the input
   pipeline alone (the model's own ``tf.data`` dataset with the model
   removed, consumed inside the TF runtime by ``Dataset.reduce`` as ``fit``'s
   compiled step consumes it; the rate through a Python loop is printed too),
   which should be at least 5x the model's fastest training rate; where it
   is not, a starvation check races the defaults on the real pipeline against
   the same model fed one cached batch over and over (no input work at all).
   Retrieval models train on leave-last-out examples, ranking models on the
   DIN-protocol labelled examples (rating >= 4, see
   ``benchmarks/ranking_movielens.py``). Each model uses its zoo entry's
   architecture and batch size when it has one, else the defaults.
2. Side by side: a plain Keras 3 two-tower written the way the TFRS
   basic-retrieval tutorial writes it (``keras.layers.StringLookup`` on raw
   string ids inside the model, ``Embedding`` dim 32, in-batch softmax as a
   matmul + categorical cross-entropy summed over the batch, Adagrad 0.1,
   batch 8192, Keras' default ``jit_compile``) against our ``two_tower``
   (ids turned into indices before ``tf.data``) with the defaults and with
   ``jit_compile=False``, and our ``two_tower`` fed raw string ids looked up
   inside ``tf.data``. All start from the same initial embeddings, see the
   same batches in the same order and train epoch by epoch in alternation;
   their HR@10 must agree up to floating-point noise. The target is ours >=
   1.5x the tutorial model's speed (median of per-epoch time ratios) at equal
   or better HR@10 (full ranking of all 1,682 items, each test user's train
   and valid items excluded, as in ``benchmarks/retrieval_movielens.py``).

3. Model against model (issue 16): ``sasrec`` next to ``lstm_two_tower``,
   each with its zoo recipe and ``TrainingConfig``'s defaults, trained epoch
   by epoch in alternation; both count the same leave-last-out training
   examples per epoch (SASRec re-lays them as next-item sequences, every
   target once per epoch), so the examples/s ratio is the ratio of epoch
   times. The time to train each whole recipe (its epochs x its median
   epoch) is printed too.
4. Steps per call against the epoch's length: ``two_tower`` (its zoo
   recipe at batch 128) on the first 701 x 128 and 704 x 128 training
   examples, i.e. a prime number of batches per epoch and a multiple of 32,
   with ``steps_per_execution="auto"`` (32 for both, the last call of a
   701-step epoch runs 29), and the 701-step epoch at one step per call (what
   ``"auto"`` picked before it stopped needing a divisor of the epoch), raced
   epoch by epoch; per-example time ratios are medians of per-epoch ratios.

The machine's 1-minute load average is printed with every measurement: on a
shared machine the absolute numbers move with it, the ratios much less.
Nothing is written to disk.

    python benchmarks/training_throughput.py [--data-path ../shared/data/ml-100k] [--epochs 3]
        [--models two_tower,din] [--side-epochs 6] [--skip-models] [--skip-side-by-side]
        [--pair sasrec,lstm_two_tower] [--pair-epochs 4] [--skip-pair] [--step-counts 701,704]
        [--step-epochs 8] [--skip-step-counts]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from _common import movielens_path, print_table  # noqa: E402
from keras import ops  # noqa: E402

from mmrec_tf.data.label_spec import parse_label  # noqa: E402
from mmrec_tf.data.pipeline import Examples, make_tf_dataset, steps_per_epoch  # noqa: E402
from mmrec_tf.data.preprocessor import Preprocessor  # noqa: E402
from mmrec_tf.data.sources import load_dataset  # noqa: E402
from mmrec_tf.data.splits import temporal_fraction_split  # noqa: E402
from mmrec_tf.evaluation.full_ranking import evaluate_retrieval  # noqa: E402
from mmrec_tf.experiment import prepare_data  # noqa: E402
from mmrec_tf.registry import create_model, list_models, registered_model  # noqa: E402
from mmrec_tf.task_kinds import task_kind  # noqa: E402
from mmrec_tf.training import (OPTIMIZERS, TrainingConfig, epoch_steps, resolve_jit_compile,  # noqa: E402
                               resolve_steps_per_execution, training_dataset)
from mmrec_tf.zoo_entry import get_zoo_entry  # noqa: E402

TAG = "movielens_100k"
PIPELINE_FACTOR = 5.0
SPEEDUP_TARGET = 1.5
SIDE_BATCH, SIDE_DIM, SIDE_LEARNING_RATE = 8192, 32, 0.1
HR_TOLERANCE = 0.002
# (column, dtype policy, speed settings): one step per call without / with XLA, mixed precision with the
# defaults, and TrainingConfig's defaults (jit_compile="auto", steps_per_execution="auto").
VARIANTS = (("no XLA", "float32", {"jit_compile": False, "steps_per_execution": 1}),
            ("XLA", "float32", {"jit_compile": True, "steps_per_execution": 1}),
            ("mixed_float16", "mixed_float16", {}),
            ("default", "float32", {}))


def load_average() -> float:
    return os.getloadavg()[0]


class EpochTimer(keras.callbacks.Callback):
    """Wall-clock seconds of each training epoch (``fit``'s own loop, no validation)."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []
        self.loads: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.started)
        self.loads.append(load_average())


def steady_rate(examples: int, seconds: list[float]) -> float:
    """Examples per second: the median over epochs after the first (compile) epoch."""
    steady = seconds[1:] or seconds
    return examples / statistics.median(steady)


class Contender:
    """One compiled model and the batches of each epoch, trained one epoch at a time by :func:`race`."""

    def __init__(self, label: str, model, epoch_batches, examples: int, batch_size: int, steps: int | None = None):
        self.label = label
        self.model = model
        self.epoch_batches = epoch_batches
        self.examples = examples
        self.steps = steps if steps is not None else steps_per_epoch(examples, batch_size)
        self.timer = EpochTimer()
        self.failure = None

    @property
    def rate(self) -> float:
        return steady_rate(self.examples, self.timer.seconds)

    @property
    def load(self) -> float:
        return statistics.mean(self.timer.loads[1:] or self.timer.loads)


def race(contenders: list[Contender], epochs: int) -> None:
    """Train the contenders epoch by epoch, alternating their order, so machine load hits them alike.

    Epoch ``e`` of every contender runs back to back with the others' epoch
    ``e``; a contender whose epoch raises is dropped with its error recorded.
    """
    for epoch in range(epochs):
        ordered = contenders if epoch % 2 == 0 else contenders[::-1]
        for contender in ordered:
            if contender.failure:
                continue
            try:
                contender.model.fit(contender.epoch_batches(epoch), initial_epoch=epoch, epochs=epoch + 1,
                                    steps_per_epoch=contender.steps, callbacks=[contender.timer], verbose=0)
            except Exception as error:  # noqa: BLE001 - a failing variant is a finding to report
                contender.failure = f"{type(error).__name__}: {str(error).strip().splitlines()[0][:90]}"


def paired_speedup(reference: Contender, other: Contender) -> float:
    """Median over steady epochs of reference seconds / other seconds (each pair ran back to back)."""
    return statistics.median(r / o for r, o in list(zip(reference.timer.seconds, other.timer.seconds))[1:])


def ready_like_train_model(model, train: Examples, config: TrainingConfig, label: str) -> Contender:
    """``model`` prepared and compiled as :func:`~mmrec_tf.training.train_model` does, fed its epochs' batches."""
    keras.utils.set_random_seed(config.seed)
    model.prepare(train)
    if not model.built:
        model.build()
    model.compile(optimizer=OPTIMIZERS[config.optimizer](learning_rate=config.learning_rate),
                  jit_compile=resolve_jit_compile(config.jit_compile, model),
                  steps_per_execution=resolve_steps_per_execution(
                      config.steps_per_execution, [], epoch_steps(model, train, config.batch_size)))

    def epoch_batches(epoch):
        return training_dataset(model, train, config.batch_size, shuffle=True, seed=config.seed, epochs=epoch + 1,
                                first_epoch=epoch)

    model(next(iter(epoch_batches(0))))
    return Contender(label, model, epoch_batches, len(train), config.batch_size,
                     steps=epoch_steps(model, train, config.batch_size))


# === Part 1: every model ===


def model_recipe(name: str) -> tuple[str, dict]:
    """``(what to create, training recipe)``: the zoo entry when there is one, else the bare model."""
    entry = f"{name}.{TAG}"
    try:
        return entry, dict(get_zoo_entry(entry).training)
    except (KeyError, ValueError, FileNotFoundError):
        return name, {}


def model_contender(name: str, space, train: Examples, label: str, policy: str = "float32", **speed) -> Contender:
    """``name`` with its zoo recipe and ``speed`` settings (``jit_compile``, ``steps_per_execution``), ``policy``."""
    target, recipe = model_recipe(name)
    config = TrainingConfig(**{**recipe, **speed})
    keras.mixed_precision.set_global_policy(policy)
    try:
        keras.utils.set_random_seed(config.seed)
        return ready_like_train_model(create_model(target, space=space), train, config, label)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def measure_pipeline(name: str, space, train: Examples, epochs: int) -> tuple[float, float]:
    """Examples/s of the model's training ``tf.data`` pipeline (``training_dataset``) with the model removed.

    Returns ``(in_graph, python_loop)``: each epoch's dataset consumed by
    ``Dataset.reduce`` (batches pulled inside the TF runtime, as ``fit``'s
    compiled step pulls them), and by a Python ``for`` loop (adds the
    per-batch cost of handing tensors to Python, which ``fit`` does not pay).
    """
    target, recipe = model_recipe(name)
    config = TrainingConfig(**{**recipe, "epochs": epochs})
    model = create_model(target, space=space)
    model.prepare(train)
    in_graph, python_loop = [], []
    for epoch in range(epochs):
        dataset = training_dataset(model, train, config.batch_size, shuffle=True, seed=config.seed, epochs=epoch + 1,
                                   first_epoch=epoch)
        started = time.perf_counter()
        dataset.reduce(np.int64(0), lambda count, batch: count + tf.shape(batch["item_id"], out_type=tf.int64)[0])
        in_graph.append(time.perf_counter() - started)
        started = time.perf_counter()
        for _ in dataset:
            pass
        python_loop.append(time.perf_counter() - started)
    return steady_rate(len(train), in_graph), steady_rate(len(train), python_loop)


def model_rows(names: list[str], data, ranking_examples, epochs: int) -> tuple[list[list[str]], list[str]]:
    rows, failures = [], []
    for name in names:
        task = registered_model(name).task
        train = ranking_examples["train"] if task_kind(task).labelled else data.examples["train"]
        probe = create_model(model_recipe(name)[0], space=data.space)
        probe.prepare(train)
        if not probe.built:
            probe.build()
        if not probe.trainable_weights:
            rows.append([name, task, "-", "n/a (counting)", *[""] * (len(VARIANTS) + 4)])
            continue
        contenders = []
        for label, policy, speed in VARIANTS:
            try:
                contenders.append(model_contender(name, data.space, train, label, policy, **speed))
            except Exception as error:  # noqa: BLE001 - reported below the table
                failures.append(f"{name}, {label}: {type(error).__name__}: "
                                f"{str(error).strip().splitlines()[0][:90]}")
        race(contenders, epochs)
        cells = {}
        for contender in contenders:
            if contender.failure:
                failures.append(f"{name}, {contender.label}: {contender.failure}")
                continue
            jit = bool(contender.model.jit_compile)
            loss = float(contender.model.get_metrics_result().get("loss", float("nan")))
            cells[contender.label] = (contender, jit)
            print(f"{name}, {contender.label}: {contender.rate:,.0f} examples/s (jit_compile={jit}, last-epoch loss "
                  f"{loss:.4f}, load {contender.load:.1f})", flush=True)
        pipeline, pipeline_python = measure_pipeline(name, data.space, train, epochs)
        print(f"{name}, input pipeline alone: {pipeline:,.0f} examples/s consumed in the TF runtime, "
              f"{pipeline_python:,.0f} examples/s through a Python loop", flush=True)

        def cell(label):
            if label not in cells:
                return "fails (see below)"
            contender, jit = cells[label]
            if label == "XLA" and not jit:
                return "n/a (no XLA support)"
            return f"{contender.rate:,.0f}"

        measured = [contender for contender, _ in cells.values()]
        if not measured:
            rows.append([name, task, str(recipe_batch_size(name)), *["fails (see below)"] * len(VARIANTS),
                         "", f"{pipeline:,.0f}", "", "", ""])
            continue
        fastest = max(c.rate for c in measured)
        starvation = "-"
        if pipeline < PIPELINE_FACTOR * fastest:
            starvation = starvation_check(name, data.space, train, epochs)
        default = cells.get("default")
        picks = (f"{'XLA' if default[1] else 'no XLA'}, {default[0].model.steps_per_execution} steps/call"
                 if default else "")
        rows.append([name, task, str(recipe_batch_size(name)), *[cell(label) for label, _, _ in VARIANTS], picks,
                     f"{pipeline:,.0f}",
                     f"{pipeline / fastest:.1f}x {'ok' if pipeline >= PIPELINE_FACTOR * fastest else 'below 5x'}",
                     starvation, f"{statistics.mean(c.load for c in measured):.1f}"])
    return rows, failures


def starvation_check(name: str, space, train: Examples, epochs: int) -> str:
    """Default settings on the real pipeline vs on one cached batch repeated (no input work), raced."""
    real = model_contender(name, space, train, "real batches")
    cached = model_contender(name, space, train, "one cached batch")
    batches = cached.epoch_batches
    cached.epoch_batches = lambda epoch: batches(epoch).take(1).cache().repeat()
    race([real, cached], epochs)
    if real.failure or cached.failure:
        return f"check failed: {real.failure or cached.failure}"
    print(f"{name}, starvation check: {real.rate:,.0f} examples/s on its pipeline, {cached.rate:,.0f} on one cached "
          f"batch", flush=True)
    return f"{real.rate:,.0f} vs {cached.rate:,.0f} ({real.rate / cached.rate:.0%})"


def recipe_batch_size(name: str) -> int:
    return TrainingConfig(**model_recipe(name)[1]).batch_size


# === Part 3: one model against another ===


def pair_rows(names: list[str], data, epochs: int) -> list[list[str]]:
    """The retrieval models ``names`` with their zoo recipes and the defaults, raced; rows against the last."""
    train = data.examples["train"]
    contenders = [model_contender(name, data.space, train, name) for name in names]
    race(contenders, epochs)
    reference = contenders[-1]
    rows = []
    for contender, name in zip(contenders, names):
        if contender.failure:
            raise SystemExit(f"{name} failed: {contender.failure}")
        recipe = TrainingConfig(**model_recipe(name)[1])
        epoch_seconds = statistics.median(contender.timer.seconds[1:])
        ratio = 1.0 if contender is reference else paired_speedup(reference, contender)
        print(f"{name}: {contender.rate:,.0f} examples/s, {ratio:.2f}x {reference.label}'s per epoch "
              f"(load {contender.load:.1f})", flush=True)
        rows.append([name, str(recipe.batch_size), str(contender.steps),
                     f"{'XLA' if contender.model.jit_compile else 'no XLA'}, "
                     f"{contender.model.steps_per_execution} steps/call", f"{contender.rate:,.0f}", f"{ratio:.2f}x",
                     f"{epoch_seconds:.1f}",
                     f"{recipe.epochs} x {epoch_seconds:.1f} = {recipe.epochs * epoch_seconds:.0f}",
                     f"{contender.load:.1f}"])
    return rows


# === Part 4: steps per call against the epoch's length ===


def per_example_ratio(slower: Contender, faster: Contender) -> float:
    """Median over steady epochs of (slower's seconds per example) / (faster's); each pair ran back to back."""
    pairs = list(zip(slower.timer.seconds, faster.timer.seconds))[1:]
    return statistics.median((s / slower.examples) / (f / faster.examples) for s, f in pairs)


def step_count_rows(data, counts: list[int], epochs: int, batch_size: int = 128) -> list[list[str]]:
    """``two_tower`` on ``count x batch_size`` examples per epoch for each of ``counts``, raced.

    Each count trains with ``steps_per_execution="auto"``; the first count
    also with one step per call. Ratios are per-example times against the
    last count's ``"auto"`` contender.
    """
    train = data.examples["train"]
    if max(counts) * batch_size > len(train):
        raise SystemExit(f"--step-counts: {max(counts)} batches of {batch_size} need {max(counts) * batch_size:,} "
                         f"examples; the training split has {len(train):,}")
    contenders = []
    for index, count in enumerate(counts):
        subset = Examples(train.user_id[:count * batch_size], train.item_id[:count * batch_size],
                          train.history[:count * batch_size],
                          {name: value[:count * batch_size] for name, value in train.extras.items()})
        for speed in ([{}, {"steps_per_execution": 1}] if index == 0 else [{}]):
            label = f"{count} steps, steps_per_execution={speed.get('steps_per_execution', 'auto')}"
            target, recipe = model_recipe("two_tower")
            config = TrainingConfig(**{**recipe, "batch_size": batch_size, **speed})
            keras.utils.set_random_seed(config.seed)
            contenders.append(ready_like_train_model(create_model(target, space=data.space), subset, config, label))
    race(contenders, epochs)
    reference = contenders[-1]
    rows = []
    for contender in contenders:
        if contender.failure:
            raise SystemExit(f"{contender.label} failed: {contender.failure}")
        ratio = 1.0 if contender is reference else per_example_ratio(contender, reference)
        print(f"{contender.label}: {contender.rate:,.0f} examples/s, ran {contender.model.steps_per_execution} "
              f"steps/call, per-example time {ratio:.2f}x {reference.label}'s (load {contender.load:.1f}; epoch "
              f"seconds {', '.join(f'{seconds:.2f}' for seconds in contender.timer.seconds)})", flush=True)
        rows.append([contender.label, f"{contender.examples:,}", str(contender.model.steps_per_execution),
                     f"{contender.rate:,.0f}", f"{ratio:.2f}x", f"{contender.load:.1f}"])
    return rows


# === Part 2: the TFRS-tutorial two-tower, side by side ===


class TutorialTwoTower(keras.Model):
    """A two-tower model as the TFRS basic-retrieval tutorial writes it, in plain Keras 3.

    Each tower is ``StringLookup`` (the id vocabulary, one out-of-vocabulary
    index 0) followed by an ``Embedding``; the loss is the in-batch softmax
    of TFRS' ``Retrieval`` task without its extras: scores = user @ item^T,
    labels = identity, categorical cross-entropy from logits summed over the
    batch. Inputs are raw string ids.

    Example:
    >>> model = TutorialTwoTower(["u1", "u2"], ["i1", "i2", "i3"], embedding_dim=4)
    >>> tuple(model({"user_id": tf.constant(["u2"]), "item_id": tf.constant(["i9"])})["user"].shape)
    (1, 4)
    """

    def __init__(self, user_ids, item_ids, embedding_dim: int = 32, **kwargs):
        super().__init__(**kwargs)
        self.user_model = keras.Sequential([keras.layers.StringLookup(vocabulary=list(user_ids), mask_token=None),
                                            keras.layers.Embedding(len(user_ids) + 1, embedding_dim)])
        self.item_model = keras.Sequential([keras.layers.StringLookup(vocabulary=list(item_ids), mask_token=None),
                                            keras.layers.Embedding(len(item_ids) + 1, embedding_dim)])
        self.cross_entropy = keras.losses.CategoricalCrossentropy(from_logits=True, reduction="sum")

    def call(self, features):
        return {"user": self.user_model(features["user_id"]), "item": self.item_model(features["item_id"])}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        scores = ops.matmul(y_pred["user"], ops.transpose(y_pred["item"]))
        labels = ops.eye(ops.shape(scores)[0], ops.shape(scores)[1])
        return self.cross_entropy(labels, scores)


class IndexedTutorialModel:
    """The tutorial model seen through the two methods ``evaluate_retrieval`` calls (indices in, strings inside)."""

    def __init__(self, model: TutorialTwoTower, space):
        self.model = model
        self.user_ids = np.asarray(["", *space.user_vocab.ids], dtype=object).astype(str)
        self.item_ids = np.asarray(space.item_vocab.ids, dtype=object).astype(str)

    def encode_users(self, features):
        return self.model.user_model(tf.constant(self.user_ids[np.asarray(features["user_id"])]))

    def all_item_embeddings(self) -> np.ndarray:
        return ops.convert_to_numpy(self.model.item_model(tf.constant(self.item_ids))).astype(np.float32)


def string_examples(examples: Examples, space) -> Examples:
    """The same examples with raw string ids instead of indices (what the tutorial model reads)."""
    users = np.asarray(["", *space.user_vocab.ids], dtype=object).astype(str)
    items = np.asarray(["", *space.item_vocab.ids], dtype=object).astype(str)
    return Examples(users[examples.user_id], items[examples.item_id], examples.history[:, :1], {})


def string_batches(examples: Examples, space, epoch: int, seed: int) -> tf.data.Dataset:
    """Epoch ``epoch``'s raw-string batches, in exactly the order ``two_tower`` sees its index batches."""
    dataset = make_tf_dataset(string_examples(examples, space), SIDE_BATCH, shuffle=True, seed=seed,
                              epochs=epoch + 1, first_epoch=epoch)
    return dataset.map(lambda batch: {"user_id": batch["user_id"], "item_id": batch["item_id"]})


def lookup_in_tf_data(dataset: tf.data.Dataset, tables: dict) -> tf.data.Dataset:
    """String batches turned into index batches inside ``tf.data`` (hash tables, index 0 for unknown ids)."""
    return dataset.map(lambda batch: {"user_id": tables["user_id"].lookup(batch["user_id"]),
                                      "item_id": tables["item_id"].lookup(batch["item_id"]),
                                      "history": tf.zeros([tf.shape(batch["user_id"])[0], 1], tf.int32)},
                       num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def initial_two_tower(space, seed: int):
    keras.utils.set_random_seed(seed)
    model = create_model("two_tower", space=space, embedding_dim=SIDE_DIM)
    model.build()
    return model


def side_by_side(data, epochs: int, seed: int = 0) -> tuple[list[list[str]], float, float]:
    train = data.examples["train"]
    space = data.space
    config = TrainingConfig(epochs=epochs, batch_size=SIDE_BATCH, learning_rate=SIDE_LEARNING_RATE,
                            optimizer="adagrad", seed=seed)
    start = initial_two_tower(space, seed)

    tutorial = TutorialTwoTower(space.user_vocab.ids, space.item_vocab.ids, embedding_dim=SIDE_DIM)
    tutorial({"user_id": tf.constant(["x"]), "item_id": tf.constant(["x"])})
    tutorial.user_model.layers[1].set_weights(start.user_embedding.get_weights())
    tutorial.item_model.layers[1].set_weights(start.item_embedding.get_weights())
    tutorial.compile(optimizer=keras.optimizers.Adagrad(learning_rate=SIDE_LEARNING_RATE))
    contenders = [Contender("Keras 3 TFRS-tutorial two-tower (StringLookup in the model)", tutorial,
                            lambda epoch: string_batches(train, space, epoch, seed), len(train), SIDE_BATCH)]
    for label, jit in (("two_tower (indices before tf.data), TrainingConfig default", "auto"),
                       ("two_tower (indices before tf.data), jit_compile=False", False)):
        model = initial_two_tower(space, seed)
        model.set_weights(start.get_weights())
        contenders.append(ready_like_train_model(
            model, train, dataclasses.replace(config, jit_compile=jit), label))
    tables = {feature: vocab.make_tf_lookup(feature) for feature, vocab in
              (("user_id", space.user_vocab), ("item_id", space.item_vocab))}
    in_tf_data = ready_like_train_model(initial_two_tower(space, seed), train, config,
                                        "two_tower (string ids looked up in tf.data), TrainingConfig default")
    in_tf_data.model.set_weights(start.get_weights())
    in_tf_data.epoch_batches = lambda epoch: lookup_in_tf_data(string_batches(train, space, epoch, seed), tables)
    contenders.append(in_tf_data)

    race(contenders, epochs)
    reference = contenders[0]
    reports = {}
    for contender in contenders:
        if contender.failure:
            raise SystemExit(f"side by side: {contender.label} failed: {contender.failure}")
        evaluated = IndexedTutorialModel(contender.model, space) if contender is reference else contender.model
        reports[contender.label] = evaluate_retrieval(evaluated, data.examples["test"], data.seen("test"))
        print(f"side by side, {contender.label}: {contender.rate:,.0f} examples/s, "
              f"hr@10={reports[contender.label].metrics['hr@10']:.4f}, jit_compile={contender.model.jit_compile}, "
              f"load {contender.load:.1f}", flush=True)
    baseline_hr = reports[reference.label].metrics["hr@10"]
    rows = []
    for contender in contenders:
        metrics = reports[contender.label].metrics
        speedup = 1.0 if contender is reference else paired_speedup(reference, contender)
        rows.append([contender.label, "XLA" if contender.model.jit_compile else "no XLA", f"{contender.rate:,.0f}",
                     f"{speedup:.2f}x", f"{metrics['hr@10']:.4f}", f"{metrics['ndcg@10']:.4f}",
                     f"{metrics['hr@10'] - baseline_hr:+.4f}", f"{contender.load:.1f}"])
    ours = contenders[1]
    return rows, paired_speedup(reference, ours), reports[ours.label].metrics["hr@10"] - baseline_hr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-path", default=None)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per model measurement (the first is excluded)")
    parser.add_argument("--models", default=None, help="comma-separated model names (default: all registered)")
    parser.add_argument("--side-epochs", type=int, default=6, help="epochs of the side-by-side comparison")
    parser.add_argument("--skip-models", action="store_true", help="only the side-by-side comparison")
    parser.add_argument("--skip-side-by-side", action="store_true", help="no side-by-side comparison")
    parser.add_argument("--pair", default="sasrec,lstm_two_tower",
                        help="retrieval models raced against the last one (default: sasrec vs lstm_two_tower)")
    parser.add_argument("--pair-epochs", type=int, default=4, help="epochs of the model-against-model race")
    parser.add_argument("--skip-pair", action="store_true", help="no model-against-model race")
    parser.add_argument("--step-counts", default="701,704", help="batches per epoch compared (two_tower, batch 128)")
    parser.add_argument("--step-epochs", type=int, default=8, help="epochs of the steps-per-call race")
    parser.add_argument("--skip-step-counts", action="store_true", help="no steps-per-call comparison")
    args = parser.parse_args()
    if min(args.epochs, args.side_epochs, args.pair_epochs, args.step_epochs) < 2:
        raise SystemExit("--epochs, --side-epochs, --pair-epochs and --step-epochs must be at least 2 (the first "
                         "epoch is excluded)")

    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs, "
          f"load average {load_average():.1f} at start")
    dataset = load_dataset("movielens-100k", movielens_path(args.data_path))
    data = prepare_data(dataset, "leave_last_out", max_history=50)
    print(f"data: {dataset.source}; retrieval: {len(data.examples['train']):,} leave-last-out training examples")
    if not args.skip_models:
        clicks = Preprocessor(data.space, 50, parse_label("rating >= 4"), history="positive")
        ranking = clicks.examples(temporal_fraction_split(dataset, valid_fraction=0.1, test_fraction=0.1))
        print(f"ranking: {len(ranking['train']):,} labelled training examples (rating >= 4 positive)", flush=True)
        names = args.models.split(",") if args.models else list_models()
        rows, failures = model_rows(names, data, ranking, args.epochs)
        print(f"\nTraining examples/s, median of epochs 2..{args.epochs} (epoch 1 compiles); "
              f"load average = mean 1-minute load during the runs\n")
        print_table(["model", "task", "batch", *[label for label, _, _ in VARIANTS], "default is",
                     "pipeline alone", "pipeline / fastest", "default: real vs cached batch", "load"], rows)
        for failure in failures:
            print(f"- fails: {failure}")
    if not args.skip_side_by_side:
        rows, speedup, hr_gap = side_by_side(data, args.side_epochs)
        print(f"\nSide by side: batch {SIDE_BATCH}, embedding dim {SIDE_DIM}, Adagrad {SIDE_LEARNING_RATE}, "
              f"{args.side_epochs} epochs from the same initial weights in the same batch order, trained epoch by "
              f"epoch in alternation; examples/s = median of epochs 2..{args.side_epochs}; speed-up = median of "
              f"the per-epoch time ratios; HR@10 on the test split (full ranking)\n")
        print_table(["model", "jit", "train examples/s", "speed-up", "HR@10", "NDCG@10", "HR@10 - tutorial",
                     "load"], rows)
        met = speedup >= SPEEDUP_TARGET and hr_gap >= -HR_TOLERANCE
        print(f"\ntarget: two_tower >= {SPEEDUP_TARGET}x the tutorial model at equal or better HR@10 (within "
              f"{HR_TOLERANCE}, float noise) -> {'met' if met else 'NOT met'} ({speedup:.2f}x, HR@10 "
              f"{hr_gap:+.4f})")
    if not args.skip_pair:
        names = args.pair.split(",")
        rows = pair_rows(names, data, args.pair_epochs)
        print(f"\nModel against model: zoo recipes (speed settings as a recipe sets them, else the defaults), "
              f"{args.pair_epochs} epochs each, trained epoch by epoch in alternation; examples/s = leave-last-out "
              f"training examples per second, median of epochs 2..{args.pair_epochs}; ratio = median of per-epoch (time of {names[-1]}) / (time of the "
              f"model): above 1x is faster per epoch\n")
        print_table(["model", "batch", "steps/epoch", "speed settings", "train examples/s", f"vs {names[-1]}",
                     "epoch s", "recipe's training s", "load"], rows)
    if not args.skip_step_counts:
        counts = [int(count) for count in args.step_counts.split(",")]
        rows = step_count_rows(data, counts, args.step_epochs)
        print(f"\nSteps per call against the epoch's length: two_tower, batch 128, {args.step_epochs} epochs each, "
              f"trained epoch by epoch in alternation; examples/s = median of epochs 2..{args.step_epochs}; "
              f"per-example time ratio = median of per-epoch ratios to the last row\n")
        print_table(["contender", "examples/epoch", "steps/call", "train examples/s", "per-example time vs last",
                     "load"], rows)
    print(f"load average {load_average():.1f} at the end")


if __name__ == "__main__":
    main()
