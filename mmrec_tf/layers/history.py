"""History tensors in the layout models expect: oldest first, most recent last, 0-padded at the end."""

from __future__ import annotations

from keras import ops


def most_recent_history(history, max_length: int, aligned=None):
    """Compact a ``[B, L]`` index history and keep its ``max_length`` most recent items.

    Zeros (padding, or ids unknown to the vocabulary) anywhere in a row are
    dropped, the remaining items keep their order, the last ``max_length`` of
    them are kept and the row is padded at the end with 0 to ``max_length``.
    Works for any ``L``, including 0 and ``L < max_length``. With
    ``aligned`` (an int ``[B, L]`` per-position feature of the history, e.g.
    each item's rating) the result is ``(history, aligned)``, the feature
    moved with its items (dropped with them, 0 at padding).

    Example:
    >>> import numpy as np
    >>> most_recent_history(np.array([[5, 0, 6, 7, 0]]), 2).numpy().tolist()
    [[6, 7]]
    >>> most_recent_history(np.array([[0, 3]]), 3).numpy().tolist()
    [[3, 0, 0]]
    >>> items, ratings = most_recent_history(np.array([[5, 0, 6, 7]]), 3, aligned=np.array([[1, 9, 2, 3]]))
    >>> items.numpy().tolist(), ratings.numpy().tolist()
    ([[5, 6, 7]], [[1, 2, 3]])
    """
    history = ops.cast(history, "int32")
    batch = ops.shape(history)[0]
    padding = ops.zeros((batch, max_length), "int32")
    history = ops.concatenate([history, padding], axis=1)
    length = ops.shape(history)[1]
    present = ops.not_equal(history, 0)
    positions = ops.arange(length, dtype="int32")
    sort_key = ops.where(present, positions, positions + length)
    order = ops.argsort(sort_key, axis=1)
    count = ops.sum(ops.cast(present, "int32"), axis=1, keepdims=True)
    start = ops.maximum(count - max_length, 0)
    window = start + ops.arange(max_length, dtype="int32")
    kept = ops.minimum(window, length - 1)

    def recent(values):
        values = ops.take_along_axis(ops.take_along_axis(values, order, axis=1), kept, axis=1)
        return ops.where(window < count, values, ops.zeros_like(values))

    if aligned is None:
        return recent(history)
    aligned = ops.concatenate([ops.cast(aligned, "int32"), padding], axis=1)
    return recent(history), recent(aligned)
