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
                  "architecture": dict, "data": dict, "training": dict, "metrics": dict}
REQUIRED_KEYS = ("name", "model", "task", "description", "architecture", "data", "training")


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
    from mmrec_tf.registry import check_arguments, registered_model

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
    check_arguments(registered.cls, content["architecture"], source=source, key_prefix="architecture.")
    return ZooEntry(
        name=content["name"], model=content["model"], task=content["task"], description=content["description"],
        architecture=dict(content["architecture"]), data=dict(content["data"]), training=dict(content["training"]),
        metrics=dict(content.get("metrics", {})), references=list(content.get("references", [])), source=source,
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
