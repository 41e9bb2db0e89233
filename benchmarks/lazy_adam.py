"""Training cost against table size: Adam vs LazyAdam vs SGD, and LazyAdam's quality on MovieLens-100K.

Two parts, each in one process and one run:

1. Speed. ``two_tower`` (user-id and item-id embeddings, in-batch softmax)
   on synthetic examples: the same ``--examples`` (user, item) pairs for a
   catalog of ``--users`` users (10k and 40k by default; users uniform,
   items Zipf-distributed over ``--items``), trained with Keras' ``adam``,
   ``lazy_adam`` (:class:`mmrec_tf.lazy_adam.LazyAdam`) and ``sgd``, each with
   ``TrainingConfig``'s speed defaults. The six contenders train epoch by
   epoch in alternation (as in ``benchmarks/training_throughput.py``), so load
   changes hit them alike; examples/s = median of the epochs after the first
   (which compiles). Per optimizer it prints the cost ratio of the largest to
   the smallest user table (median of the per-epoch time ratios, each pair
   of epochs ran back to back): an optimizer whose step costs in proportion
   to the batch has a ratio near 1.
2. Quality. Each ``--entries`` zoo recipe on ML-100K leave-last-out (full
   ranking, as in ``benchmarks/retrieval_movielens.py``), trained with
   ``adam`` and with ``lazy_adam`` and otherwise the same recipe, ``--seeds``
   seeds: test and valid HR@10 mean ± std and training examples/s.

    python benchmarks/lazy_adam.py [--parts speed,quality] [--examples 720000] [--users 10000,40000]
        [--items 2000] [--epochs 3] [--entries two_tower.movielens_100k,lstm_two_tower.movielens_100k]
        [--seeds 3] [--data-path ../shared/data/ml-100k]

The machine's 1-minute load average is printed with every measurement.
Nothing is written to disk.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from _common import mean_std, movielens_path, print_table  # noqa: E402
from training_throughput import load_average, paired_speedup, race, ready_like_train_model  # noqa: E402

from mmrec_tf.data.pipeline import Examples  # noqa: E402
from mmrec_tf.data.sources import load_dataset  # noqa: E402
from mmrec_tf.experiment import prepare_data, run  # noqa: E402
from mmrec_tf.models import TwoTower  # noqa: E402
from mmrec_tf.training import TrainingConfig  # noqa: E402

OPTIMIZERS = (("adam", 1e-3), ("lazy_adam", 1e-3), ("sgd", 0.1))
BATCH, DIM = 256, 64


def synthetic_examples(count: int, users: int, items: int, seed: int = 0) -> Examples:
    """``count`` (user, item) pairs: users uniform over ``1..users``, items Zipf(1.1)-distributed over ``1..items``."""
    rng = np.random.default_rng(seed)
    user_id = rng.integers(1, users + 1, size=count, dtype=np.int64)
    ranks = np.arange(1, items + 1, dtype=np.float64)
    item_id = rng.choice(np.arange(1, items + 1), size=count, p=ranks ** -1.1 / np.sum(ranks ** -1.1))
    return Examples(user_id, item_id.astype(np.int64), np.zeros((count, 1), np.int32), {})


def speed(args) -> None:
    user_counts = [int(count) for count in args.users.split(",")]
    print(f"speed: two_tower, embedding dim {DIM}, batch {BATCH}, {args.examples:,} examples, {args.items:,} items, "
          f"users {user_counts}; TrainingConfig speed defaults", flush=True)
    contenders = {}
    for users in user_counts:
        train = synthetic_examples(args.examples, users, args.items)
        for optimizer, learning_rate in OPTIMIZERS:
            config = TrainingConfig(batch_size=BATCH, optimizer=optimizer, learning_rate=learning_rate)
            keras.utils.set_random_seed(config.seed)
            model = TwoTower(num_users=users, num_items=args.items, embedding_dim=DIM, logq_correction=True)
            contenders[optimizer, users] = ready_like_train_model(model, train, config, f"{optimizer}, {users:,} users")
    race(list(contenders.values()), args.epochs)
    rows = []
    for (optimizer, users), contender in contenders.items():
        if contender.failure:
            raise SystemExit(f"{contender.label} failed: {contender.failure}")
        print(f"{contender.label}: {contender.rate:,.0f} examples/s (jit_compile={contender.model.jit_compile}, "
              f"{contender.model.steps_per_execution} steps/call, load {contender.load:.1f})", flush=True)
    smallest, largest = min(user_counts), max(user_counts)
    for optimizer, _ in OPTIMIZERS:
        small, large = contenders[optimizer, smallest], contenders[optimizer, largest]
        rows.append([optimizer, f"{small.rate:,.0f}", f"{large.rate:,.0f}",
                     f"{paired_speedup(large, small):.2f}x",
                     f"{paired_speedup(contenders['adam', largest], large):.2f}x",
                     f"{statistics.mean([small.load, large.load]):.1f}"])
    print(f"\nExamples/s = median of epochs 2..{args.epochs}; cost ratio = median over those epochs of "
          f"(epoch seconds with {largest:,} users) / (with {smallest:,} users); speed-up = Adam's epoch seconds / "
          f"this optimizer's at {largest:,} users\n")
    print_table(["optimizer", f"{smallest:,} users ex/s", f"{largest:,} users ex/s",
                 f"cost {largest // 1000}k / {smallest // 1000}k", f"speed-up vs adam at {largest // 1000}k",
                 "load"], rows)


def quality(args) -> None:
    dataset = load_dataset("movielens-100k", movielens_path(args.data_path))
    print(f"quality: {dataset.source}; ML-100K leave-last-out, full ranking, user's train+valid items excluded",
          flush=True)
    data = prepare_data(dataset, "leave_last_out", max_history=50)
    rows = []
    for entry in args.entries.split(","):
        for optimizer in ("adam", "lazy_adam"):
            runs = []
            for seed in range(args.seeds):
                result = run(entry, data, training={"optimizer": optimizer, "seed": seed}, verbose=0)
                runs.append(result)
                print(f"{entry}, {optimizer}, seed {seed}: test hr@10={result.test.metrics['hr@10']:.4f}, valid "
                      f"hr@10={result.valid.metrics['hr@10']:.4f}, {result.examples_per_second:,.0f} examples/s "
                      f"(load {load_average():.1f})", flush=True)
            rows.append([entry, optimizer, mean_std([r.test.metrics["hr@10"] for r in runs]),
                         mean_std([r.test.metrics["ndcg@10"] for r in runs]),
                         mean_std([r.valid.metrics["hr@10"] for r in runs]),
                         f"{statistics.median(r.examples_per_second for r in runs):,.0f}"])
    print(f"\nmean ± std over {args.seeds} seeds; examples/s = median over seeds\n")
    print_table(["entry", "optimizer", "test HR@10", "test NDCG@10", "valid HR@10", "train examples/s"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="speed,quality")
    parser.add_argument("--examples", type=int, default=720_000)
    parser.add_argument("--users", default="10000,40000", help="comma-separated user counts")
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per speed measurement (the first is excluded)")
    parser.add_argument("--entries", default="two_tower.movielens_100k,lstm_two_tower.movielens_100k")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--data-path", default=None)
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if not parts <= {"speed", "quality"}:
        parser.error(f"--parts: speed and/or quality, got {args.parts!r}")
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first epoch is excluded)")
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs, "
          f"load average {load_average():.1f} at start", flush=True)
    if "speed" in parts:
        speed(args)
    if "quality" in parts:
        quality(args)
    print(f"load average {load_average():.1f} at the end")


if __name__ == "__main__":
    main()
