"""The CPU patch embedding from the maps' nonzero values (model/sparse_patches.py): the dense products' values
and weight gradients, for float16 batches and float32 frames, the same on any thread count; the encoder's
tokens either way."""

from __future__ import annotations

import pytest
import torch

from model import sparse_patches
from model.blocks.encoders import HeatmapEncoder
from model.blocks.patch_embed import PatchEmbed

B, T, C, S, P, D = 3, 5, 4, 12, 4, 8
K = C * P * P


def _maps() -> torch.Tensor:
    """(B, T, C, S, S) float16 maps, mostly zero as heatmaps are, with a subnormal, a negative value, -0 and an
    empty frame."""
    gen = torch.Generator().manual_seed(0)
    maps = torch.rand(B, T, C, S, S, generator=gen)
    maps = torch.where(maps > 0.9, maps, torch.zeros(())).half()  # ~10% nonzero: below MAX_DENSITY
    maps[0, 1, 2, 3, 4] = 2.0**-20
    maps[2, 4, 3, 0, 0] = -1.5
    maps[1, 0, 1, 5, 5] = -0.0
    maps[1, 2] = 0.0
    return maps


def _patches(frames: torch.Tensor) -> torch.Tensor:
    """(N, C, S, S) -> (N, n^2, K) float64, as HeatmapEncoder.patches orders them."""
    N, n = len(frames), S // P
    return frames.double().reshape(N, C, n, P, n, P).permute(0, 2, 4, 1, 3, 5).reshape(N, n * n, K)


def _weight() -> torch.Tensor:
    return torch.randn(D, K, generator=torch.Generator().manual_seed(1))


def test_a_batch_s_frames_embed_as_their_dense_patches_do():
    maps, w = _maps(), _weight()
    rows, frames = torch.tensor([2, 0, 0, 1, 2, 1]), torch.tensor([4, 1, 3, 2, 4, 0])  # a repeat, an empty frame
    nz = sparse_patches.nonzero_patches(maps, P, rows, frames, max_density=1.0)
    dense = _patches(maps[rows, frames])
    assert nz.offsets[-1] == int((maps[rows, frames] != 0).sum())  # -0 is not listed
    got = sparse_patches.embed(nz, w)
    assert got.dtype == torch.float32 and got.shape == (6, (S // P) ** 2, D)
    torch.testing.assert_close(got.double(), dense @ w.double().t(), rtol=1e-5, atol=1e-5)
    assert torch.equal(got[3], torch.zeros(9, D))  # the empty frame
    grad = torch.randn(6, 9, D, generator=torch.Generator().manual_seed(2))
    want = (grad.double().reshape(-1, D).t() @ dense.reshape(-1, K))
    torch.testing.assert_close(sparse_patches.weight_grad(nz, grad).double(), want, rtol=1e-5, atol=1e-5)


def test_float32_frames_are_read_whole():
    frames = _maps()[0].float() * 3.0
    frames[1, 0, 0, 0] = 1e-30  # float32 values below float16's range are kept
    nz = sparse_patches.nonzero_patches(frames, P, max_density=1.0)
    w = _weight()
    torch.testing.assert_close(sparse_patches.embed(nz, w).double(), _patches(frames) @ w.double().t(),
                               rtol=1e-5, atol=1e-5)


def test_the_sums_do_not_depend_on_the_thread_count():
    maps, w = _maps(), _weight()
    rows, frames = torch.arange(B).repeat_interleave(T), torch.arange(T).repeat(B)
    grad = torch.randn(B * T, 9, D, generator=torch.Generator().manual_seed(3))
    results = []
    for threads in (1, 2):
        nz = sparse_patches.nonzero_patches(maps, P, rows, frames, threads=threads, max_density=1.0)
        results.append((sparse_patches.embed(nz, w, threads), sparse_patches.weight_grad(nz, grad, threads)))
    assert all(torch.equal(a, b) for a, b in zip(*results, strict=True))


def test_patch_embed_from_nonzero_values_has_the_linear_layer_s_values_and_parameter_gradients():
    torch.manual_seed(0)
    embed = PatchEmbed(K, D)
    maps = _maps()
    rows, frames = torch.tensor([0, 2, 1]), torch.tensor([1, 4, 3])
    y = embed.from_nonzero(sparse_patches.nonzero_patches(maps, P, rows, frames, max_density=1.0), torch.bfloat16)
    assert y.dtype == torch.bfloat16
    grad = torch.randn(3, 9, D).bfloat16().float()  # what reaches the bfloat16 tokens, exactly
    y.float().backward(grad)
    assert embed.weight.grad.dtype == embed.bias.grad.dtype == torch.float32
    x = _patches(maps[rows, frames]).float()
    plain = torch.nn.Linear(K, D)
    plain.load_state_dict(embed.state_dict())
    y_plain = plain(x)
    y_plain.backward(grad)
    torch.testing.assert_close(y.float(), y_plain, rtol=1e-2, atol=1e-2)  # rounded to bfloat16 once
    torch.testing.assert_close(embed.weight.grad, plain.weight.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(embed.bias.grad, plain.bias.grad, rtol=1e-5, atol=1e-5)


def test_the_encoder_tokens_are_the_dense_path_s():
    enc = HeatmapEncoder(channels=C, size=S, patch=P, dim=D, heads=2, spatial_layers=1, temporal_layers=1,
                         max_len=16, clip_token=False)
    maps = _maps()
    rows, frames = torch.tensor([1, 0, 2]), torch.tensor([0, 4, 2])
    assert sparse_patches.nonzero_patches(maps, P, rows, frames) is not None  # sparse enough
    with torch.no_grad():
        dense = enc.patch_tokens(enc.patches(maps[rows, frames]))  # the path on other devices
        torch.testing.assert_close(enc.frame_tokens_at(maps, rows, frames), dense, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(enc.frame_tokens(maps[rows, frames].float()), dense, rtol=1e-5, atol=1e-5)
        noisy = maps + 0.01  # dense: the dense path, the same tokens
        assert sparse_patches.nonzero_patches(noisy, P, rows, frames) is None
        want = enc.patch_tokens(enc.patches(noisy[rows, frames]))
        torch.testing.assert_close(enc.frame_tokens_at(noisy, rows, frames), want, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(enc.frame_tokens(noisy[rows, frames]), want, rtol=1e-5, atol=1e-5)


def test_only_cpu_maps_without_gradient():
    maps = _maps()
    assert sparse_patches.handles(maps) and sparse_patches.handles(maps[0].float())
    assert not sparse_patches.handles(maps.double())
    assert not sparse_patches.handles(maps.float().requires_grad_())
    assert not sparse_patches.handles(maps[0, 0])
    assert not sparse_patches.handles(maps.transpose(3, 4))
    with pytest.raises(ValueError, match="contiguous float16 or float32"):
        sparse_patches.nonzero_patches(maps.double(), P)
    with pytest.raises(ValueError, match="needs the rows and frames"):
        sparse_patches.nonzero_patches(maps, P)
    with pytest.raises(ValueError, match="read whole"):
        sparse_patches.nonzero_patches(maps[0], P, torch.tensor([0]), torch.tensor([0]))
    with pytest.raises(ValueError, match="not a multiple of the patch size"):
        sparse_patches.nonzero_patches(maps[0], 5)
