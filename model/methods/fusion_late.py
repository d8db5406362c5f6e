"""Late fusion (LA2DS Sec. 3.4): separate heatmap and RGB encoders, concatenated, linear to D, LA2DS head.

    heatmap (heatmaps.zarr) -> HeatmapEncoder -> U_H  \
                                                       concat -> Linear(2D -> D) -> AlignmentHead -> U, Z
    DINO feature -> VectorEncoder (learned PE)  -> U_F /

Two-stage training: for the first `stage1_epochs` epochs each encoder trains alone with its own alignment
head and the single-modality loss (sum of both); afterwards the fused path trains end to end. Both stages
use the same temporal augmentation (a window and a temporal subset of it, shared by the modalities); the
heatmaps of the augmented view are also flipped / limb-rotated / jittered in heatmap space, as LA2DS's (DINO
features are fixed per frame, so the RGB stream gets the temporal augmentation only). The embedding is the
fused U.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from model.batch import Batch, gather_frames
from model.blocks.alignment_head import AlignmentHead
from model.blocks.encoders import VectorEncoder
from model.inputs.heatmap_augment import HeatmapAugment
from model.losses.alignment import one_way_matching_loss
from model.method import AlignmentMethod, InputSpec, Progress
from model.methods.la2ds import (
    HEATMAP,
    HeatmapBranchParams,
    alignment_head,
    heatmap_encoder,
    heatmap_shape,
    heatmap_views,
)
from pipeline.skeletons.layouts import get_layout


@dataclass(frozen=True)
class FusionLateParams(HeatmapBranchParams):
    """LA2DS's heatmap-branch params (not its clip-level additions) for the skeleton branch and the fused head
    (d_model: the size of both branches and of the fused tokens, 192 in the paper), plus rgb_hidden / rgb_layers:
    the RGB branch; stage1_epochs: epochs of separate training before the fused stage."""

    rgb_hidden: int
    rgb_layers: int
    stage1_epochs: int


class FusionLate(AlignmentMethod):
    params_cls = FusionLateParams

    @classmethod
    def inputs(cls, params: FusionLateParams) -> tuple[tuple[str, str], ...]:
        return (("dino", "feature"), ("heatmaps", HEATMAP))

    @classmethod
    def build(cls, params: FusionLateParams, spec: InputSpec) -> FusionLate:
        return cls(params, spec)

    def __init__(self, params: FusionLateParams, spec: InputSpec):
        super().__init__()
        p = self.params = params
        channels, size = heatmap_shape(spec, "fusion_late")
        self.augment = HeatmapAugment(get_layout(spec.layout), p.augment)
        feature_dim = spec.shape("feature", "fusion_late")[-1]
        self.heat_encoder = heatmap_encoder(channels, size, p, clip_token=False)
        self.rgb_norm = nn.LayerNorm(feature_dim, elementwise_affine=False)
        self.rgb_encoder = VectorEncoder(dim_in=feature_dim, hidden=p.rgb_hidden, dim=p.d_model, heads=p.heads,
                                         layers=p.rgb_layers, positional="learned", max_len=p.max_len,
                                         ff_mult=p.ff_mult, dropout=p.dropout)
        self.fuse = nn.Linear(2 * p.d_model, p.d_model)
        self.head, self.heat_head, self.rgb_head = alignment_head(p), alignment_head(p), alignment_head(p)

    def _rgb(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.rgb_encoder(self.rgb_norm(features.float()), mask)

    def _fused(self, u_heat: torch.Tensor, u_rgb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat((u_heat, u_rgb), dim=-1)) * mask.unsqueeze(-1)

    def loss(self, batch: Batch, gen: torch.Generator, progress: Progress) -> tuple[torch.Tensor, dict[str, float]]:
        p = self.params
        if progress.epochs <= p.stage1_epochs:
            raise ValueError(f"fusion_late: train.epochs ({progress.epochs}) must exceed stage1_epochs ({p.stage1_epochs})")
        views = heatmap_views(self.augment, batch, p, gen)
        m0, m1, pos = views.m0, views.m1, views.pos
        h0, h1 = views.tokens(self.heat_encoder)
        feat0 = gather_frames(batch.arrays["feature"], views.g0)  # the RGB stream follows the same temporal views
        f0 = self._rgb(feat0, m0)
        f1 = self._rgb(gather_frames(feat0, pos), m1)

        def matching(head: AlignmentHead, u0: torch.Tensor, u1: torch.Tensor) -> torch.Tensor:
            _, (z0, z1) = head.forward_pair(u0, m0, u1, m1)
            return one_way_matching_loss(z0, m0, z1, m1, pos, p.temperature)

        if progress.epoch < p.stage1_epochs:
            heat, rgb = matching(self.heat_head, h0, h1), matching(self.rgb_head, f0, f1)
            return heat + rgb, {"heatmap": float(heat.detach()), "rgb": float(rgb.detach())}
        fused = matching(self.head, self._fused(h0, f0, m0), self._fused(h1, f1, m1))
        return fused, {"fused": float(fused.detach())}

    def embed(self, batch: Batch) -> torch.Tensor:
        """(B, T, d_model) fused embeddings of the unaugmented sequences."""
        mask = batch.mask
        h, f = self.heat_encoder(batch.arrays[HEATMAP], mask), self._rgb(batch.arrays["feature"], mask)
        return self.head.single(self._fused(h, f, mask), mask)
