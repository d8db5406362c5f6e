"""Temporal augmentations as index maps into the original frames (pure, seeded by a torch.Generator).

An augmented sequence is described by its map g: g[k] = the original frame shown at augmented frame k, so
frames are gathered with `model.batch.gather_frames` and correspondence labels are the maps themselves.

- `dual_maps` (MASA Sec. 3.1): trim one random window, then resample it twice independently. Each
  resampling draws N sorted frame indices *with replacement* from the window, N = rate * window length with
  a random rate on both sides of 1, so one view can be faster (drops), slower (repeats) or both at once.
- `uniform_positions`: a fixed number of evenly spaced frames (no randomness).
- `subset_map` (CASA / LA2DS temporal augmentation): N sorted frames drawn *without replacement*: a faster
  sequence only. `window_and_subset` first cuts sequences longer than `max_frames` to a random window.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def uniform_positions(n_frames: int, count: int = 16) -> np.ndarray:
    """`count` frame indices at uniform positions over 0..n_frames-1 (repeats when the clip is shorter): the
    evaluation protocol's 16 frames per clip, and MASA's fixed-length skeleton curves for its DTW teacher."""
    return np.linspace(0, n_frames - 1, count).round().astype(np.int64)


def _uniform(gen: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * torch.rand((), generator=gen).item()


def trim_window(length: int, gen: torch.Generator, min_fraction: float) -> tuple[int, int]:
    """A random window [start, stop) covering at least `min_fraction` of `length` frames (1.0: no trim)."""
    if not 0.0 < min_fraction <= 1.0:
        raise ValueError(f"trim min_fraction must be in (0, 1], got {min_fraction}")
    shortest = min(length, max(1, math.ceil(min_fraction * length)))
    size = int(torch.randint(shortest, length + 1, (), generator=gen))
    start = int(torch.randint(0, length - size + 1, (), generator=gen))
    return start, start + size


def resample_map(
    start: int, stop: int, gen: torch.Generator, *, rate: tuple[float, float], max_frames: int
) -> torch.Tensor:
    """(N,) sorted indices drawn with replacement from [start, stop), N = rate * (stop - start), 2 <= N <= max_frames."""
    low, high = rate
    if not 0.0 < low <= high:
        raise ValueError(f"resampling rate range must satisfy 0 < low <= high, got {rate}")
    n = round(_uniform(gen, low, high) * (stop - start))
    n = max(2, min(max_frames, n))
    return torch.randint(start, stop, (n,), generator=gen).sort().values


def dual_maps(
    length: int,
    gen: torch.Generator,
    *,
    trim_min_fraction: float,
    rate: tuple[float, float],
    max_frames: int,
    shared_trim: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """MASA's dual augmentation of a `length`-frame sequence: (g1 (M,), g2 (N,)) maps into 0..length-1.

    shared_trim: both views resample one trimmed window (the paper); otherwise each view trims its own
    window, so the two views show partly different stretches of the performance.
    """
    start, stop = trim_window(length, gen, trim_min_fraction)
    g1 = resample_map(start, stop, gen, rate=rate, max_frames=max_frames)
    if not shared_trim:
        start, stop = trim_window(length, gen, trim_min_fraction)
    g2 = resample_map(start, stop, gen, rate=rate, max_frames=max_frames)
    return g1, g2


def subset_map(
    length: int, gen: torch.Generator, *, probability: float, min_fraction: float, max_frames: int
) -> torch.Tensor:
    """(N,) sorted distinct frames of 0..length-1: with `probability` a random subset of at least
    `min_fraction` of the frames, else all of them; at most `max_frames` either way."""
    keep = length
    if length > 2 and torch.rand((), generator=gen).item() < probability:
        shortest = min(length, max(2, math.ceil(min_fraction * length)))
        keep = int(torch.randint(shortest, length + 1, (), generator=gen))
    keep = min(keep, max_frames)
    if keep == length:
        return torch.arange(length)
    return torch.randperm(length, generator=gen)[:keep].sort().values


def window_and_subset(
    length: int, gen: torch.Generator, *, probability: float, min_fraction: float, max_frames: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The original view and the augmented view of a one-way method (LA2DS, CASA).

    Returns g0 (M,): a random contiguous window of at most `max_frames` original frames, and pos (N,): the
    augmented frames as positions inside that window (a `subset_map` of it), so the augmented view's frames are
    g0[pos] and its correspondence labels are pos.
    """
    size = min(length, max_frames)
    start = int(torch.randint(0, length - size + 1, (), generator=gen))
    g0 = torch.arange(start, start + size)
    pos = subset_map(size, gen, probability=probability, min_fraction=min_fraction, max_frames=max_frames)
    return g0, pos


def one_way_maps(
    lengths: list[int], gen: torch.Generator, *, probability: float, min_fraction: float, max_frames: int,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """`window_and_subset` for every sequence of a batch, padded, on `device`: g0 (B, M) original frames of the
    original view and its mask (B, M); pos (B, N) positions of the augmented frames inside the window, and its
    mask. (The draws happen on the CPU generator, so runs repeat on any device.)"""
    from model.batch import pad_indices

    pairs = [window_and_subset(n, gen, probability=probability, min_fraction=min_fraction, max_frames=max_frames)
             for n in lengths]
    g0, m0 = pad_indices([g for g, _ in pairs])
    pos, m1 = pad_indices([p for _, p in pairs])
    return g0.to(device), m0.to(device), pos.to(device), m1.to(device)
