"""Heatmap-space augmentation (model/inputs/heatmap_augment.py): the flip swaps left and right channels, an
identity affine returns the maps, shifts and rotations agree with rendering the moved skeleton, dropout
removes a joint as a missing keypoint would, and draws are repeatable."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from model.inputs import skeleton_augment as sk
from model.inputs.heatmap_augment import (
    HeatmapAugment,
    HeatmapAugmentParams,
    centres,
    identity,
    sequence_affine,
    warp,
)
from model.inputs.skeleton import descendants, kinematic_parents
from pipeline.heatmaps.raster_torch import render_torch
from pipeline.skeletons.layouts import get_layout
from tests.repo_params import repo_params

PENN = get_layout("penn13")
S = 30
BOX = torch.tensor([0.0, 0.0, 30.0, 30.0])  # one pixel per cell
# a standing person well inside the grid (pixels = cells + 0.5)
STANDING = torch.tensor([[15, 4], [12, 8], [18, 8], [10, 12], [20, 12], [9, 16], [21, 16], [13, 17], [17, 17],
                         [13, 22], [17, 22], [13, 27], [17, 27]], dtype=torch.float32) + 0.5


def _params(**on) -> HeatmapAugmentParams:
    """Every augmentation off (p 0), then `on`."""
    off = {f.name: 0.0 for f in dataclasses.fields(HeatmapAugmentParams)}
    return HeatmapAugmentParams(**{**off, "temporal_min_fraction": 1.0, **on})


def _joints(frames: int = 3, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    xy = STANDING.expand(frames, -1, -1) + 0.3 * torch.randn(frames, PENN.n_joints, 2, generator=gen)
    return torch.cat((xy, torch.ones(frames, PENN.n_joints, 1)), -1)  # (T, K, 3)


def _render(joints: torch.Tensor) -> torch.Tensor:
    return render_torch(joints, PENN.limbs, BOX, S, 1.0)


def _view(augment: HeatmapAugment, maps: torch.Tensor, src: torch.Tensor, mask: torch.Tensor,
          seed: int) -> torch.Tensor:
    """The whole augmented view (B, N, C, S, S), zero on padding: the changed frames HeatmapAugment returns
    put among the frames they came from."""
    frames, changed = augment(maps, src, mask, torch.Generator().manual_seed(seed))
    rows, cols = mask.nonzero(as_tuple=True)
    packed = maps[rows, src[rows, cols]]
    packed[changed] = frames
    out = maps.new_zeros(*mask.shape, *maps.shape[2:])
    out[mask] = packed
    return out


def _augment(maps: torch.Tensor, params: HeatmapAugmentParams, seed: int = 0) -> torch.Tensor:
    """One sequence (T, C, S, S), every frame kept, through HeatmapAugment."""
    T = maps.shape[0]
    src, mask = torch.arange(T)[None], torch.ones(1, T, dtype=torch.bool)
    return _view(HeatmapAugment(PENN, params), maps[None], src, mask, seed)[0]


def test_flip_lights_the_right_wrist_where_the_left_one_was_mirrored():
    joints = torch.zeros(1, PENN.n_joints, 3)
    joints[0, PENN.index("l_wrist")] = torch.tensor([6.5, 20.5, 1.0])  # only the left wrist is confident
    maps = _render(joints)
    left, right = PENN.index("l_wrist"), PENN.index("r_wrist")
    assert maps[0, left].max() == 1.0 and maps[0, right].max() == 0.0
    flipped = _augment(maps, _params(flip_p=1.0))
    assert flipped[0, left].max() == 0.0
    assert torch.equal(flipped[0, right], maps[0, left].flip(-1))  # a bare mirror is exact: cells reversed
    assert divmod(int(flipped[0, right].argmax()), S) == (20, S - 1 - 6)


def test_flip_equals_rendering_the_mirrored_skeleton():
    joints = _joints()
    mirrored = joints[:, list(PENN.joint_flip_permutation)].clone()
    mirrored[..., 0] = 30.0 - mirrored[..., 0]
    torch.testing.assert_close(_augment(_render(joints), _params(flip_p=1.0)), _render(mirrored), atol=1e-5, rtol=0)


def test_identity_affine_returns_the_input():
    maps = _render(_joints())  # (T, C, S, S)
    flat = maps.reshape(-1, S, S)
    torch.testing.assert_close(warp(flat, identity(len(flat))), flat, atol=1e-5, rtol=0)
    still = sequence_affine(torch.zeros(2), torch.ones(2), torch.zeros(2, 2), S)
    torch.testing.assert_close(still, identity(2))
    zero_stds = _params(affine_p=1.0, rotate_std=0.0, scale_std=0.0, translate_std=0.0)
    torch.testing.assert_close(_augment(maps, zero_stds), maps, atol=1e-5, rtol=0)


def test_a_whole_cell_shift_moves_the_map_by_one_cell():
    maps = _render(_joints(1))[0]  # (C, S, S)
    shift = sequence_affine(torch.zeros(1), torch.ones(1), torch.tensor([[1.0, 0.0]]), S).expand(len(maps), 2, 3)
    moved = warp(maps, shift)
    torch.testing.assert_close(moved[:, :, 1:], maps[:, :, :-1], atol=1e-5, rtol=0)
    assert torch.all(moved[:, :, 0].abs() < 1e-6)


def test_position_noise_is_close_to_rendering_the_jittered_joints():
    joints, seed = _joints(), 3
    got = _augment(_render(joints), _params(position_p=1.0, position_std=1.0), seed)
    gen = torch.Generator().manual_seed(seed)  # replay the draws: flip, 3 choices, pivot, angle, then the shifts
    torch.rand(1, generator=gen)
    for _ in range(3):
        torch.rand(1, generator=gen)
    torch.randint(10, (1,), generator=gen)
    torch.randn(1, generator=gen)
    shifts = torch.randn(1, 3, PENN.n_joints, 2, generator=gen)[0]
    moved = joints.clone()
    moved[..., :2] += shifts
    expected = _render(moved)
    assert (got - expected).abs().mean() < 0.1 * expected.mean()  # resampling (bicubic) differs a little
    at, _ = centres(got[:, : PENN.n_joints])  # every joint's blob is centred where the shifted joint renders
    torch.testing.assert_close(at, moved[..., :2] - 0.5, atol=0.1, rtol=0)


def test_limb_rotation_is_close_to_rotating_the_subtree_of_the_skeleton():
    joints, seed, std = _joints(), 5, 0.5
    augment = HeatmapAugment(PENN, _params(limb_p=1.0, limb_std=std))
    got = _augment(_render(joints), _params(limb_p=1.0, limb_std=std), seed)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(4):
        torch.rand(1, generator=gen)
    pivot = augment.pivots[torch.randint(len(augment.pivots), (1,), generator=gen)]
    angle = torch.randn(1, generator=gen) * std
    parents = kinematic_parents(PENN)
    angles = torch.zeros(1, PENN.n_joints)
    angles[0, pivot] = angle
    xy = sk.rotate_subtrees(joints[None, ..., :2], parents, descendants(parents), angles, gen)[0]
    expected = _render(torch.cat((xy, joints[..., 2:]), -1))
    moved = (expected - _render(joints)).abs().mean()
    assert moved > 0 and (got - expected).abs().mean() < 0.1 * moved


def test_dropout_removes_one_joint_and_its_limbs_per_frame():
    maps = _render(_joints())
    got = _augment(maps, _params(drop_p=1.0))
    for frame in range(len(maps)):
        gone = [c for c in range(PENN.n_channels) if got[frame, c].max() == 0]
        joint = gone[0]
        limbs = [PENN.n_joints + i for i, limb in enumerate(PENN.limbs) if joint in limb]
        assert gone == [joint, *limbs]


@pytest.mark.parametrize("section", ["la2ds.augment", "fusion_late.augment"])
def test_draws_repeat_with_the_seed_and_leave_padding_zero(section):
    params = repo_params(section, HeatmapAugmentParams, affine_p=0.5, drop_p=0.2, noise_p=0.5)
    maps = torch.stack([_render(_joints(4, seed)) for seed in range(6)])  # (B, T, C, S, S)
    pos = torch.tensor([[0, 1, 2, 3], [0, 2, 3, 0]] * 3)
    mask = torch.tensor([[True] * 4, [True, True, True, False]] * 3)
    augment = HeatmapAugment(PENN, params)
    a, b = (_view(augment, maps, pos, mask, 7) for _ in range(2))
    c = _view(augment, maps, pos, mask, 8)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (6, 4, PENN.n_channels, S, S)
    assert torch.all(maps[1, 0] == _render(_joints(4, 1))[0])  # the input is left as it was
    frames, changed = augment(maps, pos, mask, torch.Generator().manual_seed(7))
    assert changed.shape == (int(mask.sum()),) and len(frames) == int(changed.sum()) < len(changed)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # training autocasts on CUDA: positions stay float32
        in_autocast, _ = augment(maps, pos, mask, torch.Generator().manual_seed(7))
    assert in_autocast.dtype == torch.float32 and torch.equal(in_autocast, frames)


def test_la2ds_views_encode_as_the_whole_views_would():
    """Reading the original view in place and reusing the tokens of unchanged augmented frames changes nothing."""
    from model.batch import collate
    from model.method import InputSpec
    from model.methods.la2ds import La2ds, heatmap_views
    from tests.tiny_models import tiny_params

    torch.manual_seed(0)
    params = tiny_params("la2ds", augment=_params(temporal_p=1.0, temporal_min_fraction=0.5, flip_p=0.5, drop_p=0.1))
    model = La2ds(params, InputSpec({"heatmap": (PENN.n_channels, S, S)}, "penn13")).eval()
    batch = collate([{"heatmap": _render(_joints(n, n)).numpy()} for n in (5, 9, 7, 3)])
    views = heatmap_views(model.augment, batch, params, torch.Generator().manual_seed(1))
    assert 0 < int(views.changed.sum()) < len(views.changed)
    with torch.no_grad():
        u0, u1 = views.tokens(model.encoder)
        maps = batch.arrays["heatmap"]
        whole0 = model.encoder(maps[torch.arange(4)[:, None], views.g0] * views.m0[..., None, None, None], views.m0)
        src1 = views.g0.gather(1, views.pos)
        rows, cols = views.m1.nonzero(as_tuple=True)
        packed = maps[rows, src1[rows, cols]]
        packed[views.changed] = views.frames1
        whole1 = maps.new_zeros(*views.m1.shape, *maps.shape[2:])
        whole1[views.m1] = packed
        torch.testing.assert_close(u0, whole0, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(u1, model.encoder(whole1, views.m1), atol=1e-5, rtol=1e-4)
