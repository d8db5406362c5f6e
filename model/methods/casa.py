"""CASA, the skeleton baseline (Kwon et al., CVPR 2022): contrastive alignment of skeleton coordinate sequences.

    coordinates (B, T, K * D [+ K]) --MLP + sinusoidal PE + temporal self-attention--> U0
      --MLP + PE + cross-attention (original <-> augmented)--> U (the embedding) --projection--> Z

One-way matching: the augmented sequence (a temporal subset of the original with spatial augmentations)
predicts, for each of its frames, the original frame index by contrastive regression on -||z_i - z'_j|| /
temperature. Unlike CASA's public code, padded frames are masked, and the angle noise is applied to the
coordinates (`model.inputs.coordinates.CoordinateInput.augment`: rotations of each bone's subtree); CASA's
"each hand its own MANO layer" concerns lifting keypoints, done once by the keypoints stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

from model.batch import Batch, gather_frames
from model.blocks.alignment_head import AlignmentHead
from model.blocks.encoders import VectorEncoder
from model.inputs.coordinates import CoordinateInput, SkeletonAugmentParams
from model.inputs.temporal_augment import one_way_maps
from model.losses.alignment import contrastive_regression_loss
from model.method import AlignmentMethod, InputSpec, Progress


@dataclass(frozen=True)
class CasaParams:
    """input: keypoint array; sizes of the frame MLP / encoder / cross-attention / projection; temperature of
    the contrastive regression; temporal subset (probability, kept fraction) within a max_frames window;
    augment: spatial augmentations of the augmented view."""

    input: Literal["joints_2d", "joints_3d"] = "joints_2d"
    normalise: Literal["sequence", "frame"] = "sequence"
    use_confidence: bool = True
    mlp_hidden: int = 128
    d_model: int = 128
    heads: int = 4
    layers: int = 2
    cross_layers: int = 1
    ff_mult: int = 2
    dropout: float = 0.0
    proj_hidden: int = 128
    proj_dim: int = 128
    temperature: float = 0.1
    temporal_p: float = 0.5
    temporal_min_fraction: float = 0.5
    max_frames: int = 512
    augment: SkeletonAugmentParams = field(default_factory=SkeletonAugmentParams)


class Casa(AlignmentMethod):
    params_cls = CasaParams

    @classmethod
    def inputs(cls, params: CasaParams) -> tuple[tuple[str, str], ...]:
        return (("keypoints", params.input),)

    @classmethod
    def build(cls, params: CasaParams, spec: InputSpec) -> Casa:
        return cls(params, spec)

    def __init__(self, params: CasaParams, spec: InputSpec):
        super().__init__()
        if spec.layout is None:
            raise ValueError("CASA needs the skeleton layout of its keypoints")
        p = self.params = params
        self.coords = CoordinateInput(p.input, spec.shape(p.input, "CASA"), spec.layout, p.normalise, p.use_confidence)
        self.encoder = VectorEncoder(dim_in=self.coords.dim, hidden=p.mlp_hidden, dim=p.d_model, heads=p.heads,
                                     layers=p.layers, positional="sinusoidal", ff_mult=p.ff_mult, dropout=p.dropout)
        self.head = AlignmentHead(dim=p.d_model, heads=p.heads, cross_layers=p.cross_layers,
                                  proj_hidden=p.proj_hidden, proj_dim=p.proj_dim, ff_mult=p.ff_mult, dropout=p.dropout)

    def loss(self, batch: Batch, gen: torch.Generator, progress: Progress) -> tuple[torch.Tensor, dict[str, float]]:
        p = self.params
        xy, conf = self.coords.prepare(batch.arrays[p.input], batch.mask)
        g0, m0, pos, m1 = one_way_maps(batch.lengths.tolist(), gen, probability=p.temporal_p,
                                       min_fraction=p.temporal_min_fraction, max_frames=p.max_frames)
        device = xy.device
        g0, m0, pos, m1 = g0.to(device), m0.to(device), pos.to(device), m1.to(device)
        xy0, conf0 = gather_frames(xy, g0), gather_frames(conf, g0)
        xy1, conf1 = self.coords.augment(gather_frames(xy0, pos), gather_frames(conf0, pos), p.augment, gen)
        u0 = self.encoder(self.coords.features(xy0, conf0), m0)
        u1 = self.encoder(self.coords.features(xy1, conf1), m1)
        _, (z0, z1) = self.head.forward_pair(u0, m0, u1, m1)
        scale = (m0.sum(1) - 1).clamp(min=1).float()[:, None]
        index0 = torch.arange(m0.shape[1], device=device).float()[None, :] / scale
        loss = contrastive_regression_loss(z0, m0, index0, z1, m1, pos / scale, p.temperature)
        return loss, {"matching": float(loss.detach())}

    def embed(self, batch: Batch) -> torch.Tensor:
        """(B, T, d_model) embeddings of the unaugmented sequences."""
        xy, conf = self.coords.prepare(batch.arrays[self.params.input], batch.mask)
        u = self.encoder(self.coords.features(xy, conf), batch.mask)
        return self.head.single(u, batch.mask)
