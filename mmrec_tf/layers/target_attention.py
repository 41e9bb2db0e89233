"""DIN's local activation unit: how relevant is each history item to the target item?"""

from __future__ import annotations

import keras
from keras import ops

from mmrec_tf.layers.dice import activation_layer


@keras.saving.register_keras_serializable(package="mmrec_tf")
class TargetAttention(keras.layers.Layer):
    """Target attention of the Deep Interest Network (Zhou et al., KDD 2018, sec. 4.3).

    For history item vectors ``h_j`` ``[B, L, D]`` and a target item vector
    ``t`` ``[B, D]``, a small MLP maps ``[h_j, t, h_j - t, h_j * t]`` to a
    scalar weight ``w_j``; the user's interest in the target is
    ``sum_j w_j h_j``. As in the paper the weights are by default **not**
    softmax normalised (they need not sum to 1 and may be negative), so the
    pooled vector's size still carries how much of the history is relevant.
    With ``softmax=True`` they are a softmax over the history's positions (sum
    1), as in the authors' public code. Positions where ``mask`` is False
    (padding) get weight exactly 0.

    ``call(history, target, mask=None, values=None)`` returns
    ``(pooled [B, V], weights [B, L])``: the weights come from ``history``
    and ``target`` (the keys, ``[B, L, D]`` and ``[B, D]``), the pooled
    vector is ``sum_j w_j values_j`` (``values`` ``[B, L, V]``, default the
    history itself).

    Args:
        hidden_units: sizes of the MLP's hidden layers.
        activation: ``"dice"``, ``"prelu"`` or a Keras activation name for the hidden layers.
        softmax: normalise the weights over the unmasked positions.

    Example:
    >>> import numpy as np
    >>> attention = TargetAttention(hidden_units=(8,), activation="prelu")
    >>> history = np.random.rand(2, 3, 4).astype("float32")
    >>> pooled, weights = attention(history, np.ones((2, 4), "float32"),
    ...                             mask=np.array([[True, True, False], [True, False, False]]))
    >>> tuple(pooled.shape), tuple(weights.shape), float(weights[1, 1])
    ((2, 4), (2, 3), 0.0)
    >>> normalised = TargetAttention(hidden_units=(8,), activation="prelu", softmax=True)
    >>> _, weights = normalised(history, np.ones((2, 4), "float32"), mask=np.array([[True, True, False]] * 2))
    >>> [round(float(total), 4) for total in weights.numpy().sum(axis=1)], float(weights[0, 2])
    ([1.0, 1.0], 0.0)
    """

    def __init__(self, hidden_units: tuple[int, ...] | list[int] = (80, 40), activation: str = "dice",
                 softmax: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.softmax = bool(softmax)
        self.hidden_units = [int(u) for u in hidden_units]
        if any(u < 1 for u in self.hidden_units):
            raise ValueError(f"TargetAttention: hidden_units must be positive, got {hidden_units}")
        self.activation = activation
        self.dense_layers = [keras.layers.Dense(u, name=f"attention_dense_{i}") for i, u in enumerate(self.hidden_units)]
        self.activation_layers = [activation_layer(activation, name=f"attention_{activation}_{i}", sequence=True)
                                  for i in range(len(self.hidden_units))]
        self.output_layer = keras.layers.Dense(1, name="attention_weight")
        self.supports_masking = True

    def build(self, history_shape, target_shape=None):
        width = 4 * history_shape[-1]
        for dense, activation in zip(self.dense_layers, self.activation_layers):
            dense.build((None, None, width))
            activation.build((None, None, dense.units))
            width = dense.units
        self.output_layer.build((None, None, width))

    def call(self, history, target, mask=None, values=None, training=None):
        history = ops.convert_to_tensor(history)
        values = history if values is None else ops.cast(ops.convert_to_tensor(values), history.dtype)
        target = ops.broadcast_to(ops.expand_dims(ops.cast(target, history.dtype), 1), ops.shape(history))
        hidden = ops.concatenate([history, target, history - target, history * target], axis=-1)
        for dense, activation in zip(self.dense_layers, self.activation_layers):
            hidden = dense(hidden)
            hidden = activation(hidden, training=training, mask=mask) if self.activation == "dice" else activation(hidden)
        weights = ops.squeeze(self.output_layer(hidden), axis=-1)
        if self.softmax:
            # in float32, and a large negative score rather than -inf, so a row of padding only gives no NaN
            scores = ops.cast(weights, "float32")
            if mask is not None:
                scores = ops.where(ops.cast(mask, "bool"), scores, ops.full_like(scores, -1e9))
            weights = ops.cast(ops.softmax(scores, axis=-1), weights.dtype)
        if mask is not None:
            weights = ops.where(ops.cast(mask, "bool"), weights, ops.zeros_like(weights))
        pooled = ops.einsum("bl,bld->bd", weights, values)
        return pooled, weights

    def compute_mask(self, history, target=None, mask=None):
        return None

    def compute_output_shape(self, history_shape, target_shape=None, values_shape=None):
        width = (values_shape or history_shape)[-1]
        return (history_shape[0], width), tuple(history_shape[:2])

    def get_config(self):
        config = super().get_config()
        config.update({"hidden_units": self.hidden_units, "activation": self.activation, "softmax": self.softmax})
        return config
