"""Dataset adapters: each turns one manifest entry into index rows (see `pipeline.sequences`).

An adapter is a module with `index_rows(spec: DatasetSpec) -> (rows, label_names)`; `ADAPTERS` maps the
manifest `kind` to it. Adapters read only metadata and labels; frames and poses are read by the stages.
"""

from __future__ import annotations

import importlib
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from pipeline.manifest import DatasetSpec

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

ADAPTERS = {
    "penn_action": "pipeline.datasets.penn_action",
    "h2o": "pipeline.datasets.h2o",
    "ikea_asm": "pipeline.datasets.ikea_asm",
    "videos": "pipeline.datasets.videos",
}


class DatasetError(ValueError):
    """Raw data that cannot be indexed; the message names the dataset, the sequence and the file."""


def index_rows(spec: DatasetSpec) -> tuple[list[dict[str, Any]], dict[int, str]]:
    """All index rows of the dataset `spec` and its label names (index -> name)."""
    module = importlib.import_module(ADAPTERS[spec.kind])
    return module.index_rows(spec)


def csv_lines(table: pd.DataFrame, mask) -> str:
    """'lines 3, 9' of the rows selected by `mask` in a table read from a CSV with one header line."""
    import numpy as np

    lines = (np.flatnonzero(np.asarray(mask)) + 2).tolist()
    more = f" (+{len(lines) - 10} more)" if len(lines) > 10 else ""
    return f"line{'s' if len(lines) > 1 else ''} {', '.join(map(str, lines[:10]))}{more}"


def integer_column(table: pd.DataFrame, column: str, *, where: str) -> np.ndarray:
    """(N,) int64 of `table[column]`; DatasetError naming `where` (dataset and file), the lines and the
    values that are not integers."""
    import numpy as np
    import pandas as pd

    values = pd.to_numeric(table[column], errors="coerce")
    bad = values.isna() | (values != values.round())
    if bad.any():
        shown = ", ".join(repr(v) for v in table[column][bad].head(5))
        raise DatasetError(f"{where}: {csv_lines(table, bad)}: '{column}' must be an integer, got {shown}")
    return values.to_numpy(dtype=np.int64)


def refuse_duplicates(table: pd.DataFrame, key: list[str], *, where: str) -> None:
    """DatasetError naming the lines that repeat `key` (a second row for one sequence, or one frame)."""
    dup = table.duplicated(subset=key, keep=False)
    if dup.any():
        first = table[dup].iloc[0]
        what = ", ".join(f"{k} {first[k]}" for k in key)
        raise DatasetError(f"{where}: {csv_lines(table, dup)} repeat the same {' and '.join(key)} "
                           f"(e.g. {what}); keep one row each")


def relative_inside(entry: str, *, where: str) -> str:
    """`entry`, a path inside a dataset's root named by one of its files; DatasetError when it is absolute
    or climbs out with '..'."""
    path = PurePosixPath(entry)
    if not entry or path.is_absolute() or ".." in path.parts:
        raise DatasetError(f"{where}: entry {entry!r} must be a relative path inside the dataset's root (no '..')")
    return entry
