"""What the catalog holds, read without importing TensorFlow: for ``mmrec list``.

Importing the model classes (what :func:`mmrec_tf.registry.list_models`
does) imports TensorFlow and Keras, about 6 s of CPU before the first line of
output. A listing needs only names, tasks and one-line descriptions, and
those are literal in the source: every catalog model is a class decorated
``@register_model("<name>", task="<task>")`` in ``mmrec_tf/models``, whose
docstring's first line is its description. :func:`model_summaries` reads
them from the source files' syntax trees; ``tests/test_cli_startup.py``
checks they equal what the registry holds once the classes are imported.
Zoo entries are YAML files, read here with ``yaml.safe_load`` only (the full
validation, which needs the model classes, runs when an entry is used).

Example:
>>> summaries = model_summaries()
>>> summaries["two_tower"].task
'retrieval'
>>> zoo_summaries()["din.movielens_100k"].model
'din'
"""

from __future__ import annotations

import ast
import dataclasses
import fnmatch
import pathlib

from mmrec_tf.errors import ConfigError
from mmrec_tf.zoo_entry import read_zoo_yaml

PACKAGE_FOLDER = pathlib.Path(__file__).resolve().parent
MODELS_FOLDER = PACKAGE_FOLDER / "models"  # found by path: importing the package would import the models
ZOO_FOLDER = PACKAGE_FOLDER / "zoo"
REGISTER_DECORATOR = "register_model"


@dataclasses.dataclass(frozen=True)
class ModelSummary:
    """A catalog model as ``mmrec list`` shows it."""

    name: str
    task: str
    description: str


@dataclasses.dataclass(frozen=True)
class ZooSummary:
    """A zoo entry as ``mmrec list --zoo`` shows it: its model, task and recorded metric values."""

    name: str
    model: str
    task: str
    values: dict


def _registration(decorator: ast.expr) -> tuple[str, str] | None:
    """``(name, task)`` of a literal ``@register_model("name", task="task")`` decorator, else None."""
    if not isinstance(decorator, ast.Call) or getattr(decorator.func, "id", None) != REGISTER_DECORATOR:
        return None
    arguments = [*decorator.args, *(keyword.value for keyword in decorator.keywords)]
    if len(arguments) != 2 or not all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in arguments):
        return None
    return arguments[0].value, arguments[1].value


def model_summaries() -> dict[str, ModelSummary]:
    """Every model registered in ``mmrec_tf/models``, by name, read from the source without importing it."""
    summaries = {}
    for source in MODELS_FOLDER.glob("*.py"):
        tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
        for node in tree.body:
            if not isinstance(node, ast.ClassDef):
                continue
            for decorator in node.decorator_list:
                registration = _registration(decorator)
                if registration is not None:
                    description = (ast.get_docstring(node) or "").split("\n")[0]
                    summaries[registration[0]] = ModelSummary(registration[0], registration[1], description)
    return dict(sorted(summaries.items()))


def zoo_summaries() -> dict[str, ZooSummary]:
    """Every zoo entry shipped in the package, by name, read with ``yaml.safe_load`` only."""
    summaries = {}
    for path in sorted(ZOO_FOLDER.glob("*.yaml")):
        content = read_zoo_yaml(path)
        missing = [key for key in ("name", "model", "task") if not isinstance(content.get(key), str)]
        if missing:
            raise ConfigError("missing required key", key_path=missing[0], source=str(path))
        values = (content.get("metrics") or {}).get("values") or {}
        summaries[content["name"]] = ZooSummary(content["name"], content["model"], content["task"], dict(values))
    return summaries


def matching(names, pattern: str = "*") -> list[str]:
    """``names`` matching the glob ``pattern``, sorted.

    Example:
    >>> matching(["din", "two_tower", "lstm_two_tower"], "*two_tower")
    ['lstm_two_tower', 'two_tower']
    """
    return sorted(name for name in names if fnmatch.fnmatchcase(name, pattern))
