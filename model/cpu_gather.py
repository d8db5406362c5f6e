"""Compiled (numba) gathering of float16 heatmap frames out of a batch into a compute dtype, whole or in patch
order, on the CPU: behind `model.inputs.heatmap_augment` (the frames augmentation changes, as float32) and
`model.blocks.encoders.HeatmapEncoder.frame_tokens_at` for maps too dense for `model.sparse_patches`.

Torch does it in two passes over the frames: a gather of the frames out of the batch (B, T, C, S, S), then one
copy that casts them (and reorders them into patches). On the 2-core machines this project is measured
on (~3.4 GB/s of memory bandwidth) each pass over a batch's ~4,000 frames of 24,300 values costs ~40-70 ms.
This loop reads every frame once where it lies and writes its patches once: a float16 value becomes a bfloat16
or float32 one through a table indexed by its bits (65,536 entries, made by torch's own casts, so the values are
exactly torch's), since numba has no float16 on the CPU.
"""

from __future__ import annotations

from functools import cache

import numba
import numpy as np
import torch

_BITS = {torch.bfloat16: (torch.int16, np.uint16), torch.float32: (torch.int32, np.uint32)}
"""Compute dtypes the loop writes, with the integer dtypes of their bits."""


@numba.njit(parallel=True, cache=True)
def _gather(maps, rows, frames, table, patch, out):
    """out[k] (n, n, C, p, p) <- frame (rows[k], frames[k]) of maps (B, T, C, S, S) (float16 bits), patch
    (i, j) of channel c at out[k, i, j, c], each value through `table`."""
    n_channels, n = maps.shape[2], out.shape[1]
    for k in numba.prange(len(rows)):
        b, t = rows[k], frames[k]
        for i in range(n):
            for j in range(n):
                for c in range(n_channels):
                    for p in range(patch):
                        for q in range(patch):
                            out[k, i, j, c, p, q] = table[maps[b, t, c, i * patch + p, j * patch + q]]


def handles(maps: torch.Tensor, dtype: torch.dtype) -> bool:
    """Whether `gather_patches` serves these maps for patches in `dtype`: float16 maps on the CPU, not part of
    a graph that needs their gradient."""
    return (maps.device.type == "cpu" and maps.dtype == torch.float16 and dtype in _BITS and maps.is_contiguous()
            and not maps.requires_grad)


def gather_frames(maps: torch.Tensor, rows: torch.Tensor, frames: torch.Tensor, dtype: torch.dtype,
                  threads: int | None = None) -> torch.Tensor:
    """maps (B, T, C, S, S) float16 (`handles`), frames `frames` (N,) of rows `rows` (N,) -> maps[rows, frames]
    (N, C, S, S) in `dtype`, a new tensor."""
    C, S = maps.shape[2:4]
    return gather_patches(maps, rows, frames, S, dtype, threads).reshape(len(rows), C, S, S)


def gather_patches(maps: torch.Tensor, rows: torch.Tensor, frames: torch.Tensor, patch: int,
                   dtype: torch.dtype, threads: int | None = None) -> torch.Tensor:
    """maps (B, T, C, S, S) float16 (`handles`), frames `frames` (N,) of rows `rows` (N,) -> (N, (S/p)^2, C p p)
    in `dtype`: patches in row-major order, each patch's values channel by channel, row by row (as
    `HeatmapEncoder.patches`). `threads`: default torch's intra-op thread count."""
    if not handles(maps, dtype):
        raise ValueError(f"the CPU gather takes contiguous float16 maps on the CPU to {list(_BITS)}, got "
                         f"{maps.dtype} on {maps.device} to {dtype}")
    C, S = maps.shape[2:4]
    n = S // patch
    signed, unsigned = _BITS[dtype]
    out = torch.empty(len(rows), n, n, C, patch, patch, dtype=dtype)
    set_numba_threads(threads)
    _gather(maps.detach().view(torch.int16).numpy().view(np.uint16), rows.to(torch.int64).numpy(),
            frames.to(torch.int64).numpy(), _table(dtype), patch, out.view(signed).numpy().view(unsigned))
    return out.reshape(len(rows), n * n, C * patch * patch)


@cache
def _table(dtype: torch.dtype) -> np.ndarray:
    """(65536,) the bits of every float16 value cast to `dtype` by torch, indexed by the float16's bits."""
    signed, unsigned = _BITS[dtype]
    halves = torch.arange(2**16, dtype=torch.int32).to(torch.int16).view(torch.float16)
    return halves.to(dtype).view(signed).numpy().view(unsigned).copy()


def set_numba_threads(threads: int | None) -> None:
    """numba's parallel loops use `threads`, default torch's intra-op thread count (the trainer's setting)."""
    numba.set_num_threads(max(1, min(threads or torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))
