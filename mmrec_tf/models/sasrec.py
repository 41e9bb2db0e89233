"""SASRec: two-tower retrieval whose user tower is a causal Transformer over the user's history."""

from __future__ import annotations

import keras
import keras_hub
import numpy as np
from keras import ops

from mmrec_tf.data.pipeline import NEXT_ITEM_SEQUENCES, next_item_sequences
from mmrec_tf.models.sequence_retrieval_model import SequenceRetrievalModel
from mmrec_tf.model_registration import register_model
from mmrec_tf.tasks.replicas import replica_share


@register_model("sasrec", task="retrieval")
@keras.saving.register_keras_serializable(package="mmrec_tf")
class SASRec(SequenceRetrievalModel):
    """Self-attentive sequential retrieval (Kang & McAuley, ICDM 2018): causal Transformer over the history.

    Item tower: :class:`~mmrec_tf.layers.ItemFeatureEncoder` (item id
    embedding plus the item's feature tables projected to ``embedding_dim``),
    shared with the history. User tower: each history item through the item
    tower, plus a learned position (keras-hub ``PositionEmbedding``; counted
    back from the most recent item, which always takes the last one, as in
    SASRec's left-padded sequences), dropout, ``num_blocks`` keras-hub
    ``TransformerEncoder`` blocks (pre-layer-norm, as SASRec) under a causal
    mask and the padding mask, a final layer norm; the output at the last
    history item is the user vector. Item ``t`` sees items ``0..t`` only.

    Trained with SASRec's objective: every history position predicts the item
    that followed it (its ``example_layout``:
    :func:`~mmrec_tf.training.training_dataset` lays the examples out with
    :func:`~mmrec_tf.data.pipeline.next_item_sequences`, windows of
    ``max_history`` items every ``sequence_stride`` items, by default not
    overlapping; a batch is ``batch_size`` such sequences). The
    loss is the :class:`~mmrec_tf.tasks.Retrieval` softmax over the batch's
    flattened positions (in-batch negatives, logQ correction, accidental-hit
    removal; padding positions are neither queries nor negatives), or with
    ``full_softmax`` a softmax cross-entropy over the whole catalog (exact for
    small catalogs: a ``[positions, num_items]`` score matrix per step, where
    the in-batch one is ``[positions, positions]``). Both sum over positions.
    With ``normalize`` both towers are L2-normalised and scores are cosines
    divided by ``temperature``.

    Cold items: ``zero_untrained_ids`` and ``id_dropout`` (see
    :class:`~mmrec_tf.models.SequenceRetrievalModel`); with
    ``zero_untrained_ids`` the full softmax also leaves untrained items out
    of the catalog it trains against. Serving encodes the history once per
    request and reads the last position, like every retrieval model.

    Example:
    >>> import numpy as np
    >>> model = SASRec(num_users=5, num_items=7, embedding_dim=8, num_heads=2, max_history=4)
    >>> out = model({"user_id": np.array([1, 0]), "history": np.array([[1, 2, 0, 0], [0, 0, 0, 0]]),
    ...              "item_id": np.array([3, 4])})
    >>> tuple(out["user_embedding"].shape)
    (2, 8)
    """

    example_layout = NEXT_ITEM_SEQUENCES  # training_dataset lays its batches out as next-item sequences

    def __init__(self, num_users: int, num_items: int, item_feature_specs: dict | None = None,
                 embedding_dim: int = 64, num_blocks: int = 2, num_heads: int = 1,
                 intermediate_dim: int | None = None, max_history: int = 50, dropout: float = 0.2,
                 normalize: bool = True, temperature: float | None = 0.1, full_softmax: bool = False,
                 logq_correction: bool = True, remove_accidental_hits: bool = True,
                 sequence_stride: int | None = None, id_dropout: float = 0.0, zero_untrained_ids: bool = False,
                 **kwargs):
        if full_softmax and logq_correction:
            raise ValueError("full_softmax scores every item, nothing is sampled: set logq_correction=False")
        super().__init__(num_users=num_users, num_items=num_items, item_feature_specs=item_feature_specs,
                         embedding_dim=embedding_dim, max_history=max_history, dropout=dropout,
                         normalize=normalize, id_dropout=id_dropout, zero_untrained_ids=zero_untrained_ids,
                         temperature=temperature, logq_correction=logq_correction,
                         remove_accidental_hits=remove_accidental_hits, **kwargs)
        self.num_blocks = num_blocks
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.full_softmax = full_softmax
        self.sequence_stride = sequence_stride
        self.position_embedding = keras_hub.layers.PositionEmbedding(max_history, name="position_embedding")
        self.input_dropout = keras.layers.Dropout(dropout, name="input_dropout")
        self.blocks = [keras_hub.layers.TransformerEncoder(intermediate_dim or embedding_dim, num_heads,
                                                           dropout=dropout, normalize_first=True,
                                                           name=f"transformer_block_{index}")
                       for index in range(num_blocks)]
        self.output_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="output_norm")

    def build(self, input_shape=None):
        super().build(input_shape)
        shape = (None, self.max_history, self.embedding_dim)
        self.position_embedding.build(shape)
        for block in self.blocks:
            block.build(shape)
        self.output_norm.build(shape)
        self.built = True

    def encode_sequence(self, history, training=False):
        """``[B, L, D]`` states of a compact history ``[B, L]`` (``L <= max_history``): state ``t`` sees items ``0..t``.

        Inside, each row is moved to the end of the window (padding first, as
        SASRec pads) so the most recent item always sits at the last learned
        position, whatever the history length; states come back in the
        history's own order (oldest first, padding at the end).
        """
        return self._encode(history, training=training)[0]

    def attention_scores(self, history, training=False):
        """Each block's attention over a compact history ``[B, L]``: a list of ``num_blocks`` ``[B, H, L, L]``.

        ``scores[b][n, h, t, s]`` is how much position ``t`` of row ``n``
        attends to position ``s`` in head ``h`` of block ``b``, in the
        history's own order (oldest first, padding at the end, as
        :meth:`encode_sequence` takes it). Causal: 0 above the diagonal, so an
        item never looks at a later one. A present item's row sums to 1 over
        the present items; rows and columns of padding are 0. The user vector
        is the last present item's state, so that item's row of the last block
        is what the user vector finally looked at.

        Example:
        >>> import numpy as np
        >>> model = SASRec(num_users=5, num_items=7, embedding_dim=8, num_heads=2, num_blocks=1, max_history=4)
        >>> (scores,) = model.attention_scores(np.array([[3, 1, 6, 0]]))
        >>> tuple(scores.shape)
        (1, 2, 4, 4)
        >>> np.round(np.asarray(scores)[0, 0].sum(axis=-1), 4).tolist()  # three items, one padding slot
        [1.0, 1.0, 1.0, 0.0]
        >>> float(np.asarray(scores)[0, 0, 0, 1])  # the oldest item cannot see the next one
        0.0
        """
        return self._encode(history, training=training, with_scores=True)[1]

    def _encode(self, history, training=False, with_scores=False):
        """States ``[B, L, D]`` in history order and, ``with_scores``, each block's attention in history order."""
        history = ops.cast(history, "int32")
        width = ops.shape(history)[1]
        slots = ops.expand_dims(ops.arange(width, dtype="int32"), 0)
        shift = width - ops.sum(ops.cast(ops.not_equal(history, 0), "int32"), axis=1, keepdims=True)
        source = slots - shift
        aligned = ops.where(source >= 0, ops.take_along_axis(history, ops.maximum(source, 0), axis=1), 0)
        items = self.item_vectors(aligned, training=training)
        positions = self.position_embedding(items, start_index=self.max_history - width)
        states = self.input_dropout(items + ops.cast(positions, items.dtype), training=training)
        # causal and padding masks in one: a slot sees the present items up to itself; a padding slot sees only
        # itself, so no row of the softmax is empty (XLA's attention turns an all-masked row into NaN)
        causal = ops.expand_dims(ops.tril(ops.ones((width, width), "bool")), 0)
        present = ops.expand_dims(ops.not_equal(aligned, 0), 1)
        own = ops.expand_dims(ops.eye(width, dtype="bool"), 0)
        mask = ops.cast(ops.logical_and(causal, ops.logical_or(present, own)), "int32")
        back = ops.minimum(slots + shift, width - 1)  # history position -> aligned slot
        scores = []
        for block in self.blocks:
            if with_scores:
                states, block_scores = block(states, attention_mask=mask, training=training,
                                             return_attention_scores=True)
                scores.append(self._in_history_order(block_scores, back, history))
            else:
                states = block(states, attention_mask=mask, training=training)
        states = ops.take_along_axis(self.output_norm(states), ops.expand_dims(back, -1), axis=1)
        return states, scores

    @staticmethod
    def _in_history_order(scores, back, history):
        """``[B, H, L, L]`` scores over aligned slots -> over history positions, padding rows and columns 0."""
        scores = ops.cast(scores, "float32")
        heads = ops.shape(scores)[1]
        index = ops.repeat(ops.expand_dims(back, 1), heads, axis=1)  # [B, H, L]
        rows = ops.take_along_axis(scores, ops.expand_dims(index, -1), axis=2)
        both = ops.take_along_axis(rows, ops.expand_dims(index, 2), axis=3)
        present = ops.cast(ops.not_equal(history, 0), "float32")
        return both * present[:, None, :, None] * present[:, None, None, :]

    @staticmethod
    def _last_state(states, history):
        last = ops.maximum(ops.sum(ops.cast(ops.not_equal(history, 0), "int32"), axis=1) - 1, 0)
        return ops.take_along_axis(states, ops.reshape(last, (-1, 1, 1)), axis=1)[:, 0, :]

    def encode_users(self, features, training=False):
        history = self.recent_history(features["history"])
        return self._finish(self._last_state(self.encode_sequence(history, training=training), history))

    def call(self, features, training=False):
        history = self.recent_history(features["history"])
        states = self.encode_sequence(history, training=training)
        outputs = {"user_embedding": self._finish(self._last_state(states, history)),
                   "item_embedding": self.encode_items(features["item_id"], training=training)}
        if "next_items" in features:
            outputs["sequence_embedding"] = self._finish(states)
        return outputs

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The task's softmax over every history position that has a next item (padding rows weigh 0)."""
        if "sequence_embedding" not in y_pred:
            raise ValueError("SASRec trains on next-item sequences (a 'next_items' feature); build batches with "
                             "mmrec_tf.training.training_dataset")
        states = y_pred["sequence_embedding"]
        queries = ops.reshape(states, (-1, ops.shape(states)[-1]))
        targets = ops.reshape(ops.cast(x["next_items"], "int32"), (-1,))
        present = ops.not_equal(targets, 0)
        # padding rows weigh 0 and are masked; item 1 stands in for them so no zero vector is normalised
        positives = self.encode_items(ops.where(present, targets, 1), training=training)
        if self.full_softmax:
            catalog = self.encode_items(ops.arange(1, self.num_items + 1, dtype="int32"), training=training)
            logits = ops.matmul(ops.cast(queries, "float32"), ops.transpose(ops.cast(catalog, "float32")))
            if self.temperature is not None:
                logits = logits / self.temperature
            if self.zero_untrained_ids:
                # items without training interactions are no candidates in training (as with in-batch negatives):
                # scored as negatives, their content-only vectors would be taught to look unlike anyone's taste
                trained = ops.convert_to_tensor(self.item_trained)[1: self.num_items + 1]
                logits = ops.where(ops.expand_dims(ops.greater(trained, 0.0), 0), logits, -1e9)
            row_losses = ops.sparse_categorical_crossentropy(ops.maximum(targets - 1, 0), logits, from_logits=True)
            loss = ops.sum(row_losses * ops.cast(present, "float32"))
        else:
            probability = (ops.reshape(x["next_item_probability"], (-1,)) if self.logq_correction else None)
            loss = self.task(queries, positives, sample_weight=ops.cast(present, "float32"),
                             candidate_sampling_probability=probability,
                             candidate_ids=targets if self.remove_accidental_hits else None,
                             candidate_mask=present)
        if not training:
            catalog = self.encode_items(ops.arange(1, self.num_items + 1, dtype="int32"))
            self.top_k.update_state(y_pred["user_embedding"], y_pred["item_embedding"], catalog)
        if self.losses:
            loss = loss + replica_share(ops.sum(self.losses))
        return loss

    def prepare(self, train_examples) -> None:
        """Next-item frequencies over the training sequences, for logQ; with ``zero_untrained_ids`` the trained items."""
        sequences = next_item_sequences(train_examples, self.max_history, self.sequence_stride)
        targets = sequences.extras["next_items"].ravel()
        counts = np.bincount(targets, minlength=self.num_items + 1).astype(np.float64)
        counts[0] = 0.0
        self.item_probability = (counts / max(counts.sum(), 1.0)).astype(np.float32)
        if self.zero_untrained_ids:
            self.record_trained_items(np.concatenate([targets, np.asarray(sequences.history, np.int64).ravel()]))

    def get_config(self):
        config = super().get_config()
        config.update({"num_blocks": self.num_blocks, "num_heads": self.num_heads,
                       "intermediate_dim": self.intermediate_dim, "full_softmax": self.full_softmax,
                       "sequence_stride": self.sequence_stride})
        return config
