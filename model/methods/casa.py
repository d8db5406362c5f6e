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

from dataclasses import dataclass
from typing import Literal

import torch

from model.batch import Batch, gather_frames
from model.blocks.alignment_head import AlignmentHead
from model.blocks.encoders import VectorEncoder
from model.inputs.coordinates import CoordinateInput, SkeletonAugmentParams
from model.inputs.temporal_augment import one_way_maps
from model.losses.alignment import one_way_matching_loss
from model.method import AlignmentMethod, InputSpec, Progress


@dataclass(frozen=True)
class CasaParams:
    """inputs: the one keypoint array it reads (joints_2d or joints_3d), a list as in every method's section; sizes of the frame MLP / encoder / cross-attention / projection; temperature of
    the contrastive regression; temporal subset (probability, kept fraction) within a max_frames window;
    augment: spatial augmentations of the augmented view."""

    inputs: tuple[Literal["joints_2d", "joints_3d"], ...]
    normalise: Literal["sequence", "frame"]
    use_confidence: bool
    mlp_hidden: int
    d_model: int
    heads: int
    layers: int
    cross_layers: int
    ff_mult: int
    dropout: float
    proj_hidden: int
    proj_dim: int
    temperature: float
    temporal_p: float
    temporal_min_fraction: float
    max_frames: int
    augment: SkeletonAugmentParams


class Casa(AlignmentMethod):
    params_cls = CasaParams

    @classmethod
    def inputs(cls, params: CasaParams) -> tuple[tuple[str, str], ...]:
        if len(params.inputs) != 1:
            raise ValueError(f"CASA reads one keypoint array; inputs lists {list(params.inputs)}")
        return (("keypoints", params.inputs[0]),)

    @classmethod
    def build(cls, params: CasaParams, spec: InputSpec) -> Casa:
        return cls(params, spec)

    def __init__(self, params: CasaParams, spec: InputSpec):
        super().__init__()
        if spec.layout is None:
            raise ValueError("CASA needs the skeleton layout of its keypoints")
        p = self.params = params
        ((_, self.array),) = self.inputs(p)
        self.coords = CoordinateInput(self.array, spec.shape(self.array, "CASA"), spec.layout, p.normalise, p.use_confidence)
        self.encoder = VectorEncoder(dim_in=self.coords.dim, hidden=p.mlp_hidden, dim=p.d_model, heads=p.heads,
                                     layers=p.layers, positional="sinusoidal", ff_mult=p.ff_mult, dropout=p.dropout)
        self.head = AlignmentHead(dim=p.d_model, heads=p.heads, cross_layers=p.cross_layers,
                                  proj_hidden=p.proj_hidden, proj_dim=p.proj_dim, ff_mult=p.ff_mult, dropout=p.dropout)

    def loss(self, batch: Batch, gen: torch.Generator, progress: Progress) -> tuple[torch.Tensor, dict[str, float]]:
        p = self.params
        xy, conf = self.coords.prepare(batch.arrays[self.array], batch.mask)
        g0, m0, pos, m1 = one_way_maps(batch.lengths.tolist(), gen, probability=p.temporal_p,
                                       min_fraction=p.temporal_min_fraction, max_frames=p.max_frames, device=xy.device)
        xy0, conf0 = gather_frames(xy, g0), gather_frames(conf, g0)
        xy1, conf1 = self.coords.augment(gather_frames(xy0, pos), gather_frames(conf0, pos), p.augment, gen)
        u0 = self.encoder(self.coords.features(xy0, conf0), m0)
        u1 = self.encoder(self.coords.features(xy1, conf1), m1)
        _, (z0, z1) = self.head.forward_pair(u0, m0, u1, m1)
        loss = one_way_matching_loss(z0, m0, z1, m1, pos, p.temperature)
        return loss, {"matching": float(loss.detach())}

    def embed(self, batch: Batch) -> torch.Tensor:
        """(B, T, d_model) embeddings of the unaugmented sequences."""
        xy, conf = self.coords.prepare(batch.arrays[self.array], batch.mask)
        u = self.encoder(self.coords.features(xy, conf), batch.mask)
        return self.head.single(u, batch.mask)
