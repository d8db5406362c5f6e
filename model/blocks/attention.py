"""Transformer layers with real padding masks.

Every layer takes `mask` (B, T) bool, True on real frames. Padded frames are excluded as keys (they never
receive attention weight) and their outputs are set to zero, so the output at a real frame is the same
whether or not the batch carries padding (CASA's public code attends to its zero padding; this does not).
`mask` None: every position is real (LA2DS's patches of a frame), and no masking is computed.
Layers are pre-norm (LayerNorm before attention and feed-forward), which trains stably without warm-up.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# `cpu_bfloat16_attention` holds all (B, heads, Tq, Tk) scores in float32 (and their softmax, for the backward);
# beyond this many (128 MiB each) attention stays PyTorch's, whose flash kernel works through the keys in blocks.
# LA2DS's largest, 32 windows of 257 frames with 3 heads, has 6.3M.
MATH_ATTENTION_MAX_SCORES = 2**25


class MultiHeadAttention(nn.Module):
    """Scaled dot-product attention of `query` frames over `context` frames, masked by `context_mask`."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"model dimension {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, query: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor | None) -> torch.Tensor:
        """query: (B, Tq, D); context: (B, Tk, D); context_mask: (B, Tk) bool or None (all real) -> (B, Tq, D)."""
        B, Tq, D = query.shape
        Tk = context.shape[1]
        h = self.heads
        q = self.q(query).view(B, Tq, h, D // h).transpose(1, 2)  # (B, h, Tq, D/h)
        k, v = self.kv(context).view(B, Tk, 2, h, D // h).permute(2, 0, 3, 1, 4)  # 2 x (B, h, Tk, D/h)
        # (B, 1, 1, Tk): True where a key may be attended
        allowed = context_mask[:, None, None, :] if context_mask is not None else None
        drop = self.dropout if self.training else 0.0
        if q.device.type == "cpu" and q.dtype == torch.bfloat16 and B * h * Tq * Tk <= MATH_ATTENTION_MAX_SCORES:
            out = cpu_bfloat16_attention(q, k, v, allowed, drop)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=drop)
        return self.out(out.transpose(1, 2).reshape(B, Tq, D))


def cpu_bfloat16_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor | None,
                           dropout: float) -> torch.Tensor:
    """Attention as two bfloat16 matmuls around a float32 softmax: q (B, h, Tq, d), k and v (B, h, Tk, d),
    allowed (B, 1, 1, Tk) bool or None (every key) -> (B, h, Tq, d) in q's dtype.

    For the CPU under bfloat16 autocast. PyTorch's CPU flash attention (torch 2.13) runs its backward ~3x slower
    in bfloat16 than in float32, and even float32 flash attention is slower than this, forward and backward:
    LA2DS's 2,122 frames of 9 patches, 3 heads, 69 against 21 ms; 32 sequences of 257 frames, 42 against 28 ms
    (2 cores)."""
    scores = (q @ k.transpose(-1, -2)).float() * q.shape[-1] ** -0.5
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    weights = scores.softmax(dim=-1)  # every row has a real key
    if dropout > 0:
        weights = F.dropout(weights, dropout)
    return weights.to(q.dtype) @ v


class AttentionLayer(nn.Module):
    """One pre-norm transformer layer, then an MLP: self-attention, or with `cross` attention over a context
    sequence (normalised by its own LayerNorm, also when the context is the sequence itself)."""

    def __init__(self, dim: int, heads: int, *, cross: bool = False, ff_mult: int = 2, dropout: float = 0.0):
        super().__init__()
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim) if cross else None
        self.attn = MultiHeadAttention(dim, heads, dropout)
        self.norm_ff = nn.LayerNorm(dim)
        self.ff = nn.Sequential(
            nn.Linear(dim, ff_mult * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff_mult * dim, dim)
        )

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x: (B, T, D), mask: (B, T) or None (all real); context: (B, Tk, D), context_mask: (B, Tk) (cross
        layers only) -> (B, T, D)."""
        q = self.norm_q(x)
        if self.norm_kv is None:
            if context is not None:
                raise ValueError("a self-attention layer takes no context")
            kv, context_mask = q, mask
        else:
            if context is None:
                raise ValueError("a cross-attention layer needs a context")
            kv = self.norm_kv(context)
        x = x + self.attn(q, kv, context_mask)
        x = x + self.ff(self.norm_ff(x))
        return x * mask.unsqueeze(-1) if mask is not None else x  # padding stays exactly zero, layer after layer


class SelfAttentionStack(nn.Module):
    """`depth` self-attention layers followed by a final LayerNorm."""

    def __init__(self, dim: int, heads: int, depth: int, *, ff_mult: int = 2, dropout: float = 0.0):
        super().__init__()
        self.layers = nn.ModuleList(AttentionLayer(dim, heads, ff_mult=ff_mult, dropout=dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """x: (B, T, D), mask: (B, T) or None (all real) -> (B, T, D), zero on padding."""
        for layer in self.layers:
            x = layer(x, mask)
        return self.norm(x) * mask.unsqueeze(-1) if mask is not None else self.norm(x)


class AlternatingEncoder(nn.Module):
    """MASA's context-aware encoder: layers alternate self-attention and cross-attention over two sequences.

    Layer i is self-attention for even i and cross-attention for odd i (queries from one sequence, keys and
    values from the other, in both directions with shared weights). With `a` and `b` the same sequence
    (inference), cross-attention attends to the sequence itself.
    """

    def __init__(self, dim: int, heads: int, depth: int, *, ff_mult: int = 2, dropout: float = 0.0):
        super().__init__()
        self.layers = nn.ModuleList(
            AttentionLayer(dim, heads, cross=i % 2 == 1, ff_mult=ff_mult, dropout=dropout) for i in range(depth)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(
        self, a: torch.Tensor, mask_a: torch.Tensor, b: torch.Tensor, mask_b: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """a: (B, M, D), mask_a: (B, M); b: (B, N, D), mask_b: (B, N) -> ((B, M, D), (B, N, D))."""
        for i, layer in enumerate(self.layers):
            if i % 2 == 0:
                a, b = layer(a, mask_a), layer(b, mask_b)
            else:
                # both sides read the *previous* layer's a and b (the right-hand side is evaluated first),
                # so the two directions are symmetric rather than b attending to an already-updated a
                a, b = layer(a, mask_a, b, mask_b), layer(b, mask_b, a, mask_a)
        return self.norm(a) * mask_a.unsqueeze(-1), self.norm(b) * mask_b.unsqueeze(-1)

    def single(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Inference on one sequence: cross-attention layers attend to the sequence itself. (B, T, D)."""
        for i, layer in enumerate(self.layers):
            x = layer(x, mask) if i % 2 == 0 else layer(x, mask, x, mask)
        return self.norm(x) * mask.unsqueeze(-1)
