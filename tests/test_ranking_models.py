"""Ranking family: label builders, Dice, target attention, article_lstm / embedding_mlp / din, evaluator."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pandas as pd
import pytest

from mmrec_tf.data.feature_space import FeatureSpace
from mmrec_tf.data.labels import (
    build_rating_examples,
    label_by_threshold,
    label_from_column,
    sample_negatives,
    sampling_distribution,
    user_positives,
)
from mmrec_tf.data.dataset import Dataset
from mmrec_tf.data.pipeline import VISIBLE_HISTORY, Examples, build_examples
from mmrec_tf.data.schema import Feature, Schema
from mmrec_tf.data.sources import make_synthetic
from mmrec_tf.data.splits import leave_last_out, temporal_fraction_split
from mmrec_tf.evaluation.ranking_evaluator import evaluate_ranking, predict_examples
from mmrec_tf.evaluation.ranking_metrics import auc, log_loss
from mmrec_tf.layers.dice import Dice
from mmrec_tf.layers.target_attention import TargetAttention
from mmrec_tf.models import DIN, ArticleLSTM, EmbeddingMLP, RankingModel
from mmrec_tf.registry import create_model, list_models
from mmrec_tf.training import TrainingConfig, shard_refusal, train_model, training_dataset

TINY = {"article_lstm": {"embedding_dim": 8, "lstm_units": 8},
        "embedding_mlp": {"embedding_dim": 8, "hidden_units": [16], "max_history": 6},
        "din": {"embedding_dim": 8, "hidden_units": [16], "attention_units": [8], "max_history": 6}}


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# === label builders ===


def _examples(n=4, **extras):
    return Examples(np.arange(1, n + 1, dtype=np.int32), np.arange(1, n + 1, dtype=np.int32),
                    np.zeros((n, 2), np.int32), {k: np.asarray(v, np.float32) for k, v in extras.items()})


def test_label_by_threshold_marks_ratings_at_or_above():
    labelled = label_by_threshold(_examples(rating=[1, 3.9, 4, 5]), threshold=4.0)
    assert labelled.extras["label"].tolist() == [0.0, 0.0, 1.0, 1.0]
    assert labelled.extras["rating"].tolist() == pytest.approx([1, 3.9, 4, 5])
    with pytest.raises(ValueError, match="no 'rating' column"):
        label_by_threshold(_examples())
    with pytest.raises(ValueError, match="field 'rating' of example 1 is nan"):
        label_by_threshold(_examples(rating=[4, np.nan, 1, 2]))


def test_label_from_column_keeps_binary_labels_and_names_bad_rows():
    assert label_from_column(_examples(label=[1, 0, 0, 1])).extras["label"].tolist() == [1, 0, 0, 1]
    with pytest.raises(ValueError, match="example 2 has 0.5"):
        label_from_column(_examples(label=[1, 0, 0.5, 1]))
    with pytest.raises(ValueError, match="no 'label' column"):
        label_from_column(_examples(rating=[1, 2, 3, 4]))


@pytest.mark.parametrize("sampler", ["uniform", "popularity"])
def test_sampled_negatives_are_never_a_known_positive(sampler):
    dataset = make_synthetic(num_users=30, num_items=12, num_clusters=3, interactions_per_user=8, seed=1)
    split = leave_last_out(dataset)
    space = FeatureSpace.build(dataset)
    examples = build_examples(split, space, max_history=4)
    known = user_positives(*examples.values())
    out = sample_negatives(examples["train"], space.num_items, ratio=3, sampler=sampler, known_positives=known,
                           seed=7)
    assert len(out) == 4 * len(examples["train"])
    assert out.extras["label"].tolist() == [1.0, 0.0, 0.0, 0.0] * len(examples["train"])
    negatives = out.extras["label"] == 0
    assert negatives.sum() == 3 * len(examples["train"])
    for user, item in zip(out.user_id[negatives], out.item_id[negatives]):
        assert item not in known[int(user)] and 1 <= item <= space.num_items
    np.testing.assert_array_equal(out.history[1], examples["train"].history[0])
    np.testing.assert_array_equal(out.extras["timestamp"][:4], [examples["train"].extras["timestamp"][0]] * 4)
    again = sample_negatives(examples["train"], space.num_items, ratio=3, sampler=sampler, known_positives=known,
                             seed=7)
    np.testing.assert_array_equal(out.item_id, again.item_id)


def test_popularity_sampler_frequencies_follow_count_to_the_alpha():
    # counts 1, 4, 9, 16 for items 1-4, alpha 0.5 -> weights 1, 2, 3, 4 -> 0.1, 0.2, 0.3, 0.4;
    # item 5 (count 25) is the user's positive and is never drawn.
    counts = np.array([0, 1, 4, 9, 16, 25])
    np.testing.assert_allclose(sampling_distribution(5, "popularity", 0.5, counts), [0, 1, 2, 3, 4, 5] / np.float64(15))
    examples = Examples(np.ones(4000, np.int32), np.full(4000, 5, np.int32), np.zeros((4000, 1), np.int32), {})
    out = sample_negatives(examples, num_items=5, ratio=5, sampler="popularity", alpha=0.5, item_counts=counts,
                           known_positives={1: np.array([5])}, seed=3)
    drawn = out.item_id[out.extras["label"] == 0]
    frequencies = np.bincount(drawn, minlength=6)[1:5] / len(drawn)
    np.testing.assert_allclose(frequencies, [0.1, 0.2, 0.3, 0.4], atol=0.012)
    assert not (drawn == 5).any()


def test_sample_negatives_rejects_a_user_without_any_possible_negative():
    examples = Examples(np.array([1], np.int32), np.array([1], np.int32), np.zeros((1, 1), np.int32), {})
    with pytest.raises(ValueError, match="user index 1 has every sampleable item"):
        sample_negatives(examples, num_items=2, known_positives={1: np.array([1, 2])})


def test_build_rating_examples_histories():
    dataset = make_synthetic(num_users=6, num_items=10, num_clusters=2, interactions_per_user=12, seed=2)
    split = temporal_fraction_split(dataset, 0.2, 0.2)
    space = FeatureSpace.build(dataset)
    everything = build_examples(split, space, max_history=5)
    all_history = build_rating_examples(split, space, max_history=5, threshold=4.0, history="all")
    for name in everything:
        np.testing.assert_array_equal(all_history[name].history, everything[name].history)
        np.testing.assert_array_equal(all_history[name].extras["label"], everything[name].extras["rating"] >= 4)
    # threshold 0 likes everything: the positive history is the full history
    liked_all = build_rating_examples(split, space, max_history=5, threshold=0.0, history="positive")
    np.testing.assert_array_equal(liked_all["test"].history, everything["test"].history)
    # by hand for the first user's first test row: the 5 most recent train/valid items rated >= 4
    log = split.log
    first_user = log[log["user_id"] == log["user_id"].iloc[0]]
    row = first_user[first_user["split"] == "test"].index[0]
    past = first_user[(first_user.index < row) & (first_user["rating"] >= 4)]["item_id"].tolist()[-5:]
    expected = list(space.item_vocab.lookup(past)) + [0] * (5 - len(past))
    positive = build_rating_examples(split, space, max_history=5, history="positive")
    assert positive["test"].history[0].tolist() == expected


def _toy_ratings():
    """u1 rates a..j (ratings 5 1 4 2 3 5 4 1 2 5), u2 rates j i h g f (1 2 3 4 5), one per time step."""
    schema = Schema([Feature("user_id", "id", "user"), Feature("item_id", "id", "item"),
                     Feature("rating", "label", "interaction"), Feature("timestamp", "timestamp", "interaction")])
    log = pd.DataFrame({"user_id": ["u1"] * 10 + ["u2"] * 5, "item_id": list("abcdefghij") + list("jihgf"),
                        "rating": [5.0, 1, 4, 2, 3, 5, 4, 1, 2, 5] + [1, 2, 3, 4, 5],
                        "timestamp": list(range(10)) + list(range(5))})
    return Dataset(name="toy", interactions=log, schema=schema)


def test_rated_history_holds_each_behaviours_own_earlier_rating():
    dataset = _toy_ratings()
    split = temporal_fraction_split(dataset, 0.2, 0.2)  # u1: 6 train, 2 valid, 2 test; u2: 3 / 1 / 1
    space = FeatureSpace.build(dataset)
    rated = build_rating_examples(split, space, max_history=4, history="rated")
    letters = lambda row: "".join(space.item_vocab.ids[i - 1] if i else "." for i in row)  # noqa: E731

    train = rated["train"]
    assert [letters(row) for row in train.history[:6]] == ["....", "a...", "ab..", "abc.", "abcd", "bcde"]
    assert train.extras["history_rating"][:6].tolist() == [[0, 0, 0, 0], [5, 0, 0, 0], [5, 1, 0, 0],
                                                           [5, 1, 4, 0], [5, 1, 4, 2], [1, 4, 2, 3]]
    # valid rows (g, h) see train rows only: h's history has not g (rated 4 just before it)
    assert [letters(row) for row in rated["valid"].history[:2]] == ["cdef", "cdef"]
    assert rated["valid"].extras["history_rating"][:2].tolist() == [[4, 2, 3, 5], [4, 2, 3, 5]]
    # test rows (i, j) see train and valid rows, never an earlier test row (i, rated 2)
    assert [letters(row) for row in rated["test"].history[:2]] == ["efgh", "efgh"]
    assert rated["test"].extras["history_rating"][:2].tolist() == [[3, 5, 4, 1], [3, 5, 4, 1]]
    # u2 rated j 1 (u1 rated it 5): a history holds the user's own rating of the item
    assert letters(rated["test"].history[2]) == "jihg"
    assert rated["test"].extras["history_rating"][2].tolist() == [1, 2, 3, 4]
    # the items are those of history="all"; "positive" keeps the liked ones only
    all_items = build_rating_examples(split, space, max_history=4, history="all")
    for name in rated:
        np.testing.assert_array_equal(rated[name].history, all_items[name].history)
    positive = build_rating_examples(split, space, max_history=4, history="positive")
    assert letters(positive["test"].history[0]) == "acfg" and "history_rating" not in positive["test"].extras


def test_rated_history_matches_a_brute_force_replay_of_the_log():
    dataset = make_synthetic(num_users=8, num_items=10, num_clusters=2, interactions_per_user=15, seed=5)
    split = temporal_fraction_split(dataset, 0.2, 0.2)
    space = FeatureSpace.build(dataset)
    rated = build_rating_examples(split, space, max_history=5, history="rated")
    log = split.log
    for name, examples in rated.items():
        rows = log[log["split"] == name]
        assert len(rows) == len(examples)
        for k, (_, row) in enumerate(rows.iterrows()):
            earlier = log[(log["user_id"] == row["user_id"]) & (log["position"] < row["position"])
                          & log["split"].isin(VISIBLE_HISTORY[name])].tail(5)
            width = len(earlier)
            assert examples.history[k, :width].tolist() == space.item_vocab.lookup(earlier["item_id"]).tolist()
            assert examples.extras["history_rating"][k, :width].tolist() == earlier["rating"].astype(int).tolist()
            assert not examples.history[k, width:].any() and not examples.extras["history_rating"][k, width:].any()


def test_rated_history_needs_whole_ratings():
    dataset = _toy_ratings()
    dataset.interactions.loc[3, "rating"] = 3.5
    split = temporal_fraction_split(dataset, 0.2, 0.2)
    with pytest.raises(ValueError, match="whole numbers >= 1 .* row 3 has 3.5"):
        build_rating_examples(split, FeatureSpace.build(dataset), max_history=4, history="rated")
    with pytest.raises(ValueError, match="history must be one of"):
        build_rating_examples(split, FeatureSpace.build(dataset), history="liked")


def test_temporal_fraction_split_keeps_each_users_future_for_test():
    dataset = make_synthetic(num_users=5, num_items=10, num_clusters=2, interactions_per_user=20, seed=4)
    split = temporal_fraction_split(dataset, valid_fraction=0.1, test_fraction=0.25)
    for _, rows in split.log.groupby("user_id"):
        assert rows["split"].tolist() == ["train"] * 13 + ["valid"] * 2 + ["test"] * 5
        assert rows["timestamp"].is_monotonic_increasing
    with pytest.raises(ValueError, match="test_fraction must be in"):
        temporal_fraction_split(dataset, 0.1, 1.5)


# === layers ===


def test_dice_matches_numpy_in_training_and_inference():
    x = np.random.default_rng(0).normal(size=(6, 3)).astype("float32") * [1.0, 2.0, 0.5] + [0.0, 1.0, -1.0]
    dice = Dice(momentum=0.9, epsilon=1e-8)
    dice.build(x.shape)
    alpha = np.array([0.1, -0.2, 0.3], "float32")
    dice.alpha.assign(alpha)
    mean, variance = x.mean(axis=0), x.var(axis=0)
    gate = _sigmoid((x - mean) / np.sqrt(variance + 1e-8))
    np.testing.assert_allclose(dice(x, training=True), gate * x + (1 - gate) * alpha * x, rtol=1e-5, atol=1e-6)
    moving_mean, moving_variance = 0.1 * mean, 0.9 + 0.1 * variance
    np.testing.assert_allclose(dice.moving_mean, moving_mean, rtol=1e-5)
    np.testing.assert_allclose(dice.moving_variance, moving_variance, rtol=1e-5)
    gate = _sigmoid((x - moving_mean) / np.sqrt(moving_variance + 1e-8))
    np.testing.assert_allclose(dice(x, training=False), gate * x + (1 - gate) * alpha * x, rtol=1e-5, atol=1e-6)


def test_dice_batch_statistics_skip_masked_positions():
    x = np.arange(12, dtype="float32").reshape(2, 3, 2)
    mask = np.array([[True, True, False], [True, False, False]])
    dice = Dice(momentum=0.0)
    dice(x, training=True, mask=mask)
    valid = x[mask]
    np.testing.assert_allclose(dice.moving_mean, valid.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(dice.moving_variance, valid.var(axis=0), rtol=1e-6)


def test_target_attention_matches_numpy_and_masks_padding():
    rng = np.random.default_rng(1)
    history = rng.normal(size=(2, 4, 3)).astype("float32")
    target = rng.normal(size=(2, 3)).astype("float32")
    mask = np.array([[True, True, True, False], [True, False, False, False]])
    attention = TargetAttention(hidden_units=(5,), activation="prelu")
    pooled, weights = attention(history, target, mask=mask)
    broadcast = np.broadcast_to(target[:, None], history.shape)
    features = np.concatenate([history, broadcast, history - broadcast, history * broadcast], axis=-1)
    kernel, bias = (w.numpy() for w in attention.dense_layers[0].weights)
    hidden = features @ kernel + bias
    hidden = np.where(hidden > 0, hidden, 0.25 * hidden)
    out_kernel, out_bias = (w.numpy() for w in attention.output_layer.weights)
    expected = np.where(mask, (hidden @ out_kernel + out_bias)[..., 0], 0.0)
    np.testing.assert_allclose(weights, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pooled, np.einsum("bl,bld->bd", expected, history), rtol=1e-5, atol=1e-6)
    assert (np.asarray(weights)[~mask] == 0).all()


def test_target_attention_softmax_normalises_over_the_unmasked_positions_and_pools_values():
    rng = np.random.default_rng(2)
    history = rng.normal(size=(2, 4, 3)).astype("float32")
    target = rng.normal(size=(2, 3)).astype("float32")
    values = rng.normal(size=(2, 4, 5)).astype("float32")
    mask = np.array([[True, True, True, False], [False, False, False, False]])
    raw = TargetAttention(hidden_units=(5,), activation="prelu")
    normalised = TargetAttention(hidden_units=(5,), activation="prelu", softmax=True)
    raw(history, target, mask=mask)
    normalised(history, target, mask=mask)
    normalised.set_weights(raw.get_weights())
    _, scores = raw(history, target, mask=mask)
    pooled, weights = normalised(history, target, mask=mask, values=values)
    first = np.exp(np.asarray(scores)[0, :3])
    np.testing.assert_allclose(weights[0], np.r_[first / first.sum(), 0.0], rtol=1e-5, atol=1e-6)
    assert (np.asarray(weights)[1] == 0).all() and np.isfinite(pooled).all()  # only padding: no NaN
    np.testing.assert_allclose(pooled, np.einsum("bl,bld->bd", weights, values), rtol=1e-5, atol=1e-6)


# === models ===


def _interest_data(seed, num_users, rows_per_user, unknown_users=False):
    """Labels from item quality and whether the item is in the user's cluster (which the history shows).

    Items 1..30, cluster = item % 3, quality +-1. Each user likes one cluster; the history is
    4 to 6 items of that cluster. P(click) = sigmoid(2.5 * quality + 2.5 * (+1 if same cluster else -1)).
    """
    rng = np.random.default_rng(seed)
    quality = np.where(np.random.default_rng(99).random(31) < 0.5, -1.0, 1.0)
    items = np.arange(1, 31)
    users, targets, histories, labels = [], [], [], []
    for user in range(1, num_users + 1):
        cluster = rng.integers(3)
        own = items[items % 3 == cluster]
        history = np.zeros(6, np.int32)
        length = 4 + rng.integers(3)
        history[:length] = rng.choice(own, size=length, replace=False)
        for _ in range(rows_per_user):
            item = rng.integers(1, 31)
            match = 1.0 if item % 3 == cluster else -1.0
            users.append(0 if unknown_users else user)
            targets.append(item)
            histories.append(history)
            labels.append(float(rng.random() < _sigmoid(2.5 * quality[item] + 2.5 * match)))
    return Examples(np.array(users, np.int32), np.array(targets, np.int32), np.array(histories, np.int32),
                    {"label": np.array(labels, np.float32)})


@pytest.fixture(scope="module")
def interest_data():
    return {"train": _interest_data(0, num_users=80, rows_per_user=20),
            "test": _interest_data(1, num_users=30, rows_per_user=20, unknown_users=True)}


@pytest.fixture(scope="module")
def trained(interest_data):
    models = {}
    for name, arguments in TINY.items():
        keras.utils.set_random_seed(0)
        model = create_model(name, **arguments, num_users=80, num_items=30)
        config = TrainingConfig(epochs=8, batch_size=64, learning_rate=0.01, jit_compile=False)
        train_model(model, interest_data["train"], config, verbose=0)
        models[name] = model
    return models


def test_ranking_models_are_registered():
    assert {"article_lstm", "embedding_mlp", "din"} <= set(list_models(task="ranking"))


@pytest.mark.parametrize("name", list(TINY))
def test_each_model_beats_random_scores(trained, interest_data, name):
    test = interest_data["test"]
    random_auc = auc(test.extras["label"], np.random.default_rng(0).random(len(test)))
    model_auc = auc(test.extras["label"], predict_examples(trained[name], test))
    assert model_auc > random_auc + 0.1, (name, model_auc, random_auc)


def test_history_models_use_the_history(trained, interest_data):
    # Test users are unknown (index 0): only the history tells which cluster they like, and
    # article_lstm's score is a user bias plus an item bias, so it can only rank by item quality.
    test = interest_data["test"]
    scores = {name: auc(test.extras["label"], predict_examples(model, test)) for name, model in trained.items()}
    assert scores["embedding_mlp"] > scores["article_lstm"] + 0.05, scores
    assert scores["din"] > scores["article_lstm"] + 0.05, scores


def test_evaluate_ranking_reports_exact_metrics(trained, interest_data):
    test = interest_data["test"]
    report = evaluate_ranking(trained["din"], test)
    metrics = report.metrics
    scores = predict_examples(trained["din"], test)
    assert metrics["auc"] == pytest.approx(auc(test.extras["label"], scores))
    # every test row has user index 0, so GAUC counts one user and equals AUC
    assert metrics["gauc_users"] == 1 and metrics["gauc"] == pytest.approx(metrics["auc"])
    assert metrics["num_examples"] == report.num_examples == len(test)
    assert metrics["log_loss"] == pytest.approx(log_loss(test.extras["label"], scores))
    assert type(metrics["gauc_users"]) is int and type(metrics["log_loss"]) is float  # as run.json records them


@pytest.fixture(scope="module")
def synthetic_space():
    return FeatureSpace.build(make_synthetic(num_users=8, num_items=12, num_clusters=2, interactions_per_user=6))


FEATURES = {"user_id": np.array([1, 2, 0], np.int32),
            "history": np.array([[1, 2, 3, 0, 0, 0], [4, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]], np.int32),
            "item_id": np.array([5, 6, 7], np.int32)}
CANDIDATES = np.array([[5, 6, 1, 12], [2, 3, 4, 0], [7, 8, 9, 10]], np.int32)


@pytest.mark.parametrize("name", list(TINY))
def test_keras_save_and_load_gives_identical_predictions(synthetic_space, name, tmp_path):
    keras.utils.set_random_seed(0)
    model = create_model(name, space=synthetic_space, **TINY[name])
    before = model(FEATURES)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(model) and loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded(FEATURES), before)
    np.testing.assert_array_equal(loaded.score_candidates(FEATURES, CANDIDATES),
                                  model.score_candidates(FEATURES, CANDIDATES))
    if name != "article_lstm":
        assert set(model.item_feature_specs) == {"genres", "title"} and set(model.user_feature_specs) == {"segment"}
        np.testing.assert_array_equal(loaded.item_encoder.tables["title"], model.item_encoder.tables["title"])


@pytest.mark.parametrize("name", list(TINY))
def test_score_candidates_equals_scoring_each_pair(synthetic_space, name):
    model = create_model(name, space=synthetic_space, **TINY[name])
    scores = np.asarray(model.score_candidates(FEATURES, CANDIDATES))
    for column in range(CANDIDATES.shape[1]):
        single = dict(FEATURES, item_id=CANDIDATES[:, column])
        np.testing.assert_allclose(scores[:, column], model(single), rtol=1e-5, atol=1e-6)


def test_din_attention_is_zero_on_padding_unnormalised_and_target_dependent(synthetic_space):
    keras.utils.set_random_seed(3)
    model = create_model("din", space=synthetic_space, **TINY["din"])
    weights = np.asarray(model.attention_weights(FEATURES, CANDIDATES))
    assert weights.shape == (3, 4, 6)
    padding = np.broadcast_to((FEATURES["history"] == 0)[:, None, :], weights.shape)
    assert (weights[padding] == 0).all() and (weights[~padding] != 0).all()
    assert not np.allclose(weights[0].sum(axis=-1), 1.0)
    assert not np.allclose(weights[0, 0], weights[0, 1])
    # the weights are what the model pools with: recompute DIN's pooled history by hand
    history_vectors = np.asarray(model.item_encoder(FEATURES["history"]))
    pooled = model.pool_history(history_vectors, FEATURES["history"] != 0,
                                model.item_encoder(CANDIDATES[:, 0]))
    np.testing.assert_allclose(pooled, np.einsum("bl,bld->bd", weights[:, 0], history_vectors), rtol=1e-5, atol=1e-6)


def test_article_lstm_ignores_the_history(synthetic_space):
    model = create_model("article_lstm", space=synthetic_space, **TINY["article_lstm"])
    other = dict(FEATURES, history=np.roll(FEATURES["history"], 1, axis=0))
    np.testing.assert_array_equal(model(FEATURES), model(other))
    assert not ArticleLSTM.uses_history and EmbeddingMLP.uses_history and DIN.uses_history


def test_an_unregistered_ranking_model_gets_its_examples_checked_and_shards_refused():
    class Constant(RankingModel):  # a user's own ranking model: a RankingModel subclass, not in the catalog
        def raw_score(self, features, training=False):
            return keras.ops.zeros_like(keras.ops.cast(features["item_id"], "float32"))

    model = Constant(num_users=4, num_items=4)
    with pytest.raises(ValueError, match="no 'label' field"):
        training_dataset(model, _examples(3, rating=[5, 3, 4]), 2)
    assert shard_refusal(model).startswith("Constant is a ranking model and trains on labelled examples;")


def test_ranking_model_rejects_unusable_examples(synthetic_space):
    model = create_model("din", space=synthetic_space, **TINY["din"])
    examples = _examples(3, rating=[5, 3, 4])
    with pytest.raises(ValueError, match="no 'label' field"):
        training_dataset(model, examples, 2)
    with pytest.raises(ValueError, match="must be 0 or 1 .* example 0 has 5.0"):
        training_dataset(model, _examples(3, label=[5, 3, 4]), 2)
    with pytest.raises(ValueError, match="histories of length 2 but the model serves max_history=6"):
        training_dataset(model, label_by_threshold(examples), 2)
    with pytest.raises(ValueError, match="activation must be"):
        DIN(num_users=2, num_items=2, activation="swishy")


def test_mini_batch_aware_l2_matches_numpy():
    model = EmbeddingMLP(num_users=3, num_items=5, embedding_dim=4, hidden_units=(8,), max_history=3,
                         embedding_l2=0.1)
    train = Examples(np.array([1, 1, 2], np.int32), np.array([2, 3, 2], np.int32),
                     np.array([[1, 0, 0], [1, 2, 0], [4, 0, 0]], np.int32), {"label": np.array([1, 0, 1], "float32")})
    model.prepare(train)
    # item 1: 2 occurrences, 2: 3, 3: 1, 4: 1, 5: never (counted as 1); users 1: 2, 2: 1
    np.testing.assert_array_equal(model.item_frequency, [5, 2, 3, 1, 1, 1])
    np.testing.assert_array_equal(model.user_frequency, [1, 2, 1, 1])
    batch = {"user_id": np.array([1, 3], np.int32), "item_id": np.array([5, 2], np.int32),
             "history": np.array([[1, 2, 0], [0, 0, 0]], np.int32), "label": np.array([1.0, 0.0], "float32")}
    items = model.item_encoder.id_embedding.embeddings.numpy()
    users = model.user_encoder.id_embedding.embeddings.numpy()
    norm = lambda row: float(np.sum(row ** 2))  # noqa: E731
    expected = 0.1 * (norm(items[5]) / 1 + 2 * norm(items[2]) / 3 + norm(items[1]) / 2
                      + norm(users[1]) / 2 + norm(users[3]) / 1)
    assert float(model.regularization(batch)) == pytest.approx(expected, rel=1e-5)
    predictions = model(batch)
    with_penalty = model.compute_loss(x=batch, y_pred=predictions, training=True)
    without = model.compute_loss(x=batch, y_pred=predictions, training=False)
    assert float(with_penalty) - float(without) == pytest.approx(expected, rel=1e-4)


# === rating-aware behaviours ===

GENRES = {"genres": {"kind": "multi_categorical", "shape": [4], "cardinality": 4}}


def _genre_table():
    """Items 1..40, genre = item % 4 (one-hot); row 0 (padding) has none."""
    table = np.zeros((41, 4), "float32")
    table[np.arange(1, 41), np.arange(1, 41) % 4] = 1.0
    return table


def _liked_similar_data(seed, num_users, targets_per_user=4):
    """Planted signal: a target is liked iff the user rated its genre's history movies high.

    Every user likes 2 of the 4 genres; the history holds 2 movies of each genre (8 in all, shuffled),
    rated 4-5 in a liked genre and 1-2 otherwise. P(click) = 0.9 on a liked genre, 0.1 otherwise. Users
    are all unknown (index 0). Summed over the history, the item vectors and the rating vectors are the
    same for every user (2 movies per genre, 4 high and 4 low ratings), so sum pooling cannot tell which
    genres were liked; attention to the target's genre can read their ratings.
    """
    rng = np.random.default_rng(seed)
    items = np.arange(1, 41)
    histories, ratings, targets, labels = [], [], [], []
    for _ in range(num_users):
        liked = np.zeros(4, bool)
        liked[rng.choice(4, size=2, replace=False)] = True
        history = rng.permutation(np.concatenate([rng.choice(items[items % 4 == g], 2, replace=False)
                                                  for g in range(4)]))
        rating = np.where(liked[history % 4], rng.integers(4, 6, size=8), rng.integers(1, 3, size=8))
        for target in rng.integers(1, 41, size=targets_per_user):
            histories.append(history)
            ratings.append(rating)
            targets.append(target)
            labels.append(float(rng.random() < (0.9 if liked[target % 4] else 0.1)))
    count = len(targets)
    return Examples(np.zeros(count, np.int32), np.array(targets, np.int32), np.array(histories, np.int32),
                    {"history_rating": np.array(ratings, np.int32), "label": np.array(labels, np.float32)})


def _genre_model(cls, **arguments):
    keras.utils.set_random_seed(0)
    model = cls(num_users=1, num_items=40, item_feature_specs=GENRES, embedding_dim=8, hidden_units=[16],
                max_history=8, **arguments)
    model.item_encoder.set_tables({"genres": _genre_table()})
    return model


def test_rating_aware_din_learns_how_the_user_rated_similar_movies():
    train, test = _liked_similar_data(0, num_users=1200), _liked_similar_data(1, num_users=300)
    models = {"din": _genre_model(DIN, rating_levels=5, attention_units=[8], attention_softmax=True,
                                  attention_features="content"),
              "sum_pooling": _genre_model(EmbeddingMLP, rating_levels=5),
              "din_without_ratings": _genre_model(DIN, attention_units=[8])}
    scores = {}
    for name, model in models.items():
        train_model(model, train, TrainingConfig(epochs=6, batch_size=64, learning_rate=0.01, jit_compile=False),
                    verbose=0)
        scores[name] = auc(test.extras["label"], predict_examples(model, test))
    random_auc = auc(test.extras["label"], np.random.default_rng(0).random(len(test)))
    # the Bayes AUC is about 0.9; the two others have nothing to go on
    assert scores["din"] > 0.8 and scores["din"] > random_auc + 0.25, scores
    assert scores["din"] > scores["sum_pooling"] + 0.25, scores
    assert scores["din"] > scores["din_without_ratings"] + 0.25, scores


def test_rating_aware_model_checks_its_history_rating_feature():
    model = _genre_model(EmbeddingMLP, rating_levels=5)
    examples = _liked_similar_data(0, num_users=2)
    training_dataset(model, examples, 4)
    without = Examples(examples.user_id, examples.item_id, examples.history, {"label": examples.extras["label"]})
    with pytest.raises(ValueError, match="needs the examples' 'history_rating' field .* history='rated'"):
        training_dataset(model, without, 4)
    too_high = dict(examples.extras, history_rating=examples.extras["history_rating"] + 1)
    with pytest.raises(ValueError, match="history_rating must be 1..5 at every history item and 0 at padding"):
        training_dataset(model, Examples(examples.user_id, examples.item_id, examples.history, too_high), 4)
    with pytest.raises(ValueError, match="needs the 'history_rating' feature"):
        model({"user_id": examples.user_id[:1], "history": examples.history[:1], "item_id": examples.item_id[:1]})
    with pytest.raises(ValueError, match="rating_levels must be a whole number"):
        EmbeddingMLP(num_users=2, num_items=2, rating_levels=2.5)


def test_rated_din_saves_loads_and_scores_candidates_like_each_pair(synthetic_space, tmp_path):
    keras.utils.set_random_seed(0)
    model = create_model("din", space=synthetic_space, **TINY["din"], rating_levels=5, attention_softmax=True,
                         attention_features="content")
    features = dict(FEATURES, history_rating=np.where(FEATURES["history"] > 0, [[5, 1, 3, 0, 0, 0]], 0))
    before = model(features)
    path = tmp_path / "rated_din.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.get_config() == model.get_config() and loaded.get_config()["attention_features"] == "content"
    np.testing.assert_array_equal(loaded(features), before)
    scores = np.asarray(model.score_candidates(features, CANDIDATES))
    for column in range(CANDIDATES.shape[1]):
        np.testing.assert_allclose(scores[:, column], model(dict(features, item_id=CANDIDATES[:, column])),
                                   rtol=1e-5, atol=1e-6)
    # the ratings matter: the same items rated otherwise score otherwise
    flipped = dict(features, history_rating=np.where(features["history_rating"] > 0, 6 - features["history_rating"], 0))
    assert not np.allclose(model.score_candidates(flipped, CANDIDATES)[0], scores[0])


def test_content_attention_ignores_the_id_embeddings(synthetic_space):
    keras.utils.set_random_seed(1)
    model = create_model("din", space=synthetic_space, **TINY["din"], attention_features="content")
    before = np.asarray(model.attention_weights(FEATURES, CANDIDATES))
    scores = np.asarray(model.score_candidates(FEATURES, CANDIDATES))
    table = model.item_encoder.id_embedding.embeddings
    table.assign(np.random.default_rng(0).normal(size=table.shape).astype("float32"))
    np.testing.assert_allclose(model.attention_weights(FEATURES, CANDIDATES), before, rtol=1e-5, atol=1e-6)
    assert not np.allclose(model.score_candidates(FEATURES, CANDIDATES), scores)  # the pooled vectors use them
    with pytest.raises(ValueError, match="attention_features must be one of"):
        DIN(num_users=2, num_items=2, attention_features="ids")
    with pytest.raises(ValueError, match="has none"):
        DIN(num_users=2, num_items=2, attention_features="content")


@pytest.mark.parametrize("name", ["embedding_mlp", "din", "bst"])
def test_ranking_models_build_on_a_space_with_vector_item_features(name):
    """ML-100K-mm has plot and poster vectors: the history models take them, absent rows included."""
    from synthetic_multimodal import multimodal_synthetic

    space = FeatureSpace.build(multimodal_synthetic(num_users=8, num_items=12, num_clusters=2))
    assert {"plot", "poster"} <= set(space.item_features)
    model = create_model(name, space=space, embedding_dim=4, hidden_units=[4], max_history=3)
    table = keras.ops.convert_to_numpy(model.item_encoder.tables["poster"])
    np.testing.assert_allclose(table, space.item_features["poster"].values, rtol=1e-6)
    scores = keras.ops.convert_to_numpy(model({"user_id": np.array([1, 2]), "history": np.array([[1, 2, 0], [3, 0, 0]]),
                                               "item_id": np.array([4, 5])}))
    assert scores.shape[0] == 2 and np.isfinite(scores).all()
