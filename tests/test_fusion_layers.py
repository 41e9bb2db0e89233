"""The fusion layers by hand: modality dropout, gated residual, modality cross-attention."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from mmrec_tf.layers.gated_residual import GatedResidual
from mmrec_tf.layers.modality_cross_attention import ModalityCrossAttention
from mmrec_tf.layers.modality_dropout import ModalityDropout


def numpy(x):
    return keras.ops.convert_to_numpy(x)


def round_trip(layer):
    """A layer rebuilt from ``serialize_keras_object`` (what a ``.keras`` file stores)."""
    return keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))


# === ModalityDropout ===


def test_modality_dropout_respects_presence_and_replaces_with_fill():
    rng = np.random.default_rng(0)
    tokens = rng.normal(size=(5000, 4, 3)).astype("float32")
    present = (rng.random((5000, 4)) < 0.6).astype("float32")
    fill = np.arange(12, dtype="float32").reshape(4, 3) + 100.0
    layer = ModalityDropout(rate=[0.0, 0.5, 0.5, 0.9], seed=3)
    out, mask = (numpy(t) for t in layer(tokens, present, fill=fill, training=True))

    assert np.all(mask <= present), "dropout never makes an absent modality present"
    dropped = (present == 1) & (mask == 0)
    np.testing.assert_array_equal(out[dropped], np.broadcast_to(fill, out.shape)[dropped])
    np.testing.assert_array_equal(out[~dropped], tokens[~dropped])
    assert not dropped[:, 0].any(), "rate 0 keeps modality 0"
    np.testing.assert_array_equal(mask.sum(axis=1) > 0, present.sum(axis=1) > 0)  # keep_one
    # Items with two or more present modalities lose modality 1 at the rate asked for (keep_one rescues
    # only items that would lose everything, which needs modality 0 absent).
    has_zero = present[:, 0] == 1
    share = dropped[has_zero & (present[:, 1] == 1), 1].mean()
    assert abs(share - 0.5) < 0.04, share


def test_modality_dropout_is_the_identity_outside_training_and_checks_rates():
    tokens = np.ones((2, 3, 2), "float32")
    present = np.array([[1, 0, 1], [1, 1, 1]], "float32")
    out, mask = ModalityDropout(rate=0.9)(tokens, present, training=False)
    np.testing.assert_array_equal(numpy(out), tokens)
    np.testing.assert_array_equal(numpy(mask), present)
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\)"):
        ModalityDropout(rate=1.0)
    with pytest.raises(ValueError, match="2 rates given for 3 modalities"):
        ModalityDropout(rate=[0.1, 0.2])(tokens, present, training=True)
    layer = round_trip(ModalityDropout(rate=[0.1, 0.2, 0.3], keep_one=False, seed=7))
    assert (layer.rate, layer.keep_one, layer.seed) == ([0.1, 0.2, 0.3], False, 7)


def test_modality_dropout_without_keep_one_can_empty_an_item():
    present = np.ones((2000, 2), "float32")
    _, mask = ModalityDropout(rate=0.5, keep_one=False, seed=0)(np.ones((2000, 2, 1), "float32"), present,
                                                                training=True)
    emptied = (numpy(mask).sum(axis=1) == 0).mean()
    assert abs(emptied - 0.25) < 0.04, emptied


# === GatedResidual ===


def test_gated_residual_by_hand():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 3, 4)).astype("float32")
    h = rng.normal(size=(2, 3, 4)).astype("float32")
    layer = GatedResidual(gate_bias=-1.0)
    layer.build(x.shape)
    kernel = rng.normal(size=(8, 4)).astype("float32")
    layer.gate.kernel.assign(kernel)
    gate = 1.0 / (1.0 + np.exp(-(np.concatenate([x, h], axis=-1) @ kernel - 1.0)))
    merged = x + gate * h
    expected = (merged - merged.mean(-1, keepdims=True)) / np.sqrt(merged.var(-1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(numpy(layer(x, h)), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(numpy(layer.gate_values(x, h)), gate, rtol=1e-5, atol=1e-6)
    plain = GatedResidual(layer_norm=False)
    plain.build(x.shape)
    plain.gate.kernel.assign(np.zeros((8, 4), "float32"))
    np.testing.assert_allclose(numpy(plain(x, h)), x + h / (1.0 + np.exp(1.0)), rtol=1e-5, atol=1e-6)
    assert round_trip(plain).get_config() == plain.get_config()


# === ModalityCrossAttention ===


@pytest.fixture(scope="module")
def attention_case():
    rng = np.random.default_rng(2)
    layer = ModalityCrossAttention(num_heads=2, key_dim=3, value_dim=2)
    layer.build(user_state_shape=(None, 5), tokens_shape=(None, None, 4, 6))
    layer.modality_embedding.assign(rng.normal(size=(4, 6)).astype("float32"))
    user = rng.normal(size=(3, 5)).astype("float32")
    tokens = rng.normal(size=(3, 7, 4, 6)).astype("float32")
    present = (rng.random((3, 7, 4)) < 0.7).astype("float32")
    present[0, 0] = [1, 0, 0, 0]
    present[0, 1] = [0, 0, 0, 0]
    return layer, user, tokens, present


def test_cross_attention_weights_and_scores_by_hand(attention_case):
    layer, user, tokens, present = attention_case
    scores, weights = (numpy(t) for t in layer(user, tokens, present))
    context = numpy(layer.contextualize(tokens, present))

    def dense(sub, x):
        return x @ numpy(sub.kernel) + numpy(sub.bias)

    def phi(x):
        return np.where(x > 0, x + 1.0, np.exp(x))

    keys = phi(dense(layer.key, context)).reshape(3, 7, 4, 2, 3) * present[..., None, None]
    values = dense(layer.value, context).reshape(3, 7, 4, 2, 2)
    queries = phi(dense(layer.query, user)).reshape(3, 2, 3)
    user_values = dense(layer.user_value, user).reshape(3, 2, 2)
    attention = np.einsum("bhk,bcmhk->bcmh", queries, keys)
    agreement = np.einsum("bhv,bcmhv->bcmh", user_values, values)
    np.testing.assert_allclose(scores, (attention * agreement).sum(axis=(2, 3)), rtol=1e-4, atol=1e-5)
    expected_weights = (attention / np.maximum(attention.sum(axis=2, keepdims=True), 1e-12)).mean(axis=-1)
    np.testing.assert_allclose(weights, expected_weights, rtol=1e-4, atol=1e-6)
    assert np.all(weights[present == 0] == 0.0), "absent modalities get no attention"
    np.testing.assert_allclose(weights.sum(axis=-1), present.max(axis=-1), rtol=1e-5)  # 1, or 0 with none present
    np.testing.assert_allclose(weights[0, 0], [1.0, 0.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_array_equal(weights[0, 1], [0.0, 0.0, 0.0, 0.0])


def test_cross_attention_score_is_a_dot_product_of_the_two_towers(attention_case):
    layer, user, tokens, present = attention_case
    scores, _ = layer(user, tokens, present)
    items = numpy(layer.candidate_vectors(layer.contextualize(tokens, present), present))
    users = numpy(layer.query_vectors(user))
    assert items.shape == (3, 7, layer.vector_size) and users.shape == (3, 2 * 3 * 2)
    np.testing.assert_allclose(np.einsum("bd,bcd->bc", users, items), numpy(scores), rtol=1e-4, atol=1e-5)


def test_self_attention_ignores_absent_modalities(attention_case):
    layer, _, tokens, present = attention_case
    changed = tokens.copy()
    absent = present == 0
    changed[absent] += 5.0
    before = numpy(layer.contextualize(tokens, present))
    after = numpy(layer.contextualize(changed, present))
    np.testing.assert_allclose(after[~absent], before[~absent], rtol=1e-4, atol=1e-5)


def test_cross_attention_round_trip_keeps_config(attention_case):
    layer = attention_case[0]
    rebuilt = round_trip(layer)
    assert rebuilt.get_config() == layer.get_config()
    assert (rebuilt.num_heads, rebuilt.key_dim, rebuilt.value_dim) == (2, 3, 2)
