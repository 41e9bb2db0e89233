"""Trainable bag-of-words text encoder, entirely in-graph."""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="mmrec_tf")
class BagOfWordsTextEncoder(keras.layers.Layer):
    """Strings [B] -> float32 [B, embedding_dim]: the mean of learned word vectors.

    `keras.layers.TextVectorization` (lower-cases, strips punctuation, splits on
    whitespace) maps each text to at most `sequence_length` token ids, an
    `Embedding` looks them up, and the vectors of the real tokens are averaged
    (padding id 0 is masked out; out-of-vocabulary words share id 1 and count).
    A text with no token gives the zero vector. The vocabulary lives in the
    graph, so a SavedModel takes raw strings.

    Build the vocabulary with `adapt(texts)` or pass `vocabulary=[...]`.

    Args:
        max_tokens: vocabulary size including the padding and OOV ids.
        embedding_dim: output width.
        sequence_length: tokens kept per text (the rest are dropped).
        vocabulary: optional list of words (without padding/OOV entries).
        **kwargs: Layer arguments.

    Example:
    ```python
    encoder = BagOfWordsTextEncoder(max_tokens=100, embedding_dim=8)
    encoder.adapt(["rock indie", "jazz piano", "rock"])
    encoder(tf.constant(["rock piano", ""])).shape  # (2, 8)
    ```
    """

    def __init__(self, max_tokens: int = 20000, embedding_dim: int = 64,
                 sequence_length: int = 64, vocabulary: list[str] | None = None, **kwargs):
        super().__init__(**kwargs)
        if max_tokens < 3:
            raise ValueError(f"BagOfWordsTextEncoder: max_tokens must be >= 3, got {max_tokens}")
        if embedding_dim < 1 or sequence_length < 1:
            raise ValueError(
                "BagOfWordsTextEncoder: embedding_dim and sequence_length must be positive, got "
                f"{embedding_dim} and {sequence_length}"
            )
        self.max_tokens = max_tokens
        self.embedding_dim = embedding_dim
        self.sequence_length = sequence_length
        self.vocabulary = list(vocabulary) if vocabulary is not None else None
        self.vectorizer = keras.layers.TextVectorization(
            max_tokens=max_tokens,
            output_mode="int",
            output_sequence_length=sequence_length,
            vocabulary=self.vocabulary,
            name="vectorizer",
        )
        self.embedding = keras.layers.Embedding(max_tokens, embedding_dim, name="embedding")

    def adapt(self, texts, batch_size: int | None = None) -> None:
        """Learns the vocabulary (most frequent words first) from `texts`.

        Args:
            texts: a list/array of strings or a `tf.data.Dataset` of strings.
            batch_size: batch size used to read a list (default: all at once).

        Example:
        ```python
        BagOfWordsTextEncoder(max_tokens=10).adapt(["a b", "b c"])
        ```
        """
        self.vectorizer.adapt(texts, batch_size=batch_size)

    def get_vocabulary(self) -> list[str]:
        """The vocabulary, index = token id ("" = padding, "[UNK]" = out of vocabulary).

        Example:
        ```python
        BagOfWordsTextEncoder(vocabulary=["rock"]).get_vocabulary()  # ['', '[UNK]', 'rock']
        ```
        """
        return [str(token) for token in self.vectorizer.get_vocabulary()]

    def build(self, input_shape):
        self.embedding.build((None, self.sequence_length))
        self.built = True

    def call(self, texts):
        token_ids = self.vectorizer(texts)
        vectors = self.embedding(token_ids)
        mask = tf.cast(tf.not_equal(token_ids, 0), vectors.dtype)[:, :, None]
        total = tf.reduce_sum(vectors * mask, axis=1)
        count = tf.reduce_sum(mask, axis=1)
        return tf.math.divide_no_nan(total, count)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.embedding_dim)

    def get_config(self):
        config = super().get_config()
        config.update({
            "max_tokens": self.max_tokens,
            "embedding_dim": self.embedding_dim,
            "sequence_length": self.sequence_length,
            "vocabulary": self.vocabulary,
        })
        return config
