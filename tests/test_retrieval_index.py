"""Retrieval indexes: exact brute force, the bfloat16 scan with exact re-rank, and how one is chosen."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from mmrec_tf.export import index_choice
from mmrec_tf.export.bfloat16_index import BFloat16Index
from mmrec_tf.export.brute_force_index import BruteForceIndex
from mmrec_tf.export.index_choice import make_retrieval_index


def exact_top_k(items, queries, excluded, k):
    """Positions and scores of the k best non-excluded items per query, numpy float64, ties by position."""
    scores = queries.astype(np.float64) @ items.astype(np.float64).T
    for row, positions in enumerate(excluded):
        scores[row, positions[positions >= 0]] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(scores, order, axis=1)


def search(index, queries, excluded):
    positions, scores = index.search(tf.constant(queries, tf.float32), tf.constant(excluded, tf.int32))
    return positions.numpy(), scores.numpy()


@pytest.fixture(scope="module")
def catalog():
    rng = np.random.default_rng(7)
    items = rng.normal(size=(3001, 16)).astype(np.float32)  # 3001: not a multiple of any chunk size used
    queries = rng.normal(size=(6, 16)).astype(np.float32)
    excluded = rng.integers(-1, 3001, size=(6, 40)).astype(np.int32)
    excluded[:, 0] = np.argmax(queries @ items.T, axis=1)  # the best item of each query is excluded
    return items, queries, excluded


def test_brute_force_is_the_exact_top_k_without_excluded_items():
    items = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.5]], np.float32)
    index = BruteForceIndex(items, k=3)
    positions, scores = search(index, [[2.0, 1.0], [0.0, -1.0]], [[2, -1], [-1, -1]])
    # query 1: scores 2, 1, (3 excluded), -1.5; query 2: 0, -1, -1, -0.5
    assert positions.tolist() == [[0, 1, 3], [0, 3, 1]]
    np.testing.assert_allclose(scores, [[2.0, 1.0, -1.5], [0.0, -0.5, -1.0]])


def test_brute_force_over_a_shared_item_table_scores_it_and_never_returns_its_padding_row():
    items = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.5]], np.float32)
    # row 0 (padding) would be the best match of both queries if it were a catalog item
    table = tf.Variable(np.concatenate([[[9.0, 9.0]], items]).astype(np.float32))
    index = BruteForceIndex(items, k=3, item_table=lambda: table)
    assert not hasattr(index, "embeddings")  # no float32 copy of its own
    positions, scores = search(index, [[2.0, 1.0], [0.0, -1.0]], [[2, -1], [-1, -1]])
    assert positions.tolist() == [[0, 1, 3], [0, 3, 1]]
    np.testing.assert_allclose(scores, [[2.0, 1.0, -1.5], [0.0, -0.5, -1.0]])


def test_slots_without_an_eligible_item_are_empty_never_an_excluded_item():
    items = np.eye(3, dtype=np.float32)
    table = tf.Variable(np.concatenate([np.zeros((1, 3)), items]).astype(np.float32))
    for index in (BruteForceIndex(items, k=3), BFloat16Index(items, k=3, chunk_size=2),
                  BruteForceIndex(items, k=3, item_table=lambda: table)):
        positions, scores = search(index, [[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]], [[2, 0, 0], [-1, -1, -1]])
        assert positions.tolist() == [[1, -1, -1], [0, 1, 2]], type(index).__name__
        assert scores[0, 0] == 2.0 and np.isneginf(scores[0, 1:]).all()


def test_k_is_clipped_to_the_catalog_and_empty_batches_work(catalog):
    items, _, _ = catalog
    assert BruteForceIndex(items[:4], k=100).k == 4
    for index in (BruteForceIndex(items, k=5), BFloat16Index(items, k=5)):
        positions, scores = search(index, np.zeros((0, 16)), np.zeros((0, 3)))
        assert positions.shape == (0, 5) and scores.shape == (0, 5)


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 5000])
def test_bfloat16_index_equals_exact_search(catalog, chunk_size):
    items, queries, excluded = catalog
    index = BFloat16Index(items, k=20, chunk_size=chunk_size)
    positions, scores = search(index, queries, excluded)
    expected_positions, expected_scores = exact_top_k(items, queries, excluded, 20)
    np.testing.assert_array_equal(positions, expected_positions)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-5, atol=1e-5)
    for row in range(len(queries)):
        assert not set(positions[row]) & set(excluded[row].tolist())


def test_bfloat16_index_is_exact_when_every_score_is_negative(catalog):
    """Chunk maxima of negative bfloat16 scores come from the int16 minimum (reversed bit order)."""
    items, queries, excluded = catalog
    items, queries = np.abs(items), -np.abs(queries)
    positions, scores = search(BFloat16Index(items, k=10, chunk_size=32), queries, excluded)
    expected_positions, expected_scores = exact_top_k(items, queries, excluded, 10)
    assert (expected_scores < 0).all()
    np.testing.assert_array_equal(positions, expected_positions)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-5)


def test_bfloat16_ties_are_ordered_by_the_exact_float32_rerank():
    """Scores 1.0000..1.00245 round to one bfloat16 value (spacing 2**-7); the re-rank restores their order."""
    count = 50
    items = np.zeros((2000, 4), np.float32)
    items[:, 1] = np.linspace(-1.0, 0.5, 2000)  # clearly worse items
    near_ties = np.random.default_rng(0).permutation(2000)[:count]
    items[near_ties, 0] = 1.0 + np.arange(count) * 5e-5
    items[near_ties, 1] = 0.0
    query = np.array([[1.0, 0.0, 0.0, 0.0]], np.float32)
    assert len(np.unique(tf.cast(items[near_ties] @ query[0], tf.bfloat16).numpy())) == 1
    positions, scores = search(BFloat16Index(items, k=10), query, [[-1]])  # shortlist 74 >= 50 near-ties
    np.testing.assert_array_equal(positions[0], near_ties[::-1][:10])
    np.testing.assert_allclose(scores[0], 1.0 + np.arange(count)[::-1][:10] * 5e-5, rtol=1e-6)


def test_recall_of_bfloat16_index_on_normalised_random_embeddings():
    rng = np.random.default_rng(3)
    items = rng.normal(size=(50_000, 32)).astype(np.float32)
    items /= np.linalg.norm(items, axis=1, keepdims=True)
    queries = rng.normal(size=(16, 32)).astype(np.float32)
    no_exclusion = -np.ones((16, 1), np.int32)
    positions, _ = search(BFloat16Index(items, k=100), queries, no_exclusion)
    expected, _ = exact_top_k(items, queries, no_exclusion, 100)
    recall = np.mean([len(set(a) & set(b)) / 100 for a, b in zip(positions, expected)])
    assert recall >= 0.99


def test_auto_picks_brute_force_then_bfloat16_then_ivf_by_catalog_size(monkeypatch):
    items = np.random.default_rng(0).normal(size=(10, 2)).astype(np.float32)
    assert index_choice.AUTO_EXACT_MAX_ITEMS < index_choice.AUTO_IVF_MIN_ITEMS
    assert make_retrieval_index("auto", items, k=3).kind == "brute_force"
    monkeypatch.setattr(index_choice, "AUTO_EXACT_MAX_ITEMS", 10)
    assert make_retrieval_index("auto", items, k=3).kind == "bfloat16"
    assert make_retrieval_index("auto", items[:9], k=3).kind == "brute_force"
    monkeypatch.setattr(index_choice, "AUTO_IVF_MIN_ITEMS", 10)
    assert make_retrieval_index("auto", items, k=3).kind == "ivf"
    assert make_retrieval_index("auto", items[:9], k=3).kind == "brute_force"
    monkeypatch.setattr(index_choice, "AUTO_EXACT_MAX_ITEMS", 5)
    assert make_retrieval_index("auto", items[:9], k=3).kind == "bfloat16"
    assert make_retrieval_index("brute_force", items, k=3).kind == "brute_force"
    with pytest.raises(ValueError, match="index must be one of"):
        make_retrieval_index("scann", items, k=3)


def test_bad_catalogs_and_parameters_are_rejected():
    with pytest.raises(ValueError, match="catalog embedding row 1 is not finite"):
        BruteForceIndex(np.array([[1.0], [np.nan]], np.float32), k=1)
    with pytest.raises(ValueError, match=r"\[num_items, dim\]"):
        BruteForceIndex(np.ones(3, np.float32), k=1)
    with pytest.raises(ValueError, match="k must be a positive int"):
        BruteForceIndex(np.ones((3, 2), np.float32), k=0)
    with pytest.raises(ValueError, match="shortlist_size must be an int >= k=3"):
        BFloat16Index(np.ones((5, 2), np.float32), k=3, shortlist_size=2)


def test_indexes_survive_a_saved_model_round_trip(catalog, tmp_path):
    items, queries, excluded = catalog
    module = tf.Module()
    module.index = BFloat16Index(items, k=5, chunk_size=16)
    module.search = tf.function(module.index.search, input_signature=[
        tf.TensorSpec([None, 16], tf.float32), tf.TensorSpec([None, None], tf.int32)])
    tf.saved_model.save(module, str(tmp_path))
    loaded = tf.saved_model.load(str(tmp_path))
    positions, scores = loaded.search(tf.constant(queries), tf.constant(excluded))
    expected_positions, expected_scores = exact_top_k(items, queries, excluded, 5)
    np.testing.assert_array_equal(positions.numpy(), expected_positions)
    np.testing.assert_allclose(scores.numpy(), expected_scores, rtol=1e-5, atol=1e-5)
