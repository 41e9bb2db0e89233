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
