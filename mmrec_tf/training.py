"""Training recipe: what a zoo entry's ``training`` section holds, and the loop that applies it."""

from __future__ import annotations

import dataclasses

import keras

from mmrec_tf.data.pipeline import Examples

OPTIMIZERS = {"adam": keras.optimizers.Adam, "adagrad": keras.optimizers.Adagrad, "sgd": keras.optimizers.SGD}


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


def train_model(model, train: Examples, config: TrainingConfig, valid: Examples | None = None,
                callbacks=None, verbose: int | str = "auto"):
    """Fit ``model`` on ``train`` examples with ``config``; returns the Keras History (or None).

    The model builds its own batches (``model.prepare(train)`` then
    ``model.make_dataset(...)``), so retrieval and ranking models share this
    loop. Counting-based models (no trainable weights, e.g. popularity) are
    only prepared. With ``valid`` the validation loss and metrics are reported
    each epoch.
    """
    keras.utils.set_random_seed(config.seed)
    model.prepare(train)
    if not model.built:
        model.build()
    if not model.trainable_weights:
        return None
    dataset = model.make_dataset(train, config.batch_size, shuffle=True, seed=config.seed)
    validation = (model.make_dataset(valid, config.batch_size, shuffle=False)
                  if valid is not None and len(valid) else None)
    model.compile(optimizer=OPTIMIZERS[config.optimizer](learning_rate=config.learning_rate),
                  jit_compile=config.jit_compile)
    return model.fit(dataset, epochs=config.epochs, validation_data=validation, callbacks=callbacks,
                     verbose=verbose, shuffle=False)
