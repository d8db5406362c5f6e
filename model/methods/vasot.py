"""VASOT: joint self-supervised video alignment and action segmentation with one optimal-transport
formulation (Shah et al., 2025; DESIGN.md Sec. 4; the solvers and the temporal prior are in `model.blocks.ot`).

    frames (B, T, F) --MLP--> (+ sinusoidal PE) --self-attention x L--> U  (the embedding)
    U --projection head--> z (unit norm) --cos with K prototypes--> prototype logits

Positional encoding is off by default: with it, the encoder learns where a frame lies in its sequence and
the prototypes, trained on OT codes that carry the temporal prior, partition time rather than poses (on
generated phased motion the segmentation then equals cutting each sequence into K equal parts); without
it the prototypes come from the frames' content and the prior orders them at assignment time.

Training pairs each sequence with another of the same activity in the batch (a sequence alone in its
activity is paired with an augmented view of itself: one random trim, two independent resamplings), draws
a resampled view of each (plus CASA's spatial skeleton augmentations), and solves for each pair the fused
Gromov-Wasserstein plan with the temporal structural prior (`model.blocks.ot.align_plan`). Losses
(`model.losses.vasot`): the plan-target alignment loss, plus `segment_weight` times the prototype loss:
frames are assigned to the K prototypes by balanced OT with the temporal prior (prototype k near time
(k + 1/2) / K, `model.blocks.ot.assign_to_prototypes`) and predict the codes of the frames they are aligned to.
`segment_weight: 0` gives the single-task alignment model; `align_weight: 0` the single-task segmentation
model (its prototype loss still transfers codes along the alignment plan, which is then a target only).
By default the plans are targets (computed without gradient, as SwAV's codes); `differentiable_plan`
back-propagates through the unrolled solver as well (memory grows with its iterations).

Inference: `embed` returns U; `segment` the per-frame prototype index (argmax of the OT assignment), which
the train stage writes beside the embeddings (`embeddings_vasot.zarr {seq}/segment`) through
`model.embedder.Embedder.segment_many`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from model.batch import Batch, gather_frames, pad_indices
from model.blocks import ot
from model.blocks.attention import SelfAttentionStack
from model.blocks.heads import ProjectionHead, mlp
from model.blocks.positional import SinusoidalPE, frame_positions
from model.inputs.coordinates import SkeletonAugmentParams
from model.inputs.frame_inputs import FrameInputs, artifact_arrays
from model.inputs.temporal_augment import dual_maps, resample_map
from model.losses.vasot import (
    ot_alignment_loss,
    partner_rows,
    prototype_loss,
    transfer_codes,
)
from model.method import AlignmentMethod, InputSpec, Progress


@dataclass(frozen=True)
class VasotParams:
    """inputs: arrays concatenated per frame (joints_2d, joints_3d, feature); encoder sizes;
    positional_encoding: add the sinusoidal encoding of the frame index (without it the encoder cannot read
    a frame's position, so prototypes must come from the frames' content); temperature of the cosine
    softmax of both losses. OT (`model.blocks.ot`): epsilon (entropy), alpha (weight of the GW structure
    term), rho and prior_power (temporal prior rho |t - s|^power), radius (neighbourhood of the structure
    matrices, normalised time), n_outer x n_inner iterations, reg_m (None: balanced marginals).
    Segmentation: n_prototypes, segment_weight (0: alignment only), align_weight (0: segmentation only), segment_rho (temporal prior of the
    prototype assignment), segment_reg_m (None: every prototype receives 1 / K; else the prototype side is
    relaxed, so segments may differ in length; the other OT settings are shared). Views: trim_min_fraction (self-pairs
    only), resampling rate range, max_frames; augment: spatial skeleton augmentations."""

    inputs: tuple[str, ...]
    normalise: Literal["sequence", "frame"]
    use_confidence: bool
    mlp_hidden: int
    d_model: int
    heads: int
    layers: int
    ff_mult: int
    dropout: float
    positional_encoding: bool
    proj_hidden: int
    proj_dim: int
    temperature: float
    epsilon: float
    alpha: float
    rho: float
    prior_power: float
    radius: float
    n_outer: int
    n_inner: int
    reg_m: float | None
    differentiable_plan: bool
    n_prototypes: int
    segment_weight: float
    align_weight: float
    segment_rho: float
    segment_reg_m: float | None
    trim_min_fraction: float
    rate_min: float
    rate_max: float
    max_frames: int
    augment: SkeletonAugmentParams


class Vasot(AlignmentMethod):
    params_cls = VasotParams
    segments = True

    @classmethod
    def inputs(cls, params: VasotParams) -> tuple[tuple[str, str], ...]:
        return artifact_arrays(params.inputs, cls.__name__)

    @classmethod
    def build(cls, params: VasotParams, spec: InputSpec) -> Vasot:
        cls.inputs(params)
        if params.align_weight <= 0 and params.segment_weight <= 0:
            raise ValueError(f"{cls.__name__}: align_weight and segment_weight are both 0: nothing to train")
        return cls(params, spec)

    def __init__(self, params: VasotParams, spec: InputSpec):
        super().__init__()
        self.params = p = params
        self.frame_inputs = FrameInputs(p.inputs, spec, p.normalise, p.use_confidence, type(self).__name__)
        self.coords = self.frame_inputs.coords
        self.frame_mlp = mlp([self.frame_inputs.dim, p.mlp_hidden, p.d_model])
        self.pe = SinusoidalPE(p.d_model)
        self.encoder = SelfAttentionStack(p.d_model, p.heads, p.layers, ff_mult=p.ff_mult, dropout=p.dropout)
        self.projection = ProjectionHead(p.d_model, p.proj_hidden, p.proj_dim, depth=2, batch_norm=False)
        self.prototypes = nn.Parameter(F.normalize(torch.randn(p.n_prototypes, p.proj_dim), dim=1))

    # ------------------------------------------------------------------ encoding
    def _encode(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, F) -> U (B, T, d_model), zero on padding."""
        tokens = self.frame_mlp(x)
        if self.params.positional_encoding:
            tokens = tokens + self.pe(frame_positions(mask))
        tokens = tokens * mask.unsqueeze(-1)
        return self.encoder(tokens, mask)

    def _project(self, u: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """U -> unit-norm z (B, T, proj_dim) in float32."""
        return F.normalize(self.projection(u, mask).float(), dim=-1)

    def _prototype_cost(self, z: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> cosine cost 1 - cos(z, prototype) (B, T, K)."""
        return 1 - z @ F.normalize(self.prototypes.float(), dim=1).T

    # ------------------------------------------------------------------ training
    def views(self, batch: Batch, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
        """Two views per row (the row's, and its partner's or its own second view): frame inputs (B, N|M, F),
        masks (B, N|M), and the number of rows paired with another sequence."""
        p = self.params
        lengths = batch.lengths.tolist()
        partner = partner_rows(batch.activities) if batch.activities else list(range(len(lengths)))
        maps_a, maps_b = [], []
        for row, other in enumerate(partner):
            if other == row:
                g_a, g_b = dual_maps(lengths[row], gen, trim_min_fraction=p.trim_min_fraction,
                                     rate=(p.rate_min, p.rate_max), max_frames=p.max_frames)
            else:
                g_a = resample_map(0, lengths[row], gen, rate=(p.rate_min, p.rate_max), max_frames=p.max_frames)
                g_b = resample_map(0, lengths[other], gen, rate=(p.rate_min, p.rate_max), max_frames=p.max_frames)
            maps_a.append(g_a)
            maps_b.append(g_b)
        device = batch.mask.device
        (g_a, m_a), (g_b, m_b) = (tuple(t.to(device) for t in pad_indices(m)) for m in (maps_a, maps_b))
        streams = self.frame_inputs.streams(batch)
        rows_b = torch.tensor(partner, device=device)
        view_a = {k: gather_frames(v, g_a) for k, v in streams.items()}
        view_b = {k: gather_frames(v[rows_b], g_b) for k, v in streams.items()}
        x_a = self.frame_inputs.features(view_a, self.params.augment, gen)
        x_b = self.frame_inputs.features(view_b, self.params.augment, gen)
        return x_a, m_a, x_b, m_b, sum(other != row for row, other in enumerate(partner))

    def _plan(self, z_a: torch.Tensor, m_a: torch.Tensor, z_b: torch.Tensor, m_b: torch.Tensor) -> torch.Tensor:
        """Fused-GW alignment plan (B, N, M) with the temporal prior on the cosine cost."""
        p = self.params
        with torch.set_grad_enabled(p.differentiable_plan and torch.is_grad_enabled()):
            return ot.align_plan(
                1 - z_a @ z_b.transpose(1, 2), epsilon=p.epsilon, alpha=p.alpha, rho=p.rho, radius=p.radius,
                prior_power=p.prior_power, n_outer=p.n_outer, n_inner=p.n_inner, mask_x=m_a, mask_y=m_b,
                reg_m=p.reg_m,
            )

    @torch.no_grad()
    def assign(self, z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """OT assignment (B, T, K) of unit-norm frames z (B, T, D) to the prototypes (temporal prior; balanced
        unless segment_reg_m)."""
        p = self.params
        return ot.assign_to_prototypes(
            self._prototype_cost(z), epsilon=p.epsilon, alpha=p.alpha, rho=p.segment_rho, radius=p.radius,
            prior_power=p.prior_power, n_outer=p.n_outer, n_inner=p.n_inner, mask=mask, reg_m=p.segment_reg_m,
        )

    def loss(self, batch: Batch, gen: torch.Generator, progress: Progress) -> tuple[torch.Tensor, dict[str, float]]:
        x_a, m_a, x_b, m_b, n_paired = self.views(batch, gen)
        z_a, z_b = self._project(self._encode(x_a, m_a), m_a), self._project(self._encode(x_b, m_b), m_b)
        with torch.autocast(z_a.device.type, enabled=False):  # costs and plans in float32 under AMP
            total, scalars = self._ot_losses(z_a, m_a, z_b, m_b)
        scalars["paired"] = n_paired / len(batch.mask)
        return total, scalars

    def _ot_losses(self, z_a: torch.Tensor, m_a: torch.Tensor, z_b: torch.Tensor, m_b: torch.Tensor):
        """Alignment loss (+ segment_weight x prototype loss) of two views' unit-norm z (B, N|M, D)."""
        p = self.params
        plan = self._plan(z_a, m_a, z_b, m_b)
        align = ot_alignment_loss(z_a, m_a, z_b, m_b, plan, p.temperature)
        scalars = {"align": float(align.detach())}
        if p.segment_weight == 0:
            return p.align_weight * align, scalars
        # the plan and the prototype codes are targets (SwAV-style): no gradient through the solver here
        plan_t = plan.detach()
        codes_a, codes_b = self.assign(z_a.detach(), m_a), self.assign(z_b.detach(), m_b)
        logits_a = (1 - self._prototype_cost(z_a)) / p.temperature
        logits_b = (1 - self._prototype_cost(z_b)) / p.temperature
        segment = 0.5 * (
            prototype_loss(logits_a, transfer_codes(plan_t, codes_b), m_a)
            + prototype_loss(logits_b, transfer_codes(plan_t.transpose(1, 2), codes_a), m_b)
        )
        scalars["segment"] = float(segment.detach())
        return p.align_weight * align + p.segment_weight * segment, scalars

    # ------------------------------------------------------------------ inference
    def embed(self, batch: Batch) -> torch.Tensor:
        """U of each unaugmented sequence: (B, T, d_model), zero on padding."""
        x = self.frame_inputs.features(self.frame_inputs.streams(batch), self.params.augment, None)  # no gen: no augmentation
        return self._encode(x, batch.mask)

    @torch.no_grad()
    def segment(self, batch: Batch) -> torch.Tensor:
        """Per-frame prototype index (B, T) int64 of each unaugmented sequence, -1 on padding."""
        z = self._project(self.embed(batch), batch.mask)
        with torch.autocast(z.device.type, enabled=False):
            return ot.segment_labels(self.assign(z, batch.mask), batch.mask)
