"""LA2DS: learning by aligning 2D skeleton heatmap sequences (Tran et al.; DESIGN.md Sec. 4).

    joints_2d (B, T, K, 3) --crop box, render on the device--> heatmaps (B, T, K + L, S, S)
      --HeatmapEncoder (spatial transformer over patches, pooled; temporal transformer, learned PEs)--> U0
      --AlignmentHead (MLP + PE + cross-attention)--> U (the embedding) --projection (one hidden layer)--> Z

Training: a random window of at most `max_frames` frames is the original view; the augmented view is a
temporal subset of it whose skeletons are flipped / limb-rotated / jittered and then rasterised (LA2DS
Sec. 3.2). Loss: contrastive regression, omega_ij = softmax_i(-||z_i - z'_j|| / lambda), MSE between the
predicted and the true (normalised) original index of each augmented frame.
The model reads joints_2d and renders heatmaps itself (in training and in `embed`), so the sizes come from
the skeleton layout (K + L channels) and the `heatmap` params; the crop box follows the heatmaps stage's
convention (smallest box over the sequence's confident joints, padded, square).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from model.batch import Batch, gather_frames
from model.blocks.alignment_head import AlignmentHead
from model.blocks.encoders import HeatmapEncoder
from model.inputs.heatmap_input import HeatmapAugmentParams, HeatmapInput, HeatmapParams
from model.inputs.temporal_augment import one_way_maps
from model.losses.alignment import one_way_matching_loss
from model.method import AlignmentMethod, InputSpec, Progress


@dataclass(frozen=True)
class La2dsParams:
    """heatmap: rasterisation; patch: patch side in cells; d_model: token size (192 in the paper);
    spatial/temporal/cross layers; max_len: learned temporal PE table (longer sequences are read stretched);
    proj_hidden/proj_dim: projection head; temperature: lambda; max_frames: training window. Late fusion's
    params extend these (`model.methods.fusion_late.FusionLateParams`)."""

    heatmap: HeatmapParams
    patch: int
    d_model: int
    heads: int
    spatial_layers: int
    temporal_layers: int
    cross_layers: int
    ff_mult: int
    dropout: float
    max_len: int
    proj_hidden: int
    proj_dim: int
    temperature: float
    max_frames: int
    augment: HeatmapAugmentParams


def heatmap_encoder(channels: int, p: La2dsParams) -> HeatmapEncoder:
    """The LA2DS heatmap encoder sized by `p` (LA2DS, and late fusion's skeleton branch)."""
    return HeatmapEncoder(channels=channels, size=p.heatmap.size, patch=p.patch, dim=p.d_model, heads=p.heads,
                          spatial_layers=p.spatial_layers, temporal_layers=p.temporal_layers, max_len=p.max_len,
                          ff_mult=p.ff_mult, dropout=p.dropout)


def alignment_head(p: La2dsParams) -> AlignmentHead:
    """The LA2DS alignment head (MLP + PE + cross-attention, then projection) sized by `p`."""
    return AlignmentHead(dim=p.d_model, heads=p.heads, cross_layers=p.cross_layers, proj_hidden=p.proj_hidden,
                         proj_dim=p.proj_dim, ff_mult=p.ff_mult, dropout=p.dropout)


def heatmap_views(heat: HeatmapInput, batch: Batch, p: La2dsParams, gen: torch.Generator):
    """LA2DS's two views of a batch's skeletons (Sec. 3.2): a random window of at most `max_frames` frames is
    the original view; the augmented view is a temporal subset of it whose skeletons are flipped /
    limb-rotated / jittered; both are rasterised in the original sequence's crop box. Returns
    (maps0 (B, M, C, S, S), m0), (maps1 (B, N, C, S, S), m1), g0 (B, M) the original view's frames and
    pos (B, N) the augmented frames' positions in the original view (late fusion gathers RGB with them)."""
    joints = batch.arrays["joints_2d"]
    box = heat.boxes(joints, batch.mask)
    g0, m0, pos, m1 = one_way_maps(batch.lengths.tolist(), gen, probability=p.augment.temporal_p,
                                   min_fraction=p.augment.temporal_min_fraction, max_frames=p.max_frames,
                                   device=joints.device)
    original = gather_frames(joints, g0)
    augmented = heat.augment(gather_frames(original, pos), box, p.augment, gen)
    return (heat.render(original, box, m0), m0), (heat.render(augmented, box, m1), m1), g0, pos


class La2ds(AlignmentMethod):
    params_cls = La2dsParams

    @classmethod
    def inputs(cls, params: La2dsParams) -> tuple[tuple[str, str], ...]:
        return (("keypoints", "joints_2d"),)

    @classmethod
    def build(cls, params: La2dsParams, spec: InputSpec) -> La2ds:
        return cls(params, spec)

    def __init__(self, params: La2dsParams, spec: InputSpec):
        super().__init__()
        if spec.layout is None:
            raise ValueError("LA2DS needs the skeleton layout of its keypoints")
        self.params = params
        self.heat = HeatmapInput(spec.layout, params.heatmap)
        shape = spec.shape("joints_2d", "LA2DS")
        if shape != (self.heat.layout.n_joints, 3):
            raise ValueError(f"LA2DS: joints_2d frames have shape {shape}, layout {spec.layout} needs ({self.heat.layout.n_joints}, 3)")
        self.encoder = heatmap_encoder(self.heat.channels, params)
        self.head = alignment_head(params)

    def loss(self, batch: Batch, gen: torch.Generator, progress: Progress) -> tuple[torch.Tensor, dict[str, float]]:
        (maps0, m0), (maps1, m1), _, pos = heatmap_views(self.heat, batch, self.params, gen)
        u0, u1 = self.encoder(maps0, m0), self.encoder(maps1, m1)
        _, (z0, z1) = self.head.forward_pair(u0, m0, u1, m1)
        loss = one_way_matching_loss(z0, m0, z1, m1, pos, self.params.temperature)
        return loss, {"matching": float(loss.detach())}

    def embed(self, batch: Batch) -> torch.Tensor:
        """(B, T, d_model) embeddings of the unaugmented sequences (cross-attention over themselves)."""
        joints = batch.arrays["joints_2d"]
        maps = self.heat.render(joints, self.heat.boxes(joints, batch.mask), batch.mask)
        return self.head.single(self.encoder(maps, batch.mask), batch.mask)
