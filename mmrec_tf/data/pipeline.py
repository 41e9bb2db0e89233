"""Model-ready examples: each interaction with the user's history strictly before it.

History rules (no leakage): a train row sees the user's earlier *train* rows;
a valid row sees the earlier train rows; a test row sees the earlier train and
valid rows. "Earlier" is the split's per-user time order (ties in timestamp
keep file order). Histories are oldest first, the most recent
``max_history`` known items, padded at the end with 0 — the same layout the serving
signatures take. :class:`~mmrec_tf.data.preprocessor.Preprocessor` applies these rules.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from mmrec_tf.data.feature_space import FeatureSpace
from mmrec_tf.data.grouping import items_by_user, run_bounds
from mmrec_tf.data.splits import SPLITS, Split

VISIBLE_HISTORY = {"train": ("train",), "valid": ("train",), "test": ("train", "valid")}
# a model's ``example_layout``, read by mmrec_tf.training.training_dataset: labelled examples as they are (ranking
# models) or re-laid by :func:`next_item_sequences` (every position predicts its next item); none: the rows as they are
LABELLED_EXAMPLES = "labelled_examples"
NEXT_ITEM_SEQUENCES = "next_item_sequences"


@dataclasses.dataclass
class Examples:
    """One split's examples as aligned numpy arrays (indices from a :class:`FeatureSpace`).

    Example:
    >>> from mmrec_tf.data.sources import make_synthetic
    >>> from mmrec_tf.data.splits import leave_last_out
    >>> ds = make_synthetic(num_users=3, num_items=6, num_clusters=2, interactions_per_user=4)
    >>> examples = build_examples(leave_last_out(ds), FeatureSpace.build(ds), max_history=3)
    >>> examples["test"].history.shape
    (3, 3)
    """

    user_id: np.ndarray
    item_id: np.ndarray
    history: np.ndarray
    extras: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.item_id)

    def features(self) -> dict[str, np.ndarray]:
        return {"user_id": self.user_id, "history": self.history, "item_id": self.item_id, **self.extras}


def build_examples(split: Split, space: FeatureSpace, max_history: int = 50) -> dict[str, Examples]:
    """Examples for train, valid and test, with histories per the module's rules."""
    log = split.log
    items = space.item_vocab.lookup(log["item_id"])
    histories, _ = row_histories(split, items, max_history)
    return examples_by_split(log, space.user_vocab.lookup(log["user_id"]), items, histories)


def examples_by_split(log, users: np.ndarray, items: np.ndarray, histories: np.ndarray) -> dict[str, Examples]:
    """The rows of ``log`` (with per-row indices and histories) as :class:`Examples` per split, with their extras."""
    labels = log["split"].to_numpy()
    extra_columns = [c for c in ("rating", "label", "timestamp") if c in log.columns]
    result = {}
    for name in SPLITS:
        mask = labels == name
        extras = {c: log[c].to_numpy()[mask].astype(np.float32 if c != "timestamp" else np.int64)
                  for c in extra_columns}
        result[name] = Examples(users[mask], items[mask], histories[mask], extras)
    return result


def row_histories(split: Split, items: np.ndarray, max_history: int, kept: np.ndarray | None = None,
                  carried: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """The history rule: per row of ``split.log``, the items (indices ``items``) of the rows it may see.

    A row sees its user's earlier rows of the splits :data:`VISIBLE_HISTORY`
    names for its own split, and of those only the ``kept`` ones (default:
    all) whose item the space knows (index > 0; serving drops unknown history
    ids alike); the most recent ``max_history``, oldest first, 0-padded at the end.
    With ``carried`` (an int per row, e.g. its rating) the second result
    holds, aligned with the history, the carried value of each history row.

    Example:
    >>> from mmrec_tf.data.sources import make_synthetic
    >>> from mmrec_tf.data.splits import leave_last_out
    >>> split = leave_last_out(make_synthetic(num_users=1, num_items=6, num_clusters=1, interactions_per_user=4))
    >>> histories, _ = row_histories(split, np.array([5, 6, 7, 8]), max_history=3)
    >>> split.log["split"].tolist(), histories.tolist()
    (['train', 'train', 'valid', 'test'], [[0, 0, 0], [5, 0, 0], [5, 6, 0], [5, 6, 7]])
    """
    histories, carried_histories, _ = _walk_histories(split, items, max_history, kept, carried)
    return histories, carried_histories


def user_histories(split: Split, items: np.ndarray, max_history: int, target: str) -> tuple[np.ndarray, np.ndarray]:
    """The history rule for a row of ``target`` placed after each user's last row: ``(bounds, histories)``.

    User ``u``'s rows are ``split.log[bounds[u]:bounds[u + 1]]`` and
    ``histories[u]`` is the history (as :func:`row_histories`) a ``target``
    row would see after all of them: every visible row, taken whole.

    Example:
    >>> from mmrec_tf.data.sources import make_synthetic
    >>> from mmrec_tf.data.splits import leave_last_out
    >>> split = leave_last_out(make_synthetic(num_users=1, num_items=6, num_clusters=1, interactions_per_user=4))
    >>> bounds, histories = user_histories(split, np.array([5, 6, 7, 8]), max_history=3, target="valid")
    >>> bounds.tolist(), histories.tolist()
    ([0, 4], [[5, 6, 0]])
    """
    _, _, final = _walk_histories(split, items, max_history, None, None, final_target=target)
    return final


def _walk_histories(split: Split, items: np.ndarray, max_history: int, kept: np.ndarray | None,
                    carried: np.ndarray | None, final_target: str | None = None):
    """One pass over the log, user by user, keeping per split the rows a later row may see."""
    if max_history < 1:
        raise ValueError(f"max_history must be at least 1, got {max_history}")
    log = split.log
    labels = log["split"].to_numpy()
    kept = items > 0 if kept is None else kept & (items > 0)  # an item the space does not know is no history
    histories = np.zeros((len(log), max_history), np.int32)
    carried_histories = None if carried is None else np.zeros((len(log), max_history), np.int32)
    bounds = run_bounds(log["user_id"].to_numpy())
    finals = np.zeros((len(bounds) - 1, max_history), np.int32)
    for user, (start, end) in enumerate(zip(bounds[:-1], bounds[1:])):
        seen = {name: [] for name in SPLITS}
        for row in range(start, end):
            past = _visible(seen, labels[row], max_history)
            histories[row, : len(past)] = [items[earlier] for earlier in past]
            if carried is not None:
                carried_histories[row, : len(past)] = [carried[earlier] for earlier in past]
            if kept[row]:
                seen[labels[row]].append(row)
        if final_target is not None:
            past = _visible(seen, final_target, max_history)
            finals[user, : len(past)] = [items[earlier] for earlier in past]
    return histories, carried_histories, (bounds, finals)


def _visible(seen: dict[str, list[int]], target: str, limit: int) -> list[int]:
    """The most recent ``limit`` rows a row of split ``target`` sees, in log order."""
    visible = VISIBLE_HISTORY[target]
    if len(visible) == 1:
        return seen[visible[0]][-limit:]
    return sorted(row for name in visible for row in seen[name][-limit:])[-limit:]


def seen_items(split: Split, space: FeatureSpace, target: str = "test") -> dict[int, np.ndarray]:
    """Per user index, the item indices visible before evaluating ``target`` (to exclude from ranking)."""
    visible = split.log[split.log["split"].isin(VISIBLE_HISTORY[target])]
    items = space.item_vocab.lookup(visible["item_id"])
    return items_by_user(space.user_vocab.lookup(visible["user_id"])[items > 0], items[items > 0])


def next_item_sequences(examples: Examples, max_history: int, stride: int | None = None) -> Examples:
    """Examples re-laid for a per-position objective: each kept row's history predicts its next items.

    Nothing here decides what a row may see: every row keeps its own history
    (built by :func:`row_histories`, the one history rule), cut to its most
    recent ``max_history`` items. Its ``extras["next_items"]`` (``[N,
    max_history]``, aligned with the history) is the item that followed each
    history position: the next history item, and after the last one the row's
    own target; 0 at padding. A user's consecutive rows (``user_id`` runs, rows
    oldest first as :func:`build_examples` gives them) overlap, so only every
    ``stride``-th row (default ``max_history``) counting back from the user's
    last is kept (rows with an empty history predict nothing and are dropped):
    by default each target but a user's first is then predicted exactly once
    per pass, from up to ``max_history`` items before it, as SASRec trains
    (Kang & McAuley, ICDM 2018). A smaller ``stride`` keeps overlapping
    windows: a target is predicted about ``max_history / stride`` times per
    pass, each time from a different number of earlier items.

    Example:
    >>> history = np.array([[0, 0, 0], [5, 0, 0], [5, 6, 0], [5, 6, 7], [6, 7, 8], [3, 0, 0]], "int32")
    >>> rows = Examples(np.array([1, 1, 1, 1, 1, 2]), np.array([5, 6, 7, 8, 9, 4]), history, {})
    >>> sequences = next_item_sequences(rows, max_history=2)
    >>> sequences.history.tolist(), sequences.extras["next_items"].tolist()
    ([[5, 6], [7, 8], [3, 0]], [[6, 7], [8, 9], [4, 0]])
    >>> next_item_sequences(rows, max_history=2, stride=1).extras["next_items"].tolist()
    [[6, 0], [6, 7], [7, 8], [8, 9], [4, 0]]
    """
    stride = max_history if stride is None else stride
    if not 1 <= stride <= max_history:
        raise ValueError(f"stride must be in [1, max_history={max_history}], got {stride}")
    history = np.asarray(examples.history, np.int32)
    lengths = (history > 0).sum(axis=1)
    bounds = run_bounds(np.asarray(examples.user_id))
    last_of_user = np.repeat(bounds[1:] - 1, np.diff(bounds))
    kept = np.flatnonzero(((last_of_user - np.arange(len(history))) % stride == 0) & (lengths > 0))
    width = max(history.shape[1], 1)
    start = np.maximum(lengths[kept] - max_history, 0)
    window = start[:, None] + np.arange(max_history)
    present = window < lengths[kept][:, None]
    recent = np.where(present, np.take_along_axis(history[kept], np.minimum(window, width - 1), axis=1), 0)
    following = np.concatenate([recent[:, 1:], np.zeros((len(kept), 1), np.int32)], axis=1)
    last = np.maximum(lengths[kept] - start - 1, 0)
    following[np.arange(len(kept)), last] = examples.item_id[kept]
    following = np.where(present, following, 0).astype(np.int32)
    extras = {name: value[kept] for name, value in examples.extras.items()}
    return Examples(examples.user_id[kept], examples.item_id[kept], recent.astype(np.int32),
                    {**extras, "next_items": following})


def item_frequencies(examples: Examples, num_items: int) -> np.ndarray:
    """How often each item index is a training target, as probabilities (index 0 gets none)."""
    counts = np.bincount(examples.item_id, minlength=num_items + 1).astype(np.float64)
    counts[0] = 0.0
    total = counts.sum()
    return (counts / total if total else counts).astype(np.float32)


def make_tf_dataset(
    examples: Examples,
    batch_size: int,
    shuffle: bool = True,
    seed: int = 0,
    item_probability: np.ndarray | None = None,
    drop_remainder: bool = False,
    epochs: int | None = None,
    first_epoch: int = 0,
    epoch: tf.Variable | None = None,
) -> tf.data.Dataset:
    """Batches of feature dicts, shuffled per epoch, gathered a batch at a time, prefetched.

    With ``item_probability`` (see :func:`item_frequencies`) each example also
    carries ``item_probability``, the sampling probability of its target item
    used by the retrieval task's logQ correction.

    With ``epochs`` the dataset is the finite stream of epochs
    ``first_epoch .. epochs - 1`` (``steps_per_epoch(...)`` batches each), and
    epoch ``e`` is shuffled by a permutation that depends only on ``(seed, e)``:
    a run resumed at epoch ``e`` sees exactly the batches an uninterrupted run
    would. Without it, one pass that reshuffles on every iteration.

    With ``epoch`` instead (an integer ``tf.Variable``) the dataset is one
    epoch of that stream, the one ``epoch`` holds when an iterator is made
    from it, with its cardinality known: Keras ``fit`` makes an iterator each
    epoch, and its last compiled call of an epoch then runs only the batches
    left (:func:`~mmrec_tf.training.train_model` sets the variable as each
    epoch begins).

    Example:
    >>> ex = Examples(np.arange(5), np.arange(5), np.zeros((5, 2), "int32"), {})
    >>> [b["item_id"].shape[0] for b in make_tf_dataset(ex, 2, epochs=2)]
    [2, 2, 1, 2, 2, 1]
    >>> current = tf.Variable(1, dtype=tf.int64)
    >>> one_epoch = make_tf_dataset(ex, 2, seed=3, epoch=current)
    >>> int(one_epoch.cardinality())
    3
    >>> [b["item_id"].numpy().tolist() for b in one_epoch] == [
    ...     b["item_id"].numpy().tolist() for b in make_tf_dataset(ex, 2, seed=3, epochs=2, first_epoch=1)]
    True
    """
    features = examples.features()
    if item_probability is not None:
        features["item_probability"] = item_probability[examples.item_id]
    tensors = {name: tf.constant(value) for name, value in features.items()}
    count = len(examples)

    def gather(indices):
        return {name: tf.gather(value, indices) for name, value in tensors.items()}

    if epochs is not None and epoch is not None:
        raise ValueError("make_tf_dataset: pass epochs (a stream of epochs) or epoch (one epoch), not both")
    if epochs is None and epoch is None:
        indices = tf.data.Dataset.range(count)
        if shuffle:
            indices = indices.shuffle(count, seed=seed, reshuffle_each_iteration=True)
        batches = indices.batch(batch_size, drop_remainder=drop_remainder).map(
            gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    else:
        end = count - count % batch_size if drop_remainder else count

        def epoch_batches(epoch):
            if shuffle:
                noise = tf.random.stateless_uniform([count], seed=tf.stack([tf.cast(seed, tf.int64), epoch]))
                order = tf.cast(tf.argsort(noise, stable=True), tf.int64)
            else:
                order = tf.range(count, dtype=tf.int64)
            # one element per batch (its slice of the permutation, gathered), not one per example
            return tf.data.Dataset.range(0, end, batch_size).map(
                lambda start: gather(order[start:start + batch_size]),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

        if epoch is None:
            batches = tf.data.Dataset.range(first_epoch, epochs).flat_map(epoch_batches)
        else:
            batches = tf.data.Dataset.from_tensors(0).flat_map(
                lambda _: epoch_batches(tf.cast(epoch.read_value(), tf.int64))).apply(
                tf.data.experimental.assert_cardinality(steps_per_epoch(count, batch_size, drop_remainder)))
    return batches.prefetch(tf.data.AUTOTUNE)


def steps_per_epoch(num_examples: int, batch_size: int, drop_remainder: bool = False) -> int:
    """How many batches one epoch of :func:`make_tf_dataset` has."""
    return num_examples // batch_size if drop_remainder else -(-num_examples // batch_size)
