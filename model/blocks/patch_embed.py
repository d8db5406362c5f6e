"""The linear patch embedding of a heatmap encoder, with its weight gradient computed the fast way round.

    patches (..., K) --x W^T + b--> tokens (..., D)        K = channels * p * p (LA2DS: 27 * 10 * 10 = 2,700)

The same maths as `nn.Linear`; only the backward differs. Autograd computes the weight gradient as
grad^T @ x, a (D, N) @ (N, K) product whose long reduction (N: every patch of every frame of a batch, ~40-80k)
runs along the rows of both operands. oneDNN computes the same product as x^T @ grad, (K, N) @ (N, D),
transposed afterwards, 1.5-1.9x faster on the CPU in bfloat16 (2 cores, N 8k-77k, K 2700, D 64: 80 against
149 ms at N 50k); for layers of width 64-192 the two orders cost the same, so only this wide layer uses it.
The input needs no gradient in LA2DS (maps are data), and none is computed unless asked.

On the CPU the encoder skips the patches altogether: `PatchEmbed.from_nonzero` computes the same products from
the maps' nonzero values (`model.sparse_patches`: ~5% of a heatmap), forward and weight gradient, in float32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from model import sparse_patches


class _PatchLinear(torch.autograd.Function):
    """y = x W^T + b in x's dtype (under autocast the caller has already cast x), gradients in the
    parameters' dtype."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        w = weight.to(x.dtype)
        ctx.save_for_backward(x, w)
        ctx.param_dtype = weight.dtype
        return F.linear(x, w, bias.to(x.dtype))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        x, w = ctx.saved_tensors
        grad = grad.to(x.dtype)
        flat_x, flat_grad = x.reshape(-1, x.shape[-1]), grad.reshape(-1, grad.shape[-1])
        grad_x = grad @ w if ctx.needs_input_grad[0] else None
        grad_w = (flat_x.t() @ flat_grad).t().to(ctx.param_dtype)  # (K, N) @ (N, D): the fast order (docstring)
        grad_b = flat_grad.sum(0, dtype=torch.float32).to(ctx.param_dtype)
        return grad_x, grad_w, grad_b


class _SparsePatchLinear(torch.autograd.Function):
    """y = patches W^T + b from the patches' nonzero values (`model.sparse_patches`), in float32, returned in
    `dtype`; gradients of the weight and bias only (maps are data)."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, bias: torch.Tensor, nz: sparse_patches.NonzeroPatches,
                dtype: torch.dtype) -> torch.Tensor:
        ctx.nz, ctx.param_dtype = nz, weight.dtype
        return (sparse_patches.embed(nz, weight) + bias.detach().float()).to(dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None, None]:
        grad_w = sparse_patches.weight_grad(ctx.nz, grad).to(ctx.param_dtype)
        grad_b = grad.sum((0, 1), dtype=torch.float32).to(ctx.param_dtype)
        return grad_w, grad_b, None, None


class PatchEmbed(nn.Linear):
    """`nn.Linear(in_features, out_features)` (same parameters, state dict and initialisation) whose forward
    runs in the patches' dtype (the encoder casts them once, to autocast's dtype where it is on:
    `HeatmapEncoder.patches`) and whose weight gradient is computed as x^T @ grad (module docstring)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., in_features) -> (..., out_features) in x's dtype."""
        return _PatchLinear.apply(x, self.weight, self.bias)

    def from_nonzero(self, nz: sparse_patches.NonzeroPatches, dtype: torch.dtype) -> torch.Tensor:
        """The tokens of N frames' patches from their nonzero values (`sparse_patches.nonzero_patches`, on the
        CPU), without making the patches -> (N, (S/p)^2, out_features) in `dtype`, computed in float32; patch
        inputs ordered channel by channel, row by row, as `HeatmapEncoder.patches` orders them."""
        return _SparsePatchLinear.apply(self.weight, self.bias, nz, dtype)
