"""Helpers shared by the benchmark scripts: locating real data and printing tables."""

from __future__ import annotations

import os
import pathlib
import statistics

REPOSITORY = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = pathlib.Path(os.environ.get("MMREC_SHARED_DATA", REPOSITORY.parent / "shared" / "data"))


def movielens_path(given: str | None) -> str | None:
    """A GroupLens ml-100k folder if given or present in the shared data, else None (recbole wheel)."""
    if given:
        return given
    folder = SHARED_DATA / "ml-100k"
    return str(folder) if (folder / "u.data").is_file() else None


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print(line(row))
