"""Joint and limb heatmaps of 2D skeletons on a per-sequence crop grid (DESIGN.md Sec. 3, LA2DS Sec. 3.1).

A sequence's crop box (x0, y0, x1, y1) is mapped onto an S x S grid, a joint at image point (x, y) having
grid coordinates u = (x - x0) / (x1 - x0) * S - 0.5, v = (y - y0) / (y1 - y0) * S - 0.5 (cell (r, c) is
centred on (u, v) = (c, r)). With sigma in grid cells:

    joint k:      h[r, c] = c_k * exp(-((c - u_k)^2 + (r - v_k)^2) / (2 sigma^2))
    limb (a, b):  h[r, c] = min(c_a, c_b) * exp(-d((c, r), seg(a, b))^2 / (2 sigma^2))

and a cell whose Gaussian factor is below `CUTOFF` is zero (a window of ~3.7 sigma). A joint that is
missing (confidence <= 0 or NaN, or a NaN coordinate) contributes nothing. Channels are the joints, then
the limbs, in the layout's order. `pipeline.heatmaps.raster_torch.render_torch` is the torch twin of `render`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np

from pipeline.skeletons.layouts import Skeleton

CUTOFF = 1e-3
"""Gaussian factors below this are left at zero (DESIGN.md allows it; nothing coarser)."""
MAX_GRID_COORD = 1e4
"""Grid coordinates beyond +-this (absurd poses far outside the crop) count as missing, so that
squared distances stay finite in float32."""
UINT8_SCALE = 1.0 / 255.0
"""Stored uint8 heatmap levels times this are the maps."""
MIN_BLOCK = 128
"""Frames per thread below which `render` stays on one thread."""
BLOCKS_PER_THREAD = 4

Box = tuple[float, float, float, float]


def crop_box(
    joints: np.ndarray,
    *,
    pad: float = 0.0,
    square: bool = False,
    min_size: float = 1.0,
    fallback: Box | None = None,
) -> Box:
    """The smallest box (x0, y0, x1, y1) holding every confident joint of every frame, padded and squared.

    joints: (T, K, 3) [x, y, conf] in image pixels. `pad` grows each side by that fraction of the box's
    width (height); `square` then grows the shorter side to the longer one about the centre; each side is
    at least `min_size` pixels. With no confident joint, `fallback` is returned (ValueError when None).
    """
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[2] != 3:
        raise ValueError(f"joints must be (T, K, 3) [x, y, conf], got shape {joints.shape}")
    xy = joints[..., :2][_confident(joints)]
    if len(xy) == 0:
        if fallback is None:
            raise ValueError("no confident joint in any frame: the crop box is undefined")
        return tuple(float(b) for b in fallback)
    (x0, y0), (x1, y1) = xy.min(axis=0), xy.max(axis=0)
    w, h = x1 - x0, y1 - y0
    x0, x1, y0, y1 = x0 - pad * w, x1 + pad * w, y0 - pad * h, y1 + pad * h
    w, h = max(x1 - x0, min_size), max(y1 - y0, min_size)
    if square:
        w = h = max(w, h)
    x0, x1 = _grow(x0, x1, w)
    y0, y1 = _grow(y0, y1, h)
    return (float(x0), float(y0), float(x1), float(y1))


def to_grid(joints: np.ndarray, box: Sequence[float], size: int) -> np.ndarray:
    """(T, K, 3) float32 [u, v, c] on the size x size grid of `box`; missing joints get u = v = c = 0."""
    joints = np.asarray(joints, dtype=np.float64)
    x0, y0, x1, y1 = (float(b) for b in box)
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"crop box {tuple(box)} is empty: need x1 > x0 and y1 > y0")
    u = (joints[..., 0] - x0) / (x1 - x0) * size - 0.5
    v = (joints[..., 1] - y0) / (y1 - y0) * size - 0.5
    # filtered in float64, before the float32 cast: the kernels (numba fastmath, which assumes finite values) never
    # square a huge coordinate
    with np.errstate(invalid="ignore"):
        ok = _confident(joints) & (np.abs(u) <= MAX_GRID_COORD) & (np.abs(v) <= MAX_GRID_COORD)
    grid = np.zeros(joints.shape, dtype=np.float32)
    # finite placeholders: the kernels need finite u, v everywhere, and c = 0 already leaves the channel empty
    grid[..., 0] = np.where(ok, u, 0.0)
    grid[..., 1] = np.where(ok, v, 0.0)
    grid[..., 2] = np.where(ok, joints[..., 2], 0.0)
    return grid


def render(
    joints: np.ndarray,
    limbs: Sequence[tuple[int, int]],
    box: Sequence[float],
    size: int = 30,
    sigma: float = 1.0,
    *,
    threads: int | None = None,
) -> np.ndarray:
    """Heatmaps (T, K + L, size, size) float32 of joints (T, K, 3) [x, y, conf] (image pixels) in `box`.

    `limbs` are (a, b) joint-index pairs (L of them); sigma is in grid cells. `threads` splits the frames
    over that many threads (default: every available core once there are MIN_BLOCK frames per thread).
    """
    joints = np.asarray(joints)
    if joints.ndim != 3 or joints.shape[2] != 3:
        raise ValueError(f"joints must be (T, K, 3) [x, y, conf], got shape {joints.shape}")
    if size < 1 or not sigma > 0:
        raise ValueError(f"need size >= 1 and sigma > 0, got size={size}, sigma={sigma}")
    n_frames, n_joints = joints.shape[:2]
    limb_a, limb_b = _limb_arrays(limbs, n_joints)
    grid = to_grid(joints, box, size)
    out = np.empty((n_frames, n_joints + len(limb_a), size, size), dtype=np.float32)
    k = np.float32(-1.0 / (2.0 * sigma**2))
    # exp(k * r2) = CUTOFF: the squared grid distance beyond which cells stay zero
    r2 = np.float32(2.0 * sigma**2 * math.log(1.0 / CUTOFF))
    _run_blocks(grid, limb_a, limb_b, k, r2, out, _n_threads(threads, n_frames))
    return out


def quantise(maps: np.ndarray, dtype: str) -> tuple[np.ndarray, float]:
    """Maps (any shape, float32) in a storage dtype, and the factor that turns stored values back into maps.

    float16: the nearest half-precision value (bit-identical to `astype(np.float16)`), factor 1.
    uint8: round(255 * clip(h, 0, 1)), factor 1/255, so h = stored / 255 to within 1/510 for h in [0, 1].
    """
    from pipeline.heatmaps.kernels import float16_bits, uint8_levels

    flat = np.ascontiguousarray(maps, dtype=np.float32).reshape(-1)
    if dtype == "float16":
        out = np.empty(flat.size, dtype=np.uint16)
        float16_bits(flat, out)
        return out.view(np.float16).reshape(maps.shape), 1.0
    if dtype == "uint8":
        out = np.empty(flat.size, dtype=np.uint8)
        uint8_levels(flat, out)
        return out.reshape(maps.shape), UINT8_SCALE
    raise ValueError(f"unknown heatmap storage dtype {dtype!r}; use float16 or uint8")


def flip_heatmaps(heatmaps: np.ndarray, layout: Skeleton) -> np.ndarray:
    """Horizontally flipped heatmaps (..., K + L, S, S): x reversed, left/right channels swapped.

    Equals rendering the mirrored skeleton (x -> x0 + x1 - x, joints permuted by the layout's
    `joint_flip_permutation`) in the same box.
    """
    perm = np.asarray(layout.channel_flip_permutation)
    if heatmaps.shape[-3] != len(perm):
        raise ValueError(f"{layout.name}: heatmaps have {heatmaps.shape[-3]} channels, layout has {len(perm)}")
    # mirroring maps u to S - 1 - u (cell centres are symmetric about the box's centre), so reversing the columns equals
    # rendering the mirrored skeleton
    return heatmaps[..., perm, :, ::-1]


def _grow(lo: float, hi: float, extent: float) -> tuple[float, float]:
    """[lo, hi] widened about its centre to `extent` (unchanged, bit for bit, when already that wide)."""
    if hi - lo >= extent:
        return lo, hi
    centre = (lo + hi) / 2
    return centre - extent / 2, centre + extent / 2


def _confident(joints: np.ndarray) -> np.ndarray:
    """(T, K) bool: confidence > 0 and finite coordinates."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(joints).all(axis=-1) & (joints[..., 2] > 0)


def _limb_arrays(limbs: Sequence[tuple[int, int]], n_joints: int) -> tuple[np.ndarray, np.ndarray]:
    pairs = np.asarray(limbs, dtype=np.int64).reshape(-1, 2)
    if len(pairs) and (pairs.min() < 0 or pairs.max() >= n_joints):
        raise ValueError(f"limb joint index out of range for {n_joints} joints: {pairs.tolist()}")
    return np.ascontiguousarray(pairs[:, 0]), np.ascontiguousarray(pairs[:, 1])


def _n_threads(threads: int | None, n_frames: int) -> int:
    if threads is None:
        # sched_getaffinity, not cpu_count: only the cores this process may use (taskset, container cpusets)
        threads = len(os.sched_getaffinity(0))
        threads = min(threads, max(1, n_frames // MIN_BLOCK))
    return max(1, min(int(threads), n_frames))


def _run_blocks(grid, limb_a, limb_b, k, r2, out, threads: int) -> None:
    from pipeline.heatmaps.kernels import render_frames

    if threads == 1:
        render_frames(grid, limb_a, limb_b, k, r2, out)
        return
    # a few blocks per thread, so that a thread the OS preempts does not leave the others idle
    bounds = np.linspace(0, len(grid), min(len(grid), BLOCKS_PER_THREAD * threads) + 1).astype(int)
    jobs = [
        _pool(threads).submit(render_frames, grid[a:b], limb_a, limb_b, k, r2, out[a:b])
        for a, b in zip(bounds[:-1], bounds[1:])
    ]
    for job in jobs:
        job.result()


# render runs once per sequence: the pool's threads are kept and reused instead of started for each call
@lru_cache(maxsize=4)
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="heatmaps")
