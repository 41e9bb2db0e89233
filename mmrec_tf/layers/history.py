"""History tensors in the layout models expect: oldest first, most recent last, 0-padded at the end."""

from __future__ import annotations

from keras import ops


def most_recent_history(history, max_length: int):
    """Compact a ``[B, L]`` index history and keep its ``max_length`` most recent items.

    Zeros (padding, or ids unknown to the vocabulary) anywhere in a row are
    dropped, the remaining items keep their order, the last ``max_length`` of
    them are kept and the row is padded at the end with 0 to ``max_length``.
    Works for any ``L``, including 0 and ``L < max_length``.

    Example:
    >>> import numpy as np
    >>> most_recent_history(np.array([[5, 0, 6, 7, 0]]), 2).numpy().tolist()
    [[6, 7]]
    >>> most_recent_history(np.array([[0, 3]]), 3).numpy().tolist()
    [[3, 0, 0]]
    """
    history = ops.cast(history, "int32")
    batch = ops.shape(history)[0]
    history = ops.concatenate([history, ops.zeros((batch, max_length), "int32")], axis=1)
    length = ops.shape(history)[1]
    present = ops.not_equal(history, 0)
    positions = ops.arange(length, dtype="int32")
    sort_key = ops.where(present, positions, positions + length)
    compact = ops.take_along_axis(history, ops.argsort(sort_key, axis=1), axis=1)
    count = ops.sum(ops.cast(present, "int32"), axis=1, keepdims=True)
    start = ops.maximum(count - max_length, 0)
    window = start + ops.arange(max_length, dtype="int32")
    recent = ops.take_along_axis(compact, ops.minimum(window, length - 1), axis=1)
    return ops.where(window < count, recent, ops.zeros_like(recent))
