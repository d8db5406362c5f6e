"""Normalised poses as alignment features when no trained model is given (numpy; no files, no torch).

A frame of a video is described by its 2D skeleton (T, K, 3) [x, y, confidence] in image pixels, made
comparable across videos of other people, cameras and tempi:

- centred on the layout's root (hips) and divided by its scale (torso length): per frame for the centre,
  since the camera framing and a walking person's place in the image say nothing about the phase of the
  motion; per sequence (its median) for the scale, since a person's size is constant within a video while the
  2D torso length of a bending or turning body is not (a per-frame scale would warp every bent pose);
- smoothed in time by a Gaussian of `smooth_s` seconds (estimated keypoints jitter from frame to frame);
- with velocities (central differences of the smoothed pose) divided by the sequence's typical speed (a high
  quantile of per-frame speed), so a slower performer's velocities compare with a faster one's. Velocities
  tell apart poses that a motion passes twice in opposite directions (a golf downswing passes the backswing's
  poses in reverse; a squat goes down and up through the same poses): position alone cannot.

`pose_cost(a, b, velocity_weight)` is the (N, M) distance between every frame of A and of B: the root mean
square over joints of the position (and weighted velocity) differences, each joint weighted by the product
of its confidences in the two frames, so an occluded joint counts little and a missing one not at all.
`mirror_joints` gives the mirror image of a skeleton (x flipped, left and right swapped), to align a
left-handed with a right-handed performance or videos filmed from opposite sides.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.skeletons.layouts import Skeleton

_EPS = 1e-6


@dataclass(frozen=True)
class PoseFeatures:
    """position (T, K, 2) in torso lengths, root at the origin; velocity (T, K, 2) in units of the sequence's
    typical speed; weight (T, K) confidence in [0, 1], 0 for a missing joint."""

    position: np.ndarray
    velocity: np.ndarray
    weight: np.ndarray

    def __len__(self) -> int:
        return len(self.position)

    def flat(self, velocity_weight: float) -> np.ndarray:
        """(T, K * 4) feature vectors [weighted position, weighted velocity] (e.g. for a plain Euclidean DTW)."""
        w = np.sqrt(self.weight)[..., None]
        parts = [self.position * w, velocity_weight * self.velocity * w]
        return np.concatenate([p.reshape(len(self), -1) for p in parts], axis=1).astype(np.float32)


def pose_features(
    joints: np.ndarray, layout: Skeleton, *, fps: float, smooth_s: float, speed_quantile: float,
    min_confidence: float,
) -> PoseFeatures:
    """joints (T, K, 3) [x, y, confidence] pixels in `layout` -> PoseFeatures (module docstring).

    min_confidence: joints below it count as missing. A frame without its root or scale joints is centred on
    the mean of its confident joints; a sequence without any is left uncentred, unscaled (weight 0 anyway)."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1] != layout.n_joints or joints.shape[2] != 3:
        raise ValueError(f"joints must be (T, {layout.n_joints}, 3) for layout {layout.name}, got {joints.shape}")
    xy, weight = _split(joints, min_confidence)
    xy, weight = _fill_gaps(xy, weight)
    centre = _centre(xy, weight, layout)
    scale = _sequence_scale(xy, weight, layout)
    position = (xy - centre[:, None, :]) / scale
    position = gaussian_smooth(position, smooth_s * fps)
    velocity = np.gradient(position, axis=0) * fps if len(position) > 1 else np.zeros_like(position)
    velocity /= _typical_speed(velocity, weight, speed_quantile)
    return PoseFeatures(position, velocity, weight)


def _split(joints: np.ndarray, min_confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """(T, K, 3) -> coordinates (T, K, 2) (0 where missing), weights (T, K) in [0, 1]."""
    xy, conf = joints[..., :2], np.clip(np.nan_to_num(joints[..., 2]), 0.0, 1.0)
    ok = np.isfinite(xy).all(-1) & (conf > 0) & (conf >= min_confidence)
    return np.where(ok[..., None], xy, 0.0), np.where(ok, conf, 0.0)


def _fill_gaps(xy: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates of a missing joint interpolated in time from its neighbouring frames (its weight stays 0),
    so that smoothing and velocities do not see a jump to the origin."""
    out = xy.copy()
    t = np.arange(len(xy))
    for k in range(xy.shape[1]):
        seen = weight[:, k] > 0
        if seen.any() and not seen.all():
            for d in range(2):
                out[:, k, d] = np.interp(t, t[seen], xy[seen, k, d])
    return out, weight


def _group(xy: np.ndarray, weight: np.ndarray, joints: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Confidence-weighted mean (T, 2) of a joint group and its total weight (T,)."""
    w = weight[:, list(joints)]
    total = w.sum(1)
    return (xy[:, list(joints)] * w[..., None]).sum(1) / np.maximum(total, _EPS)[:, None], total


def _centre(xy: np.ndarray, weight: np.ndarray, layout: Skeleton) -> np.ndarray:
    """(T, 2) per-frame root, falling back to the mean of the frame's confident joints."""
    root, w_root = _group(xy, weight, layout.root)
    everything, _ = _group(xy, weight, tuple(range(layout.n_joints)))
    return np.where((w_root > 0)[:, None], root, everything)


def _sequence_scale(xy: np.ndarray, weight: np.ndarray, layout: Skeleton) -> float:
    """Median torso length (scale joints) over the frames that have it; else the RMS spread of the joints."""
    top, w_top = _group(xy, weight, layout.scale[0])
    bottom, w_bottom = _group(xy, weight, layout.scale[1])
    ok = (w_top > 0) & (w_bottom > 0)
    lengths = np.linalg.norm(top - bottom, axis=1)[ok]
    if len(lengths) and np.median(lengths) > _EPS:
        return float(np.median(lengths))
    seen = weight > 0
    if not seen.any():
        return 1.0
    spread = np.sqrt(((xy - _centre(xy, weight, layout)[:, None]) ** 2).sum(-1)[seen].mean())
    return float(spread) if spread > _EPS else 1.0


def gaussian_smooth(x: np.ndarray, sigma_frames: float) -> np.ndarray:
    """x (T, ...) smoothed along time by a Gaussian of `sigma_frames` (edges: nearest value repeated)."""
    if sigma_frames <= 0 or len(x) < 2:
        return x
    radius = max(1, int(round(3 * sigma_frames)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma_frames) ** 2)
    taps /= taps.sum()
    padded = np.concatenate([np.repeat(x[:1], radius, 0), x, np.repeat(x[-1:], radius, 0)])
    out = np.zeros_like(x)
    for k, tap in enumerate(taps):
        out += tap * padded[k : k + len(x)]
    return out


def _typical_speed(velocity: np.ndarray, weight: np.ndarray, quantile: float) -> float:
    """A high quantile of the per-frame RMS joint speed: the speed of the motion itself, whatever share of the
    video is spent standing still."""
    w = weight.sum(1)
    speed = np.sqrt(((velocity**2).sum(-1) * weight).sum(1) / np.maximum(w, _EPS))[w > 0]
    if not len(speed):
        return 1.0
    typical = float(np.quantile(speed, quantile))
    return typical if typical > _EPS else 1.0


def pose_cost(a: PoseFeatures, b: PoseFeatures, *, velocity_weight: float) -> np.ndarray:
    """(N, M) confidence-weighted RMS distance between every frame of A and every frame of B:

        C_ij = sqrt( sum_k w_ik w_jk (|p_ik - p_jk|^2 + v^2 |u_ik - u_jk|^2) / sum_k w_ik w_jk )

    with p positions, u velocities, v = velocity_weight. A pair of frames sharing no confident joint gets the
    largest finite distance of the matrix (nothing says they match)."""
    wa, wb = a.weight, b.weight  # (N, K), (M, K)
    num = np.zeros((len(a), len(b)))
    for xa, xb, scale in ((a.position, b.position, 1.0), (a.velocity, b.velocity, velocity_weight**2)):
        if scale == 0:
            continue
        sq_a = (xa**2).sum(-1)  # (N, K)
        sq_b = (xb**2).sum(-1)
        cross = (xa * wa[..., None]).reshape(len(a), -1) @ (xb * wb[..., None]).reshape(len(b), -1).T  # BLAS
        num += scale * ((sq_a * wa) @ wb.T + wa @ (sq_b * wb).T - 2 * cross)
    den = wa @ wb.T
    cost = np.sqrt(np.maximum(num, 0.0) / np.maximum(den, _EPS))
    shared = den > _EPS
    if not shared.all():
        cost[~shared] = cost[shared].max() if shared.any() else 1.0
    return cost


def embedding_cost(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, D), (M, D) embeddings -> (N, M) Euclidean distances."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    sq = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(sq, 0.0))


def mirror_joints(joints: np.ndarray, layout: Skeleton, width: float) -> np.ndarray:
    """(T, K, 3) [x, y, conf] -> the mirror image: x -> width - x, left and right joints swapped (what a pose
    estimator reports on the horizontally flipped video)."""
    out = np.asarray(joints)[:, list(layout.joint_flip_permutation)].copy()
    out[..., 0] = width - out[..., 0]
    return out
