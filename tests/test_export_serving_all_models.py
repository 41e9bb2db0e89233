"""Every catalog model exports and passes serve-check; exports are float32, device-free and crash-safe."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

import mmrec_tf
from mmrec_tf.data.label_spec import parse_label
from mmrec_tf.data.preprocessor import Preprocessor
from mmrec_tf.data.user_buckets import with_user_buckets
from mmrec_tf.data.labels import sample_negatives
from mmrec_tf.data.pipeline import build_examples
from mmrec_tf.export.saved_model import export_model
from mmrec_tf.export.serve_check import serve_check
from mmrec_tf.export.versioning import clean_stale_temp_dirs, list_versions
from mmrec_tf.registry import accepted_arguments, create_model, registered_model
from mmrec_tf.training import TrainingConfig, train_model

from conftest import TINY_MAX_HISTORY

K = 5
# Small sizes for every architecture argument a catalog model may take; each model gets the ones it accepts.
TINY_ARCHITECTURE = {"embedding_dim": 4, "lstm_units": 4, "hidden_units": [8], "attention_units": [4],
                     "max_history": TINY_MAX_HISTORY}
RETRIEVAL_SIGNATURES = {"retrieve", "score", "explain", "user_embedding", "item_embedding", "serving_default"}


def tiny_trained_model(name, space, examples):
    """``name`` built tiny for ``space`` and trained one epoch (counting models are only prepared)."""
    info = registered_model(name)
    accepted = accepted_arguments(info.cls)
    model = create_model(name, space=space, **{k: v for k, v in TINY_ARCHITECTURE.items() if k in accepted})
    train = examples["train"]
    if info.task == "ranking":
        train = sample_negatives(train, space.num_items, ratio=1, seed=0)
    train_model(model, train, TrainingConfig(epochs=1, batch_size=128), verbose=0)
    return model


def serving_nodes(version_dir):
    """Every NodeDef the serving signatures run: graph nodes they depend on and the functions those call.

    TensorFlow's own checkpoint functions (``__inference__traced_save/restore``, pinned to the host CPU
    to read and write files) are not reachable from a signature and are left out.
    """
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((version_dir / "saved_model.pb").read_bytes())
    meta_graph = next(graph for graph in saved_model.meta_graphs if "serve" in graph.meta_info_def.tags)
    library = {function.signature.name: function for function in meta_graph.graph_def.library.function}
    graph = {node.name: node for node in meta_graph.graph_def.node}
    pending_nodes = [tensor.name.split(":")[0] for signature in meta_graph.signature_def.values()
                     for tensor in signature.outputs.values()]
    pending_functions, seen_nodes, seen_functions, nodes = [], set(), set(), []

    def visit(node):
        nodes.append(node)
        for value in node.attr.values():
            pending_functions.extend([value.func.name] if value.func.name else [])
            pending_functions.extend(function.name for function in value.list.func)

    while pending_nodes:
        name = pending_nodes.pop().lstrip("^").split(":")[0]
        if name in seen_nodes or name not in graph:
            continue
        seen_nodes.add(name)
        visit(graph[name])
        pending_nodes.extend(graph[name].input)
    while pending_functions:
        name = pending_functions.pop()
        if name in seen_functions or name not in library:
            continue
        seen_functions.add(name)
        for node in library[name].node_def:
            visit(node)
    assert seen_functions, "signatures call no function: the walk is broken"
    return nodes


LISTED_USERS = 40  # of the tiny space's 60 users; the other 20 hash to buckets trained by their interactions
USER_BUCKETS = 4


@pytest.fixture(scope="module")
def bucketed(tiny_space, tiny_split):
    """The tiny space with its first 40 users listed and the rest hashed to 4 buckets, and its examples."""
    space = with_user_buckets(tiny_space, USER_BUCKETS, keep_ids=tiny_space.user_vocab.ids[:LISTED_USERS])
    return space, build_examples(tiny_split, space, max_history=TINY_MAX_HISTORY)


@pytest.fixture(scope="module", params=mmrec_tf.list_models())
def exported_model(request, bucketed, tmp_path_factory):
    """``(name, model, space, version_dir)``: every catalog model trained tiny on hashed users and exported."""
    name = request.param
    space, examples = bucketed
    model = tiny_trained_model(name, space, examples)
    base = tmp_path_factory.mktemp(name)
    # ranking models train on one sampled negative per interaction (tiny_trained_model), retrieval on interactions
    label = parse_label("sampled") if registered_model(name).task == "ranking" else None
    return name, model, space, export_model(model, Preprocessor(space, TINY_MAX_HISTORY, label), base, name, k=K)


@pytest.mark.slow
def test_every_catalog_model_exports_and_passes_serve_check(exported_model):
    name, _, _, version_dir = exported_model
    report = serve_check(version_dir.parent, batch_sizes=(1, 4), repeats=2)

    assert report["servable"], report["warnings"]
    assert report["ops"]["unregistered"] == [] and report["unexpected_modules"] == []
    model = exported_model[1]
    retrieval = registered_model(name).task == "retrieval"
    if getattr(model, "max_history", None) and getattr(model, "uses_history", True):
        assert report["history_rule"] == (f"every earlier item of the user, oldest first; the model keeps the "
                                          f"{TINY_MAX_HISTORY} most recent known ones")
    else:
        assert report["history_rule"] == ("the user's earlier items, oldest first; the model's scores do not read "
                                          "them, " + ("retrieve leaves them out of its list" if retrieval
                                                      else "explain compares candidates with them"))
    assert report["warmup"]["records"] >= 1 and report["warmup"]["ok"] == report["warmup"]["records"]
    signatures = report["signatures"]
    expected = (RETRIEVAL_SIGNATURES if registered_model(name).task == "retrieval"
                else {"score", "explain", "serving_default"})
    assert set(signatures) == expected
    for signature in signatures.values():
        for tensor in signature["inputs"].values():
            assert tensor["dtype"] == "string" and tensor["shape"][0] is None
        assert {tensor["dtype"] for tensor in signature["outputs"].values()} <= {"float32", "string"}
    if "retrieve" in signatures:
        assert signatures["retrieve"]["outputs"]["item_ids"] == {"dtype": "string", "shape": [None, K]}
    for signature, timing in report["latency_ms"].items():
        assert timing["1"]["p50"] > 0 and timing["4"]["p99"] >= timing["4"]["p50"], signature
    assert not any(node.device for node in serving_nodes(version_dir))


@pytest.mark.slow
def test_served_scores_equal_the_keras_models_for_listed_hashed_and_unknown_users(exported_model, tiny_space):
    """The export maps every user id as training did: listed → own row, others → their hash bucket, "" → 0.

    The Keras model is fed the indices of the Python-side lookup (the one the training examples used).
    """
    name, model, space, version_dir = exported_model
    users = [tiny_space.user_vocab.ids[0], tiny_space.user_vocab.ids[-1], "never-seen-user", ""]
    user_index = space.user_vocab.lookup(users)
    assert user_index[0] == 1 and user_index[1] > LISTED_USERS and user_index[2] > LISTED_USERS
    assert user_index[3] == 0
    items = list(space.item_vocab.ids)
    history = [items[:TINY_MAX_HISTORY], items[3:5] + [""] * (TINY_MAX_HISTORY - 2), [""] * TINY_MAX_HISTORY,
               items[10:10 + TINY_MAX_HISTORY]]
    candidates = [items[20:25], items[5:10], items[0:5], items[30:35]]
    inputs = {"user_id": users, "history": history, "candidates": candidates}
    features = {"user_id": user_index, "history": np.stack([space.item_vocab.lookup(row) for row in history])}
    if getattr(model, "rating_levels", 0):
        ratings = [[1 + (j % model.rating_levels) if item else 0 for j, item in enumerate(row)] for row in history]
        inputs["history_rating"] = ratings
        features["history_rating"] = np.asarray(ratings, np.int32)
    expected = keras.ops.convert_to_numpy(
        model.score_candidates(features, np.stack([space.item_vocab.lookup(row) for row in candidates])))

    score = tf.saved_model.load(str(version_dir)).signatures["score"]
    served = score(**{key: tf.constant(value) for key, value in inputs.items()})["scores"].numpy()
    np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.fixture(scope="module")
def mixed_precision_export(tiny_space, tiny_examples, tmp_path_factory):
    """A tiny lstm_two_tower trained under ``mixed_float16``, exported, and the policy reset."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = create_model("lstm_two_tower", space=tiny_space, embedding_dim=8, lstm_units=8,
                             max_history=TINY_MAX_HISTORY)
        assert model.item_encoder.compute_dtype == "float16"
        train_model(model, tiny_examples["train"], TrainingConfig(epochs=1, batch_size=128), verbose=0)
        version_dir = export_model(model, tiny_space, tmp_path_factory.mktemp("saved_models"), "mixed", k=K)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert keras.mixed_precision.global_policy().name == "float32"
    return version_dir, tf.saved_model.load(str(version_dir))


def test_mixed_float16_training_exports_float32_outputs_without_device_placements(mixed_precision_export,
                                                                                  tiny_space):
    version_dir, loaded = mixed_precision_export
    users = tf.constant(list(tiny_space.user_vocab.ids[:3]))
    history = tf.constant([list(tiny_space.item_vocab.ids[:4]), ["", "", "", ""], ["i1", "zzz", "", ""]])
    inputs = {"retrieve": {"user_id": users, "history": history},
              "user_embedding": {"user_id": users, "history": history},
              "item_embedding": {"item_id": tf.constant(["i1", "i2", "i3"])},
              "score": {"user_id": users, "history": history,
                        "candidates": tf.constant([list(tiny_space.item_vocab.ids[5:8])] * 3)}}
    for name, arguments in inputs.items():
        function = loaded.signatures[name]
        for key, spec in function.structured_outputs.items():
            if key != "item_ids":
                assert spec.dtype == tf.float32, (name, key, spec.dtype)
        for key, value in function(**arguments).items():
            if key != "item_ids":
                assert value.dtype == tf.float32 and np.isfinite(value.numpy()).all(), (name, key)
    retrieved = loaded.signatures["retrieve"](**inputs["retrieve"])["scores"].numpy()
    assert np.all(np.diff(retrieved, axis=1) <= 1e-6)

    nodes = serving_nodes(version_dir)
    assert {"MatMul", "LookupTableFindV2", "TopKV2"} <= {node.op for node in nodes}
    devices = sorted({node.device for node in nodes if node.device})
    assert devices == [], f"hard device placements in the saved graph: {devices}"


def test_mixed_float16_export_embeds_unknown_items_finitely(mixed_precision_export):
    _, loaded = mixed_precision_export
    embedding = loaded.signatures["item_embedding"](item_id=tf.constant(["not-an-item"]))["embedding"]
    assert np.isfinite(embedding.numpy()).all()


def test_din_with_dice_trains_under_mixed_float16_and_serves_float32(tiny_space, tiny_examples, tmp_path):
    """Dice keeps float32 batch statistics under a float16 compute policy (they used to fail to update)."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = tiny_trained_model("din", tiny_space, tiny_examples)
        version_dir = export_model(model, tiny_space, tmp_path, "din_mixed", k=K, warmup=False)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    dice = [layer for layer in model._flatten_layers() if isinstance(layer, mmrec_tf.layers.Dice)]
    assert dice and all(layer.moving_mean.dtype == "float32" for layer in dice)
    assert any(np.any(layer.moving_mean.numpy() != 0.0) for layer in dice), "training updated the statistics"
    loaded = tf.saved_model.load(str(version_dir))
    users = tf.constant(list(tiny_space.user_vocab.ids[:2]))
    history = tf.constant([list(tiny_space.item_vocab.ids[:4]), ["", "", "", ""]])
    candidates = tf.constant([list(tiny_space.item_vocab.ids[5:8])] * 2)
    for name in ("score", "explain"):
        outputs = loaded.signatures[name](user_id=users, history=history, candidates=candidates)
        numbers = [value for value in outputs.values() if value.dtype != tf.string]
        assert numbers and all(value.dtype == tf.float32 and np.isfinite(value.numpy()).all() for value in numbers)


KILLED_EXPORT = r"""
import pathlib, sys, time
import mmrec_tf.export.saved_model as saved_model
from mmrec_tf import create_model, load_dataset, FeatureSpace

base, ready = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
write_warmup = saved_model.write_warmup_requests

def write_then_stall(folder, requests, model_name=""):
    write_warmup(folder, requests, model_name=model_name)  # the SavedModel is complete in the temp folder now
    ready.write_text(str(folder))
    time.sleep(600)

saved_model.write_warmup_requests = write_then_stall
space = FeatureSpace.build(load_dataset("synthetic", num_users=20, num_items=15, num_clusters=2))
saved_model.export_model(create_model("two_tower", space=space, embedding_dim=4), space, base, "two_tower")
"""


def test_killed_export_leaves_no_version_a_server_would_load(tmp_path):
    ready = tmp_path / "ready"
    base = tmp_path / "saved_models"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.Popen([sys.executable, "-c", textwrap.dedent(KILLED_EXPORT), str(base), str(ready)],
                               env=env, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(1200):
            if ready.exists() and ready.read_text() or process.poll() is not None:
                break
            subprocess.run(["sleep", "0.1"], check=True)
        assert process.poll() is None, f"export process ended early: {process.stderr.read()[-2000:]}"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
        process.stderr.close()

    assert process.returncode == -signal.SIGKILL
    model_dir = base / "two_tower"
    leftovers = sorted(path.name for path in model_dir.iterdir())
    assert len(leftovers) == 1 and leftovers[0].startswith(".tmp-1-"), leftovers
    assert (model_dir / leftovers[0] / "saved_model.pb").is_file(), "killed after the SavedModel was written"
    assert list_versions(model_dir) == {}, "no integer version folder: TF Serving loads nothing"
    assert [path.name for path in clean_stale_temp_dirs(model_dir)] == leftovers
    assert list(model_dir.iterdir()) == []


def test_the_device_check_sees_a_placement_inside_a_signature(tmp_path):
    module = tf.Module()
    module.table = tf.Variable([1.0, 2.0])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32)])
    def pinned(index):
        with tf.device("/CPU:0"):
            return {"value": tf.gather(module.table, index)}

    tf.saved_model.save(module, str(tmp_path), signatures={"serving_default": pinned})
    assert "/device:CPU:0" in {node.device for node in serving_nodes(tmp_path)}


def test_a_bfloat16_index_export_passes_serve_check(tiny_space, tiny_examples, tmp_path):
    model = tiny_trained_model("two_tower", tiny_space, tiny_examples)
    version_dir = export_model(model, tiny_space, tmp_path, "two_tower", k=K, index="bfloat16")
    report = serve_check(tmp_path / "two_tower", batch_sizes=(1, 4), repeats=2)
    assert report["servable"] and report["ops"]["unregistered"] == [], report["warnings"]
    assert {"Bitcast", "LowerBound", "TopKV2"} <= set(report["ops"]["types"]), "the bfloat16 search was exported"
    assert not any(node.device for node in serving_nodes(version_dir))
