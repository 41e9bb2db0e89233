"""Exact retrieval: every catalog item scored in float32, then ``tf.math.top_k``."""

from __future__ import annotations

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

    Example:

    >>> import numpy as np, tensorflow as tf
    >>> index = BruteForceIndex(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], "float32"), k=2)
    >>> positions, scores = index.search(tf.constant([[2.0, 1.0]]), tf.constant([[-1]]))
    >>> positions.numpy().tolist(), scores.numpy().tolist()
    ([[2, 0]], [[3.0, 2.0]])
    """

    kind = "brute_force"

    def __init__(self, embeddings: np.ndarray, k: int, name: str | None = "brute_force_index"):
        super().__init__(embeddings, k, name=name)

    def search(self, queries: tf.Tensor, excluded: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Exact top-``k`` positions and scores; see :class:`~mmrec_tf.export.retrieval_index.RetrievalIndex`."""
        scores = tf.matmul(tf.cast(queries, tf.float32), self.embeddings, transpose_b=True)
        top = tf.math.top_k(exclude_positions(scores, excluded), k=self.k)
        return mark_empty_slots(top.indices, top.values)
