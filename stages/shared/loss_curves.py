"""Training loss curves as DVC plots: one TSV per logged term, written by `train`, drawn by `dvc plots`.

    losses/<dataset>/<method>/<term>.tsv             columns: step, epoch, <term>; one row per log record
    losses/<dataset>/<method>/<activity>/<term>.tsv  the same per model when train.multi_activity is false

One file per term, as DVCLive lays out its metrics, so that dvc.yaml declares the folder once (`x: step`; y is a
file's last column) and `dvc plots show` / `dvc plots diff` draw one chart per term, every revision or experiment
overlaid. Terms a method logs only in part of training (late fusion's stages) simply have shorter files. The
wall-clock fields of a log record stay out: these files are DVC outputs committed to git, so the same training
must write the same bytes on any run (timings are in the model folder's log.jsonl).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

ROOT = "losses"
INDEX = ("step", "epoch")
WALL_CLOCK = ("elapsed_s", "seq_per_s")


def folder(workdir: Path, dataset: str, method: str) -> Path:
    """`<workdir>/losses/<dataset>/<method>`: the curves of one training run (the DVC plots output)."""
    return Path(workdir) / ROOT / dataset / method


class LossCurves:
    """Appends each log record's terms to `folder/<term>.tsv`; `truncate` keeps a resumed run consistent."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def files(self) -> list[Path]:
        return sorted(self.folder.glob("*.tsv"))

    def truncate(self, step: int) -> None:
        """Drop rows past `step` (logged after the checkpoint a run resumes from; step 0: every row) and
        files left with no row. The folder exists afterwards, so DVC always finds the output."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for path in self.files():
            header, *rows = path.read_text().splitlines()
            kept = [row for row in rows if row and int(row.split("\t", 1)[0]) <= step]
            if kept:
                path.write_text("\n".join([header, *kept]) + "\n")
            else:
                path.unlink()

    def append(self, record: Mapping[str, Any]) -> None:
        """One row per numeric term of `record` ({"step", "epoch", "loss", <method's terms>, "lr", ...})."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for term in terms(record):
            path = self.folder / f"{term}.tsv"
            new = not path.is_file()
            with path.open("a") as fh:
                if new:
                    fh.write("\t".join([*INDEX, term]) + "\n")
                # repr: the shortest text that reads back as the same float, so a rerun writes the same bytes
                fh.write(f"{int(record['step'])}\t{int(record['epoch'])}\t{float(record[term])!r}\n")


def terms(record: Mapping[str, Any]) -> list[str]:
    """The record's plottable terms: finite numbers other than the index and wall-clock fields."""
    skip = set(INDEX) | set(WALL_CLOCK)
    # _safe_name: each term becomes a file name
    return [k for k, v in record.items() if k not in skip and _finite(v) and _safe_name(k)]


def read(path: Path) -> tuple[str, list[tuple[int, int, float]]]:
    """(term, [(step, epoch, value), ...]) of one curve file; a malformed row names the file and line."""
    header, *rows = Path(path).read_text().splitlines()
    columns = header.split("\t")
    if columns[:2] != list(INDEX) or len(columns) != 3:
        raise ValueError(f"{path}:1: expected the header 'step<TAB>epoch<TAB><term>', got {header!r}")
    points = []
    for n, row in enumerate(rows, start=2):
        try:
            step, epoch, value = row.split("\t")
            points.append((int(step), int(epoch), float(value)))
        except ValueError as err:
            raise ValueError(f"{path}:{n}: not a 'step<TAB>epoch<TAB>value' row: {row!r}") from err
    return columns[2], points


def prune(root: Path, keep: Iterable[Path]) -> None:
    """Delete curve files under `root` outside the `keep` folders (a switch between one model and one model
    per activity must not leave the other layout's curves behind)."""
    kept = {Path(k).resolve() for k in keep}
    for path in sorted(Path(root).rglob("*.tsv")):
        if path.parent.resolve() not in kept:
            path.unlink()


def _finite(value: Any) -> bool:
    # bool is a subclass of int: a logged flag is no curve
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _safe_name(term: str) -> bool:
    return term.replace("_", "").replace("-", "").replace(".", "").isalnum()
