"""Exact retrieval: every catalog item scored in float32, then ``tf.math.top_k``."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from mmrec_tf.export.retrieval_index import RetrievalIndex, exclude_positions, mark_empty_slots


class BruteForceIndex(RetrievalIndex):
    """Scores ``queries @ embeddings.T`` for the whole catalog and keeps the exact top ``k``.

    The reference the approximate indexes are measured against, and the
    default for catalogs below
    :data:`~mmrec_tf.export.index_choice.AUTO_EXACT_MAX_ITEMS` items, where it
    is the fastest choice anyway. Cost per batch: ``B x N x D`` multiply-adds
    and a top-k over ``[B, N]``. Ties keep the lower catalog position first.

    ``item_table`` (optional): a function returning a float32 ``[N + 1, D]``
    table whose row ``p + 1`` is catalog position ``p``'s embedding (row 0, the
    padding item, is never returned), e.g. the served model's own item
    embedding variable: the index then scores that table and holds no copy,
    so an export stores the float32 item table once (a 1M x 64 catalog:
    about 256 MB less on disk, ``benchmarks/serving_latency_scaling.py``).

    Example:

    >>> import numpy as np, tensorflow as tf
    >>> index = BruteForceIndex(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], "float32"), k=2)
    >>> positions, scores = index.search(tf.constant([[2.0, 1.0]]), tf.constant([[-1]]))
    >>> positions.numpy().tolist(), scores.numpy().tolist()
    ([[2, 0]], [[3.0, 2.0]])
    """

    kind = "brute_force"

    def __init__(self, embeddings: np.ndarray, k: int, name: str | None = "brute_force_index",
                 item_table: Callable[[], tf.Tensor] | None = None):
        self._item_table = item_table
        super().__init__(embeddings, k, name=name,
                         exact_vectors=None if item_table is None else lambda positions: tf.gather(
                             item_table(), positions + 1))

    def search(self, queries: tf.Tensor, excluded: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Exact top-``k`` positions and scores; see :class:`~mmrec_tf.export.retrieval_index.RetrievalIndex`."""
        queries = tf.cast(queries, tf.float32)
        if self._item_table is None:
            top = tf.math.top_k(exclude_positions(tf.matmul(queries, self.embeddings, transpose_b=True), excluded),
                                k=self.k)
            return mark_empty_slots(top.indices, top.values)
        # table row = catalog position + 1; row 0 (padding) is excluded like a history item
        excluded = tf.cast(excluded, tf.int32)
        rows = tf.concat([tf.zeros_like(excluded[:, :1]), tf.where(excluded >= 0, excluded + 1, -1)], axis=1)
        scores = tf.matmul(queries, tf.cast(self._item_table(), tf.float32), transpose_b=True)
        top = tf.math.top_k(exclude_positions(scores, rows), k=self.k)
        return mark_empty_slots(top.indices - 1, top.values)
