"""A source's frames on its dataset timeline, at a display size, streamed (for videos a person watches).

Timeline frame i (time i / fps after the first frame) shows the last source frame presented at or before that
instant, the rule of `pipeline.video.timeline.resample_indices`, so the frames line up with the keypoints and
labels every stage stores. Frames are decoded once, in order, converted and scaled in one swscale pass (video
files) and yielded one at a time: memory stays at one frame whatever the video's length.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipeline.video.reader import VideoError, iter_frames
from pipeline.video.writer import scaled_size

_EPS = 1e-6  # as resample_indices


def timeline_frames(
    path: str | Path, *, fps: float, n_frames: int, height: int, source_fps: float | None = None,
) -> Iterator[np.ndarray]:
    """Yield exactly `n_frames` (h, w, 3) uint8 RGB frames, h = min(height, the source's) rounded to even.

    `path`: a video file, or a frame folder played at `source_fps`. A source shorter than the timeline repeats
    its last frame (the stages allow a few frames of slack)."""
    source = _folder(Path(path), height, source_fps) if Path(path).is_dir() else _video(Path(path), height)
    i, shown = 0, None
    start = None
    for t, frame in source:
        start = t if start is None else start
        while shown is not None and i < n_frames and start + i / fps + _EPS < t:
            yield shown
            i += 1
        if i >= n_frames:
            return
        shown = frame
    while shown is not None and i < n_frames:
        yield shown
        i += 1


def _video(path: Path, height: int) -> Iterator[tuple[float, np.ndarray]]:
    """(timestamp, RGB frame scaled to `height`) of every frame of a video file."""
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as err:
        raise VideoError(f"cannot open video {path}: {err}") from err
    with container:
        stream = container.streams.video[0]
        h, w = scaled_size(stream.height, stream.width, height)
        n = 0
        try:
            for frame in container.decode(stream):
                t = float(frame.pts * stream.time_base) if frame.pts is not None else n / float(stream.average_rate or 1)
                n += 1
                yield t, frame.to_ndarray(format="rgb24", width=w, height=h, interpolation="AREA")
        except av.FFmpegError as err:
            raise VideoError(f"cannot decode video {path} after {n} frame(s): {err}") from err


def _folder(path: Path, height: int, source_fps: float | None) -> Iterator[tuple[float, np.ndarray]]:
    import cv2

    for t, rgb in iter_frames(path, source_fps=source_fps):
        h, w = scaled_size(rgb.shape[0], rgb.shape[1], height)
        yield t, (cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA) if (h, w) != rgb.shape[:2] else rgb)
