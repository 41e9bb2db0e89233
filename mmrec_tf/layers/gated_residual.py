"""A residual connection whose update is let through by a learned gate."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mmrec_tf")
class GatedResidual(keras.layers.Layer):
    """``LayerNorm(x + g * h)`` with the gate ``g = sigmoid(W [x; h] + b)``, per feature.

    ``x`` is the residual stream, ``h`` a sublayer's output of the same
    shape (e.g. attention over an item's modality tokens). The gate decides,
    per position and feature, how much of the update to add: near 0 the
    block is an identity, so an update that does not help (say, attention
    over a single present modality) is learned away instead of blurring the
    token. This is the gated skip connection of GTrXL (Parisotto et al.,
    "Stabilizing Transformers for Reinforcement Learning", ICML 2020) in
    its sigmoid-gate form, close to the gated residual network of the
    Temporal Fusion Transformer (Lim et al., 2021). The gate bias starts at
    ``gate_bias`` (negative: mostly closed at first).

    Args:
        layer_norm: normalise the sum (pre-LN blocks set it False).
        gate_bias: initial gate bias.
        epsilon: layer-norm epsilon.

    Example:
    >>> import numpy as np
    >>> layer = GatedResidual()
    >>> x, h = np.ones((2, 3, 4), "float32"), np.zeros((2, 3, 4), "float32")
    >>> tuple(layer(x, h).shape)
    (2, 3, 4)
    """

    def __init__(self, layer_norm: bool = True, gate_bias: float = -1.0, epsilon: float = 1e-6, **kwargs):
        super().__init__(**kwargs)
        self.layer_norm = layer_norm
        self.gate_bias = gate_bias
        self.epsilon = epsilon
        self.gate = None
        self.norm = keras.layers.LayerNormalization(epsilon=epsilon, name="norm") if layer_norm else None

    def build(self, inputs_shape, update_shape=None):
        units = inputs_shape[-1]
        if units is None:
            raise ValueError("GatedResidual needs a known last dimension")
        self.gate = keras.layers.Dense(units, activation="sigmoid", name="gate",
                                       bias_initializer=keras.initializers.Constant(self.gate_bias))
        self.gate.build((*inputs_shape[:-1], 2 * units))
        if self.norm is not None:
            self.norm.build(inputs_shape)

    def call(self, inputs, update):
        gate = self.gate(ops.concatenate([inputs, update], axis=-1))
        merged = inputs + gate * update
        return self.norm(merged) if self.norm is not None else merged

    def gate_values(self, inputs, update):
        """The gate ``g`` alone (``[..., D]``, in (0, 1)), for inspection."""
        return self.gate(ops.concatenate([inputs, update], axis=-1))

    def compute_output_shape(self, inputs_shape, update_shape=None):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update({"layer_norm": self.layer_norm, "gate_bias": self.gate_bias, "epsilon": self.epsilon})
        return config
