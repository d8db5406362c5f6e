"""The compiled CPU patch gathering (model/cpu_gather.py) gives exactly the torch path's patches (gather,
reorder, cast) for bfloat16 and float32, and only where it applies."""

from __future__ import annotations

import pytest
import torch

from model import cpu_gather

B, T, C, S, P = 3, 5, 4, 12, 4


def _maps() -> torch.Tensor:
    maps = torch.rand(B, T, C, S, S, generator=torch.Generator().manual_seed(0)).half()
    maps[0, 1, 2, 3, 4] = 2.0**-20  # a float16 subnormal, a zero and a negative value travel exactly
    maps[1, 2, 0] = 0.0
    maps[2, 4, 3, 0, 0] = -1.5
    return maps


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_matches_the_torch_gather_reorder_and_cast(dtype):
    maps = _maps()
    rows, frames = torch.tensor([2, 0, 0, 1, 2]), torch.tensor([4, 1, 3, 2, 4])
    got = cpu_gather.gather_patches(maps, rows, frames, P, dtype)
    n = S // P
    want = maps[rows, frames].reshape(len(rows), C, n, P, n, P).permute(0, 2, 4, 1, 3, 5).to(dtype)
    assert got.dtype == dtype and torch.equal(got, want.reshape(len(rows), n * n, C * P * P))


def test_whole_frames_are_the_torch_gather_cast():
    maps = _maps()
    rows, frames = torch.tensor([1, 1, 0]), torch.tensor([3, 0, 4])
    assert torch.equal(cpu_gather.gather_frames(maps, rows, frames, torch.float32), maps[rows, frames].float())


def test_only_float16_maps_on_the_cpu_without_gradient():
    maps = _maps()
    assert not cpu_gather.handles(maps.float(), torch.float32)
    assert not cpu_gather.handles(maps, torch.float16)
    assert not cpu_gather.handles(maps.float().requires_grad_().half(), torch.float32)
    with pytest.raises(ValueError, match="float16 maps on the CPU"):
        cpu_gather.gather_patches(maps.float(), torch.tensor([0]), torch.tensor([0]), P, torch.float32)
