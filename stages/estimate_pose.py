"""`estimate_pose` stage: 2D poses estimated from the raw videos -> data/<D>/poses.zarr (MediaPipe BlazePose).

For every sequence with a video (or frame folder) and no pose source in the index (`sequences: missing`), or
for every sequence with a video (`sequences: all`, the estimates then replace the dataset's pose files), run
MediaPipe Pose on the source frames at their original resolution, on the dataset timeline exactly as `decode`
resamples (`pipeline.skeletons.estimator`), and write

    {seq}/joints_2d (time, joint, coord)  [x, y, conf] float32, image pixels, layout blazepose33
                                          (conf = MediaPipe visibility in [0, 1]; no person: NaN, NaN, 0)
    {seq}/timestamp (time,)               float64 seconds of the source frame estimated for each instant

with attrs layout, joints, image_size [width, height], fps, n_frames, source, source_fps, n_source_frames,
n_estimated (source frames run through the model) and n_detected (timeline frames with a person). The store's
attrs record the params and the MediaPipe version.

Why a store and not per-sequence npz files: poses.zarr keeps the artifact contract every stage shares
(written completely or not at all, per-sequence fingerprints, provenance, any fsspec URL, one DVC output),
so `keypoints` reads it as one more pose source and DVC tracks it like frames.zarr. The store exists
(possibly empty) for every pose dataset: a dataset whose sequences all have pose files estimates nothing.

Length rule: as `decode`, a difference of at most `length_tolerance` frames from the index's n_frames is cut
or padded with the last frame; a larger one fails the sequence, naming it and its file. Incremental (video
content, timeline, params and MediaPipe version), resumable, parallel across sequences (one MediaPipe graph,
about one core, per worker process; `--scheduler` for dask).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from pipeline.context import StageContext
from pipeline.params import to_dict
from pipeline.runner import StageError, StageSummary, Task, run_incremental
from pipeline.sequences import read_index, visual_source
from pipeline.skeletons.estimator import LAYOUT, EstimatedPoses, EstimatorError, PoseSettings
from pipeline.store import ArtifactStore, absolute_url, fingerprint
from pipeline.video.timeline import fit_indices

log = logging.getLogger(__name__)
STAGE = "estimate_pose"
ARTIFACT = "poses"
# Below this share of frames with a person, a sequence is written but flagged in the log.
FEW_DETECTIONS = 0.5


@dataclass(frozen=True)
class EstimatePoseParams:
    """sequences: `missing` (sequences without a pose source) or `all` (every sequence with a video; the
    estimates replace the dataset's pose files in `keypoints`); model_complexity: MediaPipe's landmark
    model (only 1, pose_landmark_full, is bundled offline); static_image_mode: detect in every frame (no
    tracking); smooth_landmarks: MediaPipe's temporal filter (tracking mode only); min_detection_confidence,
    min_tracking_confidence: in [0, 1]; length_tolerance: as decode's."""

    sequences: Literal["missing", "all"]
    model_complexity: int
    static_image_mode: bool
    smooth_landmarks: bool
    min_detection_confidence: float
    min_tracking_confidence: float
    length_tolerance: int

    def settings(self) -> PoseSettings:
        return PoseSettings(self.model_complexity, self.static_image_mode, self.smooth_landmarks,
                            self.min_detection_confidence, self.min_tracking_confidence)


def run(ctx: StageContext) -> StageSummary:
    params = ctx.params(STAGE, EstimatePoseParams)
    index = read_index(ctx.index_path)
    tasks = make_tasks(index.rows(), params)
    check_params(params, ctx, needed=bool(tasks))
    if ctx.scheduler is None and (ctx.workers <= 1 or len(tasks) == 1):
        # one sequence at a time on this machine: a frame-level bar below the runner's, which moves per sequence
        tasks = [replace(t, payload={**t.payload, "frame_bar": True}) for t in tasks]
    if tasks:
        log.info("%s: %d of %d sequence(s) take estimated poses (estimate_pose.sequences: %s)",
                 ctx.name, len(tasks), len(index), params.sequences)
    else:
        log.info("%s: every sequence has a pose source; nothing to estimate (estimate_pose.sequences: %s)",
                 ctx.name, params.sequences)
    return run_incremental(
        absolute_url(ctx.artifact(ARTIFACT)),
        tasks,
        estimate_sequence,
        stage=STAGE,
        params=to_dict(params),
        dataset=ctx.name,
        provenance={"layout": LAYOUT, "estimator": _estimator_version(needed=bool(tasks))},
        scheduler=ctx.scheduler,
        workers=ctx.workers,
    )


def check_params(params: EstimatePoseParams, ctx: StageContext, *, needed: bool) -> None:
    """Refuse unusable settings before any work: confidences outside [0, 1], a negative tolerance, and (when
    MediaPipe is installed or needed) a model the wheel does not bundle."""
    from pipeline.skeletons.estimator import check_model, mediapipe_root

    where = f"{ctx.params_path}: {STAGE}"
    for key in ("min_detection_confidence", "min_tracking_confidence"):
        value = getattr(params, key)
        if not 0.0 <= value <= 1.0:
            raise StageError(f"{where}.{key} must lie in [0, 1], got {value}")
    if params.length_tolerance < 0:
        raise StageError(f"{where}.length_tolerance must be >= 0, got {params.length_tolerance}")
    try:
        # a dataset with pose files everywhere runs without MediaPipe
        if needed or _installed():
            mediapipe_root()
            check_model(params.model_complexity)
    except EstimatorError as err:
        raise StageError(f"{where}: {err}") from err


def make_tasks(rows, params: EstimatePoseParams) -> list[Task]:
    """One task per row to estimate (see the module doc); its fingerprint covers the visual source's content,
    the timeline, every param and the MediaPipe version."""
    tasks = []
    version = None
    for row in rows:
        source = row["video"] or row["frames_dir"]
        if not source or (params.sequences == "missing" and row["pose_format"]):
            continue
        version = version or _estimator_version(needed=True)
        payload = {
            "source": absolute_url(source),
            "indexed_as": str(source),
            "is_folder": not row["video"],
            "fps": float(row["fps"]),
            "n_frames": int(row["n_frames"]),
            "source_fps": float(row["source_fps"]),
            "params": to_dict(params),
        }
        # source_fps only counts for frame folders: a video is resampled by its own timestamps
        timeline = (payload["fps"], payload["n_frames"], payload["source_fps"] if payload["is_folder"] else None)
        # `version`: another MediaPipe release may give other landmarks
        fp = fingerprint(visual_source(row), timeline, payload["params"], version)
        tasks.append(Task(row["id"], fp, payload["n_frames"], payload, source=visual_source(row)))
    return tasks


def estimate_sequence(store_url: str, task: Task) -> int:
    """Estimate one sequence's poses and write them to the poses store; returns its frame count."""
    from pipeline.skeletons.estimator import estimate_video
    from pipeline.skeletons.layouts import get_layout
    from pipeline.video.reader import VideoError

    p = task.payload
    params = EstimatePoseParams(**p["params"])
    bar = _frame_bar(task) if p.get("frame_bar") else None
    try:
        poses = estimate_video(p["source"], fps=p["fps"], settings=params.settings(),
                               source_fps=p["source_fps"] if p["is_folder"] else None,
                               on_frame=None if bar is None else lambda: bar.update(1))
    except (VideoError, EstimatorError) as err:
        raise type(err)(f"sequence {task.seq_id}: {err}") from err
    finally:
        if bar is not None:
            bar.close()
    joints, timestamps = fit_length(poses, p["n_frames"], params.length_tolerance, task.seq_id, p["indexed_as"])
    detected = int((joints[..., 2] > 0).any(axis=-1).sum())
    if detected < FEW_DETECTIONS * len(joints):
        log.warning("%s: a person was found in only %d of %d frames of %s",
                    task.seq_id, detected, len(joints), p["indexed_as"])
    ArtifactStore(store_url, mode="a").write_sequence(
        task.seq_id,
        {"joints_2d": (joints, ("time", "joint", "coord")), "timestamp": (timestamps, ("time",))},
        fingerprint=task.fingerprint,
        source=task.source,
        attrs=_attrs(p, poses, len(joints), detected, list(get_layout(LAYOUT).joints)),
    )
    return len(joints)


def fit_length(poses: EstimatedPoses, n_frames: int, tolerance: int, seq_id: str, source: str
               ) -> tuple[np.ndarray, np.ndarray]:
    """(joints (n_frames, 33, 3), timestamps (n_frames,)): cut, or padded with the last frame, when within
    `tolerance` frames of `n_frames` (decode's rule, so both stages share one timeline); else StageError."""
    try:
        keep = fit_indices(len(poses.joints), n_frames, tolerance, seq_id=seq_id, source=source,
                           setting="estimate_pose.length_tolerance", verb="resamples")
    except ValueError as err:
        raise StageError(str(err)) from None
    return (poses.joints, poses.timestamps) if keep is None else (poses.joints[keep], poses.timestamps[keep])


def _attrs(p: dict[str, Any], poses: EstimatedPoses, n: int, detected: int, joints: list[str]) -> dict[str, Any]:
    return {
        "layout": LAYOUT,
        "joints": joints,
        "image_size": list(poses.image_size),
        "fps": p["fps"],
        "n_frames": n,
        "source": p["indexed_as"],
        "source_fps": p["source_fps"],
        "n_source_frames": poses.n_source_frames,
        "n_estimated": poses.n_estimated,
        "n_detected": detected,
    }


def _frame_bar(task: Task):
    """Frames estimated (and frames/s) of one sequence: about its timeline's length, source frames shown."""
    from pipeline.runner import progress

    # position 1, leave False: a line under the runner's per-sequence bar, cleared after each sequence
    return progress(total=task.n_frames, desc=task.seq_id, unit="frame", leave=False, position=1)


def _installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("mediapipe") is not None


def _estimator_version(*, needed: bool) -> str | None:
    """The MediaPipe distribution and version that made the poses (None when nothing is estimated)."""
    from pipeline.skeletons.estimator import mediapipe_version

    return mediapipe_version() if needed else None
