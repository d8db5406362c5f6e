"""Skeleton geometry for the models: the kinematic tree of a layout and coordinate normalisation.

Joints arrive as (..., K, C) tensors: C = 3 for joints_2d ([x, y, confidence], pixels) and C = 3 for joints_3d
(xyz, no confidence). Missing joints (confidence 0, NaN) are carried as zero coordinates with confidence 0.
"""

from __future__ import annotations

from collections import deque
from typing import Literal

import torch

from pipeline.skeletons.layouts import Skeleton


def kinematic_parents(layout: Skeleton) -> tuple[int, ...]:
    """parents[k] = the joint k hangs from in a spanning tree of the layout's limbs rooted at its first
    root joint (-1 for the root itself), found breadth-first so that every joint is reached."""
    neighbours: dict[int, list[int]] = {k: [] for k in range(layout.n_joints)}
    for a, b in layout.limbs:
        neighbours[a].append(b)
        neighbours[b].append(a)
    root = layout.root[0]
    parents = [-2] * layout.n_joints
    parents[root] = -1
    queue = deque([root])
    while queue:
        j = queue.popleft()
        for n in neighbours[j]:
            if parents[n] == -2:
                parents[n] = j
                queue.append(n)
    unreached = [layout.joints[k] for k, p in enumerate(parents) if p == -2]
    if unreached:
        raise ValueError(f"layout {layout.name}: joints {unreached} are not connected to the root by limbs")
    return tuple(parents)


def descendants(parents: tuple[int, ...]) -> torch.Tensor:
    """(K, K) bool: [j, k] is True when joint k lies in the subtree hanging from joint j (k != j)."""
    K = len(parents)
    out = torch.zeros(K, K, dtype=torch.bool)
    for k in range(K):
        p = parents[k]
        while p >= 0:
            out[p, k] = True
            p = parents[p]
    return out


def split_joints(joints: torch.Tensor, has_confidence: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., K, C) -> coordinates (..., K, D) with NaN and missing joints set to 0, confidence (..., K)."""
    if has_confidence:
        xy, conf = joints[..., :-1], joints[..., -1]
    else:
        xy, conf = joints, torch.ones_like(joints[..., 0])
    # a joint counts only when it has finite coordinates and a positive confidence: datasets mark missing
    # joints with NaN (estimated poses), with 0 confidence (Penn's invisible joints), or both
    valid = torch.isfinite(xy).all(dim=-1) & torch.isfinite(conf) & (conf > 0)
    conf = torch.where(valid, conf, torch.zeros_like(conf))
    return torch.where(valid.unsqueeze(-1), xy, torch.zeros_like(xy)), conf


def _group_mean(xy: torch.Tensor, conf: torch.Tensor, group: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Confidence-weighted mean of a joint group: (..., K, D) -> (..., D) and its weight (...)."""
    w = conf[..., list(group)]
    total = w.sum(dim=-1)
    mean = (xy[..., list(group), :] * w.unsqueeze(-1)).sum(dim=-2) / total.clamp(min=1e-6).unsqueeze(-1)
    return mean, total


def _masked_time_mean(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(B, T, D), (B, T) -> (B, D): the weighted mean over time."""
    return (x * weight.unsqueeze(-1)).sum(1) / weight.sum(1).clamp(min=1).unsqueeze(-1)


def normalise(
    xy: torch.Tensor,
    conf: torch.Tensor,
    mask: torch.Tensor,
    layout: Skeleton,
    mode: Literal["sequence", "frame"],
) -> torch.Tensor:
    """Centre on the layout's root and divide by its scale (e.g. torso length), per sequence or per frame.

    xy: (B, T, K, D), conf: (B, T, K), mask: (B, T) -> (B, T, K, D), zero for missing joints and padding.
    "sequence" keeps the body's motion through the frame (one centre and scale per sequence, averaged over
    its frames); "frame" removes it. A frame without root or scale joints falls back to its sequence's; a
    sequence without any confident root (scale) joint is centred on the mean of its confident joints (sized by
    their RMS distance from that centre), so a skeleton is never left in pixels.
    """
    conf = conf * mask.unsqueeze(-1)
    root, w_root = _group_mean(xy, conf, layout.root)  # (B, T, D), (B, T)
    top, w_top = _group_mean(xy, conf, layout.scale[0])
    bottom, w_bottom = _group_mean(xy, conf, layout.scale[1])
    ok_root = (w_root > 0).float()
    ok_scale = ((w_top > 0) & (w_bottom > 0)).float()
    length = (top - bottom).norm(dim=-1)  # (B, T)
    seq_root = _masked_time_mean(root, ok_root)  # (B, D)
    # a sequence whose root joints are never confident is centred on the mean of its confident joints
    everything, w_all = _group_mean(xy, conf, tuple(range(xy.shape[-2])))
    seq_root = torch.where(ok_root.sum(1, keepdim=True) > 0, seq_root, _masked_time_mean(everything, (w_all > 0).float()))
    seq_scale = (length * ok_scale).sum(1) / ok_scale.sum(1).clamp(min=1)  # (B,)
    # ... and one whose scale joints never are is sized by the RMS distance of its joints from that centre
    sq = ((xy - seq_root[:, None, None, :]) ** 2).sum(-1)  # (B, T, K)
    spread = ((sq * (conf > 0)).sum((1, 2)) / (conf > 0).sum((1, 2)).clamp(min=1)).sqrt()
    seq_scale = torch.where(ok_scale.sum(1) > 0, seq_scale, spread)
    seq_scale = torch.where(seq_scale > 1e-6, seq_scale, torch.ones_like(seq_scale))
    if mode == "sequence":
        centre, scale = seq_root[:, None, :], seq_scale[:, None]
    elif mode == "frame":
        centre = torch.where(ok_root.bool().unsqueeze(-1), root, seq_root[:, None, :])
        scale = torch.where(ok_scale.bool() & (length > 1e-6), length, seq_scale[:, None])
    else:
        raise ValueError(f"normalisation mode must be 'sequence' or 'frame', got {mode!r}")
    out = (xy - centre.unsqueeze(-2)) / scale[..., None, None]
    return out * (conf > 0).unsqueeze(-1)
