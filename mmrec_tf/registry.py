"""The model catalog: ``list_models`` and ``create_model``, over the registered models and the zoo.

Model classes register with :func:`~mmrec_tf.model_registration.register_model`
(re-exported here); importing :mod:`mmrec_tf.models` registers the built-in
ones, and :mod:`mmrec_tf.zoo_entry` holds the recipes.
"""

from __future__ import annotations

import fnmatch

from mmrec_tf.model_registration import (TASKS, RegisteredModel, accepted_arguments, check_arguments,
                                         register_model, registered_models)
from mmrec_tf.models import registered_model
from mmrec_tf.task_kinds import TaskKind, task_kind
from mmrec_tf.zoo_entry import load_zoo_entries, recipe_for

__all__ = ["TASKS", "RegisteredModel", "accepted_arguments", "check_arguments", "create_model", "list_models",
           "register_model", "registered_model"]


def list_models(pattern: str = "*", task: str | TaskKind | None = None,
                zoo: bool = False) -> list[str]:
    """Names of catalog models matching a glob ``pattern``, optionally of one ``task`` (a name or a task kind).

    With ``zoo=True`` the names are zoo entries (``<model>.<dataset>``, each a
    recorded architecture, data, recipe and measured metrics) instead of model
    architectures.

    Example:
    >>> "lstm_two_tower" in list_models("*two_tower*", task="retrieval")
    True
    >>> "lstm_two_tower.movielens_100k" in list_models("lstm*", zoo=True)
    True
    """
    if task is not None:
        task = task_kind(task).name
    if zoo:
        entries = load_zoo_entries()
        names = [n for n, e in entries.items() if task is None or registered_model(e.model).task == task]
    else:
        names = [m.name for m in registered_models() if task is None or m.task == task]
    return sorted(n for n in names if fnmatch.fnmatchcase(n, pattern))


def create_model(name_or_entry: str, space=None, **overrides):
    """Build a catalog model, from an architecture name or a zoo entry name.

    ``space`` (a :class:`~mmrec_tf.data.FeatureSpace`) supplies vocabulary
    sizes and feature tables; ``overrides`` replace constructor arguments (a
    zoo entry's recipe gives the defaults: its ``architecture`` and
    ``data.max_history``; a bare name, the class's). Unknown argument names
    are rejected. :func:`~mmrec_tf.experiment.run` and ``mmrec train`` build
    a bare name with its best measured recipe
    (:func:`~mmrec_tf.zoo_entry.recipe_for`).

    Example:
    >>> from mmrec_tf.data import FeatureSpace, load_dataset
    >>> space = FeatureSpace.build(load_dataset("synthetic", num_users=8, num_items=10, num_clusters=2))
    >>> model = create_model("lstm_two_tower", space=space, embedding_dim=8)
    >>> model.embedding_dim
    8
    """
    if "." in name_or_entry:
        recipe = recipe_for(name_or_entry)
        arguments = {**recipe.model_arguments(), **overrides}
        registered = registered_model(recipe.model)
    else:
        arguments = dict(overrides)
        registered = registered_model(name_or_entry)
    check_arguments(registered.cls, arguments, source=name_or_entry)
    if space is None:
        return registered.cls(**arguments)
    return registered.cls.from_feature_space(space, **arguments)
