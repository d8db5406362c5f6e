"""Normalised pose features for alignment (model/inputs/pose_features.py): invariances, confidence weights,
the cost formula, mirror images."""

from __future__ import annotations

import numpy as np
import pytest

from model.inputs.pose_features import embedding_cost, mirror_joints, pose_cost, pose_features
from pipeline.skeletons.layouts import get_layout

PENN = get_layout("penn13")
KW = dict(smooth_s=0.0, speed_quantile=0.9, min_confidence=0.0)


def moving_person(n: int = 40, seed: int = 0) -> np.ndarray:
    """(n, 13, 3) joints of a skeleton whose arms swing, in pixels, confidence 1."""
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 20, (13, 2)) + 100
    base[PENN.index("l_hip")], base[PENN.index("r_hip")] = (110, 150), (90, 150)
    base[PENN.index("l_shoulder")], base[PENN.index("r_shoulder")] = (115, 90), (85, 90)
    t = np.linspace(0, 2 * np.pi, n)
    xy = np.repeat(base[None], n, 0)
    for joint, sign in (("l_wrist", 1), ("r_wrist", -1), ("l_elbow", 1), ("r_elbow", -1)):
        xy[:, PENN.index(joint), 1] += sign * 30 * np.sin(t)
    return np.concatenate([xy, np.ones((n, 13, 1))], axis=2)


def test_features_ignore_where_the_person_is_and_how_big():
    joints = moving_person()
    moved = joints.copy()
    moved[..., :2] = moved[..., :2] * 2.5 + np.array([300.0, -40.0])
    a, b = pose_features(joints, PENN, fps=30, **KW), pose_features(moved, PENN, fps=30, **KW)
    np.testing.assert_allclose(a.position, b.position, atol=1e-9)
    np.testing.assert_allclose(a.velocity, b.velocity, atol=1e-9)
    assert np.abs(pose_cost(a, b, velocity_weight=0.5).diagonal()).max() < 1e-6


def test_velocities_do_not_depend_on_the_tempo():
    joints = moving_person(80)
    slow = pose_features(joints, PENN, fps=30, **KW)
    fast = pose_features(joints[::2], PENN, fps=30, **KW)  # the same motion in half the time
    speed = lambda f: np.sqrt((f.velocity**2).sum(-1).mean(1))  # noqa: E731
    assert np.quantile(speed(fast), 0.9) == pytest.approx(np.quantile(speed(slow), 0.9), rel=0.05)


def test_the_root_sits_at_the_origin_and_the_torso_has_length_one():
    f = pose_features(moving_person(), PENN, fps=30, **KW)
    hips = f.position[:, list(PENN.root)].mean(1)
    np.testing.assert_allclose(hips, 0, atol=1e-9)
    shoulders = f.position[:, list(PENN.scale[0])].mean(1)
    np.testing.assert_allclose(np.linalg.norm(shoulders - hips, axis=1), 1.0, atol=1e-9)


def test_cost_is_the_confidence_weighted_rms_distance():
    rng = np.random.default_rng(1)
    ja, jb = moving_person(6, seed=1), moving_person(5, seed=2)
    ja[..., 2] = rng.uniform(0.1, 1.0, ja.shape[:2])
    jb[..., 2] = rng.uniform(0.1, 1.0, jb.shape[:2])
    a, b = pose_features(ja, PENN, fps=30, **KW), pose_features(jb, PENN, fps=30, **KW)
    cost = pose_cost(a, b, velocity_weight=0.7)
    for i in range(6):
        for j in range(5):
            w = a.weight[i] * b.weight[j]
            sq = ((a.position[i] - b.position[j]) ** 2).sum(-1) + 0.49 * ((a.velocity[i] - b.velocity[j]) ** 2).sum(-1)
            assert cost[i, j] == pytest.approx(np.sqrt((w * sq).sum() / w.sum()))


def test_a_missing_joint_does_not_count():
    joints = moving_person(10)
    damaged = joints.copy()
    wrist = PENN.index("l_wrist")
    damaged[:, wrist, :2] = [5000.0, np.nan]  # wild coordinates, confidence 0: must not matter
    damaged[:, wrist, 2] = 0.0
    a, b = pose_features(joints, PENN, fps=30, **KW), pose_features(damaged, PENN, fps=30, **KW)
    assert (b.weight[:, wrist] == 0).all() and np.isfinite(b.position).all()
    # positions only: the typical speed (the velocities' unit) is measured on the joints each video has
    assert np.abs(pose_cost(a, b, velocity_weight=0.0).diagonal()).max() < 1e-6


def test_a_frame_without_a_person_is_neither_nan_nor_a_match():
    joints = moving_person(10)
    joints[4, :, 2] = 0.0
    f = pose_features(joints, PENN, fps=30, **KW)
    cost = pose_cost(f, f, velocity_weight=0.5)
    assert np.isfinite(cost).all() and cost[4, 4] == cost.max()


def test_mirror_swaps_sides_and_flips_x():
    joints = moving_person(5)
    mirrored = mirror_joints(joints, PENN, width=200.0)
    left, right = PENN.index("l_wrist"), PENN.index("r_wrist")
    np.testing.assert_allclose(mirrored[:, left, 0], 200.0 - joints[:, right, 0])
    np.testing.assert_allclose(mirror_joints(mirrored, PENN, width=200.0), joints)


def test_embedding_cost_is_euclidean():
    a, b = np.array([[0.0, 0.0], [3.0, 4.0]]), np.array([[0.0, 0.0]])
    np.testing.assert_allclose(embedding_cost(a, b), [[0.0], [5.0]], atol=1e-7)


def test_wrong_shapes_are_refused():
    with pytest.raises(ValueError, match="penn13"):
        pose_features(np.zeros((5, 17, 3)), PENN, fps=30, **KW)
