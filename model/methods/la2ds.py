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

Clip-level additions (this project's, after MASA's; `clip_token: false, relate_weight: 0` is the paper's LA2DS):
- `clip_token`: a learned token leads each sequence through the temporal transformer; its output, one vector per
  sequence, is appended to every frame of the exported embedding, times `clip_scale` (so a frame's nearest
  frames come from videos of the same kind; Kendall's tau cannot change: the clip part is constant within a
  video). The matching loss still reads the frame part only.
- `relate_weight` > 0: the DTW teacher (`model.losses.relate.DtwTeacher`): before training, every two training
  sequences are compared by mirror-aware DTW of the skeletons their heatmaps show (each joint channel's
  centroid, normalised as MASA normalises keypoints, `relate_frames` uniform frames); each step the clip vectors'
  similarities over the batch must follow it. The skeletons come from the cached maps themselves, so LA2DS
  still reads nothing but `heatmaps.zarr`.
- `position_encoding: false` (as MASA's): no frame index reaches the temporal transformer or the alignment head,
  so the embedding says what a frame shows, not where it lies in its clip.
- `positions: phase`: the encodings read a frame's fraction of its clip, t / (T - 1), stretched onto the
  `max_len` table (and onto 0..max_len-1 for the head's sinusoid), instead of its index: videos of one action
  last from one to many seconds, and only by phase do their first, middle and last frames share an encoding.
- `cross_weight` > 0: MASA's cross-video cycle-back regression (TCC) on the original view's embedding U: each
  sequence's frames must find their place in the batch's nearest *other* sequence (mined without labels by the
  cosine of the clip vectors, or of the time-averaged U without a clip token) and cycle back to themselves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from model.batch import Batch
from model.blocks import shape_ladder
from model.blocks.alignment_head import AlignmentHead
from model.blocks.encoders import HeatmapEncoder
from model.blocks.positional import Positions
from model.inputs.heatmap_augment import HeatmapAugment, HeatmapAugmentParams, centres
from model.inputs.skeleton import normalise
from model.inputs.temporal_augment import one_way_maps, uniform_positions
from model.losses.alignment import cycle_back_loss, masked_mean_pool, nearest_partners, one_way_matching_loss
from model.losses.relate import DtwTeacher
from model.method import AlignmentMethod, InputSpec, Progress
from pipeline.skeletons.layouts import Skeleton, get_layout

HEATMAP = "heatmap"


@dataclass(frozen=True)
class HeatmapBranchParams:
    """What LA2DS and late fusion's skeleton branch share. patch: patch side in cells; d_model: token size (192
    in the paper); spatial/temporal/cross layers; max_len: learned temporal PE table (by index, longer
    sequences are read stretched; by phase, every sequence spans it); proj_hidden/proj_dim: projection head;
    temperature: lambda; max_frames: training window; augment: heatmap-space augmentation. `La2dsParams` and
    `model.methods.fusion_late.FusionLateParams` extend these."""

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


@dataclass(frozen=True)
class La2dsParams(HeatmapBranchParams):
    """The heatmap branch's params, plus the clip-level additions (module docstring): clip_token; clip_scale:
    weight of the clip part in the exported embedding; position_encoding: the frame index encoded into the
    temporal transformer's and the alignment head's inputs (the paper's); false: neither sees order, so a frame
    is placed by what it shows, not where it lies (docs/research-log.md: content tau); positions: what those
    encodings read, the frame's `index` (the paper's) or its `phase` in the clip; relate_*: the DTW
    teacher's weight, frames per skeleton curve, student and teacher temperatures, and the most training
    sequences it accepts; cross_*: the cross-video cycle-back loss's weight and softmax temperature."""

    clip_token: bool
    clip_scale: float
    position_encoding: bool
    positions: Positions
    relate_weight: float
    relate_frames: int
    relate_temperature: float
    relate_teacher_temperature: float
    relate_max_sequences: int
    cross_weight: float
    cross_temperature: float


def heatmap_shape(spec: InputSpec, method: str) -> tuple[int, int]:
    """(channels, size) of the spec's heatmap frames, checked against the skeleton layout."""
    if spec.layout is None:
        raise ValueError(f"{method} needs the skeleton layout of its heatmaps")
    shape = spec.shape(HEATMAP, method)
    channels = get_layout(spec.layout).n_channels
    if len(shape) != 3 or shape[0] != channels or shape[1] != shape[2]:
        raise ValueError(f"{method}: heatmap frames have shape {shape}, layout {spec.layout} needs ({channels}, S, S)")
    return shape[0], shape[1]


def heatmap_encoder(channels: int, size: int, p: HeatmapBranchParams, *, clip_token: bool,
                    position_encoding: bool = True, positions: Positions = "index") -> HeatmapEncoder:
    """The LA2DS heatmap encoder sized by `p` (LA2DS, and late fusion's skeleton branch)."""
    return HeatmapEncoder(channels=channels, size=size, patch=p.patch, dim=p.d_model, heads=p.heads,
                          spatial_layers=p.spatial_layers, temporal_layers=p.temporal_layers, max_len=p.max_len,
                          clip_token=clip_token, ff_mult=p.ff_mult, dropout=p.dropout,
                          position_encoding=position_encoding, positions=positions)


def alignment_head(p: HeatmapBranchParams, *, position_encoding: bool = True,
                   positions: Positions = "index") -> AlignmentHead:
    """The LA2DS alignment head (MLP + PE + cross-attention, then projection) sized by `p`."""
    return AlignmentHead(dim=p.d_model, heads=p.heads, cross_layers=p.cross_layers, proj_hidden=p.proj_hidden,
                         proj_dim=p.proj_dim, ff_mult=p.ff_mult, dropout=p.dropout, position_encoding=position_encoding,
                         positions=positions, phase_steps=p.max_len)


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
        (u0, _), (u1, _) = self.encoded(encoder)
        return u0, u1

    def encoded(self, encoder: HeatmapEncoder) -> tuple[tuple[torch.Tensor, torch.Tensor | None], ...]:
        """`tokens`, each with its view's clip token outputs (B, D) (None when `encoder` has no clip token)."""
        t0 = encoder.frame_tokens_at(self.maps, self.rows0, self.src0)  # (F0, D)
        t1 = t0[self.shows]
        if len(self.frames1):
            t1 = t1.index_put((self.changed.nonzero().squeeze(1),), encoder.frame_tokens(self.frames1).to(t1.dtype))
        return encoder.encode(t0, self.m0), encoder.encode(t1, self.m1)


def heatmap_views(augment: HeatmapAugment, batch: Batch, p: HeatmapBranchParams, gen: torch.Generator) -> HeatmapViews:
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
    if shape_ladder.compiles_per_shape(maps.device):
        # lengths that repeat from step to step, so that the CPU's matmuls reuse their kernels
        # (model/blocks/shape_ladder.py): the added frames are masked padding, as a shorter row's are
        g0, m0, pos, m1 = map(shape_ladder.pad_length, (g0, m0, pos, m1))
    return HeatmapViews(maps, rows0, g0[rows0, cols0], m0, frames1, changed, shows, m1, g0, pos)


class La2ds(AlignmentMethod):
    params_cls = La2dsParams
    export_params = frozenset({"clip_scale"})  # weights the exported clip part only

    @classmethod
    def inputs(cls, params: La2dsParams) -> tuple[tuple[str, str], ...]:
        return (("heatmaps", HEATMAP),)

    @classmethod
    def build(cls, params: La2dsParams, spec: InputSpec) -> La2ds:
        return cls(params, spec)

    def __init__(self, params: La2dsParams, spec: InputSpec):
        super().__init__()
        self.params = p = params
        channels, size = heatmap_shape(spec, "LA2DS")
        if p.relate_weight > 0 and not p.clip_token:
            raise ValueError("LA2DS: relate_weight > 0 needs clip_token: true (the teacher trains the clip vector)")
        self.layout = get_layout(spec.layout)
        self.augment = HeatmapAugment(self.layout, p.augment)
        self.encoder = heatmap_encoder(channels, size, p, clip_token=p.clip_token,
                                       position_encoding=p.position_encoding, positions=p.positions)
        self.head = alignment_head(p, position_encoding=p.position_encoding, positions=p.positions)
        self.teacher = DtwTeacher(temperature=p.relate_temperature, teacher_temperature=p.relate_teacher_temperature,
                                  max_sequences=p.relate_max_sequences, owner="LA2DS")

    def prepare(self, sequences: Sequence[Mapping[str, np.ndarray]]) -> None:
        """With relate_weight > 0: the (N, N) mirror-aware DTW distances between the skeletons the training
        sequences' heatmaps show (`heatmap_curves`)."""
        if self.params.relate_weight <= 0:
            return
        self.teacher.check_size(len(sequences))
        frames = self.params.relate_frames
        curves = torch.stack([heatmap_curves(seq[HEATMAP], self.layout, frames) for seq in sequences])
        self.teacher.fit(curves, self.layout.joint_flip_permutation)

    def loss(self, batch: Batch, gen: torch.Generator, progress: Progress) -> tuple[torch.Tensor, dict[str, float]]:
        views = heatmap_views(self.augment, batch, self.params, gen)
        return self.view_loss(batch, views.encoded(self.encoder), views.m0, views.m1, views.pos, views.g0)

    def view_loss(self, batch: Batch, encoded: tuple[tuple[torch.Tensor, torch.Tensor | None], ...], m0: torch.Tensor,
                  m1: torch.Tensor, pos: torch.Tensor, g0: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """The training loss of two encoded views, ((U0 (B, M, D), clip0 (B, D) or None), (U1 (B, N, D), clip1)),
        with masks m0 (B, M) and m1 (B, N), the augmented frames' positions in the original view pos (B, N) and
        the original view's frames in the batch g0 (B, M): matching, plus the DTW teacher and the cross-video
        loss where their weights are > 0. (`bench/bench_la2ds_inputs.py` feeds it views rendered per step.)"""
        p = self.params
        (u0, c0), (u1, c1) = encoded
        (e0, _), (z0, z1) = self.head.forward_pair(u0, m0, u1, m1)
        matching = one_way_matching_loss(z0, m0, z1, m1, pos, p.temperature)
        scalars = {"matching": float(matching.detach())}
        total = matching
        if p.relate_weight > 0 and u0.shape[0] >= 3:
            relate = self.teacher.loss(c0, c1, batch.index)
            total = total + p.relate_weight * relate
            scalars["relate"] = float(relate.detach())
        if p.cross_weight > 0 and e0.shape[0] >= 2:
            keys = c0 if c0 is not None else masked_mean_pool(e0, m0)
            # partners are mined without gradient: the loss shapes the frames' embedding, not the choice of partner
            partner = nearest_partners(keys.detach())
            # indices as fractions of the original length, as the matching loss reads them
            scale = (batch.lengths.to(e0.device) - 1).clamp(min=1).float()[:, None]
            cross = cycle_back_loss(e0, m0, g0 / scale, e0[partner], m0[partner], p.cross_temperature)
            total = total + p.cross_weight * cross
            scalars["cross"] = float(cross.detach())
        return total, scalars

    def embed(self, batch: Batch) -> torch.Tensor:
        """(B, T, d_model) embeddings of the unaugmented sequences (cross-attention over themselves); with a clip
        token (B, T, 2 d_model): the clip token's output times `clip_scale` appended to every frame."""
        mask = batch.mask
        frames, clip = self.encoder.forward_clip(batch.arrays[HEATMAP], mask)
        u = self.head.single(frames, mask)
        if clip is None:
            return u
        return torch.cat((u, self.params.clip_scale * clip[:, None, :].expand_as(u)), dim=-1) * mask.unsqueeze(-1)


def heatmap_curves(maps: np.ndarray, layout: Skeleton, frames: int) -> torch.Tensor:
    """One sequence's heatmaps (T, K + L, S, S) (or an array-like indexed by an array of frames, such as
    `stages.shared.heatmap_store.StoredMaps`, which reads them through its cache) -> the skeleton they show
    at `frames` uniform positions, (frames, K, 2) float32: each joint channel's centroid in cells, normalised
    per sequence as MASA normalises keypoints (`model.inputs.skeleton.normalise`), missing joints at 0.

    A centroid is the joint's position while its blob lies inside the grid (the crop box is padded so that it
    does); an empty channel is a missing joint."""
    picked = np.asarray(maps[uniform_positions(len(maps), frames)], dtype=np.float32)
    joints = torch.as_tensor(picked[:, : layout.n_joints])  # (frames, K, S, S): the limb channels are not needed
    uv, found = centres(joints)
    xy = normalise(uv[None], found[None].float(), torch.ones(1, frames, dtype=torch.bool), layout, "sequence")
    return xy[0]
