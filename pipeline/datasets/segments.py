"""Segment annotations -> per-frame labels (shared by the H2O and IKEA ASM adapters)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from pipeline.datasets import DatasetError


def segments_to_frames(
    segments: Iterable[tuple[int, int, int]], n_frames: int, *, background: int = 0, where: str
) -> np.ndarray:
    """(n_frames,) int64 labels from (start, end_inclusive, label) segments; uncovered frames = background.

    A segment that starts before frame 0, ends before it starts, or reaches past the last frame raises
    DatasetError naming `where` (dataset, sequence and file)."""
    labels = np.full(n_frames, background, dtype=np.int64)
    for start, end, label in segments:
        if start < 0 or end < start:
            raise DatasetError(f"{where}: invalid segment [{start}, {end}] (label {label})")
        if end >= n_frames:
            raise DatasetError(
                f"{where}: segment [{start}, {end}] (label {label}) reaches frame {end} but the sequence has "
                f"{n_frames} frames (0..{n_frames - 1})"
            )
        labels[start : end + 1] = label
    return labels
