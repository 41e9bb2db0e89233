"""LogMelAudioEncoder (front end checked against numpy) and HubEncoder (tiny SavedModel)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmrec_tf.encoders import HubEncoder, LogMelAudioEncoder

# === Log-mel audio encoder ===


def _hertz_to_mel(hertz):
    return 1127.0 * np.log1p(np.asarray(hertz, dtype="float64") / 700.0)


def _numpy_log_mel(waveform, sample_rate, frame_length, frame_step, fft_length, num_mel_bins,
                   lower_hertz, upper_hertz, log_offset):
    """Periodic-Hann STFT magnitude, HTK-mel triangles (DC bin excluded), log(mel + offset)."""
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(frame_length) / frame_length)
    num_frames = 1 + (len(waveform) - frame_length) // frame_step
    frames = np.stack([waveform[i * frame_step:i * frame_step + frame_length]
                       for i in range(num_frames)])
    magnitude = np.abs(np.fft.rfft(frames * window, n=fft_length))
    num_bins = fft_length // 2 + 1
    bin_mel = _hertz_to_mel(np.linspace(0.0, sample_rate / 2, num_bins)[1:])[:, None]
    edges = np.linspace(_hertz_to_mel(lower_hertz), _hertz_to_mel(upper_hertz), num_mel_bins + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    weights = np.maximum(0.0, np.minimum((bin_mel - lower) / (center - lower),
                                         (upper - bin_mel) / (upper - center)))
    weights = np.concatenate([np.zeros((1, num_mel_bins)), weights])
    return np.log(magnitude @ weights + log_offset)


def test_log_mel_front_end_matches_numpy():
    params = dict(sample_rate=8000, frame_length=200, frame_step=80, fft_length=256,
                  num_mel_bins=16, lower_edge_hertz=100.0, upper_edge_hertz=3800.0,
                  log_offset=0.01)
    encoder = LogMelAudioEncoder(filters=(2,), output_dim=3, **params)
    rng = np.random.default_rng(0)
    waveforms = rng.normal(scale=0.3, size=(2, 1000)).astype("float32")
    got = encoder.log_mel_spectrogram(waveforms).numpy()
    assert got.shape == (2, 1 + (1000 - 200) // 80, 16)
    for row in range(2):
        expected = _numpy_log_mel(waveforms[row].astype("float64"), 8000, 200, 80, 256, 16,
                                  100.0, 3800.0, 0.01)
        np.testing.assert_allclose(got[row], expected, atol=2e-4)


def test_log_mel_puts_a_tone_in_its_band():
    encoder = LogMelAudioEncoder(filters=(2,), output_dim=3)
    t = np.arange(16000) / 16000.0
    tone = np.sin(2 * np.pi * 1000.0 * t).astype("float32")[None]
    band = int(np.argmax(encoder.log_mel_spectrogram(tone).numpy()[0].mean(axis=0)))
    edges = np.linspace(_hertz_to_mel(125.0), _hertz_to_mel(7500.0), 64 + 2)
    centre_hertz = 700.0 * np.expm1(edges[1 + band] / 1127.0)
    assert abs(centre_hertz - 1000.0) < 60.0


def test_log_mel_encoder_trains_saves_and_checks_length(tmp_path):
    encoder = LogMelAudioEncoder(filters=(4, 8), output_dim=5)
    audio = keras.Input((4000,), name="audio")
    model = keras.Model(audio, encoder(audio))
    assert model.output.shape == (None, 5)
    x = np.random.default_rng(1).normal(size=(2, 4000)).astype("float32")
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(x, training=True) ** 2)
    gradients = tape.gradient(loss, encoder.trainable_weights)
    assert len(gradients) == 8 and all(float(tf.reduce_sum(tf.abs(g))) > 0 for g in gradients)
    model.save(tmp_path / "audio.keras")
    np.testing.assert_allclose(keras.models.load_model(tmp_path / "audio.keras")(x), model(x),
                               atol=1e-5)
    config = encoder.get_config()
    assert config["num_mel_bins"] == 64 and config["filters"] == [4, 8]
    assert LogMelAudioEncoder.from_config(config).get_config() == config
    with pytest.raises(ValueError, match="300 samples, fewer than one frame"):
        LogMelAudioEncoder()(np.zeros((1, 300), "float32"))
    with pytest.raises(ValueError, match="upper_edge_hertz <= sample_rate / 2"):
        LogMelAudioEncoder(sample_rate=8000)


# === Hub encoder ===


class _TinyModule(tf.Module):
    def __init__(self):
        super().__init__()
        self.weight = tf.Variable(np.arange(6, dtype="float32").reshape(3, 2))

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
    def __call__(self, x):
        return x @ self.weight

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="features")])
    def serve(self, features):
        return {"embedding": features @ self.weight, "total": tf.reduce_sum(features, axis=1)}


@pytest.fixture(scope="module")
def saved_model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hub") / "tiny"
    module = _TinyModule()
    tf.saved_model.save(module, str(folder), signatures={"serving_default": module.serve})
    return str(folder)


def test_hub_encoder_calls_the_module_or_a_signature(saved_model_dir):
    x = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 0.5]], dtype="float32")
    expected = x @ np.arange(6, dtype="float32").reshape(3, 2)
    np.testing.assert_allclose(HubEncoder(saved_model_dir)(x), expected)
    by_signature = HubEncoder(saved_model_dir, signature="serving_default", output_key="embedding")
    np.testing.assert_allclose(by_signature(x), expected)
    assert by_signature.input_key == "features"
    totals = HubEncoder(saved_model_dir, signature="serving_default", output_key="total")
    np.testing.assert_allclose(totals(x), x.sum(axis=1))


def test_hub_encoder_is_frozen_serialisable_and_exportable(saved_model_dir, tmp_path):
    encoder = HubEncoder(saved_model_dir, signature="serving_default", output_key="embedding")
    features = keras.Input((3,), name="features")
    model = keras.Model(features, encoder(features))
    assert model.output.shape == (None, 2)
    assert model.trainable_weights == [] and not encoder.trainable
    config = encoder.get_config()
    assert (config["handle"], config["signature"], config["input_key"], config["output_key"]) == (
        saved_model_dir, "serving_default", "features", "embedding")
    x = np.ones((2, 3), "float32")
    model.save(tmp_path / "hub.keras")
    np.testing.assert_allclose(keras.models.load_model(tmp_path / "hub.keras")(x), model(x))
    model.export(str(tmp_path / "export"), verbose=False)
    reloaded = tf.saved_model.load(str(tmp_path / "export"))
    np.testing.assert_allclose(reloaded.serve(tf.constant(x)), [[6.0, 9.0], [6.0, 9.0]])


def test_hub_encoder_errors_are_explicit(saved_model_dir, tmp_path):
    x = np.ones((1, 3), "float32")
    with pytest.raises(ValueError, match=r"returns \['embedding', 'total'\]; pass `output_key`"):
        HubEncoder(saved_model_dir, signature="serving_default")(x)
    with pytest.raises(ValueError, match="has no output 'logits'"):
        HubEncoder(saved_model_dir, signature="serving_default", output_key="logits")(x)
    with pytest.raises(ValueError, match=r"no signature 'encode'; it has \['serving_default'\]"):
        HubEncoder(saved_model_dir, signature="encode")
    with pytest.raises(ValueError, match="no input 'text'"):
        HubEncoder(saved_model_dir, signature="serving_default", input_key="text")
    with pytest.raises(ValueError, match="frozen"):
        HubEncoder(saved_model_dir, trainable=True)
    with pytest.raises(FileNotFoundError, match="without saved_model.pb"):
        HubEncoder(str(tmp_path))
