"""Training recipe: what a zoo entry's ``training`` section holds, and the loop that applies it."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib

import keras

from mmrec_tf.data.pipeline import Examples, steps_per_epoch

OPTIMIZERS = {"adam": keras.optimizers.Adam, "adagrad": keras.optimizers.Adagrad, "sgd": keras.optimizers.SGD}
BACKUP_METADATA = "training_metadata.json"


@dataclasses.dataclass
class TrainingConfig:
    """Hyper-parameters of one training run.

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

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.epochs < 0 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ValueError(f"epochs >= 0, batch_size >= 1 and learning_rate > 0 expected; got {self}")


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the message names the step and likely causes."""


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
        step = self.epoch * self.steps + batch + 1 if self.steps else batch + 1
        raise TrainingDivergedError(
            f"loss became {float(loss)} at epoch {self.epoch + 1}, batch {batch + 1} (global step {step}). "
            f"Likely causes: a learning rate too high for this model (it is {self.learning_rate}); "
            "non-finite values in numeric features or sample weights; a temperature close to 0. "
            "Lower the learning rate or check the input data."
        )


def _resume_epoch(checkpoint_dir: pathlib.Path) -> int:
    metadata = checkpoint_dir / BACKUP_METADATA
    if not metadata.is_file():
        return 0
    return int(json.loads(metadata.read_text(encoding="utf-8"))["epoch"])


def train_model(model, train: Examples, config: TrainingConfig, valid: Examples | None = None,
                callbacks=None, verbose: int | str = "auto", checkpoint_dir: str | os.PathLike | None = None):
    """Fit ``model`` on ``train`` examples with ``config``; returns the Keras History (or None).

    The model builds its own batches (``model.prepare(train)`` then
    ``model.make_dataset(...)``), so retrieval and ranking models share this
    loop. Counting-based models (no trainable weights, e.g. popularity) are
    only prepared. With ``valid`` the validation loss and metrics are reported
    each epoch. Training stops with :class:`TrainingDivergedError` at the
    first non-finite loss.

    With ``checkpoint_dir`` the weights, optimizer state and epoch are saved
    at the end of every epoch; calling again with the same directory after an
    interruption (even SIGKILL) resumes from the last finished epoch. Each
    epoch's shuffle depends only on the seed and the epoch number, so a
    resumed run sees the same batches as an uninterrupted one.

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
    keras.utils.set_random_seed(config.seed)
    model.prepare(train)
    if not model.built:
        model.build()
    if not model.trainable_weights:
        return None
    first_epoch = 0
    callbacks = [StopOnNonFiniteLoss(config.learning_rate), *(callbacks or [])]
    if checkpoint_dir is not None:
        checkpoint_dir = pathlib.Path(checkpoint_dir)
        first_epoch = min(_resume_epoch(checkpoint_dir), config.epochs)
        callbacks.append(keras.callbacks.BackupAndRestore(str(checkpoint_dir), save_freq="epoch"))
    dataset = model.make_dataset(train, config.batch_size, shuffle=True, seed=config.seed,
                                 epochs=config.epochs, first_epoch=first_epoch)
    validation = (model.make_dataset(valid, config.batch_size, shuffle=False)
                  if valid is not None and len(valid) else None)
    model.compile(optimizer=OPTIMIZERS[config.optimizer](learning_rate=config.learning_rate),
                  jit_compile=config.jit_compile)
    model(next(iter(dataset)))
    return model.fit(dataset, epochs=config.epochs, initial_epoch=first_epoch,
                     steps_per_epoch=steps_per_epoch(len(train), config.batch_size), validation_data=validation,
                     callbacks=callbacks, verbose=verbose, shuffle=False)
