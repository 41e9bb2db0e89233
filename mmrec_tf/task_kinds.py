"""What kind of recommendation task a model solves, and what follows from it: :class:`TaskKind`.

A catalog model is registered for one task kind, :data:`RETRIEVAL` (pick
items from the whole catalog) or :data:`RANKING` (score labelled
candidates). The kind decides the default split, how the examples are
built, how a split is measured, which epoch a run keeps and which
signatures an export serves; the code asks the kind instead of comparing
task names. The name (``"retrieval"``, ``"ranking"``) is the kind as
``run.json`` and the zoo YAML files write it.

Not to be confused with :mod:`mmrec_tf.tasks`, the Keras loss layers
(``Retrieval``, ``Ranking``) models train with.

This module imports nothing of the package at load time (the evaluators are
imported when :meth:`TaskKind.evaluate` runs), so ``mmrec list`` and the
model registration can use it without loading TensorFlow. A model's kind is
its registration's: :func:`~mmrec_tf.model_registration.model_task_kind`.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class TaskKind:
    """A task kind: its name and what it decides.

    ``name`` is the kind as files write it. ``default_split`` is the split
    :func:`~mmrec_tf.experiment.prepare_data` makes when none is given.
    ``labelled``: the examples carry a label (and ``label`` / ``history``
    settings apply); otherwise the interactions themselves are the examples.
    ``selection_metric`` is the validation metric whose best epoch a run
    keeps (None: the last epoch is kept). ``serving_signatures`` are the
    signatures an export writes, in order; ``serving_default`` is the one
    of them the export also serves as ``serving_default``.

    Example:
    >>> task_kind("ranking") is RANKING, task_kind(RETRIEVAL) is RETRIEVAL
    (True, True)
    >>> RANKING.default_split, RANKING.selection_metric, RETRIEVAL.selection_metric
    ('temporal_fraction', 'gauc', None)
    >>> RETRIEVAL.retrieves, RANKING.retrieves, RANKING.serving_signatures, RANKING.serving_default
    (True, False, ('score', 'explain'), 'score')
    """

    name: str
    default_split: str
    labelled: bool
    selection_metric: str | None
    serving_signatures: tuple[str, ...]
    serving_default: str

    @property
    def retrieves(self) -> bool:
        """Whether the model retrieves from the catalog: it encodes users and items, and exports ``retrieve``."""
        return "retrieve" in self.serving_signatures

    def evaluate(self, model, data, split: str = "test", ks=(10, 20)):
        """Measure ``model`` on split ``split`` of ``data`` (a :class:`~mmrec_tf.experiment.PreparedData`).

        Retrieval: full-corpus ranking with each user's seen items excluded
        (:func:`~mmrec_tf.evaluation.full_ranking.evaluate_retrieval`, cut-offs
        ``ks``). Ranking: AUC, GAUC, log loss on the labelled examples
        (:func:`~mmrec_tf.evaluation.ranking_evaluator.evaluate_ranking`).
        """
        if self.labelled:
            from mmrec_tf.evaluation.ranking_evaluator import evaluate_ranking

            return evaluate_ranking(model, data.examples[split])
        from mmrec_tf.evaluation.full_ranking import evaluate_retrieval

        return evaluate_retrieval(model, data.examples[split], data.seen(split), ks=ks)


RETRIEVAL = TaskKind(name="retrieval", default_split="leave_last_out", labelled=False, selection_metric=None,
                     serving_signatures=("score", "retrieve", "user_embedding", "item_embedding", "explain"),
                     serving_default="retrieve")
RANKING = TaskKind(name="ranking", default_split="temporal_fraction", labelled=True, selection_metric="gauc",
                   serving_signatures=("score", "explain"), serving_default="score")
TASK_KINDS = (RETRIEVAL, RANKING)
TASK_NAMES = tuple(kind.name for kind in TASK_KINDS)


def task_kind(name_or_kind: str | TaskKind) -> TaskKind:
    """The :class:`TaskKind` named ``name_or_kind`` (a kind is returned as it is); other names are refused.

    Example:
    >>> task_kind("retrieval").default_split
    'leave_last_out'
    >>> task_kind("regression")
    Traceback (most recent call last):
    ...
    ValueError: task must be one of ('retrieval', 'ranking'), got 'regression'
    """
    if isinstance(name_or_kind, TaskKind):
        return name_or_kind
    for kind in TASK_KINDS:
        if kind.name == name_or_kind:
            return kind
    raise ValueError(f"task must be one of {TASK_NAMES}, got {name_or_kind!r}")

