"""The "no learning" baselines: normalised 2D keypoints, and normalised time t/T.

Keypoints are centred on the layout's root joint(s) and divided by the sequence's body size (the median
over frames of the distance between the layout's two scale joint groups), so that where a person stands
in the image and how large they appear do not count; missing joints (confidence 0 or NaN coordinates) are
placed at the root (0, 0) after normalisation.
"""

from __future__ import annotations

import numpy as np

from pipeline.skeletons.layouts import Skeleton


def _confident(joints_2d: np.ndarray) -> np.ndarray:
    """(T, K) True where a joint is present: confidence > 0 and finite coordinates."""
    return (joints_2d[..., 2] > 0) & np.isfinite(joints_2d[..., :2]).all(-1)


def _group_mean(xy: np.ndarray, ok: np.ndarray, joints: tuple[int, ...]) -> np.ndarray:
    """(T, 2) mean position of the present joints among `joints`, NaN where none is present."""
    sel = ok[:, joints]
    total = np.where(sel[..., None], xy[:, joints], 0.0).sum(1)
    count = sel.sum(1)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def skeleton_scale(joints_2d: np.ndarray, layout: Skeleton) -> float:
    """Body size of a sequence (T, K, 3): median distance between the layout's scale joint groups.

    Falls back to the median per-frame extent (max side of the joints' box) when the scale joints are
    never both present, and to 1 for a sequence with no joints at all.
    """
    xy, ok = joints_2d[..., :2].astype(np.float64), _confident(joints_2d)
    a, b = _group_mean(xy, ok, layout.scale[0]), _group_mean(xy, ok, layout.scale[1])
    dist = np.linalg.norm(a - b, axis=1)
    dist = dist[np.isfinite(dist) & (dist > 0)]
    if len(dist):
        return float(np.median(dist))
    hi = np.where(ok[..., None], xy, -np.inf).max(1)  # (T, 2)
    lo = np.where(ok[..., None], xy, np.inf).min(1)
    extent = (hi - lo).max(1)
    extent = extent[np.isfinite(extent) & (extent > 0)]
    return float(np.median(extent)) if len(extent) else 1.0


def normalise_keypoints(joints_2d: np.ndarray, layout: Skeleton) -> np.ndarray:
    """(T, K, 3) [x, y, conf] -> (T, 2K) float32: root-centred, scale-normalised, flattened (x, y) per joint.

    A frame whose root joints are all missing is centred on the nearest frame's root (the sequence's
    median root if no frame has one).
    """
    if joints_2d.ndim != 3 or joints_2d.shape[1:] != (layout.n_joints, 3):
        raise ValueError(f"joints_2d has shape {joints_2d.shape}, expected (T, {layout.n_joints}, 3) for {layout.name}")
    xy, ok = joints_2d[..., :2].astype(np.float64), _confident(joints_2d)
    root = _fill_missing_rows(_group_mean(xy, ok, layout.root))
    out = (xy - root[:, None, :]) / skeleton_scale(joints_2d, layout)
    out[~ok] = 0.0
    return out.reshape(len(out), -1).astype(np.float32)


def _fill_missing_rows(root: np.ndarray) -> np.ndarray:
    """(T, 2) with NaN rows -> each row takes the nearest present row (zeros when none is present)."""
    present = np.flatnonzero(np.isfinite(root).all(1))
    if len(present) == 0:
        return np.zeros_like(root)
    t = np.arange(len(root))
    left = present[np.clip(np.searchsorted(present, t, side="right") - 1, 0, None)]
    right = present[np.clip(np.searchsorted(present, t), None, len(present) - 1)]
    nearest = np.where(np.abs(t - left) <= np.abs(right - t), left, right)
    return root[nearest]


def time_feature(n_frames: int) -> np.ndarray:
    """(T, 1) float32 normalised time t / (T - 1) in [0, 1] (0 for a one-frame sequence)."""
    return (np.arange(n_frames, dtype=np.float32) / max(n_frames - 1, 1))[:, None]
