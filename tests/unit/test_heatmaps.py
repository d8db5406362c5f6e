"""pipeline.heatmaps.raster: the DESIGN.md Sec. 3 formulas, windows, missing joints, crop boxes and flips."""

import math

import numpy as np
import pytest

from pipeline.heatmaps.raster import (
    CUTOFF,
    crop_box,
    flip_heatmaps,
    quantise,
    render,
    to_grid,
)
from pipeline.skeletons.layouts import get_layout

S = 30
BOX = (0.0, 0.0, 30.0, 30.0)  # one pixel per cell: grid u = x - 0.5


def _reference(joints, limbs, box, size, sigma):
    """The formulas written cell by cell, densely: the slow, obvious version of `render`."""
    grid = to_grid(joints, box, size).astype(np.float64)
    out = np.zeros((len(joints), joints.shape[1] + len(limbs), size, size))
    r2 = 2 * sigma**2 * math.log(1 / CUTOFF)
    for t in range(len(joints)):
        for r in range(size):
            for c in range(size):
                for k, (u, v, conf) in enumerate(grid[t]):
                    d2 = (c - u) ** 2 + (r - v) ** 2
                    out[t, k, r, c] = conf * math.exp(-d2 / (2 * sigma**2)) * (d2 <= r2)
                for m, (a, b) in enumerate(limbs):
                    p, q = grid[t, a, :2], grid[t, b, :2]
                    seg = q - p
                    tt = 0.0 if seg @ seg == 0 else np.clip((np.array([c, r]) - p) @ seg / (seg @ seg), 0, 1)
                    d2 = float(np.sum((np.array([c, r]) - p - tt * seg) ** 2))
                    conf = min(grid[t, a, 2], grid[t, b, 2])
                    out[t, len(grid[t]) + m, r, c] = conf * math.exp(-d2 / (2 * sigma**2)) * (d2 <= r2)
    return out


def _pose(xy, conf=1.0):
    xy = np.asarray(xy, dtype=np.float64)
    return np.concatenate([xy, np.full(xy.shape[:-1] + (1,), conf)], axis=-1)


@pytest.mark.parametrize("sigma", [0.7, 1.5])
def test_matches_reference_formulas(sigma):
    rng = np.random.default_rng(0)
    joints = _pose(rng.uniform(-3, 33, (3, 4, 2)))
    joints[..., 2] = rng.uniform(0.2, 1.0, (3, 4))
    joints[1, 2, 2] = 0.0
    limbs = [(0, 1), (1, 2), (2, 3), (3, 0), (0, 2)]
    joints[2, 3, :2] = joints[2, 0, :2]  # a zero-length limb is the joint's Gaussian
    got = render(joints, limbs, BOX, S, sigma)
    np.testing.assert_allclose(got, _reference(joints, limbs, BOX, S, sigma), atol=2e-6)


def test_peak_at_the_joint_with_its_confidence():
    joints = _pose([[[12.5, 7.5], [3.2, 20.9]]], conf=0.8)  # grid (12, 7) exactly, and (2.7, 20.4)
    maps = render(joints, [], BOX, S, 1.0)
    assert maps.dtype == np.float32 and maps.shape == (1, 2, S, S)
    assert np.unravel_index(maps[0, 0].argmax(), (S, S)) == (7, 12)
    assert maps[0, 0, 7, 12] == pytest.approx(0.8)
    assert np.unravel_index(maps[0, 1].argmax(), (S, S)) == (20, 3)


def test_limb_is_symmetric_about_its_segment_and_flat_along_it():
    joints = _pose([[[5.5, 15.5], [21.5, 15.5]]])  # grid (5, 15) -> (21, 15): along row 15
    limb = render(joints, [(0, 1)], BOX, S, 1.2)[0, 2]
    np.testing.assert_array_equal(limb[15 - 5 : 15], limb[16 : 21][::-1])
    np.testing.assert_allclose(limb[15, 5:22], 1.0)
    np.testing.assert_allclose(limb[15, 4], math.exp(-1 / (2 * 1.2**2)), rtol=1e-6)
    diagonal = render(_pose([[[4.5, 4.5], [24.5, 24.5]]]), [(0, 1)], BOX, S, 1.2)[0, 2]
    np.testing.assert_allclose(diagonal, diagonal.T, atol=1e-7)  # mirror about the line r = c


def test_confidence_scales_joints_and_limbs_take_the_minimum():
    xy = np.random.default_rng(1).uniform(5, 25, (2, 3, 2))
    full = render(_pose(xy, 1.0), [(0, 1), (1, 2)], BOX, S, 1.0)
    joints = _pose(xy, 1.0)
    joints[:, 1, 2] = 0.5
    half = render(joints, [(0, 1), (1, 2)], BOX, S, 1.0)
    np.testing.assert_allclose(half[:, 1], 0.5 * full[:, 1], rtol=1e-6)
    np.testing.assert_allclose(half[:, [0, 2]], full[:, [0, 2]])
    np.testing.assert_allclose(half[:, 3:], 0.5 * full[:, 3:], rtol=1e-6)


@pytest.mark.parametrize("missing", [(np.nan, 3.0, 1.0), (3.0, 4.0, 0.0), (3.0, 4.0, np.nan), (1e30, 4.0, 1.0)])
def test_missing_joints_give_zero_channels_and_no_nan(missing):
    joints = _pose([[[10.5, 10.5], [20.5, 20.5], [15.5, 5.5]]])
    joints[0, 1] = missing
    maps = render(joints, [(0, 1), (0, 2)], BOX, S, 1.0)
    assert np.isfinite(maps).all()
    assert not maps[0, 1].any() and not maps[0, 3].any()  # the joint and the limb touching it
    assert maps[0, 0].max() > 0.9 and maps[0, 4].max() > 0.9


def test_values_below_cutoff_are_zero_and_nothing_coarser():
    maps = render(_pose([[[15.3, 14.8], [3.0, 27.0]]]), [(0, 1)], BOX, S, 1.5)
    assert ((maps == 0) | (maps >= CUTOFF * (1 - 1e-5))).all()
    assert (maps[0, 0] > 0).sum() > math.pi * (1.5 * 3.6) ** 2  # the window is the full 3.7-sigma disc


def test_threads_give_identical_maps():
    joints = _pose(np.random.default_rng(2).uniform(0, 30, (300, 13, 2)))
    limbs = get_layout("penn13").limbs
    np.testing.assert_array_equal(render(joints, limbs, BOX, threads=1), render(joints, limbs, BOX, threads=2))


def test_crop_contains_every_confident_joint():
    rng = np.random.default_rng(3)
    joints = _pose(rng.uniform(100, 500, (20, 13, 2)))
    joints[4, 2] = (5000.0, -900.0, 0.0)  # an unconfident outlier does not stretch the box
    joints[6, 7, :2] = np.nan
    for pad, square in [(0.0, False), (0.15, True)]:
        x0, y0, x1, y1 = crop_box(joints, pad=pad, square=square)
        ok = joints[..., 2] > 0
        ok[6, 7] = False
        xy = joints[ok][:, :2]
        assert (xy[:, 0] >= x0).all() and (xy[:, 0] <= x1).all() and (xy[:, 1] >= y0).all() and (xy[:, 1] <= y1).all()
        if square:
            assert x1 - x0 == pytest.approx(y1 - y0)
    tight = crop_box(joints)
    assert tight[0] == pytest.approx(joints[ok][:, 0].min()) and tight[3] == pytest.approx(joints[ok][:, 1].max())
    grid = to_grid(joints, crop_box(joints, pad=0.1, square=True), S)
    assert (grid[ok][:, :2] >= -0.5).all() and (grid[ok][:, :2] <= S - 0.5).all()


def test_crop_of_one_point_and_of_nothing():
    x0, y0, x1, y1 = crop_box(_pose([[[50.0, 60.0]]]), min_size=4.0)
    assert (x0, y0, x1, y1) == (48.0, 58.0, 52.0, 62.0)
    empty = _pose([[[50.0, 60.0]]], conf=0.0)
    with pytest.raises(ValueError, match="no confident joint"):
        crop_box(empty)
    assert crop_box(empty, fallback=(0, 0, 640, 480)) == (0.0, 0.0, 640.0, 480.0)


@pytest.mark.parametrize("name", ["penn13", "body25", "hands42"])
def test_flip_equals_rendering_the_mirrored_skeleton(name):
    layout = get_layout(name)
    rng = np.random.default_rng(4)
    joints = _pose(rng.uniform(40, 160, (3, layout.n_joints, 2)))
    joints[0, 1, 2] = 0.0
    box = crop_box(joints, pad=0.1, square=True)
    mirrored = joints[:, list(layout.joint_flip_permutation)].copy()
    mirrored[..., 0] = box[0] + box[2] - mirrored[..., 0]
    flipped = flip_heatmaps(render(joints, layout.limbs, box, S, 1.0), layout)
    np.testing.assert_allclose(flipped, render(mirrored, layout.limbs, box, S, 1.0), atol=1e-5)


def test_bad_inputs_are_refused():
    joints = _pose([[[1.0, 2.0], [3.0, 4.0]]])
    with pytest.raises(ValueError, match="out of range"):
        render(joints, [(0, 2)], BOX)
    with pytest.raises(ValueError, match=r"\(T, K, 3\)"):
        render(joints[0], [], BOX)
    with pytest.raises(ValueError, match="empty"):
        render(joints, [], (5.0, 0.0, 5.0, 10.0))
    with pytest.raises(ValueError, match="channels"):
        flip_heatmaps(np.zeros((1, 5, S, S)), get_layout("penn13"))


def test_quantise_float16_is_exact_and_uint8_within_half_a_level():
    rng = np.random.default_rng(5)
    maps = np.concatenate([rng.random(50_000), rng.random(5_000) * 1e-4, [0.0, 1.0, 65519.0, 1e6, 3e-8]]).astype(np.float32)
    half, scale = quantise(maps, "float16")
    assert half.dtype == np.float16 and scale == 1.0
    with np.errstate(over="ignore"):  # 1e6 overflows to inf in both
        np.testing.assert_array_equal(half.view(np.uint16), maps.astype(np.float16).view(np.uint16))
    levels, scale = quantise(maps.reshape(5, -1, 1)[:, :100], "uint8")
    assert levels.dtype == np.uint8 and levels.shape == (5, 100, 1)
    h = np.clip(maps.reshape(5, -1, 1)[:, :100], 0, 1)
    assert np.abs(levels * scale - h).max() <= 0.5 / 255 + 1e-6
    with pytest.raises(ValueError, match="uint8"):
        quantise(maps, "int4")
