"""Zoo entries: a model's architecture, data, training recipe and measured metrics, in YAML."""

from __future__ import annotations

import dataclasses
import importlib.resources
import os
import pathlib
from typing import Any

import yaml

from mmrec_tf.errors import ConfigError

DATA_KEYS = {"dataset": str, "split": str, "max_history": int, "label": str, "history": str,
             "valid_fraction": float, "test_fraction": float}
FRACTION_SPLITS = ("random", "temporal_fraction")
TRAINING_KEYS = {"epochs": int, "batch_size": int, "learning_rate": float, "optimizer": str, "seed": int,
                 "jit_compile": (bool, str)}
METRICS_KEYS = {"protocol": str, "script": str, "measured_on": str, "values": dict, "baselines": dict,
                "training_examples_per_second": float}
TOP_LEVEL_KEYS = {"name": str, "model": str, "task": str, "description": str, "references": list,
                  "architecture": dict, "data": dict, "training": dict, "metrics": dict, "default": bool}
REQUIRED_KEYS = ("name", "model", "task", "description", "architecture", "data", "training")
# What a recipe keeps when it is applied to other data than its entry's: these name the entry's own columns
# and splits, so a bare model name on another dataset takes the model's and the task's defaults for them.
DATA_BOUND_ARCHITECTURE = ("item_features",)
PORTABLE_DATA = ("max_history", "history")
NO_RECIPE = "none"


@dataclasses.dataclass(frozen=True)
class ZooEntry:
    """One catalog entry, validated.

    Example:
    >>> entry = get_zoo_entry("lstm_two_tower.movielens_100k")
    >>> entry.model, entry.data["dataset"]
    ('lstm_two_tower', 'movielens-100k')
    """

    name: str
    model: str
    task: str
    description: str
    architecture: dict
    data: dict
    training: dict
    metrics: dict
    references: list
    source: str
    default: bool = False


def _check_types(section: dict, allowed: dict, prefix: str, source: str) -> None:
    if not isinstance(section, dict):
        raise ConfigError(f"expected a mapping, got {type(section).__name__}", key_path=prefix.rstrip("."),
                          source=source)
    for key, value in section.items():
        if key not in allowed:
            raise ConfigError(f"unknown key; expected one of {sorted(allowed)}", key_path=f"{prefix}{key}",
                              source=source)
        expected = allowed[key]
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            continue
        if isinstance(value, bool) and expected is int:
            raise ConfigError("expected int, got bool", key_path=f"{prefix}{key}", source=source)
        if not isinstance(value, expected):
            names = " or ".join(t.__name__ for t in (expected if isinstance(expected, tuple) else (expected,)))
            raise ConfigError(f"expected {names}, got {type(value).__name__} {value!r}",
                              key_path=f"{prefix}{key}", source=source)


def _check_data(data: dict, source: str) -> None:
    """Split names, split fractions and the label spec are checked here, before any data is read."""
    from mmrec_tf.data.label_spec import parse_label
    from mmrec_tf.data.splits import SPLIT_METHODS

    split = data.get("split")
    if split is not None and split not in SPLIT_METHODS:
        raise ConfigError(f"unknown split {split!r}; expected one of {list(SPLIT_METHODS)}", key_path="data.split",
                          source=source)
    for key in ("valid_fraction", "test_fraction"):
        if key in data and data.get("split") not in FRACTION_SPLITS:
            raise ConfigError(f"only the splits {list(FRACTION_SPLITS)} take fractions", key_path=f"data.{key}",
                              source=source)
        if key in data and not 0 <= data[key] < 1:
            raise ConfigError(f"expected a fraction in [0, 1), got {data[key]!r}", key_path=f"data.{key}",
                              source=source)
    if "label" in data:
        parse_label(data["label"], key_path="data.label", source=source)


def parse_zoo_entry(content: Any, source: str) -> ZooEntry:
    """Validate a loaded YAML mapping: unknown keys and wrong types are rejected with their path."""
    from mmrec_tf.model_registration import check_arguments
    from mmrec_tf.models import registered_model

    _check_types(content, TOP_LEVEL_KEYS, "", source)
    for key in REQUIRED_KEYS:
        if key not in content:
            raise ConfigError("missing required key", key_path=key, source=source)
    _check_types(content["data"], DATA_KEYS, "data.", source)
    _check_data(content["data"], source)
    _check_types(content["training"], TRAINING_KEYS, "training.", source)
    _check_types(content.get("metrics", {}), METRICS_KEYS, "metrics.", source)
    registered = registered_model(content["model"])
    if content["task"] != registered.task:
        raise ConfigError(f"model {content['model']!r} is a {registered.task} model, not {content['task']!r}",
                          key_path="task", source=source)
    if not content["name"].startswith(content["model"] + "."):
        raise ConfigError(f"entry names are '<model>.<tag>'; expected a name starting with {content['model']}.",
                          key_path="name", source=source)
    if "max_history" in content["architecture"]:
        raise ConfigError("write max_history once, as data.max_history: the model keeps the history the data "
                          "carries", key_path="architecture.max_history", source=source)
    check_arguments(registered.cls, content["architecture"], source=source, key_prefix="architecture.")
    return ZooEntry(
        name=content["name"], model=content["model"], task=content["task"], description=content["description"],
        architecture=dict(content["architecture"]), data=dict(content["data"]), training=dict(content["training"]),
        metrics=dict(content.get("metrics", {})), references=list(content.get("references", [])), source=source,
        default=bool(content.get("default", False)),
    )


def read_zoo_yaml(path: str | os.PathLike) -> dict:
    """The mapping in a zoo YAML file, read with ``yaml.safe_load`` (no validation beyond being a mapping)."""
    try:
        with open(path, encoding="utf-8") as handle:
            content = yaml.safe_load(handle)
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML for yaml.safe_load ({exc})", source=str(path)) from None
    if not isinstance(content, dict):
        raise ConfigError(f"expected a mapping, got {type(content).__name__}", source=str(path))
    return content


def load_zoo_file(path: str | os.PathLike) -> ZooEntry:
    """Read one zoo YAML file with ``yaml.safe_load`` and validate it."""
    path = pathlib.Path(path)
    entry = parse_zoo_entry(read_zoo_yaml(path), source=str(path))
    if path.stem != entry.name:
        raise ConfigError(f"file name must be '<name>.yaml'; expected {entry.name}.yaml", key_path="name",
                          source=str(path))
    return entry


def load_zoo_entries() -> dict[str, ZooEntry]:
    """Every entry shipped in the package's ``zoo`` folder, by name."""
    folder = importlib.resources.files("mmrec_tf.zoo")
    entries = {}
    for resource in sorted(folder.iterdir(), key=lambda r: r.name):
        if resource.name.endswith(".yaml"):
            with importlib.resources.as_file(resource) as path:
                entry = load_zoo_file(path)
            entries[entry.name] = entry
    return entries


def get_zoo_entry(name: str) -> ZooEntry:
    """One zoo entry by name (``<model>.<tag>``); a clear error lists the known ones."""
    entries = load_zoo_entries()
    if name not in entries:
        raise ConfigError(f"unknown zoo entry {name!r}; known entries: {sorted(entries)}", key_path="name")
    return entries[name]


def default_entry(model: str) -> ZooEntry | None:
    """The zoo entry whose recipe a bare architecture name trains with, or None when ``model`` has none.

    That is the model's entry marked ``default: true`` (the one measured
    best), else its only entry.

    Example:
    >>> default_entry("two_tower").name
    'two_tower.movielens_100k'
    """
    entries = [entry for entry in load_zoo_entries().values() if entry.model == model]
    marked = [entry for entry in entries if entry.default]
    if len(marked) > 1:
        raise ConfigError(f"zoo entries {[e.name for e in marked]} are all marked default for {model!r}; mark one",
                          key_path="default", source=marked[1].source)
    if marked:
        return marked[0]
    if len(entries) > 1:
        raise ConfigError(f"model {model!r} has several zoo entries ({[e.name for e in entries]}) and none is "
                          f"marked 'default: true'; mark the one measured best", key_path="default",
                          source=entries[0].source)
    return entries[0] if entries else None


@dataclasses.dataclass(frozen=True)
class Recipe:
    """What a name trains with: a model, its architecture arguments, data settings and training settings.

    ``name`` is the zoo entry the recipe comes from (:data:`NO_RECIPE`,
    ``"none"``, when the model has no entry: class defaults).
    ``data`` are :func:`~mmrec_tf.experiment.prepare_data` keyword arguments.
    ``own_data`` (a bare name's recipe only): ``(dataset, arguments)``, the
    arguments left out of ``architecture`` because they name that dataset's
    own columns (:data:`DATA_BOUND_ARCHITECTURE`); on that dataset the recipe
    takes them back (:meth:`model_arguments`), so a bare name trains there
    exactly as its entry.

    Example:
    >>> recipe = recipe_for("two_tower")
    >>> recipe.name, recipe.architecture["logq_correction"], recipe.training["learning_rate"]
    ('two_tower.movielens_100k', True, 0.001)
    """

    name: str
    model: str
    task: str
    architecture: dict
    data: dict
    training: dict
    own_data: tuple[str, dict] | None = None

    def model_arguments(self, max_history: int | None = None, dataset: str | None = None) -> dict:
        """The architecture arguments; a model that keeps a history keeps ``max_history`` items.

        ``max_history`` is the length of the histories the examples carry
        (default: the recipe's ``data.max_history``): the one place where the
        model's history length is set from the data's. ``dataset`` names the
        data the model is built for: a bare name's recipe on its entry's own
        dataset adds back the entry's item tables (``own_data``).

        Example:
        >>> recipe_for("lstm_two_tower").model_arguments(max_history=20)["max_history"]
        20
        >>> "max_history" in recipe_for("two_tower").model_arguments(max_history=20)
        False
        >>> recipe_for("sasrec").model_arguments(dataset="movielens-100k")["item_features"]
        ['genres', 'title']
        >>> "item_features" in recipe_for("sasrec").model_arguments(dataset="synthetic")
        False
        """
        from mmrec_tf.model_registration import accepted_arguments
        from mmrec_tf.models import registered_model

        arguments = dict(self.architecture)
        if self.own_data is not None and dataset == self.own_data[0]:
            arguments = {**self.own_data[1], **arguments}
        max_history = max_history if max_history is not None else self.data.get("max_history")
        if max_history is not None and "max_history" in accepted_arguments(registered_model(self.model).cls):
            arguments["max_history"] = max_history
        return arguments


def recipe_for(model_or_entry: str) -> Recipe:
    """The recipe a zoo entry name or a bare architecture name trains with.

    A zoo entry: its architecture, data settings (without the dataset) and
    training. A bare name: the recipe of its :func:`default_entry` made
    portable to any data: the architecture without the arguments that name
    the entry's own columns (:data:`DATA_BOUND_ARCHITECTURE`; kept aside as
    ``own_data`` and used again on the entry's own dataset), of the data
    settings only :data:`PORTABLE_DATA`, and the whole training section.

    Example:
    >>> recipe_for("din").architecture["activation"], recipe_for("din").data
    ('dice', {'max_history': 50})
    >>> "item_features" in recipe_for("vbpr").architecture, "item_features" in recipe_for("vbpr.lastfm_2k_mm").architecture
    (False, True)
    """
    from mmrec_tf.models import registered_model

    if "." in model_or_entry:
        entry = get_zoo_entry(model_or_entry)
        data = {key: value for key, value in entry.data.items() if key != "dataset"}
        return Recipe(entry.name, entry.model, entry.task, dict(entry.architecture), data, dict(entry.training))
    registered = registered_model(model_or_entry)
    entry = default_entry(model_or_entry)
    if entry is None:
        return Recipe(NO_RECIPE, model_or_entry, registered.task, {}, {}, {})
    architecture = {key: value for key, value in entry.architecture.items() if key not in DATA_BOUND_ARCHITECTURE}
    bound = {key: value for key, value in entry.architecture.items() if key in DATA_BOUND_ARCHITECTURE}
    data = {key: value for key, value in entry.data.items() if key in PORTABLE_DATA}
    own_data = (entry.data["dataset"], bound) if bound and "dataset" in entry.data else None
    return Recipe(entry.name, entry.model, entry.task, architecture, data, dict(entry.training), own_data)
