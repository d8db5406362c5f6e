"""Shapes that repeat, so that the CPU's bfloat16 matmuls reuse their compiled kernels.

On a CPU, PyTorch runs bfloat16 matmuls through oneDNN, which compiles (JIT) a kernel for every new shape and keeps
the last 1,024 in its primitive cache. LA2DS's shapes change every step: the number of frames in a batch is the
row count of every spatial-transformer matmul, and the longest window sets every temporal one. So nearly every
matmul of a step compiled its kernels afresh, each in a freshly mapped code buffer (Penn Action, batch 64:
~1,000 compilations an epoch, ~1 s of a ~14 s epoch by oneDNN's own count, `ONEDNN_VERBOSE=2`; a bench of one
64 x 64 linear: a new row count costs 2-6 ms more than a repeated one).

Padding the spatial transformer's frames to a ladder of sizes (8 rungs per octave, so at most ~9% more rows and
~4% on average) and a view's length to a multiple of 16 makes shapes repeat: after the first epoch, tens of
compilations an epoch. Padding is inert: padded frames of a sequence are masked keys that no frame attends to,
padded rows of the spatial transformer are dropped before anything reads them, so losses are unchanged and
gradients change only by bfloat16 rounding order. Elsewhere (float32 on a CPU runs MKL's GEMM, which compiles
nothing per shape; CUDA) nothing is padded.
"""

from __future__ import annotations

import math

import torch

RUNGS_PER_OCTAVE = 8
LENGTH_MULTIPLE = 16


def compiles_per_shape(device: torch.device, dtype: torch.dtype | None = None) -> bool:
    """Whether matmuls on `device` of `dtype` tensors (None: whatever their dtype), under the current autocast
    state, run through oneDNN's per-shape kernels: bfloat16 (or bfloat16 autocast) on a CPU."""
    if device.type != "cpu":
        return False
    autocast = torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    return dtype == torch.bfloat16 or autocast


def rows(n: int) -> int:
    """The smallest rung >= n of a ladder of RUNGS_PER_OCTAVE sizes per octave, rounded up to a multiple of 8
    (n itself up to 64): a row count for n frames that many batches share."""
    if n <= 64:
        return n
    k = math.floor(math.log2(n) * RUNGS_PER_OCTAVE)  # rung k is 2^(k / RUNGS_PER_OCTAVE), rounded up to 8s
    while (rung := 8 * math.ceil(2 ** (k / RUNGS_PER_OCTAVE) / 8)) < n:
        k += 1
    return rung


def length(n: int) -> int:
    """n rounded up to a multiple of LENGTH_MULTIPLE: a sequence length that many batches share."""
    return -(-n // LENGTH_MULTIPLE) * LENGTH_MULTIPLE


def pad_length(x: torch.Tensor) -> torch.Tensor:
    """(B, T, ...) -> (B, length(T), ...), padded at the end of the time axis with zeros (False for masks)."""
    extra = length(x.shape[1]) - x.shape[1]
    return torch.cat((x, x.new_zeros(x.shape[0], extra, *x.shape[2:])), 1) if extra else x
