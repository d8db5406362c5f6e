"""The cross-sequence part of LA2DS / CASA: MLP + positional encoding + cross-attention, then projection.

    tokens U0 (B, T, D) --MLP--> + sinusoidal PE --cross-attention to the other sequence--> U --projection--> Z

The PE is left out with `position_encoding=False` (LA2DS's switch): then no frame index reaches the head. It
reads a frame's index, or its phase in the clip stretched onto 0..phase_steps-1 (`positions`).
Cross-attention runs both ways between the original and the augmented sequence with shared weights; at
inference a sequence attends to itself. U is the embedding (LA2DS's f_theta "up to the cross attention
module"); Z (projection head with one hidden layer) only feeds the loss.
"""

from __future__ import annotations

import torch
from torch import nn

from model.blocks.attention import AttentionLayer
from model.blocks.heads import ProjectionHead, mlp
from model.blocks.positional import Positions, SinusoidalPE, clip_positions


class AlignmentHead(nn.Module):
    def __init__(self, *, dim: int, heads: int, cross_layers: int, proj_hidden: int, proj_dim: int,
                 ff_mult: int = 2, dropout: float = 0.0, position_encoding: bool = True,
                 positions: Positions = "index", phase_steps: int = 1024):
        super().__init__()
        self.mlp = mlp([dim, dim, dim])
        self.pe = SinusoidalPE(dim) if position_encoding else None
        self.positions, self.phase_steps = positions, phase_steps
        self.cross = nn.ModuleList(AttentionLayer(dim, heads, cross=True, ff_mult=ff_mult, dropout=dropout)
                                   for _ in range(cross_layers))
        self.norm = nn.LayerNorm(dim)
        self.projection = ProjectionHead(dim, proj_hidden, proj_dim, depth=2, batch_norm=False)

    def _prepare(self, u: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.mlp(u)
        if self.pe is not None:
            x = x + self.pe(clip_positions(mask, self.positions, self.phase_steps))
        return x * mask.unsqueeze(-1)

    def embed_pair(self, u1: torch.Tensor, m1: torch.Tensor, u2: torch.Tensor, m2: torch.Tensor):
        """(B, M, D), (B, M), (B, N, D), (B, N) -> the two sequences' embeddings after cross-attention."""
        a, b = self._prepare(u1, m1), self._prepare(u2, m2)
        for layer in self.cross:
            a, b = layer(a, m1, b, m2), layer(b, m2, a, m1)
        return self.norm(a) * m1.unsqueeze(-1), self.norm(b) * m2.unsqueeze(-1)

    def forward_pair(self, u1: torch.Tensor, m1: torch.Tensor, u2: torch.Tensor, m2: torch.Tensor):
        """-> (U, U'), (Z, Z')."""
        e1, e2 = self.embed_pair(u1, m1, u2, m2)
        return (e1, e2), (self.projection(e1, m1), self.projection(e2, m2))

    def single(self, u: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Inference: (B, T, D) tokens -> (B, T, D) embeddings, cross-attention over the sequence itself."""
        a = self._prepare(u, mask)
        for layer in self.cross:  # both sequences of the pair are the same, so one stream suffices
            a = layer(a, mask, a, mask)
        return self.norm(a) * mask.unsqueeze(-1)
