"""The top-K search over the item catalog that ``retrieve`` runs inside the SavedModel.

An index holds the catalog's item embeddings (row ``p`` = catalog position
``p``) as variables of the SavedModel and answers
``search(queries [B, D], excluded [B, L]) -> (positions [B, k], scores [B, k])``
with stock TensorFlow ops only (the stock TF Serving binary has no ScaNN ops).
Two implementations:

* :class:`~mmrec_tf.export.brute_force_index.BruteForceIndex` - exact: one
  float32 matmul over the catalog and ``tf.math.top_k``.
* :class:`~mmrec_tf.export.bfloat16_index.BFloat16Index` - a bfloat16 scan of
  the catalog that keeps a shortlist, re-ranked exactly in float32; several
  times faster on CPUs with AVX512_BF16 for large catalogs.

:func:`make_retrieval_index` picks one by name; ``"auto"`` is exact brute force
below :data:`AUTO_EXACT_MAX_ITEMS` catalog items and the bfloat16 index above.

Example:

>>> import numpy as np, tensorflow as tf
>>> index = make_retrieval_index("auto", np.eye(3, dtype="float32"), k=2)
>>> positions, scores = index.search(tf.constant([[0.0, 1.0, 0.5]]), tf.constant([[1]]))
>>> positions.numpy().tolist(), scores.numpy().tolist()
([[2, 0]], [[0.5, 0.0]])
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

# Catalogs with fewer items are searched exactly by "auto". Measured on a 2-core AVX512_BF16
# CPU (dim 64, K 100, batch 32): 50,000 items 9.3 ms exact vs 9.9 ms bfloat16; 100,000 items
# 16 vs 11 ms; 200,000 items 29 vs 13 ms; at batch 1 the two are equal up to 200,000 items.
AUTO_EXACT_MAX_ITEMS = 100_000
INDEX_KINDS = ("auto", "brute_force", "bfloat16")


class RetrievalIndex(tf.Module):
    """Base class: catalog embeddings in, top-``k`` catalog positions and scores out.

    Subclasses implement :meth:`search`. ``excluded`` holds, per query, catalog
    positions that must not be returned (the user's history); ``-1`` entries are
    padding. Excluded positions are never returned: when a row has fewer than
    ``k`` eligible items its remaining slots hold position ``-1`` and score
    ``-inf``. ``k`` is clipped to the catalog size.

    Example:

    >>> import numpy as np
    >>> from mmrec_tf.export.brute_force_index import BruteForceIndex
    >>> index = BruteForceIndex(np.ones((4, 2), "float32"), k=10)
    >>> index.k, index.num_items, index.dim
    (4, 4, 2)
    """

    kind = ""

    def __init__(self, embeddings: np.ndarray, k: int, name: str | None = None):
        super().__init__(name=name)
        embeddings = np.asarray(embeddings)
        if embeddings.ndim != 2 or embeddings.shape[0] < 1 or embeddings.shape[1] < 1:
            raise ValueError(f"catalog embeddings must be a non-empty [num_items, dim] matrix, "
                             f"got shape {embeddings.shape}")
        if not np.isfinite(embeddings).all():
            row = int(np.flatnonzero(~np.isfinite(embeddings).all(axis=1))[0])
            raise ValueError(f"catalog embedding row {row} is not finite")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        self.num_items, self.dim = (int(size) for size in embeddings.shape)
        self.k = int(min(k, self.num_items))
        self.embeddings = tf.Variable(embeddings.astype(np.float32), trainable=False,
                                      name="catalog_item_embeddings")

    def search(self, queries: tf.Tensor, excluded: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Top-``k`` catalog positions (int32 ``[B, k]``) and float32 scores, best first."""
        raise NotImplementedError


def exclude_positions(scores: tf.Tensor, excluded: tf.Tensor) -> tf.Tensor:
    """Sets ``scores[b, p] = -inf`` for every ``p >= 0`` in ``excluded[b]``.

    Example:

    >>> exclude_positions(tf.ones([1, 3]), tf.constant([[2, -1, 0]])).numpy().tolist()
    [[-inf, 1.0, -inf]]
    """
    excluded = tf.cast(excluded, tf.int64)
    cells = tf.where(excluded >= 0)
    indices = tf.stack([cells[:, 0], tf.gather_nd(excluded, cells)], axis=1)
    blocked = tf.fill(tf.shape(cells)[:1], tf.constant(-np.inf, scores.dtype))
    return tf.tensor_scatter_nd_update(scores, indices, blocked)


def mark_empty_slots(positions: tf.Tensor, scores: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Position ``-1`` wherever the score is ``-inf`` (an excluded item filled the slot).

    Example:

    >>> mark_empty_slots(tf.constant([[3, 1]]), tf.constant([[0.5, -np.inf]]))[0].numpy().tolist()
    [[3, -1]]
    """
    empty = tf.equal(scores, -np.inf)
    return tf.where(empty, tf.constant(-1, tf.int32), tf.cast(positions, tf.int32)), scores


def make_retrieval_index(kind: str, embeddings: np.ndarray, k: int) -> RetrievalIndex:
    """The retrieval index ``kind`` (one of :data:`INDEX_KINDS`) over ``embeddings``.

    ``"auto"`` is :class:`~mmrec_tf.export.brute_force_index.BruteForceIndex`
    for catalogs below :data:`AUTO_EXACT_MAX_ITEMS` items and
    :class:`~mmrec_tf.export.bfloat16_index.BFloat16Index` from there on.

    Example:

    >>> import numpy as np
    >>> make_retrieval_index("auto", np.ones((10, 4), "float32"), k=5).kind
    'brute_force'
    >>> make_retrieval_index("bfloat16", np.ones((10, 4), "float32"), k=5).kind
    'bfloat16'
    """
    from mmrec_tf.export.bfloat16_index import BFloat16Index
    from mmrec_tf.export.brute_force_index import BruteForceIndex

    if kind not in INDEX_KINDS:
        raise ValueError(f"index must be one of {INDEX_KINDS}, got {kind!r}")
    if kind == "auto":
        kind = "brute_force" if len(embeddings) < AUTO_EXACT_MAX_ITEMS else "bfloat16"
    return (BruteForceIndex if kind == "brute_force" else BFloat16Index)(embeddings, k=k)
