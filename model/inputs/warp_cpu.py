"""Compiled (numba) resampling of augmented heatmap frames in place, behind
`model.inputs.heatmap_augment.resample_frames` on the CPU.

The torch path (`torch.nn.functional.grid_sample`) gathers the channels that move, builds a sampling grid for
each, samples and scatters the results back: for a batch's ~64k moved 30 x 30 maps the grid alone is 460 MB,
and on the 2-core machines this project is measured on (about 3.4 GB/s of memory bandwidth) that traffic, not
arithmetic, was the cost. Here each frame's channels are copied once into a zero-bordered buffer that stays
in cache, and every output cell computes its source point from the channel's affine map as it goes: the same
values as grid_sample's bicubic (A = -0.75, zeros outside, align_corners=False) to float rounding, with only
the frames read and written (the warp of 64k maps alone: 0.22 against 0.46 s on 2 cores). Frames are spread
over numba's threads, as many as torch's intra-op threads (the trainer's setting).
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from model.cpu_gather import set_numba_threads

A = -0.75
"""The cubic convolution coefficient of grid_sample's bicubic mode."""

KEEP, WARP, MIRROR = 0, 1, 2
"""What `resample_frames` does to a channel: leave it, resample it, or mirror it (u reversed, exact)."""

_BORDER = 3  # zero cells each side: every tap of a point whose taps reach the grid then lies inside, unchecked


@numba.njit(fastmath=True, cache=True, inline="always")
def _outer(t, a):
    """Bicubic weight of the taps at distance 1 + t and 2 - t from a point t in [0, 1) past a cell."""
    return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a


@numba.njit(fastmath=True, cache=True, inline="always")
def _inner(t, a):
    """Bicubic weight of the taps at distance t and 1 - t."""
    return ((a + 2) * t - (a + 3)) * t * t + 1


@numba.njit(fastmath=True, cache=True, inline="always")
def _span(start, step, lo, hi, size):
    """The cells u in [0, size) with lo <= start + step * u < hi, as a range (first, stop), widened by a cell
    each side against rounding (the caller checks each cell): the row's cells whose source point is near a
    channel's blob."""
    if step == 0:
        return (0, size) if lo <= start < hi else (0, 0)
    a, b = (lo - start) / step, (hi - start) / step
    if step < 0:
        a, b = b, a
    # clipped first: a near-zero step puts them far beyond what an int holds
    a, b = min(max(a, -2.0), size + 2.0), min(max(b, -2.0), size + 2.0)
    first = max(0, int(np.floor(a)) - 1)
    stop = min(size, int(np.ceil(b)) + 1)
    return (first, stop) if first < stop else (0, 0)


@numba.njit(parallel=True, fastmath=True, cache=True)
def _resample(frames, sel, source_of, source_channel, mode):
    """frames (F, C, S, S) float32, changed in place at frames sel (N,): channel c of frame sel[i] becomes, by
    mode[i, c], itself (KEEP), channel source_channel[i, c] sampled at source_of[i, c] (2, 3) @ (u, v, 1) for
    each cell (u, v) (WARP; bicubic, zero outside, clipped at 0), or that channel mirrored (MIRROR). Every
    output reads the frame as it was before.

    A heatmap channel is a blob or a segment on a zero grid: a WARP samples only the cells whose source point
    has a tap on the source channel's non-zero cells (its bounding box, found while copying); every other cell
    is exactly 0 (all 16 taps are 0), and is written so without sampling."""
    _, n_channels, size, _ = frames.shape
    a3 = np.float32(A)
    b = _BORDER
    for i in numba.prange(len(sel)):
        f = sel[i]
        q = np.zeros((n_channels, size + 2 * b, size + 2 * b), np.float32)  # the frame, zero-bordered
        # each channel's non-zero cells lie in u in [box[c, 0], box[c, 1]], v in [box[c, 2], box[c, 3]]
        box = np.empty((n_channels, 4), np.int64)
        for c in range(n_channels):
            u_lo, u_hi, v_lo, v_hi = size, -1, size, -1
            for v in range(size):
                for u in range(size):
                    value = frames[f, c, v, u]
                    q[c, v + b, u + b] = value
                    if value != 0:
                        u_lo, u_hi = min(u_lo, u), max(u_hi, u)
                        v_lo, v_hi = min(v_lo, v), max(v_hi, v)
            box[c, 0], box[c, 1], box[c, 2], box[c, 3] = u_lo, u_hi, v_lo, v_hi
        for c in range(n_channels):
            how = mode[i, c]
            if how == KEEP:
                continue
            k = source_channel[i, c]
            if how == MIRROR:
                for v in range(size):
                    for u in range(size):
                        frames[f, c, v, u] = q[k, v + b, size - 1 - u + b]
                continue
            ma, mb, mc = source_of[i, c, 0, 0], source_of[i, c, 0, 1], source_of[i, c, 0, 2]
            md, me, mf = source_of[i, c, 1, 0], source_of[i, c, 1, 1], source_of[i, c, 1, 2]
            # taps floor(x) - 1 .. floor(x) + 2 meet the box [lo, hi] iff lo - 2 <= x < hi + 2 (and the grid)
            x_lo, x_hi = np.float32(box[k, 0] - 2), np.float32(box[k, 1] + 2)
            y_lo, y_hi = np.float32(box[k, 2] - 2), np.float32(box[k, 3] + 2)
            for v in range(size):
                x_row = mb * v + mc  # the source point of cell (0, v); of cell (u, v): + (ma, md) u
                y_row = me * v + mf
                first, stop = _span(x_row, ma, x_lo, x_hi, size)
                first_y, stop_y = _span(y_row, md, y_lo, y_hi, size)
                first, stop = max(first, first_y), min(stop, stop_y)
                for u in range(size):
                    frames[f, c, v, u] = 0.0
                for u in range(first, stop):
                    x = x_row + ma * u
                    y = y_row + md * u
                    if x_lo <= x < x_hi and y_lo <= y < y_hi:
                        x0, y0 = np.floor(x), np.floor(y)
                        ix, iy = int(x0) + b - 1, int(y0) + b - 1  # q's index of tap -1
                        tx, ty = x - x0, y - y0
                        w0, w1, w2, w3 = _outer(tx + 1, a3), _inner(tx, a3), _inner(1 - tx, a3), _outer(2 - tx, a3)
                        r0 = w0 * q[k, iy, ix] + w1 * q[k, iy, ix + 1] + w2 * q[k, iy, ix + 2] + w3 * q[k, iy, ix + 3]
                        iy += 1
                        r1 = w0 * q[k, iy, ix] + w1 * q[k, iy, ix + 1] + w2 * q[k, iy, ix + 2] + w3 * q[k, iy, ix + 3]
                        iy += 1
                        r2 = w0 * q[k, iy, ix] + w1 * q[k, iy, ix + 1] + w2 * q[k, iy, ix + 2] + w3 * q[k, iy, ix + 3]
                        iy += 1
                        r3 = w0 * q[k, iy, ix] + w1 * q[k, iy, ix + 1] + w2 * q[k, iy, ix + 2] + w3 * q[k, iy, ix + 3]
                        value = (_outer(ty + 1, a3) * r0 + _inner(ty, a3) * r1 + _inner(1 - ty, a3) * r2
                                 + _outer(2 - ty, a3) * r3)
                        frames[f, c, v, u] = value if value > 0 else np.float32(0.0)


@numba.njit(parallel=True, cache=True)
def _moments(frames, sel, n_channels, out):
    """out[i, c] <- (mass, sum of u * value, sum of v * value) of channel c < n_channels of frame sel[i] of
    frames (F, C, S, S) float32, accumulated in float64."""
    size = frames.shape[2]
    for i in numba.prange(len(sel)):
        f = sel[i]
        for c in range(n_channels):
            mass = su = sv = 0.0
            for v in range(size):
                row = 0.0
                for u in range(size):
                    value = frames[f, c, v, u]
                    row += value
                    su += u * value
                mass += row
                sv += v * row
            out[i, c, 0], out[i, c, 1], out[i, c, 2] = mass, su, sv


def channel_moments(frames: torch.Tensor, sel: torch.Tensor, channels: int,
                    threads: int | None = None) -> torch.Tensor:
    """frames (F, C, S, S) float32 on the CPU -> (N, channels, 3) float64: each of the first `channels` channels of
    frames sel (N,): its mass and its mass-weighted sums of u and of v (`heatmap_augment.centres` reads the
    centroid off them), read where they lie instead of gathered first."""
    if frames.dtype != torch.float32 or not frames.is_contiguous():
        raise ValueError(f"channel_moments needs contiguous float32 frames, got {frames.dtype}"
                         f"{'' if frames.is_contiguous() else ' (not contiguous)'}")
    out = np.empty((len(sel), channels, 3), np.float64)
    set_numba_threads(threads)
    _moments(frames.detach().numpy(), sel.to(torch.int64).numpy(), channels, out)
    return torch.from_numpy(out)


def resample_frames(frames: torch.Tensor, sel: torch.Tensor, source_of: torch.Tensor, source_channel: torch.Tensor,
                    mode: torch.Tensor, threads: int | None = None) -> None:
    """`model.inputs.heatmap_augment.resample_frames` on the CPU: frames (F, C, S, S) float32, contiguous,
    changed in place; sel (N,), source_of (N, C, 2, 3), source_channel (N, C), mode (N, C) as there.
    `threads`: default torch's intra-op thread count."""
    if frames.dtype != torch.float32 or not frames.is_contiguous():
        raise ValueError(f"resample_frames needs contiguous float32 frames, got {frames.dtype}"
                         f"{'' if frames.is_contiguous() else ' (not contiguous)'}")
    set_numba_threads(threads)
    _resample(frames.detach().numpy(), sel.to(torch.int64).numpy(), source_of.to(torch.float32).contiguous().numpy(),
              source_channel.to(torch.int64).numpy(), mode.to(torch.int8).numpy())
