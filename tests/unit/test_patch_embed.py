"""The patch embedding (model.blocks.patch_embed): nn.Linear's values and gradients, the weight gradient
computed the other way round."""

from __future__ import annotations

import torch
from torch import nn

from model.blocks.patch_embed import PatchEmbed


def _pair(k: int = 300, d: int = 16) -> tuple[nn.Linear, PatchEmbed]:
    torch.manual_seed(0)
    plain = nn.Linear(k, d)
    embed = PatchEmbed(k, d)
    embed.load_state_dict(plain.state_dict())  # same parameters under the same names
    return plain, embed


def test_float32_values_and_gradients_are_nn_linears():
    plain, embed = _pair()
    x = torch.randn(5, 9, 300, dtype=torch.float64).float()
    grad = torch.randn(5, 9, 16)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y1, y2 = plain(x1), embed(x2)
    torch.testing.assert_close(y2, y1)
    y1.backward(grad)
    y2.backward(grad)
    torch.testing.assert_close(embed.weight.grad, plain.weight.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(embed.bias.grad, plain.bias.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x2.grad, x1.grad, rtol=1e-5, atol=1e-5)


def test_bfloat16_patches_give_bfloat16_tokens_and_float32_gradients_close_to_float32_maths():
    _, embed = _pair()
    x = torch.rand(64, 9, 300).bfloat16()  # patches as the encoder casts them under autocast; no gradient
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = embed(x)
    assert y.dtype == torch.bfloat16
    grad = torch.randn_like(y, dtype=torch.float32).bfloat16()
    y.backward(grad)
    assert embed.weight.grad.dtype == embed.bias.grad.dtype == torch.float32
    xf, gf = x.float().reshape(-1, 300), grad.float().reshape(-1, 16)
    torch.testing.assert_close(embed.weight.grad, gf.t() @ xf, rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(embed.bias.grad, gf.sum(0), rtol=1e-3, atol=1e-3)
