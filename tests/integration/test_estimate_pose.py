"""The estimate_pose stage end to end: real videos of people (../shared/data/videos, subsampled to a low dataset fps
to stay fast), a blank video, incremental re-runs, and bad inputs that must name the sequence and the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.context import StageContext
from pipeline.manifest import DatasetSpec
from pipeline.runner import StageError
from pipeline.store import ArtifactStore
from pipeline.video.writer import write_video
from stages import decode, estimate_pose, heatmaps, index, keypoints
from tests.conftest import REPO

pytest.importorskip("mediapipe")


def _context(tmp_path: Path, videos: dict[str, Path], *, fps: float = 10.0, layout: str = "penn13",
             **estimate) -> StageContext:
    """A `videos` dataset of links to `videos` ({sequence id: file}), indexed, with the repository's params."""
    folder = tmp_path / "raw" / "videos"
    folder.mkdir(parents=True, exist_ok=True)
    for seq, path in videos.items():
        (folder / f"{seq}{path.suffix}").symlink_to(path)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["estimate_pose"].update(estimate)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    spec = DatasetSpec(name="clips", kind="videos", root=tmp_path / "raw", fps=fps, layout=layout,
                       options={"videos": "videos"})
    ctx = StageContext(dataset=spec, params_path=tmp_path / "params.yaml", store_root=str(tmp_path / "data"),
                       workers=1, workdir=tmp_path)
    index.run(ctx)
    return ctx


def _with_params(ctx: StageContext, **estimate) -> StageContext:
    params = yaml.safe_load(ctx.params_path.read_text())
    params["estimate_pose"].update(estimate)
    ctx.params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    return ctx


@pytest.fixture
def golf(tmp_path, shared_data):
    return _context(tmp_path, {"swing6": shared_data / "videos" / "golf_swing" / "swing6.mp4"})


@pytest.mark.realdata
def test_a_real_golf_swing_gives_a_person_in_most_frames_on_the_decode_timeline(golf):
    summary = estimate_pose.run(golf)
    assert summary.computed == ["swing6"]
    store = ArtifactStore(golf.artifact("poses"))
    joints, attrs = store.read("swing6", "joints_2d"), store.attrs("swing6")
    assert store.provenance["layout"] == "blazepose33" and "mediapipe" in store.provenance["estimator"]
    assert joints.shape == (attrs["n_frames"], 33, 3) and attrs["image_size"] == [360, 640]
    conf = joints[..., 2]
    assert ((conf >= 0) & (conf <= 1)).all()
    found = (conf > 0.5).sum(axis=1) >= 17  # a person: at least half the landmarks clearly visible
    assert found.mean() >= 0.9, found.mean()
    seen = joints[conf > 0.5]
    assert (seen[:, 0] > -36).all() and (seen[:, 0] < 396).all()  # pixels of the 360 x 640 frame, give or take
    assert (seen[:, 1] > -64).all() and (seen[:, 1] < 704).all()
    decode.run(golf)  # the same source frames as the decoded ones
    frames = ArtifactStore(golf.artifact("frames"))
    np.testing.assert_array_equal(store.read("swing6", "timestamp"), frames.read("swing6", "timestamp"))

    keypoints.run(golf)  # estimated blazepose33 -> the dataset's penn13, then heatmaps as for any source
    kp = ArtifactStore(golf.artifact("keypoints"))
    assert kp.attrs("swing6")["layout"] == "penn13" and kp.attrs("swing6")["projection"] == "estimated"
    assert kp.read("swing6", "joints_2d").shape == (attrs["n_frames"], 13, 3)
    heatmaps.run(golf)
    assert ArtifactStore(golf.artifact("heatmaps")).read("swing6", "heatmap").shape[:2] == (attrs["n_frames"], 27)

    again = estimate_pose.run(golf)  # a re-run estimates nothing, and keypoints has nothing to redo
    assert again.computed == [] and again.skipped == ["swing6"]
    assert keypoints.run(golf).computed == []
    changed = estimate_pose.run(_with_params(golf, min_detection_confidence=0.6))
    assert changed.computed == ["swing6"]


@pytest.mark.realdata
def test_mediapipe_names_the_person_s_own_side(shared_data):
    """The man in jumping_jacks/video2 faces the camera: his left shoulder is on the image's right."""
    from pipeline.skeletons.estimator import estimate_video
    from pipeline.skeletons.layouts import get_layout
    from stages.estimate_pose import EstimatePoseParams
    from tests.repo_params import repo_params

    poses = estimate_video(shared_data / "videos" / "jumping_jacks" / "video2.mp4", fps=4,
                           settings=repo_params("estimate_pose", EstimatePoseParams).settings())
    layout = get_layout("blazepose33")
    left, right = poses.joints[:, layout.index("l_shoulder")], poses.joints[:, layout.index("r_shoulder")]
    both = (left[:, 2] > 0.5) & (right[:, 2] > 0.5)
    assert both.sum() >= 0.9 * len(both) and (left[both, 0] > right[both, 0]).mean() > 0.95


def test_a_video_without_a_person_gives_confidence_zero_and_no_crash_downstream(tmp_path):
    blank = write_video(tmp_path / "blank.mp4", np.full((12, 48, 64, 3), 90, np.uint8), fps=12)
    ctx = _context(tmp_path / "project", {"blank": blank}, fps=6)
    estimate_pose.run(ctx)
    joints = ArtifactStore(ctx.artifact("poses")).read("blank", "joints_2d")
    assert len(joints) == 6 and (joints[..., 2] == 0).all() and np.isnan(joints[..., :2]).all()
    keypoints.run(ctx)
    assert (ArtifactStore(ctx.artifact("keypoints")).read("blank", "joints_2d")[..., 2] == 0).all()
    heatmaps.run(ctx)
    assert not ArtifactStore(ctx.artifact("heatmaps")).read("blank", "heatmap").any()


def test_keypoints_without_estimates_says_how_to_make_them(tmp_path):
    video = write_video(tmp_path / "v.mp4", np.zeros((6, 32, 32, 3), np.uint8), fps=6)
    ctx = _context(tmp_path / "project", {"v": video}, fps=6)
    with pytest.raises(StageError, match=r"no pose source.*v.*pipeline estimate-pose --dataset clips"):
        keypoints.run(ctx)


def test_a_video_broken_after_indexing_names_the_sequence_and_file(tmp_path):
    video = write_video(tmp_path / "v.mp4", np.zeros((6, 32, 32, 3), np.uint8), fps=6)
    ctx = _context(tmp_path / "project", {"v": video}, fps=6)
    video.write_bytes(b"not a video at all")
    with pytest.raises(StageError, match=r"v: .*v\.mp4"):
        estimate_pose.run(ctx)


@pytest.mark.parametrize("change, message", [
    ({"model_complexity": 2}, r"estimate_pose: model_complexity 2 needs .*pose_landmark_heavy\.tflite"),
    ({"min_detection_confidence": 1.5}, r"estimate_pose\.min_detection_confidence must lie in \[0, 1\]"),
])
def test_bad_params_are_refused_before_any_work(tmp_path, change, message):
    video = write_video(tmp_path / "v.mp4", np.zeros((6, 32, 32, 3), np.uint8), fps=6)
    ctx = _context(tmp_path / "project", {"v": video}, fps=6, **change)
    with pytest.raises(StageError, match=message):
        estimate_pose.run(ctx)
    assert not (tmp_path / "project" / "data" / "clips" / "poses.zarr").exists()


def test_which_sequences_are_estimated():
    rows = [{"id": "a", "video": "a.mp4", "frames_dir": "", "pose_format": "npz", "fps": 10.0, "n_frames": 5,
             "source_fps": 30.0, "video_fingerprint": "x", "fingerprint": "x"},
            {"id": "b", "video": "b.mp4", "frames_dir": "", "pose_format": "", "fps": 10.0, "n_frames": 5,
             "source_fps": 30.0, "video_fingerprint": "y", "fingerprint": "y"},
            {"id": "c", "video": "", "frames_dir": "", "pose_format": "penn_mat", "fps": 10.0, "n_frames": 5,
             "source_fps": 30.0, "video_fingerprint": "", "fingerprint": "z"}]
    from tests.repo_params import repo_params

    missing = repo_params("estimate_pose", estimate_pose.EstimatePoseParams)
    every = repo_params("estimate_pose", estimate_pose.EstimatePoseParams, sequences="all")
    assert [t.seq_id for t in estimate_pose.make_tasks(rows, missing)] == ["b"]
    assert [t.seq_id for t in estimate_pose.make_tasks(rows, every)] == ["a", "b"]


def test_keypoints_refuse_stale_estimated_poses_naming_the_fix(tmp_path):
    blank = write_video(tmp_path / "blank.mp4", np.full((6, 32, 32, 3), 90, np.uint8), fps=6)
    ctx = _context(tmp_path / "project", {"blank": blank}, fps=6)
    estimate_pose.run(ctx)
    ArtifactStore(ctx.artifact("poses"), mode="a").invalidate("blank", "its video failed to re-estimate")
    with pytest.raises(StageError, match=r"blank.*estimated poses in .*poses\.zarr are stale: its video failed"
                                         r".*pipeline estimate-pose --dataset clips"):
        keypoints.run(ctx)
    estimate_pose.run(ctx)  # re-estimated: keypoints work again
    assert keypoints.run(ctx).computed == ["blank"]
