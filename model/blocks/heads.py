"""Per-frame MLPs: the frame encoder and the projection heads (with batch norm over real frames only)."""

from __future__ import annotations

import torch
from torch import nn


def mlp(sizes: list[int] | tuple[int, ...], *, final_activation: bool = False) -> nn.Sequential:
    """Linear layers of the given sizes with ReLU between them, e.g. [in, hidden, out]."""
    if len(sizes) < 2:
        raise ValueError(f"an MLP needs at least an input and an output size, got {sizes}")
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or final_activation:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class MaskedBatchNorm(nn.Module):
    """BatchNorm1d over the real frames of a padded (B, T, D) batch; padding neither feeds nor receives it."""

    def __init__(self, dim: int):
        super().__init__()
        self.bn = nn.BatchNorm1d(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: (B, T, D), mask: (B, T) -> (B, T, D), zero on padding."""
        out = torch.zeros_like(x)
        out[mask] = self.bn(x[mask])
        return out


class ProjectionHead(nn.Module):
    """Frame-wise projection head: `depth` linear layers, with batch norm and ReLU between them.

    MASA: 4 layers with batch norm (SimSiam's projector); LA2DS/CASA: 2 layers (one hidden layer), no
    batch norm.
    """

    def __init__(self, dim_in: int, dim_hidden: int, dim_out: int, *, depth: int, batch_norm: bool):
        super().__init__()
        if depth < 1:
            raise ValueError(f"projection head depth must be >= 1, got {depth}")
        sizes = [dim_in] + [dim_hidden] * (depth - 1) + [dim_out]
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.norms = nn.ModuleList(MaskedBatchNorm(b) for b in sizes[1:-1]) if batch_norm else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: (B, T, D_in), mask: (B, T) -> (B, T, D_out), zero on padding."""
        for i, linear in enumerate(self.linears):
            x = linear(x)
            if i < len(self.linears) - 1:
                if self.norms is not None:
                    x = self.norms[i](x, mask)
                x = torch.relu(x)
        return x * mask.unsqueeze(-1)
