"""Skeleton geometry and augmentations: trees, normalisation, flips, rotations (CASA's angle noise applied)."""

from __future__ import annotations

import math

import torch

from model.inputs import skeleton_augment as aug
from model.inputs.coordinates import CoordinateInput, SkeletonAugmentParams
from model.inputs.skeleton import (
    descendants,
    kinematic_parents,
    normalise,
    split_joints,
)
from pipeline.skeletons.layouts import get_layout
from tests.repo_params import repo_params

PENN = get_layout("penn13")


def _skeleton(T: int = 4) -> torch.Tensor:
    torch.manual_seed(0)
    xy = torch.randn(1, T, PENN.n_joints, 2) * 20 + 100
    return torch.cat((xy, torch.ones(1, T, PENN.n_joints, 1)), -1)


def test_kinematic_tree_reaches_every_joint_from_the_root():
    parents = kinematic_parents(PENN)
    assert parents[PENN.root[0]] == -1
    assert all(p >= 0 for k, p in enumerate(parents) if k != PENN.root[0])
    sub = descendants(parents)
    assert sub[PENN.index("l_shoulder"), PENN.index("l_wrist")] or sub[PENN.index("l_elbow"), PENN.index("l_wrist")]


def test_split_joints_marks_nan_and_zero_confidence_missing():
    joints = _skeleton()
    joints[0, 0, 3, 0] = float("nan")
    joints[0, 1, 4, 2] = 0
    xy, conf = split_joints(joints, True)
    assert conf[0, 0, 3] == 0 and conf[0, 1, 4] == 0 and torch.all(xy[0, 0, 3] == 0)
    assert torch.isfinite(xy).all()


def test_normalise_centres_on_root_and_scales_by_torso():
    joints = _skeleton()
    xy, conf = split_joints(joints, True)
    mask = torch.ones(1, 4, dtype=torch.bool)
    out = normalise(xy, conf, mask, PENN, "frame")
    root = out[..., list(PENN.root), :].mean(-2)
    torch.testing.assert_close(root, torch.zeros_like(root), atol=1e-5, rtol=0)
    top = out[..., list(PENN.scale[0]), :].mean(-2)
    bottom = out[..., list(PENN.scale[1]), :].mean(-2)
    torch.testing.assert_close((top - bottom).norm(dim=-1), torch.ones(1, 4))


def test_flip_twice_is_identity_and_swaps_left_right():
    xy = _skeleton()[..., :2]
    perm = PENN.joint_flip_permutation
    centre = torch.tensor([100.0])
    once = aug.flip(xy, perm, centre, torch.tensor([True]))
    l, r = PENN.index("l_wrist"), PENN.index("r_wrist")
    torch.testing.assert_close(once[..., l, 0], 200 - xy[..., r, 0])
    torch.testing.assert_close(aug.flip(once, perm, centre, torch.tensor([True])), xy)


def test_subtree_rotation_keeps_bone_lengths_and_moves_only_the_subtree():
    xy = _skeleton()[..., :2]
    parents = kinematic_parents(PENN)
    sub = descendants(parents)
    elbow = PENN.index("l_elbow")
    angles = torch.zeros(1, PENN.n_joints)
    angles[0, elbow] = 0.7
    out = aug.rotate_subtrees(xy, parents, sub, angles, torch.Generator().manual_seed(0))
    moved = (out - xy).norm(dim=-1)[0, 0] > 1e-4
    assert moved.tolist() == sub[elbow].tolist()
    for k, p in enumerate(parents):
        if p >= 0:
            torch.testing.assert_close((out[..., k, :] - out[..., p, :]).norm(dim=-1), (xy[..., k, :] - xy[..., p, :]).norm(dim=-1))


def test_3d_rotation_keeps_bone_lengths():
    torch.manual_seed(1)
    xyz = torch.randn(2, 3, PENN.n_joints, 3)
    parents = kinematic_parents(PENN)
    angles = aug.limb_angles(parents, 2, std=0.5, p=1.0, one_limb=False, gen=torch.Generator().manual_seed(0))
    out = aug.rotate_subtrees(xyz, parents, descendants(parents), angles, torch.Generator().manual_seed(0))
    for k, p in enumerate(parents):
        if p >= 0:
            torch.testing.assert_close((out[..., k, :] - out[..., p, :]).norm(dim=-1), (xyz[..., k, :] - xyz[..., p, :]).norm(dim=-1))


def test_casa_angle_noise_is_actually_applied():
    joints = _skeleton()
    coords = CoordinateInput("joints_2d", (PENN.n_joints, 3), "penn13", "sequence", True)
    xy, conf = coords.prepare(joints, torch.ones(1, 4, dtype=torch.bool))
    only_angles = repo_params("masa.augment", SkeletonAugmentParams, flip_p=0, angle_p=1.0, angle_std_deg=10, translate_p=0, noise_p=0)
    out, _ = coords.augment(xy, conf, only_angles, torch.Generator().manual_seed(0))
    assert (out - xy).abs().max() > 1e-3
    none = repo_params("masa.augment", SkeletonAugmentParams, flip_p=0, angle_p=0, translate_p=0, noise_p=0)
    same, _ = coords.augment(xy, conf, none, torch.Generator().manual_seed(0))
    torch.testing.assert_close(same, xy)


def test_one_limb_rotation_picks_one_joint_per_sequence():
    parents = kinematic_parents(PENN)
    angles = aug.limb_angles(parents, 64, std=0.1, p=1.0, one_limb=True, gen=torch.Generator().manual_seed(0))
    assert torch.all((angles != 0).sum(1) == 1)
    assert angles.abs().max() < math.pi


def test_normalise_never_leaves_a_sequence_in_pixels():
    """A sequence whose root and scale joints are never confident still comes out near unit size."""
    joints = _skeleton(T=5)
    for group in (PENN.root, PENN.scale[0], PENN.scale[1]):
        joints[..., list(group), 2] = 0
    xy, conf = split_joints(joints, True)
    out = normalise(xy, conf, torch.ones(1, 5, dtype=torch.bool), PENN, "sequence")
    assert out.abs().max() < 10
