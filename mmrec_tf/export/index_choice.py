"""Which retrieval index an export builds: :func:`make_retrieval_index` by name, ``"auto"`` by catalog size.

``"auto"`` picks among the exact-ranking indexes only: brute force below
:data:`AUTO_EXACT_MAX_ITEMS` items, the bfloat16 scan with its float32 re-rank
from there on (recall@100 1.000 against exact float32 at 1M items in
``benchmarks/serving_latency.py``). It does not pick the IVF index: IVF is
approximate (its recall depends on how the catalog clusters and on
``nprobe``), and the catalog sizes where it beats the bfloat16 scan at every
batch size have not been measured here yet, so trading recall for latency
stays the user's call (``--index ivf``).

This module imports the three index classes; they import only
:mod:`~mmrec_tf.export.retrieval_index`, so the two never import each other.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from mmrec_tf.export.bfloat16_index import BFloat16Index
from mmrec_tf.export.brute_force_index import BruteForceIndex
from mmrec_tf.export.ivf_index import IVFIndex
from mmrec_tf.export.retrieval_index import RetrievalIndex, parse_index_spec

# Catalogs with fewer items are searched exactly by "auto". Measured on a 2-core AVX512_BF16
# CPU (dim 64, K 100, batch 32): 50,000 items 9.3 ms exact vs 9.9 ms bfloat16; 100,000 items
# 16 vs 11 ms; 200,000 items 29 vs 13 ms; at batch 1 the two are equal up to 200,000 items.
AUTO_EXACT_MAX_ITEMS = 100_000


def make_retrieval_index(spec: str, embeddings: np.ndarray, k: int, training_rows: np.ndarray | None = None,
                         exact_vectors: Callable[[tf.Tensor], tf.Tensor] | None = None) -> RetrievalIndex:
    """The retrieval index ``spec`` (a kind of :data:`INDEX_KINDS`, see :func:`parse_index_spec`) over ``embeddings``.

    ``"auto"`` is :class:`~mmrec_tf.export.brute_force_index.BruteForceIndex`
    for catalogs below :data:`AUTO_EXACT_MAX_ITEMS` items and
    :class:`~mmrec_tf.export.bfloat16_index.BFloat16Index` from there on.
    ``"auto"`` never picks the approximate :class:`~mmrec_tf.export.ivf_index.IVFIndex`:
    ask for ``"ivf"`` by name (see the module docstring for why). ``training_rows`` (IVF only): the rows its partitions are
    trained on; the other rows are only assigned to them. ``exact_vectors``
    (bfloat16 and IVF, which read float32 vectors only to re-rank a
    shortlist): catalog positions -> float32 embeddings, used instead of a
    float32 copy of ``embeddings``.

    Example:

    >>> import numpy as np
    >>> make_retrieval_index("auto", np.ones((10, 4), "float32"), k=5).kind
    'brute_force'
    >>> make_retrieval_index("bfloat16", np.ones((10, 4), "float32"), k=5).kind
    'bfloat16'
    >>> make_retrieval_index("ivf:nlist=2,nprobe=1", np.eye(4, dtype="float32"), k=5).nprobe
    1
    """
    kind, options = parse_index_spec(spec)
    if kind == "auto":
        kind = "brute_force" if len(embeddings) < AUTO_EXACT_MAX_ITEMS else "bfloat16"
    if kind == "ivf":
        return IVFIndex(embeddings, k=k, training_rows=training_rows, exact_vectors=exact_vectors, **options)
    if kind == "bfloat16":
        return BFloat16Index(embeddings, k=k, exact_vectors=exact_vectors)
    return BruteForceIndex(embeddings, k=k)
