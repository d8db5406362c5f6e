"""Compiled (numba) patch embedding of heatmaps on the CPU that reads only their nonzero values.

    frames (N, C, S, S) --patches--> (N, n^2, K) --x W^T--> (N, n^2, D)     n = S / p, K = C p p

A heatmap frame is Gaussian blobs and tubes on an empty grid: the heatmaps stage writes exact zeros below
1/1000 of the peak, so on Penn Action 4.7% of the values of a frame are nonzero (27 channels at 30 x 30: ~1,130
of 24,300) and 23% of the (patch, channel) blocks hold any. A dense patch embedding multiplies every zero: a
2,700 x 64 product per patch, forward and for the weight gradient, after a pass that writes every frame's patches.
This module lists a frame's nonzero values once (`nonzero_patches`: each value with its patch and its place in
that patch's K inputs, found by skipping rows of the grid that are all zero) and computes both products from the
list (`embed`, `weight_grad`): the same sums over the same nonzero terms, in float32.

Measured on a 64-sequence Penn Action batch (5,479 frames, 2 cores): listing, forward and weight gradient take
~130 ms against ~290 ms for the dense bfloat16 path (gathering the patches, the forward and the weight gradient
of `model.blocks.patch_embed`), and compute in float32 where that path rounds maps and weights to bfloat16.

Every sum is over a fixed order of terms: a frame's tokens are summed by one thread, value by value in grid
order; the weight gradient is summed in `CHUNKS` fixed chunks of frames, then chunk by chunk, so results do not
depend on the number of threads. Frames are float16 (read through a table of torch's own casts, as
`model.cpu_gather` reads them) or float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numba
import numpy as np
import torch
from numba import types
from numba.extending import overload

from model.cpu_gather import set_numba_threads

MAX_DENSITY = 0.15
"""Above this share of nonzero values the dense path is faster (2 cores, bfloat16: ~53 us a frame for the dense
gather, forward and weight gradient against ~18 ns per listed value): `nonzero_patches` then lists nothing.
Heatmaps hold ~5%; maps with additive noise (`la2ds.augment.noise_p`) are dense."""
CHUNKS = 16
"""Fixed chunks of frames whose weight-gradient partial sums are added in order (deterministic on any thread
count; 16 keeps 2-8 threads busy at 11 MB of partial sums for K 2,700, D 64)."""


def _nonzero(x):  # pragma: no cover - replaced by the overload inside compiled code
    raise NotImplementedError


def _value(x, table):  # pragma: no cover - replaced by the overload inside compiled code
    raise NotImplementedError


@overload(_nonzero)
def _nonzero_impl(x):
    if isinstance(x, types.Integer):  # float16 bits: +-0 is the only zero
        return lambda x: (x & 0x7FFF) != 0
    return lambda x: x != 0


@overload(_value)
def _value_impl(x, table):
    if isinstance(x, types.Integer):  # float16 bits -> float32 through torch's cast table
        return lambda x, table: table[x]
    return lambda x, table: np.float32(x)


@numba.njit(parallel=True, cache=True)
def _count(maps, rows, frames, counts):
    """counts[k] <- nonzero values of frame (rows[k], frames[k]) of maps (B, T, C, S, S)."""
    C, S = maps.shape[2], maps.shape[3]
    for k in numba.prange(len(rows)):
        frame = maps[rows[k], frames[k]]
        n = 0
        for c in range(C):
            for y in range(S):
                for x in range(S):
                    n += _nonzero(frame[c, y, x])
        counts[k] = n


@numba.njit(parallel=True, cache=True)
def _fill(maps, rows, frames, table, offsets, patch, values, slots):
    """values[offsets[k]:offsets[k+1]] <- frame k's nonzero values in float32, in grid order (channel, row,
    column); slots <- patch i * K + place in the patch (c p p + row p + column) of each."""
    C, S = maps.shape[2], maps.shape[3]
    n, K = S // patch, C * patch * patch
    for k in numba.prange(len(rows)):
        frame = maps[rows[k], frames[k]]
        j = offsets[k]
        for c in range(C):
            for y in range(S):
                row = frame[c, y]
                any_set = False
                for x in range(S):  # a branch-free test first: most rows of a heatmap are empty
                    any_set |= _nonzero(row[x])
                if not any_set:
                    continue
                base = (y // patch) * n * K + c * patch * patch + (y % patch) * patch
                for x in range(S):
                    if _nonzero(row[x]):
                        values[j] = _value(row[x], table)
                        slots[j] = base + (x // patch) * K + x % patch
                        j += 1


@numba.njit(inline="always", cache=True)
def _add_scaled(dst, v, src):
    """dst += v * src, for rows (D,)."""
    for d in range(len(dst)):
        dst[d] += v * src[d]


@numba.njit(parallel=True, cache=True)
def _embed(offsets, values, slots, wt, K, out):
    """out[k, i] += value * wt[place] over frame k's listed values (out (N, n^2, D) zeroed, wt (K, D))."""
    for k in numba.prange(len(offsets) - 1):
        for j in range(offsets[k], offsets[k + 1]):
            i, place = divmod(slots[j], K)
            _add_scaled(out[k, i], values[j], wt[place])


@numba.njit(parallel=True, cache=True)
def _weight_grad(offsets, values, slots, grad, K, part):
    """part[ch, place] += value * grad[k, i] over the frames of chunk ch (part (CHUNKS, K, D) zeroed)."""
    N, chunks = len(offsets) - 1, part.shape[0]
    for ch in numba.prange(chunks):
        for k in range(N * ch // chunks, N * (ch + 1) // chunks):
            for j in range(offsets[k], offsets[k + 1]):
                i, place = divmod(slots[j], K)
                _add_scaled(part[ch, place], values[j], grad[k, i])


@dataclass(frozen=True)
class NonzeroPatches:
    """The nonzero values of N frames' patches: frame k's are values[offsets[k]:offsets[k+1]] (float32), each at
    patch slots // K, input slots % K of that patch. n_patches: (S / p)^2; K: C p p."""

    offsets: np.ndarray
    values: np.ndarray
    slots: np.ndarray
    n_patches: int
    K: int

    @property
    def n_frames(self) -> int:
        return len(self.offsets) - 1


def handles(maps: torch.Tensor) -> bool:
    """Whether `nonzero_patches` reads these maps: float16 or float32 on the CPU, contiguous, not part of a graph
    that needs their gradient (maps are data: the embedding's input gradient is never computed here)."""
    return (maps.device.type == "cpu" and maps.dtype in (torch.float16, torch.float32) and maps.is_contiguous()
            and not maps.requires_grad and maps.dim() in (4, 5))


def nonzero_patches(maps: torch.Tensor, patch: int, rows: torch.Tensor | None = None,
                    frames: torch.Tensor | None = None, threads: int | None = None,
                    max_density: float = MAX_DENSITY) -> NonzeroPatches | None:
    """List the nonzero values of frames of `maps` (`handles`): (N, C, S, S), every frame; or a batch
    (B, T, C, S, S) and the (N,) `rows` and `frames` of the frames to read, maps[rows, frames]. None when more
    than `max_density` of the frames' values are nonzero (a dense product is faster then)."""
    if not handles(maps):
        raise ValueError(f"nonzero_patches takes contiguous float16 or float32 maps (N, C, S, S) or (B, T, C, S, S) "
                         f"on the CPU, got {maps.dtype} {tuple(maps.shape)} on {maps.device}")
    if maps.dim() == 4:
        if rows is not None or frames is not None:
            raise ValueError("rows and frames index a batch (B, T, C, S, S); (N, C, S, S) frames are read whole")
        maps = maps.unsqueeze(0)
        rows, frames = torch.zeros(maps.shape[1], dtype=torch.int64), torch.arange(maps.shape[1])
    elif rows is None or frames is None:
        raise ValueError("a batch of maps (B, T, C, S, S) needs the rows and frames to read")
    C, S = maps.shape[2], maps.shape[3]
    if S % patch:
        raise ValueError(f"heatmap size {S} is not a multiple of the patch size {patch}")
    if maps.dtype == torch.float16:
        data, table = maps.detach().view(torch.int16).numpy().view(np.uint16), _float16_table()
    else:
        data, table = maps.detach().numpy(), np.zeros(1, np.float32)
    rows_np, frames_np = rows.to(torch.int64).numpy(), frames.to(torch.int64).numpy()
    set_numba_threads(threads)
    counts = np.empty(len(rows_np), np.int64)
    _count(data, rows_np, frames_np, counts)
    if counts.sum() > max_density * len(counts) * C * S * S:
        return None
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    values, slots = np.empty(offsets[-1], np.float32), np.empty(offsets[-1], np.int32)
    _fill(data, rows_np, frames_np, table, offsets, patch, values, slots)
    return NonzeroPatches(offsets, values, slots, (S // patch) ** 2, C * patch * patch)


def embed(nz: NonzeroPatches, weight: torch.Tensor, threads: int | None = None) -> torch.Tensor:
    """(N, n^2, D) float32 products patches @ weight^T, weight (D, K) (no bias), summed over the nonzero values."""
    D, K = weight.shape
    if K != nz.K:
        raise ValueError(f"the weight takes {K} inputs per patch, the patches have {nz.K}")
    out = np.zeros((nz.n_frames, nz.n_patches, D), np.float32)
    set_numba_threads(threads)
    _embed(nz.offsets, nz.values, nz.slots, weight.detach().float().t().contiguous().numpy(), K, out)
    return torch.from_numpy(out)


def weight_grad(nz: NonzeroPatches, grad: torch.Tensor, threads: int | None = None) -> torch.Tensor:
    """(D, K) float32 gradient of `embed`'s weight for the gradient grad (N, n^2, D) of its output."""
    N, n_patches, D = grad.shape
    if (N, n_patches) != (nz.n_frames, nz.n_patches):
        raise ValueError(f"gradient of shape {tuple(grad.shape)} for {nz.n_frames} frames of {nz.n_patches} patches")
    part = np.zeros((CHUNKS, nz.K, D), np.float32)
    set_numba_threads(threads)
    _weight_grad(nz.offsets, nz.values, nz.slots, grad.detach().float().contiguous().numpy(), nz.K, part)
    return torch.from_numpy(part.sum(axis=0)).t()


@cache
def _float16_table() -> np.ndarray:
    """(65536,) float32 value of every float16, indexed by its bits (torch's own casts)."""
    halves = torch.arange(2**16, dtype=torch.int32).to(torch.int16).view(torch.float16)
    return halves.float().numpy().copy()
