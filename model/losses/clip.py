"""Clip-level objectives on the output of MASA's clip token (one vector per sequence and view).

- `TokenSimSiam`: SimSiam between the two views' clip vectors: projection (batch norm), MLP predictor,
  symmetric negative cosine with stop-gradient on the target side (the clip-level form of MASA's eq. 7).
- `TrajectoryDecoder`: the clip vector of one view, with a Fourier encoding of normalised time t in [0, 1],
  must reproduce the other view's unaugmented normalised skeleton at t (masked mean squared error over the
  confident joints), so the vector has to summarise the whole motion of its sequence. Given a left/right
  joint permutation (`mirror`), each sequence is scored against the closer of the target and its mirror
  image, so the vector need not tell a motion from its mirror image (e.g. left- from right-handed).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from model.blocks.heads import ProjectionHead, mlp
from model.inputs.skeleton_augment import flip


class TokenSimSiam(nn.Module):
    def __init__(self, dim: int, hidden: int, out: int, *, depth: int):
        super().__init__()
        self.projection = ProjectionHead(dim, hidden, out, depth=depth, batch_norm=True)
        self.predictor = mlp([out, hidden, out])

    def forward(self, c1: torch.Tensor, c2: torch.Tensor) -> torch.Tensor:
        """c1, c2: (B, d) clip vectors of the two views -> scalar in [-1, 1]."""
        ones = torch.ones(c1.shape[0], 1, dtype=torch.bool, device=c1.device)
        z1, z2 = self.projection(c1[:, None], ones)[:, 0], self.projection(c2[:, None], ones)[:, 0]
        p1, p2 = self.predictor(z1), self.predictor(z2)
        return -0.5 * (F.cosine_similarity(z1.detach(), p2, dim=-1).mean() + F.cosine_similarity(z2.detach(), p1, dim=-1).mean())


def fourier_time(t: torch.Tensor, n_freq: int) -> torch.Tensor:
    """(B, N) times in [0, 1] -> (B, N, 2 n_freq): sin and cos of pi * k * t, k = 1..n_freq."""
    k = torch.arange(1, n_freq + 1, device=t.device, dtype=torch.float32)
    angles = math.pi * t.float().unsqueeze(-1) * k
    return torch.cat((angles.sin(), angles.cos()), dim=-1)


class TrajectoryDecoder(nn.Module):
    def __init__(self, dim: int, hidden: int, n_joints: int, coord_dim: int, *, n_freq: int = 8,
                 mirror: tuple[int, ...] | None = None):
        super().__init__()
        self.n_freq = n_freq
        self.mirror = tuple(mirror) if mirror is not None else None
        self.shape = (n_joints, coord_dim)
        self.net = mlp([dim + 2 * n_freq, hidden, hidden, n_joints * coord_dim])

    def loss(self, clip: torch.Tensor, times: torch.Tensor, target: torch.Tensor, conf: torch.Tensor,
             mask: torch.Tensor) -> torch.Tensor:
        """clip: (B, d); times: (B, N) normalised times of the target frames; target: (B, N, K, D) normalised
        coordinates (root-centred, so the mirror image is x -> -x); conf: (B, N, K); mask: (B, N) -> mean
        squared error over confident joints of real frames (with `mirror`: per sequence, against the closer of
        the target and its mirror image)."""
        B, N = times.shape
        query = torch.cat((clip[:, None, :].expand(B, N, clip.shape[-1]), fourier_time(times, self.n_freq).to(clip)), -1)
        pred = self.net(query).view(B, N, *self.shape)
        target = target.to(pred)
        weight = ((conf > 0) & mask[..., None]).to(pred.dtype)  # (B, N, K)
        err = (((pred - target) ** 2).sum(-1) * weight).sum((1, 2))  # (B,)
        if self.mirror is not None:
            mirrored = flip(target, self.mirror, torch.zeros(B), torch.ones(B, dtype=torch.bool))
            err_m = (((pred - mirrored) ** 2).sum(-1) * weight[..., self.mirror]).sum((1, 2))
            err = torch.minimum(err, err_m)
        return err.sum() / weight.sum().clamp(min=1)
