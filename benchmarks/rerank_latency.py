"""Latency of ``retrieve`` with a re-ranker inside the export vs the plain export, ML-100K ``lstm_two_tower``.

One ``lstm_two_tower`` trained ``--epochs`` epochs on MovieLens-100K
(leave-last-out) is exported with :func:`mmrec_tf.export_model` five times
with the same index (``brute_force``) and ``k``: plain, and with each
re-ranker of :mod:`mmrec_tf.export.reranking` (``mmr:0.3``,
``calibrated:0.5`` over ``genres``, ``tail:0.2``; each picks ``k`` of a
shortlist of ``max(4 k, 100)`` items). Each is loaded back with
``tf.saved_model.load`` and its ``retrieve`` timed with the helpers of
``serving_latency.py``: calls of all variants interleaved on the same request
batches, so they share the machine's load; p50/p99 (min) over ``--calls``
timed calls after ``--warmup``, outputs fetched. The ratio column divides
each variant's p50 by the plain export's p50 at the same batch size. Every
re-ranking export is also run through
:func:`~mmrec_tf.export.serve_check.serve_check` (a TensorFlow-only process,
warm-up replay, registered ops): the ``servable`` column.

    nice -n 10 python benchmarks/rerank_latency.py [--data-path ../shared/data/ml-100k]
        [--epochs 2] [--k 100] [--calls 200] [--warmup 20] [--rerank mmr:0.3,calibrated:0.5,tail:0.2]

Exports go to a temporary folder (``--out`` to keep them).
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
from serving_latency import BATCHES, HISTORY, interleaved_latency, request_batches  # noqa: E402

from mmrec_tf import export_model, prepare_data, run  # noqa: E402
from mmrec_tf.data.sources import load_dataset  # noqa: E402
from mmrec_tf.evaluation.recommendation_lists import item_popularity  # noqa: E402
from mmrec_tf.export.serve_check import serve_check  # noqa: E402

PLAIN = "plain"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-path", default=None, help="GroupLens ml-100k folder (default: shared data)")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs (latency does not need a good model)")
    parser.add_argument("--k", type=int, default=100, help="items `retrieve` returns (mmrec export's default)")
    parser.add_argument("--rerank", default="mmr:0.3,calibrated:0.5,tail:0.2", help="re-rankers, comma separated")
    parser.add_argument("--calls", type=int, default=200, help="timed calls per variant and batch size")
    parser.add_argument("--warmup", type=int, default=20, help="untimed calls first")
    parser.add_argument("--out", default=None, help="keep the exports in this folder")
    args = parser.parse_args()

    print(f"TensorFlow {tf.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    dataset = load_dataset("movielens-100k", movielens_path(args.data_path))
    data = prepare_data(dataset, "leave_last_out", max_history=50)
    started = time.perf_counter()
    model = run("lstm_two_tower", data, training={"epochs": args.epochs}, verbose=0).model
    print(f"lstm_two_tower trained {args.epochs} epochs on {dataset.source} in {time.perf_counter() - started:.0f} s",
          flush=True)
    space = data.space
    popularity = item_popularity(data.examples["train"], space.num_items)[0]
    log = dataset.interactions.sort_values(["user_id", "timestamp"])
    histories = {user: items[-HISTORY:] for user, items in log.groupby("user_id")["item_id"].agg(list).items()}
    users, item_ids = list(space.user_vocab.ids), list(space.item_vocab.ids)

    out = pathlib.Path(args.out or tempfile.mkdtemp(prefix="mmrec_rerank_latency_"))
    variants = [PLAIN, *args.rerank.split(",")]
    loaded, servable = {}, {}
    try:
        for variant in variants:
            name = "plain" if variant == PLAIN else variant.replace(":", "_").replace(".", "")
            version_dir = export_model(model, space, out, name, k=args.k, index="brute_force",
                                       rerank=None if variant == PLAIN else variant, item_popularity=popularity)
            loaded[variant] = tf.saved_model.load(str(version_dir)).signatures["retrieve"]
            if variant != PLAIN:
                servable[variant] = serve_check(out / name, batch_sizes=(1,), repeats=1)["servable"]
            print(f"  {variant}: exported and loaded" + (f", servable {servable[variant]}" if variant in servable
                                                         else ""), flush=True)
        rows = {}
        for batch in BATCHES:
            batches = request_batches(users, histories, item_ids, batch, 16, seed=batch)
            calls = {variant: (loaded[variant], ("user_id", "history")) for variant in variants}
            timings = interleaved_latency(calls, batches, args.warmup, args.calls)
            for variant, values in timings.items():
                rows.setdefault(variant, {})[batch] = (np.percentile(values, 50), np.percentile(values, 99),
                                                       np.min(values))
            print(f"  batch {batch}: done", flush=True)
    finally:
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)

    print(f"\nload average after: {os.getloadavg()[0]:.2f}; ML-100K lstm_two_tower ({space.num_items:,} items), "
          f"retrieve K = {args.k}, brute_force index, histories of {HISTORY} items; p50 / p99 (min) in ms over "
          f"{args.calls} calls per cell, interleaved, outputs fetched; ratio = p50 / plain p50\n")
    table = []
    for variant in variants:
        cells = []
        for batch in BATCHES:
            p50, p99, low = rows[variant][batch]
            cells += [f"{p50:.2f} / {p99:.2f} ({low:.2f})", f"{p50 / rows[PLAIN][batch][0]:.2f}x"]
        table.append([variant, *cells, "" if variant == PLAIN else str(servable[variant])])
    print_table(["retrieve", "B=1 p50 / p99 (min) ms", "B=1 ratio", "B=32 p50 / p99 (min) ms", "B=32 ratio",
                 "serve-check servable"], table)


if __name__ == "__main__":
    main()
