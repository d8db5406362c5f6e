"""The torch twin of the heatmap renderer (pipeline/heatmaps/raster_torch.py): grid convention, joints, limbs,
missing joints, crop box, flips."""

from __future__ import annotations

import pytest
import torch

from pipeline.heatmaps.raster import CUTOFF
from pipeline.heatmaps.raster_torch import crop_box, flip_heatmaps_torch, render_torch
from pipeline.skeletons.layouts import get_layout

PENN = get_layout("penn13")


def test_joint_peaks_at_its_grid_cell():
    box = torch.tensor([0.0, 0.0, 30.0, 30.0])  # one pixel per cell: pixel centre (c + 0.5) is cell c
    joints = torch.tensor([[[10.5, 20.5, 1.0], [3.5, 4.5, 0.5]]])  # (T=1, K=2, 3)
    maps = render_torch(joints, [(0, 1)], box, size=30, sigma=1.5)
    assert maps.shape == (1, 3, 30, 30)
    assert divmod(int(maps[0, 0].argmax()), 30) == (20, 10)  # (row, col) = (v, u)
    assert maps[0, 0, 20, 10].item() == 1.0
    assert abs(maps[0, 1].max().item() - 0.5) < 1e-6  # scaled by confidence


def test_limb_is_brightest_along_its_segment_and_weighted_by_the_weaker_joint():
    box = torch.tensor([0.0, 0.0, 30.0, 30.0])
    joints = torch.tensor([[[5.5, 15.5, 1.0], [25.5, 15.5, 0.8]]])
    limb = render_torch(joints, [(0, 1)], box, size=30, sigma=1.0)[0, 2]
    assert torch.allclose(limb[15, 5:26], torch.full((21,), 0.8))
    assert limb[15, 0] < 0.8 and limb[10, 15] < 1e-3


def test_missing_joints_contribute_nothing():
    box = torch.tensor([0.0, 0.0, 30.0, 30.0])
    joints = torch.tensor([[[5.5, 5.5, 0.0], [float("nan"), 3.0, 1.0], [20.5, 20.5, 1.0]]])
    maps = render_torch(joints, [(0, 2), (1, 2)], box, size=30, sigma=1.0)
    assert maps[0, 0].max() == 0 and maps[0, 1].max() == 0 and maps[0, 3].max() == 0 and maps[0, 4].max() == 0
    assert maps[0, 2].max() > 0.9
    assert torch.isfinite(maps).all()


def test_crop_box_holds_every_confident_joint_and_is_square():
    joints = torch.tensor([[[10.0, 20.0, 1.0], [50.0, 30.0, 1.0], [500.0, 500.0, 0.0]]])
    x0, y0, x1, y1 = crop_box(joints, pad=0.0, square=True).tolist()
    assert (x0, x1) == (10.0, 50.0) and x1 - x0 == y1 - y0 and y0 <= 20 and y1 >= 30
    padded = crop_box(joints, pad=0.1, square=True)
    assert padded[2] - padded[0] == 48.0


def test_flipping_the_skeleton_flips_the_maps_and_swaps_channels():
    torch.manual_seed(0)
    xy = torch.rand(2, PENN.n_joints, 2) * 80 + 10
    joints = torch.cat((xy, torch.ones(2, PENN.n_joints, 1)), -1)
    box = crop_box(joints, pad=0.0, square=True)
    mirrored = joints[:, list(PENN.joint_flip_permutation)].clone()
    mirrored[..., 0] = box[0] + box[2] - mirrored[..., 0]
    maps, maps_f = render_torch(joints, PENN.limbs, box), render_torch(mirrored, PENN.limbs, box)
    torch.testing.assert_close(maps_f, flip_heatmaps_torch(maps, PENN), atol=1e-5, rtol=1e-4)


def test_limb_maps_match_a_brute_force_distance_to_the_segment():
    torch.manual_seed(0)
    size, sigma = 12, 1.3
    joints = torch.cat((torch.rand(1, 3, 2) * 14 - 1, torch.rand(1, 3, 1)), -1)  # some outside the grid
    box = torch.tensor([0.0, 0.0, 12.0, 12.0])
    limbs = [(0, 1), (1, 2)]
    maps = render_torch(joints, limbs, box, size=size, sigma=sigma)[0, 3:]
    uv = joints[0, :, :2] - 0.5
    for li, (a, b) in enumerate(limbs):
        for r in range(size):
            for c in range(size):
                p, pa, pb = torch.tensor([c, r], dtype=torch.float32), uv[a], uv[b]
                t = ((p - pa) @ (pb - pa) / ((pb - pa) @ (pb - pa))).clamp(0, 1)
                d2 = ((p - pa - t * (pb - pa)) ** 2).sum()
                g = torch.exp(-d2 / (2 * sigma**2))
                expected = min(joints[0, a, 2], joints[0, b, 2]) * g * (g >= CUTOFF)
                assert abs(maps[li, r, c] - expected) < 1e-5


def test_a_sequence_without_confident_joints_gets_the_fallback_box_and_zero_maps():
    joints = torch.cat((torch.rand(2, 4, PENN.n_joints, 2) * 50 + 10, torch.ones(2, 4, PENN.n_joints, 1)), -1)
    joints[1, ..., 2] = 0  # every visibility flag 0 (Penn Action sequence 1516)
    mask = torch.ones(2, 4, dtype=torch.bool)
    with pytest.raises(ValueError, match="no confident joint"):
        crop_box(joints, mask)
    box = crop_box(joints, mask, fallback=(0.0, 0.0, 1.0, 1.0))
    torch.testing.assert_close(box[0], crop_box(joints[:1], mask[:1])[0])
    assert box[1].tolist() == [0.0, 0.0, 1.0, 1.0]
    maps = render_torch(joints, PENN.limbs, box)
    assert maps[0].sum() > 0 and torch.all(maps[1] == 0)
