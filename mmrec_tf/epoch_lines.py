"""One plain line per training epoch, for logs and CI (no carriage returns, no ANSI colours)."""

from __future__ import annotations

import sys
import time

import keras


def _format_value(value) -> str:
    value = float(value)
    return f"{value:.4f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.4e}"


class EpochLines(keras.callbacks.Callback):
    """Writes ``epoch 2/5  3.1 s  loss 12.3456  val_loss ...`` to ``stream`` (default ``sys.stdout``) per epoch.

    Used by ``mmrec train`` instead of Keras' progress bar when standard
    output is not a terminal (see :func:`mmrec_tf.console.epoch_progress`).
    It has no per-batch hook, so it leaves ``steps_per_execution`` alone.

    Example:
    >>> import io
    >>> stream = io.StringIO()
    >>> callback = EpochLines(stream)
    >>> callback.set_params({"epochs": 3})
    >>> callback.on_epoch_begin(0); callback.on_epoch_end(0, {"loss": 2.5, "val_loss": 0.0001})
    >>> stream.getvalue().split("  ")[0], stream.getvalue().split("  ")[2:]
    ('epoch 1/3', ['loss 2.5000', 'val_loss 1.0000e-04\\n'])
    """

    def __init__(self, stream=None):
        super().__init__()
        self.stream = stream
        self.started = None

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self.started if self.started is not None else 0.0
        total = (self.params or {}).get("epochs")
        shown = "  ".join(f"{key} {_format_value(value)}" for key, value in (logs or {}).items())
        stream = self.stream if self.stream is not None else sys.stdout
        stream.write(f"epoch {epoch + 1}/{total}  {seconds:.1f} s  {shown}\n")
        stream.flush()
