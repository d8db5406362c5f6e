"""`decode` stage: videos / frame folders -> data/<dataset>/frames.zarr, on the dataset's timeline.

Per sequence with a `video` or `frames_dir` in the index: decode, resample to the dataset fps by the
source's real timestamps (frame folders: uniform at `source_fps`), resize the shorter side to
`resize_short`, centre-crop `crop` x `crop`, and write

    {seq}/rgb        (time, y, x, channel) uint8
    {seq}/timestamp  (time,) float64, seconds: the source frame shown at each dataset instant

with attrs fps, n_frames, source, source_fps, n_source_frames.

Length rule. Keypoints and labels of a sequence have the index's `n_frames`, so frames must too. The
decoded length can differ slightly from it when the index counted frames from container metadata
(rounded durations, a missing last frame). A difference of at most `length_tolerance` frames is
reconciled deterministically: extra frames are dropped from the end, missing ones repeat the last frame
(and its timestamp), with a warning. A larger difference fails the sequence, naming it and its file.

Sequences without a visual source (label-only datasets) are skipped with a log line; a dataset with
none at all is an error. Sequences run in parallel through `pipeline.runner.run_incremental`
(local processes, or a dask.distributed scheduler).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from pipeline.context import StageContext
from pipeline.params import to_dict
from pipeline.runner import StageError, StageSummary, Task, run_incremental
from pipeline.sequences import read_index, visual_source
from pipeline.store import ArtifactStore, absolute_url, fingerprint
from pipeline.video.reader import Clip, Geometry, VideoError, read_clip
from pipeline.video.timeline import fit_indices

log = logging.getLogger(__name__)
STAGE = "decode"
ARTIFACT = "frames"


@dataclass(frozen=True)
class DecodeParams:
    """resize_short: shorter side after resizing (px); crop: centre square (px), DINOv2's eval transform is
    256 -> 224; interpolation: area | bilinear | bicubic; length_tolerance: frames of disagreement with the
    index that are reconciled (see module doc); compression: zstd | none for the stored frames."""

    resize_short: int
    crop: int
    interpolation: Literal["area", "bilinear", "bicubic"]
    length_tolerance: int
    compression: Literal["zstd", "none"]

    def geometry(self) -> Geometry:
        return Geometry(self.resize_short, self.crop, self.interpolation)


def run(ctx: StageContext) -> StageSummary:
    params = ctx.params(STAGE, DecodeParams)
    try:
        # checked up front: bad params fail the run once, not each sequence in a worker
        params.geometry()
    except ValueError as err:
        raise StageError(f"{ctx.params_path}: decode: {err}") from err
    index = read_index(ctx.index_path)
    tasks = make_tasks(index.rows(), params)
    skipped = len(index) - len(tasks)
    if not tasks:
        raise StageError(
            f"{ctx.name}: no sequence has a video or a frame folder ({len(index)} indexed from labels/poses only); "
            f"point the manifest's root at a copy of the dataset with its videos or frames to decode it"
        )
    if skipped:
        log.info("%s: %d sequence(s) have no video or frame folder; decoding the other %d", ctx.name, skipped, len(tasks))
    return run_incremental(
        absolute_url(ctx.artifact(ARTIFACT)),
        tasks,
        decode_sequence,
        stage=STAGE,
        params=to_dict(params),
        dataset=ctx.name,
        scheduler=ctx.scheduler,
        workers=ctx.workers,
    )


def make_tasks(rows, params: DecodeParams) -> list[Task]:
    """One task per index row with a visual source; its fingerprint covers the source files, the timeline
    (fps, n_frames) and every decode param."""
    tasks = []
    for row in rows:
        source = row["video"] or row["frames_dir"]
        if not source:
            continue
        payload = {
            "source": absolute_url(source),  # where workers read it (from any working directory)
            "indexed_as": str(source),  # what the artifact records, so its bytes do not depend on where the clone is
            "is_folder": not row["video"],
            "fps": float(row["fps"]),
            "n_frames": int(row["n_frames"]),
            "source_fps": float(row["source_fps"]),
            "params": to_dict(params),
        }
        # content, not location: a clone that keeps its raw data elsewhere reuses the same frames
        fp = fingerprint(visual_source(row), payload["fps"], payload["n_frames"], payload["params"])
        tasks.append(Task(row["id"], fp, payload["n_frames"], payload, source=visual_source(row)))
    return tasks


def decode_sequence(store_url: str, task: Task) -> int:
    """Decode one sequence and write it to the frames store; returns its frame count."""
    p = task.payload
    params = DecodeParams(**p["params"])
    try:
        clip = read_clip(
            p["source"], fps=p["fps"], geometry=params.geometry(), source_fps=p["source_fps"] if p["is_folder"] else None
        )
    except VideoError as err:
        raise VideoError(f"sequence {task.seq_id}: {err}") from err
    rgb, timestamps = fit_length(clip, p["n_frames"], params.length_tolerance, task.seq_id, p["source"])
    ArtifactStore(store_url, mode="a").write_sequence(
        task.seq_id,
        {"rgb": (rgb, ("time", "y", "x", "channel")), "timestamp": (timestamps, ("time",))},
        fingerprint=task.fingerprint,
        source=task.source,
        attrs=_attrs(p, clip, len(rgb)),
        compression=None if params.compression == "none" else params.compression,
    )
    return len(rgb)


def fit_length(clip: Clip, n_frames: int, tolerance: int, seq_id: str, source: str) -> tuple[np.ndarray, np.ndarray]:
    """(rgb (n_frames, H, W, 3), timestamps (n_frames,)): the clip cut or padded with its last frame when
    its length is within `tolerance` of `n_frames`; otherwise VideoError naming the sequence and file."""
    try:
        keep = fit_indices(len(clip.rgb), n_frames, tolerance, seq_id=seq_id, source=source,
                           setting="decode.length_tolerance")
    except ValueError as err:
        raise VideoError(str(err)) from None
    return (clip.rgb, clip.timestamps) if keep is None else (clip.rgb[keep], clip.timestamps[keep])


def _attrs(p: dict[str, Any], clip: Clip, n: int) -> dict[str, Any]:
    return {
        "fps": p["fps"],
        "n_frames": n,
        "source": p["indexed_as"],
        "source_fps": clip.source_fps,
        "n_source_frames": clip.n_source_frames,
    }
