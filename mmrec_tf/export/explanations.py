"""What the ``explain`` serving signature computes, for every catalog model.

One signature, ``explain(user_id, history, candidates)``, answers "why this
item for this user" with weights over the user's history:

- models with target attention over the history (DIN, and any model with an
  ``attention_weights(features, candidates)`` method): the attention weight
  of each history position for each candidate (they sum to 1 over the real
  history items);
- every other model (two-tower, sequence and multimodal retrieval models,
  ranking models without attention): the cosine similarity between each
  candidate's item vector and each history item's vector, in the model's
  own item space (``encode_items`` for retrieval models, the item encoder or
  item embedding for ranking models): the history items closest to a
  recommendation are the ones it resembles, as in item-based explanations
  (Sarwar et al., WWW 2001);
- cross-attention fusion models (a ``modality_attention`` method) add
  ``modality_weights [B, C, M]``: how much the user's query attends to each
  modality of each candidate, with ``modality_names [B, M]``.

Padding positions of the history get weight 0 (their ``history_item_ids``
entry is ``""``).
"""

from __future__ import annotations

import tensorflow as tf
from keras import ops

from mmrec_tf.model_registration import model_task_kind

ATTENTION = "attention"
SIMILARITY = "similarity"


def explanation_kind(model) -> str:
    """``"attention"`` for models with target attention over the history, else ``"similarity"``.

    Example:
    >>> from mmrec_tf.data.sources import make_synthetic
    >>> from mmrec_tf import FeatureSpace, create_model
    >>> space = FeatureSpace.build(make_synthetic(num_users=4, num_items=6, num_clusters=2))
    >>> explanation_kind(create_model("din", space=space)), explanation_kind(create_model("two_tower", space=space))
    ('attention', 'similarity')
    """
    return ATTENTION if hasattr(model, "attention_weights") else SIMILARITY


def item_vectors(model, item_index):
    """The vectors in which ``explain`` compares items: the model's own item representation of ``item_index``."""
    if model_task_kind(model).retrieves:
        return model.encode_items(item_index)
    for name in ("item_encoder", "item_embedding"):
        layer = getattr(model, name, None)
        if layer is not None:
            return layer(item_index)
    raise ValueError(f"{type(model).__name__} has no item representation to explain with "
                     "(expected encode_items, item_encoder or item_embedding)")


def history_similarity(model, history, candidates):
    """Cosine similarity ``[B, C, L]`` of each candidate's item vector to each history item's, 0 at padding.

    ``history [B, L]`` and ``candidates [B, C]`` are item indices.
    """
    history = tf.cast(history, tf.int32)
    past = tf.math.l2_normalize(tf.cast(item_vectors(model, history), tf.float32), axis=-1)
    wanted = tf.math.l2_normalize(tf.cast(item_vectors(model, tf.cast(candidates, tf.int32)), tf.float32), axis=-1)
    similarity = tf.einsum("bcd,bld->bcl", wanted, past)
    return similarity * tf.cast(tf.not_equal(history, 0), tf.float32)[:, None, :]


def explain_candidates(model, features: dict, candidates) -> dict:
    """``{"weights" [B, C, L]}`` (plus ``modality_weights`` for cross-attention fusion) for index inputs."""
    if explanation_kind(model) == ATTENTION:
        weights = model.attention_weights(features, candidates)
    else:
        weights = history_similarity(model, features["history"], candidates)
    outputs = {"weights": tf.cast(weights, tf.float32)}
    if hasattr(model, "modality_attention"):
        outputs["modality_weights"] = tf.cast(ops.convert_to_tensor(model.modality_attention(features, candidates)),
                                              tf.float32)
    return outputs
