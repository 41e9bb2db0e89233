"""A user's own data as a folder of CSV files.

Layout::

    interactions.csv   user_id,item_id[,rating][,timestamp][,label]
      or train.csv + test.csv [+ valid.csv] with those columns (an explicit split)
    items.csv          item_id,<feature columns>      (optional)
    users.csv          user_id,<feature columns>      (optional)
    schema.yaml        optional: kinds of item/user columns, e.g.
                       items: {genres: multi_categorical, title: text}

Without ``schema.yaml`` a column's kind is inferred: all values numbers →
``numeric``; any value containing ``|`` → ``multi_categorical`` (split on
``|``); titles, names and descriptions (three or more words on average, or
mostly unique values) → ``text``; anything else → ``categorical``.
"""

from __future__ import annotations

import logging
import os
import pathlib

import pandas as pd
import yaml

from mmrec_tf.data.dataset import Dataset
from mmrec_tf.data.schema import Feature, FeatureKind, Schema
from mmrec_tf.data.sources.delimited import (
    Column,
    parse_float,
    parse_timestamp,
    read_delimited,
)
from mmrec_tf.errors import DataError

INTERACTION_FILE_COLUMNS = [
    Column("user_id"),
    Column("item_id"),
    Column("rating", parse_float, "a number", required=False),
    Column("timestamp", parse_timestamp, "integer unix seconds", required=False),
    Column("label", parse_float, "a number (0 or 1 for clicks)", required=False),
]
FEATURE_KINDS = ("categorical", "multi_categorical", "numeric", "text")
TITLE_COLUMNS = ("title", "name")

logger = logging.getLogger(__name__)


def load_folder(path: str | os.PathLike, skip_bad_rows: bool = False, name: str | None = None) -> Dataset:
    """Load a folder of CSV files (see the module docstring for the layout).

    Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "interactions.csv").write_text("user_id,item_id,timestamp\\nu1,a,1\\nu1,b,2\\n")
    >>> load_folder(d).num_interactions
    2
    """
    folder = pathlib.Path(path)
    if not folder.is_dir():
        raise DataError("expected a folder with interactions.csv (or train.csv and test.csv)", path=folder)
    declared = _read_schema_file(folder / "schema.yaml")
    tables, table_features = {}, []
    for role, file_name, id_column in (("item", "items.csv", "item_id"), ("user", "users.csv", "user_id")):
        file = folder / file_name
        if not file.is_file():
            tables[role] = None
            continue
        table, features_of_file = _read_feature_table(file, id_column, role, declared.get(f"{role}s", {}),
                                                      skip_bad_rows)
        tables[role] = table
        table_features += features_of_file
    items = tables["item"]
    known_items = set(items.index) if items is not None else None

    split_labels = None
    if (folder / "interactions.csv").is_file():
        interactions = _read_interactions(folder / "interactions.csv", known_items, skip_bad_rows)
    elif (folder / "train.csv").is_file() and (folder / "test.csv").is_file():
        parts, labels = [], []
        for split in ("train", "valid", "test"):
            file = folder / f"{split}.csv"
            if file.is_file():
                part = _read_interactions(file, known_items, skip_bad_rows)
                parts.append(part)
                labels += [split] * len(part)
        interactions = pd.concat(parts, ignore_index=True)
        split_labels = pd.Series(labels, name="split")
    else:
        raise DataError("expected interactions.csv, or train.csv and test.csv", path=folder)

    features = [Feature("user_id", "id", "user"), Feature("item_id", "id", "item")]
    if "rating" in interactions:
        features.append(Feature("rating", "label", "interaction"))
    if "timestamp" in interactions:
        features.append(Feature("timestamp", "timestamp", "interaction"))
    if "label" in interactions:
        features.append(Feature("label", "label", "interaction"))
    features += table_features
    title = next((c for c in TITLE_COLUMNS if items is not None and c in items.columns), None)
    return Dataset(
        name=name or folder.name, interactions=interactions, items=items, users=tables["user"],
        schema=Schema(features), source=str(folder), item_title_feature=title, split_labels=split_labels,
    )


def _read_interactions(file: pathlib.Path, known_items: set | None, skip_bad_rows: bool) -> pd.DataFrame:
    result = read_delimited(file, INTERACTION_FILE_COLUMNS, skip_bad_rows=skip_bad_rows)
    frame = result.frame
    if known_items is not None:
        unknown = ~frame["item_id"].isin(known_items).to_numpy()
        if unknown.any() and not skip_bad_rows:
            first = int(unknown.nonzero()[0][0])
            raise DataError(
                f"item id {frame['item_id'].iloc[first]!r} is not in items.csv "
                f"({int(unknown.sum())} interaction(s) refer to unknown items)",
                path=file, line=result.lines[first], field="item_id",
            )
        if unknown.any():
            logger.warning("%s: skipped %d interaction(s) whose item is not in items.csv", file, int(unknown.sum()))
            frame = frame[~unknown].reset_index(drop=True)
    if "timestamp" in frame:
        frame["timestamp"] = frame["timestamp"].astype("int64")
    for column in ("rating", "label"):
        if column in frame:
            frame[column] = frame[column].astype("float32")
    return frame


def _read_schema_file(file: pathlib.Path) -> dict:
    if not file.is_file():
        return {}
    with open(file, encoding="utf-8") as handle:
        try:
            content = yaml.safe_load(handle) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise DataError(f"not plain YAML data ({problem})", path=file,
                            line=mark.line + 1 if mark is not None else None) from None
    if not isinstance(content, dict) or set(content) - {"items", "users"}:
        raise DataError("expected a mapping with keys 'items' and/or 'users'", path=file)
    for section, kinds in content.items():
        if not isinstance(kinds, dict):
            raise DataError(f"{section}: expected a mapping of column name to kind", path=file, field=section)
        for column, kind in kinds.items():
            if kind not in FEATURE_KINDS:
                raise DataError(f"kind {kind!r} is not one of {FEATURE_KINDS}", path=file,
                                field=f"{section}.{column}")
    return content


def _read_feature_table(file, id_column, role, declared_kinds, skip_bad_rows):
    result = read_delimited(file, [Column(id_column)], extra_columns=True, skip_bad_rows=skip_bad_rows)
    raw = result.frame
    if raw[id_column].duplicated().any():
        row = int(raw[id_column].duplicated().to_numpy().nonzero()[0][0])
        raise DataError(f"duplicate {role} id {raw[id_column].iloc[row]!r}", path=file, line=result.lines[row],
                        field=id_column)
    unknown = set(declared_kinds) - set(raw.columns)
    if unknown:
        raise DataError(f"schema.yaml names column(s) {sorted(unknown)} that the file lacks", path=file)
    table = pd.DataFrame(index=pd.Index(raw[id_column], name=id_column))
    features = []
    for column in raw.columns:
        if column == id_column:
            continue
        kind = FeatureKind(declared_kinds.get(column) or infer_kind(raw[column]))
        table[column] = _convert(raw[column], kind, file, column, result.lines)
        features.append(Feature(column, kind, role))
    return table, features


def infer_kind(values: pd.Series) -> str:
    """Guess a column's feature kind from its text values (rules in the module docstring)."""
    present = values[values.str.strip() != ""]
    if present.empty:
        return "categorical"
    if pd.to_numeric(present, errors="coerce").notna().all():
        return "numeric"
    if present.str.contains("|", regex=False).any():
        return "multi_categorical"
    words = present.str.split().str.len().mean()
    if words >= 3 or present.nunique() > 0.5 * len(present):
        return "text"
    return "categorical"


def _convert(values: pd.Series, kind: FeatureKind, file, column: str, lines: list[int]) -> list:
    if kind == FeatureKind.NUMERIC:
        numbers = pd.to_numeric(values.where(values.str.strip() != ""), errors="coerce")
        bad = numbers.isna() & (values.str.strip() != "")
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise DataError(f"expected a number, got {values.iloc[row]!r}", path=file, line=lines[row], field=column)
        return numbers.astype("float32").tolist()
    if kind == FeatureKind.MULTI_CATEGORICAL:
        return [tuple(v.strip() for v in text.split("|") if v.strip()) for text in values]
    return [text.strip() for text in values]
