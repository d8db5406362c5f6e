"""Positional encodings over the time axis: fixed sinusoidal (Vaswani et al.) and learned.

Both take per-frame positions (B, T) rather than assuming 0..T-1, so a resampled or trimmed sequence can
be encoded at its own positions, and both return (B, T, D) to be added to frame features. A frame's position is
its index in the clip (`frame_positions`) or its phase, the fraction of the clip before it stretched onto a fixed
range (`phase_positions`), which puts clips of every length on one scale.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

Positions = Literal["index", "phase"]


def frame_positions(mask: torch.Tensor) -> torch.Tensor:
    """(B, T) float positions 0..T_b-1 of the real frames of a padded batch, 0 on padding.

    mask: (B, T) bool, True on real frames (which come first in each row).
    """
    # the k-th real frame gets position k - 1 wherever padding sits; padding gets 0 (and is masked anyway)
    return (mask.long().cumsum(dim=1) - 1).clamp(min=0).float() * mask


def phase_positions(mask: torch.Tensor, steps: int) -> torch.Tensor:
    """(B, T) float positions of the real frames as their fraction of the clip, t / (T_b - 1), stretched onto
    0..steps-1 (a one-frame clip sits at 0); 0 on padding.

    Videos of one action last from under a second to many: by index, frame 60 is the end of one clip and the
    start of another; by phase, the first, middle and last frames of every clip share an encoding.
    """
    last = (mask.sum(dim=1, keepdim=True) - 1).clamp(min=1).float()
    return frame_positions(mask) * ((steps - 1) / last)


def clip_positions(mask: torch.Tensor, kind: Positions, steps: int) -> torch.Tensor:
    """(B, T) positions of a padded batch's real frames: by `index` (`frame_positions`) or by `phase`
    (`phase_positions` onto 0..steps-1)."""
    if kind == "index":
        return frame_positions(mask)
    if kind == "phase":
        return phase_positions(mask, steps)
    raise ValueError(f"positions must be 'index' or 'phase', got {kind!r}")


class SinusoidalPE(nn.Module):
    """Fixed sine/cosine encoding: PE[p, 2i] = sin(p / 10000^(2i/D)), PE[p, 2i+1] = cos(...)."""

    def __init__(self, dim: int, base: float = 10000.0):
        super().__init__()
        if dim % 2:
            raise ValueError(f"sinusoidal encoding needs an even dimension, got {dim}")
        freqs = torch.exp(-math.log(base) * torch.arange(0, dim, 2, dtype=torch.float32) / dim)
        self.register_buffer("freqs", freqs, persistent=False)
        self.dim = dim

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        """positions: (B, T) -> (B, T, D)."""
        angles = positions.float().unsqueeze(-1) * self.freqs  # (B, T, D/2)
        return torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)


class LearnedPE(nn.Module):
    """A learned table of `max_len` position vectors.

    Integer positions index the table. A sequence whose last position lies past the table is read with its
    positions scaled onto the table, by linear interpolation between entries (the table is stretched for
    sequences longer than `max_len` instead of failing at inference). Padding must carry position 0
    (`frame_positions`), so that it never changes the scaling of a sequence.
    """

    def __init__(self, dim: int, max_len: int):
        super().__init__()
        self.table = nn.Parameter(torch.randn(max_len, dim) * 0.02)

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        """positions: (B, T) -> (B, T, D)."""
        max_len = self.table.shape[0]
        pos = positions.float().clamp(min=0)
        top = pos.amax(dim=-1, keepdim=True).clamp(min=max_len - 1)  # per sequence, so padding never matters
        pos = pos * ((max_len - 1) / top)
        lo = pos.floor().long().clamp(max=max_len - 1)
        hi = (lo + 1).clamp(max=max_len - 1)
        frac = (pos - lo.float()).unsqueeze(-1)
        return self.table[lo] * (1 - frac) + self.table[hi] * frac
