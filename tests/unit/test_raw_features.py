"""The no-learning baselines: normalised keypoints and t/T."""

from __future__ import annotations

import numpy as np
import pytest

from model.metrics.baselines import normalise_keypoints, skeleton_scale, time_feature
from pipeline.skeletons.layouts import PENN13


def _pose(n: int = 5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(100, 300, size=(n, PENN13.n_joints, 2))
    return np.concatenate([xy, np.ones((n, PENN13.n_joints, 1))], -1)


def test_normalised_keypoints_ignore_position_and_size():
    pose = _pose()
    moved = pose.copy()
    moved[..., :2] = pose[..., :2] * 3.0 + np.array([50.0, -20.0])
    assert normalise_keypoints(pose, PENN13).shape == (5, 2 * PENN13.n_joints)
    assert normalise_keypoints(moved, PENN13) == pytest.approx(normalise_keypoints(pose, PENN13), abs=1e-5)


def test_root_is_the_origin_and_scale_is_the_torso():
    pose = _pose()
    out = normalise_keypoints(pose, PENN13).reshape(5, PENN13.n_joints, 2)
    root = out[:, list(PENN13.root)].mean(1)
    assert root == pytest.approx(np.zeros((5, 2)), abs=1e-5)
    a, b = (pose[:, list(g), :2].mean(1) for g in PENN13.scale)
    assert skeleton_scale(pose, PENN13) == pytest.approx(np.median(np.linalg.norm(a - b, axis=1)))


def test_missing_joints_sit_at_the_root_and_a_frame_without_root_borrows_the_nearest():
    pose = _pose()
    pose[1, 0, 2] = 0.0  # head missing in frame 1
    pose[2, list(PENN13.root), 2] = 0.0  # both hips missing in frame 2
    out = normalise_keypoints(pose, PENN13).reshape(5, PENN13.n_joints, 2)
    assert out[1, 0] == pytest.approx([0.0, 0.0])
    scale = skeleton_scale(pose, PENN13)
    root_1 = pose[1, list(PENN13.root), :2].mean(0)  # frames 1 and 3 are equally near: the earlier wins
    assert out[2, 0] == pytest.approx((pose[2, 0, :2] - root_1) / scale, abs=1e-5)


def test_wrong_layout_is_an_error():
    with pytest.raises(ValueError, match="penn13"):
        normalise_keypoints(np.zeros((3, 7, 3)), PENN13)


def test_time_feature_spans_zero_to_one():
    assert time_feature(5)[:, 0].tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert time_feature(1).tolist() == [[0.0]]
