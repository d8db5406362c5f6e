"""VASOT's training losses on padded batches (pure functions of tensors; the transport plans come from
`model.blocks.ot`).

- Alignment: the fused-GW plan P (B, N, M) between two sequences is a soft correspondence. Each frame of one
  sequence is trained to pick its transported frames out of the other by a softmax over cosine similarities
  / temperature: cross-entropy with the row-normalised plan as target, in both directions (VAVA's
  inter-video contrastive loss, Liu et al. CVPR 2022, with VASOT's fused-GW plan in place of the
  Kantorovich one). A constant embedding cannot minimise it, unlike <P, C> alone.
- Segmentation: frames are assigned to K prototypes by OT with balanced marginals and the temporal prior
  (codes, no gradient); each frame's prototype logits are trained towards the codes of the frames it is
  aligned to in the other sequence, carried over by the alignment plan (SwAV's swapped prediction, Caron et
  al. 2020, across the alignment), so one plan drives both tasks.
Every mean is over the real frames of a sequence first, then over the sequences of the batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

NEG = -1e9  # additive logit of padded frames (finite, so fully masked rows stay finite)


def partner_rows(activities: Sequence[str]) -> list[int]:
    """Row of the batch each row is aligned with: the next row of the same activity, cyclically in batch
    order; the row itself (its own augmented view) when it is the only one of its activity."""
    groups: dict[str, list[int]] = {}
    for row, activity in enumerate(activities):
        groups.setdefault(activity, []).append(row)
    partner = list(range(len(activities)))
    for rows in groups.values():
        for k, row in enumerate(rows):
            partner[row] = rows[(k + 1) % len(rows)]
    return partner


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """values, mask: (B, T) -> scalar: mean over each row's real entries, then over rows."""
    weights = mask.to(values.dtype)
    return ((values * weights).sum(1) / weights.sum(1).clamp(min=1)).mean()


def row_normalise(weights: Tensor) -> Tensor:
    """(B, N, M) non-negative -> rows summing to 1 (rows of zeros stay zero)."""
    return weights / weights.sum(2, keepdim=True).clamp_min(torch.finfo(weights.dtype).tiny)


def soft_cross_entropy(logits: Tensor, target: Tensor, key_mask: Tensor) -> Tensor:
    """(B, N, M) logits over keys, (B, N, M) target distributions, (B, M) key mask -> (B, N) cross-entropy."""
    log_p = logits.masked_fill(~key_mask[:, None, :], NEG).log_softmax(2)
    return -(target * log_p).sum(2)


def ot_alignment_loss(
    z_a: Tensor, mask_a: Tensor, z_b: Tensor, mask_b: Tensor, plan: Tensor, temperature: float
) -> Tensor:
    """Symmetric cross-entropy between the plan's rows / columns and softmax(cos / temperature).

    z_a: (B, N, D), z_b: (B, M, D) unit-norm embeddings; masks (B, N), (B, M); plan: (B, N, M).
    """
    logits = (z_a @ z_b.transpose(1, 2)) / temperature
    forward = soft_cross_entropy(logits, row_normalise(plan), mask_b)
    backward = soft_cross_entropy(logits.transpose(1, 2), row_normalise(plan.transpose(1, 2)), mask_a)
    return 0.5 * (masked_mean(forward, mask_a) + masked_mean(backward, mask_b))


def transfer_codes(plan: Tensor, codes: Tensor) -> Tensor:
    """Prototype codes of the other sequence carried over by the plan: (B, N, M) @ (B, M, K) -> (B, N, K),
    each real row a distribution over the K prototypes."""
    return row_normalise(plan) @ row_normalise(codes)


def prototype_loss(logits: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    """Cross-entropy of per-frame prototype logits (B, T, K) against target distributions (B, T, K)."""
    every_prototype = torch.ones(logits.shape[0], logits.shape[2], dtype=torch.bool, device=logits.device)
    return masked_mean(soft_cross_entropy(logits, targets, every_prototype), mask)
