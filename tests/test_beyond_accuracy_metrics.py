"""Beyond-accuracy and fairness metrics against values computed by hand on small cases."""

import math

import numpy as np
import pandas as pd
import pytest

from mmrec_tf.evaluation import beyond_accuracy as ba
from mmrec_tf.evaluation import fairness
from mmrec_tf.evaluation.recommendation_lists import RecommendationLists, beyond_accuracy_metrics, item_popularity

# 3 users, top-2 lists over a 5-item catalog; item 4 never shown, user 3's second slot empty.
LISTS = np.array([[1, 2], [1, 3], [5, 0]])


def test_coverage_and_exposure():
    assert ba.exposure_counts(LISTS, 5).tolist() == [2, 1, 1, 0, 1]
    assert ba.catalog_coverage(LISTS, 5) == 4 / 5


def test_gini_by_hand():
    # sorted [0, 1, 1, 1, 2], n = 5, total 5: sum (2i - 6) x_i = -4*0 - 2*1 + 0*1 + 2*1 + 4*2 = 8 -> 8 / 25
    assert ba.gini_index(ba.exposure_counts(LISTS, 5)) == pytest.approx(8 / 25)
    assert ba.gini_index([5, 5]) == 0.0
    with pytest.raises(ValueError, match="non-negative"):
        ba.gini_index([1, -1])


def test_lorenz_area_matches_gini():
    counts = ba.exposure_counts(LISTS, 5)
    x, y = ba.lorenz_curve(counts)
    area = np.trapezoid(y, x) if hasattr(np, "trapezoid") else np.trapz(y, x)
    assert 1 - 2 * area == pytest.approx(ba.gini_index(counts))


def test_entropy_by_hand():
    # shares 2/5, 1/5, 1/5, 1/5 -> 0.4*log2(2.5) + 3*0.2*log2(5)
    expected = 0.4 * math.log2(2.5) + 0.6 * math.log2(5)
    assert ba.shannon_entropy(ba.exposure_counts(LISTS, 5)) == pytest.approx(expected)


def test_average_popularity_and_long_tail():
    popularity = np.array([0, 40, 20, 20, 10, 10])  # 100 interactions; head = item 1 (40 % >= 20 %)
    # per user: (40 + 20) / 2 = 30, (40 + 20) / 2 = 30, 10 -> mean 70 / 3
    assert ba.average_popularity(LISTS, popularity) == pytest.approx(70 / 3)
    tail = ba.long_tail_mask(popularity)
    assert tail.tolist() == [False, False, True, True, True, True]
    assert ba.long_tail_share(LISTS, tail) == pytest.approx(3 / 5)  # slots 2, 3, 5 of 5 filled ones


def test_long_tail_head_spans_several_items():
    popularity = np.array([0, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10])  # each 10 %: head = 2 items
    assert ba.long_tail_mask(popularity).sum() == 8


def test_novelty_by_hand():
    user_counts = np.array([0, 4, 2, 1, 0, 0])  # 4 users; unseen item 5 counts as 1 user
    # -log2 of 1, 1/2, 1, 1/4, 1/4 -> (0 + 1 + 0 + 2 + 2) / 5
    assert ba.novelty(LISTS, user_counts, num_users=4) == pytest.approx(1.0)


def test_intra_list_diversity_genres_and_embeddings():
    genres = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0, 0], [1, 0]], float)
    # list [1, 2]: 1 - 1/sqrt2; [1, 3]: 1; [5] has one item and is skipped
    assert ba.intra_list_diversity(LISTS, genres) == pytest.approx(((1 - 1 / math.sqrt(2)) + 1.0) / 2)
    embeddings = np.array([[0, 0], [1, 0], [-1, 0], [0, 3], [1, 1], [2, 0]], float)
    # [1, 2]: cos -1 -> 2; [1, 3]: cos 0 -> 1
    assert ba.intra_list_diversity(LISTS, embeddings) == pytest.approx(1.5)


def test_calibration_by_steck_formula():
    genres = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 1]], float)
    histories = np.array([[1, 3]])  # p = (1/2, 1/4, 1/4)
    lists = np.array([[1, 2]])  # q = (1/2, 1/2, 0)
    p, q = np.array([0.5, 0.25, 0.25]), np.array([0.5, 0.5, 0.0])
    smoothed = 0.99 * q + 0.01 * p
    assert ba.calibration_kl(lists, histories, genres) == pytest.approx(float((p * np.log(p / smoothed)).sum()))
    assert ba.calibration_kl(np.array([[1, 3]]), histories, genres) == pytest.approx(0.0)


def test_summary_and_popularity_counts():
    train_users = np.array([1, 1, 2, 2, 2])
    train_items = np.array([1, 1, 1, 2, 3])
    from mmrec_tf.data.pipeline import Examples

    interactions, users = item_popularity(Examples(train_users, train_items, np.zeros((5, 1), int), {}), 3)
    assert interactions.tolist() == [0, 3, 1, 1] and users.tolist() == [0, 2, 1, 1]
    metrics = beyond_accuracy_metrics(np.array([[1, 2], [3, 0]]), np.zeros((2, 1), int), 3, interactions, users, 2,
                                      genres=np.array([[0], [1], [1], [1]]), embeddings=np.eye(4))
    assert metrics["coverage"] == 1.0
    assert metrics["long_tail_share"] == pytest.approx(2 / 3)  # item 1 (60 %) is the head
    assert metrics["ild_genres"] == 0.0 and metrics["ild_embeddings"] == 1.0


def test_user_group_report_values_gap_and_seeded_interval():
    values = np.array([1, 1, 1, 0, 1, 0, 0, 0], float)
    groups = np.array(["M", "M", "M", "M", "F", "F", "F", "F"])
    report = fairness.user_group_report(values, groups, metric="hr@10", column="gender", num_resamples=400, seed=3)
    assert report.groups["M"]["value"] == 0.75 and report.groups["F"]["value"] == 0.25
    assert (report.best, report.worst, report.gap, report.ratio) == ("M", "F", 0.5, 1 / 3)
    assert report.gap_low < 0.5 < report.gap_high
    again = fairness.user_group_report(values, groups, num_resamples=400, seed=3)
    assert (again.gap_low, again.gap_high) == (report.gap_low, report.gap_high)
    # bootstrap means of 4 Bernoulli draws with p = .75 take values in {0, .25, .5, .75, 1}
    assert report.groups["M"]["low"] in (0.25, 0.5) and report.groups["M"]["high"] == 1.0


def test_user_groups_from_users_table():
    users = pd.DataFrame({"age": [17, 30, 61], "occupation": ["student", "", "writer"]}, index=["a", "b", "c"])
    assert fairness.user_groups(users, ["c", "a", "b"], "age").tolist() == ["56+", "under 18", "25-34"]
    assert fairness.user_groups(users, ["b", "z"], "occupation").tolist() == ["unknown", "unknown"]
    with pytest.raises(ValueError, match="no column 'gender'"):
        fairness.user_groups(users, ["a"], "gender")


def test_item_group_exposure_by_popularity_decile():
    popularity = np.arange(21)  # items 1..20 with popularity 1..20: deciles of 2 items each
    deciles = fairness.popularity_deciles(popularity)
    assert deciles[1:].tolist() == [i // 2 for i in range(20)]
    lists = np.array([[20, 19], [20, 1]])
    hits = np.array([[True, False], [False, True]])
    table = fairness.item_group_exposure(lists, deciles, popularity, hits=hits)
    assert table.loc[9, "exposure_share"] == 0.75 and table.loc[0, "exposure_share"] == 0.25
    assert table.loc[9, "hit_share"] == 0.5 and table.loc[0, "interaction_share"] == pytest.approx(3 / 210)
    assert table["catalog_share"].tolist() == [0.1] * 10


def test_recommendation_list_hits():
    lists = RecommendationLists(np.array([1, 2, 3]), np.zeros((3, 1), int), np.array([5, 6, 7]),
                                np.array([[5, 1, 2], [1, 6, 2], [1, 2, 3]]))
    assert lists.hits(1).tolist() == [1, 0, 0] and lists.hits(2).tolist() == [1, 1, 0]
