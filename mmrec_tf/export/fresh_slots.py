"""Places of every ``retrieve`` list kept for items nobody has interacted with yet: :class:`FreshSlots`."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

#: Ranks a fresh pick above every other item while the final list is chosen (it is then ordered by its real score).
_CHOSEN_FIRST = np.float32(np.finfo(np.float32).max)


class FreshSlots(tf.Module):
    """Keep ``slots`` places of each top ``k`` for the fresh items the model ranks best for the user.

    A model that has just been updated scores items without interactions
    from their features alone. It orders them by the user's taste about as
    well as a retrain does, but they seldom reach a whole-catalog top 10
    against trained items (``benchmarks/rolling_update.py``: HR@10 on new
    items at the random ranking's rate). This serving policy gives them a
    place. The list is the ``slots`` best-scored fresh items the user has not
    had, plus the best ``k - slots`` of the index's results that are not
    among them, ordered by score. Rows with fewer fresh items left fill the
    places from the index. ``benchmarks/rolling_update.py`` measures the same
    policy offline (:func:`~mmrec_tf.evaluation.rolling.fresh_slot_hits`).

    ``positions`` are the fresh items' catalog positions (of ``catalog_size``)
    and ``vectors`` their item embeddings (float32 ``[F, D]``, as the index
    scores them). Fresh items with equal scores are picked in catalog order.

    Example (catalog positions 0..3 score 4, 3, 2, 1 for the user; position 3 is fresh):
    >>> slots = FreshSlots(np.array([3]), np.array([[1.0]], "float32"), slots=1, k=2, catalog_size=4)
    >>> positions, scores = slots.merge(tf.constant([[1.0]]), tf.constant([[0, 1]]), tf.constant([[4.0, 3.0]]),
    ...                                 history_positions=tf.constant([[-1]]))
    >>> positions.numpy().tolist(), scores.numpy().tolist()
    ([[0, 3]], [[4.0, 1.0]])
    """

    def __init__(self, positions: np.ndarray, vectors: np.ndarray, slots: int, k: int, catalog_size: int):
        super().__init__(name="fresh_slots")
        positions = np.asarray(positions, np.int32)
        if isinstance(slots, bool) or int(slots) != slots or not 1 <= slots <= k:
            raise ValueError(f"fresh slots (--fresh-slots) must be a whole number from 1 to the list length k "
                             f"(--k) = {k}, got {slots!r}")
        if not len(positions):
            raise ValueError("fresh slots (--fresh-slots) need fresh items, but every catalog item has training "
                             "interactions")
        self.slots = int(min(slots, len(positions)))
        self.k = int(k)
        self.positions = tf.Variable(positions, trainable=False, name="fresh_item_positions")
        self.vectors = tf.Variable(np.asarray(vectors, np.float32), trainable=False, name="fresh_item_vectors")
        fresh_index = np.full(catalog_size + 1, -1, np.int32)  # by catalog position; the last entry stands for -1
        fresh_index[positions] = np.arange(len(positions), dtype=np.int32)
        self.fresh_index = tf.Variable(fresh_index, trainable=False, name="fresh_index_of_position")

    def merge(self, users: tf.Tensor, positions: tf.Tensor, scores: tf.Tensor,
              history_positions: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """The index's ``positions`` / ``scores`` ``[B, k]`` with the fresh picks in; the same shapes, best first."""
        fresh_scores = tf.matmul(tf.cast(users, tf.float32), self.vectors, transpose_b=True)
        history_positions = tf.cast(history_positions, tf.int32)
        outside = tf.shape(self.fresh_index)[0] - 1
        had = tf.gather(self.fresh_index, tf.where(history_positions >= 0, history_positions, outside))  # [B, L]
        cells = tf.where(had >= 0)
        fresh_scores = tf.tensor_scatter_nd_update(
            fresh_scores, tf.stack([cells[:, 0], tf.cast(tf.gather_nd(had, cells), tf.int64)], axis=1),
            tf.fill(tf.shape(cells)[:1], tf.constant(-np.inf, tf.float32)))
        pick_scores, picks = tf.math.top_k(fresh_scores, k=self.slots)
        pick_positions = tf.gather(self.positions, picks)
        picked = tf.math.is_finite(pick_scores)
        listed_twice = tf.reduce_any((positions[:, :, None] == pick_positions[:, None, :]) & picked[:, None, :], axis=2)
        scores = tf.where(listed_twice, tf.constant(-np.inf, scores.dtype), scores)
        positions = tf.where(listed_twice, -1, positions)  # an emptied place, never the pick a second time
        all_positions = tf.concat([positions, pick_positions], axis=1)
        all_scores = tf.concat([scores, pick_scores], axis=1)
        keys = tf.concat([scores, tf.where(picked, _CHOSEN_FIRST, -np.inf)], axis=1)
        chosen = tf.math.top_k(keys, k=self.k).indices
        chosen_scores = tf.gather(all_scores, chosen, batch_dims=1)
        order = tf.math.top_k(chosen_scores, k=self.k).indices
        return (tf.gather(tf.gather(all_positions, chosen, batch_dims=1), order, batch_dims=1),
                tf.gather(chosen_scores, order, batch_dims=1))
