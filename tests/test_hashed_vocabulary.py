"""Out-of-vocabulary hash buckets: the pipeline's Python lookup and the SavedModel's table agree on every string."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from mmrec_tf.data.feature_space import FeatureSpace
from mmrec_tf.data.hashed_vocabulary import HashedVocabulary
from mmrec_tf.data.user_buckets import with_user_buckets
from mmrec_tf.data.pipeline import build_examples
from mmrec_tf.data.vocabulary import Vocabulary
from mmrec_tf.registry import create_model
from mmrec_tf.training import TrainingConfig, train_model

from fingerprint64_reference import fingerprint64

# strings of 0..64 UTF-8 bytes: every branch of the reference hash
PROBES = ["a", "b", "c", "", "never seen", "ünïcödé", " a", "a ", "A", "0", "user-123456789", "\t",
          "user-with-a-24-byte-id-7", "a user id long enough to need FarmHash's 33..64 byte branch"]


def expected_indices(ids, num_oov_buckets, probes):
    """Listed ids -> 1..N, "" -> 0, any other id -> N + 1 + Fingerprint64 mod B, from the plain-Python reference."""
    listed = {identifier: index for index, identifier in enumerate(ids, start=1)}
    return [0 if probe == "" else listed.get(probe) or len(ids) + 1 + fingerprint64(probe.encode()) % num_oov_buckets
            for probe in probes]

LOOKUP_IN_TF_ONLY_PROCESS = textwrap.dedent("""
    import json, sys
    import tensorflow as tf

    loaded = tf.saved_model.load(sys.argv[1])
    probes = json.loads(sys.argv[2])
    indices = loaded.signatures["lookup"](ids=tf.constant(probes))["indices"].numpy().tolist()
    print(json.dumps({"indices": indices, "mmrec": any(m.startswith("mmrec_tf") for m in sys.modules)}))
""")


class LookupModule(tf.Module):
    def __init__(self, vocab):
        super().__init__()
        self.table = vocab.make_tf_lookup("ids")

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def lookup(self, ids):
        return {"indices": self.table.lookup(ids)}


def test_known_ids_keep_their_index_and_others_share_buckets():
    vocab = HashedVocabulary(["a", "b", "c"], num_oov_buckets=5)
    indices = vocab.lookup(PROBES)
    assert indices[:4].tolist() == [1, 2, 3, 0]
    assert ((indices[4:] >= 4) & (indices[4:] <= 8)).all()
    assert (len(vocab), vocab.size, vocab.id_of(2), vocab.id_of(6)) == (8, 9, "b", "")
    # The mapping must never change under a trained model: buckets from the tests' own Fingerprint64 and
    # pinned literals (1 + Fingerprint64 mod 1000 of "x", "y", "user-1"; see fingerprint64_reference.py).
    assert indices.tolist() == expected_indices(["a", "b", "c"], 5, PROBES)
    assert HashedVocabulary([], num_oov_buckets=1000).lookup(["x", "y", "user-1"]).tolist() == [971, 106, 117]


def test_buckets_do_not_depend_on_the_python_hash_seed():
    script = "from mmrec_tf.data.hashed_vocabulary import HashedVocabulary; " \
             "print(HashedVocabulary([], 97).lookup(['x', 'yz', 'user-9']).tolist())"
    results = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": seed, "TF_CPP_MIN_LOG_LEVEL": "3"}
                              ).stdout.strip().splitlines()[-1] for seed in ("1", "2")}
    assert len(results) == 1


@pytest.mark.parametrize("vocab", [Vocabulary(["a", "b", "c"]), HashedVocabulary(["a", "b", "c"], 7),
                                   HashedVocabulary([], 11)], ids=["exact", "buckets", "hash-only"])
def test_saved_model_lookup_equals_the_python_lookup(vocab, tmp_path):
    module = LookupModule(vocab)
    tf.saved_model.save(module, str(tmp_path / "lookup"), signatures={"lookup": module.lookup})
    completed = subprocess.run([sys.executable, "-c", LOOKUP_IN_TF_ONLY_PROCESS, str(tmp_path / "lookup"),
                                json.dumps(PROBES)], capture_output=True, text=True,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert completed.returncode == 0, completed.stderr[-2000:]
    served = json.loads(completed.stdout.strip().splitlines()[-1])
    assert not served["mmrec"]
    assert served["indices"] == vocab.lookup(PROBES).tolist()
    if isinstance(vocab, HashedVocabulary):
        assert served["indices"] == expected_indices(list(vocab.ids), vocab.num_oov_buckets, PROBES)
    assert module.table.lookup(tf.constant(PROBES)).dtype == tf.int32


def test_bucketed_space_saves_and_loads(tiny_space, tmp_path):
    bucketed = with_user_buckets(tiny_space, num_buckets=6, keep_ids=tiny_space.user_vocab.ids[:10])
    bucketed.save(tmp_path / "space")
    loaded = FeatureSpace.load(tmp_path / "space")
    assert isinstance(loaded.user_vocab, HashedVocabulary)
    assert (loaded.num_users, loaded.user_vocab.num_oov_buckets) == (16, 6)
    ids = list(tiny_space.user_vocab.ids) + ["new user", ""]
    assert loaded.user_vocab.lookup(ids).tolist() == bucketed.user_vocab.lookup(ids).tolist()
    saved = json.loads((tmp_path / "space" / "user_ids.json").read_text())
    (tmp_path / "space" / "user_ids.json").write_text(json.dumps({**saved, "hash": "md5"}))
    with pytest.raises(ValueError, match=r"user_ids.json: field 'hash' must be 'fingerprint64'"):
        FeatureSpace.load(tmp_path / "space")


def test_bad_bucket_counts_are_refused(tiny_space):
    for bad in (0, -3, True, 2.5):
        with pytest.raises(ValueError, match="num_oov_buckets must be a positive int"):
            HashedVocabulary(["a"], bad)
    with pytest.raises(ValueError, match="keep_ids has 1 id"):
        with_user_buckets(tiny_space, 4, keep_ids=["nobody"])


def test_tail_users_train_their_buckets(tiny_dataset, tiny_split, tiny_space):
    frequent = list(tiny_space.user_vocab.ids[:20])
    space = with_user_buckets(tiny_space, num_buckets=4, keep_ids=frequent)
    examples = build_examples(tiny_split, space, max_history=6)
    users = examples["train"].user_id
    assert set(np.unique(users[users > 20]).tolist()) <= {21, 22, 23, 24}
    assert (users > 20).sum() == (~np.isin(tiny_split.log.loc[tiny_split.log["split"] == "train", "user_id"],
                                           frequent)).sum()
    model = create_model("two_tower", space=space, embedding_dim=4)
    model.build()
    before = model.user_embedding.get_weights()[0].copy()
    assert before.shape == (25, 4)
    train_model(model, examples["train"], TrainingConfig(epochs=1, batch_size=64, learning_rate=0.05), verbose=0)
    moved = np.abs(model.user_embedding.get_weights()[0] - before).sum(axis=1)
    trained_buckets = np.unique(users[users > 20])
    assert (moved[trained_buckets] > 0).all()
    untouched = sorted({21, 22, 23, 24} - set(trained_buckets.tolist()))
    assert (moved[untouched] == 0).all()


def test_user_feature_rows_follow_the_kept_users(tiny_space):
    from mmrec_tf.data.feature_space import FeatureKind, FeatureTable

    values = np.arange(len(tiny_space.user_vocab) + 1, dtype=np.float32)[:, None]
    present = np.ones(len(values), bool)
    present[0] = False
    space = FeatureSpace(tiny_space.user_vocab, tiny_space.item_vocab, tiny_space.item_features,
                         {"age": FeatureTable(FeatureKind.NUMERIC, values, []),
                          "face": FeatureTable(FeatureKind.VECTOR, np.repeat(values, 2, axis=1), [], present)},
                         tiny_space.item_titles, tiny_space.schema)
    keep = [tiny_space.user_vocab.ids[5], tiny_space.user_vocab.ids[2]]
    bucketed = with_user_buckets(space, num_buckets=3, keep_ids=keep)
    assert bucketed.user_features["age"].values[:, 0].tolist() == [0.0, 3.0, 6.0, 0.0, 0.0, 0.0]
    assert bucketed.user_features["face"].present.tolist() == [False, True, True, False, False, False]
    assert bucketed.user_vocab.lookup(keep).tolist() == [2, 1], "kept users keep the space's order"
