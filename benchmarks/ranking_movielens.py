"""Click-through ranking on MovieLens-100K with the DIN paper's protocol: article_lstm vs embedding_mlp vs din vs bst.

Protocol (Zhou et al., "Deep Interest Network", KDD 2018, sec. 6.1, on
ML-100K instead of ML-20M): a rating of 4 or 5 is a positive, 1-3 a negative;
each user's ratings in time order are split 80 / 10 / 10 % into train / valid /
test (per-user temporal split: every model predicts a user's future from their
past); the history of an example is the user's 50 most recent earlier liked movies (rated
>= 4; ``--history all`` for every earlier rated movie; ``--history rated`` for
every earlier rated movie with its rating as a per-behaviour feature, which
the entries with ``rating_levels`` embed).
Each model is trained by :func:`mmrec_tf.experiment.run` (what ``mmrec train``
runs) with its zoo entry's recipe for up to ``epochs`` epochs, keeping the
epoch with the best validation GAUC, then scored on the test split: GAUC
(impression-weighted per-user AUC, the paper's metric), AUC and log loss,
mean ± std over seeds. Training speed counts training examples per second of
``fit`` (the per-epoch validation scoring excluded).

    python benchmarks/ranking_movielens.py [--data-path ../shared/data/ml-100k] [--seeds 3]
        [--models article_lstm,embedding_mlp,din] [--history positive|all|rated] [--update-zoo]
        [--label sampled] [--dataset movielens-100k-mm]

``--label sampled`` is the DIN paper's own protocol for implicit data (its
Amazon set, Zhou et al. sec. 6.1): every rating, whatever its stars, is a
positive, each with one random movie the user never rated as its negative
(:func:`mmrec_tf.data.labels.build_sampled_examples`), histories of every
earlier rated movie, same per-user temporal split; genres, title words and year are the
movies' category features, as the paper uses cate_id beside goods_id.
``--dataset movielens-100k-mm`` adds the MiniLM plot and EfficientNet-Lite0
poster vectors of ``mmrec features`` (found through ``MMREC_FEATURES_DIR`` or
``runs/features``) as item features; ``--data-path`` then names the folder
holding ``ml-100k/``, ``ml-100k-plots/`` and ``ml-100k-posters/``.

``--update-zoo`` writes the measured means into the zoo entries' ``metrics``
(``valid_gauc``: the mean validation GAUC of the kept epochs, the number
recipes are chosen by).
"""

from __future__ import annotations

import argparse
import datetime
import os
import pathlib
import statistics
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import yaml  # noqa: E402
from _common import REPOSITORY, mean_std, movielens_path, print_table  # noqa: E402

from mmrec_tf.data.sources import load_dataset  # noqa: E402
from mmrec_tf.experiment import data_settings, prepare_data, run  # noqa: E402

MODELS = ("article_lstm", "embedding_mlp", "din", "bst")
TAG = "movielens_100k"
PAPER = "DIN paper, MovieLens-20M: GAUC 0.7300 BaseModel (embedding_mlp), 0.7337 DIN, 0.7348 DIN with Dice"


def protocol(history: str, label: str = "rating", dataset: str = "movielens-100k") -> str:
    name = {"movielens-100k": "ML-100K", "movielens-100k-mm": "ML-100K-mm (+ plot and poster vectors)"}[dataset]
    if label == "sampled":
        return (f"{name}, every rating a positive + 1 random never-rated movie as its negative (DIN paper "
                "protocol), per-user temporal split 80/10/10 %, history = the 50 most recent earlier rated movies, "
                "best epoch by valid GAUC, test GAUC/AUC")
    liked = {"positive": "earlier movies rated >= 4", "all": "all earlier rated movies",
             "rated": "all earlier rated movies, each with its rating (1-5) as a behaviour feature"}[history]
    return (f"{name}, label rating >= 4, per-user temporal split 80/10/10 %, history = the 50 most recent "
            f"{liked}, best epoch by valid GAUC, test GAUC/AUC")


def run_once(name: str, data, seed: int, epochs: int | None, overrides: dict) -> dict:
    """One seed of a zoo entry through :func:`mmrec_tf.experiment.run`, the loop ``mmrec train`` runs."""
    training = {"seed": seed, **({"epochs": epochs} if epochs else {})}
    result = run(f"{name}.{TAG}", data, training=training, verbose=0, **overrides)
    fit_seconds = result.train_seconds - result.selection_seconds
    return {**result.test.metrics, "best_epoch": result.best_epoch, "valid_gauc": result.valid.metrics["gauc"],
            "examples_per_second": len(data.examples["train"]) * result.training.epochs / fit_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-path", default=None)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--history", default="positive", choices=["positive", "all", "rated"])
    parser.add_argument("--label", default="rating", choices=["rating", "sampled"],
                        help="rating: the entries' rating >= 4; sampled: every rating positive + 1 sampled negative")
    parser.add_argument("--dataset", default="movielens-100k", choices=["movielens-100k", "movielens-100k-mm"])
    parser.add_argument("--epochs", type=int, default=None, help="override every entry's epochs")
    parser.add_argument("--set", action="append", default=[], metavar="MODEL.KEY=VALUE",
                        help="override an architecture argument of one model (value parsed as YAML)")
    parser.add_argument("--update-zoo", action="store_true")
    args = parser.parse_args()
    overrides = {name: {} for name in args.models.split(",")}
    for item in args.set:
        key, value = item.split("=", 1)
        model, argument = key.split(".", 1)
        overrides[model][argument] = yaml.safe_load(value)

    if args.label == "sampled" and args.history != "positive":
        raise SystemExit("--label sampled: every rated movie is a positive, so the history is all of them; "
                         "leave --history out")
    path = movielens_path(args.data_path)
    if args.dataset == "movielens-100k-mm" and args.data_path is None:
        path = str(pathlib.Path(path).parent)
    dataset = load_dataset(args.dataset, path)
    protocol_settings = {"label": "sampled:1"} if args.label == "sampled" else {"history": args.history}
    settings = data_settings(f"{MODELS[0]}.{TAG}", **protocol_settings)
    differing = [name for name in overrides if data_settings(f"{name}.{TAG}", **protocol_settings) != settings]
    if differing:
        raise SystemExit(f"the entries of {differing} prepare their data unlike {MODELS[0]}.{TAG}; compare them apart")
    data = prepare_data(dataset, **settings)
    print(f"data: {dataset.source}, item features {sorted(data.space.item_features)}; "
          f"{protocol(args.history, args.label, args.dataset)}")
    print("examples: " + ", ".join(f"{k} {len(v):,} ({v.extras['label'].mean():.1%} positive)"
                                    for k, v in data.examples.items()), flush=True)
    results = {}
    for name in overrides:
        results[name] = []
        for seed in range(args.seeds):
            result = run_once(name, data, seed, args.epochs, overrides[name])
            results[name].append(result)
            print(f"{name} seed {seed}: test gauc={result['gauc']:.4f} auc={result['auc']:.4f} "
                  f"log_loss={result['log_loss']:.4f} (best epoch {result['best_epoch']}, valid gauc "
                  f"{result['valid_gauc']:.4f}, {result['examples_per_second']:,.0f} examples/s)", flush=True)
    rows = [[name, mean_std([r["valid_gauc"] for r in runs]), mean_std([r["gauc"] for r in runs]),
             mean_std([r["auc"] for r in runs]),
             mean_std([r["log_loss"] for r in runs]), str(runs[0]["gauc_users"]),
             f"{statistics.median(r['examples_per_second'] for r in runs):,.0f}"]
            for name, runs in results.items()]
    print()
    print_table(["model", "valid GAUC (best epoch)", "test GAUC", "test AUC", "test log loss", "GAUC users",
                 "train examples/s (median)"], rows)
    print(f"\nfor scale, {PAPER}")
    for line in baseline_gaps(results):
        print(line)
    if args.update_zoo:
        if any(overrides.values()) or args.epochs or args.label != "rating" or args.dataset != "movielens-100k":
            raise SystemExit("--update-zoo records the zoo recipes' numbers on their own protocol; run it without "
                             "--set / --epochs / --label / --dataset")
        update_zoo(results, args.seeds, args.history)


def baseline_gaps(results: dict, baseline: str = "embedding_mlp") -> list[str]:
    """Per model run beside ``baseline``: its mean test GAUC minus the baseline's against twice the larger seed std.

    Issue 16's ranking bar: an attention model beats the baseline when the gap exceeds that margin.
    """
    if baseline not in results or len(results[baseline]) < 2:
        return []
    base = [r["gauc"] for r in results[baseline]]
    lines = []
    for name, runs in results.items():
        if name == baseline or len(runs) < 2:
            continue
        gaucs = [r["gauc"] for r in runs]
        gap = statistics.mean(gaucs) - statistics.mean(base)
        margin = 2 * max(statistics.stdev(gaucs), statistics.stdev(base))
        lines.append(f"{name} - {baseline} mean test GAUC: {gap:+.4f}, twice the larger seed std {margin:.4f} "
                     f"({gap / margin:.1f}x): {'beats' if gap > margin else 'does not beat'} the baseline by "
                     "more than twice the larger seed std")
    return lines


def update_zoo(results: dict, seeds: int, history: str) -> None:
    baselines = {name: round(statistics.mean(r["gauc"] for r in runs), 4) for name, runs in results.items()}
    for name, runs in results.items():
        path = REPOSITORY / "zoo" / f"{name}.{TAG}.yaml"
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
        values = {}
        for key in ("gauc", "auc", "log_loss"):
            numbers = [r[key] for r in runs]
            values[key] = round(statistics.mean(numbers), 4)
            if len(numbers) > 1:
                values[f"{key}_std"] = round(statistics.stdev(numbers), 4)
        values["gauc_users"] = int(runs[0]["gauc_users"])
        values["valid_gauc"] = round(statistics.mean(r["valid_gauc"] for r in runs), 4)
        content["metrics"] = {
            "protocol": f"{protocol(history)}; mean over {seeds} seeds",
            "script": "benchmarks/ranking_movielens.py",
            "measured_on": datetime.date.today().isoformat(),
            "values": values,
            "baselines": {f"{other}.gauc": value for other, value in baselines.items() if other != name},
            "training_examples_per_second": round(statistics.median(r["examples_per_second"] for r in runs), 1),
        }
        path.write_text(yaml.safe_dump(content, sort_keys=False, allow_unicode=True, width=100), encoding="utf-8")
        print(f"updated {path.relative_to(REPOSITORY)}")


if __name__ == "__main__":
    main()
