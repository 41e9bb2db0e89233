"""The numbers of a run report: accuracy@K, beyond-accuracy metrics, group fairness, exposure, re-ranking, examples.

:func:`run_numbers` measures one retrieval run folder on its test split with
the evaluation functions of :mod:`mmrec_tf.evaluation` (nothing is computed
twice in another way, so the report's JSON equals what those functions
return):

- ``accuracy``: :func:`~mmrec_tf.evaluation.full_ranking.evaluate_retrieval`
  at each ``K`` of ``ks`` (ties broken at random in expectation, as
  ``mmrec evaluate``);
- ``beyond_accuracy``: :func:`~mmrec_tf.evaluation.recommendation_lists.beyond_accuracy_metrics`
  of the top-``k`` lists (``ild_genres`` and ``calibration_kl`` over the
  item column ``genres`` when the data has a categorical one,
  ``ild_embeddings`` over the model's item embeddings);
- ``user_groups``: HR@k per test example split by every ``users.csv``
  column with at most ``MAX_GROUPS`` values (age in bands),
  :func:`~mmrec_tf.evaluation.fairness.user_group_report` with seeded
  bootstrap 95 % intervals; groups under ``min_users`` users are left out;
- ``exposure``: exposure per item, its Lorenz curve, and exposure and hit
  share by training-popularity decile
  (:func:`~mmrec_tf.evaluation.fairness.item_group_exposure`);
- ``reranking``: each export re-ranker (:mod:`mmrec_tf.export.reranking`)
  at each strength of ``strengths`` applied to the same shortlists
  ``retrieve`` would hand it, with HR@k and the list metrics of the result;
- ``explanations``: a few test users (seeded choice among those with a
  history), their top items and the history items each one is closest to
  (:func:`~mmrec_tf.export.explanations.explain_candidates`, the weights the
  ``explain`` signature serves).

The per-example HR@k behind the groups and the re-ranking curve breaks score
ties by item index (a list is one list), while ``accuracy`` averages over tie
orders; for a trained model they agree (ties between float scores are rare).
"""

from __future__ import annotations

import json
import math
import pathlib

import numpy as np

from mmrec_tf.evaluation import beyond_accuracy as ba
from mmrec_tf.evaluation import fairness
from mmrec_tf.evaluation.full_ranking import evaluate_retrieval
from mmrec_tf.evaluation.recommendation_lists import (beyond_accuracy_metrics, item_popularity, ranked_items,
                                                      rerank_lists)
from mmrec_tf.experiment import MODEL_FILE, RUN_FILE, load_run, load_run_data, run_task_kind

ACCURACY_KS = (1, 5, 10, 20, 50)
LIST_K = 10
STRENGTHS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
MAX_GROUPS = 25
MIN_GROUP_USERS = 10
EXAMPLE_USERS = 3
EXAMPLE_ITEMS = 5
EXPLAINING_ITEMS = 3
GENRE_COLUMN = "genres"


def check_run_folder(run_dir) -> dict:
    """The ``run.json`` record of a retrieval run folder, or a one-line ``ValueError`` naming what is wrong."""
    run_dir = pathlib.Path(run_dir)
    record_file = run_dir / RUN_FILE
    if not run_dir.is_dir():
        raise ValueError(f"{run_dir}: not a folder; give a run folder written by `mmrec train`")
    if not record_file.is_file():
        raise ValueError(f"{run_dir}: not a run folder (no {RUN_FILE}); create one with `mmrec train`")
    try:
        record = json.loads(record_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{record_file}: not valid JSON ({error})") from None
    missing = [key for key in ("name", "model", "data", "training")
               if not isinstance(record, dict) or key not in record]
    if missing:
        raise ValueError(f"{record_file}: missing {missing}; is it a run written by `mmrec train`?")
    if not (run_dir / MODEL_FILE).is_file():
        raise ValueError(f"{run_dir}: no {MODEL_FILE}; the run did not finish (resume it with `mmrec train --resume`)")
    if not run_task_kind(record, record_file).retrieves:
        raise ValueError(f"{run_dir}: a {record['task']} run ({record['model']}); the report covers retrieval runs "
                         "(top-K lists), `mmrec evaluate` reports AUC and GAUC of ranking runs")
    return record


def finite(value):
    """``value`` with NaN / infinity replaced by None (JSON has no NaN), recursively through dicts and lists."""
    if isinstance(value, dict):
        return {str(key): finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def item_genres(space) -> np.ndarray | None:
    """Multi-hot ``[num_items + 1, G]`` of the item column ``genres`` (categorical or multi-categorical), else None."""
    table = space.item_features.get(GENRE_COLUMN)
    if table is None or table.kind.value not in ("categorical", "multi_categorical"):
        return None
    if table.kind.value == "categorical":
        return np.eye(len(table.vocabulary) + 1, dtype=np.float32)[np.asarray(table.values, np.int64)][:, 1:]
    return np.asarray(table.values, np.float32)


def user_ids_by_index(data) -> dict[int, str]:
    """The raw user id of each user index in the run's data (the first id of a hashed bucket)."""
    ids = data.split.log["user_id"].drop_duplicates().astype(str).tolist()
    indices = data.space.user_vocab.lookup(ids)
    mapping = {}
    for index, user in zip(np.asarray(indices).tolist(), ids):
        mapping.setdefault(int(index), user)
    return mapping


def group_columns(users) -> list[str]:
    """The ``users.csv`` columns to split by: at most ``MAX_GROUPS`` distinct values (``age`` in bands)."""
    if users is None:
        return []
    columns = []
    for column in users.columns:
        values = fairness.user_groups(users, users.index, column)
        if 1 < len(set(values.tolist())) <= MAX_GROUPS:
            columns.append(column)
    return columns


def _list_metrics(lists, histories, context) -> dict:
    return beyond_accuracy_metrics(lists, histories, context["num_items"], context["popularity"],
                                   context["user_counts"], context["num_users"], genres=context["genres"],
                                   embeddings=context["embeddings"])


def _user_groups(data, examples, hits, min_users, num_resamples, seed) -> dict:
    users = data.dataset.users
    by_index = user_ids_by_index(data)
    ids = [by_index.get(int(index), "") for index in examples.user_id]
    groups = {}
    for column in group_columns(users):
        labels = fairness.user_groups(users, ids, column)
        try:
            report = fairness.user_group_report(hits, labels, metric=f"hr@{LIST_K}", column=column,
                                                num_resamples=num_resamples, seed=seed, min_users=min_users)
        except ValueError:
            continue  # no group of this column is large enough
        groups[column] = report.to_dict()
    return groups


def _exposure(top, hits_matrix, context) -> dict:
    counts = ba.exposure_counts(top, context["num_items"])
    x, y = ba.lorenz_curve(counts)
    deciles = fairness.popularity_deciles(context["popularity"])
    table = fairness.item_group_exposure(top, deciles, context["popularity"], hits=hits_matrix)
    return {"lorenz": {"items": x.tolist(), "exposure": y.tolist()},
            "deciles": {str(decile): row for decile, row in table.to_dict(orient="index").items()}}


def _reranking(shortlist, scores, examples, data, context, strengths) -> dict:
    from mmrec_tf.export.reranking import make_reranker

    catalog = np.arange(1, context["num_items"] + 1)
    kinds = ["mmr", "calibrated", "tail"] if context["genres"] is not None else ["mmr", "tail"]
    curves = {}
    for kind in kinds:
        points = []
        for strength in strengths:
            reranker = make_reranker(f"{kind}:{strength}", LIST_K, catalog, embeddings=context["embeddings"][1:],
                                     space=data.space, item_popularity=context["popularity"])
            lists = rerank_lists(reranker, shortlist, scores, examples.history)
            hits = (lists == examples.item_id[:, None]).any(axis=1)
            points.append({"strength": float(strength), f"hr@{LIST_K}": float(hits.mean()),
                           **_list_metrics(lists, examples.history, context)})
        curves[kind] = points
    return curves


def _explanations(model, data, examples, top, count, seed) -> list[dict]:
    import tensorflow as tf

    from mmrec_tf.export.explanations import explain_candidates

    space = data.space
    with_history = np.flatnonzero((examples.history > 0).any(axis=1))
    chosen = np.sort(np.random.default_rng(seed).permutation(with_history)[:count])
    if not len(chosen):
        return []
    features = {name: value[chosen] for name, value in examples.features().items()}
    candidates = top[chosen, :EXAMPLE_ITEMS]
    weights = explain_candidates(model, features, tf.constant(candidates, tf.int32))["weights"].numpy()
    by_index = user_ids_by_index(data)

    def item(index: int) -> dict:
        return {"item_id": space.item_vocab.id_of(int(index)), "title": str(space.item_titles[int(index) - 1])}

    examples_out = []
    for row, example in enumerate(chosen):
        history = examples.history[example]
        recommendations = []
        for column, candidate in enumerate(candidates[row]):
            if candidate <= 0:
                continue
            order = [p for p in np.argsort(-weights[row, column], kind="stable") if history[p] > 0]
            because = [{**item(history[p]), "weight": float(weights[row, column, p])}
                       for p in order[:EXPLAINING_ITEMS]]
            recommendations.append({**item(candidate), "hit": bool(candidate == examples.item_id[example]),
                                    "because": because})
        examples_out.append({"user_id": by_index.get(int(examples.user_id[example]), ""),
                             "history": [item(i) for i in history[history > 0][-EXAMPLE_ITEMS:]],
                             "held_out": item(examples.item_id[example]), "recommendations": recommendations})
    return examples_out


def model_numbers(model, data, ks=ACCURACY_KS, strengths=STRENGTHS, min_users: int = MIN_GROUP_USERS,
                  num_resamples: int = 1000, examples: int = EXAMPLE_USERS, seed: int = 0) -> dict:
    """The measured sections (see the module docstring) of a retrieval ``model`` on ``data``'s test split."""
    from mmrec_tf.export.reranking import shortlist_size

    space = data.space
    test = data.examples["test"]
    seen = data.seen("test")
    num_items = space.num_items
    popularity, user_counts = item_popularity(data.examples["train"], num_items)
    embeddings = np.asarray(model.all_item_embeddings(), np.float32)
    context = {"num_items": num_items, "num_users": space.num_users, "popularity": popularity,
               "user_counts": user_counts, "genres": item_genres(space),
               "embeddings": np.concatenate([np.zeros((1, embeddings.shape[1]), np.float32), embeddings])}
    accuracy = evaluate_retrieval(model, test, seen, ks=tuple(ks)).metrics
    head = shortlist_size(LIST_K, num_items)
    shortlist, scores = ranked_items(model, test, seen, k=max(head, max(ks)))
    top = shortlist[:, :LIST_K]
    hits_matrix = top == test.item_id[:, None]
    hits = hits_matrix.any(axis=1).astype(np.float64)
    return finite({
        "test_examples": len(test), "num_items": num_items, "k": LIST_K,
        "accuracy": {"ks": list(ks), "metrics": accuracy},
        "beyond_accuracy": {f"hr@{LIST_K}": float(hits.mean()), **_list_metrics(top, test.history, context)},
        "user_groups": _user_groups(data, test, hits, min_users, num_resamples, seed),
        "exposure": _exposure(top, hits_matrix, context),
        "reranking": _reranking(shortlist[:, :head], scores[:, :head], test, data, context, strengths),
        "explanations": _explanations(model, data, test, top, examples, seed),
    })


def run_numbers(run_dir, **options) -> dict:
    """:func:`model_numbers` of a run folder's model on the test split it was trained with, plus what the run is."""
    record = check_run_folder(run_dir)
    model, space, _ = load_run(run_dir)
    data = load_run_data(record, space)
    return {"run": str(run_dir), "name": pathlib.Path(run_dir).resolve().name, "entry": record["name"],
            "model": record["model"], "dataset": record["data"].get("dataset"),
            "split": record["data"].get("split"), **model_numbers(model, data, **options)}
