"""The top-K search over the item catalog that ``retrieve`` runs inside the SavedModel.

An index holds the catalog's item embeddings (row ``p`` = catalog position
``p``) as variables of the SavedModel and answers
``search(queries [B, D], excluded [B, L]) -> (positions [B, k], scores [B, k])``
with stock TensorFlow ops only (the stock TF Serving binary has no ScaNN ops).
Three implementations:

* :class:`~mmrec_tf.export.brute_force_index.BruteForceIndex` - exact: one
  float32 matmul over the catalog and ``tf.math.top_k``.
* :class:`~mmrec_tf.export.bfloat16_index.BFloat16Index` - a bfloat16 scan of
  the catalog that keeps a shortlist, re-ranked exactly in float32; several
  times faster on CPUs with AVX512_BF16 for large catalogs.
* :class:`~mmrec_tf.export.ivf_index.IVFIndex` - an inverted file: spherical
  k-means partitions, only the items of the partitions nearest the query are
  scored (bfloat16), then re-ranked exactly in float32; approximate.

:func:`~mmrec_tf.export.index_choice.make_retrieval_index` picks one by name
(see :func:`parse_index_spec`); ``"auto"`` picks by catalog size. This module
holds what the three share and imports none of them.

Example:

>>> import numpy as np, tensorflow as tf
>>> from mmrec_tf.export.index_choice import make_retrieval_index
>>> index = make_retrieval_index("auto", np.eye(3, dtype="float32"), k=2)
>>> positions, scores = index.search(tf.constant([[0.0, 1.0, 0.5]]), tf.constant([[1]]))
>>> positions.numpy().tolist(), scores.numpy().tolist()
([[2, 0]], [[0.5, 0.0]])
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

INDEX_KINDS = ("auto", "brute_force", "bfloat16", "ivf")
IVF_OPTIONS = ("nlist", "nprobe")
FINITE_CHECK_ROWS = 65_536  # catalog rows checked for NaN / inf at a time


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

    def __init__(self, embeddings: np.ndarray, k: int, name: str | None = None,
                 exact_vectors: Callable[[tf.Tensor], tf.Tensor] | None = None):
        super().__init__(name=name)
        embeddings = np.asarray(embeddings)
        if embeddings.ndim != 2 or embeddings.shape[0] < 1 or embeddings.shape[1] < 1:
            raise ValueError(f"catalog embeddings must be a non-empty [num_items, dim] matrix, "
                             f"got shape {embeddings.shape}")
        for start in range(0, len(embeddings), FINITE_CHECK_ROWS):  # no [num_items, dim] mask of the whole catalog
            finite = np.isfinite(embeddings[start:start + FINITE_CHECK_ROWS]).all(axis=1)
            if not finite.all():
                raise ValueError(f"catalog embedding row {start + int(np.flatnonzero(~finite)[0])} is not finite")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        self.num_items, self.dim = (int(size) for size in embeddings.shape)
        self.k = int(min(k, self.num_items))
        self._exact_vectors = exact_vectors
        if exact_vectors is None:
            self.embeddings = tf.Variable(np.asarray(embeddings, np.float32), trainable=False,
                                          name="catalog_item_embeddings")

    def search(self, queries: tf.Tensor, excluded: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Top-``k`` catalog positions (int32 ``[B, k]``) and float32 scores, best first."""
        raise NotImplementedError

    def exact_vectors(self, positions: tf.Tensor) -> tf.Tensor:
        """Float32 embeddings ``[..., dim]`` of valid catalog ``positions``, for the exact re-rank.

        From ``exact_vectors`` when the index was given one (an export passes
        the served model's own item tower, so the SavedModel holds the float32
        item table once, in the model), else from the index's float32 copy.
        """
        if self._exact_vectors is not None:
            return tf.cast(self._exact_vectors(positions), tf.float32)
        return tf.gather(self.embeddings, positions)


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


def is_member(positions: tf.Tensor, excluded: tf.Tensor) -> tf.Tensor:
    """``positions[b, s] in excluded[b]`` for every row, by binary search in the sorted row.

    Example:

    >>> is_member(tf.constant([[3, 1, 2]]), tf.constant([[2, 3, -1]])).numpy().tolist()
    [[True, False, True]]
    """
    sentinel = tf.fill([tf.shape(excluded)[0], 1], tf.constant(-2, excluded.dtype))
    ordered = tf.sort(tf.concat([excluded, sentinel], axis=1), axis=1)
    found = tf.searchsorted(ordered, positions, side="left", out_type=tf.int32)
    found = tf.minimum(found, tf.shape(ordered)[1] - 1)
    return tf.equal(tf.gather(ordered, found, batch_dims=1), positions)


def parse_index_spec(spec: str) -> tuple[str, dict]:
    """``"ivf:nlist=1024,nprobe=32"`` -> ``("ivf", {"nlist": 1024, "nprobe": 32})``; one clear error otherwise.

    Only ``ivf`` takes options (``nlist``, ``nprobe``: positive ints).

    Example:

    >>> parse_index_spec("ivf:nlist=1024,nprobe=32")
    ('ivf', {'nlist': 1024, 'nprobe': 32})
    >>> parse_index_spec("bfloat16")
    ('bfloat16', {})
    """
    kind, _, options = str(spec).partition(":")
    if kind not in INDEX_KINDS:
        raise ValueError(f"index must be one of {INDEX_KINDS} (ivf may add ':nlist=N,nprobe=M'), got {spec!r}")
    if options and kind != "ivf":
        raise ValueError(f"index {kind!r} takes no options, got {spec!r}")
    parsed = {}
    for option in filter(None, options.split(",")):
        key, _, value = option.partition("=")
        if key not in IVF_OPTIONS or not value.strip().isdigit() or int(value) < 1:
            raise ValueError(f"index {spec!r}: expected options {IVF_OPTIONS} set to positive ints, "
                             f"e.g. 'ivf:nlist=1024,nprobe=32', got {option!r}")
        parsed[key] = int(value)
    return kind, parsed
