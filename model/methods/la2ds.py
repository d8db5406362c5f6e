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
from model.inputs.heatmap_augment import HeatmapAugment, HeatmapAugmentParams, take_frames
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


def heatmap_views(augment: HeatmapAugment, batch: Batch, p: La2dsParams, gen: torch.Generator):
    """LA2DS's two views of a batch's heatmaps (Sec. 3.2): a random window of at most `max_frames` frames is the
    original view; the augmented view is a temporal subset of it, augmented in heatmap space. Returns
    (maps0 (B, M, C, S, S), m0), (maps1 (B, N, C, S, S), m1), g0 (B, M) the original view's frames and
    pos (B, N) the augmented frames' positions in the original view (late fusion gathers RGB with them)."""
    maps = batch.arrays[HEATMAP]
    g0, m0, pos, m1 = one_way_maps(batch.lengths.tolist(), gen, probability=p.augment.temporal_p,
                                   min_fraction=p.augment.temporal_min_fraction, max_frames=p.max_frames,
                                   device=maps.device)
    whole = bool((batch.lengths <= p.max_frames).all())  # every window is its whole sequence: no copy
    original = maps if whole else take_frames(maps, g0)
    return (original, m0), (augment(original, pos, m1, gen), m1), g0, pos


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
        (maps0, m0), (maps1, m1), _, pos = heatmap_views(self.augment, batch, self.params, gen)
        u0, u1 = self.encoder(maps0, m0), self.encoder(maps1, m1)
        _, (z0, z1) = self.head.forward_pair(u0, m0, u1, m1)
        loss = one_way_matching_loss(z0, m0, z1, m1, pos, self.params.temperature)
        return loss, {"matching": float(loss.detach())}

    def embed(self, batch: Batch) -> torch.Tensor:
        """(B, T, d_model) embeddings of the unaugmented sequences (cross-attention over themselves)."""
        return self.head.single(self.encoder(batch.arrays[HEATMAP], batch.mask), batch.mask)
