"""The compiled CPU patch gathering (model/blocks/cpu_gather.py) gives exactly the torch path's patches
(gather, reorder, cast) for bfloat16 and float32, and the encoder takes it only where it applies."""

from __future__ import annotations

import pytest
import torch

from model import cpu_gather
from model.blocks.encoders import HeatmapEncoder

B, T, C, S, P = 3, 5, 4, 12, 4


def _maps() -> torch.Tensor:
    maps = torch.rand(B, T, C, S, S, generator=torch.Generator().manual_seed(0)).half()
    maps[0, 1, 2, 3, 4] = 2.0**-20  # a float16 subnormal, a zero and a negative value travel exactly
    maps[1, 2, 0] = 0.0
    maps[2, 4, 3, 0, 0] = -1.5
    return maps


def _encoder() -> HeatmapEncoder:
    return HeatmapEncoder(channels=C, size=S, patch=P, dim=8, heads=2, spatial_layers=1, temporal_layers=1,
                          max_len=16, clip_token=False)


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


def test_float32_frames_become_the_bfloat16_patches_torch_casts():
    gen = torch.Generator().manual_seed(1)
    frames = torch.randn(6, C, S, S, generator=gen) * 10.0 ** torch.randint(-8, 4, (6, C, 1, 1), generator=gen)
    frames[0, 0, 0, :4] = torch.tensor([0.0, -0.0, 1.0 + 2.0**-8, 1.0 + 3 * 2.0**-8])  # ties to even, both ways
    n = S // P
    want = frames.reshape(6, C, n, P, n, P).permute(0, 2, 4, 1, 3, 5).to(torch.bfloat16).reshape(6, n * n, C * P * P)
    assert torch.equal(cpu_gather.bf16_patches(frames, P).view(torch.int16), want.view(torch.int16))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        enc = _encoder()
        assert torch.equal(enc.patches(frames).view(torch.int16), want.view(torch.int16))


def test_the_encoder_tokens_are_the_same_either_way():
    maps, enc = _maps(), _encoder()
    rows, frames = torch.tensor([1, 0, 2]), torch.tensor([0, 4, 2])
    assert cpu_gather.handles(maps, torch.float32)
    with torch.no_grad():
        torch.testing.assert_close(enc.frame_tokens_at(maps, rows, frames), enc.frame_tokens(maps[rows, frames]))


def test_only_float16_maps_on_the_cpu_without_gradient():
    maps = _maps()
    assert not cpu_gather.handles(maps.float(), torch.float32)
    assert not cpu_gather.handles(maps, torch.float16)
    assert not cpu_gather.handles(maps.float().requires_grad_().half(), torch.float32)
    assert not cpu_gather.handles_float32(maps.float(), torch.float32)
    with pytest.raises(ValueError, match="float32 frames on the CPU"):
        cpu_gather.bf16_patches(maps, P)
    with pytest.raises(ValueError, match="float16 maps on the CPU"):
        cpu_gather.gather_patches(maps.float(), torch.tensor([0]), torch.tensor([0]), P, torch.float32)
