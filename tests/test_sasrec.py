"""SASRec: causal and padding masks, the per-position layout, a planted sequence it must learn, the export."""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from mmrec_tf.data.dataset import Dataset
from mmrec_tf.data.pipeline import next_item_sequences
from mmrec_tf.data.schema import Feature, Schema
from mmrec_tf.experiment import prepare_data, run
from mmrec_tf.export.saved_model import export_model
from mmrec_tf.models import SASRec
from mmrec_tf.registry import create_model
from mmrec_tf.tasks import Retrieval
from mmrec_tf.training import TrainingConfig, epoch_steps, train_model, training_dataset

from conftest import TINY_MAX_HISTORY

TINY = {"embedding_dim": 8, "num_heads": 2, "num_blocks": 2, "max_history": TINY_MAX_HISTORY}


def test_position_t_sees_only_items_up_to_t(tiny_space):
    model = create_model("sasrec", space=tiny_space, dropout=0.0, **TINY)
    history = np.array([[3, 7, 1, 9, 4, 2]], "int32")
    changed = history.copy()
    changed[0, 4] = 11
    before = keras.ops.convert_to_numpy(model.encode_sequence(history))
    after = keras.ops.convert_to_numpy(model.encode_sequence(changed))
    np.testing.assert_array_equal(after[0, :4], before[0, :4])
    assert np.abs(after[0, 4:] - before[0, 4:]).min(axis=-1).max() > 0  # positions 4 and 5 see the change


def test_padding_leaves_the_user_vector_unchanged(tiny_space):
    model = create_model("sasrec", space=tiny_space, dropout=0.0, **TINY)
    short = {"user_id": np.array([1]), "history": np.array([[3, 7, 1]], "int32")}
    padded = {"user_id": np.array([1]), "history": np.array([[3, 7, 1, 0, 0, 0]], "int32")}
    scattered = {"user_id": np.array([1]), "history": np.array([[0, 3, 0, 7, 1, 0, 0, 0, 0]], "int32")}
    expected = keras.ops.convert_to_numpy(model.encode_sequence(short["history"]))[0, 2]
    expected = expected / np.linalg.norm(expected)
    for features in (short, padded, scattered):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(model.encode_users(features))[0], expected,
                                   rtol=1e-5, atol=1e-6)


def test_next_item_sequences_predict_every_train_target_but_the_first_once(tiny_split, tiny_examples):
    train = tiny_examples["train"]
    sequences = next_item_sequences(train, max_history=4)
    for user in np.unique(train.user_id):
        ordered = train.item_id[train.user_id == user]
        rows = sequences.user_id == user
        pairs = sorted((h, n) for history, following in zip(sequences.history[rows],
                                                            sequences.extras["next_items"][rows])
                       for h, n in zip(history, following) if n)
        assert pairs == sorted(zip(ordered[:-1].tolist(), ordered[1:].tolist())), user



def test_batches_are_refused_before_prepare_or_without_any_history(tiny_space, tiny_examples):
    train = tiny_examples["train"]
    model = create_model("sasrec", space=tiny_space, logq_correction=True, full_softmax=False, **TINY)
    with pytest.raises(ValueError) as unprepared:
        training_dataset(model, train, 8)
    assert str(unprepared.value) == ("sasrec: call model.prepare(train_examples) before laying out its batches; "
                                     "logQ correction needs the training item frequencies")
    first_rows = (train.history == 0).all(axis=1)  # each user's first interaction: nothing before it
    firsts = type(train)(train.user_id[first_rows], train.item_id[first_rows], train.history[first_rows],
                         {key: value[first_rows] for key, value in train.extras.items()})
    model.prepare(train)
    with pytest.raises(ValueError) as empty:
        training_dataset(model, firsts, 8)
    assert str(empty.value) == f"sasrec: none of the {len(firsts)} examples has a history to learn from"


def test_a_sequence_stride_of_one_trains_a_window_ending_at_every_target(tiny_space, tiny_examples):
    train = tiny_examples["train"]
    model = create_model("sasrec", space=tiny_space, sequence_stride=1, **TINY)
    with_history = int(((train.history > 0).sum(axis=1) > 0).sum())
    assert epoch_steps(model, train, batch_size=1) == with_history
    assert SASRec.from_config(model.get_config()).sequence_stride == 1

def test_candidate_mask_drops_columns_as_negatives_and_keeps_each_positive():
    task = Retrieval()
    queries = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], "float32")
    candidates = np.array([[2.0, 0.0], [0.0, 1.0], [5.0, 5.0]], "float32")
    loss = task(queries, candidates, candidate_mask=np.array([True, True, False]))
    # row 0: logits [2, 0, (10 masked)] -> log(e^2 + e^0) - 2; row 1: [0, 1] -> log(1 + e) - 1;
    # row 2: its own positive 10 is kept, the others are 2 and 1
    expected = (np.log(np.exp(2) + 1) - 2) + (np.log(1 + np.e) - 1) + (np.log(np.exp(2) + np.e + np.exp(10)) - 10)
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def _successor_dataset(num_users=100, num_items=40, length=16, seed=0) -> Dataset:
    """Every user watches a run of consecutive items: item i is always followed by item i + 1 (mod num_items).

    Runs are longer than the history, so training sequences fill every position the test reads.
    """
    rng = np.random.default_rng(seed)
    rows = [(f"u{user}", f"i{(start + step) % num_items:02d}", step)
            for user, start in enumerate(rng.integers(0, num_items, num_users)) for step in range(length)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).astype({"timestamp": "int64"})
    schema = Schema([Feature("user_id", "id", "user"), Feature("item_id", "id", "item"),
                     Feature("timestamp", "timestamp", "interaction")])
    return Dataset(name="successor", interactions=frame, schema=schema)


def test_learns_that_item_i_is_followed_by_item_i_plus_1_where_an_untrained_model_cannot():
    data = prepare_data(_successor_dataset(), "leave_last_out", max_history=7)
    architecture = {"embedding_dim": 16, "num_blocks": 1, "num_heads": 1, "dropout": 0.0, "max_history": 7,
                    "full_softmax": True, "logq_correction": False}
    training = {"batch_size": 32, "learning_rate": 0.01, "jit_compile": False, "seed": 0}
    untrained = run("sasrec", data, training={**training, "epochs": 0}, ks=(1,), verbose=0, **architecture)
    trained = run("sasrec", data, training={**training, "epochs": 30}, ks=(1,), verbose=0, **architecture)
    assert untrained.test.metrics["hr@1"] < 0.15  # chance: 1 of the 25 or more unseen items
    assert trained.test.metrics["hr@1"] > 0.95


@pytest.mark.slow
@pytest.mark.parametrize("cold", [{}, {"zero_untrained_ids": True, "id_dropout": 0.3}], ids=["ids", "cold_ids"])
def test_exported_scores_equal_the_keras_models(tiny_space, tiny_examples, tmp_path, cold):
    model = create_model("sasrec", space=tiny_space, **TINY, **cold)
    train_model(model, tiny_examples["train"], TrainingConfig(epochs=1, batch_size=16, jit_compile=False), verbose=0)
    version_dir = export_model(model, tiny_space, tmp_path, "sasrec", k=5, warmup=False)
    items = list(tiny_space.item_vocab.ids)
    users = list(tiny_space.user_vocab.ids[:3])
    history = [items[:TINY_MAX_HISTORY], items[3:5] + [""] * (TINY_MAX_HISTORY - 2), [""] * TINY_MAX_HISTORY]
    candidates = [items[20:25], items[5:10], items[0:5]]
    features = {"user_id": tiny_space.user_vocab.lookup(users),
                "history": np.stack([tiny_space.item_vocab.lookup(row) for row in history])}
    loaded = tf.saved_model.load(str(version_dir))
    served_users = loaded.signatures["user_embedding"](user_id=tf.constant(users), history=tf.constant(history))
    np.testing.assert_allclose(served_users["embedding"].numpy(),
                               keras.ops.convert_to_numpy(model.encode_users(features)), rtol=1e-5, atol=1e-6)
    served = loaded.signatures["score"](user_id=tf.constant(users), history=tf.constant(history),
                                        candidates=tf.constant(candidates))["scores"].numpy()
    expected = model.score_candidates(features, np.stack([tiny_space.item_vocab.lookup(row) for row in candidates]))
    np.testing.assert_allclose(served, keras.ops.convert_to_numpy(expected), rtol=1e-5, atol=1e-6)
    assert isinstance(keras.saving.load_model(_saved(model, tmp_path), safe_mode=True), SASRec)


def _saved(model, folder):
    path = folder / "model.keras"
    model.save(path)
    return path


def test_attention_scores_are_the_causal_softmax_of_the_first_block_in_history_order(tiny_space):
    """attention_scores(history)[0] equals softmax(q k^T / sqrt(d)) computed by hand from block 0's weights."""
    model = create_model("sasrec", space=tiny_space, dropout=0.0, **TINY)
    history = np.array([[3, 7, 1, 9, 0, 0], [5, 2, 8, 4, 6, 1]], "int32")
    scores = [keras.ops.convert_to_numpy(s) for s in model.attention_scores(history)]
    assert len(scores) == TINY["num_blocks"]
    for block in scores:
        assert block.shape == (2, TINY["num_heads"], 6, 6)
        assert np.all(np.triu(np.ones((6, 6)), k=1)[None, None] * block == 0)  # nothing above the diagonal
        np.testing.assert_allclose(block[0].sum(axis=-1), np.tile([1, 1, 1, 1, 0, 0], (2, 1)), atol=1e-5)
        np.testing.assert_allclose(block[1].sum(axis=-1), np.ones((2, 6)), atol=1e-5)
        assert np.all(block[0, :, 4:] == 0) and np.all(block[0, :, :, 4:] == 0)  # padding rows and columns
    # by hand for the short row: items sit in the last 4 of the 6 learned positions (SASRec pads on the left)
    block = model.blocks[0]
    items = keras.ops.convert_to_numpy(model.item_encoder(history[:1, :4]))
    positions = keras.ops.convert_to_numpy(model.position_embedding.position_embeddings)[-4:]
    normed = block._self_attention_layer_norm(items + positions)
    attention = block._self_attention_layer
    query = keras.ops.convert_to_numpy(attention._query_dense(normed))[0]  # [L, H, d]
    key = keras.ops.convert_to_numpy(attention._key_dense(normed))[0]
    logits = np.einsum("thd,shd->hts", query, key) / np.sqrt(query.shape[-1])
    logits = np.where(np.tril(np.ones((4, 4), bool))[None], logits, -np.inf)
    expected = np.exp(logits - logits.max(axis=-1, keepdims=True))
    expected /= expected.sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(scores[0][0, :, :4, :4], expected, rtol=1e-4, atol=1e-6)
    # the same items given with scattered padding attend the same way
    scattered = keras.ops.convert_to_numpy(model.attention_scores(
        model.recent_history(np.array([[0, 3, 7, 0, 1, 9]], "int32")))[0])
    np.testing.assert_allclose(scattered[0], scores[0][0], rtol=1e-5, atol=1e-6)


def test_full_softmax_leaves_untrained_items_out_of_the_training_catalog(tiny_space, tiny_examples):
    model = create_model("sasrec", space=tiny_space, zero_untrained_ids=True, full_softmax=True,
                         logq_correction=False, dropout=0.0, **TINY)
    train = tiny_examples["train"]
    dropped = int(train.item_id[-1])
    keep = (train.item_id != dropped) & ~(train.history == dropped).any(axis=1)
    subset = type(train)(train.user_id[keep], train.item_id[keep], train.history[keep],
                         {key: value[keep] for key, value in train.extras.items()})
    model.prepare(subset)
    batch = next(iter(training_dataset(model, subset, 16, shuffle=False, epochs=1)))

    def loss():
        return float(model.compute_loss(batch, y_pred=model(batch, training=False), training=False))

    before = loss()
    genres = model.item_encoder.tables["genres"]
    values = keras.ops.convert_to_numpy(genres).copy()
    values[dropped] = 1.0 - values[dropped]  # the cold item's content changes: its score changes, the loss not
    genres.assign(values)
    assert loss() == pytest.approx(before, rel=1e-6)
