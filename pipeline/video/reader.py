"""Video I/O: frames and their presentation timestamps from a video file or a folder of images.

A source is either a video (any container/codec FFmpeg decodes, through PyAV, with the container's real
timestamps) or a folder of jpg/png frames (sorted by name, constant rate given by the caller). `read_clip`
resamples a source onto a fixed frame rate with `pipeline.video.timeline.resample_indices` and returns the kept
frames resized (shorter side to `resize_short`) and centre-cropped (`crop` x `crop`). Every frame must be
decoded (inter-frame codecs), but only frames that the resampling keeps are converted to RGB, and the
colour conversion and the resize are one swscale pass.

Any defect (unreadable, corrupt, truncated, no frames) raises `VideoError` naming the file.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from pipeline.video.timeline import resample_indices, uniform_times

log = logging.getLogger(__name__)

IMAGE_EXTS = (".jpg", ".jpeg", ".png")
Interpolation = Literal["area", "bilinear", "bicubic"]
_SWSCALE = {"area": "AREA", "bilinear": "BILINEAR", "bicubic": "BICUBIC"}


class VideoError(RuntimeError):
    """A video or frame folder cannot be read; the message names the file."""


@dataclass(frozen=True)
class Geometry:
    """Resize the shorter side to `resize_short`, then cut the centre `crop` x `crop` square."""

    resize_short: int = 256
    crop: int = 224
    interpolation: Interpolation = "area"

    def __post_init__(self):
        if not 0 < self.crop <= self.resize_short:
            raise ValueError(f"crop ({self.crop}) must be positive and at most resize_short ({self.resize_short})")

    def resized(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) after scaling the shorter side to `resize_short`."""
        scale = self.resize_short / min(height, width)
        return round(height * scale), round(width * scale)

    def crop_box(self, height: int, width: int) -> tuple[int, int]:
        """(top, left) of the centre crop inside a frame of the resized size."""
        return (height - self.crop) // 2, (width - self.crop) // 2


@dataclass(frozen=True)
class Clip:
    """A source resampled to `fps`: rgb (T, crop, crop, 3) uint8, timestamps (T,) float64 seconds of the
    source frames kept, source_index (T,) int64; n_source_frames and source_fps describe the source."""

    rgb: np.ndarray
    timestamps: np.ndarray
    source_index: np.ndarray
    n_source_frames: int
    source_fps: float


def read_clip(path: str | Path, *, fps: float, geometry: Geometry, source_fps: float | None = None) -> Clip:
    """Decode `path` (video file, or frame folder played at `source_fps`) resampled to `fps`."""
    path = Path(path)
    frames, rate, n_declared = _open(path, source_fps)
    expected = int(np.ceil(n_declared * fps / rate)) + 2 if n_declared and rate else 256
    times, kept = _convert_kept(frames, fps, geometry, path, _Kept(geometry.crop, expected))
    if not times:
        raise VideoError(f"{path}: no frames (empty video or folder)")
    times = np.asarray(times)
    try:
        index = resample_indices(times, fps)
    except ValueError as err:
        raise VideoError(f"{path}: unusable timestamps: {err}") from err
    missing = sorted(set(index.tolist()) - set(kept.row_of))
    if missing:
        raise VideoError(f"{path}: source frames {missing[:5]} were selected but not converted (timestamp rounding)")
    return Clip(kept.select(index), times[index], index, len(times), float(rate or 0.0))


def iter_frames(
    path: str | Path, *, geometry: Geometry | None = None, source_fps: float | None = None
) -> Iterator[tuple[float, np.ndarray]]:
    """Every frame of a source as (timestamp in seconds, (H, W, 3) uint8 RGB), resized/cropped by `geometry`
    when given, at full size otherwise."""
    frames, _, _ = _open(Path(path), source_fps)
    for t, frame in frames:
        yield t, frame.rgb(geometry)


def _open(path: Path, source_fps: float | None):
    """(iterator of (timestamp, lazily converted frame), frame rate, declared frame count or 0)."""
    if path.is_dir():
        if not source_fps:
            raise VideoError(f"frame folder {path}: its frame rate (source_fps) is needed")
        files = frame_files(path)
        return _folder_frames(path, files, source_fps), source_fps, len(files)
    return _video_frames(path)


class _Kept:
    """The converted frames, packed in conversion order into one (capacity, crop, crop, 3) array that
    grows when the capacity estimate was short; `row_of` maps a source frame index to its row."""

    def __init__(self, crop: int, capacity: int):
        self.data = np.empty((max(1, capacity), crop, crop, 3), np.uint8)
        self.n = 0
        self.row_of: dict[int, int] = {}

    def add(self, k: int, frame, geometry: Geometry, path: Path) -> None:
        if self.n == len(self.data):
            self.data = np.concatenate([self.data, np.empty_like(self.data)])
        try:
            frame.rgb_into(geometry, self.data[self.n])
        except ValueError as err:  # a frame whose converted shape does not fit the slot
            raise VideoError(f"{path}: frame {k}: {err}") from err
        self.row_of[k] = self.n
        self.n += 1

    def select(self, index: np.ndarray) -> np.ndarray:
        """(len(index), crop, crop, 3): a view when every kept frame is used once in order, else a copy."""
        rows = np.fromiter((self.row_of[i] for i in index), dtype=np.int64, count=len(index))
        if len(rows) == self.n and np.array_equal(rows, np.arange(self.n)):
            return self.data[: self.n]
        return self.data[rows]


def _convert_kept(frames, fps: float, geometry: Geometry, path: Path, kept: _Kept) -> tuple[list[float], _Kept]:
    """Walk the source once and convert only the frames that resampling keeps. Frame k is kept when a
    target instant start + i / fps falls in [t_k, t_{k+1}). It is converted at once, while its pixels
    are still in the CPU cache, when the interval predicted from the previous one holds such an instant;
    otherwise it waits until t_{k+1} is known (variable frame rates) and the last frame is always kept.
    Returns all timestamps and the converted frames."""
    times: list[float] = []
    pending = None  # (k, frame, converted?) of the previous frame
    for t, frame in frames:
        k = len(times)
        if pending is not None and not pending[2] and _may_be_kept(times[-1] - times[0], t - times[0], fps):
            kept.add(pending[0], pending[1], geometry, path)
        times.append(t)
        step = times[-1] - times[-2] if k else 0.0
        eager = k == 0 or _may_be_kept(t - times[0], t + step - times[0], fps)
        if eager:
            kept.add(k, frame, geometry, path)
        pending = (k, frame, eager)
    if pending is not None and not pending[2]:
        kept.add(pending[0], pending[1], geometry, path)
    return times, kept


def _may_be_kept(start: float, stop: float, fps: float) -> bool:
    """Whether a target instant i / fps (integer i) may select the frame shown during [start, stop) seconds
    after the first frame. `resample_indices` picks it when start <= i / fps + 1e-6 < stop; these bounds
    are widened by rounding slack so that the test can err only towards converting one frame too many."""
    return bool(np.ceil((start - 2e-6) * fps) < (stop - 0.5e-6) * fps)


# ----------------------------------------------------------------------------- video files (PyAV)
class _VideoFrame:
    __slots__ = ("frame",)

    def __init__(self, frame):
        self.frame = frame

    def rgb(self, geometry: Geometry | None) -> np.ndarray:
        if geometry is None:
            return self.frame.to_ndarray(format="rgb24")
        out = np.empty((geometry.crop, geometry.crop, 3), np.uint8)
        self.rgb_into(geometry, out)
        return out

    def rgb_into(self, geometry: Geometry, out: np.ndarray) -> None:
        """Convert to RGB at the resized size (one swscale pass) and copy the centre crop into `out`."""
        height, width = geometry.resized(self.frame.height, self.frame.width)
        full = self.frame.to_ndarray(
            format="rgb24", width=width, height=height, interpolation=_SWSCALE[geometry.interpolation]
        )
        top, left = geometry.crop_box(height, width)
        out[...] = full[top : top + geometry.crop, left : left + geometry.crop]


def _video_frames(path: Path) -> tuple[Iterator[tuple[float, _VideoFrame]], float | None, int]:
    """(iterator of (timestamp, frame), the stream's average frame rate, declared frame count or 0).
    Opening errors raise at once, decoding errors while iterating."""
    import av

    if not path.is_file():
        raise VideoError(f"video not found: {path}")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as err:
        raise VideoError(f"cannot open video {path}: {err}") from err
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path} has no video stream")
    stream = container.streams.video[0]
    # No frame threading: FFmpeg's frame-threaded decoders swallow the error of a truncated stream and
    # just stop, which would turn a damaged file into a silently shorter sequence.
    rate = float(stream.average_rate) if stream.average_rate else None
    return _decode(container, stream, path, rate), rate, stream.frames


def _decode(container, stream, path: Path, rate: float | None) -> Iterator[tuple[float, _VideoFrame]]:
    import av

    n, last = 0, None
    declared, time_base = stream.frames, stream.time_base
    try:
        for frame in container.decode(stream):
            if frame.pts is not None:
                t = float(frame.pts * time_base)  # exact rational, rounded once
            elif last is not None and rate:
                t = last + 1.0 / rate  # no timestamp (raw streams): assume the nominal rate
            else:
                t = n / rate if rate else float(n)
            last = t
            n += 1
            yield t, _VideoFrame(frame)
    except av.FFmpegError as err:
        raise VideoError(f"cannot decode video {path} after {n} frame(s) (corrupt or truncated): {err}") from err
    finally:
        container.close()
    if declared and n < declared:
        log.warning("%s: the container declares %d frames but %d decoded", path, declared, n)


# ----------------------------------------------------------------------------- frame folders (OpenCV)
class _ImageFrame:
    __slots__ = ("path",)

    _CV2_INTERP = {"area": "INTER_AREA", "bilinear": "INTER_LINEAR", "bicubic": "INTER_CUBIC"}

    def __init__(self, path: Path):
        self.path = path

    def rgb(self, geometry: Geometry | None) -> np.ndarray:
        bgr = self._bgr(geometry)
        return np.ascontiguousarray(bgr[..., ::-1])

    def rgb_into(self, geometry: Geometry, out: np.ndarray) -> None:
        out[...] = self._bgr(geometry)[..., ::-1]

    def _bgr(self, geometry: Geometry | None) -> np.ndarray:
        import cv2

        bgr = cv2.imread(str(self.path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise VideoError(f"cannot read image {self.path} (missing, corrupt or not an image)")
        if geometry is None:
            return bgr
        height, width = geometry.resized(*bgr.shape[:2])
        interp = getattr(cv2, self._CV2_INTERP[geometry.interpolation])
        bgr = cv2.resize(bgr, (width, height), interpolation=interp)
        top, left = geometry.crop_box(height, width)
        return bgr[top : top + geometry.crop, left : left + geometry.crop]


def frame_files(folder: str | Path) -> list[Path]:
    """The jpg/png images of a frame folder in name order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VideoError(f"frame folder not found: {folder}")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and p.is_file())


def _folder_frames(folder: Path, files: list[Path], source_fps: float) -> Iterator[tuple[float, _ImageFrame]]:
    if not files:
        raise VideoError(f"frame folder {folder} holds no {'/'.join(IMAGE_EXTS)} images")
    return zip(uniform_times(len(files), source_fps).tolist(), map(_ImageFrame, files))

