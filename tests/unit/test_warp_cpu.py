"""The compiled CPU resampling (model/inputs/warp_cpu.py) gives grid_sample's bicubic values: resampled,
mirrored and kept channels, sources from other channels, points outside the grid, and every output read from
the frames as they were."""

from __future__ import annotations

import pytest
import torch

from model.inputs.heatmap_augment import centres, frame_centres, grid_sample_warp, resample_frames_torch
from model.inputs.warp_cpu import KEEP, MIRROR, WARP, resample_frames

F, C, S = 7, 5, 12


def _case(seed: int = 0):
    """Random frames (F, C, S, S) and, for frames sel, per-channel inverse maps (shifts up to ~3 grids, so some
    points fall outside), source channels (a permutation per frame) and modes (all three)."""
    gen = torch.Generator().manual_seed(seed)
    frames = torch.rand(F, C, S, S, generator=gen)
    sel = torch.tensor([5, 0, 3, 6])
    n = len(sel)
    source_of = torch.eye(2, 3).expand(n, C, 2, 3) + 0.3 * torch.randn(n, C, 2, 3, generator=gen)
    source_of[..., 2] = 3.0 * S * (torch.rand(n, C, 2, generator=gen) - 0.5)
    channel = torch.stack([torch.randperm(C, generator=gen) for _ in range(n)])
    mode = torch.tensor([KEEP, WARP, MIRROR])[torch.randint(3, (n, C), generator=gen)].to(torch.int8)
    mode[0] = WARP
    return frames, sel, source_of, channel, mode


def test_matches_grid_sample_for_every_mode():
    frames, sel, source_of, channel, mode = _case()
    got, want = frames.clone(), frames.clone()
    resample_frames(got, sel, source_of, channel, mode)
    resample_frames_torch(want, sel, source_of, channel, mode)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    untouched = torch.ones(F, dtype=torch.bool)
    untouched[sel] = False
    assert torch.equal(got[untouched], frames[untouched])  # frames not selected are left as they were
    kept = mode == KEEP
    assert torch.equal(got[sel][kept], frames[sel][kept])
    assert (got >= 0).all()


def test_blobs_match_grid_sample_where_only_their_neighbourhood_is_sampled():
    """Heatmap-like channels (a Gaussian blob on a zero grid, one channel empty) rotated, scaled and shifted,
    some off the grid: the loop samples only the cells near each blob, and every cell equals grid_sample's."""
    gen = torch.Generator().manual_seed(1)
    size, n_frames, n_channels = 30, 6, 4
    cells = torch.arange(size, dtype=torch.float32)
    centre = size * torch.rand(n_frames, n_channels, 2, generator=gen)
    frames = torch.exp(-((cells[None, None, None, :] - centre[..., 0, None, None]) ** 2
                         + (cells[None, None, :, None] - centre[..., 1, None, None]) ** 2) / 2)
    frames = torch.where(frames > 6e-8, frames, 0.0)  # float16's smallest value: the store's zeros
    frames[2, 1] = 0.0  # a missing joint
    sel = torch.arange(n_frames)
    angle = 0.6 * torch.randn(n_frames, n_channels, generator=gen)
    scale = torch.exp(0.2 * torch.randn(n_frames, n_channels, generator=gen))
    source_of = torch.zeros(n_frames, n_channels, 2, 3)
    source_of[..., 0, 0], source_of[..., 0, 1] = scale * angle.cos(), -scale * angle.sin()
    source_of[..., 1, 0], source_of[..., 1, 1] = scale * angle.sin(), scale * angle.cos()
    source_of[..., 2] = 8.0 * torch.randn(n_frames, n_channels, 2, generator=gen)
    source_of[0, 0] = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])  # a transpose: u steps along y only
    channel = torch.arange(n_channels).expand(n_frames, n_channels).contiguous()
    mode = torch.full((n_frames, n_channels), WARP, dtype=torch.int8)
    got, want = frames.clone(), frames.clone()
    resample_frames(got, sel, source_of, channel, mode)
    resample_frames_torch(want, sel, source_of, channel, mode)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    assert got[2, 1].abs().sum() == 0 and got.amax() > 0.5


def test_frame_centres_read_in_place_equal_the_gathered_ones():
    gen = torch.Generator().manual_seed(2)
    frames = torch.rand(F, C, S, S, generator=gen) ** 8  # peaked, like blobs
    frames[3, 1] = 0.0  # an empty channel: not found
    sel = torch.tensor([3, 0, 6, 3])
    got, found = frame_centres(frames, sel, 3)
    want, want_found = centres(frames[sel, :3])
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
    assert torch.equal(found, want_found) and not found[0, 1] and not found[3, 1] and found.sum() == 10


def test_a_swap_reads_the_frame_as_it_was():
    """Channel 0 <- channel 1 and channel 1 <- channel 0 in one call: a swap, not a copy of one of them."""
    frames = torch.rand(1, 2, S, S)
    got = frames.clone()
    resample_frames(got, torch.tensor([0]), torch.eye(2, 3).expand(1, 2, 2, 3), torch.tensor([[1, 0]]),
                    torch.full((1, 2), MIRROR, dtype=torch.int8))
    assert torch.equal(got[0, 0], frames[0, 1].flip(-1)) and torch.equal(got[0, 1], frames[0, 0].flip(-1))


def test_a_point_one_cell_right_samples_the_next_cell():
    frames = torch.rand(1, 1, S, S)
    shift = torch.tensor([[[[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]]])  # output (u, v) samples (u + 1, v)
    got = frames.clone()
    resample_frames(got, torch.tensor([0]), shift, torch.zeros(1, 1, dtype=torch.long),
                    torch.full((1, 1), WARP, dtype=torch.int8))
    torch.testing.assert_close(got[0, 0, :, :-1], frames[0, 0, :, 1:], atol=1e-6, rtol=0)
    torch.testing.assert_close(grid_sample_warp(frames[0], shift[0]), got[0], atol=1e-5, rtol=0)


def test_refuses_frames_it_cannot_read():
    frames, sel, source_of, channel, mode = _case()
    with pytest.raises(ValueError, match="float32"):
        resample_frames(frames.half(), sel, source_of, channel, mode)
    with pytest.raises(ValueError, match="not contiguous"):
        resample_frames(frames.transpose(2, 3), sel, source_of, channel, mode)
