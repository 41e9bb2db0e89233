"""The serving signatures score in chunks (bounded memory) and refuse malformed requests."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmrec_tf.export.saved_model import export_model
from mmrec_tf.export.serving_module import ServingModule
from mmrec_tf.registry import create_model

from conftest import TINY_MAX_HISTORY

TINY = {"two_tower": {"embedding_dim": 4},
        "lstm_two_tower": {"embedding_dim": 4, "lstm_units": 4, "max_history": TINY_MAX_HISTORY},
        "din": {"embedding_dim": 4, "hidden_units": [8], "attention_units": [4], "max_history": TINY_MAX_HISTORY,
                "rating_levels": 5}}
BATCH, NUM_CANDIDATES, CHUNK = 3, 11, 7  # 33 pairs: four chunks of 7 and a last one of 5


@pytest.fixture(scope="module")
def models(tiny_space):
    """Tiny untrained models (serving does not care whether the weights were trained)."""
    keras.utils.set_random_seed(0)
    return {name: create_model(name, space=tiny_space, **TINY[name]) for name in sorted(TINY)}


def request(space, batch=BATCH, num_candidates=NUM_CANDIDATES):
    items = list(space.item_vocab.ids)
    inputs = {"user_id": tf.constant(list(space.user_vocab.ids[:batch - 1]) + ["nobody"]),
              "history": tf.constant([[items[row + j] for j in range(4)] + ["", "zzz"] for row in range(batch)]),
              "candidates": tf.constant([[items[(row * 5 + j) % len(items)] for j in range(num_candidates - 1)]
                                         + ["not-an-item"] for row in range(batch)])}
    ratings = [[1 + (row + j) % 5 for j in range(4)] + [0, 2] for row in range(batch)]
    return inputs, tf.constant(ratings, tf.int32)


@pytest.mark.parametrize("name", sorted(TINY))
def test_chunked_score_equals_the_models_unchunked_scores(name, models, tiny_space):
    model = models[name]
    inputs, ratings = request(tiny_space)
    if getattr(model, "rating_levels", 0):
        inputs["history_rating"] = ratings
    chunked = ServingModule(model, tiny_space, k=5, score_chunk_pairs=CHUNK)
    scores = chunked.score(**inputs)["scores"].numpy()
    assert scores.shape == (BATCH, NUM_CANDIDATES) and scores.dtype == np.float32
    # the Keras model's own scoring of the same indices in one call; equal up to float32 rounding: a dense
    # layer's matmul kernel picks its summation order by the number of rows, so the last bit may differ
    features, _ = chunked._features(inputs["user_id"], inputs["history"], inputs.get("history_rating"))
    candidates = chunked.item_lookup.lookup(inputs["candidates"])
    np.testing.assert_allclose(scores, np.asarray(model.score_candidates(features, candidates)), rtol=1e-6,
                               atol=1e-7)
    if name == "din":
        weights = chunked.explain(**inputs)["weights"].numpy()
        assert weights.shape == (BATCH, NUM_CANDIDATES, TINY_MAX_HISTORY)
        np.testing.assert_allclose(weights, np.asarray(model.attention_weights(features, candidates)), rtol=1e-6,
                                   atol=1e-7)
        no_candidates = dict(inputs, candidates=tf.zeros([BATCH, 0], tf.string))
        assert chunked.score(**no_candidates)["scores"].shape == (BATCH, 0)


def test_the_model_never_sees_more_than_one_chunk_of_pairs(models, tiny_space, monkeypatch):
    """What bounds the memory: each model call inside ``score`` gets at most ``score_chunk_pairs`` pairs.

    (Before chunking, one call got all B x C pairs: 1 x 100,000 candidates took 10.6 GB; see
    benchmarks/score_memory.py for the peak memory against C.)
    """
    model = models["din"]
    pairs_per_call = []
    unchunked = model.score_candidates

    def counting(features, candidates):
        counted = tf.numpy_function(lambda n: pairs_per_call.append(int(n)) or n, [tf.size(candidates)], tf.int32)
        with tf.control_dependencies([counted]):
            return tf.identity(unchunked(features, candidates))

    monkeypatch.setattr(model, "score_candidates", counting)
    inputs, ratings = request(tiny_space)
    scores = ServingModule(model, tiny_space, k=5, score_chunk_pairs=CHUNK).score(**inputs, history_rating=ratings)
    assert scores["scores"].shape == (BATCH, NUM_CANDIDATES)
    assert pairs_per_call == [7, 7, 7, 7, 5]


def test_score_chunk_pairs_must_be_a_positive_whole_number(models, tiny_space):
    with pytest.raises(ValueError, match="score_chunk_pairs must be a whole number >= 1, got 0"):
        ServingModule(models["two_tower"], tiny_space, score_chunk_pairs=0)


@pytest.fixture(scope="module")
def exported(models, tiny_space, tmp_path_factory):
    """The loaded SavedModels of the tiny two_tower (retrieval) and rating-aware din (ranking)."""
    folder = tmp_path_factory.mktemp("saved_models")
    return {name: tf.saved_model.load(str(export_model(models[name], tiny_space, folder, name, k=5, warmup=False)))
            for name in ("din", "two_tower")}


@pytest.mark.parametrize("name", ["din", "two_tower"])
def test_every_signature_refuses_inputs_with_different_numbers_of_rows(name, exported, tiny_space):
    loaded = exported[name]
    inputs, ratings = request(tiny_space)
    if name == "din":
        inputs["history_rating"] = ratings
    one_history = {"history": inputs["history"][:1]}
    for signature in set(loaded.signatures) - {"item_embedding", "serving_default"}:
        names = set(loaded.signatures[signature].structured_input_signature[1])
        arguments = {key: value for key, value in inputs.items() if key in names}
        arguments.update(one_history)
        if "history_rating" in arguments:
            arguments["history_rating"] = ratings[:1]
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match=f"{signature}: every input needs one row per user, but user_id has 3 rows and "
                                 "history has 1"):
            loaded.signatures[signature](**arguments)
    if "candidates" in names:
        with pytest.raises(tf.errors.InvalidArgumentError, match="user_id has 3 rows and candidates has 2"):
            loaded.signatures["score"](**dict(arguments, history=inputs["history"],
                                              candidates=inputs["candidates"][:2],
                                              **({"history_rating": ratings} if name == "din" else {})))


def test_two_tower_no_longer_answers_a_short_history_without_excluding_it(exported, tiny_space):
    """The reported case: 3 users and 1 history row used to return the history's items to rows 1 and 2."""
    inputs, _ = request(tiny_space)
    with pytest.raises(tf.errors.InvalidArgumentError, match="retrieve: .*user_id has 3 rows and history has 1"):
        exported["two_tower"].signatures["retrieve"](user_id=inputs["user_id"], history=inputs["history"][:1])


@pytest.mark.parametrize("bad, message", [
    (6, r"history_rating must be 0\.\.5 \(0 at padding\), got values from 0 to 6"),
    (-1, r"history_rating must be 0\.\.5 \(0 at padding\), got values from -1 to 5"),
])
def test_rating_aware_signatures_refuse_ratings_outside_the_training_range(bad, message, exported, tiny_space):
    inputs, ratings = request(tiny_space)
    ratings = ratings.numpy()
    ratings[1, 2] = bad
    for signature in ("score", "explain"):
        with pytest.raises(tf.errors.InvalidArgumentError, match=f"{signature}: {message}"):
            exported["din"].signatures[signature](**inputs, history_rating=tf.constant(ratings))


def test_rating_aware_signatures_refuse_ratings_not_aligned_with_the_history(exported, tiny_space):
    inputs, ratings = request(tiny_space)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"score: history_rating has shape \[3 5\] but history has shape \[3 6\]"):
        exported["din"].signatures["score"](**inputs, history_rating=ratings[:, :5])
    served = exported["din"].signatures["score"](**inputs, history_rating=ratings)["scores"].numpy()
    assert served.shape == (BATCH, NUM_CANDIDATES) and np.isfinite(served).all()
