"""Dropout of whole modalities per item, so a model learns to work with any of them missing."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mmrec_tf")
class ModalityDropout(keras.layers.Layer):
    """In training, hides whole modalities of each item, as if the item lacked them.

    Inputs are an item's modality tokens ``[..., M, D]`` (one ``D``-vector per
    modality: id, genres, plot, poster, ...) and their presence mask
    ``[..., M]`` (1 = the item has that modality). During training each
    *present* modality ``m`` of each item is dropped independently with
    probability ``rate[m]``: its token is replaced by ``fill[m]`` (what the
    model sees for an item that really lacks the modality, e.g. a learned
    "missing" embedding; zeros by default) and its mask entry set to 0.
    Absent modalities stay as they are. With ``keep_one`` an item never
    loses its last present modality to dropout: when every present modality
    of an item is drawn for dropping, one of them, chosen uniformly, is kept.
    Outside training the inputs pass through unchanged.

    This is the modality-level dropout of multimodal models trained for
    missing inputs (e.g. ModDrop, Neverova et al., IEEE TPAMI 2016): the model
    meets at training time the missing-modality patterns it meets at serving
    time. With the id token among the modalities, it also teaches the model to
    embed items from content alone (cold-start items have no id embedding).

    Args:
        rate: drop probability, one float for every modality or one per
            modality (a list of length ``M``), each in ``[0, 1)``.
        keep_one: never drop an item's last present modality.
        seed: seed of the layer's random generator.

    Returns:
        ``(tokens, present)``: tokens ``[..., M, D]`` and the float mask
        ``[..., M]`` after dropping.

    Example:
    >>> import numpy as np
    >>> layer = ModalityDropout(rate=[0.0, 0.99], seed=1)
    >>> tokens = np.ones((2, 2, 3), "float32")
    >>> present = np.array([[1.0, 1.0], [0.0, 1.0]], "float32")
    >>> out, mask = layer(tokens, present, training=True)
    >>> mask.numpy().tolist()  # item 0 loses modality 1; item 1 keeps its only modality
    [[1.0, 0.0], [0.0, 1.0]]
    >>> out.numpy()[0].tolist()
    [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]
    """

    def __init__(self, rate: float | Sequence[float] = 0.1, keep_one: bool = True, seed: int | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        rates = [float(rate)] if isinstance(rate, (int, float)) else [float(r) for r in rate]
        if not rates or any(not 0.0 <= r < 1.0 for r in rates):
            raise ValueError(f"ModalityDropout: rate must be in [0, 1) (one value or one per modality), got {rate!r}")
        self.rate = float(rate) if isinstance(rate, (int, float)) else rates
        self.keep_one = keep_one
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _rates(self, num_modalities: int):
        if isinstance(self.rate, float):
            return ops.full((num_modalities,), self.rate, dtype=self.compute_dtype)
        if len(self.rate) != num_modalities:
            raise ValueError(f"ModalityDropout: {len(self.rate)} rates given for {num_modalities} modalities "
                             f"(tokens of shape [..., {num_modalities}, D])")
        return ops.convert_to_tensor(self.rate, dtype=self.compute_dtype)

    def call(self, tokens, present, fill=None, training=False):
        present = ops.cast(present, self.compute_dtype)
        if not training:
            return tokens, present
        num_modalities = tokens.shape[-2]
        draw = keras.random.uniform(ops.shape(present), seed=self.seed_generator, dtype=self.compute_dtype)
        drop = ops.cast(draw < self._rates(num_modalities), self.compute_dtype) * present
        if self.keep_one:
            lost_all = ops.cast(ops.all(drop >= present, axis=-1, keepdims=True), self.compute_dtype)
            has_any = ops.cast(ops.any(present > 0, axis=-1, keepdims=True), self.compute_dtype)
            priority = keras.random.uniform(ops.shape(present), seed=self.seed_generator,
                                            dtype=self.compute_dtype) + present
            rescued = ops.one_hot(ops.argmax(priority, axis=-1), num_modalities, dtype=self.compute_dtype)
            drop = drop * (1.0 - rescued * lost_all * has_any)
        fill = ops.zeros_like(tokens) if fill is None else ops.cast(fill, tokens.dtype)
        keep = ops.expand_dims(1.0 - drop, -1)
        return tokens * keep + fill * (1.0 - keep), present * (1.0 - drop)

    def compute_output_shape(self, tokens_shape, present_shape=None, fill_shape=None):
        return tokens_shape, tuple(tokens_shape[:-1])

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "keep_one": self.keep_one, "seed": self.seed})
        return config
