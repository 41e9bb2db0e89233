"""Dice, the data-adaptive activation of the Deep Interest Network."""

from __future__ import annotations

import keras
from keras import ops

@keras.saving.register_keras_serializable(package="mmrec_tf")
class Dice(keras.layers.Layer):
    """Dice activation (Zhou et al., "Deep Interest Network", KDD 2018, eq. 8).

    ``f(s) = p(s) * s + (1 - p(s)) * alpha * s`` with
    ``p(s) = sigmoid((s - E[s]) / sqrt(Var[s] + epsilon))``. PReLU switches
    at 0; Dice switches smoothly at the data's mean. ``E[s]`` and ``Var[s]``
    are per-channel (last axis) statistics of the mini-batch in training and
    their moving averages at inference, like batch normalisation; ``alpha`` is
    learned per channel, starting at 0. Positions where ``mask`` is False
    (padding) are left out of the batch statistics.

    Args:
        momentum: moving-average momentum (``moving = momentum * moving + (1 - momentum) * batch``).
        epsilon: added to the variance; the paper uses 1e-8.

    Example:
    >>> import numpy as np
    >>> dice = Dice()
    >>> # batch mean 0, variance 1, alpha 0 at the start: f(s) = sigmoid(s) * s
    >>> [round(float(v), 4) for v in dice(np.array([[-1.0], [1.0]], "float32"), training=True)[:, 0]]
    [-0.2689, 0.7311]
    """

    def __init__(self, momentum: float = 0.99, epsilon: float = 1e-8, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= momentum < 1:
            raise ValueError(f"Dice: momentum must be in [0, 1), got {momentum}")
        if epsilon <= 0:
            raise ValueError(f"Dice: epsilon must be positive, got {epsilon}")
        self.momentum = momentum
        self.epsilon = epsilon
        self.supports_masking = True

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(f"Dice: the last axis must have a known size, got input shape {input_shape}")
        self.alpha = self.add_weight(name="alpha", shape=(channels,), initializer="zeros")
        # float32 statistics, read as float32 under a mixed policy too (no autocast to float16)
        self.moving_mean = self.add_weight(name="moving_mean", shape=(channels,), initializer="zeros",
                                           trainable=False, autocast=False)
        self.moving_variance = self.add_weight(name="moving_variance", shape=(channels,), initializer="ones",
                                               trainable=False, autocast=False)

    def call(self, inputs, training=None, mask=None):
        inputs = ops.convert_to_tensor(inputs)
        if training:
            axes = tuple(range(len(inputs.shape) - 1))
            values = ops.cast(inputs, "float32")
            if mask is None:
                mean = ops.mean(values, axis=axes)
                variance = ops.var(values, axis=axes)
            else:
                weights = ops.expand_dims(ops.cast(mask, "float32"), -1)
                count = ops.maximum(ops.sum(weights, axis=axes), 1.0)
                mean = ops.sum(values * weights, axis=axes) / count
                variance = ops.sum(ops.square(values - mean) * weights, axis=axes) / count
            self.moving_mean.assign(self.momentum * self.moving_mean + (1.0 - self.momentum) * mean)
            self.moving_variance.assign(self.momentum * self.moving_variance + (1.0 - self.momentum) * variance)
        else:
            mean, variance = self.moving_mean, self.moving_variance
        mean = ops.cast(mean, inputs.dtype)
        scale = ops.cast(ops.rsqrt(ops.cast(variance, "float32") + self.epsilon), inputs.dtype)
        gate = ops.sigmoid((inputs - mean) * scale)
        alpha = ops.cast(self.alpha, inputs.dtype)
        return gate * inputs + (1.0 - gate) * alpha * inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"momentum": self.momentum, "epsilon": self.epsilon})
        return config


def activation_layer(kind: str, name: str, sequence: bool = False) -> keras.layers.Layer:
    """A hidden-layer activation: ``"dice"`` (:class:`Dice`), ``"prelu"`` or any Keras activation name.

    PReLU starts at slope 0.25 (He et al., ICCV 2015) with one slope per
    channel; ``sequence=True`` shares it over axis 1 of ``[B, L, units]``
    inputs so any length ``L`` works.

    Example:
    >>> type(activation_layer("prelu", name="act")).__name__
    'PReLU'
    >>> activation_layer("sigmoid", name="act").get_config()["activation"]
    'sigmoid'
    """
    if kind == "dice":
        return Dice(name=name)
    if kind == "prelu":
        return keras.layers.PReLU(alpha_initializer=keras.initializers.Constant(0.25),
                                  shared_axes=[1] if sequence else None, name=name)
    try:
        keras.activations.get(kind)
    except ValueError as error:
        raise ValueError(f"activation must be 'dice', 'prelu' or a Keras activation name, got {kind!r}") from error
    return keras.layers.Activation(kind, name=name)
