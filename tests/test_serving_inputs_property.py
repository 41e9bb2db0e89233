"""Exported signatures on hostile but valid input: any ids, any history length, empty batches.

Property-based (hypothesis): out-of-vocabulary and non-ASCII ids, empty strings,
histories longer than the model keeps or empty, batches of size 0, duplicate
candidates. Every call must return well-shaped, finite float32 output and
``retrieve`` must never return an item of the request's history.
"""

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmrec_tf.export.saved_model import export_model
from mmrec_tf.registry import create_model
from mmrec_tf.training import TrainingConfig, train_model

K = 7


@pytest.fixture(scope="module")
def served(tiny_space, tiny_examples, tmp_path_factory):
    model = create_model("lstm_two_tower", space=tiny_space, embedding_dim=8, lstm_units=8, max_history=6)
    train_model(model, tiny_examples["train"], TrainingConfig(epochs=1), verbose=0)
    path = export_model(model, tiny_space, tmp_path_factory.mktemp("saved"), "lstm", k=K, warmup=False)
    return tf.saved_model.load(str(path)), list(tiny_space.item_vocab.ids), list(tiny_space.user_vocab.ids)


ODD_IDS = st.sampled_from(["", "nobody", "ünïcødé-ユーザー", "😀", " ", "a" * 300, "0", "-1", "\x00"])


def _ids(known):
    return st.one_of(st.sampled_from(known), ODD_IDS, st.text(max_size=12))


def _matrix(rows, columns, values):
    matrix = np.empty((rows, columns), dtype=object)
    matrix[...] = ""
    for i, row in enumerate(values):
        matrix[i, : len(row)] = row
    return tf.constant(matrix.astype(str) if matrix.size else np.zeros((rows, columns), dtype=str), dtype=tf.string)


@st.composite
def requests(draw, items, users):
    batch = draw(st.integers(0, 4))
    length = draw(st.integers(0, 15))
    histories = [draw(st.lists(_ids(items), max_size=length)) for _ in range(batch)]
    candidates = draw(st.integers(1, 6))
    candidate_rows = [draw(st.lists(_ids(items), min_size=candidates, max_size=candidates)) for _ in range(batch)]
    user_ids = [draw(_ids(users)) for _ in range(batch)]
    return user_ids, _matrix(batch, length, histories), _matrix(batch, candidates, candidate_rows), histories


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_signature_answers_any_valid_request(served, data):
    loaded, items, users = served
    user_ids, history, candidates, raw_histories = data.draw(requests(items, users))
    batch = len(user_ids)
    users_tensor = tf.constant(np.array(user_ids, dtype=object).astype(str) if batch else np.zeros(0, dtype=str),
                               dtype=tf.string)

    retrieved = loaded.signatures["retrieve"](user_id=users_tensor, history=history)
    assert retrieved["item_ids"].shape == (batch, K) and retrieved["scores"].dtype == tf.float32
    for row, returned in enumerate(retrieved["item_ids"].numpy()):
        assert not {i.decode() for i in returned} & (set(raw_histories[row]) - {""})
    assert np.isfinite(retrieved["scores"].numpy()).all()

    scored = loaded.signatures["score"](user_id=users_tensor, history=history, candidates=candidates)
    assert scored["scores"].shape == candidates.shape and np.isfinite(scored["scores"].numpy()).all()
    names, scores = candidates.numpy(), scored["scores"].numpy()
    for row in range(batch):
        for a in range(names.shape[1]):
            same = names[row] == names[row, a]
            np.testing.assert_allclose(scores[row, same], scores[row, a], rtol=1e-5, atol=1e-6)

    embedded = loaded.signatures["user_embedding"](user_id=users_tensor, history=history)["embedding"]
    assert embedded.shape[0] == batch and np.isfinite(embedded.numpy()).all()


def test_unknown_ids_score_like_padding(served):
    """An unknown id carries no information: the same as no id at all, never an error."""
    loaded, items, _ = served
    with_unknown = loaded.signatures["score"](
        user_id=tf.constant(["nobody"]), history=tf.constant([[items[0], "never-seen", items[1]]]),
        candidates=tf.constant([["never-seen-either", items[2]]]))["scores"].numpy()
    without = loaded.signatures["score"](
        user_id=tf.constant([""]), history=tf.constant([[items[0], items[1]]]),
        candidates=tf.constant([["", items[2]]]))["scores"].numpy()
    np.testing.assert_allclose(with_unknown, without, rtol=1e-6)
