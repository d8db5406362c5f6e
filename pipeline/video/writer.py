"""Writing videos a web browser plays: H.264 (libx264), yuv420p, even frame sizes, the index at the front.

`H264Writer` streams (H, W, 3) uint8 RGB frames into an mp4 at a constant frame rate, frame k shown at k / fps,
so a page can map a video's currentTime to a frame by t * fps. Browsers play H.264 only in 4:2:0 chroma, which
needs an even width and height: frames are padded by one black row or column where needed. `movflags
+faststart` puts the index before the data, so a browser starts playing before it has read the whole file.
`write_video` encodes a whole array of frames at once (test and sample data), byte for byte repeatable.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from pipeline.video.reader import VideoError

CODEC = "libx264"


def x264_options(crf: int, preset: str) -> dict[str, str]:
    """libx264 settings under which the same frames give the same bytes, in any process: one thread (threaded
    x264 is not repeatable under load) and no macroblock-tree rate control (with it the bitstream depended on the
    process's memory layout: two writes of the same frames in one process could differ)."""
    return {"crf": str(crf), "preset": preset, "threads": "1", "x264-params": "mbtree=0"}


def even_size(height: int, width: int) -> tuple[int, int]:
    """(height, width) rounded up to even numbers (4:2:0 chroma needs both)."""
    return height + height % 2, width + width % 2


def scaled_size(height: int, width: int, target_height: int) -> tuple[int, int]:
    """(height, width) scaled to `target_height` (never up), both even."""
    scale = min(1.0, target_height / height)
    return even_size(max(2, int(round(height * scale))), max(2, int(round(width * scale))))


class H264Writer:
    """Context manager: `with H264Writer(path, fps, crf=23, preset="veryfast") as w: w.write(rgb)`.

    The size is fixed by the first frame (rounded up to even); later frames must have that size. One encoder
    thread (`x264_options`): the same frames give the same bytes, and a shared machine is not flooded."""

    def __init__(self, path: str | Path, fps: float, *, crf: int, preset: str):
        import av

        if CODEC not in av.codecs_available:
            raise VideoError(f"cannot write {path}: this FFmpeg build (PyAV {av.__version__}) has no {CODEC} encoder")
        self.path = Path(path)
        self.fps = fps
        self.options = x264_options(crf, preset)
        self._container = av.open(str(self.path), "w", options={"movflags": "+faststart"})
        self._stream = None
        self.n_frames = 0

    def _open_stream(self, height: int, width: int) -> None:
        # limit_denominator(1001): a float rate back to the exact fraction it stands for, e.g. NTSC's 30000/1001
        self._stream = self._container.add_stream(CODEC, rate=Fraction(self.fps).limit_denominator(1001))
        self._stream.height, self._stream.width = even_size(height, width)
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = self.options

    def write(self, rgb: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame."""
        import av

        if self._stream is None:
            self._open_stream(*rgb.shape[:2])
        height, width = self._stream.height, self._stream.width
        if rgb.shape[0] != height or rgb.shape[1] != width:
            if rgb.shape[0] > height or rgb.shape[1] > width:
                raise VideoError(f"{self.path}: frame {self.n_frames} is {rgb.shape[1]}x{rgb.shape[0]}, "
                                 f"the video {width}x{height}")
            padded = np.zeros((height, width, 3), np.uint8)
            padded[: rgb.shape[0], : rgb.shape[1]] = rgb
            rgb = padded
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb, dtype=np.uint8), format="rgb24")
        frame.pts = self.n_frames
        self._container.mux(self._stream.encode(frame))
        self.n_frames += 1

    def close(self) -> None:
        if self._stream is not None:
            # encoding no frame drains the frames x264 still holds (lookahead, B-frames); without it the video loses its
            # last frames
            self._container.mux(self._stream.encode())
        self._container.close()

    def __enter__(self) -> H264Writer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_video(path: str | Path, frames: np.ndarray, fps: float, *, crf: int = 18, preset: str = "medium") -> Path:
    """Encode (T, H, W, 3) uint8 RGB frames (H and W even) to an H.264 mp4 at `fps`, the index at the end (test
    and sample data).

    The same frames give the same bytes from any PyAV build: `x264_options`, a bitexact muxer (no
    "Lavf<version>" tag), and x264's SEI message, which spells out the x264 version, dropped."""
    import av

    if CODEC not in av.codecs_available:
        raise VideoError(f"cannot write {path}: this FFmpeg build (PyAV {av.__version__}) has no {CODEC} encoder")
    path = Path(path)
    frames = np.asarray(frames, dtype=np.uint8)
    with av.open(str(path), "w", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream(CODEC, rate=Fraction(fps).limit_denominator(1001))
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = x264_options(crf, preset)
        no_sei = av.BitStreamFilterContext("filter_units=remove_types=6", "h264")

        def mux(packet) -> None:  # None flushes the filter
            for out in no_sei.filter(packet):
                out.stream = stream
                container.mux(out)

        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                mux(packet)
        for packet in stream.encode():
            mux(packet)
        mux(None)
    return path
