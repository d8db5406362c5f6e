"""A source's frames on its dataset timeline, at a display size, streamed (for videos a person watches).

Timeline frame i (time i / fps after the first frame) shows the last source frame presented at or before that
instant, the rule of `pipeline.video.timeline.resample_indices`, so the frames line up with the keypoints and
labels every stage stores. Frames are decoded once, in order, and resized one at a time: memory stays at one
frame whatever the video's length.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipeline.video.reader import iter_frames
from pipeline.video.writer import scaled_size

_EPS = 1e-6  # as resample_indices


def timeline_frames(
    path: str | Path, *, fps: float, n_frames: int, height: int, source_fps: float | None = None,
) -> Iterator[np.ndarray]:
    """Yield exactly `n_frames` (h, w, 3) uint8 RGB frames, h = min(height, the source's) rounded to even.

    A source shorter than the timeline repeats its last frame (the stages allow a few frames of slack)."""
    import cv2

    start, i, shown = None, 0, None
    for t, rgb in iter_frames(path, source_fps=source_fps):
        start = t if start is None else start
        while shown is not None and i < n_frames and start + i / fps + _EPS < t:
            yield shown
            i += 1
        if i >= n_frames:
            return
        h, w = scaled_size(rgb.shape[0], rgb.shape[1], height)
        shown = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA) if (h, w) != rgb.shape[:2] else rgb
    while shown is not None and i < n_frames:
        yield shown
        i += 1

