"""The pieces of align's outputs: the H.264 writer, frames on a timeline, the page template."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from pipeline.video.display import timeline_frames
from pipeline.video.writer import H264Writer, scaled_size, write_video
from stages.shared.viewer import matrix_png, render_page


def test_writer_makes_even_sized_h264_at_the_given_rate(tmp_path):
    import av

    path = tmp_path / "odd.mp4"
    with H264Writer(path, 12.5, crf=23, preset="veryfast") as writer:
        for k in range(10):
            writer.write(np.full((33, 47, 3), 20 * k, np.uint8))
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (48, 34) and stream.codec_context.pix_fmt == "yuv420p"
        assert float(stream.average_rate) == pytest.approx(12.5)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(frames) == 10 and abs(int(frames[5][10, 10, 0]) - 100) < 8


def test_scaled_size_never_upscales_and_is_even():
    assert scaled_size(640, 360, 360) == (360, 202)
    assert scaled_size(101, 51, 360) == (102, 52)


def test_timeline_frames_follow_the_resampling_rule(tmp_path):
    video = tmp_path / "v.mp4"
    frames = np.stack([np.full((32, 32, 3), 10 * k, np.uint8) for k in range(12)])
    write_video(video, frames, 24)
    out = list(timeline_frames(video, fps=12, n_frames=6, height=16))
    assert len(out) == 6 and out[0].shape == (16, 16, 3)
    np.testing.assert_allclose([f.mean() for f in out], [0, 20, 40, 60, 80, 100], atol=4)  # every other frame
    padded = list(timeline_frames(video, fps=24, n_frames=14, height=32))
    assert len(padded) == 14 and padded[-1].mean() == pytest.approx(padded[11].mean())


def test_the_page_holds_its_data_safely():
    data = {"name_a": "</script><script>alert(1)</script>", "n_a": 2}
    html = render_page(data, video_a="A.mp4", video_b="B b.mp4", title="a <b>")
    assert "</script><script>alert(1)" not in html
    blob = re.search(r'<script id="alignment-data" type="application/json">(.*?)</script>', html, re.S).group(1)
    assert json.loads(blob)["name_a"] == data["name_a"]
    assert 'src="B b.mp4"' in html and "a &lt;b&gt;" in html
    assert not re.search(r'(src|href)="https?:', html)  # nothing fetched from a network


def test_matrix_png_is_a_small_inline_image():
    import base64

    import cv2

    url = matrix_png(np.random.default_rng(0).random((900, 300)), max_side=300)
    assert url.startswith("data:image/png;base64,")
    image = cv2.imdecode(np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (300, 100, 3)
