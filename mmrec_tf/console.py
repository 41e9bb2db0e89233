"""What the command line prints: TensorFlow kept quiet, progress that suits where it goes.

TensorFlow 2.21 writes 6-8 lines to standard error on import and device set-up
(oneDNN, CUDA stubs, CPU features; some twice). Most come from absl's C++
logging before ``absl::InitializeLog()`` runs, which ignores
``TF_CPP_MIN_LOG_LEVEL`` (abseil/abseil-cpp#1718 asks to change that), so
:func:`quiet_tensorflow` also points file descriptor 2 at a temporary file
while TensorFlow is imported and its devices are listed, and replays what it
caught only if that fails. Later C++ messages below ERROR are hidden by
``TF_CPP_MIN_LOG_LEVEL=2``; Python warnings of TensorFlow, Keras and absl are
raised to ERROR. ``mmrec --verbose`` skips all of this.

Progress: Keras' bar rewrites its line with ``\\r``, backspaces and ANSI
colours, and Keras 3.15 draws it that way even into a file (its check
``"posix" in sys.modules`` is true on every Linux). On a terminal the live
bar is kept; anywhere else :class:`~mmrec_tf.epoch_lines.EpochLines` prints one plain line per epoch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile

QUIET_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "2"}
PYTHON_LOGGERS = ("tensorflow", "absl", "keras")


@contextlib.contextmanager
def _standard_error_captured():
    """File descriptor 2 goes to a temporary file for the block; yields that file (rewound) on exit."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield captured
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)


def quiet_tensorflow(verbose: bool = False) -> None:
    """Import TensorFlow without its start-up lines on standard error (``verbose``: change nothing).

    Call before anything imports TensorFlow; later calls only set the log
    levels. If the import fails, the caught lines are written out before the
    error propagates.

    Example:
    >>> quiet_tensorflow()
    >>> import logging; logging.getLogger("tensorflow").level == logging.ERROR
    True
    """
    if verbose:
        return
    for key, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    if "tensorflow" not in sys.modules:
        with _standard_error_captured() as captured:
            try:
                import tensorflow as tf

                tf.config.list_physical_devices()  # the CUDA probe logs here, not on import
            except BaseException:
                sys.stderr.flush()
                os.write(2, captured.read())
                raise
    for name in PYTHON_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def writes_to_terminal(stream=None) -> bool:
    """True if ``stream`` (default ``sys.stdout``) is an interactive terminal.

    Example:
    >>> import io
    >>> writes_to_terminal(io.StringIO())
    False
    """
    stream = sys.stdout if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def epoch_progress(stream=None) -> tuple[int, list]:
    """``(Keras fit verbose, extra callbacks)`` for progress on ``stream``: a live bar on a terminal, else lines.

    Example:
    >>> import io
    >>> verbose, callbacks = epoch_progress(io.StringIO())
    >>> verbose, type(callbacks[0]).__name__
    (0, 'EpochLines')
    """
    if writes_to_terminal(stream):
        return 1, []
    from mmrec_tf.epoch_lines import EpochLines

    return 0, [EpochLines(stream)]
