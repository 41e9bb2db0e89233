"""Retrieval whose cost grows with the probed partitions, not the catalog: an inverted-file (IVF) index."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from mmrec_tf.export.retrieval_index import RetrievalIndex, is_member, mark_empty_slots
from mmrec_tf.export.spherical_kmeans import nearest_centroids, spherical_kmeans

GROUPING_CHUNK_ROWS = 1 << 20
#: rows per block of the grouped table: a probe gathers whole blocks (4 KiB at dim 64 in bfloat16), not rows
BLOCK_ROWS = 32


def default_num_partitions(num_items: int) -> int:
    """The power of two nearest to ``sqrt(num_items)``: 1,024 for 1M items, 4,096 for 10M.

    Example:

    >>> default_num_partitions(1_000_000), default_num_partitions(10_000_000), default_num_partitions(3)
    (1024, 4096, 2)
    """
    return int(2 ** round(np.log2(max(num_items, 1)) / 2))


def default_num_probes(num_partitions: int) -> int:
    """Partitions probed per query by default: 8 (all of them when there are fewer).

    A fixed number, not a fraction of ``nlist``: a query's cost is ``nprobe``
    partitions of about ``num_items / nlist`` items each, so with the default
    ``nlist`` it grows with the square root of the catalog. 8 probes gave
    recall@100 0.9961 on the clustered 1M-item catalog of
    ``benchmarks/serving_latency_scaling.py`` (4 probes 0.9934, 16 probes
    0.9977); on catalogs without cluster structure no small ``nprobe`` reaches
    high recall (random 1M items: 0.147 at 8 probes, 0.48 at 64).

    Example:

    >>> default_num_probes(1024), default_num_probes(4)
    (8, 4)
    """
    return min(num_partitions, 8)


class IVFIndex(RetrievalIndex):
    """Spherical k-means partitions; a query scores only the items of its ``nprobe`` nearest partitions.

    Built at export time, searched with stock TensorFlow ops only:

    * **Build**: :func:`~mmrec_tf.export.spherical_kmeans.spherical_kmeans`
      puts ``nlist`` unit centroids on the items' directions (trained on a
      seeded subsample of ``64 * nlist`` items, so 10M items cluster in a few
      hundred MB); every item joins the centroid with its highest dot
      product. The bfloat16 copy of the items is stored grouped by partition
      in blocks of :data:`BLOCK_ROWS` rows, each partition padded with zero
      rows to whole blocks (``block_offsets[p]:block_offsets[p + 1]`` are
      partition ``p``'s blocks, ``slot_positions`` maps each row of a block to
      its catalog position, ``-1`` for padding), plus one all-padding block; the float32 re-rank
      vectors come from ``exact_vectors`` (an export: the model's own item
      tower) or a float32 copy in catalog order.
    * **Probe**: score the centroids (float32), keep the ``nprobe`` best.
    * **Gather** the probed partitions' blocks as a ragged range per query
      (``tf.ragged.range``), padded to a dense ``[B, W]`` block list with the
      padding block, ``W`` = the most blocks any query of the batch probes
      (one gather index per 32 rows instead of one per row).
    * **Score** the block in bfloat16, keep a shortlist of the
      ``shortlist_size`` best (plus one slot per excluded item), **re-rank**
      it exactly in float32, drop the history, return the top ``k``.

    When the probed partitions hold fewer than ``k`` eligible items, the
    remaining slots are empty (position ``-1``, score ``-inf``); partitions
    are disjoint, so results are duplicate-free. With ``nprobe == nlist``
    every item is scored and the results are those of
    :class:`~mmrec_tf.export.bfloat16_index.BFloat16Index` (exact up to
    bfloat16 rounding of the shortlist, see there).

    ``training_rows`` limits the items the centroids are trained on (the
    catalog's known items when ``mmrec export --items`` adds new ones): the
    others are only assigned to their nearest partition, so adding items
    never re-clusters the known ones.

    Example:

    >>> import numpy as np, tensorflow as tf
    >>> items = np.random.default_rng(0).normal(size=(500, 8)).astype("float32")
    >>> index = IVFIndex(items, k=5, nlist=4, nprobe=4)
    >>> positions, scores = index.search(tf.constant(items[:2]), tf.constant([[0], [-1]]))
    >>> exact = items[:2] @ items.T
    >>> exact[0, 0] = -np.inf
    >>> bool((positions.numpy() == np.argsort(-exact, axis=1)[:, :5]).all())
    True
    """

    kind = "ivf"

    def __init__(self, embeddings: np.ndarray, k: int, nlist: int | None = None, nprobe: int | None = None,
                 shortlist_size: int | None = None, training_rows: np.ndarray | None = None, seed: int = 0,
                 name: str | None = "ivf_index", exact_vectors=None):
        super().__init__(embeddings, k, name=name, exact_vectors=exact_vectors)
        nlist = default_num_partitions(self.num_items) if nlist is None else nlist
        if isinstance(nlist, bool) or not isinstance(nlist, (int, np.integer)) or not 1 <= nlist <= self.num_items:
            raise ValueError(f"nlist must be an int from 1 to the catalog size {self.num_items}, got {nlist!r}")
        nprobe = default_num_probes(nlist) if nprobe is None else nprobe
        if isinstance(nprobe, bool) or not isinstance(nprobe, (int, np.integer)) or not 1 <= nprobe <= nlist:
            raise ValueError(f"nprobe must be an int from 1 to nlist={nlist}, got {nprobe!r}")
        if shortlist_size is None:
            shortlist_size = max(2 * self.k, self.k + 64)
        if isinstance(shortlist_size, bool) or not isinstance(shortlist_size, int) or shortlist_size < self.k:
            raise ValueError(f"shortlist_size must be an int >= k={self.k}, got {shortlist_size!r}")
        self.nlist, self.nprobe, self.shortlist_size = int(nlist), int(nprobe), shortlist_size
        vectors = np.asarray(embeddings, np.float32)
        training = vectors if training_rows is None else vectors[np.asarray(training_rows)]
        if len(training) < self.nlist:
            raise ValueError(f"nlist={self.nlist} partitions need at least as many items to train on, "
                             f"got {len(training)}")
        centroids = spherical_kmeans(training, self.nlist, seed=seed)
        partition = nearest_centroids(vectors, centroids)
        order = np.argsort(partition, kind="stable").astype(np.int32)
        sizes = np.bincount(partition, minlength=self.nlist)
        blocks = -(-sizes // BLOCK_ROWS)
        block_offsets = np.concatenate([[0], np.cumsum(blocks)]).astype(np.int32)
        self.num_blocks = int(block_offsets[-1])
        self.largest_partition = int(sizes.max())
        # row of each item in the grouped table: its partition's first row + its rank inside the partition
        first_row = block_offsets[:-1] * BLOCK_ROWS
        rank = np.arange(self.num_items) - np.concatenate([[0], np.cumsum(sizes)])[:-1][partition[order]]
        rows = (first_row[partition[order]] + rank).astype(np.int64)
        # one more block (all padding) fills the block lists of queries that probe fewer blocks
        table_rows = (self.num_blocks + 1) * BLOCK_ROWS
        slots = np.full(table_rows, -1, np.int32)
        slots[rows] = order
        self.centroids = tf.Variable(centroids, trainable=False, name="ivf_centroids")
        self.block_offsets = tf.Variable(block_offsets, trainable=False, name="ivf_block_offsets")
        self.slot_positions = tf.Variable(slots.reshape(-1, BLOCK_ROWS), trainable=False, name="ivf_slot_positions")
        # filled in chunks: a float32 copy of 10M items in partition order would cost 2.56 GB more
        grouped = np.zeros((table_rows, self.dim), tf.bfloat16.as_numpy_dtype)
        for start in range(0, self.num_items, GROUPING_CHUNK_ROWS):
            end = min(start + GROUPING_CHUNK_ROWS, self.num_items)
            grouped[rows[start:end]] = vectors[order[start:end]]
        self.grouped_bfloat16 = tf.Variable(grouped.reshape(-1, BLOCK_ROWS, self.dim), trainable=False,
                                            name="ivf_items_bfloat16")

    def search(self, queries: tf.Tensor, excluded: tf.Tensor,
               nprobe: int | None = None) -> tuple[tf.Tensor, tf.Tensor]:
        """Top-``k`` positions and exact scores; see :class:`~mmrec_tf.export.retrieval_index.RetrievalIndex`.

        ``nprobe`` overrides the index's number of probed partitions (a Python
        int: each value traces its own graph).
        """
        nprobe = self.nprobe if nprobe is None else min(int(nprobe), self.nlist)
        queries = tf.cast(queries, tf.float32)
        batch = tf.shape(queries)[0]
        excluded = tf.cast(excluded, tf.int32)
        probes = tf.math.top_k(tf.matmul(queries, self.centroids, transpose_b=True), k=nprobe).indices
        starts = tf.gather(self.block_offsets, probes)
        ends = tf.gather(self.block_offsets, probes + 1)
        ranges = tf.ragged.range(tf.reshape(starts, [-1]), tf.reshape(ends, [-1]))
        per_query = tf.RaggedTensor.from_row_lengths(ranges.flat_values,
                                                     tf.cast(tf.reduce_sum(ends - starts, axis=1), tf.int64))
        wanted = self.shortlist_size + tf.shape(excluded)[1]
        longest = tf.cast(tf.reduce_max(tf.concat([per_query.row_lengths(), [0]], 0)), tf.int32)
        width = tf.maximum(longest, -(-wanted // BLOCK_ROWS))
        blocks = per_query.to_tensor(default_value=self.num_blocks, shape=tf.stack([batch, width]))
        candidates = tf.reshape(tf.gather(self.grouped_bfloat16, blocks), [batch, width * BLOCK_ROWS, self.dim])
        slots = tf.reshape(tf.gather(self.slot_positions, blocks), [batch, width * BLOCK_ROWS])
        approximate = tf.cast(tf.squeeze(tf.matmul(candidates, tf.cast(queries, tf.bfloat16)[:, :, None]), -1),
                              tf.float32)
        approximate = tf.where(slots < 0, tf.constant(-np.inf, tf.float32), approximate)
        positions = tf.gather(slots, tf.math.top_k(approximate, k=wanted).indices, batch_dims=1)

        vectors = self.exact_vectors(tf.maximum(positions, 0))
        exact = tf.einsum("bd,bsd->bs", queries, vectors)
        blocked = tf.logical_or(positions < 0, is_member(positions, excluded))
        exact = tf.where(blocked, tf.constant(-np.inf, tf.float32), exact)
        top = tf.math.top_k(exact, k=self.k)
        return mark_empty_slots(tf.gather(positions, top.indices, batch_dims=1), top.values)
