"""Re-ranking inside `retrieve`: hand-computed greedy orders, strength 0 = plain retrieve, exports pass serve-check."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from mmrec_tf.evaluation.recommendation_lists import item_popularity
from mmrec_tf.export.reranking import (CalibratedReranker, LongTailReranker, MMRReranker, make_reranker,
                                       parse_rerank_spec)
from mmrec_tf.export.saved_model import export_model
from mmrec_tf.export.serve_check import serve_check
from mmrec_tf.export.serving_module import ServingModule
from mmrec_tf.registry import create_model

from conftest import TINY_MAX_HISTORY

SHORTLIST = tf.constant([[0, 1, 2, 3]])
SCORES = tf.constant([[4.0, 3.0, 2.0, 1.0]])  # relevance after min-max scaling: 1, 2/3, 1/3, 0


def test_mmr_greedy_order_on_four_items():
    # item 1 duplicates item 0; item 2 is 0.6 along item 0; item 3 is orthogonal to item 0.
    embeddings = np.array([[1, 0], [1, 0], [0.6, 0.8], [0, 1]], np.float32)
    # lambda .5: pick 0; gains .5 rel - .5 max-sim: 1: 1/3 - 1/2, 2: 1/6 - .3, 3: 0 - 0 -> 3;
    # then max-sim [1, 1, .8, 1]: 1: -1/6, 2: 1/6 - .4 -> 1; then 2.
    positions, scores = MMRReranker(embeddings, strength=0.5, k=4).rerank(SHORTLIST, SCORES)
    assert positions.numpy().tolist() == [[0, 3, 1, 2]]
    assert scores.numpy().tolist() == [[4.0, 1.0, 3.0, 2.0]]  # the model's scores of the chosen items
    assert MMRReranker(embeddings, strength=0.0, k=4).rerank(SHORTLIST, SCORES)[0].numpy().tolist() == [[0, 1, 2, 3]]


def test_long_tail_boost_by_hand():
    # lambda .5, tail = items 2 and 3: .5 rel + .5 tail = .5, 1/3, 2/3, .5 -> 2, then 0 and 3 tie (lower slot first)
    positions, _ = LongTailReranker(np.array([0, 0, 1, 1]), strength=0.5, k=3).rerank(SHORTLIST, SCORES)
    assert positions.numpy().tolist() == [[2, 0, 3]]


def test_calibrated_list_follows_the_history_genre_mix():
    genres = np.array([[0, 0], [1, 0], [1, 0], [0, 1]], np.float32)  # vocab index 1, 2: genre A; 3: genre B
    reranker = CalibratedReranker(genres, catalog_index=np.array([1, 2, 3]), strength=0.5, k=2)
    history = tf.constant([[1, 3, 0]])  # p = (1/2, 1/2)
    # step 1: every single-genre list has KL 1.9585 -> the most relevant item 0 (A);
    # step 2: item 1 (A) gains .5 (1 + .5) - .5 * 1.9585 = -.229, item 2 (B) makes q = p: .5 (1 + 0) - 0 = .5
    positions, _ = reranker.rerank(tf.constant([[0, 1, 2]]), tf.constant([[3.0, 2.0, 1.0]]), history)
    assert positions.numpy().tolist() == [[0, 2]]
    plain = CalibratedReranker(genres, np.array([1, 2, 3]), strength=0.0, k=2)
    assert plain.rerank(tf.constant([[0, 1, 2]]), tf.constant([[3.0, 2.0, 1.0]]), history)[0].numpy().tolist() == [[0, 1]]


def test_empty_shortlist_slots_stay_empty():
    positions, scores = MMRReranker(np.eye(3, dtype=np.float32), 0.5, k=3).rerank(
        tf.constant([[2, 0, -1]]), tf.constant([[1.0, 0.5, -np.inf]]))
    assert positions.numpy().tolist() == [[2, 0, -1]] and scores.numpy()[0, 2] == -np.inf


def _min_max(scores, valid):
    low, high = scores[valid].min(), scores[valid].max()
    return (scores - low) / (high - low) if high > low else np.ones_like(scores)


def _greedy(num_slots, valid, k, gain_of):
    """The literal greedy loop: add the valid, unchosen slot with the largest ``gain_of(chosen, slot)``."""
    chosen = []
    for _ in range(k):
        gains = {slot: gain_of(chosen, slot) for slot in range(num_slots) if valid[slot] and slot not in chosen}
        if not gains:
            break
        chosen.append(max(gains, key=gains.get))  # first slot wins a tie, as tf.argmax
    return chosen + [None] * (k - len(chosen))


def _numpy_mmr(unit, positions, scores, strength, k):
    lists = []
    for slots, row in zip(positions, scores):
        valid, relevance, vectors = slots >= 0, _min_max(row, slots >= 0), unit[np.maximum(slots, 0)]
        lists.append(_greedy(len(slots), valid, k, lambda chosen, s: (1 - strength) * relevance[s] - strength * max(
            (vectors[s] @ vectors[j] for j in chosen), default=0.0)))
    return [[-1 if c is None else int(slots[c]) for c in row] for slots, row in zip(positions, lists)]


def _numpy_steck(shares, catalog_index, positions, scores, history, strength, k):
    """Steck (RecSys 2018) eq. 6 as written: (1 - lambda) sum of relevance - lambda KL(p || q~), alpha = 0.01."""
    lists = []
    for slots, row, items in zip(positions, scores, history):
        valid, relevance = slots >= 0, _min_max(row, slots >= 0)
        wanted = shares[items].sum(axis=0)
        wanted = wanted / wanted.sum() if wanted.sum() > 0 else wanted
        candidates = shares[catalog_index[np.maximum(slots, 0)]]

        def gain(chosen, slot):
            mass = candidates[chosen + [slot]].sum(axis=0)
            mix = 0.99 * (mass / mass.sum() if mass.sum() > 0 else mass) + 0.01 * wanted
            divergence = sum(p * np.log(p / q) for p, q in zip(wanted, mix) if p > 0)
            return (1 - strength) * relevance[chosen + [slot]].sum() - strength * divergence
        lists.append(_greedy(len(slots), valid, k, gain))
    return [[-1 if c is None else int(slots[c]) for c in row] for slots, row in zip(positions, lists)]


def _random_shortlists(rng, num_items, batch, width):
    positions = np.stack([rng.permutation(num_items)[:width] for _ in range(batch)]).astype(np.int32)
    positions[1, 5:] = -1  # a short shortlist: the lists end in empty slots
    scores = rng.normal(size=positions.shape).astype(np.float32)
    scores[positions < 0] = -np.inf
    return positions, scores


def test_mmr_equals_the_literal_greedy_loop_on_random_shortlists():
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(60, 8)).astype(np.float32)
    positions, scores = _random_shortlists(rng, 60, batch=4, width=20)
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    for strength in (0.3, 0.7):
        served = MMRReranker(embeddings, strength, k=8).rerank(tf.constant(positions), tf.constant(scores))[0]
        assert served.numpy().tolist() == _numpy_mmr(unit, positions, scores, strength, k=8)


def test_calibrated_equals_steck_equation_on_random_shortlists():
    rng = np.random.default_rng(1)
    categories = (rng.random((61, 5)) < 0.3).astype(np.float32)
    categories[[0, 3]] = 0  # padding and an item without categories
    shares = categories / np.maximum(categories.sum(axis=1, keepdims=True), 1)
    positions, scores = _random_shortlists(rng, 60, batch=4, width=20)
    history = rng.integers(0, 61, size=(4, 6)).astype(np.int32)
    catalog_index = np.arange(1, 61)
    for strength in (0.5, 0.9):
        served = CalibratedReranker(categories, catalog_index, strength, k=8).rerank(
            tf.constant(positions), tf.constant(scores), tf.constant(history))[0]
        assert served.numpy().tolist() == _numpy_steck(shares, catalog_index, positions, scores, history, strength, 8)


@pytest.mark.parametrize("spec, message", [("mmr", "expected"), ("mmr:1.5", "expected"), ("fair:0.2", "expected"),
                                           ("tail:0.1:genres", "expected")])
def test_bad_specs_are_refused(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_rerank_spec(spec)


def test_calibration_needs_a_categorical_column(tiny_space):
    with pytest.raises(ValueError, match="categorical item column 'title'"):
        make_reranker("calibrated:0.5:title", 5, np.arange(1, 4), space=tiny_space)


@pytest.fixture(scope="module")
def trained(tiny_space, tiny_examples):
    """An untrained (randomly initialised) model: re-ranking only needs its scores and embeddings."""
    model = create_model("lstm_two_tower", space=tiny_space, embedding_dim=8, lstm_units=8,
                         max_history=TINY_MAX_HISTORY)
    return model, item_popularity(tiny_examples["train"], tiny_space.num_items)[0]


@pytest.mark.parametrize("spec", ["mmr:0", "calibrated:0", "tail:0"])
def test_strength_zero_equals_plain_retrieve(trained, tiny_space, spec):
    model, popularity = trained
    users = tf.constant(list(tiny_space.user_vocab.ids[:6]))
    items = list(tiny_space.item_vocab.ids)
    history = tf.constant([items[i:i + 4] for i in range(6)])
    plain = ServingModule(model, tiny_space, k=5).retrieve(users, history)
    reranked = ServingModule(model, tiny_space, k=5, rerank=spec, item_popularity=popularity).retrieve(users, history)
    assert reranked["item_ids"].numpy().tolist() == plain["item_ids"].numpy().tolist()
    np.testing.assert_allclose(reranked["scores"].numpy(), plain["scores"].numpy(), rtol=1e-6)


def test_reranked_export_passes_serve_check_and_serves_the_reranked_lists(trained, tiny_space, tmp_path):
    """One serve-check (calibrated: the most ops); benchmarks/rerank_latency.py serve-checks all three on ML-100K."""
    model, popularity = trained
    export_model(model, tiny_space, tmp_path, "calibrated", k=5, rerank="calibrated:0.5", warmup=True)
    report = serve_check(tmp_path / "calibrated", batch_sizes=(1, 4), repeats=1)
    assert report["servable"], report["warnings"]
    assert report["signatures"]["retrieve"]["outputs"]["item_ids"] == {"dtype": "string", "shape": [None, 5]}
    served = tf.saved_model.load(str(tmp_path / "calibrated" / "1")).signatures["retrieve"]
    users = tf.constant(list(tiny_space.user_vocab.ids[:2]))
    history = tf.constant([list(tiny_space.item_vocab.ids[:3])] * 2)
    expected = ServingModule(model, tiny_space, k=5, rerank="calibrated:0.5").retrieve(users, history)
    assert served(user_id=users, history=history)["item_ids"].numpy().tolist() == expected["item_ids"].numpy().tolist()
