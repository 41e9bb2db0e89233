"""Trainable audio encoder: raw waveform -> log-mel spectrogram -> small CNN -> vector."""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="mmrec_tf")
class LogMelAudioEncoder(keras.layers.Layer):
    """Mono waveforms float32 [B, T] -> float32 [B, output_dim].

    The front end is fixed signal processing in `tf.signal` (so a SavedModel
    takes raw audio): STFT with a periodic Hann window of `frame_length`
    samples every `frame_step` samples (`fft_length` points, frames that would
    run past the end are dropped), magnitude, `num_mel_bins` triangular HTK-mel
    filters between `lower_edge_hertz` and `upper_edge_hertz`
    (`tf.signal.linear_to_mel_weight_matrix`, DC bin excluded), then
    `log(mel + log_offset)`. The defaults (16 kHz, 25 ms / 10 ms frames, 64 bands
    from 125 to 7500 Hz, offset 0.01) are VGGish's front end (Hershey et al.,
    "CNN Architectures for Large-Scale Audio Classification", ICASSP 2017).
    The trainable part: per `filters` entry a 3x3 convolution, batch norm, ReLU
    and 2x2 max pooling over (time, mel), global average pooling, and a dense
    projection.

    Waveforms must hold at least `frame_length` samples.

    Args:
        sample_rate: samples per second of the input.
        frame_length, frame_step, fft_length: STFT parameters, in samples.
        num_mel_bins, lower_edge_hertz, upper_edge_hertz: mel filter bank.
        log_offset: added before the log.
        filters: channels of each convolution block.
        output_dim: width of the output vector.
        **kwargs: Layer arguments.

    Example:
    ```python
    encoder = LogMelAudioEncoder(filters=(8,), output_dim=16)
    encoder(np.zeros((2, 16000), "float32")).shape  # (2, 16)
    ```
    """

    def __init__(self, sample_rate: int = 16000, frame_length: int = 400, frame_step: int = 160,
                 fft_length: int = 512, num_mel_bins: int = 64, lower_edge_hertz: float = 125.0,
                 upper_edge_hertz: float = 7500.0, log_offset: float = 0.01,
                 filters: tuple[int, ...] = (16, 32, 64), output_dim: int = 128, **kwargs):
        super().__init__(**kwargs)
        if fft_length < frame_length:
            raise ValueError(
                f"LogMelAudioEncoder: fft_length ({fft_length}) must be >= frame_length "
                f"({frame_length})"
            )
        if not 0 <= lower_edge_hertz < upper_edge_hertz <= sample_rate / 2:
            raise ValueError(
                "LogMelAudioEncoder: need 0 <= lower_edge_hertz < upper_edge_hertz <= "
                f"sample_rate / 2, got {lower_edge_hertz}, {upper_edge_hertz}, {sample_rate}"
            )
        if not filters or any(int(f) < 1 for f in filters):
            raise ValueError(f"LogMelAudioEncoder: filters must be positive ints, got {filters!r}")
        if log_offset <= 0:
            raise ValueError(f"LogMelAudioEncoder: log_offset must be > 0, got {log_offset}")
        self.sample_rate = sample_rate
        self.frame_length = frame_length
        self.frame_step = frame_step
        self.fft_length = fft_length
        self.num_mel_bins = num_mel_bins
        self.lower_edge_hertz = lower_edge_hertz
        self.upper_edge_hertz = upper_edge_hertz
        self.log_offset = log_offset
        self.filters = tuple(int(f) for f in filters)
        self.output_dim = output_dim
        self.mel_weights = tf.signal.linear_to_mel_weight_matrix(
            num_mel_bins=num_mel_bins,
            num_spectrogram_bins=fft_length // 2 + 1,
            sample_rate=sample_rate,
            lower_edge_hertz=lower_edge_hertz,
            upper_edge_hertz=upper_edge_hertz,
        )
        self.block_layers = []
        for i, width in enumerate(self.filters):
            self.block_layers.extend([
                keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"conv{i}"),
                keras.layers.BatchNormalization(name=f"bn{i}"),
                keras.layers.ReLU(name=f"relu{i}"),
                keras.layers.MaxPooling2D(2, padding="same", name=f"pool{i}"),
            ])
        self.pool = keras.layers.GlobalAveragePooling2D(name="global_pool")
        self.projection = keras.layers.Dense(output_dim, name="projection")

    def log_mel_spectrogram(self, waveforms) -> tf.Tensor:
        """float32 [B, T] -> log-mel spectrogram [B, frames, num_mel_bins].

        `frames = 1 + (T - frame_length) // frame_step`.

        Example:
        ```python
        LogMelAudioEncoder().log_mel_spectrogram(np.zeros((1, 16000), "float32")).shape
        # (1, 98, 64)
        ```
        """
        waveforms = tf.convert_to_tensor(waveforms, dtype=tf.float32)
        stft = tf.signal.stft(
            waveforms,
            frame_length=self.frame_length,
            frame_step=self.frame_step,
            fft_length=self.fft_length,
            window_fn=tf.signal.hann_window,
            pad_end=False,
        )
        mel = tf.tensordot(tf.abs(stft), self.mel_weights, axes=1)
        return tf.math.log(mel + self.log_offset)

    def _check_length(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(
                f"LogMelAudioEncoder: expected waveforms of shape [batch, samples], got "
                f"{tuple(input_shape)}"
            )
        samples = input_shape[1]
        if samples is not None and samples < self.frame_length:
            raise ValueError(
                f"LogMelAudioEncoder: waveforms have {samples} samples, fewer than one frame "
                f"(frame_length={self.frame_length})"
            )

    def build(self, input_shape):
        self._check_length(input_shape)
        shape = (input_shape[0], None, self.num_mel_bins, 1)
        for layer in self.block_layers:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.projection.build((shape[0], shape[-1]))
        self.built = True

    def call(self, waveforms, training=None):
        x = self.log_mel_spectrogram(waveforms)[..., None]
        for layer in self.block_layers:
            x = layer(x, training=training)
        return self.projection(self.pool(x))

    def compute_output_shape(self, input_shape):
        self._check_length(input_shape)
        return (input_shape[0], self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update({
            "sample_rate": self.sample_rate,
            "frame_length": self.frame_length,
            "frame_step": self.frame_step,
            "fft_length": self.fft_length,
            "num_mel_bins": self.num_mel_bins,
            "lower_edge_hertz": self.lower_edge_hertz,
            "upper_edge_hertz": self.upper_edge_hertz,
            "log_offset": self.log_offset,
            "filters": list(self.filters),
            "output_dim": self.output_dim,
        })
        return config
