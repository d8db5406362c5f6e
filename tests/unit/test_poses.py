"""pipeline.skeletons.poses: each pose format read from small written fixtures, resampled to the dataset timeline."""

import json

import numpy as np
import pytest
import scipy.io

from pipeline.datasets import DatasetError
from pipeline.skeletons.poses import choose_person, read_poses
from pipeline.video.timeline import resample_indices, uniform_times


def _row(path, fmt, n_source, source_fps=30.0, fps=30.0, seq="s1"):
    n_frames = len(resample_indices(uniform_times(n_source, source_fps), fps))
    return {"id": seq, "pose": str(path), "pose_format": fmt, "n_source_frames": n_source,
            "source_fps": source_fps, "fps": fps, "n_frames": n_frames}


def _write_penn(path, n=6):
    rng = np.random.default_rng(0)
    scipy.io.savemat(path, {
        "action": "squat", "pose": "front", "x": rng.uniform(0, 480, (n, 13)), "y": rng.uniform(0, 360, (n, 13)),
        "visibility": (rng.random((n, 13)) > 0.3).astype(np.uint8), "bbox": np.zeros((n, 4)),
        "train": np.array([[1]]), "dimensions": np.array([[360, 480, n]]), "nframes": np.array([[n]]),
    })
    return scipy.io.loadmat(path)


def test_penn_mat_visibility_becomes_confidence(tmp_path):
    mat = _write_penn(tmp_path / "0001.mat")
    poses = read_poses(_row(tmp_path / "0001.mat", "penn_mat", 6), "penn13")
    assert poses.layout == "penn13" and poses.image_size == (480, 360) and poses.joints_3d is None
    assert poses.joints_2d.shape == (6, 13, 3) and poses.joints_2d.dtype == np.float32
    np.testing.assert_allclose(poses.joints_2d[..., 0], mat["x"], rtol=1e-6)
    np.testing.assert_array_equal(poses.joints_2d[..., 2], mat["visibility"])


def test_resampled_to_the_dataset_fps(tmp_path):
    mat = _write_penn(tmp_path / "0002.mat", n=6)
    poses = read_poses(_row(tmp_path / "0002.mat", "penn_mat", 6, source_fps=30.0, fps=15.0), "penn13")
    assert len(poses.joints_2d) == 3
    np.testing.assert_allclose(poses.joints_2d[:, :, 1], mat["y"][[0, 2, 4]], rtol=1e-6)


def _person(center, conf):
    kp = np.zeros((25, 3))
    kp[:, 0], kp[:, 1], kp[:, 2] = center[0] + np.arange(25), center[1], conf
    return {"pose_keypoints_2d": kp.ravel().tolist()}


def test_openpose_tracks_the_person_and_marks_empty_frames(tmp_path):
    folder = tmp_path / "openpose"
    folder.mkdir()
    frames = [
        [_person((100, 100), 0.9), _person((400, 300), 0.5)],  # start: the most confident
        [],
        [_person((405, 300), 0.95), _person((102, 101), 0.6)],  # track: the one near frame 0's choice
    ]
    for t, people in enumerate(frames):
        (folder / f"scan_video_{t:012d}_keypoints.json").write_text(json.dumps({"version": 1.3, "people": people}))
    (folder / "scan_video_000000000001_keypoints.json").write_text(json.dumps({"people": []}))
    tracked = read_poses(_row(folder, "openpose_json", 3), "body25").joints_2d
    assert tracked.shape == (3, 25, 3)
    assert tracked[0, 0, 0] == 100 and tracked[2, 0, 0] == 102
    assert (tracked[1, :, 2] == 0).all() and np.isnan(tracked[1, :, :2]).all()
    confident = read_poses(_row(folder, "openpose_json", 3), "body25", person="confidence").joints_2d
    assert confident[2, 0, 0] == 405


def test_choose_person_ignores_undetected_joints():
    a = np.array([[[0.0, 0.0, 1.0], [np.nan, np.nan, 0.0]]])
    b = np.array([[[50.0, 0.0, 1.0], [1.0, 1.0, 1.0]], [[1.0, 0.0, 0.2], [np.nan, np.nan, 0.0]]])
    out = choose_person([a, b])
    np.testing.assert_allclose(out[1], b[1], rtol=1e-7)


def _write_h2o(root, n=3):
    folder = root / "cam4" / "hand_pose"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    hands = np.zeros((n, 2, 64))
    hands[:, :, 0] = 1
    hands[:, :, 1:] = np.concatenate([rng.uniform(-0.2, 0.2, (n, 2, 21, 2)), rng.uniform(0.3, 0.6, (n, 2, 21, 1))], -1).reshape(n, 2, 63)
    hands[1, 0, 0] = 0  # frame 1: left hand not annotated
    for t in range(n):
        (folder / f"{t:06d}.txt").write_text(" ".join(f"{v:.6f}" for v in hands[t].ravel()))
    return folder, np.round(hands[:, :, 1:].reshape(n, 42, 3), 6)  # as written


def test_h2o_projects_with_the_camera_intrinsics(tmp_path):
    folder, xyz = _write_h2o(tmp_path)
    (folder.parent / "cam_intrinsics.txt").write_text("636.6 636.2 635.3 366.9 1280 720")
    poses = read_poses(_row(folder, "h2o_hand_pose", 3), "hands42")
    assert poses.layout == "hands42" and poses.image_size == (1280, 720) and poses.projection == "perspective"
    np.testing.assert_allclose(poses.joints_3d[0], xyz[0], atol=1e-6)
    np.testing.assert_allclose(poses.joints_2d[0, :, 0], 636.6 * xyz[0, :, 0] / xyz[0, :, 2] + 635.3, rtol=1e-5)
    np.testing.assert_allclose(poses.joints_2d[0, :, 1], 636.2 * xyz[0, :, 1] / xyz[0, :, 2] + 366.9, rtol=1e-5)
    assert (poses.joints_2d[1, :21, 2] == 0).all() and np.isnan(poses.joints_3d[1, :21]).all()
    assert (poses.joints_2d[1, 21:, 2] == 1).all()


def test_h2o_without_intrinsics_is_orthographic(tmp_path):
    folder, xyz = _write_h2o(tmp_path)
    poses = read_poses(_row(folder, "h2o_hand_pose", 3), "hands42")
    assert poses.image_size is None and poses.projection == "orthographic"
    np.testing.assert_allclose(poses.joints_2d[2, :, :2], xyz[2, :, :2], atol=1e-6)


def test_npz_joints_and_per_frame_model_parameters(tmp_path):
    path = tmp_path / "seq.npz"
    joints = np.random.default_rng(2).uniform(0, 100, (8, 13, 3)).astype(np.float32)
    np.savez(path, joints_2d=joints, joints_3d=joints, image_size=np.array([160, 120]),
             smpl_global_orient=np.arange(24, dtype=np.float32).reshape(8, 3), smpl_betas=np.ones(10), labels=np.zeros(8))
    poses = read_poses(_row(path, "npz", 8, source_fps=24.0, fps=12.0), "penn13")
    assert poses.joints_2d.shape == (4, 13, 3) and poses.joints_3d.shape == (4, 13, 3) and poses.image_size == (160, 120)
    np.testing.assert_array_equal(poses.model_params["smpl_global_orient"][:, 0], [0, 6, 12, 18])
    assert poses.model_params["smpl_betas"].shape == (10,)
    assert "labels" not in poses.model_params


def test_errors_name_the_sequence_and_file(tmp_path):
    path = tmp_path / "seq.npz"
    np.savez(path, joints_2d=np.zeros((5, 17, 3)))
    with pytest.raises(DatasetError, match=r"s1.*seq\.npz.*\(T, 13, 3\)"):
        read_poses(_row(path, "npz", 5), "penn13")
    np.savez(path, joints_2d=np.zeros((5, 13, 3)))
    with pytest.raises(DatasetError, match=r"s1.*seq\.npz holds 5 frames.*index says 6"):
        read_poses(_row(path, "npz", 6), "penn13")
    with pytest.raises(DatasetError, match=r"s1.*does not exist"):
        read_poses(_row(tmp_path / "nope.npz", "npz", 5), "penn13")
    with pytest.raises(DatasetError, match=r"penn13, but the dataset layout is body25"):
        read_poses(_row(path, "penn_mat", 5), "body25")
    folder = tmp_path / "op"
    folder.mkdir()
    (folder / "x_000000000000_keypoints.json").write_text("{not json")
    with pytest.raises(DatasetError, match=r"x_000000000000_keypoints\.json"):
        read_poses(_row(folder, "openpose_json", 1), "body25")
    with pytest.raises(DatasetError, match="no pose source"):
        read_poses(_row("", "", 1), "penn13")


def test_openpose_body25_in_a_penn13_dataset_is_converted(tmp_path):
    folder = tmp_path / "op"
    folder.mkdir()
    for t in range(3):
        (folder / f"x_{t:012d}_keypoints.json").write_text(json.dumps({"people": [_person((10 * t, 50), 0.8)]}))
    poses = read_poses(_row(folder, "openpose_json", 3), "penn13")
    assert poses.layout == "penn13" and poses.joints_2d.shape == (3, 13, 3)
    body = poses.joints_2d[1]  # body25 joint k at x = 10 + k: r_shoulder is 2, l_shoulder 5, ears 17/18
    assert body[1, 0] == 10 + 2 and body[2, 0] == 10 + 5  # Penn's l_shoulder column holds the person's right
    assert body[0, 0] == 10 + 17.5 and body[0, 2] == pytest.approx(0.8)  # head: between the ears


def test_estimated_poses_are_read_converted_and_checked_against_the_index(tmp_path):
    from pipeline.skeletons.poses import read_estimated
    from pipeline.store import ArtifactStore

    joints = np.zeros((4, 33, 3), np.float32)
    joints[..., 2] = 1.0
    store = ArtifactStore(tmp_path / "poses.zarr", mode="a")
    store.write_sequence("s1", {"joints_2d": (joints, ("time", "joint", "coord"))}, fingerprint="f",
                         attrs={"layout": "blazepose33", "image_size": [64, 48]})
    poses = read_estimated(str(tmp_path / "poses.zarr"), {"id": "s1", "n_frames": 4}, "penn13")
    assert poses.joints_2d.shape == (4, 13, 3) and poses.image_size == (64, 48) and poses.projection == "estimated"
    with pytest.raises(DatasetError, match=r"s1: .*poses\.zarr holds 4 frames.*index says 5.*estimate-pose"):
        read_estimated(str(tmp_path / "poses.zarr"), {"id": "s1", "n_frames": 5}, "penn13")
    with pytest.raises(DatasetError, match=r"s1: estimated poses in .* are blazepose33, the dataset layout is hands42"):
        read_estimated(str(tmp_path / "poses.zarr"), {"id": "s1", "n_frames": 4}, "hands42")
