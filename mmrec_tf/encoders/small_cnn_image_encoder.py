"""A small trainable convolutional image encoder."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="mmrec_tf")
class SmallCNNImageEncoder(keras.layers.Layer):
    """Images [B, H, W, C] -> float32 [B, output_dim], trained from scratch.

    One block per entry of `filters`: 3x3 convolution ("same"), batch
    normalisation, ReLU, 2x2 max pooling; then global average pooling and a dense
    projection. Any input size works. Feed normalised pixels (e.g.
    `decode_image(..., normalization="unit")`).

    Args:
        filters: channels of each convolution block.
        output_dim: width of the output vector.
        dropout: dropout rate before the projection (training only).
        **kwargs: Layer arguments.

    Example:
    ```python
    encoder = SmallCNNImageEncoder(filters=(8, 16), output_dim=32)
    encoder(np.zeros((2, 64, 64, 3), "float32")).shape  # (2, 32)
    ```
    """

    def __init__(self, filters: tuple[int, ...] = (32, 64, 128), output_dim: int = 128,
                 dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        if not filters or any(int(f) < 1 for f in filters):
            raise ValueError(
                f"SmallCNNImageEncoder: filters must be a non-empty list of positive ints, "
                f"got {filters!r}"
            )
        if output_dim < 1:
            raise ValueError(f"SmallCNNImageEncoder: output_dim must be positive, got {output_dim}")
        self.filters = tuple(int(f) for f in filters)
        self.output_dim = output_dim
        self.dropout = dropout
        self.block_layers = []
        for i, width in enumerate(self.filters):
            self.block_layers.extend([
                keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"conv{i}"),
                keras.layers.BatchNormalization(name=f"bn{i}"),
                keras.layers.ReLU(name=f"relu{i}"),
                keras.layers.MaxPooling2D(2, padding="same", name=f"pool{i}"),
            ])
        self.pool = keras.layers.GlobalAveragePooling2D(name="global_pool")
        self.dropout_layer = keras.layers.Dropout(dropout, name="dropout")
        self.projection = keras.layers.Dense(output_dim, name="projection")

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.block_layers:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.projection.build((shape[0], shape[-1]))
        self.built = True

    def call(self, images, training=None):
        x = images
        for layer in self.block_layers:
            x = layer(x, training=training)
        x = self.pool(x)
        x = self.dropout_layer(x, training=training)
        return self.projection(x)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": list(self.filters),
            "output_dim": self.output_dim,
            "dropout": self.dropout,
        })
        return config
