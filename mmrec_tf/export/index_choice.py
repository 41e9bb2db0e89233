"""Which retrieval index an export builds: :func:`make_retrieval_index` by name, ``"auto"`` by catalog size.

``"auto"`` picks brute force below :data:`AUTO_EXACT_MAX_ITEMS` items, the
bfloat16 scan with its exact float32 re-rank from there, and the IVF index
from :data:`AUTO_IVF_MIN_ITEMS` items. The IVF threshold comes from
``nice -n 10 python benchmarks/serving_latency_scaling.py`` (2 shared cores,
load 3.5-26, p50 ratios to the bfloat16 export of the same run, README "Serving"):

* 100,000 items: IVF (nlist 256, nprobe 8) was faster (0.44x / 0.41x at
  batch 1 / 32, clustered) but its recall@100 was 0.50 (clustered, 24 items
  per centre) and 0.21 (random): not picked, the bfloat16 scan is exact.
* 1,000,000 items, clustered: IVF (nlist 1024, nprobe 8) 1.68 / 9.04 ms
  p50 at batch 1 / 32, 0.12x / 0.40x of the bfloat16 export's, recall@100
  0.9961: picked from here.
* 1,000,000 items, random (no cluster structure): IVF 0.02x / 0.16x of the
  bfloat16 export's p50 but recall@100 0.147: on a catalog without cluster
  structure ``auto`` trades most of the recall away; export with
  ``--index bfloat16`` there (or a larger ``nprobe``, see the sweep).

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
# Catalogs with at least this many items get the IVF index from "auto" (see the module docstring).
AUTO_IVF_MIN_ITEMS = 1_000_000


def make_retrieval_index(spec: str, embeddings: np.ndarray, k: int, training_rows: np.ndarray | None = None,
                         exact_vectors: Callable[[tf.Tensor], tf.Tensor] | None = None,
                         item_table: Callable[[], tf.Tensor] | None = None) -> RetrievalIndex:
    """The retrieval index ``spec`` (a kind of :data:`INDEX_KINDS`, see :func:`parse_index_spec`) over ``embeddings``.

    ``"auto"`` is :class:`~mmrec_tf.export.brute_force_index.BruteForceIndex`
    for catalogs below :data:`AUTO_EXACT_MAX_ITEMS` items,
    :class:`~mmrec_tf.export.bfloat16_index.BFloat16Index` below
    :data:`AUTO_IVF_MIN_ITEMS` and the approximate
    :class:`~mmrec_tf.export.ivf_index.IVFIndex` from there on (see the module
    docstring for the measurements). ``training_rows`` (IVF only): the rows its
    partitions are trained on; the other rows are only assigned to them. ``exact_vectors``
    (bfloat16 and IVF, which read float32 vectors only to re-rank a
    shortlist): catalog positions -> float32 embeddings, used instead of a
    float32 copy of ``embeddings``. ``item_table`` (brute force only): the
    float32 ``[N + 1, D]`` table it scores instead of a copy (see
    :class:`~mmrec_tf.export.brute_force_index.BruteForceIndex`).

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
        kind = ("brute_force" if len(embeddings) < AUTO_EXACT_MAX_ITEMS
                else "bfloat16" if len(embeddings) < AUTO_IVF_MIN_ITEMS else "ivf")
    if kind == "ivf":
        return IVFIndex(embeddings, k=k, training_rows=training_rows, exact_vectors=exact_vectors, **options)
    if kind == "bfloat16":
        return BFloat16Index(embeddings, k=k, exact_vectors=exact_vectors)
    return BruteForceIndex(embeddings, k=k, item_table=item_table)
