"""Beyond accuracy on MovieLens-100K: coverage, exposure Gini, long-tail share, user-group gaps, re-ranking trade-off.

Protocol: ML-100K leave-last-out, each zoo entry trained with its recipe
(``--seeds`` training seeds), top-10 lists of the 943 test users over all
1,682 items with the user's train and valid items excluded
(:func:`mmrec_tf.report.numbers.model_numbers`, the numbers ``mmrec report``
shows). Per entry: HR@10, catalog coverage, exposure Gini, long-tail share
(items outside the most popular ones holding 20 % of the training
interactions), and the largest best-worst HR@10 gap between ``u.user``
groups (gender, age band, occupation; groups of at least 10 users) with its
bootstrap 95 % interval.

Then the trade-off of the export re-rankers (MMR over item embeddings,
Steck's calibrated lists over genres, long-tail boost) for
``lstm_two_tower.movielens_100k`` at strengths 0-0.9, mean over seeds: does
one at least double the long-tail share of the top 10 for at most 5 %
relative HR@10 loss? The curve is printed and drawn into ``--plot``.

    nice -n 10 python benchmarks/beyond_accuracy.py [--data-path ../shared/data/ml-100k] [--seeds 3]
        [--entries ...] [--plot benchmarks/beyond_accuracy_tradeoff.png] [--save-run runs/lstm_two_tower.movielens_100k]

``--save-run`` keeps seed 0 of ``lstm_two_tower.movielens_100k`` as a run folder (for ``mmrec report``);
``--results FILE`` keeps every run's numbers (rewritten after each run; ``--resume`` keeps the runs already
in it and trains only the missing ones), and ``--from-results FILE`` prints the tables and draws the plot
from them without training.

Every retrieval zoo entry on ML-100K is measured, each with its own recipe
(its ``max_history`` included). The multimodal entries
(``*.movielens_100k_mm``) read ``movielens-100k-mm`` from the folder that
holds ``ml-100k/`` (``--mm-data-path``, default the parent of the ML-100K
folder) with the item feature tables of ``mmrec features --data
movielens-100k-mm`` (MiniLM plots, EfficientNet-Lite0 posters; found through
``MMREC_FEATURES_DIR`` or ``runs/features``); the split is the same
leave-last-out of the same interactions, so every entry ranks for the same
943 test users.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from _common import REPOSITORY, mean_std, movielens_path, print_table  # noqa: E402

from mmrec_tf.atomic_file import write_atomically  # noqa: E402
from mmrec_tf.data.sources import load_dataset  # noqa: E402
from mmrec_tf.experiment import data_settings, prepare_data, run, save_run  # noqa: E402
from mmrec_tf.report.numbers import model_numbers  # noqa: E402
from mmrec_tf.zoo_entry import get_zoo_entry  # noqa: E402

ENTRIES = ("popularity.movielens_100k", "two_tower.movielens_100k", "lstm_two_tower.movielens_100k",
           "sasrec.movielens_100k", "content_only.movielens_100k_mm", "vbpr.movielens_100k_mm",
           "concat_fusion.movielens_100k_mm", "cross_attention_fusion.movielens_100k_mm")
TRADEOFF_ENTRY = "lstm_two_tower.movielens_100k"
STRENGTHS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7, 0.9)
MAX_LOSS = 0.05
TAIL_FACTOR = 2.0
PROTOCOL = "ML-100K leave-last-out, top-10 of 1,682 items, user's train+valid items excluded, 943 test users"


def largest_gap(numbers: dict) -> tuple[str, dict]:
    column = max(numbers["user_groups"], key=lambda c: numbers["user_groups"][c]["gap"])
    return column, numbers["user_groups"][column]


def tradeoff(measured: list[dict]) -> dict[str, list[dict]]:
    """Mean over seeds of each re-ranker's HR@10 and long-tail share per strength, relative to strength 0."""
    curves = {}
    for kind in measured[0]["reranking"]:
        points = []
        for index, strength in enumerate(STRENGTHS):
            hr = statistics.mean(m["reranking"][kind][index]["hr@10"] for m in measured)
            tail = statistics.mean(m["reranking"][kind][index]["long_tail_share"] for m in measured)
            ild = statistics.mean(m["reranking"][kind][index]["ild_genres"] for m in measured)
            points.append({"strength": strength, "hr@10": hr, "long_tail_share": tail, "ild_genres": ild})
        base = points[0]
        for point in points:
            point["hr_loss"] = 1.0 - point["hr@10"] / base["hr@10"]
            point["tail_factor"] = point["long_tail_share"] / base["long_tail_share"]
        curves[kind] = points
    return curves


def draw(curves: dict, path: pathlib.Path, seeds: int) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from mmrec_tf.report.figures import COLOURS, RERANKER_LABELS

    figure = Figure(figsize=(6.4, 3.6))
    FigureCanvasAgg(figure)
    axis = figure.subplots()
    base = next(iter(curves.values()))[0]
    target = TAIL_FACTOR * base["long_tail_share"]
    right = max(1.0, target) + 0.1
    axis.axvspan(target, right, ymin=0, ymax=1, color="#e8f4e8", label=f"{TAIL_FACTOR:g}× the long-tail share")
    axis.axvline(1.0, color="black", linewidth=1)
    axis.annotate("every slot\nlong tail", (1.0, base["hr@10"] * 0.5), xytext=(4, 0), textcoords="offset points",
                  fontsize=8)
    axis.axhline((1 - MAX_LOSS) * base["hr@10"], color="grey", linestyle="--", linewidth=1,
                 label=f"{MAX_LOSS:.0%} HR@10 loss")
    for index, (kind, points) in enumerate(curves.items()):
        axis.plot([p["long_tail_share"] for p in points], [p["hr@10"] for p in points], marker="o", markersize=4,
                  color=COLOURS[index], label=RERANKER_LABELS[kind])
    axis.set_xlim(0, right)
    axis.set_xlabel("long-tail share of the top 10")
    axis.set_ylabel("HR@10")
    axis.set_title(f"lstm_two_tower on ML-100K: re-rankers at strengths 0–0.9 (mean of {seeds} seeds)", fontsize=9)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-path", default=None)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--entries", default=",".join(ENTRIES))
    parser.add_argument("--plot", default=str(REPOSITORY / "benchmarks" / "beyond_accuracy_tradeoff.png"))
    parser.add_argument("--save-run", default=None, help=f"keep seed 0 of {TRADEOFF_ENTRY} as this run folder")
    parser.add_argument("--results", default=None,
                        help="write every run's numbers (the report's, without Lorenz curves) to this JSON file")
    parser.add_argument("--resume", action="store_true",
                        help="keep the runs already in the --results file and train only the missing ones")
    parser.add_argument("--mm-data-path", default=None,
                        help="folder holding ml-100k/, ml-100k-plots/ and ml-100k-posters/ (default: the parent "
                             "of the ML-100K folder)")
    parser.add_argument("--from-results", default=None,
                        help="print the tables and draw the plot from a --results file, without training")
    args = parser.parse_args()

    if args.from_results:
        measured = json.loads(pathlib.Path(args.from_results).read_text(encoding="utf-8"))
    else:
        measured = measure(args)
    summarise(measured, args)


def entry_data(entry: str, args, cache: dict):
    """The prepared ML-100K (or ML-100K-mm) leave-last-out data of a zoo entry, with its own ``max_history``."""
    dataset_name = get_zoo_entry(entry).data["dataset"]
    settings = data_settings(entry)
    key = (dataset_name, settings["max_history"])
    if key not in cache:
        path = movielens_path(args.data_path)
        if dataset_name == "movielens-100k-mm":
            path = args.mm_data_path or str(pathlib.Path(path).parent)
        dataset = load_dataset(dataset_name, path)
        print(f"data: {dataset.name} from {dataset.source}, history {settings['max_history']}, "
              f"item vectors {sorted(dataset.item_vectors)}; {PROTOCOL}", flush=True)
        cache[key] = (prepare_data(dataset, "leave_last_out", max_history=settings["max_history"]),
                      {"dataset": dataset_name, "path": path})
    return cache[key]


def measure(args) -> dict:
    measured = {}
    if args.resume and args.results and pathlib.Path(args.results).is_file():
        measured = json.loads(pathlib.Path(args.results).read_text(encoding="utf-8"))
        print(f"resuming: {sum(len(runs) for runs in measured.values())} runs already in {args.results}")
    cache = {}
    for entry in args.entries.split(","):
        measured.setdefault(entry, [])
        for seed in range(len(measured[entry]), args.seeds):
            data, source = entry_data(entry, args, cache)
            started = time.perf_counter()
            result = run(entry, data, training={"seed": seed}, verbose=0)
            numbers = model_numbers(result.model, data, strengths=STRENGTHS, examples=0, seed=seed)
            del numbers["exposure"]["lorenz"]
            measured[entry].append(numbers)
            column, gap = largest_gap(numbers)
            lists = numbers["beyond_accuracy"]
            print(f"{entry} seed {seed}: hr@10={numbers['accuracy']['metrics']['hr@10']:.4f} "
                  f"coverage={lists['coverage']:.4f} gini={lists['gini']:.4f} "
                  f"long_tail={lists['long_tail_share']:.4f} largest gap {column} "
                  f"{gap['best']}-{gap['worst']} {gap['gap']:.3f} [{gap['gap_low']:.3f}, {gap['gap_high']:.3f}] "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
            if args.save_run and entry == TRADEOFF_ENTRY and seed == 0:
                save_run(result, args.save_run, source)
                print(f"saved {args.save_run}")
            if args.results:
                write_atomically(args.results, lambda tmp: pathlib.Path(tmp).write_text(json.dumps(measured),
                                                                              encoding="utf-8"))
    return measured


def summarise(measured: dict, args) -> None:
    rows = []
    for entry, runs in measured.items():
        column, gap = largest_gap(runs[0])
        gaps = [largest_gap(numbers)[1]["gap"] for numbers in runs]
        rows.append([entry, mean_std([n["accuracy"]["metrics"]["hr@10"] for n in runs]),
                     mean_std([n["beyond_accuracy"]["coverage"] for n in runs]),
                     mean_std([n["beyond_accuracy"]["gini"] for n in runs]),
                     mean_std([n["beyond_accuracy"]["long_tail_share"] for n in runs]),
                     f"{column}: {gap['best']} − {gap['worst']} {gap['gap']:.3f} [{gap['gap_low']:.3f}, "
                     f"{gap['gap_high']:.3f}]", mean_std(gaps)])
    print()
    print_table(["entry", "HR@10 (ties in expectation)", "coverage@10", "Gini", "long-tail share",
                 "largest HR@10 group gap, seed 0 [95 % interval]", "that gap over seeds"], rows)
    if TRADEOFF_ENTRY not in measured:
        return
    curves = tradeoff(measured[TRADEOFF_ENTRY])
    seeds = len(measured[TRADEOFF_ENTRY])
    print(f"\n{TRADEOFF_ENTRY}: re-rankers over the top-100 shortlist, mean of {seeds} seeds "
          "(HR@10 of the lists, score ties by item index; loss = relative to strength 0)")
    print_table(["re-ranker", "strength", "HR@10", "loss", "long-tail share", "× strength 0", "ILD genres"],
                [[kind, f"{p['strength']:g}", f"{p['hr@10']:.4f}", f"{p['hr_loss']:+.1%}",
                  f"{p['long_tail_share']:.4f}", f"{p['tail_factor']:.2f}", f"{p['ild_genres']:.4f}"]
                 for kind, points in curves.items() for p in points])
    meeting = [(kind, p) for kind, points in curves.items() for p in points
               if p["tail_factor"] >= TAIL_FACTOR and p["hr_loss"] <= MAX_LOSS]
    if meeting:
        kind, best = max(meeting, key=lambda item: item[1]["tail_factor"])
        print(f"\nyes: {kind}:{best['strength']:g} multiplies the long-tail share by {best['tail_factor']:.2f} "
              f"for {best['hr_loss']:+.1%} HR@10 ({len(meeting)} points meet both)")
    else:
        print(f"\nno: no re-ranker at these strengths reaches {TAIL_FACTOR:g}× the long-tail share within "
              f"{MAX_LOSS:.0%} HR@10 loss")
    draw(curves, pathlib.Path(args.plot), seeds)
    print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
