"""Where catalog model classes register themselves: ``register_model`` and the argument checks.

This module is the bottom of the catalog's import graph: model classes
import it (to register), :mod:`mmrec_tf.models` imports every model class,
:mod:`mmrec_tf.zoo_entry` validates recipes against the registered classes,
and :mod:`mmrec_tf.registry` (``list_models``, ``create_model``) sits on top
of all three, as timm's ``_registry`` / ``_factory`` split does. Nothing here
imports a model, so no import goes in a circle.
"""

from __future__ import annotations

import dataclasses
import inspect

from mmrec_tf.errors import ConfigError
from mmrec_tf.task_kinds import RETRIEVAL, TASK_NAMES, TaskKind, task_kind

TASKS = TASK_NAMES


@dataclasses.dataclass(frozen=True)
class RegisteredModel:
    """A catalog model: its name, class, task and one-line description (the docstring's first line)."""

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
    >>> registered_model("doc_example_model").description
    'A model used only in this docstring.'
    >>> unregister_model("doc_example_model")
    """
    task = task_kind(task).name

    def decorate(cls):
        if name in _REGISTRY and _REGISTRY[name].cls is not cls:
            raise ValueError(f"model name {name!r} is already registered by {_REGISTRY[name].cls.__name__}")
        summary = (inspect.getdoc(cls) or "").split("\n")[0]
        _REGISTRY[name] = RegisteredModel(name, cls, task, summary)
        cls.registry_name = name
        return cls

    return decorate


def unregister_model(name: str) -> None:
    """Remove model ``name`` from the catalog (a model registered for a notebook or a test); unknown names are refused.

    Example:
    >>> import keras
    >>> register_model("short_lived_model", task="ranking")(type("ShortLived", (keras.Model,), {})).__name__
    'ShortLived'
    >>> unregister_model("short_lived_model")
    >>> "short_lived_model" in [model.name for model in registered_models()]
    False
    """
    registered_model(name)
    del _REGISTRY[name]


def registered_model(name: str) -> RegisteredModel:
    """The registration of model ``name`` among the classes registered so far; unknown names are refused.

    Import it from :mod:`mmrec_tf.models` (or :mod:`mmrec_tf.registry`) to
    be sure every built-in model has registered.
    """
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; known models: {sorted(_REGISTRY)}", key_path="model")
    return _REGISTRY[name]


def model_task_kind(model) -> TaskKind:
    """The task kind ``model``'s class is registered for; a model of no registered class counts as retrieval.

    Example:
    >>> from mmrec_tf.data.sources import make_synthetic
    >>> from mmrec_tf import FeatureSpace, create_model
    >>> space = FeatureSpace.build(make_synthetic(num_users=4, num_items=6, num_clusters=2))
    >>> model_task_kind(create_model("din", space=space)).name, model_task_kind(object()).name
    ('ranking', 'retrieval')
    """
    registration = _REGISTRY.get(getattr(model, "registry_name", None))
    return task_kind(registration.task) if registration is not None else RETRIEVAL


def registered_models() -> list[RegisteredModel]:
    """Every registration so far, in registration order."""
    return list(_REGISTRY.values())


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
