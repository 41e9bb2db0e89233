"""Serving latency against catalog size: brute-force, bfloat16 and IVF exports over 100k, 1M and 10M items.

The companion of ``serving_latency.py`` for issue 17. For each catalog size
(``--sizes``, default 100,000, 1,000,000 and 10,000,000 items x ``--dim`` 64)
and each structure (``--structures``):

* **clustered**: item vectors sampled around ``--centres`` (4,096) random unit
  centres, ``centre + spread * N(0, I)`` with ``--spread`` 0.05 per dimension
  (noise norm about 0.4, so an item's cosine to its centre is about 0.93),
  unit-normalised; each user is a catalog item plus the same noise,
  unit-normalised (users near item directions).
* **random**: items and users are random unit vectors: no cluster structure,
  the hardest case for an inverted-file index, reported as it is.

Every user's history is the item it was sampled near plus 9 random items
(``retrieve`` excludes them). The served model is the smallest one with such a
catalog: a ``two_tower`` (user-id and item-id embeddings, dim 64) whose item
table is set to the catalog vectors and whose user table to the users; it is
exported with :func:`mmrec_tf.export_model` (the same code path as ``mmrec
export``), once per index:

* ``brute_force`` (float32 matmul + top_k; not at 10M items: its export holds
  the float32 table twice, and one B=32 call takes seconds),
* ``bfloat16`` (bfloat16 scan + exact float32 re-rank),
* ``ivf`` with its default ``nlist`` / ``nprobe``.

Each export runs in its own child process, which builds the catalog and the
model and exports them: its wall time (``export s``, the export call only),
the version folder's size on disk and the child's peak RSS (catalog, model and
export together) are printed. The parent then loads the exports with
``tf.saved_model.load`` (what TF Serving runs, minus the RPC) and calls
``retrieve`` at batch 1 and 32 with the exports' calls interleaved, so they
share the machine's load; p50 / p99 over ``--calls`` calls after ``--warmup``
(10M items: ``--calls-10m``), outputs fetched. At the sizes of
``--sweep-sizes`` the IVF index is also built in this process (same seed, so
the same partitions as the export) and its ``search`` is timed, interleaved
with the exports, at each ``--nprobes`` value: index only, fed the users'
vectors, no SavedModel around it.

``numpy`` is the memory-bandwidth reference: float32 ``users @ items.T`` +
``np.argpartition`` for the top 100, timed in its own phase (not interleaved)
over the same number of calls. Every variant's p50 is printed as a ratio to the
``bfloat16`` export's p50 of the same run and to numpy's p50. Recall@100 is
the mean overlap of a variant's 100 items with the exact float32 top 100
(history excluded) over 128 users. The load average is printed before and
after each catalog; the machine (2 cores) is shared, so absolute times move
with the load, ratios much less.

A table of p50 and recall against ``nprobe`` (1M items, clustered, from the
sweep) and a plot of p50 against catalog size (``--plot``, default
``benchmarks/serving_latency_scaling.png``) for the bfloat16 and IVF exports
follow.

    nice -n 10 python benchmarks/serving_latency_scaling.py [--sizes 100000,1000000,10000000]
        [--structures clustered,random] [--calls 100] [--calls-10m 30] [--nprobes 1,2,4,8,16,32]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from _common import print_table  # noqa: E402

K = 100
HISTORY = 10
NUM_USERS = 1000
RECALL_USERS = 128
BATCHES = (1, 32)
GENERATION_CHUNK = 1 << 20
BRUTE_FORCE_MAX_ITEMS = 1_000_000


def unit(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def synthetic_catalog(structure: str, num_items: int, dim: int, centres: int, spread: float, seed: int = 0):
    """(items [N, D], users [U, D], histories [U, 10] catalog positions), unit vectors, deterministic."""
    rng = np.random.default_rng(seed)
    items = np.empty((num_items, dim), np.float32)
    centre_vectors = unit(rng.normal(size=(centres, dim)))
    for start in range(0, num_items, GENERATION_CHUNK):
        rows = min(GENERATION_CHUNK, num_items - start)
        noise = rng.standard_normal(size=(rows, dim), dtype=np.float32)
        if structure == "clustered":
            items[start:start + rows] = unit(centre_vectors[rng.integers(0, centres, rows)] + spread * noise)
        else:
            items[start:start + rows] = unit(noise)
    anchors = rng.integers(0, num_items, NUM_USERS)
    noise = rng.standard_normal(size=(NUM_USERS, dim), dtype=np.float32)
    users = unit(items[anchors] + spread * noise) if structure == "clustered" else unit(noise)
    histories = np.concatenate([anchors[:, None], rng.integers(0, num_items, (NUM_USERS, HISTORY - 1))], axis=1)
    return items, users, histories


def item_id(position) -> str:
    return f"i{position}"


def catalog_model(items: np.ndarray, users: np.ndarray):
    """A two_tower over ``items`` / ``users`` (row 0 of each table: the padding index) and its feature space."""
    import keras

    from mmrec_tf import create_model
    from mmrec_tf.data.feature_space import FeatureSpace
    from mmrec_tf.data.schema import Feature, Schema
    from mmrec_tf.data.vocabulary import Vocabulary

    item_ids = [item_id(i) for i in range(len(items))]
    schema = Schema([Feature("user_id", "id", "user"), Feature("item_id", "id", "item")])
    space = FeatureSpace(Vocabulary([f"u{i}" for i in range(len(users))]), Vocabulary(item_ids), {}, {},
                         item_ids, schema)
    model = create_model("two_tower", space=space, embedding_dim=items.shape[1])
    for layer in (model.item_embedding, model.user_embedding):
        # the catalog overwrites the tables; Keras' random initialisation leaves several table-sized buffers
        # resident, zeros one
        layer.embeddings_initializer = keras.initializers.Zeros()
    model.build()
    for table, rows in ((model.item_embedding.embeddings, items), (model.user_embedding.embeddings, users)):
        table.value[:1].assign(np.zeros((1, rows.shape[1]), np.float32))  # slices: no padded copy of the catalog
        for start in range(0, len(rows), GENERATION_CHUNK):
            table.value[1 + start:1 + start + GENERATION_CHUNK].assign(rows[start:start + GENERATION_CHUNK])
    return model, space


def export_one(args) -> None:
    """Child process: build the catalog and model, export with one index, print JSON (seconds, bytes)."""
    from mmrec_tf import export_model

    items, users, _ = synthetic_catalog(args.structure, args.size, args.dim, args.centres, args.spread)
    model, space = catalog_model(items, users)
    del items, users
    started = time.perf_counter()
    folder = export_model(model, space, args.export_dir, args.index.split(":")[0], k=K, index=args.index)
    seconds = time.perf_counter() - started
    size = sum(path.stat().st_size for path in pathlib.Path(folder).rglob("*") if path.is_file())
    print(json.dumps({"seconds": seconds, "bytes": size, "folder": str(folder)}), flush=True)


def run_export(index: str, structure: str, size: int, out: pathlib.Path, args) -> dict | None:
    """Export in a child process; its seconds, bytes on disk, folder and peak RSS (GB); None if it failed."""
    command = [sys.executable, __file__, "--export-one", "--structure", structure, "--size", str(size),
               "--index", index, "--export-dir", str(out), "--dim", str(args.dim),
               "--centres", str(args.centres), "--spread", str(args.spread)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    peak_rss_gb = usage.ru_maxrss / 1024 ** 2  # ru_maxrss is in KiB on Linux
    if status != 0:
        cause = (f"killed by signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
                 else f"exit status {os.WEXITSTATUS(status)}")
        print(f"  export {index}: FAILED, {cause}, at a peak RSS of {peak_rss_gb:.2f} GB; not measured", flush=True)
        return None
    result = json.loads(output.strip().splitlines()[-1])
    result["peak_rss_gb"] = peak_rss_gb
    return result


def user_batches(batch: int, count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.choice(NUM_USERS, batch, replace=False) for _ in range(count)]


def requests(rows: np.ndarray, histories: np.ndarray) -> dict:
    return {"user_id": tf.constant([f"u{i}" for i in rows]),
            "history": tf.constant([[item_id(p) for p in histories[i]] for i in rows])}


def exact_top_k(items: np.ndarray, users: np.ndarray, histories: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Exact float32 top-K catalog positions of ``users[rows]`` with their histories excluded."""
    scores = users[rows] @ items.T
    np.put_along_axis(scores, histories[rows], -np.inf, axis=1)
    return np.argpartition(-scores, K, axis=1)[:, :K]


def numpy_latency(items: np.ndarray, users: np.ndarray, batches: list, warmup: int) -> list[float]:
    """ms per call of float32 ``users @ items.T`` + ``np.argpartition`` top-K (the memory-bandwidth reference)."""
    timings = []
    for step, rows in enumerate(batches[:warmup] + batches):
        started = time.perf_counter()
        np.argpartition(-(users[rows] @ items.T), K, axis=1)[:, :K]
        if step >= warmup:
            timings.append((time.perf_counter() - started) * 1000.0)
    return timings


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a[a >= 0]) & set(b)) / K for a, b in zip(found, exact)]))


def positions_of(item_ids: np.ndarray) -> np.ndarray:
    return np.array([[int(i.decode()[1:]) if i else -1 for i in row] for row in item_ids])


def benchmark_size(structure: str, size: int, out: pathlib.Path, args) -> dict:
    """Exports, recall, interleaved latency and the numpy reference for one catalog; ``{variant: stats}``."""
    print(f"\n{structure} catalog, {size:,} items x {args.dim}: load average {os.getloadavg()[0]:.2f}", flush=True)
    from mmrec_tf.export.ivf_index import IVFIndex, default_num_partitions, default_num_probes

    indexes = (["brute_force"] if size <= BRUTE_FORCE_MAX_ITEMS else []) + ["bfloat16", "ivf"]
    exports = {}
    for index in list(indexes):
        exports[index] = run_export(index, structure, size, out / f"{structure}_{size}", args)
        if exports[index] is None:
            indexes.remove(index)
            continue
        print(f"  export {index}: {exports[index]['seconds']:.1f} s, {exports[index]['bytes'] / 1e6:.0f} MB on "
              f"disk, peak RSS {exports[index]['peak_rss_gb']:.2f} GB", flush=True)
    items, users, histories = synthetic_catalog(structure, size, args.dim, args.centres, args.spread)
    calls = args.calls if size < 10_000_000 else args.calls_10m
    batches = {batch: user_batches(batch, calls, seed=batch) for batch in BATCHES}
    stats = {"numpy": {"timings": {batch: numpy_latency(items, users, batches[batch], args.warmup)
                                   for batch in BATCHES}, "recall": 1.0}}
    print(f"  numpy float32 matmul + argpartition: p50 B=1 {np.median(stats['numpy']['timings'][1]):.2f} ms, "
          f"B=32 {np.median(stats['numpy']['timings'][32]):.2f} ms", flush=True)
    recall_rows = np.arange(RECALL_USERS)
    exact = np.concatenate([exact_top_k(items, users, histories, recall_rows[s:s + 32])
                            for s in range(0, RECALL_USERS, 32)])
    calls_by_variant = {}
    if size in args.sweep_sizes:  # built before the exports are loaded, so the catalog can go first
        ivf_index = IVFIndex(items, k=K)
        for nprobe in args.nprobes:
            search = tf.function(lambda queries, excluded, nprobe=nprobe: ivf_index.search(queries, excluded, nprobe))
            found = np.concatenate([search(tf.constant(users[recall_rows[s:s + 32]]),
                                           tf.constant(histories[recall_rows[s:s + 32]], tf.int32))[0].numpy()
                                    for s in range(0, RECALL_USERS, 32)])
            label = f"ivf index only, nprobe={nprobe}"
            stats[label] = {"recall": recall(found, exact), "nprobe": nprobe, "nlist": ivf_index.nlist}
            calls_by_variant[label] = ("index", search)
    del items  # before loading the exports: at 10M items each holds 3.8 GB of tables
    for index in indexes:
        exports[index]["loaded"] = tf.saved_model.load(exports[index]["folder"])
        signature = exports[index]["loaded"].signatures["retrieve"]
        found = np.concatenate([positions_of(signature(**requests(recall_rows[s:s + 32], histories))["item_ids"]
                                             .numpy()) for s in range(0, RECALL_USERS, 32)])
        label = index if index != "ivf" else f"ivf (nlist={default_num_partitions(size)}, " \
                                             f"nprobe={default_num_probes(default_num_partitions(size))})"
        stats[label] = {"recall": recall(found, exact), "export": exports[index]}
        calls_by_variant[label] = ("export", signature)
    for label in calls_by_variant:
        stats[label]["timings"] = {}
    for batch in BATCHES:
        prepared = [(requests(rows, histories), tf.constant(users[rows]), tf.constant(histories[rows], tf.int32))
                    for rows in batches[batch]]
        for label in calls_by_variant:
            stats[label]["timings"][batch] = []
        for step in range(args.warmup + calls):
            request, queries, excluded = prepared[step % calls]
            for label, (kind, function) in calls_by_variant.items():
                started = time.perf_counter()
                outputs = function(**request) if kind == "export" else function(queries, excluded)
                for value in (outputs.values() if kind == "export" else outputs):
                    value.numpy()
                if step >= args.warmup:
                    stats[label]["timings"][batch].append((time.perf_counter() - started) * 1000.0)
        print(f"  batch {batch}: {calls} interleaved calls per variant done, load average "
              f"{os.getloadavg()[0]:.2f}", flush=True)
    for index in indexes:  # the next catalog's exports need the memory
        del exports[index]["loaded"]
    return stats


def table_rows(structure: str, size: int, stats: dict) -> list[list[str]]:
    p50 = {label: {b: float(np.median(s["timings"][b])) for b in BATCHES} for label, s in stats.items()}
    p99 = {label: {b: float(np.percentile(s["timings"][b], 99)) for b in BATCHES} for label, s in stats.items()}
    rows = []
    for label, values in sorted(stats.items(), key=lambda item: "index only" in item[0]):
        export = values.get("export")
        rows.append([structure, f"{size:,}", label,
                     *[f"{p50[label][b]:.2f} / {p99[label][b]:.2f}" for b in BATCHES],
                     *[f"{p50[label][b] / p50['bfloat16'][b]:.2f}x" if "bfloat16" in p50 else "" for b in BATCHES],
                     *[f"{p50[label][b] / p50['numpy'][b]:.2f}x" for b in BATCHES],
                     f"{values['recall']:.4f}",
                     f"{export['seconds']:.0f}" if export else "", f"{export['bytes'] / 1e6:.0f}" if export else "",
                     f"{export['peak_rss_gb']:.2f}" if export else ""])
    return rows


def plot(results: dict, path: pathlib.Path) -> None:
    """p50 against catalog size (log-log), bfloat16 vs IVF exports, batch 1 and 32, with a linear guide."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(9, 3.6), dpi=80)
    for axis, batch in zip(axes, BATCHES):
        for (structure, style) in (("clustered", "-"), ("random", ":")):
            sizes = sorted(size for s, size in results if s == structure)
            if not sizes:
                continue
            for variant, colour in (("bfloat16", "tab:blue"), ("ivf (", "tab:orange")):
                measured = [(size, np.median(stats["timings"][batch])) for size in sizes
                            for label, stats in results[(structure, size)].items() if label.startswith(variant)]
                axis.plot(*zip(*measured), style, marker="o", color=colour,  # a failed export leaves a size out
                          label=f"{'ivf' if variant == 'ivf (' else variant}, {structure}")
        first = min(size for _, size in results)
        reference = np.median(results[next(key for key in results if key[1] == first)]["numpy"]["timings"][batch])
        guide = sorted({size for _, size in results})
        axis.plot(guide, [reference * size / first for size in guide], "--", color="grey",
                  label="linear growth (from numpy's p50)")
        axis.set(xscale="log", yscale="log", xlabel="catalog items", ylabel="retrieve p50 (ms)",
                 title=f"batch {batch}")
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000,10000000")
    parser.add_argument("--structures", default="clustered,random")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--centres", type=int, default=4096, help="cluster centres of the clustered catalogs")
    parser.add_argument("--spread", type=float, default=0.05, help="noise per dimension around a centre")
    parser.add_argument("--calls", type=int, default=100, help="timed calls per variant and batch size")
    parser.add_argument("--calls-10m", type=int, default=30, help="timed calls at 10M items")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--nprobes", default="1,2,4,8,16,32", help="nprobe values of the index-only sweep")
    parser.add_argument("--sweep-sizes", default="1000000", help="catalog sizes with the nprobe sweep")
    parser.add_argument("--plot", default=str(pathlib.Path(__file__).with_name("serving_latency_scaling.png")))
    parser.add_argument("--out", default=None, help="keep the exports in this folder")
    parser.add_argument("--export-one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--structure", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--index", help=argparse.SUPPRESS)
    parser.add_argument("--export-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export_one:
        export_one(args)
        return
    args.nprobes = [int(value) for value in args.nprobes.split(",")]
    args.sweep_sizes = {int(value) for value in args.sweep_sizes.split(",") if value}
    print(f"{' '.join(sys.argv)}\nTensorFlow {tf.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, load average before: {os.getloadavg()[0]:.2f}", flush=True)
    out = pathlib.Path(args.out or tempfile.mkdtemp(prefix="mmrec_serving_scaling_"))
    results = {}
    try:
        for structure in args.structures.split(","):
            for size in (int(value) for value in args.sizes.split(",")):
                results[(structure, size)] = benchmark_size(structure, size, out, args)
                if args.out is None:
                    shutil.rmtree(out / f"{structure}_{size}", ignore_errors=True)
                report({(structure, size): results[(structure, size)]}, args)
                plot(results, pathlib.Path(args.plot))
    finally:
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)
    print(f"\nAll catalogs (own peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2:.2f} GB):")
    report(results, args)
    print(f"\nplot: {args.plot}")


def report(results: dict, args) -> None:
    """The latency table of ``results`` and, for the clustered sweep sizes, p50 and recall against nprobe."""
    print(f"\nload average now: {os.getloadavg()[0]:.2f}; p50 / p99 in ms, exports' calls interleaved (numpy in its "
          f"own phase), outputs fetched; K = {K}, histories of {HISTORY} items excluded; peak RSS of the child "
          f"process that built the catalog, the model and the export\n")
    rows = [row for (structure, size), stats in results.items() for row in table_rows(structure, size, stats)]
    print_table(["catalog", "items", "variant", "B=1 p50 / p99", "B=32 p50 / p99", "B=1 / bfloat16",
                 "B=32 / bfloat16", "B=1 / numpy", "B=32 / numpy", "recall@100", "export s", "disk MB",
                 "peak RSS GB"], rows)
    for (structure, size), stats in results.items():
        if size not in args.sweep_sizes:
            continue
        print(f"\nIVF index only (no SavedModel), {structure} {size:,} items, p50 ms and recall@100 against "
              f"nprobe:\n")
        print_table(["nlist", "nprobe", "B=1 p50", "B=32 p50", "recall@100"],
                    [[str(s["nlist"]), str(s["nprobe"]), f"{np.median(s['timings'][1]):.2f}",
                      f"{np.median(s['timings'][32]):.2f}", f"{s['recall']:.4f}"]
                     for s in stats.values() if "nprobe" in s])

if __name__ == "__main__":
    main()
