"""How much a new export's answers agree with the version it replaces, on the warm-up requests.

An update that trained on broken data, or an export of the wrong run, still
loads and answers: serve-check's load and latency checks pass. What changes is
*what* it recommends. :func:`compare_versions` replays the new version's
warm-up requests (the realistic known users written at export time) against
both versions and reports, row by row, the overlap of their top-K lists:

* a retrieval export: ``|topK_new ∩ topK_old| / K`` over ``retrieve``'s item ids
  (empty padding ids are not items and do not count);
* a ranking export: the same overlap over the K best-scored candidates of
  ``score`` (K = min(10, candidates per row)).

A retrained or updated model keeps most of its top lists (the rolling-update
benchmark's updates change a minority of items per list); an overlap near 0
means the new version recommends something else entirely.

Example:

    report = compare_versions("saved_models/lstm_two_tower")        # newest vs the one before
    print(format_version_comparison(report))
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from mmrec_tf.export.versioning import list_versions

__all__ = ["compare_versions", "format_version_comparison", "top_k_overlap"]

RANKING_TOP_K = 10


def top_k_overlap(new_ids: np.ndarray, old_ids: np.ndarray) -> np.ndarray:
    """Per row, the share of the new top list's K slots whose item is also in the old list.

    Empty ids (``""`` or ``b""``: padding) are never counted as shared items.

    Example:

    >>> top_k_overlap(np.array([["a", "b", "c", "d"], ["a", "", "", ""]]),
    ...               np.array([["b", "a", "x", "y"], ["a", "", "", ""]])).tolist()
    [0.5, 0.25]
    """
    new_ids, old_ids = np.asarray(new_ids), np.asarray(old_ids)
    if new_ids.shape != old_ids.shape or new_ids.ndim != 2:
        raise ValueError(f"top lists must have one shape [rows, K]; got {new_ids.shape} and {old_ids.shape}")
    shared = [
        len({item for item in new_row if item not in ("", b"")} & set(old_row.tolist()))
        for new_row, old_row in zip(new_ids, old_ids)
    ]
    return np.asarray(shared, dtype=np.float64) / max(new_ids.shape[1], 1)


def _older_version(model_dir: Path, newer_than: int | None) -> Path:
    versions = {number: path for number, path in list_versions(model_dir).items()
                if newer_than is None or number < newer_than}
    if not versions:
        limit = f" older than {newer_than}" if newer_than is not None else ""
        raise ValueError(f"{model_dir} has no version{limit} to compare with")
    return versions[max(versions)]


def resolve_comparison_pair(new_dir: str | os.PathLike,
                            old_dir: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """``(new_version_dir, old_version_dir)``.

    ``new_dir`` is a model folder (its newest version) or a version folder.
    ``old_dir`` is a model folder or a version folder; when it is omitted, or
    names the folder the new version sits in, the old version is the newest one
    below the new version.
    """
    from mmrec_tf.export.serve_check import resolve_version_dir

    new_version_dir, new_number = resolve_version_dir(new_dir)
    if old_dir is None or Path(old_dir).resolve() in (new_version_dir.parent.resolve(), new_version_dir.resolve()):
        return new_version_dir, _older_version(new_version_dir.parent, new_number)
    old_version_dir, _ = resolve_version_dir(old_dir)
    return new_version_dir, old_version_dir


def _as_tensors(inputs: dict[str, np.ndarray]) -> dict:
    import tensorflow as tf

    return {name: tf.constant(value.astype(str) if value.dtype == object else value) for name, value in inputs.items()}


def _top_ids(signature_name: str, outputs: dict, inputs: dict[str, np.ndarray]) -> np.ndarray:
    if signature_name == "retrieve":
        return outputs["item_ids"].numpy().astype(str)
    scores = outputs["scores"].numpy()
    candidates = inputs["candidates"].astype(str)
    k = min(RANKING_TOP_K, candidates.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(candidates, order, axis=1)


def compare_versions(new_dir: str | os.PathLike, old_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Replays the new version's warm-up requests on both versions: ``retrieve``, or ``score`` for ranking exports.

    Args:
        new_dir: model folder (newest version) or version folder of the new export.
        old_dir: model folder or version folder to compare with; ``None`` (or the
            new version's own model folder) means the version just below it.

    Returns:
        ``{"new", "old", "signature", "k", "rows", "mean_overlap", "min_overlap",
        "identical_rows"}``; overlaps as defined in :func:`top_k_overlap`.

    Raises:
        ValueError: no older version, no comparable warm-up request, or the old
            version does not take the new version's request inputs.
        FileNotFoundError: a version or the new version's warm-up file is missing.
    """
    import tensorflow as tf

    from mmrec_tf.export.tf_serving import read_warmup_requests

    new_version_dir, old_version_dir = resolve_comparison_pair(new_dir, old_dir)
    new_model = tf.saved_model.load(str(new_version_dir))
    signature = "retrieve" if "retrieve" in new_model.signatures else "score"
    requests = [inputs for name, inputs in read_warmup_requests(new_version_dir) if name == signature]
    if not requests:
        raise ValueError(f"{new_version_dir}: its warm-up file has no {signature} request to compare with")
    old_model = tf.saved_model.load(str(old_version_dir))
    if signature not in old_model.signatures:
        raise ValueError(f"{old_version_dir} has no {signature!r} signature; it cannot answer "
                         f"{new_version_dir}'s requests")
    expected = set(old_model.signatures[signature].structured_input_signature[1])
    overlaps, identical = [], 0
    for inputs in requests:
        if expected != set(inputs):
            raise ValueError(f"{old_version_dir}'s {signature} signature takes {sorted(expected)}; the new "
                             f"version's requests send {sorted(inputs)}")
        tensors = _as_tensors(inputs)
        new_top = _top_ids(signature, new_model.signatures[signature](**tensors), inputs)
        old_top = _top_ids(signature, old_model.signatures[signature](**tensors), inputs)
        overlaps.append(top_k_overlap(new_top, old_top))
        identical += int(np.sum(np.all(new_top == old_top, axis=1)))
    overlap = np.concatenate(overlaps)
    return {
        "new": str(new_version_dir), "old": str(old_version_dir), "signature": signature,
        "k": int(new_top.shape[1]), "rows": int(overlap.size), "mean_overlap": float(overlap.mean()),
        "min_overlap": float(overlap.min()), "identical_rows": identical,
    }


def format_version_comparison(report: dict[str, Any]) -> str:
    """One line for the terminal.

    Example:

    >>> print(format_version_comparison({"new": "m/2", "old": "m/1", "signature": "retrieve", "k": 10,
    ...     "rows": 8, "mean_overlap": 0.8125, "min_overlap": 0.5, "identical_rows": 3}))
    compare m/2 with m/1 (retrieve, 8 warm-up rows): top-10 overlap mean 0.81, min 0.50; identical lists 3/8
    """
    return (f"compare {report['new']} with {report['old']} ({report['signature']}, {report['rows']} warm-up rows): "
            f"top-{report['k']} overlap mean {report['mean_overlap']:.2f}, min {report['min_overlap']:.2f}; "
            f"identical lists {report['identical_rows']}/{report['rows']}")
