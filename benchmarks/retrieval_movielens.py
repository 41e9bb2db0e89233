"""Retrieval quality and training speed on MovieLens-100K, leave-last-out, full ranking.

Protocol: per user, last interaction → test, second-last → valid, the rest
→ train; every one of the 1,682 items is ranked for each test user with the
user's train and valid items excluded; HR@10 and NDCG@10 averaged over the
943 users (ties broken at random in expectation). Each model is trained with
its zoo entry's recipe; ``--seeds`` repeats with different seeds. An extra row
trains ``two_tower`` exactly as the TFRS basic-retrieval tutorial does (Adagrad
0.1, batch 8192, 3 epochs, no logQ correction) for comparison. Each entry's
examples keep its recipe's ``data.max_history`` most recent items.

``--shuffle-ties`` makes the split order same-second ratings at random
(:func:`~mmrec_tf.data.splits.leave_last_out` with ``shuffle_ties``; seed N's
split is drawn from N, so the spread covers the tie order too): ML-100K
stores whole seconds and 44 % of its users' last two ratings share one, so a
model that scored much lower there would have learnt the file's tie order.

    python benchmarks/retrieval_movielens.py [--data-path ../shared/data/ml-100k] [--seeds 3]
        [--entries sasrec.movielens_100k] [--training '{"epochs": 50}'] [--architecture '{"num_blocks": 1}']
        [--update-zoo] [--shuffle-ties] [--valid-every 10]

``--update-zoo`` writes the measured means into the zoo entries' ``metrics``.
``--training`` / ``--architecture`` (JSON) override the recipe of every
entry run, for tuning a recipe on the validation split: each run prints its
valid HR@10 next to the test one, and the table has a valid HR@10 column;
``--valid-every N`` also prints the valid HR@10 after every N-th epoch (the
learning curve of one run, to choose its number of epochs).
Seeds can train in parallel processes (``--first-seed 1 --seeds 1 --save-runs
s1.json`` ...) and be tabled together (``--from-runs s0.json s1.json s2.json
--update-zoo``).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import pathlib
import statistics
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import keras  # noqa: E402
import yaml  # noqa: E402
from _common import REPOSITORY, mean_std, movielens_path, print_table  # noqa: E402

from mmrec_tf.data.sources import load_dataset  # noqa: E402
from mmrec_tf.evaluation.full_ranking import evaluate_retrieval  # noqa: E402
from mmrec_tf.experiment import data_settings, prepare_data, run  # noqa: E402

ENTRIES = ("popularity.movielens_100k", "two_tower.movielens_100k", "lstm_two_tower.movielens_100k",
           "sasrec.movielens_100k")
TFRS_RECIPE = {"optimizer": "adagrad", "learning_rate": 0.1, "batch_size": 8192, "epochs": 3}
TFRS_ARCHITECTURE = {"embedding_dim": 32, "logq_correction": False, "remove_accidental_hits": False}
TFRS_LABEL = "two_tower, TFRS tutorial recipe"
TIES_SUFFIX = ", ties shuffled"
PROTOCOL = "ML-100K leave-last-out, full ranking of 1,682 items, user's train+valid items excluded, 943 test users"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-path", default=None)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--entries", default=",".join(ENTRIES))
    parser.add_argument("--training", type=json.loads, default={}, help="JSON training overrides (tuning)")
    parser.add_argument("--architecture", type=json.loads, default={}, help="JSON architecture overrides (tuning)")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1")
    parser.add_argument("--save-runs", default=None, help="write every run's numbers to this JSON file")
    parser.add_argument("--from-runs", nargs="+", default=None,
                        help="no training: the table (and --update-zoo) from --save-runs files, e.g. of seeds "
                             "trained in parallel processes")
    parser.add_argument("--update-zoo", action="store_true")
    parser.add_argument("--valid-every", type=int, default=0, help="print valid HR@10 after every N-th epoch")
    parser.add_argument("--shuffle-ties", action="store_true",
                        help="order same-second ratings at random (seed N's split from seed N)")
    parser.add_argument("--no-tfrs-recipe", action="store_true",
                        help="skip the extra two_tower row trained the way the TFRS tutorial trains it")
    args = parser.parse_args()
    if args.update_zoo and (args.training or args.architecture):
        parser.error("--update-zoo records the zoo recipes' own numbers; leave out --training and --architecture")
    if args.update_zoo and args.shuffle_ties:
        parser.error("--update-zoo records the zoo's protocol, whose ties keep the file order; leave out --shuffle-ties")

    if args.from_runs:
        results = {}
        for path in args.from_runs:
            for record in json.loads(pathlib.Path(path).read_text(encoding="utf-8")):
                results.setdefault(record["entry"], []).append(Measured(**{k: v for k, v in record.items()
                                                                           if k not in ("entry", "seed")}))
    else:
        results = train_all(args)
    rows = []
    for entry, runs in results.items():
        speed = [r.examples_per_second for r in runs]
        rows.append([entry, mean_std([r.valid["hr@10"] for r in runs]),
                     mean_std([r.test["hr@10"] for r in runs]),
                     mean_std([r.test["ndcg@10"] for r in runs]),
                     mean_std([r.test["mrr"] for r in runs]),
                     mean_std([r.test["coverage@10"] for r in runs]),
                     f"{statistics.median(speed):,.0f}" if any(speed) else "n/a (counting)"])
    print()
    print_table(["entry", "valid HR@10", "HR@10", "NDCG@10", "MRR", "coverage@10", "train examples/s (median)"], rows)
    if "two_tower.movielens_100k" in results and "lstm_two_tower.movielens_100k" in results:
        ratio = (statistics.mean(r.test["hr@10"] for r in results["lstm_two_tower.movielens_100k"])
                 / statistics.mean(r.test["hr@10"] for r in results["two_tower.movielens_100k"]))
        print(f"\nlstm_two_tower / two_tower HR@10 ratio: {ratio:.2f}")
    if "sasrec.movielens_100k" in results and "lstm_two_tower.movielens_100k" in results:
        ratio = (statistics.mean(r.test["hr@10"] for r in results["sasrec.movielens_100k"])
                 / statistics.mean(r.test["hr@10"] for r in results["lstm_two_tower.movielens_100k"]))
        print(f"sasrec / lstm_two_tower HR@10 ratio: {ratio:.2f}")
    if args.update_zoo:
        update_zoo({name: runs for name, runs in results.items() if name in ENTRIES},
                   max(len(runs) for runs in results.values()))


@dataclasses.dataclass
class Measured:
    """What the table and the zoo need of one run (a RunResult's numbers, or read back from --save-runs)."""

    valid: dict
    test: dict
    examples_per_second: float
    train_seconds: float

    @classmethod
    def of(cls, result) -> "Measured":
        return cls(result.valid.metrics, result.test.metrics, result.examples_per_second, result.train_seconds)


def train_all(args) -> dict[str, list[Measured]]:
    dataset = load_dataset("movielens-100k", movielens_path(args.data_path))
    print(f"data: {dataset.source}; {PROTOCOL}" + ("; same-second ratings in a random order" if args.shuffle_ties
                                                    else ""))
    prepared = {}

    def data_for(entry: str, seed: int):
        max_history = args.architecture.get("max_history", data_settings(entry)["max_history"])
        ties = {"shuffle_ties": True, "seed": seed} if args.shuffle_ties else {}
        key = (max_history, tuple(ties.items()))
        if key not in prepared:
            prepared[key] = prepare_data(dataset, "leave_last_out", max_history=max_history, **ties)
        return prepared[key]

    seeds = range(args.first_seed, args.first_seed + args.seeds)
    results, records = {}, []
    for name in args.entries.split(","):
        entry = name + (TIES_SUFFIX if args.shuffle_ties else "")
        runs = []
        for seed in seeds:
            data = data_for(name, seed)
            curve = [ValidCurve(data, args.valid_every, f"{entry} seed {seed}")] if args.valid_every else None
            runs.append(Measured.of(run(name, data, training={**args.training, "seed": seed}, verbose=0,
                                        callbacks=curve, **args.architecture)))
            print(f"{entry} seed {seed}: valid hr@10={runs[-1].valid['hr@10']:.4f} "
                  f"ndcg@10={runs[-1].valid['ndcg@10']:.4f}; test hr@10={runs[-1].test['hr@10']:.4f} "
                  f"({runs[-1].train_seconds:.0f} s training)", flush=True)
            records.append({"entry": entry, "seed": seed, **dataclasses.asdict(runs[-1])})
            if args.save_runs:
                pathlib.Path(args.save_runs).write_text(json.dumps(records, indent=1), encoding="utf-8")
        results[entry] = runs
    if not args.no_tfrs_recipe:
        results[TFRS_LABEL] = [Measured.of(run("two_tower", data_for("two_tower", seed), training={**TFRS_RECIPE, "seed": seed}, verbose=0,
                                               **TFRS_ARCHITECTURE))
                               for seed in seeds]
    return results


class ValidCurve(keras.callbacks.Callback):
    """Prints the valid HR@10 and NDCG@10 after every ``every``-th epoch."""

    def __init__(self, data, every: int, label: str):
        super().__init__()
        self.data, self.every, self.label = data, every, label

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every == 0:
            valid = evaluate_retrieval(self.model, self.data.examples["valid"], self.data.seen("valid"), ks=(10,))
            print(f"{self.label} epoch {epoch + 1}: valid hr@10={valid.metrics['hr@10']:.4f} "
                  f"ndcg@10={valid.metrics['ndcg@10']:.4f}", flush=True)


def update_zoo(results: dict, seeds: int) -> None:
    for entry, runs in results.items():
        path = REPOSITORY / "zoo" / f"{entry}.yaml"
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
        values = {}
        for key in ("hr@10", "ndcg@10", "hr@20", "ndcg@20", "mrr", "coverage@10"):
            numbers = [r.test[key] for r in runs]
            values[key] = round(statistics.mean(numbers), 4)
            if len(numbers) > 1:
                values[f"{key}_std"] = round(statistics.stdev(numbers), 4)
        metrics = {"protocol": f"{PROTOCOL}; mean over {seeds} seeds",
                   "script": "benchmarks/retrieval_movielens.py",
                   "measured_on": datetime.date.today().isoformat(),
                   "values": values}
        speed = [r.examples_per_second for r in runs if r.examples_per_second]
        if speed:
            metrics["training_examples_per_second"] = round(statistics.median(speed), 1)
        content["metrics"] = metrics
        path.write_text(yaml.safe_dump(content, sort_keys=False, allow_unicode=True, width=100), encoding="utf-8")
        print(f"updated {path.relative_to(REPOSITORY)}")


if __name__ == "__main__":
    main()
