"""What an interrupted run was started with, so ``--resume`` cannot silently continue it with another recipe.

``mmrec train`` writes the run's recipe (model, architecture overrides,
training settings, data source and split) into its checkpoint folder as
``recipe.json`` when it starts. ``mmrec train --resume`` compares the recipe
it is given with that file and refuses a different one, listing each
difference; with ``--force`` it continues and ``run.json`` records the
checkpointed recipe and the differences under ``resumed``.

Two training settings may change on resume, since resuming is how a run is
extended or cut short and how a slow run is sped up: ``epochs`` and the speed
settings that leave the weights alone (``jit_compile``,
``steps_per_execution``).

Example:
>>> differences({"training": {"seed": 0, "epochs": 3}}, {"training": {"seed": 1, "epochs": 5}})
{'training.seed': {'checkpointed': 0, 'now': 1}}
"""

from __future__ import annotations

import json
import os
import pathlib

from mmrec_tf.atomic_file import write_atomically

RECIPE_FILE = "recipe.json"
MAY_CHANGE_ON_RESUME = ("training.epochs", "training.jit_compile", "training.steps_per_execution")


class ResumeMismatchError(ValueError):
    """``--resume`` was given a recipe other than the interrupted run's; the message lists the differences."""


def _flat(recipe: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in recipe.items():
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def differences(checkpointed: dict, now: dict) -> dict:
    """``{"section.key": {"checkpointed": a, "now": b}}`` for every setting that differs (and may not change)."""
    before, after = _flat(json.loads(json.dumps(checkpointed))), _flat(json.loads(json.dumps(now)))
    return {key: {"checkpointed": before.get(key), "now": after.get(key)}
            for key in sorted(set(before) | set(after))
            if key not in MAY_CHANGE_ON_RESUME and before.get(key) != after.get(key)}


def record_recipe(checkpoint_dir: str | os.PathLike, recipe: dict) -> None:
    """Write ``recipe`` as the checkpoint folder's ``recipe.json`` (written aside, then renamed)."""
    text = json.dumps(recipe, indent=2, sort_keys=True)
    write_atomically(pathlib.Path(checkpoint_dir) / RECIPE_FILE,
                     lambda temporary: pathlib.Path(temporary).write_text(text, encoding="utf-8"))


def check_resume(checkpoint_dir: str | os.PathLike, recipe: dict, force: bool = False) -> dict | None:
    """Compare ``recipe`` with the interrupted run's; raise :class:`ResumeMismatchError` on a difference.

    Returns None when they agree (or the run predates ``recipe.json``), and
    with ``force`` ``{"checkpointed_recipe": ..., "differences": ...}`` for
    ``run.json`` when they do not.
    """
    path = pathlib.Path(checkpoint_dir) / RECIPE_FILE
    if not path.is_file():
        return None
    checkpointed = json.loads(path.read_text(encoding="utf-8"))
    changed = differences(checkpointed, recipe)
    if not changed:
        return None
    if not force:
        listed = "; ".join(f"{key} {value['checkpointed']!r} -> {value['now']!r}" for key, value in changed.items())
        raise ResumeMismatchError(f"{checkpoint_dir} was started with another recipe: {listed}. Resume with the "
                                  "same settings, or pass --force to continue with the new ones (run.json then "
                                  "records both)")
    return {"forced": True, "checkpointed_recipe": checkpointed, "differences": changed}
