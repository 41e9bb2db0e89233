"""Tests for `mmrec_tf.tasks.Retrieval` and `mmrec_tf.tasks.FactorizedTopK`.

Expected losses are written out by hand (log-sum-exp arithmetic in the
comments) for a fixed 3x3 batch, and checked against an independent float64
NumPy reference for option combinations. The literals also equal what
tensorflow_recommenders 0.7.7 (`tfrs.tasks.Retrieval`, on tf_keras 2.21)
returns for the same inputs, to float32 precision.
"""

import itertools
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest

from mmrec_tf.tasks import FactorizedTopK, Retrieval

# Query i's positive is candidate i. Scores = QUERIES @ CANDIDATES.T:
#   row 0: [1.0, 0.5, 1.0]   (positive 1.0)
#   row 1: [0.5, 1.0, 0.0]   (positive 1.0)
#   row 2: [1.5, 1.5, 1.0]   (positive 1.0)
QUERIES = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], "float32")
CANDIDATES = np.array([[1.0, 0.5], [0.5, 1.0], [1.0, 0.0]], "float32")
# Rows 0 and 2 hold the same item (id 7): in-batch accidental hits.
IDS = np.array([7, 8, 7])
PROBABILITIES = np.array([0.5, 0.25, 1.0], "float32")
WEIGHTS = np.array([1.0, 2.0, 0.5], "float32")


def _loss(task, queries=QUERIES, candidates=CANDIDATES, **kwargs):
    return float(task(queries, candidates, **kwargs))


def _reference_loss(
    queries,
    candidates,
    temperature=None,
    probabilities=None,
    ids=None,
    num_hard_negatives=None,
    weights=None,
):
    """Float64 TFRS retrieval loss, one row at a time, without keras."""
    scores = queries.astype(np.float64) @ candidates.astype(np.float64).T
    if temperature is not None:
        scores = scores / temperature
    if probabilities is not None:
        scores = scores - np.log(np.clip(probabilities.astype(np.float64), 1e-6, 1.0))
    total = 0.0
    for row in range(len(queries)):
        positive = scores[row, row]
        negatives = [
            scores[row, col]
            for col in range(len(candidates))
            if col != row and (ids is None or ids[col] != ids[row])
        ]
        if num_hard_negatives is not None:
            negatives = sorted(negatives, reverse=True)[:num_hard_negatives]
        logits = np.array([positive] + negatives)
        row_loss = np.log(np.sum(np.exp(logits - logits.max()))) + logits.max() - positive
        total += row_loss * (1.0 if weights is None else weights[row])
    return total


# === Hand-computed losses on the 3x3 batch ===


def test_plain_in_batch_softmax():
    # row 0: log(e^1 + e^0.5 + e^1) - 1     = log(7.085285) - 1 = 0.958020
    # row 1: log(e^0.5 + e^1 + e^0) - 1     = log(5.367003) - 1 = 0.680270
    # row 2: log(e^1.5 + e^1.5 + e^1) - 1   = log(11.681660) - 1 = 1.458020
    expected = 0.958020 + 0.680270 + 1.458020  # SUM over rows = 3.096310
    assert _loss(Retrieval()) == pytest.approx(expected, abs=1e-5)


def test_temperature_divides_logits():
    # temperature 0.5 doubles the scores:
    # row 0: log(e^2 + e^1 + e^2) - 2 = 0.861995
    # row 1: log(e^1 + e^2 + e^0) - 2 = 0.407606
    # row 2: log(e^3 + e^3 + e^2) - 2 = 1.861995
    expected = 0.861995 + 0.407606 + 1.861995  # = 3.131596
    assert _loss(Retrieval(temperature=0.5)) == pytest.approx(expected, abs=1e-5)


def test_logq_correction_subtracts_log_probability_per_column():
    # Column j gets -log(p_j): +log 2 = 0.693147, +log 4 = 1.386294, +0.
    # row 0 logits [1.693147, 1.886294, 1.0], positive 1.693147 -> 0.998078
    # row 1 logits [1.193147, 2.386294, 0.0], positive 2.386294 -> 0.333063
    # row 2 logits [2.193147, 2.886294, 1.0], positive 1.0      -> 2.388059
    expected = 0.998078 + 0.333063 + 2.388059  # = 3.719200
    loss = _loss(Retrieval(), candidate_sampling_probability=PROBABILITIES)
    assert loss == pytest.approx(expected, abs=1e-5)


def test_logq_probability_is_clipped_at_1e_minus_6():
    zero = np.array([0.0, 1.0, 1.0], "float32")
    floor = np.array([1e-6, 1.0, 1.0], "float32")
    task = Retrieval()
    assert _loss(task, candidate_sampling_probability=zero) == pytest.approx(
        _loss(task, candidate_sampling_probability=floor), rel=1e-6
    )


def test_accidental_hits_are_masked_but_positive_kept():
    # Row 0 (id 7) drops column 2 (also id 7); row 2 (id 7) drops column 0.
    # row 0: log(e^1 + e^0.5) - 1   = 0.474077
    # row 1: unchanged               = 0.680270
    # row 2: log(e^1.5 + e^1) - 1   = 0.974077
    expected = 0.474077 + 0.680270 + 0.974077  # = 2.128424
    loss = _loss(Retrieval(remove_accidental_hits=True), candidate_ids=IDS)
    assert loss == pytest.approx(expected, abs=1e-5)
    # keras-rs 0.4.0 RemoveAccidentalHits adds ~1e-40 to these logits, which
    # leaves the plain loss 3.096310: an implementation built on it fails here.
    assert abs(loss - 3.096310) > 0.9


def test_accidental_hits_accept_string_ids():
    loss = _loss(
        Retrieval(remove_accidental_hits=True),
        candidate_ids=np.array(["item7", "item8", "item7"]),
    )
    assert loss == pytest.approx(2.128424, abs=1e-5)


def test_keras_rs_0_4_0_remove_accidental_hits_is_a_no_op():
    keras_rs = pytest.importorskip("keras_rs")
    if keras_rs.__version__ != "0.4.0":
        pytest.skip(f"pins keras-rs 0.4.0 behaviour, found {keras_rs.__version__}")
    logits = QUERIES @ CANDIDATES.T
    masked = keras_rs.layers.RemoveAccidentalHits()(logits, np.eye(3, dtype="float32"), IDS)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(masked), logits)


def test_hard_negative_mining_keeps_positive_and_top_negatives():
    # One hard negative per row:
    # row 0: negatives 0.5, 1.0 -> keep 1.0: log(e^1 + e^1) - 1 = log 2 = 0.693147
    # row 1: negatives 0.5, 0.0 -> keep 0.5: log(e^1 + e^0.5) - 1 = 0.474077
    # row 2: negatives 1.5, 1.5 -> keep 1.5: log(e^1 + e^1.5) - 1 = 0.974077
    expected = 0.693147 + 0.474077 + 0.974077  # = 2.141301
    assert _loss(Retrieval(num_hard_negatives=1)) == pytest.approx(expected, abs=1e-5)


def test_hard_negatives_beyond_batch_keep_everything():
    assert _loss(Retrieval(num_hard_negatives=10)) == pytest.approx(3.096310, abs=1e-5)


def test_sample_weight_scales_rows():
    # 1 * 0.958020 + 2 * 0.680270 + 0.5 * 1.458020 = 3.047570
    loss = _loss(Retrieval(), sample_weight=WEIGHTS)
    assert loss == pytest.approx(3.047570, abs=1e-5)


def test_all_options_together():
    # temperature 0.5, then logQ: logits
    #   row 0 [2.693147, 2.386294, 2.0], row 1 [1.693147, 3.386294, 0.0],
    #   row 2 [3.693147, 4.386294, 2.0]
    # accidental hits drop (0, 2) and (2, 0); one hard negative is kept:
    #   row 0: [2.693147 | 2.386294] -> 0.551445
    #   row 1: [3.386294 | 1.693147] -> 0.168848
    #   row 2: [2.0      | 4.386294] -> 2.474278
    # weighted: 0.551445 + 2 * 0.168848 + 0.5 * 2.474278 = 2.126279
    task = Retrieval(temperature=0.5, remove_accidental_hits=True, num_hard_negatives=1)
    loss = _loss(
        task,
        sample_weight=WEIGHTS,
        candidate_sampling_probability=PROBABILITIES,
        candidate_ids=IDS,
    )
    assert loss == pytest.approx(2.126279, abs=1e-5)


@pytest.mark.parametrize(
    "temperature, use_probabilities, use_ids, num_hard_negatives, use_weights",
    list(
        itertools.product([None, 0.3], [False, True], [False, True], [None, 2], [False, True])
    ),
)
def test_matches_numpy_reference_with_extra_negatives(
    temperature, use_probabilities, use_ids, num_hard_negatives, use_weights
):
    rng = np.random.default_rng(7)
    queries = rng.normal(size=(4, 3)).astype("float32")
    candidates = rng.normal(size=(6, 3)).astype("float32")  # 2 extra negatives
    ids = np.array([1, 2, 1, 3, 2, 9])
    probabilities = rng.uniform(0.0, 0.4, size=6).astype("float32")
    weights = rng.uniform(0.1, 2.0, size=4).astype("float32")
    task = Retrieval(
        temperature=temperature,
        remove_accidental_hits=use_ids,
        num_hard_negatives=num_hard_negatives,
    )
    loss = task(
        queries,
        candidates,
        sample_weight=weights if use_weights else None,
        candidate_sampling_probability=probabilities if use_probabilities else None,
        candidate_ids=ids if use_ids else None,
    )
    expected = _reference_loss(
        queries,
        candidates,
        temperature=temperature,
        probabilities=probabilities if use_probabilities else None,
        ids=ids if use_ids else None,
        num_hard_negatives=num_hard_negatives,
        weights=weights if use_weights else None,
    )
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_mixed_precision_inputs_give_float32_loss():
    task = Retrieval(temperature=0.5)
    half = task(QUERIES.astype("float16"), CANDIDATES.astype("float16"))
    assert keras.backend.standardize_dtype(half.dtype) == "float32"
    assert float(half) == pytest.approx(3.131596, abs=1e-5)


# === Errors ===


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(temperature=0.0), "temperature"),
        (dict(temperature=-1.0), "temperature"),
        (dict(num_hard_negatives=0), "num_hard_negatives"),
        (dict(num_hard_negatives=2.5), "num_hard_negatives"),
        (dict(remove_accidental_hits="yes"), "remove_accidental_hits"),
        (dict(metrics=keras.metrics.Mean()), "FactorizedTopK"),
    ],
)
def test_bad_constructor_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Retrieval(**kwargs)


def test_accidental_hits_without_ids_raise():
    with pytest.raises(ValueError, match="candidate_ids"):
        Retrieval(remove_accidental_hits=True)(QUERIES, CANDIDATES)


def test_mismatched_shapes_raise():
    with pytest.raises(ValueError, match="embedding sizes differ"):
        Retrieval()(QUERIES, np.ones((3, 5), "float32"))
    with pytest.raises(ValueError, match="candidate_sampling_probability"):
        Retrieval()(QUERIES, CANDIDATES, candidate_sampling_probability=np.ones(4))
    with pytest.raises(ValueError, match="query_embeddings"):
        Retrieval()(np.ones(3, "float32"), CANDIDATES)


def test_update_metrics_without_metric_raises():
    with pytest.raises(ValueError, match="FactorizedTopK"):
        Retrieval().update_metrics(QUERIES, CANDIDATES, CANDIDATES)


# === Serialization ===


def test_retrieval_serialization_round_trip():
    task = Retrieval(
        temperature=0.2,
        remove_accidental_hits=True,
        num_hard_negatives=3,
        metrics=FactorizedTopK(ks=(1, 7)),
        name="task",
    )
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(task)
    )
    assert isinstance(restored, Retrieval)
    assert restored.get_config() == task.get_config()
    assert restored.factorized_metrics.ks == (1, 7)
    kwargs = dict(candidate_ids=IDS, sample_weight=WEIGHTS)
    assert _loss(restored, **kwargs) == pytest.approx(_loss(task, **kwargs))


def test_factorized_top_k_serialization_round_trip():
    metric = FactorizedTopK(ks=(2, 3), name="top")
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(metric)
    )
    assert isinstance(restored, FactorizedTopK)
    assert restored.get_config() == {"ks": [2, 3], "name": "top", "dtype": "float32"}


# === FactorizedTopK ===

# One-dimensional embeddings: a query [1] scores each candidate by its value.
CORPUS = np.array([[3.0], [1.0], [2.0], [2.0], [0.0]], "float32")
ONE = np.array([[1.0]], "float32")


def _top_k(true_value, ks=(1, 2, 3, 5), weight=None):
    metric = FactorizedTopK(ks=ks)
    metric.update_state(
        ONE,
        np.array([[true_value]], "float32"),
        CORPUS,
        sample_weight=weight,
    )
    return [float(v) for v in metric.result().values()]


def test_top_k_counts_strictly_higher_candidates():
    # true 2.0: only 3.0 is strictly higher -> miss at 1, hit at 2, 3, 5
    assert _top_k(2.0) == [0.0, 1.0, 1.0, 1.0]
    # true 0.5: 3, 1, 2, 2 are higher (4 of them) -> hit only at 5
    assert _top_k(0.5) == [0.0, 0.0, 0.0, 1.0]


def test_top_k_ties_count_as_hits():
    # true 3.0 ties with the best candidate -> hit at 1
    assert _top_k(3.0) == [1.0, 1.0, 1.0, 1.0]
    # true 1.0: higher are 3, 2, 2 -> hit from k=4 on (ties with 1.0 do not hurt)
    assert _top_k(1.0, ks=(3, 4)) == [0.0, 1.0]


def test_top_k_with_fewer_candidates_than_k_is_always_a_hit():
    assert _top_k(-100.0, ks=(6, 100)) == [1.0, 1.0]


def test_top_k_non_finite_true_score_is_a_miss():
    assert _top_k(np.nan, ks=(1, 100)) == [0.0, 0.0]


def test_top_k_weighted_mean_streams_and_resets():
    metric = FactorizedTopK(ks=(1, 2))
    queries = np.ones((3, 1), "float32")
    true = np.array([[3.0], [2.0], [0.0]], "float32")  # hits@1: 1,0,0  @2: 1,1,0
    metric.update_state(queries, true, CORPUS, sample_weight=np.array([1.0, 2.0, 1.0]))
    # @1: 1 / 4 = 0.25; @2: (1 + 2) / 4 = 0.75
    result = {k: float(v) for k, v in metric.result().items()}
    assert result == {
        "top_1_categorical_accuracy": 0.25,
        "top_2_categorical_accuracy": 0.75,
    }
    metric.update_state(ONE, np.array([[2.0]], "float32"), CORPUS)
    # @1: 1 / 5 = 0.2; @2: 4 / 5 = 0.8
    result = [float(v) for v in metric.result().values()]
    assert result == pytest.approx([0.2, 0.8])
    metric.reset_state()
    assert [float(v) for v in metric.result().values()] == [0.0, 0.0]


def test_top_k_true_candidate_in_corpus_ties_with_itself():
    # Scoring the positive with an element-wise sum (as TFRS does) differs
    # from its matmul score in ~40% of rows on CPU, so the best item would
    # miss at k=1; here every query's true candidate is its float64 argmax.
    rng = np.random.default_rng(0)
    corpus = rng.normal(size=(300, 48)).astype("float32")
    queries = rng.normal(size=(128, 48)).astype("float32")
    best = np.argmax(queries.astype(np.float64) @ corpus.T.astype(np.float64), axis=1)
    metric = FactorizedTopK(ks=(1,))
    metric.update_state(queries, corpus[best], corpus)
    assert float(metric.result()["top_1_categorical_accuracy"]) == 1.0


@pytest.mark.parametrize("ks", [(), (0, 1), (1, 1), "15", (True,)])
def test_top_k_bad_ks_raise(ks):
    with pytest.raises(ValueError, match="ks"):
        FactorizedTopK(ks=ks)


def test_top_k_dimension_mismatch_raises():
    with pytest.raises(ValueError, match="embedding sizes differ"):
        FactorizedTopK(ks=(1,)).update_state(ONE, ONE, np.ones((4, 2), "float32"))


# === Inside Keras models ===


class ToyTwoTower(keras.Model):
    """Minimal user/item embedding model whose loss is a Retrieval task."""

    def __init__(self, num_users, num_items, dim, task, **kwargs):
        super().__init__(**kwargs)
        self.user_embedding = keras.layers.Embedding(num_users, dim)
        self.item_embedding = keras.layers.Embedding(num_items, dim)
        self.task = task

    def call(self, inputs):
        return {
            "query": self.user_embedding(inputs["user"]),
            "candidate": self.item_embedding(inputs["item"]),
        }

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = self.task(
            y_pred["query"],
            y_pred["candidate"],
            candidate_sampling_probability=x["probability"],
            candidate_ids=x["item"],
        )
        if not training:
            self.task.update_metrics(
                y_pred["query"], y_pred["candidate"], self.item_embedding.embeddings
            )
        return loss


def test_evaluate_reports_factorized_top_k_dict():
    task = Retrieval(metrics=FactorizedTopK(ks=(1, 2, 4)))
    model = ToyTwoTower(3, 4, 2, task)
    users = np.array([0, 1, 2, 0])
    items = np.array([2, 1, 0, 3])
    inputs = {"user": users, "item": items, "probability": np.ones(4, "float32")}
    model(inputs)
    user_table = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], "float32")
    item_table = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.6], [-1.0, 0.0]], "float32")
    model.user_embedding.embeddings.assign(user_table)
    model.item_embedding.embeddings.assign(item_table)
    model.compile(optimizer="sgd")
    logs = model.evaluate(inputs, batch_size=4, return_dict=True, verbose=0)
    # corpus scores per user: u0 [1, 0, .6, -1], u1 [0, 1, .6, 0], u2 [1, 1, 1.2, -1]
    # (u0, i2) .6: 1 higher -> @1 miss, @2 hit;   (u1, i1) 1: 0 higher -> hit
    # (u2, i0) 1: 1 higher (1.2; the tie 1 does not count) -> @1 miss, @2 hit
    # (u0, i3) -1: 3 higher -> hit only @4
    assert set(logs) == {
        "loss",
        "top_1_categorical_accuracy",
        "top_2_categorical_accuracy",
        "top_4_categorical_accuracy",
    }
    assert logs["top_1_categorical_accuracy"] == pytest.approx(0.25)
    assert logs["top_2_categorical_accuracy"] == pytest.approx(0.75)
    assert logs["top_4_categorical_accuracy"] == pytest.approx(1.0)
    expected_loss = _reference_loss(user_table[users], item_table[items])
    assert logs["loss"] == pytest.approx(expected_loss, rel=1e-5)


def test_trains_inside_jit_compiled_model():
    keras.utils.set_random_seed(3)
    num_users, num_items = 24, 8
    users = np.tile(np.arange(num_users), 4)
    items = users % num_items  # several users share an item: accidental hits
    inputs = {
        "user": users,
        "item": items,
        "probability": np.full(users.shape, 1.0 / num_items, "float32"),
    }
    task = Retrieval(temperature=0.5, remove_accidental_hits=True, num_hard_negatives=4)
    model = ToyTwoTower(num_users, num_items, 8, task)
    model.compile(optimizer=keras.optimizers.Adam(0.05), jit_compile=True)
    # 96 examples in batches of 20: the last batch has 16 rows.
    history = model.fit(inputs, batch_size=20, epochs=8, shuffle=True, verbose=0)
    losses = history.history["loss"]
    assert model.jit_compile is True
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.5 * losses[0]
