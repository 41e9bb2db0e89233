"""The ``tf.Module`` that carries a trained model and its vocabularies into a SavedModel."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from mmrec_tf.export.explanations import explain_candidates
from mmrec_tf.export.fresh_slots import FreshSlots
from mmrec_tf.export.reranking import make_reranker, shortlist_size
from mmrec_tf.export.index_choice import make_retrieval_index
from mmrec_tf.layers.history import most_recent_history
from mmrec_tf.model_registration import model_task_kind

STRING_VECTOR = tf.TensorSpec([None], tf.string)
STRING_MATRIX = tf.TensorSpec([None, None], tf.string)
INT_MATRIX = tf.TensorSpec([None, None], tf.int32)
#: (user, candidate) pairs ``score`` and ``explain`` run through the model at once; peak memory grows with
#: this, not with the number of candidates in a request (measured by ``benchmarks/score_memory.py``)
SCORE_CHUNK_PAIRS = 4096


class ServingModule(tf.Module):
    """Serving signatures over raw string ids, per the mmrec_tf serving contract.

    Holds the Keras model, the user and item vocabularies as the lookup
    tables each vocabulary makes itself (``make_tf_lookup``, so serving maps
    every id exactly as the training examples did: unknown ids → index 0,
    which every model treats as "no information", or, for a
    :class:`~mmrec_tf.data.HashedVocabulary`, → their hash bucket), and
    for retrieval models a retrieval index over the catalog's item embeddings
    (see :func:`~mmrec_tf.export.index_choice.make_retrieval_index`) used by
    ``retrieve``. Signatures:

    - ``score(user_id [B], history [B, L], candidates [B, C]) → {"scores" [B, C]}``
    - retrieval: ``retrieve(user_id, history) → {"item_ids" [B, K], "scores" [B, K]}``
      (items in ``history`` excluded), ``user_embedding(user_id, history)``,
      ``item_embedding(item_id)``
    - every model: ``explain(user_id, history, candidates) → {"weights" [B, C, L],
      "history_item_ids" [B, L]}``: target-attention weights of the history
      positions, or the cosine similarity of each candidate to each history item
      (see :mod:`~mmrec_tf.export.explanations`); cross-attention fusion adds
      ``modality_weights`` [B, C, M] and ``modality_names`` [B, M]
    - rating-aware ranking models (``rating_levels`` > 0): ``score`` and
      ``explain`` also take ``history_rating`` (int32 ``[B, L]``, aligned with
      ``history``: the rating ``1..rating_levels`` the user gave each history
      item, 0 at padding)

    ``history`` is oldest first, padded at the end with ``""``, any length;
    the model keeps the most recent items it supports. Outputs are float32
    whatever the training precision. ``retrieve`` returns catalog items only
    (``catalog_ids``, default: every item of the vocabulary) and never an item
    of the history; when fewer than K catalog items remain, the remaining
    slots hold id ``""`` and score ``-inf``. ``rerank`` (e.g. ``"mmr:0.3"``, see
    :mod:`~mmrec_tf.export.reranking`) has ``retrieve`` pick its K items from a
    larger shortlist of the index; ``item_popularity`` (training interactions
    per item index) is what ``"tail:..."`` calls the long tail. ``fresh_slots`` > 0 keeps that many
    places of every ``retrieve`` list for fresh items, ``new_item_ids`` and ``fresh_item_ids``
    (e.g. the items without training interactions), the ones the model ranks best for the user
    (see :class:`~mmrec_tf.export.fresh_slots.FreshSlots`). ``index`` picks the search:
    ``"auto"``, ``"brute_force"``, ``"bfloat16"`` or ``"ivf[:nlist=N,nprobe=M]"``
    (see :func:`~mmrec_tf.export.index_choice.make_retrieval_index`); an IVF
    index trains its partitions on the catalog items not in ``new_item_ids``
    and only assigns the new ones to them.

    ``score`` and ``explain`` run the model over at most ``score_chunk_pairs``
    (user, candidate) pairs at a time, one chunk after another inside the
    graph, so a request's peak memory is bounded whatever its ``B × C``; the
    outputs equal one unchunked call up to float32 rounding. Every signature refuses a
    request whose inputs disagree on the number of rows (naming the inputs
    and their sizes), and ``history_rating`` outside ``0..rating_levels``.

    Example:
    >>> module = ServingModule(model, space, k=10)  # doctest: +SKIP
    >>> module.retrieve(tf.constant(["196"]), tf.constant([["242", ""]]))["item_ids"].shape  # doctest: +SKIP
    TensorShape([1, 10])
    """

    def __init__(self, model, space, k: int = 100, index: str = "auto",
                 catalog_ids: Sequence[str] | None = None, new_item_ids: Sequence[str] = (),
                 score_chunk_pairs: int = SCORE_CHUNK_PAIRS, rerank: str | None = None,
                 item_popularity: np.ndarray | None = None, fresh_slots: int = 0,
                 fresh_item_ids: Sequence[str] = ()):
        super().__init__(name="mmrec_serving")
        if isinstance(score_chunk_pairs, bool) or int(score_chunk_pairs) != score_chunk_pairs or score_chunk_pairs < 1:
            raise ValueError(f"score_chunk_pairs must be a whole number >= 1, got {score_chunk_pairs!r}")
        self.model = model
        self.score_chunk_pairs = int(score_chunk_pairs)
        self.user_lookup = space.user_vocab.make_tf_lookup("user_vocabulary")
        self.item_lookup = space.item_vocab.make_tf_lookup("item_vocabulary")
        self.num_items = space.num_items
        self.kind = model_task_kind(model)
        self.max_history = getattr(model, "max_history", None)
        self.rating_levels = int(getattr(model, "rating_levels", 0) or 0)
        score = {"user_id": STRING_VECTOR, "history": STRING_MATRIX, "candidates": STRING_MATRIX}
        if self.rating_levels:
            score["history_rating"] = INT_MATRIX
        specs = {"score": score, "explain": dict(score),
                 "retrieve": {"user_id": STRING_VECTOR, "history": STRING_MATRIX},
                 "user_embedding": {"user_id": STRING_VECTOR, "history": STRING_MATRIX},
                 "item_embedding": {"item_id": STRING_VECTOR}}
        if self.kind.retrieves:
            catalog = _catalog_indices(space, catalog_ids)
            known = ~np.isin(space.item_vocab.ids[catalog - 1], np.asarray(list(new_item_ids), dtype=object))
            self.catalog_item_index = tf.Variable(catalog.astype(np.int32), trainable=False,
                                                  name="catalog_item_index")
            embeddings = model.catalog_item_embeddings(catalog)
            table = model.catalog_item_table(catalog)
            self.index = make_retrieval_index(index, embeddings, shortlist_size(k, len(catalog)) if rerank else k,
                                              training_rows=np.flatnonzero(known) if 0 < known.sum() < len(known)
                                              else None,
                                              exact_vectors=self._catalog_item_vectors,
                                              item_table=None if table is None else lambda: table)
            self.k = int(min(k, len(catalog))) if rerank else self.index.k
            self.reranker = (make_reranker(rerank, self.k, catalog, embeddings, space, item_popularity)
                             if rerank else None)
            fresh = ~known | np.isin(space.item_vocab.ids[catalog - 1], np.asarray(list(fresh_item_ids), dtype=object))
            if fresh_slots and rerank:
                raise ValueError("--fresh-slots and --rerank both choose the places of a `retrieve` list; use one")
            self.fresh_slots = (FreshSlots(np.flatnonzero(fresh), np.asarray(embeddings)[fresh], fresh_slots, self.k,
                                           len(catalog)) if fresh_slots else None)
            self.catalog_ids = tf.Variable(np.append(space.item_vocab.ids[catalog - 1], "").astype(str),
                                           dtype=tf.string, trainable=False, name="catalog_item_ids")
            position = np.full(space.num_items + 1, -1, np.int32)
            position[catalog] = np.arange(len(catalog), dtype=np.int32)
            self.catalog_position = tf.Variable(position, trainable=False, name="catalog_position_of_item")
        else:
            if catalog_ids is not None or rerank or fresh_slots:
                raise ValueError("catalog_ids, rerank and fresh slots change what `retrieve` returns; ranking models "
                                 "have no retrieve signature")
            self.k = int(min(k, space.num_items))
        self.item_ids = tf.Variable(np.asarray(space.item_vocab.ids, dtype=object).astype(str),
                                    dtype=tf.string, trainable=False, name="item_vocabulary_ids")
        self.modality_names = list(getattr(model, "modality_names", [])) if hasattr(model, "modality_attention") else []
        self.signature_inputs = {name: tuple(specs[name]) for name in self.kind.serving_signatures}
        for name in self.kind.serving_signatures:
            setattr(self, name, tf.function(getattr(self, f"_{name}"), input_signature=list(specs[name].values())))

    def _features(self, user_id, history, history_rating=None):
        history_index = self.item_lookup.lookup(history)
        features = {"user_id": self.user_lookup.lookup(user_id)}
        if history_rating is None:
            features["history"] = (most_recent_history(history_index, self.max_history)
                                   if self.max_history else history_index)
        else:  # the ratings move with their items (unknown items are dropped with their rating)
            features["history"], features["history_rating"] = most_recent_history(
                history_index, self.max_history, aligned=history_rating)
        return features, history_index

    def _checked(self, signature: str, **inputs) -> dict:
        """``inputs`` once they agree on their number of rows (and ``history_rating`` on its shape and range).

        Refuses the request with an error naming the inputs and their sizes;
        every computation of the signature runs after these checks.
        """
        rows = {name: tf.shape(value)[0] for name, value in inputs.items()}
        first = next(iter(rows))
        checks = [tf.debugging.Assert(tf.equal(rows[first], size), [tf.strings.format(
            f"{signature}: every input needs one row per user, but {first} has {{}} rows and {name} has {{}}",
            (rows[first], size))]) for name, size in rows.items() if name != first]
        if "history_rating" in inputs:
            ratings, history = inputs["history_rating"], inputs["history"]
            checks.append(tf.debugging.Assert(tf.reduce_all(tf.equal(tf.shape(ratings), tf.shape(history))), [
                tf.strings.format(f"{signature}: history_rating has shape {{}} but history has shape {{}}; "
                                  "they must be aligned", (tf.shape(ratings), tf.shape(history)))]))
            checks.append(tf.debugging.Assert(
                tf.reduce_all((ratings >= 0) & (ratings <= self.rating_levels)),
                [tf.strings.format(f"{signature}: history_rating must be 0..{self.rating_levels} "
                                   "(0 at padding), got values from {} to {}",
                                   (tf.reduce_min(ratings), tf.reduce_max(ratings)))]))
        with tf.control_dependencies(checks):
            return {name: tf.identity(value) for name, value in inputs.items()}

    def _over_candidate_chunks(self, run_chunk, candidates, names=("scores",)) -> dict:
        """``run_chunk(rows [n], candidates [n, 1])`` over every (user, candidate) pair, outputs ``[B, C, ...]``.

        ``run_chunk`` returns a dict with float tensors ``[n, 1, ...]`` under ``names``; the
        ``B × C`` pairs are cut into chunks of ``score_chunk_pairs``, run one
        after another (``parallel_iterations=1``) so only one chunk's
        activations are alive at a time. At least one (possibly empty) chunk
        runs, so the outputs' shapes are known even without candidates; the
        outputs keep the chunk's static trailing dimensions, so the signature
        declares ``[None, None, ...]`` rather than an unknown rank.
        """
        shape = tf.shape(candidates)
        flat = tf.reshape(candidates, [-1])
        rows = tf.repeat(tf.range(shape[0]), shape[1])
        total = tf.size(flat)
        step = self.score_chunk_pairs
        count = tf.maximum((total + step - 1) // step, 1)
        trailing_shapes = {}

        def run(i, parts):
            start = i * step
            end = tf.minimum(start + step, total)
            outputs = run_chunk(rows[start:end], flat[start:end, None])
            trailing_shapes.update({name: outputs[name].shape[2:] for name in names})
            return i + 1, [part.write(i, tf.cast(outputs[name], tf.float32)) for name, part in zip(names, parts)]

        parts = [tf.TensorArray(tf.float32, size=count, infer_shape=False) for _ in names]
        _, parts = tf.while_loop(lambda i, _: i < count, run, (tf.constant(0), parts), parallel_iterations=1)
        results = {}
        for name, part in zip(names, parts):
            values = part.concat()
            result = tf.reshape(values, tf.concat([shape, tf.shape(values)[2:]], axis=0))
            result.set_shape(tf.TensorShape([None, None]).concatenate(trailing_shapes[name]))
            results[name] = result
        return results

    def _score(self, user_id, history, candidates, history_rating=None):
        inputs = self._checked("score", user_id=user_id, history=history, candidates=candidates,
                               **({} if history_rating is None else {"history_rating": history_rating}))
        features, _ = self._features(inputs["user_id"], inputs["history"], inputs.get("history_rating"))
        if self.kind.retrieves:
            users = self.model.encode_users(features)
            return self._over_candidate_chunks(
                lambda rows, chunk: {"scores": self.model.score_user_embeddings(tf.gather(users, rows), chunk)},
                self.item_lookup.lookup(inputs["candidates"]))
        return self._over_candidate_chunks(
            lambda rows, chunk: {"scores": self.model.score_candidates(
                {name: tf.gather(value, rows) for name, value in features.items()}, chunk)},
            self.item_lookup.lookup(inputs["candidates"]))

    def _retrieve(self, user_id, history):
        inputs = self._checked("retrieve", user_id=user_id, history=history)
        features, history_index = self._features(inputs["user_id"], inputs["history"])
        users = tf.cast(self.model.encode_users(features), tf.float32)
        positions, scores = self.index.search(users, tf.gather(self.catalog_position, history_index))
        if self.reranker is not None:
            positions, scores = self.reranker.rerank(positions, scores, history_index)
        if self.fresh_slots is not None:
            positions, scores = self.fresh_slots.merge(users, positions, scores,
                                                       tf.gather(self.catalog_position, history_index))
        empty = tf.shape(self.catalog_ids, out_type=tf.int32)[0] - 1
        item_ids = tf.gather(self.catalog_ids, tf.where(positions >= 0, positions, empty))
        return {"item_ids": item_ids, "scores": scores}

    def _catalog_item_vectors(self, positions):
        """The model's item embeddings of catalog ``positions``: the index re-ranks with them, holding no copy."""
        return self.model.encode_items(tf.gather(self.catalog_item_index, positions))

    def _user_embedding(self, user_id, history):
        inputs = self._checked("user_embedding", user_id=user_id, history=history)
        features, _ = self._features(inputs["user_id"], inputs["history"])
        return {"embedding": tf.cast(self.model.encode_users(features), tf.float32)}

    def _item_embedding(self, item_id):
        return {"embedding": tf.cast(self.model.encode_items(self.item_lookup.lookup(item_id)), tf.float32)}

    def _explain(self, user_id, history, candidates, history_rating=None):
        inputs = self._checked("explain", user_id=user_id, history=history, candidates=candidates,
                               **({} if history_rating is None else {"history_rating": history_rating}))
        features, _ = self._features(inputs["user_id"], inputs["history"], inputs.get("history_rating"))
        outputs = self._over_candidate_chunks(
            lambda rows, chunk: explain_candidates(
                self.model, {name: tf.gather(value, rows) for name, value in features.items()}, chunk),
            self.item_lookup.lookup(inputs["candidates"]),
            names=("weights", "modality_weights") if hasattr(self.model, "modality_attention") else ("weights",))
        outputs["history_item_ids"] = tf.gather(tf.concat([[""], self.item_ids], axis=0), features["history"])
        if self.modality_names:
            outputs["modality_names"] = tf.tile(tf.constant([self.modality_names]), [tf.shape(user_id)[0], 1])
        return outputs

    def signatures(self) -> dict:
        """Concrete functions by signature name, ``serving_default`` included."""
        concrete = {name: getattr(self, name).get_concrete_function() for name in self.signature_inputs}
        concrete["serving_default"] = concrete[self.kind.serving_default]
        return concrete


def _catalog_indices(space, catalog_ids: Sequence[str] | None) -> np.ndarray:
    """Vocabulary indices (1-based) of the items ``retrieve`` may return, in catalog order."""
    if catalog_ids is None:
        return np.arange(1, space.num_items + 1, dtype=np.int64)
    ids = [str(item) for item in catalog_ids]
    if not ids:
        raise ValueError("catalog_ids is empty; retrieve needs at least one item")
    indices = space.item_vocab.lookup(ids).astype(np.int64)
    unknown = [item for item, index in zip(ids, indices) if index == 0]
    if unknown:
        raise ValueError(f"catalog_ids: {len(unknown)} id(s) are not in the model's item vocabulary, "
                         f"e.g. {unknown[:5]}; new items need export_model(..., catalog=...)")
    seen: set[str] = set()
    for item in ids:
        if item in seen:
            raise ValueError(f"catalog_ids: item id {item!r} appears twice")
        seen.add(item)
    return indices
