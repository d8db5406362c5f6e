"""Compiled (numba) rasterising loops behind `pipeline.heatmaps.raster.render`.

The formulas are those of DESIGN.md Sec. 3 "Heatmaps"; this module only makes them fast. A channel is
zeroed, then filled inside the window where the Gaussian kernel is at least `CUTOFF` (squared grid
distance d2 <= r2 = 2 sigma^2 ln(1 / CUTOFF)), so a frame costs one write of its maps plus about
(2 * 3.7 sigma)^2 exponentials per joint and (length + 7.4 sigma) * 7.4 sigma per limb. Joint maps are
separable: one row and one column of exponentials, then products. The loops release the GIL, so
`render` runs blocks of frames on threads.

Inputs are already on the grid: `grid` (T, K, 3) float32 [u, v, c] with c = 0 for missing joints and
finite u, v everywhere.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_JIT = {"nogil": True, "fastmath": True, "cache": True}


@numba.njit(**_JIT)
def _window(lo: float, hi: float, size: int) -> tuple[int, int]:
    """Grid indices [first, last] of the cells whose centres lie in [lo, hi], clipped to the grid."""
    if hi < 0 or lo > size - 1:
        return 0, -1
    first = max(0, int(math.ceil(lo)))
    last = min(size - 1, int(math.floor(hi)))
    return first, last


@numba.njit(**_JIT)
def joint_map(channel, u, v, c, k, r2, radius):
    """channel (S, S) <- c * exp(k * ((col - u)^2 + (row - v)^2)) where that squared distance <= r2."""
    size = channel.shape[0]
    channel[:, :] = 0.0
    if c <= 0:
        return
    c0, c1 = _window(u - radius, u + radius, size)
    r0, r1 = _window(v - radius, v + radius, size)
    if c1 < c0 or r1 < r0:
        return
    n = c1 - c0 + 1
    gx = np.empty(n, np.float32)
    dx2 = np.empty(n, np.float32)
    for i in range(n):
        d = np.float32(c0 + i) - u
        dx2[i] = d * d
        gx[i] = math.exp(k * d * d)
    for row in range(r0, r1 + 1):
        dy = np.float32(row) - v
        dy2 = dy * dy
        gy = c * math.exp(k * dy2)
        for i in range(n):
            if dx2[i] + dy2 <= r2:
                channel[row, c0 + i] = gy * gx[i]


@numba.njit(**_JIT)
def limb_map(channel, ax, ay, bx, by, c, k, r2, radius):
    """channel (S, S) <- c * exp(k * d^2), d the distance from a cell centre to the segment a-b, where d^2 <= r2."""
    size = channel.shape[0]
    channel[:, :] = 0.0
    if c <= 0:
        return
    c0, c1 = _window(min(ax, bx) - radius, max(ax, bx) + radius, size)
    r0, r1 = _window(min(ay, by) - radius, max(ay, by) + radius, size)
    if c1 < c0 or r1 < r0:
        return
    dx = bx - ax
    dy = by - ay
    length2 = dx * dx + dy * dy
    inv = np.float32(1.0) / length2 if length2 > 0 else np.float32(0.0)
    for row in range(r0, r1 + 1):
        py = np.float32(row) - ay
        for col in range(c0, c1 + 1):
            px = np.float32(col) - ax
            t = min(max((px * dx + py * dy) * inv, np.float32(0.0)), np.float32(1.0))
            ex = px - t * dx
            ey = py - t * dy
            d2 = ex * ex + ey * ey
            if d2 <= r2:
                channel[row, col] = c * math.exp(k * d2)


@numba.njit(**_JIT)
def render_frames(grid, limb_a, limb_b, k, r2, out):
    """out (T, K + L, S, S) <- joint maps then limb maps of every frame of grid (T, K, 3)."""
    radius = math.sqrt(r2)
    n_joints = grid.shape[1]
    for t in range(grid.shape[0]):
        for j in range(n_joints):
            joint_map(out[t, j], grid[t, j, 0], grid[t, j, 1], grid[t, j, 2], k, r2, radius)
        for m in range(limb_a.shape[0]):
            a = limb_a[m]
            b = limb_b[m]
            c = min(grid[t, a, 2], grid[t, b, 2])
            limb_map(out[t, n_joints + m], grid[t, a, 0], grid[t, a, 1], grid[t, b, 0], grid[t, b, 1], c, k, r2, radius)


@numba.njit(**_JIT)
def float16_bits(values, out):
    """out (uint16) <- IEEE half-precision bits of float32 `values` (same flat size), rounding to nearest
    even like NumPy's astype(float16): NaN, infinities, overflow and subnormals included."""
    bits = values.view(np.uint32)
    for i in range(bits.size):
        f = bits[i]
        sign = (f >> np.uint32(16)) & np.uint32(0x8000)
        f &= np.uint32(0x7FFFFFFF)
        if f >= np.uint32((127 + 16) << 23):  # overflow to inf; NaN stays NaN
            o = np.uint32(0x7E00) if f > np.uint32(0x7F800000) else np.uint32(0x7C00)
        elif f < np.uint32(113 << 23):  # below 2^-14: a multiple of 2^-24 (exact scaling, then rint)
            o = np.uint32(np.rint(abs(values[i]) * np.float32(16777216.0)))
        else:  # rebias the exponent, round the mantissa to 10 bits, ties to even
            odd = (f >> np.uint32(13)) & np.uint32(1)
            o = (f + np.uint32(((15 - 127) << 23) + 0xFFF) + odd) >> np.uint32(13)
        out[i] = np.uint16(o | sign)


@numba.njit(**_JIT)
def uint8_levels(values, out):
    """out (uint8) <- round(255 * clip(values, 0, 1)), same flat size."""
    for i in range(values.size):
        v = min(max(values[i], np.float32(0.0)), np.float32(1.0))
        out[i] = np.uint8(v * np.float32(255.0) + np.float32(0.5))
