"""Alignment losses on padded batches (pure functions of tensors).

Indices are *normalised* frame indices of the original sequence (index / (length - 1), in [0, 1]), so a
loss means the same for a 20-frame and a 600-frame sequence. Every mean is taken over real frames of a
sequence first, then over the sequences of the batch.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

NEG = -1e9  # additive logit for padded frames (finite, so fully padded rows stay finite)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """values, mask: (B, T) -> scalar: mean over each row's real entries, then over rows."""
    mask = mask.to(values.dtype)
    per_row = (values * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
    return per_row.mean()


def predicted_index(logits: torch.Tensor, target_mask: torch.Tensor, target_index: torch.Tensor) -> torch.Tensor:
    """Soft-argmax index: softmax over target frames of `logits` (B, M, N), weighting `target_index` (B, N).

    target_mask: (B, N) bool. Returns (B, M): sum_k softmax(logits)[j, k] * target_index[k].
    """
    logits = logits.masked_fill(~target_mask[:, None, :], NEG)
    # softmax in float32 even under bf16 autocast: with a 0.1 temperature the logits span tens of units and
    # bf16's 8-bit mantissa would round the small weights that carry the index to zero
    weights = logits.float().softmax(dim=-1)
    return torch.einsum("bmn,bn->bm", weights, target_index.float())


def cosine_similarity_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a: (B, M, D), b: (B, N, D) -> (B, M, N) cosine similarities."""
    return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).transpose(1, 2)


def bidirectional_matching_loss(
    z1: torch.Tensor,
    mask1: torch.Tensor,
    index1: torch.Tensor,
    z2: torch.Tensor,
    mask2: torch.Tensor,
    index2: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    """MASA eqs. 2-6: predicted index of each frame of one view = sum_k gamma_jk g''(k), with gamma a softmax
    over the other view of cosine similarity / temperature; squared error to its own original index, averaged
    over both directions. z: (B, M|N, D); mask: (B, M|N) bool; index: (B, M|N) normalised original indices."""
    sim = cosine_similarity_matrix(z1, z2) / temperature  # (B, M, N)
    pred1 = predicted_index(sim, mask2, index2)  # (B, M)
    pred2 = predicted_index(sim.transpose(1, 2), mask1, index1)  # (B, N)
    loss1 = _masked_mean((pred1 - index1.float()) ** 2, mask1)
    loss2 = _masked_mean((pred2 - index2.float()) ** 2, mask2)
    return 0.5 * (loss1 + loss2)


def contrastive_regression_loss(
    z: torch.Tensor,
    mask: torch.Tensor,
    index: torch.Tensor,
    z_aug: torch.Tensor,
    mask_aug: torch.Tensor,
    index_aug: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    """LA2DS eqs. 3-4 / CASA: for each augmented frame j, omega_ij = softmax_i(-||z_i - z'_j|| / lambda) over
    the original frames, i_pred = sum_i i omega_ij, loss = mean_j (i_pred - i_gt(j))^2 (one direction).
    z: (B, M, D) original, index: (B, M) its normalised indices; z_aug: (B, N, D), index_aug: (B, N) the
    normalised original index of each augmented frame."""
    # float32: cdist's |a|^2 + |b|^2 - 2ab expansion cancels catastrophically in bf16 for near frames
    dist = torch.cdist(z_aug.float(), z.float())  # (B, N, M)
    pred = predicted_index(-dist / temperature, mask, index)  # (B, N)
    return _masked_mean((pred - index_aug.float()) ** 2, mask_aug)


def one_way_matching_loss(
    z0: torch.Tensor, m0: torch.Tensor, z1: torch.Tensor, m1: torch.Tensor, pos: torch.Tensor, temperature: float
) -> torch.Tensor:
    """`contrastive_regression_loss` of an augmented view against its original view (CASA, LA2DS, late
    fusion): z0 (B, M, D) with mask m0 is the original view, z1 (B, N, D) with mask m1 the augmented one, and
    pos (B, N) each augmented frame's position in the original view. Positions are divided by the original
    view's last index, so the loss does not grow with sequence length."""
    scale = (m0.sum(1) - 1).clamp(min=1).float()[:, None]
    index0 = torch.arange(m0.shape[1], device=m0.device).float()[None, :] / scale
    return contrastive_regression_loss(z0, m0, index0, z1, m1, pos / scale, temperature)


def _pair_negative_cosine(
    target: torch.Tensor, mask_t: torch.Tensor, index_t: torch.Tensor,
    pred: torch.Tensor, mask_p: torch.Tensor, index_p: torch.Tensor,
) -> torch.Tensor:
    """MASA eq. 8: mean over frame pairs (j, k) with the same original index of -cos(target_j, pred_k)."""
    same = (index_t[:, :, None] == index_p[:, None, :]) & mask_t[:, :, None] & mask_p[:, None, :]  # (B, M, N)
    cos = cosine_similarity_matrix(target, pred)
    per_row = -(cos * same).sum(dim=(1, 2)) / same.sum(dim=(1, 2)).clamp(min=1)
    # two views can share no original frame (a very short sequence resampled twice): such a row has no
    # pairs and is left out of the mean, instead of counting as a perfect 0 that would dilute the others
    has_pairs = same.flatten(1).any(dim=1).to(per_row.dtype)
    return (per_row * has_pairs).sum() / has_pairs.sum().clamp(min=1)


def clustering_loss(
    z1: torch.Tensor, h1: torch.Tensor, mask1: torch.Tensor, g1: torch.Tensor,
    z2: torch.Tensor, h2: torch.Tensor, mask2: torch.Tensor, g2: torch.Tensor,
) -> torch.Tensor:
    """MASA eq. 7: 0.5 * (F(stopgrad(Z'), H(Z'')) + F(stopgrad(Z''), H(Z'))), F the negative cosine over frame
    pairs mapping to the same original frame. z: projections (B, T, D); h: cluster predictor outputs;
    g: (B, T) integer original indices (padding never pairs). Lies in [-1, 1]; no gradient reaches z1, z2."""
    return 0.5 * (
        _pair_negative_cosine(z1.detach(), mask1, g1, h2, mask2, g2)
        + _pair_negative_cosine(z2.detach(), mask2, g2, h1, mask1, g1)
    )


def masked_mean_pool(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, T, D), (B, T) -> (B, D): mean over each row's real frames."""
    m = mask.to(x.dtype).unsqueeze(-1)
    return (x * m).sum(dim=1) / m.sum(dim=1).clamp(min=1)


def clip_clustering_loss(
    z1: torch.Tensor, h1: torch.Tensor, mask1: torch.Tensor,
    z2: torch.Tensor, h2: torch.Tensor, mask2: torch.Tensor,
) -> torch.Tensor:
    """Clip-level variant of eq. 7: the same stop-gradient negative cosine on the views' time-averaged
    projections and predictions, 0.5 * (-cos(sg(mean Z'), mean H(Z'')) - cos(sg(mean Z''), mean H(Z')))."""
    p1, p2 = masked_mean_pool(h1, mask1), masked_mean_pool(h2, mask2)
    t1, t2 = masked_mean_pool(z1, mask1).detach(), masked_mean_pool(z2, mask2).detach()
    return -0.5 * (F.cosine_similarity(t1, p2, dim=-1).mean() + F.cosine_similarity(t2, p1, dim=-1).mean())


def clip_contrastive_loss(
    c1: torch.Tensor, mask1: torch.Tensor, c2: torch.Tensor, mask2: torch.Tensor, temperature: float,
    *, per_frame: bool,
) -> torch.Tensor:
    """InfoNCE between two views of each sequence of the batch, the other sequences as negatives.

    c: (B, T, D) per-frame vectors. per_frame False: one time-averaged vector per view and sequence (SimCLR on
    clips). per_frame True: every real frame of view 1 is a query whose positive is the other view's clip
    vector, so that each frame on its own carries what identifies its sequence. Symmetrised."""
    v1 = F.normalize(masked_mean_pool(c1, mask1), dim=-1)  # (B, D)
    v2 = F.normalize(masked_mean_pool(c2, mask2), dim=-1)
    target = torch.arange(v1.shape[0], device=v1.device)
    if not per_frame:
        logits = v1 @ v2.T / temperature
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    losses = []
    for frames, mask, clips in ((c1, mask1, v2), (c2, mask2, v1)):
        logits = F.normalize(frames, dim=-1) @ clips.T / temperature  # (B, T, B)
        nll = F.cross_entropy(logits.flatten(0, 1), target.repeat_interleave(frames.shape[1]), reduction="none")
        losses.append(_masked_mean(nll.view(frames.shape[:2]), mask))
    return 0.5 * (losses[0] + losses[1])


def nearest_partners(keys: torch.Tensor) -> torch.Tensor:
    """(B, D) one vector per sequence -> (B,) long: for each, the other sequence of the batch whose vector is
    the most cosine-similar (B >= 2). No labels: partners are mined from what the model already encodes."""
    unit = F.normalize(keys.float(), dim=-1)
    sim = unit @ unit.T
    sim.fill_diagonal_(float("-inf"))  # a sequence is never its own partner: the cycle must cross videos
    return sim.argmax(dim=1)


def relation_distillation_loss(
    keys: torch.Tensor, teacher_distance: torch.Tensor, temperature: float, teacher_temperature: float
) -> torch.Tensor:
    """Relational distillation: each sequence's similarities to the batch's others, as a softmax over the
    others, must follow a teacher's distances (KL(teacher || student), mean over sequences; B >= 2).

    keys: (B, D) one vector per sequence (student: cosine / temperature); teacher_distance: (B, B) symmetric,
    zero diagonal (teacher: -distance / (teacher_temperature * the row's mean distance to the others), so the
    teacher's sharpness does not depend on the distance's units)."""
    B = keys.shape[0]
    off = ~torch.eye(B, dtype=torch.bool, device=keys.device)
    unit = F.normalize(keys.float(), dim=-1)
    student = (unit @ unit.T / temperature).masked_fill(~off, NEG).log_softmax(-1)
    dist = teacher_distance.to(keys.device).float()
    scale = (dist * off).sum(1, keepdim=True) / (B - 1)
    # a batch of identical sequences has all-zero distances: the clamp keeps the teacher uniform, not NaN
    teacher = (-dist / (teacher_temperature * scale.clamp(min=1e-8))).masked_fill(~off, NEG).softmax(-1)
    # KL(teacher || student); the clamp only guards log(0) on the masked diagonal, which `off` then drops
    return (teacher * (teacher.clamp(min=1e-12).log() - student) * off).sum(-1).mean()


def cycle_back_loss(
    za: torch.Tensor, mask_a: torch.Tensor, index_a: torch.Tensor,
    zb: torch.Tensor, mask_b: torch.Tensor, temperature: float,
) -> torch.Tensor:
    """Cycle-back regression between two *different* sequences (TCC, Dwibedi et al. 2019): each frame of A
    takes its soft nearest neighbour in B (softmax over B's frames of cosine / temperature, weighting B's
    vectors), which cycles back to a soft index in A; squared error to the frame's own normalised index.
    za: (B, M, D), mask_a: (B, M) bool, index_a: (B, M) normalised indices; zb: (B, N, D), mask_b: (B, N)."""
    alpha = (cosine_similarity_matrix(za, zb) / temperature).masked_fill(~mask_b[:, None, :], NEG).float().softmax(-1)
    # the soft nearest neighbour is a weighted mean of B's frames, so the gradient reaches every frame of B
    # (a hard argmax would train only the one frame it picks)
    soft = torch.einsum("bmn,bnd->bmd", alpha, zb.float())  # (B, M, D)
    pred = predicted_index(cosine_similarity_matrix(soft, za.float()) / temperature, mask_a, index_a)
    return _masked_mean((pred - index_a.float()) ** 2, mask_a)


def combine_losses(
    matching: torch.Tensor,
    clustering: torch.Tensor,
    mode: Literal["printed", "sum"],
    *,
    weight: float,
    eps: float = 1e-7,
) -> torch.Tensor:
    """MASA eq. 9 as printed, L = L_m * 2 / ((1 + eps) + L_c), or the plain sum L = L_m + weight * L_c.

    As printed the formula is minimised by *raising* L_c (towards +1, dissimilar pairs): the paper's text is
    garbled there, so both are offered and the benchmark decides.
    """
    if mode == "printed":
        return matching * 2.0 / ((1.0 + eps) + clustering)
    if mode == "sum":
        return matching + weight * clustering
    raise ValueError(f"loss combination must be 'printed' or 'sum', got {mode!r}")
