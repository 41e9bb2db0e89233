"""Rolling (time-window) evaluation: train, serve the next window, update, move on (``--split rolling:N``).

The interactions are ordered by time and cut into ``N`` consecutive windows
of equal size. A model is trained on window 1; then, for each next window
``k``: it is evaluated on window ``k`` (each interaction is a target, the
user's history is everything before the window's start, the items seen
before it are excluded from the ranking), and it is brought up to date with
window ``k`` before window ``k + 1``. Three ways to bring it up to date
(:data:`STRATEGIES`):

- ``update``: continue training on window ``k`` only, vocabularies grown
  (:func:`~mmrec_tf.update.continue_training`; the window-1 model is
  trained with spare rows, :data:`SPARE_USERS` and :data:`SPARE_ITEMS`, so
  updates grow it in place while the vocabularies fit, as a long-lived
  trainer would, and one that outgrows them rebuilds it with spare rows
  again);
- ``retrain``: a new model trained from scratch on windows ``1..k``;
- ``never``: the window-1 model, served as it is (the floor).

The catalog at window ``k`` holds every item first seen up to window ``k``:
an item enters the catalog (with its features) when it is released, before
anyone has interacted with it, so models with content features can
recommend it from them. ``update`` and ``retrain`` see each window's new
items this way; ``never`` knows only window 1's items (a target it cannot
rank is a miss). Users first seen in window ``k`` have no history before
it and are not evaluated there.

Per window: HR@k and NDCG@k over all evaluated interactions,
``hr@10_new_items`` over interactions with items first seen in that window
(no interactions yet: features alone), ``hr@10_new_among_new`` over the same
interactions with only that window's new items ranked (can the features
order new items by the user's taste, whatever the trained items score?),
``hr@10_recent_items`` over items
first seen in the window before (known only through the latest update),
``hr@10_fresh_slots`` and ``hr@10_new_items_fresh_slots``: HR@10 over all and
over new-item interactions when :data:`FRESH_SLOTS` places of each top 10 go
to the window's new items the model ranks best (:func:`fresh_slot_hits`), and
the training seconds spent to get there: the wall time from the data to a
model ready to serve, counted the same way for both strategies (``retrain``:
feature space, model, examples over windows ``1..k`` and ``fit``;
``update``: grown space, examples, grown model and optimizer and ``fit``,
:attr:`~mmrec_tf.update.UpdatedModel.train_seconds`); evaluation is not
counted.
"""

from __future__ import annotations

import dataclasses
import time
from typing import NamedTuple

import keras
import numpy as np
import pandas as pd

from mmrec_tf.data.dataset import Dataset
from mmrec_tf.data.feature_space import FeatureSpace
from mmrec_tf.data.grouping import items_by_user
from mmrec_tf.data.pipeline import Examples
from mmrec_tf.data.preprocessor import Preprocessor
from mmrec_tf.data.splits import Split
from mmrec_tf.evaluation.full_ranking import RankedTargets, rank_targets
from mmrec_tf.registry import create_model
from mmrec_tf.training import TrainingConfig, train_model
from mmrec_tf.update import continue_training, grow_model, ordered_log, update_examples, with_spare_capacity

STRATEGIES = ("update", "retrain", "never")
KS = (10, 20)
FRESH_SLOTS = 2
"""Places of a top 10 that ``hr@10_fresh_slots`` keeps for items nobody has interacted with yet."""
DEFAULT_HISTORY = 50
# The window-1 model of ``update`` (and an update that outgrows it) keeps this many spare user and item rows per
# row in use (grow_model's spare_users and spare_items): updates that fit grow it in place and reuse its compiled
# training step. User rows cost memory only; item rows also cost compute in models that encode the whole catalog
# every step (the fusion models).
SPARE_USERS, SPARE_ITEMS = 4.0, 0.5


def parse_rolling(split: str) -> int | None:
    """The window count of a ``rolling:N`` split name (None for other splits).

    Example:
    >>> parse_rolling("rolling:6"), parse_rolling("leave_last_out")
    (6, None)
    >>> parse_rolling("rolling:1")
    Traceback (most recent call last):
    ...
    ValueError: --split rolling:N needs N >= 2 windows (one to train on, one to evaluate), got 'rolling:1'
    """
    if not split.startswith("rolling"):
        return None
    _, _, count = split.partition(":")
    if not count.isdigit() or int(count) < 2:
        raise ValueError(f"--split rolling:N needs N >= 2 windows (one to train on, one to evaluate), got {split!r}")
    return int(count)


def time_windows(interactions: pd.DataFrame, count: int) -> np.ndarray:
    """The window (``0..count-1``) of each interaction: time order cut into ``count`` equal parts.

    Ties in timestamp keep file order; without timestamps, file order is time order.

    Example:
    >>> log = pd.DataFrame({"user_id": list("abcd"), "item_id": list("wxyz"), "timestamp": [4, 1, 3, 2]})
    >>> time_windows(log, 2).tolist()
    [1, 0, 1, 0]
    """
    if count < 2 or count > len(interactions):
        raise ValueError(f"cannot cut {len(interactions)} interactions into {count} windows")
    order = (np.argsort(interactions["timestamp"].to_numpy(), kind="stable") if "timestamp" in interactions.columns
             else np.arange(len(interactions)))
    windows = np.empty(len(interactions), np.int64)
    for window, rows in enumerate(np.array_split(order, count)):
        windows[rows] = window
    return windows


@dataclasses.dataclass
class RollingReport:
    """Metrics per evaluated window (windows ``2..N``) of one strategy, and their mean.

    Example:
    >>> report = RollingReport("update", [{"hr@10": 0.2}, {"hr@10": 0.3}], [1.0, 2.0])
    >>> round(report.mean("hr@10"), 2), report.total_train_seconds
    (0.25, 3.0)
    """

    strategy: str
    windows: list[dict[str, float]]
    train_seconds: list[float]

    def mean(self, metric: str) -> float:
        values = [window[metric] for window in self.windows if not np.isnan(window.get(metric, np.nan))]
        return float(np.mean(values)) if values else float("nan")

    @property
    def total_train_seconds(self) -> float:
        return float(sum(self.train_seconds))

    def __str__(self) -> str:
        rows = [f"  window {k + 2}: " + "  ".join(f"{name}={value:.4f}" for name, value in window.items())
                for k, window in enumerate(self.windows)]
        return "\n".join([f"{self.strategy}: mean hr@10 {self.mean('hr@10'):.4f}, trained "
                          f"{self.total_train_seconds:.1f} s", *rows])


def _subset(dataset: Dataset, interactions: pd.DataFrame, item_ids: list[str]) -> Dataset:
    """``dataset`` as it was known at some time: these interactions, these catalog items, their users."""
    users = list(pd.unique(interactions["user_id"]))
    items = dataset.items.reindex(item_ids) if dataset.items is not None else None
    people = dataset.users.reindex(users) if dataset.users is not None else None
    return dataclasses.replace(dataset, interactions=interactions.reset_index(drop=True), items=items,
                               users=people, split_labels=None)


class WindowExamples(NamedTuple):
    """A window's evaluated interactions and the examples made of them (:func:`window_examples`)."""

    #: the window's rows of users with a past (in ``before``), in the window's order
    evaluated: pd.DataFrame
    #: one example per row of ``evaluated`` whose item the space knows, in the same order
    examples: Examples
    #: per example, the known items its user had before the window
    seen: list[np.ndarray]
    #: per row of ``evaluated``, whether it has an example (unknown targets count as misses)
    known: np.ndarray


def window_examples(preprocessor: Preprocessor, before: pd.DataFrame, window: pd.DataFrame) -> WindowExamples:
    """The window interactions of users with a past, as examples with histories from before the window.

    ``preprocessor`` applies its history rule with the window's rows as test
    rows after ``before``'s: every window interaction of a user is ranked from
    the same history, the user's known items before the window. Users first
    seen in the window have no history and are left out of ``evaluated``.
    ``seen`` is kept per example, not per user index, because users the
    model does not know (a never-updated model's later users) all share
    index 0.
    """
    if preprocessor.labelled:
        raise ValueError(f"rolling windows evaluate retrieval; this preprocessor labels its examples "
                         f"({preprocessor.label.text!r})")
    window = window[window["user_id"].isin(set(before["user_id"]))]
    log, source_row = ordered_log(before, window, new_split="test")
    examples = preprocessor.examples(Split(log=log, method="rolling"))["test"]
    is_test = log["split"].to_numpy() == "test"
    in_window_order = np.argsort(source_row[is_test], kind="stable")
    known = examples.item_id[in_window_order] > 0
    rows = in_window_order[known]
    user_codes, _ = pd.factorize(log["user_id"])
    items = preprocessor.space.item_vocab.lookup(log["item_id"])
    past = ~is_test & (items > 0)
    seen_by_code = items_by_user(user_codes[past], items[past])
    nothing = np.zeros(0, np.int64)
    seen = [seen_by_code.get(int(code), nothing) for code in user_codes[is_test][rows]]
    return WindowExamples(window, Examples(examples.user_id[rows], examples.item_id[rows], examples.history[rows], {}),
                          seen, known)


def _subset_examples(examples: Examples, mask: np.ndarray) -> Examples:
    return Examples(examples.user_id[mask], examples.item_id[mask], examples.history[mask],
                    {key: value[mask] for key, value in examples.extras.items()})


def evaluate_window(model, preprocessor: Preprocessor, before: pd.DataFrame, window: pd.DataFrame,
                    new_items: set[str], recent_items: set[str], ks=KS) -> dict[str, float]:
    """HR@k / NDCG@k of ``model`` on one window, HR@10 on its new and recent items (NaN if none), with fresh slots.

    Each metric is averaged over every evaluated interaction; targets the
    model's catalog lacks count as misses. ``hr@10_new_among_new`` ranks only
    ``new_items`` for the interactions with them (the cold-among-cold view of
    :func:`~mmrec_tf.evaluation.cold_start.evaluate_cold_start`). ``hr@10_fresh_slots`` and
    ``hr@10_new_items_fresh_slots`` are HR@10 over all and over new-item interactions when
    :data:`FRESH_SLOTS` places go to the ``new_items`` the model ranks best (:func:`fresh_slot_hits`).
    """
    evaluated, examples, seen, known = window_examples(preprocessor, before, window)
    items = evaluated["item_id"].to_numpy()

    fresh = preprocessor.space.item_vocab.lookup(sorted(new_items))
    names = [f"{kind}@{k}" for kind in ("hr", "ndcg") for k in ks]
    found = {name: np.zeros(len(evaluated)) for name in [*names, "fresh_slots"]}  # per interaction; unknown: 0
    rows = np.flatnonzero(known)  # one pass over the catalog scores every view below
    for chunk in rank_targets(model, examples.features(), examples.item_id[:, None], seen, ks=ks):
        placed = rows[chunk.start:chunk.start + len(chunk.target)]  # one target per example
        for k in ks:
            found[f"hr@{k}"][placed] = chunk.hits[k]
            found[f"ndcg@{k}"][placed] = chunk.gains[k]
        found["fresh_slots"][placed] = fresh_slot_hits(chunk, fresh[fresh > 0], 10, FRESH_SLOTS)

    def mean(name: str, mask: np.ndarray) -> float:
        return float(found[name][mask].mean()) if mask.any() else float("nan")

    everything = np.ones(len(evaluated), bool)
    metrics = {name: mean(name, everything) for name in names}
    is_new = np.isin(items, list(new_items))
    metrics["hr@10_new_items"] = mean("hr@10", is_new)
    metrics["hr@10_recent_items"] = mean("hr@10", np.isin(items, list(recent_items)))
    metrics["hr@10_new_among_new"] = _hr_among_new(model, preprocessor.space, examples, known, is_new, new_items)
    metrics["hr@10_fresh_slots"] = mean("fresh_slots", everything)
    metrics["hr@10_new_items_fresh_slots"] = mean("fresh_slots", is_new)
    metrics["examples"] = float(len(evaluated))
    return metrics


def fresh_slot_hits(chunk: RankedTargets, fresh: np.ndarray, k: int, slots: int) -> np.ndarray:
    """Expected HR@k of each target of ``chunk`` when ``slots`` of the ``k`` places are kept for ``fresh`` items.

    A serving policy that gives items without interactions a chance: the
    list is the ``slots`` best-scored ``fresh`` items (item indices) the
    query ranks (fewer if fewer are ranked), then the best of the other
    ranked items up to ``k``. A target is found if it is among the fresh
    picks, or else by its place among the others (ties broken at random in
    expectation, as :func:`~mmrec_tf.evaluation.full_ranking.expected_hits_and_gains` does).
    Fresh items with equal scores are picked by item index, as the export's
    :class:`~mmrec_tf.export.fresh_slots.FreshSlots` picks them in catalog order.
    With ``slots=0`` this is the plain HR@k.

    Example (one query; items 1..4 score 4, 3, 2, 1; item 4 is fresh; k=2, one fresh slot):
    >>> from mmrec_tf.models import TwoTower
    >>> model = TwoTower(num_users=1, num_items=4, embedding_dim=1)
    >>> model.build()
    >>> _ = model.user_embedding.embeddings.assign(np.ones((2, 1), "float32"))
    >>> _ = model.item_embedding.embeddings.assign(np.array([[0.0], [4.0], [3.0], [2.0], [1.0]], "float32"))
    >>> features = {"user_id": np.array([1]), "history": np.zeros((1, 1), np.int32)}
    >>> [chunk] = rank_targets(model, features, [np.array([1, 2, 4])], ks=(2,))
    >>> fresh_slot_hits(chunk, np.array([4]), k=2, slots=1).tolist(), chunk.hits[2].tolist()
    ([1.0, 0.0, 1.0], [1.0, 1.0, 0.0])
    """
    fresh_columns = np.asarray(fresh, np.int64) - 1
    queries = len(chunk.scores)
    if slots and len(fresh_columns):
        fresh_scores = chunk.scores[:, fresh_columns]
        best = np.argsort(-fresh_scores, axis=1, kind="stable")[:, :slots]
        picked = np.take_along_axis(np.isfinite(fresh_scores), best, axis=1)  # a seen item is never picked
        picks = fresh_columns[best]
    else:
        picks, picked = np.zeros((queries, 0), np.int64), np.zeros((queries, 0), bool)
    others = chunk.scores.copy()
    others[np.repeat(np.arange(queries), picks.shape[1])[picked.ravel()], picks[picked]] = -np.inf
    rows, target, score = chunk.row, chunk.target, chunk.target_score
    in_picks = ((picks[rows] == (target - 1)[:, None]) & picked[rows]).any(axis=1)
    greater = (others[rows] > score[:, None]).sum(axis=1)
    ties = np.maximum((others[rows] == score[:, None]).sum(axis=1) - 1, 0)
    room = k - picked.sum(axis=1)[rows]  # the places left after the query's fresh picks
    found = (np.minimum(greater + ties + 1, room) - np.minimum(greater, room)) / (ties + 1.0)  # rank uniform over ties
    return np.where(target > 0, np.where(in_picks, 1.0, found), 0.0)


def _hr_among_new(model, space: FeatureSpace, examples: Examples, known: np.ndarray, mask: np.ndarray,
                  new_items: set[str], k: int = 10) -> float:
    """HR@k of the evaluated interactions in ``mask`` with only ``new_items`` ranked (NaN if none; unknown: misses)."""
    if not mask.any():
        return float("nan")
    kept = mask[known]
    if not kept.any():
        return 0.0
    candidates = space.item_vocab.lookup(sorted(new_items))
    subset = _subset_examples(examples, kept)
    hits = [chunk.hits[k] for chunk in rank_targets(model, subset.features(), subset.item_id[:, None],
                                                    candidates=candidates[candidates > 0], ks=(k,))]
    return float(np.concatenate(hits).sum() / mask.sum())


def _cut(interactions: pd.DataFrame, windows: int) -> tuple[list[pd.DataFrame], dict[str, int], list[list[str]]]:
    """``(parts, first_window, catalog)``: each window's interactions, each item's first window, the catalog by window.

    ``catalog[k]`` holds the items seen in windows ``0..k``: at the start of
    window ``k`` its new items are in the catalog, with their features,
    before anyone has interacted with them.
    """
    log = interactions.reset_index(drop=True)
    labels = time_windows(log, windows)
    parts = [log[labels == k] for k in range(windows)]
    first_window = {}
    for k, part in enumerate(parts):
        for item in pd.unique(part["item_id"]):
            first_window.setdefault(item, k)
    catalog = [[item for item, k in first_window.items() if k <= last] for last in range(windows)]
    return parts, first_window, catalog


class NewItemReference(NamedTuple):
    """One evaluated window's new items and what a random ranking scores on them (:func:`new_item_reference`)."""

    interactions: int
    new_items: int
    random_hr: float
    random_hr_among_new: float


def new_item_reference(interactions: pd.DataFrame, windows: int, k: int = 10) -> list[NewItemReference]:
    """Per evaluated window (``2..N``): its new items, interactions with them, a random ranking's HR@k on those.

    ``random_hr`` and ``random_hr_among_new`` are the references for
    ``hr@10_new_items`` and ``hr@10_new_among_new``. An interaction of a user
    with a past, with an item first seen in its window, is found in the top
    ``k`` of a random order of the catalog items the user has not seen with
    probability ``min(1, k / unseen)``, and of a random order of the window's
    new items with ``min(1, k / new)``; means over those interactions (NaN
    for a window without any). Few such interactions make a window's figures
    coarse: one hit is worth ``1 / interactions``.

    Example:
    >>> log = pd.DataFrame({"user_id": list("aabbab"), "item_id": list("xyxyzw"), "timestamp": range(6)})
    >>> [tuple(window) for window in new_item_reference(log, windows=3, k=1)]  # window 3: 2 of 4 unseen, 2 new
    [(0, 0, nan, nan), (2, 2, 0.5, 0.5)]
    """
    parts, first_window, catalog = _cut(interactions, windows)
    reference = []
    for window in range(1, windows):
        before = pd.concat(parts[:window])
        seen = before.groupby("user_id")["item_id"].nunique()
        part = parts[window][parts[window]["user_id"].isin(seen.index)]
        new = part[part["item_id"].map(first_window).to_numpy() == window]
        new_count = sum(first == window for first in first_window.values())
        if not len(new):
            reference.append(NewItemReference(0, new_count, float("nan"), float("nan")))
            continue
        unseen = len(catalog[window]) - seen.reindex(new["user_id"]).to_numpy()
        reference.append(NewItemReference(len(new), new_count, float(np.minimum(1.0, k / unseen).mean()),
                                          min(1.0, k / new_count)))
    return reference


def rolling_evaluation(model_name: str, dataset: Dataset, windows: int, strategies=STRATEGIES,
                       training: dict | None = None, update_epochs: int = 1, seed: int = 0, ks=KS, verbose: int = 0,
                       update_learning_rate: float | None = None, replay: float = 0.0,
                       **overrides) -> dict[str, RollingReport]:
    """Run the rolling protocol (module docstring) for each strategy; reports by strategy name.

    ``training`` sets the recipe of the window-1 model and of every retrain
    (:class:`~mmrec_tf.training.TrainingConfig` fields); updates run
    ``update_epochs`` passes over their window with the trained optimizer's
    state, at ``update_learning_rate`` (default: the recipe's), replaying
    ``replay`` times the window's size of earlier interactions drawn at random
    (:func:`~mmrec_tf.update.update_examples`). ``overrides`` are architecture arguments of ``model_name``; the
    histories hold the model's ``max_history`` items (models without
    histories: :data:`DEFAULT_HISTORY`).

    Example:
    >>> from mmrec_tf.data.sources import load_dataset
    >>> ds = load_dataset("synthetic", num_users=30, num_items=20, num_clusters=2, interactions_per_user=12)
    >>> reports = rolling_evaluation("two_tower", ds, windows=3, training={"epochs": 1}, embedding_dim=4)  # doctest: +SKIP
    >>> len(reports["update"].windows), sorted(reports)  # doctest: +SKIP
    (2, ['never', 'retrain', 'update'])
    """
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise ValueError(f"unknown strategies {unknown}; expected some of {STRATEGIES}")
    parts, first_window, catalog = _cut(dataset.interactions, windows)
    config = TrainingConfig(**{**(training or {}), "seed": seed})
    update_config = dataclasses.replace(config, epochs=update_epochs,
                                        learning_rate=update_learning_rate or config.learning_rate)

    def fresh_model(upto: int, spare: bool = False):
        """A model trained from scratch on windows ``0..upto``, catalog up to ``upto + 1``; seconds until ready.

        ``spare``: with spare rows (:func:`~mmrec_tf.update.with_spare_capacity`) for updates to grow into.
        """
        started = time.perf_counter()
        seen = pd.concat(parts[: upto + 1])
        space = FeatureSpace.build(_subset(dataset, seen, catalog[min(upto + 1, windows - 1)]))
        keras.utils.set_random_seed(seed)
        model = create_model(model_name, space=space, **overrides)
        preprocessor = Preprocessor(space, getattr(model, "max_history", None) or DEFAULT_HISTORY)
        _, examples = update_examples(preprocessor, seen.iloc[:0], seen)
        if spare:
            model = with_spare_capacity(model, space, examples, SPARE_USERS, SPARE_ITEMS)
        train_model(model, examples, config, verbose=verbose)
        return model, preprocessor, time.perf_counter() - started, examples

    # The window-1 model, shared by every strategy (its time is counted once, in window 2), is trained with spare
    # rows when ``update`` runs, as a long-lived trainer would: its updates then grow it in place from the first.
    first, first_preprocessor, first_seconds, first_examples = fresh_model(0, spare="update" in strategies)
    served = {strategy: (first, first_preprocessor) for strategy in strategies}
    if "update" in strategies:  # updates change the window-1 model in place; the others keep a copy of it
        served.update({strategy: (grow_model(first, first_preprocessor.space, first_examples), first_preprocessor)
                       for strategy in strategies if strategy != "update"})
    results = {strategy: [] for strategy in strategies}
    seconds = {strategy: [] for strategy in strategies}
    for k in range(1, windows):  # strategies take turns window by window, so a change in machine load hits all
        before = pd.concat(parts[:k])
        new_items = {item for item, first_k in first_window.items() if first_k == k}
        recent_items = {item for item, first_k in first_window.items() if first_k == k - 1}
        for strategy in strategies:
            model, preprocessor = served[strategy]
            spent = first_seconds if k == 1 else 0.0
            if k > 1 and strategy == "retrain":
                model, preprocessor, spent, _ = fresh_model(k - 1)
            elif k > 1 and strategy == "update":
                grown = _subset(dataset, before, catalog[k])
                updated = continue_training(model, preprocessor, pd.concat(parts[: k - 1]), parts[k - 1], grown,
                                            update_config, spare_users=SPARE_USERS, spare_items=SPARE_ITEMS,
                                            replay=replay)
                model, preprocessor, spent = updated.model, updated.preprocessor, updated.train_seconds
            served[strategy] = model, preprocessor
            results[strategy].append(evaluate_window(model, preprocessor, before, parts[k], new_items,
                                                     recent_items, ks))
            seconds[strategy].append(spent)
    return {strategy: RollingReport(strategy, results[strategy], seconds[strategy]) for strategy in strategies}
