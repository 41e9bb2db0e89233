"""Peak memory of one served ``score`` call against the number of candidates it scores.

The ``din.movielens_100k`` architecture (history of 50, Dice MLP, target attention;
untrained: memory does not depend on the weights) over the MovieLens-100K feature
space is exported twice with the serving module: as ``mmrec export`` writes it
(``score`` runs the model over chunks of ``score_chunk_pairs`` = 4,096 (user,
candidate) pairs, one after another inside the graph) and, for comparison, with
one chunk as large as any request (the pre-chunking behaviour, only run for small C).

Each point runs in a fresh subprocess: load the SavedModel with
``tf.saved_model.load`` (what TF Serving runs, minus the RPC), make one 1 × 10
warm-up call, read the peak resident set size (``ru_maxrss``), make the measured
call (B users, each with a 50-item history and C candidates cycling through the
catalog) and read the peak again. "extra" is the growth of the peak during the
measured call; "per candidate" divides it by B × C.

    nice -n 10 python benchmarks/score_memory.py [--data-path ../shared/data/ml-100k]
        [--candidates 1000,10000,30000,100000] [--unchunked 1000,4000,10000] [--batch 2000x100]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from _common import movielens_path, print_table  # noqa: E402

ENTRY = "din.movielens_100k"
HISTORY = 50

WORKER = """
import json, resource, sys, time
import numpy as np
import tensorflow as tf

folder, batch, num_candidates = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
items = json.loads(sys.argv[4])
score = tf.saved_model.load(folder).signatures["score"]


def request(rows, columns):
    history = [[items[(row * 7 + j) % len(items)] for j in range(50)] for row in range(rows)]
    candidates = np.array([items[(row + j) % len(items)] for row in range(rows) for j in range(columns)],
                          dtype=object).reshape(rows, columns)
    return {"user_id": tf.constant(["1"] * rows), "history": tf.constant(history),
            "candidates": tf.constant(candidates)}


def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


score(**request(1, 10))
inputs = request(batch, num_candidates)
before = peak_mib()
start = time.perf_counter()
scores = score(**inputs)["scores"].numpy()
seconds = time.perf_counter() - start
assert scores.shape == (batch, num_candidates), scores.shape
print(json.dumps({"before_mib": before, "peak_mib": peak_mib(), "seconds": seconds}))
"""


def build_exports(folder: pathlib.Path, data_path: str | None) -> tuple[dict[str, pathlib.Path], list[str], int]:
    import tensorflow as tf

    from mmrec_tf.data.feature_space import FeatureSpace
    from mmrec_tf.data.sources import load_dataset
    from mmrec_tf.export.saved_model import export_model
    from mmrec_tf.export.serving_module import SCORE_CHUNK_PAIRS, ServingModule
    from mmrec_tf.registry import create_model
    from mmrec_tf.zoo_entry import recipe_for

    dataset = load_dataset("movielens-100k", movielens_path(data_path))
    space = FeatureSpace.build(dataset)
    model = create_model("din", space=space, **recipe_for(ENTRY).model_arguments(max_history=HISTORY))
    chunked = export_model(model, space, folder, "din", warmup=False)
    unchunked_module = ServingModule(model, space, score_chunk_pairs=2**31 - 1)
    unchunked = folder / "din_unchunked"
    tf.saved_model.save(unchunked_module, str(unchunked), signatures=unchunked_module.signatures())
    return {"chunked": chunked, "unchunked": unchunked}, [str(i) for i in space.item_vocab.ids], SCORE_CHUNK_PAIRS


def measure(folder: pathlib.Path, batch: int, num_candidates: int, items: list[str]) -> dict:
    completed = subprocess.run([sys.executable, "-c", WORKER, str(folder), str(batch), str(num_candidates),
                                json.dumps(items)], capture_output=True, text=True)
    if completed.returncode != 0:
        return {"error": f"exit {completed.returncode}: {completed.stderr.strip().splitlines()[-1:]}"}
    return json.loads(completed.stdout.strip().splitlines()[-1])


def sizes(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-path", default=None)
    parser.add_argument("--candidates", default="1000,10000,30000,100000", help="C for 1 user, chunked export")
    parser.add_argument("--unchunked", default="1000,4000,10000", help="C for 1 user, one-chunk export")
    parser.add_argument("--batch", default="2000x100", help="B x C of a batch request (chunked), '' for none")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as temporary:
        exports, items, chunk = build_exports(pathlib.Path(temporary), args.data_path)
        points = [("chunked", 1, c) for c in sizes(args.candidates)]
        if args.batch:
            rows, columns = (int(n) for n in args.batch.split("x"))
            points.append(("chunked", rows, columns))
        points += [("unchunked", 1, c) for c in sizes(args.unchunked)]
        table = []
        for export, batch, num_candidates in points:
            result = measure(exports[export], batch, num_candidates, items)
            pairs = batch * num_candidates
            label = f"{export} ({chunk:,} pairs)" if export == "chunked" else "one chunk"
            if "error" in result:
                table.append([label, f"{batch:,} x {num_candidates:,}", "-", "-", "-", "-", result["error"]])
            else:
                extra = result["peak_mib"] - result["before_mib"]
                table.append([label, f"{batch:,} x {num_candidates:,}", f"{result['before_mib']:,.0f}",
                              f"{result['peak_mib']:,.0f}", f"{extra:,.0f}", f"{extra * 1024 / pairs:,.2f}",
                              f"{result['seconds']:.2f}"])
            print(f"done: {table[-1]}", file=sys.stderr, flush=True)
    print(f"{ENTRY} architecture, history {HISTORY}, {len(items):,} items; peak RSS in MiB")
    print_table(["export", "B x C", "after load", "peak", "extra", "KiB per pair", "seconds"], table)


if __name__ == "__main__":
    main()
