"""Re-rankers that run inside ``retrieve``: diversity (MMR), calibration (Steck) and a long-tail boost.

The retrieval index returns a *shortlist* of the best ``shortlist`` catalog
items by the model's score; a re-ranker picks the final ``k`` from it with
stock TensorFlow ops, so TF Serving applies it with no extra service. Each
trades relevance for something else with one strength ``lambda`` in
``[0, 1]``; ``lambda = 0`` returns the plain top ``k``. Relevance is the
model's score min-max scaled to ``[0, 1]`` over each user's shortlist, so one
``lambda`` means the same across models and users. The returned scores are the
model's own scores of the chosen items (in the re-ranked order, so not
necessarily descending).

- ``mmr:LAMBDA`` - maximal marginal relevance (Carbonell & Goldstein, SIGIR
  1998): greedily add the item maximising ``(1 - lambda) rel(i) - lambda max_j
  cos(e_i, e_j)`` over the items ``j`` already chosen, ``e`` the model's item
  embeddings.
- ``calibrated:LAMBDA[:COLUMN]`` - calibrated recommendations (Steck, RecSys
  2018, eq. 6 and its greedy solution): greedily add the item maximising
  ``(1 - lambda) sum_{i in I} rel(i) - lambda KL(p || q~(I))``, ``p`` the
  genre mix of the user's history, ``q~`` the smoothed mix of the list
  (``alpha = 0.01``), over a categorical or multi-categorical item column
  (default ``genres``).
- ``tail:LAMBDA`` - long-tail boost: rank the shortlist by ``(1 - lambda)
  rel(i) + lambda [i is long tail]`` (long tail = outside the items that make
  up 20 % of the training interactions, see
  :func:`~mmrec_tf.evaluation.beyond_accuracy.long_tail_mask`), a linear
  form of the popularity-aware re-rankers of Abdollahpouri et al. (FLAIRS 2019).

Example:
>>> reranker = MMRReranker(np.eye(3, dtype="float32")[[0, 0, 1]], strength=0.9, k=2)
>>> positions, scores = reranker.rerank(tf.constant([[0, 1, 2]]), tf.constant([[3.0, 2.9, 1.0]]))
>>> positions.numpy().tolist()  # item 1 duplicates item 0: MMR takes item 2 second
[[0, 2]]
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

RERANK_KINDS = ("mmr", "calibrated", "tail")
DEFAULT_CALIBRATION_COLUMN = "genres"
SHORTLIST_MULTIPLE = 4
MIN_SHORTLIST = 100
STECK_ALPHA = 0.01


def parse_rerank_spec(spec: str) -> tuple[str, float, str | None]:
    """``"mmr:0.3"`` -> ``("mmr", 0.3, None)``; ``"calibrated:0.5:genres"`` -> ``(..., "genres")``.

    Example:
    >>> parse_rerank_spec("calibrated:0.5")
    ('calibrated', 0.5, 'genres')
    >>> parse_rerank_spec("tail:0.2")
    ('tail', 0.2, None)
    """
    parts = str(spec).split(":")
    usage = "expected mmr:LAMBDA, calibrated:LAMBDA[:COLUMN] or tail:LAMBDA with LAMBDA in [0, 1]"
    if parts[0] not in RERANK_KINDS or len(parts) < 2 or len(parts) > (3 if parts[0] == "calibrated" else 2):
        raise ValueError(f"rerank {spec!r}: {usage}")
    try:
        strength = float(parts[1])
    except ValueError:
        raise ValueError(f"rerank {spec!r}: {usage}") from None
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"rerank {spec!r}: {usage}")
    column = (parts[2] if len(parts) == 3 else DEFAULT_CALIBRATION_COLUMN) if parts[0] == "calibrated" else None
    return parts[0], strength, column


def shortlist_size(k: int, num_items: int) -> int:
    """How many items the index hands a re-ranker: ``max(4 k, 100)``, at most the catalog."""
    return int(min(num_items, max(SHORTLIST_MULTIPLE * k, MIN_SHORTLIST)))


def _relevance(scores, valid):
    """Scores min-max scaled to [0, 1] over each row's valid entries (all 1 if they tie)."""
    big = tf.constant(np.inf, scores.dtype)
    low = tf.reduce_min(tf.where(valid, scores, big), axis=1, keepdims=True)
    high = tf.reduce_max(tf.where(valid, scores, -big), axis=1, keepdims=True)
    span = high - low
    scaled = tf.math.divide_no_nan(scores - low, span)
    return tf.where(valid, tf.where(span > 0, scaled, tf.ones_like(scores)), tf.zeros_like(scores))


def _take(positions, scores, chosen, chosen_valid):
    """Gather the chosen shortlist slots; invalid picks become position -1, score -inf."""
    picked_positions = tf.gather(positions, chosen, batch_dims=1)
    picked_scores = tf.gather(scores, chosen, batch_dims=1)
    return (tf.where(chosen_valid, picked_positions, -tf.ones_like(picked_positions)),
            tf.where(chosen_valid, picked_scores, tf.fill(tf.shape(picked_scores), -np.inf)))


def _greedy_steps(k: int, positions) -> int:
    return min(k, int(positions.shape[1])) if positions.shape[1] is not None else k


def _take_greedy(positions, scores, valid, chosen):
    """:func:`_take` for greedy picks ``[B, k]``: a pick is valid if its slot is and it is the slot's first pick.

    A greedy step whose every gain is ``-inf`` (the valid slots are used up)
    returns slot 0 again or an empty slot; both are marked empty here, so the
    loop itself carries no availability flags.
    """
    steps = int(chosen.shape[1])
    earlier = tf.constant(np.tril(np.ones((steps, steps), bool), -1))
    repeated = tf.reduce_any((chosen[:, :, None] == chosen[:, None, :]) & earlier, axis=2)
    return _take(positions, scores, chosen, tf.gather(valid, chosen, batch_dims=1) & ~repeated)


def _blocking(pick, width):
    """``-inf`` at the picked slot, 0 elsewhere: added to the gains so a slot is picked once."""
    return tf.one_hot(pick, width, on_value=-np.inf, off_value=0.0)


class Reranker(tf.Module):
    """Picks ``k`` of a shortlist: ``rerank(positions [B, S], scores [B, S], history [B, L]) -> ([B, k], [B, k])``.

    ``positions`` are catalog positions (``-1`` = empty slot, score
    ``-inf``), ``history`` item vocabulary indices (0 = padding; only the
    calibrated re-ranker reads it). Subclasses implement :meth:`rerank`.
    """

    kind = ""

    def __init__(self, strength: float, k: int, name: str | None = None):
        super().__init__(name=name)
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"re-ranking strength must be in [0, 1], got {strength}")
        self.strength = float(strength)
        self.k = int(k)

    def rerank(self, positions, scores, history=None):
        raise NotImplementedError


class MMRReranker(Reranker):
    """Maximal marginal relevance over cosine similarities of the catalog's item embeddings ``[N, D]``."""

    kind = "mmr"

    def __init__(self, embeddings: np.ndarray, strength: float, k: int):
        super().__init__(strength, k, name="mmr_reranker")
        embeddings = np.asarray(embeddings, np.float32)
        norms = np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
        self.unit = tf.Variable(embeddings / norms, trainable=False, name="reranker_unit_embeddings")

    def rerank(self, positions, scores, history=None):
        positions = tf.cast(positions, tf.int32)
        valid = positions >= 0
        # relevance part of the gain; a picked slot's becomes -inf
        relevance = tf.where(valid, (1.0 - self.strength) * _relevance(scores, valid), -np.inf)
        vectors = tf.gather(self.unit, tf.maximum(positions, 0))  # [B, S, D]
        width = tf.shape(scores)[1]
        closest = tf.zeros_like(scores)  # lambda * max cosine to the items picked so far
        chosen = []
        for _ in range(_greedy_steps(self.k, positions)):
            pick = tf.argmax(relevance - closest, axis=1, output_type=tf.int32)
            chosen.append(pick)
            relevance = relevance + _blocking(pick, width)
            similarity = tf.linalg.matvec(vectors, tf.gather(vectors, pick, batch_dims=1))
            closest = tf.maximum(closest, self.strength * similarity) if len(chosen) > 1 else self.strength * similarity
        return _take_greedy(positions, scores, valid, tf.stack(chosen, axis=1))


class CalibratedReranker(Reranker):
    """Steck's greedy calibrated list over item categories: ``item_categories [num_items + 1, G]`` (vocab index)."""

    kind = "calibrated"

    def __init__(self, item_categories: np.ndarray, catalog_index: np.ndarray, strength: float, k: int):
        super().__init__(strength, k, name="calibrated_reranker")
        categories = np.asarray(item_categories, np.float32)
        shares = categories / np.maximum(categories.sum(axis=1, keepdims=True), 1.0)
        self.shares = tf.Variable(shares, trainable=False, name="reranker_category_shares")
        self.catalog_index = tf.Variable(np.asarray(catalog_index, np.int32), trainable=False,
                                         name="reranker_catalog_index")

    def rerank(self, positions, scores, history=None):
        positions = tf.cast(positions, tf.int32)
        valid = positions >= 0
        wanted = tf.reduce_sum(tf.gather(self.shares, tf.cast(history, tf.int32)), axis=1)  # [B, G]
        wanted = tf.math.divide_no_nan(wanted, tf.reduce_sum(wanted, axis=1, keepdims=True))
        candidates = tf.gather(self.shares, tf.gather(self.catalog_index, tf.maximum(positions, 0)))  # [B, S, G]
        candidate_mass = tf.reduce_sum(candidates, axis=2)  # [B, S]: 1, or 0 for an item without categories
        floor = (STECK_ALPHA * wanted)[:, None, :]
        # KL(p || q~) = sum p log p - sum p log q~: the first sum and the relevance of the items already
        # chosen are the same for every candidate of a step, so the greedy argmax needs only
        # (1 - lambda) rel + lambda sum_g p_g log q~_g (q~_g >= alpha p_g > 0 wherever p_g > 0).
        gain = tf.where(valid, (1.0 - self.strength) * _relevance(scores, valid), -np.inf)
        width = tf.shape(scores)[1]
        mass = tf.zeros_like(wanted)  # [B, G]: the category mass of the items chosen so far
        chosen = []
        for _ in range(_greedy_steps(self.k, positions)):
            total = tf.reduce_sum(mass, axis=1, keepdims=True) + candidate_mass  # [B, S]
            smoothed = (mass[:, None, :] + candidates) * tf.math.divide_no_nan(tf.ones_like(total) * (1.0 - STECK_ALPHA), total)[:, :, None]
            log_share = tf.math.log(tf.maximum(smoothed + floor, np.finfo(np.float32).tiny))
            pick = tf.argmax(gain + self.strength * tf.linalg.matvec(log_share, wanted), axis=1,
                             output_type=tf.int32)
            chosen.append(pick)
            gain = gain + _blocking(pick, width)
            mass = mass + tf.gather(candidates, pick, batch_dims=1)
        return _take_greedy(positions, scores, valid, tf.stack(chosen, axis=1))


class LongTailReranker(Reranker):
    """Rank by ``(1 - lambda) rel + lambda [long tail]``; ``long_tail [N]`` per catalog position."""

    kind = "tail"

    def __init__(self, long_tail: np.ndarray, strength: float, k: int):
        super().__init__(strength, k, name="long_tail_reranker")
        self.long_tail = tf.Variable(np.asarray(long_tail, np.float32), trainable=False, name="reranker_long_tail")

    def rerank(self, positions, scores, history=None):
        positions = tf.cast(positions, tf.int32)
        valid = positions >= 0
        boosted = ((1.0 - self.strength) * _relevance(scores, valid)
                   + self.strength * tf.gather(self.long_tail, tf.maximum(positions, 0)))
        boosted = tf.where(valid, boosted, tf.fill(tf.shape(boosted), -np.inf))
        k = min(self.k, int(positions.shape[1])) if positions.shape[1] is not None else self.k
        _, chosen = tf.math.top_k(boosted, k=k)
        return _take(positions, scores, chosen, tf.gather(valid, chosen, batch_dims=1))


def make_reranker(spec: str, k: int, catalog_index: np.ndarray, embeddings: np.ndarray | None = None,
                  space=None, item_popularity: np.ndarray | None = None) -> Reranker:
    """The re-ranker ``spec`` (see :func:`parse_rerank_spec`) for a catalog.

    ``catalog_index [N]``: the vocabulary index of each catalog position;
    ``embeddings [N, D]``: their item embeddings (``mmr``); ``space``: the
    feature space whose item column ``calibrated`` reads; ``item_popularity``
    (``[num_items + 1]`` by vocabulary index, training interactions): what
    ``tail`` calls the long tail.

    Example:
    >>> make_reranker("tail:0.2", 5, np.array([1, 2]), item_popularity=np.array([0, 9, 1])).kind
    'tail'
    """
    from mmrec_tf.evaluation.beyond_accuracy import long_tail_mask

    kind, strength, column = parse_rerank_spec(spec)
    catalog_index = np.asarray(catalog_index, np.int64)
    if kind == "mmr":
        if embeddings is None:
            raise ValueError("rerank mmr needs the catalog's item embeddings")
        return MMRReranker(embeddings, strength, k)
    if kind == "tail":
        if item_popularity is None:
            raise ValueError("rerank tail needs the items' training popularity (export it from a run folder)")
        return LongTailReranker(long_tail_mask(item_popularity)[catalog_index], strength, k)
    table = space.item_features.get(column) if space is not None else None
    if table is None or table.kind.value not in ("categorical", "multi_categorical"):
        have = sorted(name for name, t in (space.item_features.items() if space is not None else [])
                      if t.kind.value in ("categorical", "multi_categorical"))
        raise ValueError(f"rerank {spec!r}: calibration needs a categorical item column {column!r}; "
                         f"this model's data has {have or 'none'}")
    values = np.asarray(table.values)
    if table.kind.value == "categorical":
        values = np.eye(len(table.vocabulary) + 1, dtype=np.float32)[values.reshape(-1).astype(np.int64)][:, 1:]
    return CalibratedReranker(values, catalog_index, strength, k)
