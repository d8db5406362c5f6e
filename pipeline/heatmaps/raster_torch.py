"""Torch twin of `pipeline.heatmaps.raster.render`, for rasterising augmented skeletons on the training device.

Same grid, formulas, cutoff and missing-joint rule as the NumPy renderer (see `pipeline.heatmaps.raster`),
computed densely over the S x S grid with broadcasting, so it runs batched on any device and agrees with
the NumPy maps to float32 rounding. float32 tensors on the CPU (without gradient) take the stage's compiled
renderer instead, which gives the same maps about ten times faster there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from pipeline.heatmaps.raster import CUTOFF, MAX_GRID_COORD
from pipeline.skeletons.layouts import Skeleton


def render_torch(
    joints: Tensor,
    limbs: Sequence[tuple[int, int]],
    box: Tensor | Sequence[float],
    size: int = 30,
    sigma: float = 1.0,
) -> Tensor:
    """Heatmaps (..., T, K + L, size, size) of joints (..., T, K, 3) [x, y, conf] in image pixels.

    box: (4,) or (..., 4) [x0, y0, x1, y1], one per leading batch index. The result has the dtype and
    device of `joints` (float32 or wider).
    """
    if joints.shape[-1] != 3 or joints.dim() < 3:
        raise ValueError(f"joints must be (..., T, K, 3) [x, y, conf], got shape {tuple(joints.shape)}")
    if joints.device.type == "cpu" and joints.dtype == torch.float32 and not joints.requires_grad:
        return _render_cpu(joints, limbs, box, size, sigma)
    box = torch.as_tensor(box, dtype=joints.dtype, device=joints.device)
    box = box.reshape(*box.shape[:-1], 1, 1, 4)  # (..., 1, 1, 4): broadcast over time and joints
    u = (joints[..., 0] - box[..., 0]) / (box[..., 2] - box[..., 0]) * size - 0.5
    v = (joints[..., 1] - box[..., 1]) / (box[..., 3] - box[..., 1]) * size - 0.5
    conf = joints[..., 2]
    ok = torch.isfinite(joints).all(dim=-1) & (conf > 0) & (u.abs() <= MAX_GRID_COORD) & (v.abs() <= MAX_GRID_COORD)
    zero = torch.zeros((), dtype=joints.dtype, device=joints.device)
    u, v, conf = torch.where(ok, u, zero), torch.where(ok, v, zero), torch.where(ok, conf, zero)

    cells = torch.arange(size, dtype=joints.dtype, device=joints.device)
    cols, rows = cells.view(1, size), cells.view(size, 1)
    k = -1.0 / (2.0 * sigma**2)
    r2 = 2.0 * sigma**2 * math.log(1.0 / CUTOFF)

    d2 = (cols - u[..., None, None]) ** 2 + (rows - v[..., None, None]) ** 2  # (..., T, K, S, S)
    joint_maps = _gaussian(d2, k, r2) * conf[..., None, None]
    if not len(limbs):
        return joint_maps
    a, b = (torch.as_tensor([p[i] for p in limbs], device=joints.device) for i in (0, 1))
    limb_maps = _limb_maps(u, v, conf, a, b, cols, rows, k, r2)
    return torch.cat([joint_maps, limb_maps], dim=-3)


def crop_box(
    joints: Tensor,
    mask: Tensor | None = None,
    *,
    pad: float = 0.0,
    square: bool = False,
    min_size: float = 1.0,
    fallback: Tensor | Sequence[float] | None = None,
) -> Tensor:
    """Batched twin of `pipeline.heatmaps.raster.crop_box`: the smallest box holding every confident joint of every
    real frame, each side grown by `pad` times the box's width (height), then squared about its centre.

    joints: (B, T, K, 3) [x, y, conf] (or (T, K, 3)); mask: (B, T) real frames. Returns (B, 4) (or (4,))
    x0, y0, x1, y1. A sequence without any confident joint gets `fallback` ((4,) or (B, 4)); ValueError when
    it is None.
    """
    single = joints.dim() == 3
    if single:
        joints = joints.unsqueeze(0)
    if mask is None:
        mask = torch.ones(joints.shape[:2], dtype=torch.bool, device=joints.device)
    xy = joints[..., :2]
    ok = (joints[..., 2] > 0) & torch.isfinite(joints).all(-1) & mask[..., None]
    found = ok.flatten(1).any(1)  # (B,)
    if fallback is None and not bool(found.all()):
        raise ValueError("no confident joint in any frame of a sequence: the crop box is undefined")
    big = torch.finfo(xy.dtype).max
    lo = torch.where(ok[..., None], xy, torch.full_like(xy, big)).flatten(1, 2).amin(1)  # (B, 2)
    hi = torch.where(ok[..., None], xy, torch.full_like(xy, -big)).flatten(1, 2).amax(1)
    extent = hi - lo
    lo, hi = lo - pad * extent, hi + pad * extent
    size = (hi - lo).clamp_min(min_size)
    if square:
        size = size.amax(-1, keepdim=True).expand_as(size)
    centre = (lo + hi) / 2
    box = torch.cat((centre - size / 2, centre + size / 2), dim=-1)
    if fallback is not None:
        fallback = torch.as_tensor(fallback, dtype=box.dtype, device=box.device).expand_as(box)
        box = torch.where(found[:, None], box, fallback)
    return box[0] if single else box


def _render_cpu(joints: Tensor, limbs, box, size: int, sigma: float) -> Tensor:
    """On the CPU, the stage's compiled renderer (same maps, ~10x faster than dense torch), per sequence."""
    from pipeline.heatmaps.raster import render

    lead = joints.shape[:-3]
    flat = joints.reshape(-1, *joints.shape[-3:]).numpy()
    boxes = torch.as_tensor(box, dtype=torch.float64).expand(*lead, 4).reshape(-1, 4).numpy()
    maps = [render(j, limbs, b, size, sigma) for j, b in zip(flat, boxes)]
    out = np.stack(maps) if maps else np.zeros((0, joints.shape[-3], joints.shape[-2] + len(limbs), size, size), np.float32)
    return torch.from_numpy(out).reshape(*lead, *out.shape[1:])


def flip_heatmaps_torch(heatmaps: Tensor, layout: Skeleton) -> Tensor:
    """Horizontally flipped heatmaps (..., K + L, S, S): x reversed, left/right channels swapped."""
    perm = torch.as_tensor(layout.channel_flip_permutation, device=heatmaps.device)
    return heatmaps.index_select(-3, perm).flip(-1)


def _limb_maps(u, v, conf, a, b, cols, rows, k, r2) -> Tensor:
    """(..., T, L, S, S): Gaussian of the distance from each cell centre to each limb's segment."""
    ax, ay, bx, by = u[..., a], v[..., a], u[..., b], v[..., b]
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    inv = torch.where(length2 > 0, 1.0 / length2.clamp_min(torch.finfo(u.dtype).tiny), torch.zeros_like(length2))
    px = cols - ax[..., None, None]  # (..., T, L, 1, S)
    py = rows - ay[..., None, None]  # (..., T, L, S, 1)
    t = ((px * dx[..., None, None] + py * dy[..., None, None]) * inv[..., None, None]).clamp(0.0, 1.0)
    ex = px - t * dx[..., None, None]
    ey = py - t * dy[..., None, None]
    limb_conf = torch.minimum(conf[..., a], conf[..., b])
    return _gaussian(ex * ex + ey * ey, k, r2) * limb_conf[..., None, None]


def _gaussian(d2: Tensor, k: float, r2: float) -> Tensor:
    return torch.where(d2 <= r2, torch.exp(k * d2), torch.zeros((), dtype=d2.dtype, device=d2.device))
