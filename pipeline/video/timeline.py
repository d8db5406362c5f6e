"""Resampling a sequence's source frames onto the dataset's fixed frame rate, by timestamps.

Every stage maps target frame i (time i / fps) to the last source frame shown at or before that time,
so decoded frames, keypoints and per-frame labels of a sequence share one timeline.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

# Tolerance for timestamps that land a hair before a frame boundary (container rounding).
_EPS = 1e-6


def resample_indices(source_times: np.ndarray, fps: float) -> np.ndarray:
    """Indices of the source frames to keep so that the result plays at `fps`.

    source_times: (N,) presentation times in seconds, increasing. The sequence lasts until the last
    frame's time plus one median frame interval. Returns (T,) int64 indices into source_times, T =
    number of target instants i / fps inside that duration; a source frame may repeat (upsampling) or
    be skipped (downsampling).
    """
    source_times = np.asarray(source_times, dtype=np.float64)
    n = len(source_times)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if np.any(np.diff(source_times) < 0):
        raise ValueError("source timestamps must be non-decreasing")
    step = float(np.median(np.diff(source_times))) if n > 1 else 1.0 / fps
    start = source_times[0]
    duration = source_times[-1] - start + step
    n_target = max(1, int(np.floor(duration * fps + _EPS)))
    targets = start + np.arange(n_target) / fps
    idx = np.searchsorted(source_times, targets + _EPS, side="right") - 1
    return np.clip(idx, 0, n - 1).astype(np.int64)


def uniform_times(n_frames: int, fps: float) -> np.ndarray:
    """(n_frames,) timestamps of a constant-rate source (frame folders, per-frame pose files)."""
    return np.arange(n_frames, dtype=np.float64) / fps


def fit_indices(n: int, n_frames: int, tolerance: int, *, seq_id: str, source: str, setting: str,
                verb: str = "decodes") -> np.ndarray | None:
    """Indices (n_frames,) into a source's n frames that give the index's frame count: None when they already
    agree; the extra frames dropped, or the last frame repeated, when they are within `tolerance` of each other
    (a container's last frame, a rounding of its duration); else ValueError naming the sequence, the file and the
    `setting` that allows more. decode and estimate_pose share it, so their arrays share one timeline."""
    if n == n_frames:
        return None
    if abs(n - n_frames) > tolerance:
        raise ValueError(f"sequence {seq_id}: {source} {verb} to {n} frames at the dataset fps but the index says "
                         f"{n_frames} (more than {setting}={tolerance} apart: truncated file, or a stale index - "
                         f"rerun `pipeline index`)")
    log.warning("%s: %s %s to %d frames, index has %d: %s", seq_id, source, verb, n, n_frames,
                "dropping the extra ones" if n > n_frames else "repeating the last frame")
    return np.minimum(np.arange(n_frames), n - 1)
