"""pipeline.video.reader: timestamps, resampling by timestamps, geometry, frame folders, and loud errors."""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest

from pipeline.video import reader as video
from pipeline.video.reader import (
    Geometry,
    VideoError,
    iter_frames,
    read_clip,
)
from pipeline.video.timeline import resample_indices, uniform_times
from pipeline.video.writer import write_video


def numbered_frames(n: int, height: int = 48, width: int = 64) -> np.ndarray:
    """(n, H, W, 3) frames whose grey level encodes the frame number (8 * i), robust to lossy coding."""
    levels = (8 * np.arange(n)) % 256
    return np.broadcast_to(levels[:, None, None, None], (n, height, width, 3)).astype(np.uint8).copy()


def frame_number(rgb: np.ndarray) -> int:
    return int(round(float(rgb.mean()) / 8))


def test_timestamps_of_a_25fps_video(tmp_path):
    path = write_video(tmp_path / "a.mp4", numbered_frames(20), 25)
    times = [t for t, _ in iter_frames(path)]
    np.testing.assert_allclose(times, np.arange(20) / 25)


def test_resampling_25fps_to_10fps_keeps_the_frames_shown_at_each_instant(tmp_path):
    path = write_video(tmp_path / "a.mp4", numbered_frames(30), 25)
    clip = read_clip(path, fps=10, geometry=Geometry(48, 48))
    expected = resample_indices(np.arange(30) / 25, 10)
    assert clip.rgb.shape == (len(expected), 48, 48, 3) and len(expected) == 12
    np.testing.assert_array_equal(clip.source_index, expected)
    np.testing.assert_allclose(clip.timestamps, expected / 25)
    assert [frame_number(f) for f in clip.rgb] == expected.tolist()
    assert clip.n_source_frames == 30 and clip.source_fps == 25


def test_upsampling_repeats_frames(tmp_path):
    path = write_video(tmp_path / "a.mp4", numbered_frames(10), 10)
    clip = read_clip(path, fps=25, geometry=Geometry(48, 48))
    assert len(clip.rgb) == 25
    np.testing.assert_array_equal(clip.source_index, resample_indices(np.arange(10) / 10, 25))


def test_only_kept_frames_are_converted(tmp_path, monkeypatch):
    path = write_video(tmp_path / "a.mp4", numbered_frames(30), 30)
    calls = []
    original = video._VideoFrame.rgb_into
    monkeypatch.setattr(video._VideoFrame, "rgb_into", lambda self, g, out: calls.append(1) or original(self, g, out))
    clip = read_clip(path, fps=10, geometry=Geometry(48, 48))
    assert len(clip.rgb) == 10
    assert 10 <= len(calls) <= 11  # the 10 kept frames, plus the last frame which is always converted


@pytest.mark.parametrize("fps", [7.0, 10.0, 12.0, 29.97, 50.0])
@pytest.mark.parametrize("jitter", [True, False])
def test_streaming_selection_covers_resample_indices(fps, jitter):
    rng = np.random.default_rng(int(fps * 100))
    steps = rng.uniform(0.02, 0.05, size=200) if jitter else np.full(200, 1 / 30)
    times = np.cumsum(steps) + 0.5
    kept = {0, len(times) - 1} | {
        k for k in range(len(times) - 1) if video._may_be_kept(times[k] - times[0], times[k + 1] - times[0], fps)
    }
    assert set(resample_indices(times, fps).tolist()) <= kept


def test_geometry_resizes_shorter_side_then_centre_crops(tmp_path):
    frames = np.zeros((3, 60, 100, 3), np.uint8)
    frames[:, :, 40:60] = 255  # a white bar in the horizontal centre
    path = write_video(tmp_path / "wide.mp4", frames, 10)
    clip = read_clip(path, fps=10, geometry=Geometry(resize_short=30, crop=24))
    assert clip.rgb.shape == (3, 24, 24, 3)
    # 100x60 -> 50x30; crop columns 13..36 of 50, the bar (20..30 after scaling) lies inside it
    assert clip.rgb[0, :, 9:15].mean() > 200 and clip.rgb[0, :, :4].mean() < 40
    assert Geometry(256, 224).resized(480, 640) == (256, 341)
    with pytest.raises(ValueError, match="crop"):
        Geometry(resize_short=200, crop=224)


def test_frame_folder_uses_uniform_times_and_reads_only_kept_images(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    frames = numbered_frames(9, 32, 32)
    for i, image in enumerate(frames):
        cv2.imwrite(str(folder / f"{i + 1:06d}.png"), image[..., ::-1])
    (folder / "notes.txt").write_text("not a frame")
    clip = read_clip(folder, fps=10, geometry=Geometry(32, 32), source_fps=30)
    expected = resample_indices(uniform_times(9, 30), 10)
    np.testing.assert_array_equal(clip.source_index, expected)
    np.testing.assert_array_equal(clip.rgb, frames[expected])  # png is lossless, geometry is identity


def test_frame_folder_errors_name_the_folder_or_image(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(VideoError, match="empty.*holds no"):
        read_clip(empty, fps=10, geometry=Geometry(32, 32), source_fps=30)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "000001.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(VideoError, match="000001.jpg"):
        read_clip(bad, fps=10, geometry=Geometry(32, 32), source_fps=30)
    with pytest.raises(VideoError, match="source_fps"):
        read_clip(bad, fps=10, geometry=Geometry(32, 32))


def _truncated_faststart(tmp_path):
    path = tmp_path / "fast.mp4"
    noise = np.random.default_rng(0).integers(0, 255, (40, 48, 64, 3), dtype=np.uint8)
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height = 64, 48
        for image in noise:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _zero_frames(tmp_path):
    path = tmp_path / "zero.avi"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height = 64, 48
        container.start_encoding()  # header and index of a stream without a single frame
    return path


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing.mp4", "not found"),
        (lambda d: (d / "garbage.mp4").write_bytes(b"\0garbage" * 50) and d / "garbage.mp4", "cannot open"),
        (lambda d: (d / "empty.mp4").write_bytes(b"") == 0 and d / "empty.mp4", "cannot open"),
        (_truncated_faststart, "corrupt or truncated"),
        (_zero_frames, "no frames"),
    ],
    ids=["missing", "garbage", "empty-file", "truncated", "zero-frames"],
)
def test_bad_videos_raise_video_error_naming_the_file(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(VideoError, match=message) as err:
        read_clip(path, fps=10, geometry=Geometry(48, 48))
    assert path.name in str(err.value)


def test_moov_truncated_mp4_is_an_error(tmp_path):
    path = write_video(tmp_path / "cut.mp4", numbered_frames(30), 25)
    path.write_bytes(path.read_bytes()[:-200])  # the index (moov) sits at the end of a plain mp4
    with pytest.raises(VideoError, match="cut.mp4"):
        read_clip(path, fps=10, geometry=Geometry(48, 48))


def test_variable_frame_rate_video_is_resampled_by_its_real_timestamps(tmp_path):
    from fractions import Fraction

    rng = np.random.default_rng(3)
    times_ms = np.cumsum(rng.choice([20, 40, 90, 150], size=40))  # jumpy frame intervals
    path = tmp_path / "vfr.mkv"
    frames = numbered_frames(40)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height = 64, 48
        stream.codec_context.time_base = Fraction(1, 1000)
        for image, pts in zip(frames, times_ms):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = int(pts), Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    times = np.array([t for t, _ in iter_frames(path)])
    np.testing.assert_allclose(times, times_ms / 1000)
    clip = read_clip(path, fps=10, geometry=Geometry(48, 48))
    np.testing.assert_array_equal(clip.source_index, resample_indices(times, 10))
    assert [frame_number(f) for f in clip.rgb] == (clip.source_index % 32).tolist()  # grey levels wrap at 32
