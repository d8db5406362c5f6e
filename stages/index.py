"""`index` stage: one table of a dataset's sequences -> data/<dataset>/index.parquet.

Reads only metadata and labels through the dataset's adapter (`pipeline.datasets`), validates the
table (unique ids that are safe group and file names, labels that fit their sequence, at least
`min_frames` frames) and writes it atomically, so a failed run leaves the previous index untouched.
Every refusal names the dataset, the sequence and its file.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

from pipeline.context import StageContext
from pipeline.datasets import DatasetError, index_rows
from pipeline.sequences import make_table, source_file, write_index

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexParams:
    """min_frames: sequences shorter than this (on the dataset timeline) are an error, not silently kept."""

    min_frames: int


def _relative_paths(row: dict) -> dict:
    """Source paths relative to the working directory (the repository root, where DVC runs stages), so an
    index pulled into another clone still points at the data when the layout beside the clone matches."""
    out = dict(row)
    for key in ("video", "frames_dir", "pose"):
        if out.get(key):
            out[key] = os.path.relpath(out[key])
    return out


def run(ctx: StageContext) -> None:
    params = ctx.params("index", IndexParams)
    start = time.perf_counter()
    rows, label_names = index_rows(ctx.dataset)
    short = [r for r in rows if r["n_frames"] < params.min_frames]
    if short:
        listed = ", ".join(f"{r['id']} ({r['n_frames']} frames, {source_file(r)})" for r in short[:10])
        raise DatasetError(
            f"{ctx.name}: {len(short)} sequence(s) shorter than index.min_frames={params.min_frames}: {listed}"
        )
    table = make_table([_relative_paths(r) for r in rows], where=f"{ctx.name} ({ctx.dataset.manifest})")
    write_index(table, ctx.index_path, label_names)
    seconds = time.perf_counter() - start
    splits = table.groupby("split").size().to_dict()
    log.info(
        "%s: indexed %d sequences (%s), %d activities, %d frames in %.1f s -> %s",
        ctx.name, len(table), ", ".join(f"{k} {v}" for k, v in sorted(splits.items())),
        table["activity"].nunique(), int(table["n_frames"].sum()), seconds, ctx.index_path,
    )
