"""The videos of an alignment: browser-playable copies of A and B, and A beside its matched B frames.

One pass decodes each source once (both are read in order, since the matched B frame never goes back) and
feeds three H.264 writers:

- `A.mp4`, `B.mp4`: each source on its timeline (frame k at k / fps, the CSV's times), `height` pixels high,
  for the page's <video> elements;
- `side_by_side.mp4`: per frame of A, A's frame beside B's matched frame, both with their skeletons, the
  inputs' names on top, and a footer with one time bar per video and the two times and the distance.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.runner import progress
from pipeline.skeletons.convert import person_side
from pipeline.skeletons.layouts import get_layout
from pipeline.video.display import timeline_frames
from pipeline.video.overlay import LEFT, RIGHT, draw_skeleton, draw_text, draw_time_bar
from pipeline.video.writer import H264Writer, even_size
from stages.shared.align_sources import Source

log = logging.getLogger(__name__)
FOOTER = 44  # pixels under the two frames: time bars and captions


@dataclass(frozen=True)
class VideoSettings:
    """height: frame height of every output video; crf, preset: libx264 quality and speed."""

    height: int
    crf: int
    preset: str


def write_alignment_videos(
    folder: Path, a: Source, b: Source, mapping: np.ndarray, distance: np.ndarray, settings: VideoSettings, *,
    note: str,
) -> dict[str, str]:
    """Write A.mp4, B.mp4 and side_by_side.mp4 into `folder`; returns {role: file name}.

    mapping (N_a,) int: B's frame per frame of A (non-decreasing); distance (N_a,) its feature distance; note:
    a remark for the footer (e.g. that B was matched mirrored). The
    copies of a video file are kept in its workspace (keyed by timeline and video settings) and reused."""
    frames_a, frames_b = _frames(a, settings.height), _frames(b, settings.height)
    names = {"a": "A.mp4", "b": "B.mp4", "side_by_side": "side_by_side.mp4"}
    cached = {"a": _cached_copy(a, settings), "b": _cached_copy(b, settings)}
    with contextlib.ExitStack() as stack:
        copies = {}
        for key, source in (("a", a), ("b", b)):
            if cached[key] is not None and cached[key].is_file():
                shutil.copyfile(cached[key], folder / names[key])
                copies[key] = None
            else:
                copies[key] = stack.enter_context(_writer(folder / names[key], source.fps, settings))
        both = stack.enter_context(_writer(folder / names["side_by_side"], a.fps, settings))
        j, frame_b = -1, None
        bar = stack.enter_context(progress(total=a.n_frames, desc="align videos", unit="frame"))
        for i, frame_a in enumerate(frames_a):
            bar.update(1)
            if copies["a"]:
                copies["a"].write(frame_a)
            while j < mapping[i]:
                frame_b = next(frames_b)
                if copies["b"]:
                    copies["b"].write(frame_b)
                j += 1
            both.write(_compose(a, b, i, j, frame_a, frame_b, float(distance[i]), note))
        # B's copy needs its frames past the last matched one too
        for frame_b in frames_b if copies["b"] else ():
            copies["b"].write(frame_b)
    for key in ("a", "b"):
        if copies[key] is not None and cached[key] is not None:
            _keep(folder / names[key], cached[key])
    return names


def _writer(path: Path, fps: float, settings: VideoSettings) -> H264Writer:
    return H264Writer(path, fps, crf=settings.crf, preset=settings.preset)


def _cached_copy(source: Source, settings: VideoSettings) -> Path | None:
    """Where the workspace keeps the browser copy of a video file (None for a dataset sequence)."""
    if source.workspace is None:
        return None
    name = f"{source.fps:g}fps_{settings.height}p_crf{settings.crf}_{settings.preset}.mp4"
    return source.workspace / "display" / name


def _keep(made: Path, cache: Path) -> None:
    cache.parent.mkdir(parents=True, exist_ok=True)
    # atomic: another run never reads half a copy
    tmp = cache.with_name(f".{cache.name}.{os.getpid()}")
    shutil.copyfile(made, tmp)
    os.replace(tmp, cache)


def _frames(source: Source, height: int) -> Iterator[np.ndarray]:
    """The source's display frames, or (no media) its skeleton on a dark canvas of the image's size."""
    if source.media is not None:
        return timeline_frames(source.media, fps=source.fps, n_frames=source.n_frames, height=height,
                               source_fps=source.source_fps)
    width, full = source.image_size or _extent(source.joints)
    h, w = even_size(min(height, full), max(2, int(round(width * min(height, full) / full))))
    return (np.full((h, w, 3), 24, np.uint8) for _ in range(source.n_frames))


def _extent(joints: np.ndarray) -> tuple[int, int]:
    xy = joints[..., :2][np.isfinite(joints[..., :2]).all(-1) & (np.nan_to_num(joints[..., 2]) > 0)]
    return (int(xy[:, 0].max()) + 1, int(xy[:, 1].max()) + 1) if len(xy) else (256, 256)


def _panel(source: Source, k: int, frame: np.ndarray, caption: str) -> np.ndarray:
    """A copy of the display frame with the skeleton of timeline frame k and a caption."""
    panel = frame.copy()
    layout = get_layout(source.layout)
    names = tuple(person_side(name, layout) for name in layout.joints)  # colours follow the person's sides
    size = source.image_size or _extent(source.joints)
    # joints are in source image pixels; the display frames were scaled to `height`
    sx, sy = panel.shape[1] / size[0], panel.shape[0] / size[1]
    joints = source.joints[k].astype(np.float64).copy()
    joints[:, 0] *= sx
    joints[:, 1] *= sy
    draw_skeleton(panel, joints, layout.limbs, names)
    draw_text(panel, caption, 6, 20, scale=0.6)
    return panel


def _compose(a: Source, b: Source, i: int, j: int, frame_a: np.ndarray, frame_b: np.ndarray, distance: float,
             note: str) -> np.ndarray:
    """[A | B] over a footer with A's and B's time bars; (H + FOOTER, W_a + W_b, 3)."""
    left, right = _panel(a, i, frame_a, "A"), _panel(b, j, frame_b, "B")
    h = max(left.shape[0], right.shape[0])
    canvas = np.full((h + FOOTER, left.shape[1] + right.shape[1], 3), 16, np.uint8)
    canvas[: left.shape[0], : left.shape[1]] = left
    canvas[: right.shape[0], left.shape[1] :] = right
    width = canvas.shape[1]
    # max(1, ...): a one-frame video would divide by zero
    draw_time_bar(canvas, h + 6, 6, 8, width - 16, i / max(1, a.n_frames - 1), LEFT)
    draw_time_bar(canvas, h + 16, 6, 8, width - 16, j / max(1, b.n_frames - 1), RIGHT)
    text = f"A {i / a.fps:6.2f} s   B {j / b.fps:6.2f} s   distance {distance:.3f}   {note}"
    draw_text(canvas, text, 8, h + 38, scale=0.4)
    return canvas

