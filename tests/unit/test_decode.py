"""stages.decode on a tiny generated dataset: videos at another fps, a frame folder, a label-only sequence."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from pipeline.context import StageContext
from pipeline.manifest import DatasetSpec
from pipeline.runner import StageError
from pipeline.sequences import make_table, write_index
from pipeline.store import ArtifactStore
from pipeline.video.reader import Clip, VideoError
from pipeline.video.timeline import resample_indices, uniform_times
from pipeline.video.writer import write_video
from stages import decode

FPS = 10.0
DECODE = {"resize_short": 32, "crop": 32, "interpolation": "area", "length_tolerance": 3, "compression": "zstd"}


def grey_frames(n: int, size: int = 32) -> np.ndarray:
    levels = (8 * np.arange(n)) % 256
    return np.broadcast_to(levels[:, None, None, None], (n, size, size, 3)).astype(np.uint8).copy()


def row(seq_id, *, n_source, source_fps, video="", frames_dir="", n_frames=None):
    n = len(resample_indices(uniform_times(n_source, source_fps), FPS)) if n_frames is None else n_frames
    return {
        "id": seq_id, "dataset": "toy", "split": "train", "activity": "wave", "n_frames": n, "fps": FPS,
        "source_fps": source_fps, "n_source_frames": n_source, "video": video, "frames_dir": frames_dir,
        "pose": "", "pose_format": "", "fingerprint": f"fp-{seq_id}", "labels": None,
    }


def make_ctx(root, rows, decode_params=DECODE) -> StageContext:
    (root / "params.yaml").write_text(yaml.safe_dump({"decode": dict(decode_params)}))
    spec = DatasetSpec(name="toy", kind="videos", root=root, fps=FPS, layout="penn13")
    ctx = StageContext(dataset=spec, params_path=root / "params.yaml", store_root=str(root / "data"), workdir=root)
    write_index(make_table(rows), ctx.index_path, {})
    return ctx


@pytest.fixture
def toy(tmp_path):
    """Sequence a: 30 frames at 25 fps; b: 15 at 10 fps; c: 9 png frames at 30 fps; d: labels only."""
    write_video(tmp_path / "a.mp4", grey_frames(30), 25)
    write_video(tmp_path / "b.mp4", grey_frames(15), 10)
    folder = tmp_path / "c"
    folder.mkdir()
    for i, image in enumerate(grey_frames(9)):
        cv2.imwrite(str(folder / f"{i:05d}.png"), image)
    rows = [
        row("a", n_source=30, source_fps=25, video=str(tmp_path / "a.mp4")),
        row("b", n_source=15, source_fps=10, video=str(tmp_path / "b.mp4")),
        row("c", n_source=9, source_fps=30, frames_dir=str(folder)),
        row("d", n_source=20, source_fps=30),
    ]
    return make_ctx(tmp_path, rows), rows


def test_a_relative_source_is_recorded_as_indexed_so_clones_elsewhere_write_the_same_bytes(tmp_path, monkeypatch):
    stores = []
    for clone in ("a", "clone_somewhere_else"):
        root = tmp_path / clone
        root.mkdir()
        write_video(root / "v.mp4", grey_frames(12), 24)
        monkeypatch.chdir(root)
        ctx = make_ctx(root, [row("v", n_source=12, source_fps=24, video="v.mp4")])
        decode.run(ctx)
        stores.append(ArtifactStore(ctx.artifact("frames")))
    assert stores[0].attrs("v")["source"] == stores[1].attrs("v")["source"] == "v.mp4"
    files = [{p.relative_to(s.url): p.read_bytes() for p in Path(s.url).rglob("*") if p.is_file()} for s in stores]
    assert files[0] == files[1]


def test_decode_writes_frames_and_timestamps_on_the_dataset_timeline(toy):
    ctx, rows = toy
    summary = decode.run(ctx)
    assert sorted(summary.computed) == ["a", "b", "c"]
    store = ArtifactStore(ctx.artifact("frames"))
    assert store.sequences() == ["a", "b", "c"]
    for r in rows[:3]:
        rgb = store.read(r["id"], "rgb")
        assert rgb.shape == (r["n_frames"], 32, 32, 3) and rgb.dtype == np.uint8
        assert store.array(r["id"], "rgb").metadata.dimension_names == ("time", "y", "x", "channel")
        attrs = store.attrs(r["id"])
        assert attrs["fps"] == FPS and attrs["n_frames"] == r["n_frames"] and attrs["n_source_frames"] == r["n_source_frames"]
        assert attrs["source"] == (r["video"] or r["frames_dir"])  # the path as indexed
    expected = resample_indices(np.arange(30) / 25, FPS)
    np.testing.assert_allclose(store.read("a", "timestamp"), expected / 25)
    assert [round(f.mean() / 8) for f in store.read("a", "rgb")] == expected.tolist()
    np.testing.assert_array_equal(store.read("c", "rgb"), grey_frames(9)[resample_indices(uniform_times(9, 30), FPS)])
    assert store.provenance["stage"] == "decode" and store.provenance["params"]["crop"] == 32


def test_second_run_decodes_nothing_and_a_param_change_decodes_everything(toy, monkeypatch):
    ctx, rows = toy
    decode.run(ctx)
    calls = []
    real = decode.read_clip
    monkeypatch.setattr(decode, "read_clip", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    again = decode.run(ctx)
    assert calls == [] and sorted(again.skipped) == ["a", "b", "c"]
    ctx = make_ctx(ctx.workdir, rows, {**DECODE, "resize_short": 40})
    assert sorted(decode.run(ctx).computed) == ["a", "b", "c"] and len(calls) == 3


def test_a_sequence_that_left_the_index_is_removed(toy):
    ctx, rows = toy
    decode.run(ctx)
    ctx = make_ctx(ctx.workdir, [rows[0], rows[2]])
    assert decode.run(ctx).removed == ["b"]
    assert ArtifactStore(ctx.artifact("frames")).sequences() == ["a", "c"]


def test_corrupt_video_fails_naming_sequence_and_file_and_keeps_the_others(toy):
    ctx, rows = toy
    decode.run(ctx)
    before = ArtifactStore(ctx.artifact("frames")).read("a", "rgb")
    bad = ctx.workdir / "b.mp4"
    bad.write_bytes(bad.read_bytes()[:-300])
    rows[1] = {**rows[1], "fingerprint": "changed"}
    ctx = make_ctx(ctx.workdir, rows)
    with pytest.raises(StageError) as err:
        decode.run(ctx)
    assert "b:" in str(err.value) and "b.mp4" in str(err.value) and "1 of 1" in str(err.value)
    store = ArtifactStore(ctx.artifact("frames"))
    assert "a" in store and "c" in store
    assert not store.is_current("b", decode.make_tasks([rows[1]], decode.DecodeParams(**DECODE))[0].fingerprint)
    np.testing.assert_array_equal(store.read("a", "rgb"), before)


def test_fit_length_pads_or_cuts_within_tolerance_and_fails_beyond():
    clip = Clip(grey_frames(10), np.arange(10) / 10, np.arange(10), 10, 10.0)
    rgb, ts = decode.fit_length(clip, 12, 3, "s1", "s1.mp4")
    assert len(rgb) == 12 and np.array_equal(rgb[-3:], grey_frames(10)[[9, 9, 9]]) and ts[-1] == ts[-3] == 0.9
    rgb, ts = decode.fit_length(clip, 8, 3, "s1", "s1.mp4")
    np.testing.assert_array_equal(rgb, grey_frames(10)[:8])
    with pytest.raises(VideoError, match="s1: s1.mp4 decodes to 10 frames.*index says 20"):
        decode.fit_length(clip, 20, 3, "s1", "s1.mp4")


def test_length_far_from_the_index_fails_the_sequence(toy):
    ctx, rows = toy
    rows[1] = {**rows[1], "n_frames": rows[1]["n_frames"] + 10}
    ctx = make_ctx(ctx.workdir, rows)
    with pytest.raises(StageError, match=r"(?s)b: .*b.mp4 decodes to 15 frames.*index says 25"):
        decode.run(ctx)


def test_a_dataset_without_videos_or_frames_is_an_error(tmp_path):
    ctx = make_ctx(tmp_path, [row("x", n_source=20, source_fps=30), row("y", n_source=20, source_fps=30)])
    with pytest.raises(StageError, match="no sequence has a video or a frame folder"):
        decode.run(ctx)


def test_crop_larger_than_resize_is_a_params_error(tmp_path):
    ctx = make_ctx(tmp_path, [row("x", n_source=20, source_fps=30)], {**DECODE, "crop": 64})
    with pytest.raises(StageError, match="crop"):
        decode.run(ctx)


def test_uncompressed_frames_equal_compressed_ones(toy):
    ctx, rows = toy
    decode.run(ctx)
    compressed = ArtifactStore(ctx.artifact("frames")).read("a", "rgb")
    ctx = make_ctx(ctx.workdir, rows, {**DECODE, "compression": "none"})
    assert sorted(decode.run(ctx).computed) == ["a", "b", "c"]
    np.testing.assert_array_equal(ArtifactStore(ctx.artifact("frames")).read("a", "rgb"), compressed)
