"""Serving latency of exported SavedModels: ``retrieve`` over 1,682 and 1,000,000 items, ``score`` of 100 candidates.

Two catalogs, each exported with :func:`mmrec_tf.export_model` and loaded back in
this process with ``tf.saved_model.load`` (what TF Serving runs, minus the RPC):

* **ML-100K**: ``lstm_two_tower`` trained one epoch on MovieLens-100K
  (leave-last-out), or the run folder given with ``--run``; 1,682 items, real
  user histories.
* **synthetic 1M**: a ``two_tower`` whose 1,000,000 item embeddings (dim 64) are
  random unit vectors, users too (the hardest case for an approximate index:
  no cluster structure), histories of 10 random items.

Each catalog is exported twice: ``index="brute_force"`` (the plain float32
matmul + ``tf.math.top_k`` baseline) and ``index="bfloat16"`` (bfloat16 scan,
exact float32 re-rank; what ``"auto"`` picks from 100,000 items). Calls of all
variants are interleaved, so they share the machine's load; p50/p99 over
``--calls`` timed calls after ``--warmup`` calls, each including the fetch of
the outputs. recall@100 compares each index's ``item_ids`` with the brute-force
export's over 256 users. A last row times the bare float32 matmul + top_k on the
same matrix, outside any SavedModel. The machine's load average is printed before
and after: on a shared 2-core machine other processes move the numbers a lot; the
minimum shows what an idle machine gives.

    python benchmarks/serving_latency.py [--run runs/lstm_two_tower.movielens_100k]
        [--data-path ../shared/data/ml-100k] [--items 1000000] [--calls 200] [--catalogs synthetic]

Exports go to a temporary folder (``--out`` to keep them).

Catalog size, cluster structure and the IVF index are measured by the companion
script ``serving_latency_scaling.py``: brute-force, bfloat16 and IVF exports over
clustered and random 100k / 1M / 10M-item catalogs, a numpy float32
matmul + argpartition reference, recall@100 against exact float32, an nprobe
sweep, export time / disk / peak RSS, and a plot of latency against catalog size.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from _common import movielens_path, print_table  # noqa: E402

from mmrec_tf import create_model, export_model, load_run, prepare_data, run  # noqa: E402
from mmrec_tf.data.feature_space import FeatureSpace  # noqa: E402
from mmrec_tf.data.schema import Feature, Schema  # noqa: E402
from mmrec_tf.data.sources import load_dataset  # noqa: E402
from mmrec_tf.data.vocabulary import Vocabulary  # noqa: E402

K = 100
BATCHES = (1, 32)
CANDIDATES = 100
HISTORY = 10
RECALL_USERS = 256
INDEXES = ("brute_force", "bfloat16")


def movielens_catalog(args):
    """(model, space, user ids, {user: history}) for ML-100K, trained here or loaded from ``--run``."""
    if args.run:
        model, space, _ = load_run(args.run)
        dataset = None
    else:
        dataset = load_dataset("movielens-100k", movielens_path(args.data_path))
        data = prepare_data(dataset, "leave_last_out", max_history=50)
        model = run("lstm_two_tower", data, training={"epochs": 1}, verbose=0).model
        space = data.space
    if dataset is None:
        dataset = load_dataset("movielens-100k", movielens_path(args.data_path))
    log = dataset.interactions.sort_values(["user_id", "timestamp"])
    histories = {user: items[-HISTORY:] for user, items in log.groupby("user_id")["item_id"].agg(list).items()}
    return model, space, list(space.user_vocab.ids), histories


def synthetic_catalog(num_items: int, dim: int, num_users: int = 1000):
    """A two_tower over ``num_items`` random unit item vectors and random users; random histories."""
    rng = np.random.default_rng(0)
    users = [f"u{i}" for i in range(num_users)]
    items = [f"item{i}" for i in range(num_items)]
    schema = Schema([Feature("user_id", "id", "user"), Feature("item_id", "id", "item")])
    space = FeatureSpace(Vocabulary(users), Vocabulary(items), {}, {}, items, schema)
    model = create_model("two_tower", space=space, embedding_dim=dim)
    model.build()
    for layer, rows in ((model.item_embedding, num_items + 1), (model.user_embedding, num_users + 1)):
        vectors = rng.normal(size=(rows, dim)).astype(np.float32)
        layer.embeddings.assign(vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    histories = {user: [items[i] for i in rng.integers(0, num_items, HISTORY)] for user in users}
    return model, space, users, histories


def request_batches(users, histories, item_ids, batch: int, count: int, seed: int = 0):
    """``count`` request batches of ``batch`` users: user ids, histories padded with "", 100 candidates."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(count):
        chosen = [users[i] for i in rng.choice(len(users), batch, replace=False)]
        rows = [histories.get(user, [])[-HISTORY:] for user in chosen]
        history = [row + [""] * (HISTORY - len(row)) for row in rows]
        candidates = [[item_ids[i] for i in rng.integers(0, len(item_ids), CANDIDATES)] for _ in chosen]
        batches.append({"user_id": tf.constant(chosen), "history": tf.constant(history),
                        "candidates": tf.constant(candidates)})
    return batches


def timed(function, inputs) -> float:
    started = time.perf_counter()
    for value in function(**inputs).values():
        value.numpy()
    return (time.perf_counter() - started) * 1000.0


def interleaved_latency(calls: dict, batches: list, warmup: int, repeats: int) -> dict:
    """``{label: [ms, ...]}``: every label called on the same inputs in turn, ``warmup`` calls untimed."""
    timings = {label: [] for label in calls}
    for step in range(warmup + repeats):
        inputs = batches[step % len(batches)]
        for label, (function, names) in calls.items():
            elapsed = timed(function, {name: inputs[name] for name in names})
            if step >= warmup:
                timings[label].append(elapsed)
    return timings


def recall_at_k(loaded: dict, batches: list) -> float:
    """Mean overlap of the bfloat16 export's top-K with the brute-force export's, per user."""
    overlaps = []
    for inputs in batches:
        request = {"user_id": inputs["user_id"], "history": inputs["history"]}
        exact = loaded["brute_force"].signatures["retrieve"](**request)["item_ids"].numpy()
        fast = loaded["bfloat16"].signatures["retrieve"](**request)["item_ids"].numpy()
        overlaps += [len(set(a) & set(b)) / len(a) for a, b in zip(exact, fast)]
    return float(np.mean(overlaps))


def raw_matmul_top_k(item_vectors: np.ndarray):
    """The issue's reference: float32 matmul + tf.math.top_k on the catalog matrix, no SavedModel."""
    matrix = tf.constant(item_vectors)

    @tf.function(input_signature=[tf.TensorSpec([None, item_vectors.shape[1]], tf.float32)])
    def search(users):
        top = tf.math.top_k(tf.matmul(users, matrix, transpose_b=True), k=K)
        return {"indices": top.indices, "scores": top.values}

    return search


def benchmark_catalog(label, name, model, space, users, histories, out, args) -> list[list[str]]:
    """Export ``model`` with each index, time ``retrieve`` / ``score`` / raw matmul + top_k, and return table rows."""
    print(f"{label}: exporting {space.num_items:,} items ...", flush=True)
    loaded = {}
    for index in INDEXES:
        started = time.perf_counter()
        version_dir = export_model(model, space, out, f"{name}_{index}", k=K, index=index)
        loaded[index] = tf.saved_model.load(str(version_dir))
        print(f"  {index}: exported and loaded in {time.perf_counter() - started:.1f} s", flush=True)
    item_ids = list(space.item_vocab.ids)
    recall_batches = request_batches(users, histories, item_ids, 32, RECALL_USERS // 32, seed=1)
    recall = recall_at_k(loaded, recall_batches)
    item_vectors = model.all_item_embeddings()
    raw = raw_matmul_top_k(item_vectors)
    user_vectors = loaded["brute_force"].signatures["user_embedding"]
    rows = {}
    for batch in BATCHES:
        batches = request_batches(users, histories, item_ids, batch, 16, seed=batch)
        for inputs in batches:
            inputs["user_vectors"] = user_vectors(user_id=inputs["user_id"], history=inputs["history"])["embedding"]
        calls = {("retrieve", index): (loaded[index].signatures["retrieve"], ("user_id", "history"))
                 for index in INDEXES}
        calls[("score", f"{CANDIDATES} candidates")] = (loaded["brute_force"].signatures["score"],
                                                         ("user_id", "history", "candidates"))
        calls[("matmul+top_k", "raw float32, no SavedModel")] = (
            lambda user_vectors: raw(user_vectors), ("user_vectors",))
        timings = interleaved_latency(calls, batches, args.warmup, args.calls)
        for key, values in timings.items():
            rows.setdefault(key, {})[batch] = (np.percentile(values, 50), np.percentile(values, 99), np.min(values))
        print(f"  batch {batch}: done", flush=True)
    table = []
    for (signature, variant), by_batch in rows.items():
        cells = [f"{by_batch[b][0]:.2f} / {by_batch[b][1]:.2f} ({by_batch[b][2]:.2f})" for b in BATCHES]
        shown_recall = (f"{recall:.4f}" if variant == "bfloat16"
                        else "1 (exact)" if variant == "brute_force" else "")
        table.append([f"{label} ({space.num_items:,} items)", signature, variant, *cells, shown_recall])
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default=None, help="ML-100K run folder to export (default: train 1 epoch here)")
    parser.add_argument("--data-path", default=None, help="GroupLens ml-100k folder (default: shared data)")
    parser.add_argument("--items", type=int, default=1_000_000, help="synthetic catalog size")
    parser.add_argument("--dim", type=int, default=64, help="synthetic embedding size")
    parser.add_argument("--calls", type=int, default=200, help="timed calls per variant and batch size")
    parser.add_argument("--warmup", type=int, default=20, help="untimed calls first")
    parser.add_argument("--out", default=None, help="keep the exports in this folder")
    parser.add_argument("--catalogs", default="movielens,synthetic",
                        help="which catalogs to time, comma separated (default: movielens,synthetic)")
    args = parser.parse_args()

    out = pathlib.Path(args.out or tempfile.mkdtemp(prefix="mmrec_serving_latency_"))
    print(f"TensorFlow {tf.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    try:
        catalogs = args.catalogs.split(",")
        if "movielens" in catalogs:
            rows += benchmark_catalog("ML-100K lstm_two_tower", "movielens", *movielens_catalog(args), out, args)
        if "synthetic" in catalogs:
            rows += benchmark_catalog("synthetic two_tower", "synthetic", *synthetic_catalog(args.items, args.dim),
                                      out, args)
    finally:
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}; p50 / p99 (min) in ms over {args.calls} calls per "
          f"cell, interleaved, outputs fetched; K = {K}, histories of {HISTORY} items\n")
    print_table(["catalog", "signature", "index / variant", "B=1 p50 / p99 (min) ms", "B=32 p50 / p99 (min) ms",
                 "recall@100 vs exact"], rows)


if __name__ == "__main__":
    main()
