"""MASA: multi-activity sequence alignment via implicit clip-level clustering (Kwon et al.; DESIGN.md Sec. 4).

    frames (B, T, F) --MLP--> + sinusoidal PE --4 layers, self/cross alternating--> U   (the embedding)
    U --projection head (4 FC, batch norm)--> Z --cluster predictor (2 self-attention layers)--> H(Z)

Training draws two views of each sequence by dual augmentation (one random trim, two independent resamplings
with drops and repeats, index maps g', g'' into the original frames; CASA's spatial augmentations on skeleton
coordinates per view), encodes them jointly (cross-attention runs between the two views) and minimises the
bi-directional matching loss combined with the stop-gradient clustering loss, either as the paper's eq. 9
as printed or as a weighted sum (`loss_combination`). Inference encodes one unaugmented sequence, with
cross-attention over itself, and returns U.

Clip-level options (params; all off reproduces the paper's formulation):
- `cluster_level`: "frame" is eq. 8 (frame pairs with the same original index); "clip" applies it to the
  time-averaged Z and H(Z); "token" applies SimSiam to the output of a learned clip token.
- `clip_token`: a learned token leads each sequence through the encoder (no position); its output, one
  vector per sequence, is appended to every frame of U, so U = [frame part, clip part].
- `contrast_weight` > 0 adds InfoNCE between the two views of each sequence with the batch's other sequences
  as negatives, on the frames of U ("frames", time-averaged or per frame) or on the clip token ("token"),
  through an MLP head (`contrast_head`) or directly.
- `decode_weight` > 0 asks the clip token of each view to reproduce the other view's unaugmented skeleton
  trajectory across the trimmed window, as a function of time within the window
  (`model.losses.clip.TrajectoryDecoder`).
- `cross_weight` > 0 adds cycle-back regression (TCC) on the frame part of U between each sequence and its
  nearest other sequence of the batch, mined without labels by the cosine of their clip vectors (clip token
  output, or the time-averaged U): frames of one video must find their place in a *different* video of the
  same kind. With a clip token the two halves of U specialise: the frame part carries the phase, the clip
  part the activity.
- `relate_weight` > 0 distils a label-free teacher into the clip vectors: before training, the DTW
  distance (mirror image allowed, `model.blocks.dtw`) between every two training sequences' normalised skeletons,
  resampled to `relate_frames` frames; each step, the softmax over the batch of a clip vector's cosine
  similarities to the others must follow the softmax of the negative DTW distances
  (`model.losses.relate.DtwTeacher`), so clip vectors come to rank videos as a speed- and handedness-free
  comparison of whole motions does.
- `clip_scale` weights the clip part of the exported U (inference only). Kendall's tau is unchanged by it
  (the clip part is constant within a sequence); distance-based activity retrieval leans on the clip part
  as it grows.

Input streams (`inputs`): keypoint arrays (joints_2d, joints_3d) as normalised coordinates, and/or DINO
features (`feature`, layer-normalised), concatenated per frame; `fusion_early` is this class with both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from model.batch import Batch, gather_frames, pad_indices
from model.blocks.attention import AlternatingEncoder, SelfAttentionStack
from model.blocks.heads import ProjectionHead, mlp
from model.blocks.positional import SinusoidalPE, frame_positions
from model.inputs.coordinates import CoordinateInput, SkeletonAugmentParams
from model.inputs.frame_inputs import FrameInputs, artifact_arrays
from model.inputs.temporal_augment import dual_maps, uniform_positions
from model.losses.alignment import (
    bidirectional_matching_loss,
    clip_clustering_loss,
    clip_contrastive_loss,
    clustering_loss,
    combine_losses,
    cycle_back_loss,
    masked_mean_pool,
    nearest_partners,
)
from model.losses.clip import TokenSimSiam, TrajectoryDecoder
from model.losses.relate import DtwTeacher
from model.method import AlignmentMethod, InputSpec, Progress


@dataclass(frozen=True)
class MasaParams:
    """inputs: arrays concatenated per frame (joints_2d, joints_3d, feature); normalise: keypoints centred and
    scaled per sequence or per frame; sizes of the frame MLP, the encoder (d_model, heads, layers), the
    projection head and the cluster predictor; temperature of the cosine matching; loss_combination: "printed"
    (eq. 9 as printed) or "sum" (matching + cluster_weight * clustering); dual augmentation: trim keeps at
    least trim_min_fraction of the frames, each view is resampled at a rate in [rate_min, rate_max] times the
    window length, at most max_frames frames; augment: spatial skeleton augmentations per view;
    position_encoding: each frame's index encoded into its token (the paper's); false: the encoder sees no order,
    so a frame is placed by what it shows, not where it lies (docs/research-log.md: content tau)."""

    inputs: tuple[str, ...]
    normalise: Literal["sequence", "frame"]
    use_confidence: bool
    mlp_hidden: int
    d_model: int
    heads: int
    layers: int
    ff_mult: int
    dropout: float
    position_encoding: bool
    proj_hidden: int
    proj_dim: int
    proj_layers: int
    predictor_layers: int
    temperature: float
    loss_combination: Literal["printed", "sum"]
    cluster_weight: float
    cluster_level: Literal["frame", "clip", "token"]
    clip_token: bool
    matching_weight: float
    contrast_weight: float
    contrast_temperature: float
    contrast_per_frame: bool
    contrast_on: Literal["frames", "token"]
    contrast_head: bool
    decode_weight: float
    decode_mirror: bool
    cross_weight: float
    cross_temperature: float
    relate_weight: float
    relate_frames: int
    relate_temperature: float
    relate_teacher_temperature: float
    relate_max_sequences: int
    clip_scale: float
    trim_min_fraction: float
    shared_trim: bool
    rate_min: float
    rate_max: float
    max_frames: int
    augment: SkeletonAugmentParams


class Masa(AlignmentMethod):
    params_cls = MasaParams
    export_params = frozenset({"clip_scale"})  # weights the exported clip part only

    @classmethod
    def inputs(cls, params: MasaParams) -> tuple[tuple[str, str], ...]:
        return artifact_arrays(params.inputs, cls.__name__)

    @classmethod
    def build(cls, params: MasaParams, spec: InputSpec) -> Masa:
        cls.inputs(params)
        return cls(params, spec)

    def __init__(self, params: MasaParams, spec: InputSpec):
        super().__init__()
        self.params = params
        self.frame_inputs = FrameInputs(params.inputs, spec, params.normalise, params.use_confidence, type(self).__name__)
        self.coords = self.frame_inputs.coords
        p = params
        if "token" in (p.cluster_level, p.contrast_on) and not p.clip_token:
            raise ValueError(f"{type(self).__name__}: cluster_level/contrast_on 'token' needs clip_token: true")
        self.frame_mlp = mlp([self.frame_inputs.dim, p.mlp_hidden, p.d_model])
        self.pe = SinusoidalPE(p.d_model) if p.position_encoding else None
        self.clip_token = nn.Parameter(torch.randn(p.d_model) * 0.02) if p.clip_token else None
        self.encoder = AlternatingEncoder(p.d_model, p.heads, p.layers, ff_mult=p.ff_mult, dropout=p.dropout)
        self.dim = 2 * p.d_model if p.clip_token else p.d_model
        self.projection = ProjectionHead(self.dim, p.proj_hidden, p.proj_dim, depth=p.proj_layers, batch_norm=True)
        self.predictor = SelfAttentionStack(p.proj_dim, p.heads, p.predictor_layers, ff_mult=p.ff_mult)
        self.predictor_out = nn.Linear(p.proj_dim, p.proj_dim)
        if p.cluster_level == "token":
            self.token_simsiam = TokenSimSiam(p.d_model, p.proj_hidden, p.proj_dim, depth=p.proj_layers)
        self.decoder: TrajectoryDecoder | None = None
        if p.decode_weight > 0:
            skeleton = next((c for c in self.coords.values()), None)
            if skeleton is None or not p.clip_token:
                raise ValueError(f"{type(self).__name__}: decode_weight > 0 needs a keypoint input and clip_token: true")
            self.decode_array = skeleton.array
            mirror = skeleton.layout.joint_flip_permutation if p.decode_mirror else None
            self.decoder = TrajectoryDecoder(p.d_model, p.proj_hidden, skeleton.layout.n_joints, skeleton.coord_dim,
                                             mirror=mirror)
        if p.relate_weight > 0 and (not p.clip_token or not self.coords):
            raise ValueError(f"{type(self).__name__}: relate_weight > 0 needs a keypoint input and clip_token: true")
        self.teacher = DtwTeacher(temperature=p.relate_temperature, teacher_temperature=p.relate_teacher_temperature,
                                  max_sequences=p.relate_max_sequences, owner=type(self).__name__)
        self.contrast_head: nn.Module | None = None
        if p.contrast_weight > 0:
            source = p.d_model if p.contrast_on == "token" else self.dim
            self.contrast_head = mlp([source, p.proj_hidden, p.proj_dim]) if p.contrast_head else nn.Identity()

    # ------------------------------------------------------------------ inputs
    def _tokens(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, F) -> frame MLP + positional encoding (B, T, d_model; without `position_encoding`, the MLP
        alone), zero on padding, and its mask; with `clip_token`, a learned clip token (no position) leads every
        sequence: (B, T + 1, d_model)."""
        tokens = self.frame_mlp(x)
        if self.pe is not None:
            tokens = tokens + self.pe(frame_positions(mask))
        tokens = tokens * mask.unsqueeze(-1)
        if self.clip_token is None:
            return tokens, mask
        B = tokens.shape[0]
        lead = self.clip_token.to(tokens.dtype).expand(B, 1, -1)
        return torch.cat((lead, tokens), 1), torch.cat((mask.new_ones(B, 1), mask), 1)

    def _split(self, out: torch.Tensor, mask: torch.Tensor, clip_scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Encoder output -> U (B, T, dim): frame outputs, with the clip token's output (times `clip_scale`)
        appended to every frame when there is one; and the clip token's output (B, d_model) or None."""
        if self.clip_token is None:
            return out, None
        clip, frames = out[:, 0], out[:, 1:]
        u = torch.cat((frames, clip_scale * clip[:, None, :].expand_as(frames)), dim=-1)
        return u * mask.unsqueeze(-1), clip

    # ------------------------------------------------------------------ training
    def prepare(self, sequences: Sequence[Mapping[str, np.ndarray]]) -> None:
        """With relate_weight > 0: the (N, N) mirror-aware DTW distances between the training sequences'
        normalised skeletons (the first keypoint input), each resampled to relate_frames frames."""
        if self.params.relate_weight <= 0:
            return
        self.teacher.check_size(len(sequences))
        name, coords = next(iter(self.coords.items()))
        curves = skeleton_curves([seq[name] for seq in sequences], coords, self.params.relate_frames)
        self.teacher.fit(curves, coords.layout.joint_flip_permutation)

    def views(self, batch: Batch, gen: torch.Generator) -> tuple[dict, torch.Tensor, torch.Tensor, dict, torch.Tensor, torch.Tensor]:
        """Dual augmentation: streams of both views (B, M|N, ...), their masks and index maps (B, M|N) long."""
        p = self.params
        maps = [
            dual_maps(int(n), gen, trim_min_fraction=p.trim_min_fraction, rate=(p.rate_min, p.rate_max),
                      max_frames=p.max_frames, shared_trim=p.shared_trim)
            for n in batch.lengths.tolist()
        ]
        g1, m1 = pad_indices([a for a, _ in maps])
        g2, m2 = pad_indices([b for _, b in maps])
        streams = self.frame_inputs.streams(batch)
        device = batch.mask.device
        g1, m1, g2, m2 = g1.to(device), m1.to(device), g2.to(device), m2.to(device)
        view1 = {k: gather_frames(v, g1) for k, v in streams.items()}
        view2 = {k: gather_frames(v, g2) for k, v in streams.items()}
        return view1, m1, g1, view2, m2, g2

    def forward_pair(self, x1: torch.Tensor, m1: torch.Tensor, x2: torch.Tensor, m2: torch.Tensor):
        """Frame inputs of two views -> (U', U''), (Z', Z''), (H(Z'), H(Z'')), clip token outputs (or None)."""
        (t1, mm1), (t2, mm2) = self._tokens(x1, m1), self._tokens(x2, m2)
        o1, o2 = self.encoder(t1, mm1, t2, mm2)
        (u1, c1), (u2, c2) = self._split(o1, m1), self._split(o2, m2)
        z1, z2 = self.projection(u1, m1), self.projection(u2, m2)
        h1 = self.predictor_out(self.predictor(z1, m1)) * m1.unsqueeze(-1)
        h2 = self.predictor_out(self.predictor(z2, m2)) * m2.unsqueeze(-1)
        return (u1, u2), (z1, z2), (h1, h2), (c1, c2)

    def loss(self, batch: Batch, gen: torch.Generator, progress: Progress) -> tuple[torch.Tensor, dict[str, float]]:
        p = self.params
        view1, m1, g1, view2, m2, g2 = self.views(batch, gen)
        x1 = self.frame_inputs.features(view1, p.augment, gen)
        x2 = self.frame_inputs.features(view2, p.augment, gen)
        (u1, u2), (z1, z2), (h1, h2), (c1, c2) = self.forward_pair(x1, m1, x2, m2)
        # indices as fractions of the original length: the loss means the same for 20 and 600 frames
        scale = (batch.lengths.to(z1.device) - 1).clamp(min=1).float()[:, None]
        o1, o2 = (m1, m2) if p.shared_trim else _overlap(g1, m1, g2, m2)
        matching = bidirectional_matching_loss(z1, o1, g1 / scale, z2, o2, g2 / scale, p.temperature)
        if p.cluster_level == "frame":
            clustering = clustering_loss(z1, h1, m1, g1, z2, h2, m2, g2)
        elif p.cluster_level == "clip":
            clustering = clip_clustering_loss(z1, h1, m1, z2, h2, m2)
        else:
            clustering = self.token_simsiam(c1, c2)
        total = combine_losses(p.matching_weight * matching, clustering, p.loss_combination, weight=p.cluster_weight)
        scalars = {"matching": float(matching.detach()), "clustering": float(clustering.detach())}
        if self.contrast_head is not None:
            if p.contrast_on == "token":
                ones = torch.ones(c1.shape[0], 1, dtype=torch.bool, device=c1.device)
                v1, n1, v2, n2 = self.contrast_head(c1)[:, None], ones, self.contrast_head(c2)[:, None], ones
            else:
                v1, n1, v2, n2 = self.contrast_head(u1), m1, self.contrast_head(u2), m2
            contrast = clip_contrastive_loss(v1, n1, v2, n2, p.contrast_temperature, per_frame=p.contrast_per_frame)
            total = total + p.contrast_weight * contrast
            scalars["contrast"] = float(contrast.detach())
        if self.decoder is not None:
            name = self.decode_array
            t1, t2 = _window_times(g1, m1, g2, m2)
            decode = 0.5 * (
                self.decoder.loss(c1, t2, view2[name], view2[name + ".conf"], m2)
                + self.decoder.loss(c2, t1, view1[name], view1[name + ".conf"], m1)
            )
            total = total + p.decode_weight * decode
            scalars["decode"] = float(decode.detach())
        if p.relate_weight > 0 and c1.shape[0] >= 3:
            relate = self.teacher.loss(c1, c2, batch.index)
            total = total + p.relate_weight * relate
            scalars["relate"] = float(relate.detach())
        if p.cross_weight > 0 and z1.shape[0] >= 2:
            keys = c1 if c1 is not None else masked_mean_pool(u1, m1)
            # partners are mined without gradient: the cross loss shapes the frame part, not the choice of partner
            partner = nearest_partners(keys.detach())
            f1, f2 = u1[..., : p.d_model], u2[..., : p.d_model]  # frame parts of U
            cross = cycle_back_loss(f1, m1, g1 / scale, f2[partner], m2[partner], p.cross_temperature)
            total = total + p.cross_weight * cross
            scalars["cross"] = float(cross.detach())
        return total, scalars

    # ------------------------------------------------------------------ inference
    def embed(self, batch: Batch) -> torch.Tensor:
        """U of each unaugmented sequence: (B, T, dim), zero on padding (dim = d_model, or 2 d_model with a
        clip token: frame output, clip token output times `clip_scale`)."""
        x = self.frame_inputs.features(self.frame_inputs.streams(batch), self.params.augment, None)  # no gen: no augmentation
        tokens, mask = self._tokens(x, batch.mask)
        return self._split(self.encoder.single(tokens, mask), batch.mask, self.params.clip_scale)[0]


def skeleton_curves(joints: Sequence[np.ndarray], coords: CoordinateInput, frames: int) -> torch.Tensor:
    """Stored keypoint arrays (T_i, K, C) -> each normalised as `coords` does for the model and resampled to
    `frames` uniform positions: (N, frames, K, D) float32, missing joints at 0 (the DTW teacher's curves)."""
    resampled = []
    for seq in joints:
        seq = torch.as_tensor(np.asarray(seq, dtype=np.float32))
        picked = seq[torch.as_tensor(uniform_positions(len(seq), frames))][None]  # (1, frames, K, C)
        xy, conf = coords.prepare(picked, torch.ones(picked.shape[:2], dtype=torch.bool))
        resampled.append((xy * (conf > 0).unsqueeze(-1))[0])  # (frames, K, D)
    return torch.stack(resampled)


def _overlap(g1: torch.Tensor, m1: torch.Tensor, g2: torch.Tensor, m2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks of the frames of each view whose original index lies within the other view's span (all real
    frames with a shared trim); the matching loss only asks those to find their place in the other view."""
    big = torch.iinfo(g1.dtype).max

    def span(g, m):
        lo = torch.where(m, g, torch.full_like(g, big)).amin(1, keepdim=True)
        hi = torch.where(m, g, torch.full_like(g, -1)).amax(1, keepdim=True)
        return lo, hi

    (lo1, hi1), (lo2, hi2) = span(g1, m1), span(g2, m2)
    return m1 & (g1 >= lo2) & (g1 <= hi2), m2 & (g2 >= lo1) & (g2 <= hi1)


def _window_times(g1: torch.Tensor, m1: torch.Tensor, g2: torch.Tensor, m2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each view's frames as times in [0, 1] across the stretch of the original both views cover (the trimmed
    window): what a clip vector, which never sees where its window lies in the original, can describe."""
    big = torch.iinfo(g1.dtype).max
    lo = torch.minimum(torch.where(m1, g1, big).amin(1), torch.where(m2, g2, big).amin(1))[:, None]
    hi = torch.maximum(torch.where(m1, g1, -1).amax(1), torch.where(m2, g2, -1).amax(1))[:, None]
    span = (hi - lo).clamp(min=1).float()
    return (g1 - lo).float() / span, (g2 - lo).float() / span
