"""pipeline.heatmaps.raster_torch.render_torch agrees with the NumPy renderer, batched, with missing joints and flips."""

import numpy as np
import pytest
import torch

from pipeline.heatmaps.raster import crop_box, flip_heatmaps, render
from pipeline.heatmaps.raster_torch import flip_heatmaps_torch, render_torch
from pipeline.skeletons.layouts import get_layout


def _joints(rng, shape, missing=True):
    joints = np.empty(shape + (3,))
    joints[..., :2] = rng.uniform(50, 350, shape + (2,))
    joints[..., 2] = rng.uniform(0.1, 1.0, shape)
    if missing:
        joints[..., 0, 2] = 0.0  # one joint always missing
        joints[..., 1, 0] = np.nan  # and one with a NaN coordinate
        joints[..., 2, 2] = np.nan  # and one with a NaN confidence
    return joints


@pytest.mark.parametrize("name,sigma", [("penn13", 1.0), ("penn13", 2.0), ("hands42", 0.8), ("body25", 1.5)])
def test_torch_equals_numpy(name, sigma):
    layout = get_layout(name)
    joints = _joints(np.random.default_rng(0), (40, layout.n_joints))
    box = crop_box(joints, pad=0.1, square=True)
    expected = render(joints, layout.limbs, box, 30, sigma)
    got = render_torch(torch.tensor(joints, dtype=torch.float32), layout.limbs, box, 30, sigma)
    assert got.shape == expected.shape and got.dtype == torch.float32
    assert torch.isfinite(got).all()
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-5)


def test_batched_with_one_box_per_sequence():
    layout = get_layout("penn13")
    rng = np.random.default_rng(1)
    joints = _joints(rng, (3, 12, layout.n_joints))
    boxes = [crop_box(seq, pad=0.05, square=False) for seq in joints]
    got = render_torch(torch.tensor(joints, dtype=torch.float32), layout.limbs, torch.tensor(boxes), 24, 1.2)
    assert got.shape == (3, 12, layout.n_channels, 24, 24)
    for b in range(3):
        np.testing.assert_allclose(got[b].numpy(), render(joints[b], layout.limbs, boxes[b], 24, 1.2), atol=1e-5)


def test_float64_and_no_limbs():
    joints = _joints(np.random.default_rng(2), (5, 4), missing=False)
    box = crop_box(joints)
    got = render_torch(torch.tensor(joints), [], box, 16, 1.0)
    assert got.dtype == torch.float64 and got.shape == (5, 4, 16, 16)
    np.testing.assert_allclose(got.numpy(), render(joints, [], box, 16, 1.0), atol=1e-5)


def test_torch_flip_equals_numpy_flip():
    layout = get_layout("penn13")
    maps = np.random.default_rng(3).random((2, layout.n_channels, 30, 30)).astype(np.float32)
    np.testing.assert_array_equal(flip_heatmaps_torch(torch.from_numpy(maps), layout).numpy(), flip_heatmaps(maps, layout))


def test_cpu_fast_path_equals_the_dense_torch_maps():
    """float32 CPU tensors go through the compiled renderer; float64 through dense torch: same maps."""
    import numpy as np
    import torch

    from pipeline.heatmaps.raster_torch import render_torch
    from pipeline.skeletons.layouts import PENN13

    rng = np.random.default_rng(4)
    joints = np.concatenate([rng.uniform(0, 100, (2, 5, 13, 2)), (rng.random((2, 5, 13, 1)) > 0.2)], -1)
    boxes = torch.tensor([[0.0, 0.0, 100.0, 100.0], [10.0, -5.0, 90.0, 110.0]])
    fast = render_torch(torch.tensor(joints, dtype=torch.float32), PENN13.limbs, boxes, 30, 1.5)
    dense = render_torch(torch.tensor(joints, dtype=torch.float64), PENN13.limbs, boxes.double(), 30, 1.5)
    assert fast.shape == dense.shape == (2, 5, PENN13.n_channels, 30, 30)
    torch.testing.assert_close(fast.double(), dense, atol=1e-5, rtol=1e-5)
