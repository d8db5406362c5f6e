"""LA2DS: learning by aligning 2D skeleton heatmap sequences (Tran et al.; DESIGN.md Sec. 4).

    heatmap (B, T, K + L, S, S) from heatmaps.zarr
      --HeatmapEncoder (spatial transformer over patches, pooled; temporal transformer, learned PEs)--> U0
      --AlignmentHead (MLP + PE + cross-attention)--> U (the embedding) --projection (one hidden layer)--> Z

The model reads the cached maps (`heatmaps.zarr {seq}/heatmap`, rendered once by the heatmaps stage), so the map
geometry (size, sigma, crop box) is the `heatmaps` section's alone and the checkpoint records it. Channels and
size come from the input spec (the layout's K + L channels, S x S cells), never from these params.
Training: a random window of at most `max_frames` frames is the original view; the augmented view is a
temporal subset of it, flipped / limb-rotated / jittered in heatmap space (`model.inputs.heatmap_augment`,
LA2DS Sec. 3.2). Loss: contrastive regression, omega_ij = softmax_i(-||z_i - z'_j|| / lambda), MSE between the
predicted and the true (normalised) original index of each augmented frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from model.batch import Batch
from model.blocks.alignment_head import AlignmentHead
from model.blocks.encoders import HeatmapEncoder
from model.inputs.heatmap_augment import HeatmapAugment, HeatmapAugmentParams
from model.inputs.temporal_augment import one_way_maps
from model.losses.alignment import one_way_matching_loss
from model.method import AlignmentMethod, InputSpec, Progress
from pipeline.skeletons.layouts import get_layout

HEATMAP = "heatmap"


@dataclass(frozen=True)
class La2dsParams:
    """patch: patch side in cells; d_model: token size (192 in the paper); spatial/temporal/cross layers;
    max_len: learned temporal PE table (longer sequences are read stretched); proj_hidden/proj_dim: projection
    head; temperature: lambda; max_frames: training window; augment: heatmap-space augmentation. Late
    fusion's params extend these (`model.methods.fusion_late.FusionLateParams`)."""

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


def heatmap_shape(spec: InputSpec, method: str) -> tuple[int, int]:
    """(channels, size) of the spec's heatmap frames, checked against the skeleton layout."""
    if spec.layout is None:
        raise ValueError(f"{method} needs the skeleton layout of its heatmaps")
    shape = spec.shape(HEATMAP, method)
    channels = get_layout(spec.layout).n_channels
    if len(shape) != 3 or shape[0] != channels or shape[1] != shape[2]:
        raise ValueError(f"{method}: heatmap frames have shape {shape}, layout {spec.layout} needs ({channels}, S, S)")
    return shape[0], shape[1]


def heatmap_encoder(channels: int, size: int, p: La2dsParams) -> HeatmapEncoder:
    """The LA2DS heatmap encoder sized by `p` (LA2DS, and late fusion's skeleton branch)."""
    return HeatmapEncoder(channels=channels, size=size, patch=p.patch, dim=p.d_model, heads=p.heads,
                          spatial_layers=p.spatial_layers, temporal_layers=p.temporal_layers, max_len=p.max_len,
                          ff_mult=p.ff_mult, dropout=p.dropout)


def alignment_head(p: La2dsParams) -> AlignmentHead:
    """The LA2DS alignment head (MLP + PE + cross-attention, then projection) sized by `p`."""
    return AlignmentHead(dim=p.d_model, heads=p.heads, cross_layers=p.cross_layers, proj_hidden=p.proj_hidden,
                         proj_dim=p.proj_dim, ff_mult=p.ff_mult, dropout=p.dropout)


@dataclass
class HeatmapViews:
    """LA2DS's two views of a batch, their real frames packed row by row (`x[mask]` order).

    The original view (mask m0 (B, M)) is frames `src0` (F0,) of rows `rows0` (F0,) of the batch's `maps`
    (B, T, C, S, S), read where they lie. Of the augmented view's F1 real frames (mask m1 (B, N)), `changed`
    (F1,) marks those augmentation changed and `frames1` (F1', C, S, S) holds them, in order; `shows` (F1,) is
    the original-view frame (index among the F0) each augmented frame shows, so an unchanged frame's tokens are
    the original frame's. g0 (B, M): the original view's frames in the batch; pos (B, N): the augmented
    frames' positions in the original view."""

    maps: torch.Tensor
    rows0: torch.Tensor
    src0: torch.Tensor
    m0: torch.Tensor
    frames1: torch.Tensor
    changed: torch.Tensor
    shows: torch.Tensor
    m1: torch.Tensor
    g0: torch.Tensor
    pos: torch.Tensor

    def tokens(self, encoder: HeatmapEncoder) -> tuple[torch.Tensor, torch.Tensor]:
        """(U0 (B, M, D), U1 (B, N, D)): both views through `encoder`, the spatial transformer run once per
        distinct frame."""
        t0 = encoder.frame_tokens_at(self.maps, self.rows0, self.src0)  # (F0, D)
        t1 = t0[self.shows]
        if len(self.frames1):
            t1 = t1.index_put((self.changed.nonzero().squeeze(1),), encoder.frame_tokens(self.frames1).to(t1.dtype))
        return encoder.sequence(t0, self.m0), encoder.sequence(t1, self.m1)


def heatmap_views(augment: HeatmapAugment, batch: Batch, p: La2dsParams, gen: torch.Generator) -> HeatmapViews:
    """LA2DS's two views of a batch's heatmaps (Sec. 3.2): a random window of at most `max_frames` frames is the
    original view; the augmented view is a temporal subset of it, augmented in heatmap space."""
    maps = batch.arrays[HEATMAP]
    g0, m0, pos, m1 = one_way_maps(batch.lengths.tolist(), gen, probability=p.augment.temporal_p,
                                   min_fraction=p.augment.temporal_min_fraction, max_frames=p.max_frames,
                                   device=maps.device)
    rows0, cols0 = m0.nonzero(as_tuple=True)
    frames1, changed = augment(maps, g0.gather(1, pos), m1, gen)
    rows1, cols1 = m1.nonzero(as_tuple=True)
    start = m0.sum(1).cumsum(0) - m0.sum(1)  # where each row's frames begin among the F0
    shows = start[rows1] + pos[rows1, cols1]
    return HeatmapViews(maps, rows0, g0[rows0, cols0], m0, frames1, changed, shows, m1, g0, pos)


class La2ds(AlignmentMethod):
    params_cls = La2dsParams

    @classmethod
    def inputs(cls, params: La2dsParams) -> tuple[tuple[str, str], ...]:
        return (("heatmaps", HEATMAP),)

    @classmethod
    def build(cls, params: La2dsParams, spec: InputSpec) -> La2ds:
        return cls(params, spec)

    def __init__(self, params: La2dsParams, spec: InputSpec):
        super().__init__()
        self.params = params
        channels, size = heatmap_shape(spec, "LA2DS")
        self.augment = HeatmapAugment(get_layout(spec.layout), params.augment)
        self.encoder = heatmap_encoder(channels, size, params)
        self.head = alignment_head(params)

    def loss(self, batch: Batch, gen: torch.Generator, progress: Progress) -> tuple[torch.Tensor, dict[str, float]]:
        views = heatmap_views(self.augment, batch, self.params, gen)
        u0, u1 = views.tokens(self.encoder)
        m0, m1 = views.m0, views.m1
        _, (z0, z1) = self.head.forward_pair(u0, m0, u1, m1)
        loss = one_way_matching_loss(z0, m0, z1, m1, views.pos, self.params.temperature)
        return loss, {"matching": float(loss.detach())}

    def embed(self, batch: Batch) -> torch.Tensor:
        """(B, T, d_model) embeddings of the unaugmented sequences (cross-attention over themselves)."""
        return self.head.single(self.encoder(batch.arrays[HEATMAP], batch.mask), batch.mask)
