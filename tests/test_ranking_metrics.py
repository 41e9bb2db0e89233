"""Tests for `mmrec_tf.evaluation.ranking_metrics`: exact AUC, GAUC, log loss, RMSE."""

import math

import numpy as np
import pytest

from mmrec_tf.evaluation.ranking_metrics import auc, gauc, log_loss, rmse

# === auc ===


def test_auc_counts_correctly_ordered_pairs():
    # positives 0.35, 0.8; negatives 0.1, 0.4
    # pairs: 0.35>0.1 yes, 0.35>0.4 no, 0.8>0.1 yes, 0.8>0.4 yes -> 3/4
    assert auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75


def test_auc_ties_count_half():
    # positives 0.5, 0.9; negatives 0.5, 0.1
    # 0.5 vs 0.5 tie = 1/2, 0.5>0.1 = 1, 0.9>0.5 = 1, 0.9>0.1 = 1 -> 3.5/4
    assert auc([1, 0, 1, 0], [0.5, 0.5, 0.9, 0.1]) == 0.875
    assert auc([1, 0, 0, 1, 0], [2.0, 2.0, 2.0, 2.0, 2.0]) == 0.5


def test_auc_extremes_and_input_forms():
    assert auc(np.array([True, False, True]), [3, 1, 2]) == 1.0
    assert auc([1, 0, 1], [1, 3, 2]) == 0.0
    # [N, 1] columns (Keras predictions) are flattened
    assert auc(np.array([[0], [1]]), np.array([[0.2], [0.7]])) == 1.0


def test_auc_matches_sklearn_with_many_ties():
    from sklearn import metrics as sklearn_metrics  # a test dependency (setup.cfg [test]): an independent AUC
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, size=500)
    scores = rng.integers(0, 20, size=500) / 7.0  # heavy ties
    assert auc(labels, scores) == pytest.approx(
        sklearn_metrics.roc_auc_score(labels, scores), abs=1e-12
    )


@pytest.mark.parametrize("labels", [[1, 1, 1], [0, 0]])
def test_auc_single_class_raises(labels):
    with pytest.raises(ValueError, match="at least one positive and one negative"):
        auc(labels, np.arange(len(labels), dtype=float))


@pytest.mark.parametrize(
    "labels, scores, message",
    [
        ([0, 1, 1], [0.1, 0.2], "same length"),
        ([0, 2, 1], [0.1, 0.2, 0.3], "must be 0 or 1; found 2.0 at index 1"),
        ([0, 1], [0.1, float("nan")], "NaN at index 1"),
        ([[0, 1], [1, 0]], [[0.1, 0.2], [0.3, 0.4]], "must be 1-D"),
        ([], [], "empty"),
        ([0, 1], ["a", "b"], "numeric"),
    ],
)
def test_auc_bad_input_raises(labels, scores, message):
    with pytest.raises(ValueError, match=message):
        auc(labels, scores)


# === gauc ===


def test_gauc_weights_user_auc_by_impressions_and_skips_single_class_users():
    users = ["u2", "u1", "u3", "u1", "u2", "u1", "u3", "u4", "u4"]
    labels = [1, 1, 0, 0, 0, 0, 1, 1, 1]
    scores = [0.2, 0.9, 0.1, 0.5, 0.3, 0.95, 0.4, 0.5, 0.1]
    # u1: positive 0.9 vs negatives 0.5 (win), 0.95 (loss) -> AUC 1/2, 3 samples
    # u2: positive 0.2 vs negative 0.3 -> AUC 0, 2 samples
    # u3: positive 0.4 vs negative 0.1 -> AUC 1, 2 samples
    # u4: only positives -> skipped
    # GAUC = (3 * 0.5 + 2 * 0 + 2 * 1) / (3 + 2 + 2) = 3.5 / 7 = 0.5
    assert gauc(users, labels, scores) == 0.5
    assert gauc(users, labels, scores, return_num_users=True) == (0.5, 3)


def test_gauc_ties_within_user_count_half_and_int_ids():
    users = np.array([10, 10, 10, 20, 20])
    labels = np.array([1, 0, 0, 0, 1])
    scores = np.array([0.5, 0.5, 0.1, 0.7, 0.7])
    # user 10: tie 1/2 + win 1 -> AUC 0.75 over 3 samples
    # user 20: tie -> AUC 0.5 over 2 samples
    # GAUC = (3 * 0.75 + 2 * 0.5) / 5 = 3.25 / 5 = 0.65
    assert gauc(users, labels, scores) == pytest.approx(0.65, abs=1e-15)


def test_gauc_matches_per_user_loop():
    rng = np.random.default_rng(11)
    users = rng.integers(0, 40, size=600)
    labels = rng.integers(0, 2, size=600)
    scores = rng.integers(0, 10, size=600) / 3.0
    numerator = denominator = 0.0
    counted = 0
    for user in np.unique(users):
        mask = users == user
        if labels[mask].min() == labels[mask].max():
            continue
        numerator += mask.sum() * auc(labels[mask], scores[mask])
        denominator += mask.sum()
        counted += 1
    value, num_users = gauc(users, labels, scores, return_num_users=True)
    assert value == pytest.approx(numerator / denominator, abs=1e-12)
    assert num_users == counted


def test_gauc_with_no_mixed_user_raises():
    with pytest.raises(ValueError, match="none of the 2 users"):
        gauc(["a", "a", "b"], [1, 1, 0], [0.1, 0.2, 0.3])


def test_gauc_length_mismatch_names_arguments():
    with pytest.raises(ValueError, match="`user_ids` has 2, `labels` has 3"):
        gauc(["a", "b"], [1, 0, 1], [0.1, 0.2, 0.3])


# === log_loss and rmse ===


def test_log_loss_by_hand():
    # -(log 0.8 + log(1 - 0.4)) / 2 = (0.223144 + 0.510826) / 2 = 0.366985
    assert log_loss([1, 0], [0.8, 0.4]) == pytest.approx(0.366985, abs=1e-6)


def test_log_loss_clips_probabilities():
    # p = 1 with label 0 is clipped to 1 - 1e-7: -log(1e-7) = 16.118096
    assert log_loss([0], [1.0]) == pytest.approx(-math.log(1e-7), rel=1e-6)
    assert log_loss([1], [1.0], eps=1e-3) == pytest.approx(-math.log(1 - 1e-3))


@pytest.mark.parametrize(
    "labels, probs, eps, message",
    [
        ([1, 0], [1.5, 0.2], 1e-7, "`probs` must lie in \\[0, 1\\]; found 1.5 at index 0"),
        ([1, -1], [0.5, 0.2], 1e-7, "`labels` must lie in"),
        ([1, 0], [0.5], 1e-7, "same length"),
        ([1, 0], [0.5, 0.5], 0.0, "eps"),
    ],
)
def test_log_loss_bad_input_raises(labels, probs, eps, message):
    with pytest.raises(ValueError, match=message):
        log_loss(labels, probs, eps=eps)


def test_rmse_by_hand():
    # sqrt(((1 - 1)^2 + (2 - 2)^2 + (3 - 5)^2) / 3) = sqrt(4 / 3) = 1.154701
    assert rmse([1.0, 2.0, 3.0], [1.0, 2.0, 5.0]) == pytest.approx(1.154701, abs=1e-6)
    assert rmse(np.array([[2.0], [4.0]]), [2.0, 4.0]) == 0.0


def test_rmse_bad_input_raises():
    with pytest.raises(ValueError, match="`labels` has 2, `preds` has 3"):
        rmse([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="NaN"):
        rmse([1.0, float("nan")], [1.0, 2.0])
