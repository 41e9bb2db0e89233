"""The ``tf.Module`` that carries a trained model and its vocabularies into a SavedModel."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from mmrec_tf.export.explanations import explain_candidates
from mmrec_tf.export.retrieval_index import make_retrieval_index
from mmrec_tf.layers.history import most_recent_history

STRING_VECTOR = tf.TensorSpec([None], tf.string)
STRING_MATRIX = tf.TensorSpec([None, None], tf.string)
INT_MATRIX = tf.TensorSpec([None, None], tf.int32)


class ServingModule(tf.Module):
    """Serving signatures over raw string ids, per the mmrec_tf serving contract.

    Holds the Keras model, the user and item vocabularies as the lookup
    tables each vocabulary makes itself (``make_tf_lookup``, so serving maps
    every id exactly as the training examples did: unknown ids → index 0,
    which every model treats as "no information", or, for a
    :class:`~mmrec_tf.data.HashedVocabulary`, → their hash bucket), and
    for retrieval models a retrieval index over the catalog's item embeddings
    (see :func:`~mmrec_tf.export.retrieval_index.make_retrieval_index`) used by
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
    slots hold id ``""`` and score ``-inf``. ``index`` picks the search:
    ``"auto"``, ``"brute_force"``, ``"bfloat16"`` or ``"ivf[:nlist=N,nprobe=M]"``
    (see :func:`~mmrec_tf.export.retrieval_index.make_retrieval_index`); an IVF
    index trains its partitions on the catalog items not in ``new_item_ids``
    and only assigns the new ones to them.

    Example:
    >>> module = ServingModule(model, space, k=10)  # doctest: +SKIP
    >>> module.retrieve(tf.constant(["196"]), tf.constant([["242", ""]]))["item_ids"].shape  # doctest: +SKIP
    TensorShape([1, 10])
    """

    def __init__(self, model, space, k: int = 100, index: str = "auto",
                 catalog_ids: Sequence[str] | None = None, new_item_ids: Sequence[str] = ()):
        super().__init__(name="mmrec_serving")
        self.model = model
        self.user_lookup = space.user_vocab.make_tf_lookup("user_vocabulary")
        self.item_lookup = space.item_vocab.make_tf_lookup("item_vocabulary")
        self.num_items = space.num_items
        self.is_retrieval = getattr(model, "task_type", "retrieval") == "retrieval"
        self.max_history = getattr(model, "max_history", None)
        self.rating_levels = int(getattr(model, "rating_levels", 0) or 0)
        specs = {"score": {"user_id": STRING_VECTOR, "history": STRING_MATRIX, "candidates": STRING_MATRIX}}
        if self.rating_levels:
            specs["score"]["history_rating"] = INT_MATRIX
        if self.is_retrieval:
            catalog = _catalog_indices(space, catalog_ids)
            known = ~np.isin(space.item_vocab.ids[catalog - 1], np.asarray(list(new_item_ids), dtype=object))
            self.catalog_item_index = tf.Variable(catalog.astype(np.int32), trainable=False,
                                                  name="catalog_item_index")
            self.index = make_retrieval_index(index, model.all_item_embeddings()[catalog - 1], k,
                                              training_rows=np.flatnonzero(known) if known.any() else None,
                                              exact_vectors=self._catalog_item_vectors)
            self.k = self.index.k
            self.catalog_ids = tf.Variable(np.append(space.item_vocab.ids[catalog - 1], "").astype(str),
                                           dtype=tf.string, trainable=False, name="catalog_item_ids")
            position = np.full(space.num_items + 1, -1, np.int32)
            position[catalog] = np.arange(len(catalog), dtype=np.int32)
            self.catalog_position = tf.Variable(position, trainable=False, name="catalog_position_of_item")
            specs.update({"retrieve": {"user_id": STRING_VECTOR, "history": STRING_MATRIX},
                          "user_embedding": {"user_id": STRING_VECTOR, "history": STRING_MATRIX},
                          "item_embedding": {"item_id": STRING_VECTOR}})
        else:
            if catalog_ids is not None:
                raise ValueError("catalog_ids restricts what `retrieve` returns; ranking models have no "
                                 "retrieve signature")
            self.k = int(min(k, space.num_items))
        self.item_ids = tf.Variable(np.asarray(space.item_vocab.ids, dtype=object).astype(str),
                                    dtype=tf.string, trainable=False, name="item_vocabulary_ids")
        self.modality_names = list(getattr(model, "modality_names", [])) if hasattr(model, "modality_attention") else []
        specs["explain"] = dict(specs["score"])
        self.signature_inputs = {name: tuple(inputs) for name, inputs in specs.items()}
        for name, inputs in specs.items():
            setattr(self, name, tf.function(getattr(self, f"_{name}"), input_signature=list(inputs.values())))

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

    def _score(self, user_id, history, candidates, history_rating=None):
        features, _ = self._features(user_id, history, history_rating)
        scores = self.model.score_candidates(features, self.item_lookup.lookup(candidates))
        return {"scores": tf.cast(scores, tf.float32)}

    def _retrieve(self, user_id, history):
        features, history_index = self._features(user_id, history)
        users = tf.cast(self.model.encode_users(features), tf.float32)
        positions, scores = self.index.search(users, tf.gather(self.catalog_position, history_index))
        empty = tf.shape(self.catalog_ids, out_type=tf.int32)[0] - 1
        item_ids = tf.gather(self.catalog_ids, tf.where(positions >= 0, positions, empty))
        return {"item_ids": item_ids, "scores": scores}

    def _catalog_item_vectors(self, positions):
        """The model's item embeddings of catalog ``positions``: the index re-ranks with them, holding no copy."""
        return self.model.encode_items(tf.gather(self.catalog_item_index, positions))

    def _user_embedding(self, user_id, history):
        features, _ = self._features(user_id, history)
        return {"embedding": tf.cast(self.model.encode_users(features), tf.float32)}

    def _item_embedding(self, item_id):
        return {"embedding": tf.cast(self.model.encode_items(self.item_lookup.lookup(item_id)), tf.float32)}

    def _explain(self, user_id, history, candidates, history_rating=None):
        features, _ = self._features(user_id, history, history_rating)
        outputs = explain_candidates(self.model, features, self.item_lookup.lookup(candidates))
        outputs["history_item_ids"] = tf.gather(tf.concat([[""], self.item_ids], axis=0), features["history"])
        if self.modality_names:
            outputs["modality_names"] = tf.tile(tf.constant([self.modality_names]), [tf.shape(user_id)[0], 1])
        return outputs

    def signatures(self) -> dict:
        """Concrete functions by signature name, ``serving_default`` included."""
        concrete = {name: getattr(self, name).get_concrete_function() for name in self.signature_inputs}
        concrete["serving_default"] = concrete["retrieve" if self.is_retrieval else "score"]
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
