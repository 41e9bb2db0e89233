"""The model catalog: ``register_model``, ``list_models`` and ``create_model``."""

from __future__ import annotations

import dataclasses
import fnmatch
import inspect

from mmrec_tf.errors import ConfigError

TASKS = ("retrieval", "ranking")


@dataclasses.dataclass(frozen=True)
class RegisteredModel:
    name: str
    cls: type
    task: str
    description: str


_REGISTRY: dict[str, RegisteredModel] = {}


def register_model(name: str, task: str):
    """Class decorator adding a model class to the catalog under ``name``.

    Example:
    >>> import keras
    >>> @register_model("doc_example_model", task="retrieval")
    ... class DocExample(keras.Model):
    ...     '''A model used only in this docstring.'''
    >>> "doc_example_model" in list_models("doc_*")
    True
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")

    def decorate(cls):
        if name in _REGISTRY and _REGISTRY[name].cls is not cls:
            raise ValueError(f"model name {name!r} is already registered by {_REGISTRY[name].cls.__name__}")
        summary = (inspect.getdoc(cls) or "").split("\n")[0]
        _REGISTRY[name] = RegisteredModel(name, cls, task, summary)
        cls.registry_name = name
        cls.task_type = task
        return cls

    return decorate


def _load_builtin_models() -> None:
    import mmrec_tf.models  # noqa: F401  (importing registers the built-in models)


def registered_model(name: str) -> RegisteredModel:
    _load_builtin_models()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; known models: {sorted(_REGISTRY)}", key_path="model")
    return _REGISTRY[name]


def list_models(pattern: str = "*", task: str | None = None, zoo: bool = False) -> list[str]:
    """Names of catalog models matching a glob ``pattern``, optionally of one ``task``.

    With ``zoo=True`` the names are zoo entries (``<model>.<dataset>``, each a
    recorded architecture, data, recipe and measured metrics) instead of model
    architectures.

    Example:
    >>> "lstm_two_tower" in list_models("*two_tower*", task="retrieval")
    True
    >>> "lstm_two_tower.movielens_100k" in list_models("lstm*", zoo=True)
    True
    """
    if task is not None and task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    _load_builtin_models()
    if zoo:
        from mmrec_tf.zoo_entry import load_zoo_entries

        entries = load_zoo_entries()
        names = [n for n, e in entries.items() if task is None or registered_model(e.model).task == task]
    else:
        names = [n for n, m in _REGISTRY.items() if task is None or m.task == task]
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
        from mmrec_tf.zoo_entry import recipe_for

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


def accepted_arguments(cls) -> set[str]:
    """Constructor arguments of ``cls`` and its model base classes, plus ``from_feature_space``'s."""
    accepted = {"name"}
    for klass in cls.__mro__:
        if klass.__module__.startswith("keras"):
            break
        for method in ("__init__", "from_feature_space"):
            if method in klass.__dict__:
                function = getattr(klass.__dict__[method], "__func__", klass.__dict__[method])
                accepted |= set(inspect.signature(function).parameters)
    return accepted - {"self", "cls", "kwargs", "args", "space"}


def check_arguments(cls, arguments: dict, source: str, key_prefix: str = "") -> None:
    """Reject constructor arguments ``cls`` does not take, naming the key."""
    accepted = accepted_arguments(cls)
    for key in arguments:
        if key not in accepted:
            raise ConfigError(
                f"unknown argument for {cls.__name__}; expected one of {sorted(accepted)}",
                key_path=f"{key_prefix}{key}", source=source,
            )
