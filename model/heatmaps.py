"""Joint and limb heatmaps rasterised in torch, on the training device (DESIGN.md Sec. 3 "Heatmaps").

The torch twin of `pipeline.heatmaps` (the NumPy renderer of the heatmaps stage): same grid convention, same
formulas, so augmented skeletons rendered here match the cached maps. With a crop box (x0, y0, x1, y1) and
an S x S grid, a joint at image point (x, y) sits at u = (x - x0) / (x1 - x0) * S - 0.5,
v = (y - y0) / (y1 - y0) * S - 0.5, so that cell (r, c) is centred on (u, v) = (c, r):
- joint channel k: c_k * exp(-((c - u_k)^2 + (r - v_k)^2) / (2 sigma^2));
- limb channel (a, b): min(c_a, c_b) * exp(-d((c, r), seg(a, b))^2 / (2 sigma^2)).
Channels are joints then limbs; a joint with confidence 0 or NaN coordinates contributes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def crop_box(joints: torch.Tensor, mask: torch.Tensor | None = None, *, pad: float = 0.0, square: bool = True) -> torch.Tensor:
    """Smallest box holding every confident joint of every (real) frame, padded and optionally squared.

    joints: (B, T, K, 3) [x, y, confidence] (or (T, K, 3) for one sequence); mask: (B, T) real frames.
    pad: fraction of the box's larger side added on every side. Returns (B, 4) (or (4,)) x0, y0, x1, y1.
    Raises ValueError for a sequence without any confident joint.
    """
    single = joints.dim() == 3
    if single:
        joints = joints.unsqueeze(0)
    B, T = joints.shape[:2]
    if mask is None:
        mask = torch.ones(B, T, dtype=torch.bool, device=joints.device)
    xy = joints[..., :2]
    ok = (joints[..., 2] > 0) & torch.isfinite(xy).all(-1) & torch.isfinite(joints[..., 2]) & mask[..., None]
    if not bool(ok.flatten(1).any(1).all()):
        raise ValueError("cannot place a crop box: a sequence has no confident joint in any frame")
    big = torch.finfo(xy.dtype).max
    lo = torch.where(ok[..., None], xy, torch.full_like(xy, big)).flatten(1, 2).amin(1)  # (B, 2)
    hi = torch.where(ok[..., None], xy, torch.full_like(xy, -big)).flatten(1, 2).amax(1)
    centre, half = (lo + hi) / 2, ((hi - lo) / 2).clamp(min=0.5)  # at least one pixel across
    if square:
        half = half.amax(-1, keepdim=True).expand_as(half)
    half = half + pad * 2 * half.amax(-1, keepdim=True)
    box = torch.cat((centre - half, centre + half), dim=-1)
    return box[0] if single else box


def grid_coordinates(joints: torch.Tensor, box: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Image points (B, T, K, 3) and boxes (B, 4) -> grid coordinates (B, T, K, 2) and confidences (B, T, K)."""
    x0, y0, x1, y1 = (box[:, i, None, None] for i in range(4))
    u = (joints[..., 0] - x0) / (x1 - x0) * size - 0.5
    v = (joints[..., 1] - y0) / (y1 - y0) * size - 0.5
    uv = torch.stack((u, v), dim=-1)
    conf = joints[..., 2]
    valid = torch.isfinite(uv).all(-1) & torch.isfinite(conf) & (conf > 0)
    return torch.where(valid[..., None], uv, torch.zeros_like(uv)), torch.where(valid, conf, torch.zeros_like(conf))


def joint_maps(uv: torch.Tensor, conf: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """(..., K, 2), (..., K) -> (..., K, S, S): separable Gaussians, row r and column c of the grid."""
    cells = torch.arange(size, device=uv.device, dtype=uv.dtype)
    gx = torch.exp(-((cells - uv[..., 0:1]) ** 2) / (2 * sigma**2))  # (..., K, S) over columns
    gy = torch.exp(-((cells - uv[..., 1:2]) ** 2) / (2 * sigma**2))  # (..., K, S) over rows
    return conf[..., None, None] * gy[..., :, None] * gx[..., None, :]


def limb_maps(
    uv: torch.Tensor, conf: torch.Tensor, limbs: Sequence[tuple[int, int]], size: int, sigma: float
) -> torch.Tensor:
    """(..., K, 2), (..., K) -> (..., L, S, S): Gaussians of the distance to each limb's segment.

    Computed by broadcasting a column term against a row term (no (..., S, S, 2) intermediates): with
    p = (c, r), the projection parameter t = ((p - a) . (b - a)) / |b - a|^2 clamped to [0, 1], and
    d^2 = |p - a - t (b - a)|^2.
    """
    a_idx = [a for a, _ in limbs]
    b_idx = [b for _, b in limbs]
    a, b = uv[..., a_idx, :], uv[..., b_idx, :]  # (..., L, 2)
    weight = torch.minimum(conf[..., a_idx], conf[..., b_idx])  # (..., L)
    cells = torch.arange(size, device=uv.device, dtype=uv.dtype)
    ab = b - a
    dx = cells - a[..., 0:1]  # (..., L, S): c - a_x along columns
    dy = cells - a[..., 1:2]  # (..., L, S): r - a_y along rows
    norm = (ab * ab).sum(-1).clamp(min=1e-12)[..., None, None]  # (..., L, 1, 1)
    t = ((dy * ab[..., 1:2])[..., :, None] + (dx * ab[..., 0:1])[..., None, :]) / norm  # (..., L, S, S)
    t = t.clamp(0, 1)
    ex = dx[..., None, :] - t * ab[..., 0, None, None]
    ey = dy[..., :, None] - t * ab[..., 1, None, None]
    return weight[..., None, None] * torch.exp(-(ex * ex + ey * ey) / (2 * sigma**2))


def render_torch(
    joints: torch.Tensor,
    limbs: Sequence[tuple[int, int]],
    box: torch.Tensor,
    size: int = 30,
    sigma: float = 1.0,
) -> torch.Tensor:
    """Heatmaps of joints (B, T, K, 3) [x, y, confidence] in image pixels inside boxes (B, 4).

    Returns (B, T, K + L, size, size) in the joints' dtype and device; (T, K, 3) with a (4,) box gives
    (T, K + L, size, size).
    """
    single = joints.dim() == 3
    if single:
        joints, box = joints.unsqueeze(0), box.unsqueeze(0)
    uv, conf = grid_coordinates(joints, box.to(joints), size)
    maps = torch.cat((joint_maps(uv, conf, size, sigma), limb_maps(uv, conf, limbs, size, sigma)), dim=-3)
    return maps[0] if single else maps
