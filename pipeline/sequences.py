"""The sequence index: one table per dataset (`data/<dataset>/index.parquet`), written by the `index` stage.

One row per sequence:

| column | type | meaning |
|---|---|---|
| id | str | unique sequence id (letters, digits, `_-.`); the group name in every artifact store |
| dataset | str | manifest name |
| split | str | `train`, `val` or `test` |
| activity | str | activity / action class |
| n_frames | int | frames on the dataset timeline (at `fps`) |
| fps | float | the dataset frame rate every artifact uses |
| source_fps | float | frame rate of the source (video or frame folder) |
| n_source_frames | int | frames in the source |
| video | str | video file, or "" |
| frames_dir | str | folder of frame images, or "" |
| pose | str | pose source (file or folder), or "" |
| pose_format | str | how to read `pose`: `penn_mat`, `openpose_json`, `h2o_hand_pose`, `npz`, or "" |
| fingerprint | str | digest of all source files; changes when any of them changes |
| video_fingerprint | str | digest of the visual source (video / frame folder) only, or "" |
| pose_fingerprint | str | digest of the pose source only, or "" |
| labels | list[int] or null | per-frame phase/step labels on the dataset timeline (-1 = unlabelled) |

Label names live in the file's metadata (`label_names`, index -> name). Frames are mapped from source to
dataset timeline by `pipeline.video.timeline.resample_indices`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.store import sequence_id_problem

COLUMNS = {
    "id": "string",
    "dataset": "string",
    "split": "string",
    "activity": "string",
    "n_frames": "int64",
    "fps": "float64",
    "source_fps": "float64",
    "n_source_frames": "int64",
    "video": "string",
    "frames_dir": "string",
    "pose": "string",
    "pose_format": "string",
    "fingerprint": "string",
    "video_fingerprint": "string",
    "pose_fingerprint": "string",
}
SPLITS = ("train", "val", "test")
POSE_FORMATS = ("", "penn_mat", "openpose_json", "h2o_hand_pose", "npz")
HASH_WHOLE_BELOW = 8 * 2**20


class IndexTableError(ValueError):
    """The index is missing, malformed, or inconsistent (duplicate ids, bad labels)."""


@dataclass(frozen=True)
class SequenceIndex:
    """The index table of one dataset plus its label names."""

    table: pd.DataFrame
    label_names: dict[int, str]
    path: Path | None = None

    def __len__(self) -> int:
        return len(self.table)

    @property
    def ids(self) -> list[str]:
        return list(self.table["id"])

    def rows(self) -> Iterator[dict[str, Any]]:
        for row in self.table.to_dict("records"):
            yield row

    def row(self, seq_id: str) -> dict[str, Any]:
        hit = self.table[self.table["id"] == seq_id]
        if hit.empty:
            raise KeyError(f"sequence {seq_id} is not in the index {self.path}")
        return hit.iloc[0].to_dict()

    def split(self, name: str) -> SequenceIndex:
        return SequenceIndex(self.table[self.table["split"] == name].reset_index(drop=True), self.label_names, self.path)

    def labels(self, seq_id: str) -> np.ndarray | None:
        """(n_frames,) int64 per-frame labels, or None when the sequence has none."""
        value = self.row(seq_id)["labels"]
        return None if value is None else np.asarray(value, dtype=np.int64)

    @property
    def activities(self) -> list[str]:
        return sorted(self.table["activity"].unique())


def make_table(rows: Iterable[dict[str, Any]], *, where: str = "index") -> pd.DataFrame:
    """Build and validate an index table from adapter rows (missing optional columns default to "");
    `where` (the dataset) starts every error message."""
    rows = list(rows)
    if not rows:
        raise IndexTableError(f"{where}: no sequences found")
    df = pd.DataFrame(rows)
    for col in ("video", "frames_dir", "pose", "pose_format", "video_fingerprint", "pose_fingerprint"):
        if col not in df:
            df[col] = ""
        # a <NA> would make `row.get("video") or ...` raise (bool(pd.NA) is ambiguous)
        df[col] = df[col].fillna("")
    if "labels" not in df:
        df["labels"] = None
    if "fingerprint" not in df:
        df["fingerprint"] = [combine(v, p) for v, p in zip(df["video_fingerprint"], df["pose_fingerprint"])]
    missing = [c for c in COLUMNS if c not in df]
    if missing:
        raise IndexTableError(f"index rows lack column(s) {missing}")
    # `labels` stays out of the cast: lists (or None) have no pandas dtype
    df = df[list(COLUMNS) + ["labels"]].astype(COLUMNS)
    validate(df, where)
    # sorted by id: the order in which an adapter listed the files must not change the index
    return df.sort_values("id", kind="stable").reset_index(drop=True)


def validate(df: pd.DataFrame, where: str = "index") -> None:
    for row in df.itertuples():
        problem = sequence_id_problem(row.id)
        if problem:  # refused here, before any stage decodes a frame, rather than by the store's first write
            raise IndexTableError(f"{where}: sequence id {row.id!r} of {source_file(row._asdict())} is not "
                                  f"usable: {problem}; rename the file")
    dup = df["id"][df["id"].duplicated()].unique().tolist()
    if dup:
        raise IndexTableError(f"{where}: duplicate sequence id(s) {dup[:10]}")
    bad_split = sorted(set(df["split"]) - set(SPLITS))
    if bad_split:
        raise IndexTableError(f"{where}: unknown split(s) {bad_split}; use {SPLITS}")
    bad_fmt = sorted(set(df["pose_format"]) - set(POSE_FORMATS))
    if bad_fmt:
        raise IndexTableError(f"{where}: unknown pose_format(s) {bad_fmt}")
    for row in df.itertuples():
        if row.n_frames < 1:
            raise IndexTableError(f"{where}: sequence {row.id} has {row.n_frames} frames")
        if row.labels is not None and len(row.labels) != row.n_frames:
            raise IndexTableError(
                f"{where}: sequence {row.id} has {len(row.labels)} labels for {row.n_frames} frames"
            )


def write_index(df: pd.DataFrame, path: str | Path, label_names: dict[int, str]) -> None:
    """Write atomically (temp file, then rename) so a crash never leaves a half-written index."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(df, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[b"label_names"] = json.dumps({str(k): v for k, v in sorted(label_names.items())}).encode()
    table = table.replace_schema_metadata(meta)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)


def read_index(path: str | Path) -> SequenceIndex:
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise IndexTableError(f"index not found: {path} (run `pipeline index --dataset <name>` first)")
    table = pq.read_table(path)
    meta = table.schema.metadata or {}
    names = json.loads(meta.get(b"label_names", b"{}"))
    df = table.to_pandas()
    df["labels"] = [None if v is None else np.asarray(v, dtype=np.int64) for v in df["labels"]]
    df = df.astype(COLUMNS)
    return SequenceIndex(df, {int(k): v for k, v in names.items()}, path)


def file_fingerprint(*paths: str | Path) -> str:
    """Digest of files' contents (whole file below 8 MiB; else size + first and last 4 MiB)."""
    h = hashlib.sha256()
    for p in paths:
        p = Path(p)
        size = p.stat().st_size
        # the size also catches a length change in a large file's unhashed middle
        h.update(f"{p.name}:{size}".encode())
        with p.open("rb") as fh:
            if size < HASH_WHOLE_BELOW:
                h.update(fh.read())
            else:
                h.update(fh.read(HASH_WHOLE_BELOW // 2))
                fh.seek(-HASH_WHOLE_BELOW // 2, 2)
                h.update(fh.read())
    return h.hexdigest()[:32]


def folder_fingerprint(folder: str | Path, pattern: str = "*") -> str:
    """Digest of a folder's file names and sizes (cheap for folders of thousands of frames)."""
    h = hashlib.sha256()
    for p in sorted(Path(folder).glob(pattern)):
        if p.is_file():
            h.update(f"{p.name}:{p.stat().st_size};".encode())
    return h.hexdigest()[:32]


def source_file(row: dict[str, Any]) -> str:
    """The file (or folder) a sequence comes from, for messages: its video, frame folder or pose source."""
    return row.get("video") or row.get("frames_dir") or row.get("pose") or "(no source file)"


def visual_source(row: dict[str, Any]) -> str:
    """The index's fingerprint of a sequence's video or frame folder: what frames (and features) derive from."""
    # an adapter that gives only the combined fingerprint: any change to the sequence's sources then counts
    return row.get("video_fingerprint") or row["fingerprint"]


def pose_source(row: dict[str, Any]) -> str:
    """The index's fingerprint of a sequence's pose source: what keypoints (and heatmaps) derive from."""
    return row.get("pose_fingerprint") or row["fingerprint"]


def combine(*fingerprints: str) -> str:
    # the separator keeps ("ab", "c") and ("a", "bc") apart
    return hashlib.sha256("|".join(fingerprints).encode()).hexdigest()[:32]
