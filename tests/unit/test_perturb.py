"""Test-time keypoint perturbations (LA2DS robustness study)."""

from __future__ import annotations

import numpy as np
import pytest

from model.metrics.baselines import skeleton_scale
from model.metrics.perturb import add_keypoint_noise, drop_limbs, limb_groups
from pipeline.skeletons.layouts import HANDS42, PENN13


def _pose(layout, n=200, seed=0):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(100, 300, size=(n, layout.n_joints, 2))
    return np.concatenate([xy, np.ones((n, layout.n_joints, 1))], -1).astype(np.float32)


def test_body_layouts_lose_arms_and_legs_hands_lose_fingers():
    names = [{PENN13.joints[i] for i in g} for g in limb_groups(PENN13)]
    assert {"l_elbow", "l_wrist"} in names and {"r_knee", "r_ankle"} in names and len(names) == 4
    hand = [[HANDS42.joints[i] for i in g] for g in limb_groups(HANDS42)]
    assert len(hand) == 10 and all(len(g) == 4 for g in hand)
    assert not any("wrist" in j for g in hand for j in g)


def test_drop_removes_one_group_per_frame_with_probability_p():
    pose, groups = _pose(PENN13), limb_groups(PENN13)
    rng = np.random.default_rng(1)
    assert np.array_equal(drop_limbs(pose, groups, 0.0, rng), pose)
    dropped = drop_limbs(pose, groups, 1.0, rng)
    gone = (dropped == 0).all(-1)  # (T, K) joints set to (0, 0, 0)
    assert all(tuple(np.flatnonzero(row)) in groups for row in gone)
    half = (drop_limbs(pose, groups, 0.5, np.random.default_rng(2)) == 0).all(-1).any(1).mean()
    assert 0.4 < half < 0.6
    assert np.array_equal(drop_limbs(pose, groups, 0.5, np.random.default_rng(3)),
                          drop_limbs(pose, groups, 0.5, np.random.default_rng(3)))


def test_noise_scales_with_body_size_and_spares_missing_joints():
    pose = _pose(PENN13)
    pose[:, 0, 2] = 0.0  # head missing everywhere
    noisy = add_keypoint_noise(pose, 0.1, PENN13, np.random.default_rng(0))
    delta = (noisy - pose)[..., :2]
    assert np.all(delta[:, 0] == 0) and np.all(noisy[..., 2] == pose[..., 2])
    assert delta[:, 1:].std() == pytest.approx(0.1 * skeleton_scale(pose, PENN13), rel=0.05)
    assert np.array_equal(add_keypoint_noise(pose, 0.0, PENN13, np.random.default_rng(0)), pose)
