"""Sequence encoders shared by LA2DS, CASA and late fusion: (B, T, ...) inputs -> (B, T, D) frame tokens.

- `HeatmapEncoder` (LA2DS Sec. 3.3, a factorised ViViT): each frame's (C, S, S) heatmap is cut into
  p x p patches ((S / p)^2 tokens, linear to D) with a learned spatial positional encoding, passed through a
  spatial transformer and average-pooled into one frame token; frame tokens get a learned temporal positional
  encoding (unless `position_encoding` is false; read by frame index or by phase in the clip: `positions`) and
  pass through a temporal transformer, optionally led by a learned clip token whose output is one vector per
  sequence (`clip_token`; this project's addition, after MASA's).
- `VectorEncoder` (CASA, the RGB branch of late fusion): per-frame MLP, positional encoding (sinusoidal or
  learned), temporal self-attention.
Only real frames go through the spatial transformer; padding stays zero.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from model import cpu_gather, sparse_patches
from model.blocks import shape_ladder
from model.blocks.attention import SelfAttentionStack
from model.blocks.heads import mlp
from model.blocks.patch_embed import PatchEmbed
from model.blocks.positional import LearnedPE, Positions, SinusoidalPE, clip_positions, frame_positions


class HeatmapEncoder(nn.Module):
    def __init__(self, *, channels: int, size: int, patch: int, dim: int, heads: int, spatial_layers: int,
                 temporal_layers: int, max_len: int, clip_token: bool, ff_mult: int = 2, dropout: float = 0.0,
                 position_encoding: bool = True, positions: Positions = "index"):
        super().__init__()
        if size % patch:
            raise ValueError(f"heatmap size {size} is not a multiple of the patch size {patch}")
        self.patch = patch
        n_patches = (size // patch) ** 2
        self.embed = PatchEmbed(channels * patch * patch, dim)  # nn.Linear with a faster weight gradient
        self.spatial_pe = nn.Parameter(torch.randn(n_patches, dim) * 0.02)
        self.spatial = SelfAttentionStack(dim, heads, spatial_layers, ff_mult=ff_mult, dropout=dropout)
        # without it the temporal transformer sees a set of frames: each is placed by what it shows
        self.temporal_pe = LearnedPE(dim, max_len) if position_encoding else None
        self.positions = positions  # by phase, every clip spans the whole table (`clip_positions`)
        self.temporal = SelfAttentionStack(dim, heads, temporal_layers, ff_mult=ff_mult, dropout=dropout)
        # a learned clip token (no position) leads every sequence through the temporal transformer: its output
        # is one vector per sequence that has attended to every frame (MASA's clip token, at this level)
        self.clip_token = nn.Parameter(torch.randn(dim) * 0.02) if clip_token else None
        self.dim = dim

    def patch_dtype(self, device: torch.device) -> torch.dtype:
        """The dtype of the embedded patches on `device`: autocast's, else the weights' (the dense embedding
        computes in it; the CPU's sparse one computes in float32 and returns it)."""
        kind = device.type
        return torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else self.embed.weight.dtype

    def patches(self, maps: torch.Tensor) -> torch.Tensor:
        """(N, C, S, S) -> (N, (S/p)^2, C * p * p), patches in row-major order, in `patch_dtype`, whatever the
        maps' dtype (a batch may hold float16 maps: `model.batch.collate`): one copy does the reordering and
        the cast."""
        dtype = self.patch_dtype(maps.device)
        N, C, S, _ = maps.shape
        p, n = self.patch, S // self.patch
        out = torch.empty(N, n, n, C, p, p, dtype=dtype, device=maps.device)
        out.copy_(maps.reshape(N, C, n, p, n, p).permute(0, 2, 4, 1, 3, 5))
        return out.reshape(N, n * n, C * p * p)

    def frame_tokens(self, maps: torch.Tensor) -> torch.Tensor:
        """(N, C, S, S) heatmaps of N frames -> (N, D) pooled outputs of the spatial transformer."""
        # on the CPU, from the maps' nonzero values where they are sparse, as heatmaps are (model/sparse_patches.py)
        nz = sparse_patches.nonzero_patches(maps, self.patch) if sparse_patches.handles(maps) else None
        if nz is not None:
            return self.spatial_tokens(self.embed.from_nonzero(nz, self.patch_dtype(maps.device)))
        return self.patch_tokens(self.patches(maps))

    def frame_tokens_at(self, maps: torch.Tensor, rows: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """frame_tokens of maps[rows, frames] for a batch maps (B, T, C, S, S) and (F,) indices -> (F, D)."""
        dtype = self.patch_dtype(maps.device)
        # read where they lie in the batch: no copy of the frames
        nz = sparse_patches.nonzero_patches(maps, self.patch, rows, frames) if sparse_patches.handles(maps) else None
        if nz is not None:
            return self.spatial_tokens(self.embed.from_nonzero(nz, dtype))
        if cpu_gather.handles(maps, dtype):  # dense float16 maps on the CPU: one compiled pass (model/cpu_gather.py)
            return self.patch_tokens(cpu_gather.gather_patches(maps, rows, frames, self.patch, dtype))
        # whole frames are gathered first (contiguous runs), then reordered and cast in one copy: a third faster
        # than gathering through a patch-ordered view, which needs a gather, a reorder and a cast
        return self.frame_tokens(maps[rows, frames])

    def patch_tokens(self, patches: torch.Tensor) -> torch.Tensor:
        """(N, (S/p)^2, C * p * p) patches of N frames (`patches`) -> (N, D) pooled outputs of the spatial
        transformer."""
        return self.spatial_tokens(self.embed(patches))

    def spatial_tokens(self, embedded: torch.Tensor) -> torch.Tensor:
        """(N, (S/p)^2, D) embedded patches -> (N, D): spatial PE, the spatial transformer, the mean over patches."""
        n = embedded.shape[0]
        if shape_ladder.compiles_per_shape(embedded.device, embedded.dtype):
            # N changes every step: padded to a rung of the ladder, the matmuls reuse their compiled kernels
            # (model/blocks/shape_ladder.py); frames are independent, and the padded ones are dropped below
            embedded = F.pad(embedded, (0, 0, 0, 0, 0, shape_ladder.rows(n) - n))
        tokens = embedded + self.spatial_pe
        return self.spatial(tokens, None)[:n].mean(dim=1)  # every patch is real: no mask to apply

    def forward(self, maps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """maps: (B, T, C, S, S), mask: (B, T) -> (B, T, D), zero on padding."""
        return self.sequence(self.frame_tokens(maps[mask]), mask)

    def forward_clip(self, maps: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """maps: (B, T, C, S, S), mask: (B, T) -> frames (B, T, D) zero on padding, and the clip token's output
        (B, D) (None without a clip token)."""
        return self.encode(self.frame_tokens(maps[mask]), mask)

    def sequence(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Frame tokens (F, D) of the real frames, packed row by row (`x[mask]` order), mask: (B, T) ->
        (B, T, D) through the temporal transformer, zero on padding."""
        return self.encode(tokens, mask)[0]

    def encode(self, tokens: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`sequence`, and the clip token's output (B, D) (None without a clip token)."""
        B, T = mask.shape
        frames = torch.zeros(B, T, self.dim, device=tokens.device, dtype=tokens.dtype)
        frames[mask] = tokens
        x = frames  # zero on padding
        if self.temporal_pe is not None:
            x = (x + self.temporal_pe(clip_positions(mask, self.positions, self.temporal_pe.table.shape[0])))
            x = x * mask.unsqueeze(-1)
        if self.clip_token is None:
            return self.temporal(x, mask), None
        lead = self.clip_token.to(x.dtype).expand(B, 1, -1)
        out = self.temporal(torch.cat((lead, x), 1), torch.cat((mask.new_ones(B, 1), mask), 1))
        return out[:, 1:], out[:, 0]  # the stack zeroes padding already


class VectorEncoder(nn.Module):
    def __init__(self, *, dim_in: int, hidden: int, dim: int, heads: int, layers: int,
                 positional: Literal["sinusoidal", "learned"], max_len: int = 1024, ff_mult: int = 2,
                 dropout: float = 0.0):
        super().__init__()
        self.frame_mlp = mlp([dim_in, hidden, dim])
        self.pe = SinusoidalPE(dim) if positional == "sinusoidal" else LearnedPE(dim, max_len)
        self.temporal = SelfAttentionStack(dim, heads, layers, ff_mult=ff_mult, dropout=dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: (B, T, F), mask: (B, T) -> (B, T, D), zero on padding."""
        tokens = (self.frame_mlp(x) + self.pe(frame_positions(mask))) * mask.unsqueeze(-1)
        return self.temporal(tokens, mask)
