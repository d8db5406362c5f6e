"""Spatial skeleton augmentations on joint coordinates (pure torch, random draws from a CPU generator).

All functions take coordinates (B, T, K, D) with D = 2 or 3 and return new ones (the input is never
modified). Random values are drawn per sequence on `gen` (a CPU torch.Generator, so a seed gives the same
augmentation on any device) and moved to the coordinates' device. Missing joints (confidence 0) may move
with their subtree; their confidence still keeps them out of every loss and heatmap.

- `flip`: mirror x about a per-sequence vertical axis and swap left/right joints (LA2DS, CASA).
- `position_noise`: independent Gaussian noise per joint and frame (LA2DS).
- `translate`: one Gaussian shift per sequence (CASA).
- `rotate_global`, `scale`: one rotation about the root / one size factor per sequence (camera changes).
- `rotate_subtrees`: rotate the part of the skeleton hanging from chosen joints about those joints, by one
  angle per sequence and joint: LA2DS's limb rotation (one random limb) and CASA's angle noise (every bone
  with some probability), here actually applied to the coordinates.
"""

from __future__ import annotations

import torch


def _bernoulli(shape: tuple[int, ...], p: float, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(shape, generator=gen) < p


def flip(
    xy: torch.Tensor, perm: tuple[int, ...], centre_x: torch.Tensor, apply: torch.Tensor
) -> torch.Tensor:
    """Mirror the sequences where `apply` (B,) is True about x = centre_x (B,), swapping joints by `perm`."""
    flipped = xy[..., list(perm), :].clone()
    flipped[..., 0] = 2 * centre_x.to(xy)[:, None, None] - flipped[..., 0]
    return torch.where(apply.to(xy.device)[:, None, None, None], flipped, xy)


def random_flip(
    xy: torch.Tensor, perm: tuple[int, ...], centre_x: torch.Tensor, p: float, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip each sequence with probability p; returns the coordinates and the (B,) bool of flipped rows."""
    apply = _bernoulli((xy.shape[0],), p, gen)
    return flip(xy, perm, centre_x, apply), apply


def position_noise(xy: torch.Tensor, std: torch.Tensor | float, p: float, gen: torch.Generator) -> torch.Tensor:
    """With probability p per sequence, add N(0, std^2) to every joint of every frame; std scalar or (B,)."""
    B = xy.shape[0]
    std = torch.as_tensor(std, dtype=torch.float32).expand(B)
    scale = std * _bernoulli((B,), p, gen)
    noise = torch.randn(xy.shape, generator=gen) * scale[:, None, None, None]
    return xy + noise.to(xy)


def translate(xy: torch.Tensor, std: float, p: float, gen: torch.Generator) -> torch.Tensor:
    """With probability p per sequence, shift the whole sequence by one N(0, std^2) vector."""
    B, D = xy.shape[0], xy.shape[-1]
    shift = torch.randn(B, D, generator=gen) * std * _bernoulli((B, 1), p, gen)
    return xy + shift.to(xy)[:, None, None, :]


def rotate_global(xy: torch.Tensor, std: float, p: float, gen: torch.Generator) -> torch.Tensor:
    """With probability p per sequence, rotate every joint about the origin (the normalised skeleton's root)
    by one N(0, std^2) angle (radians): in the image plane for 2-D, about a random axis for 3-D."""
    B, D = xy.shape[0], xy.shape[-1]
    angles = torch.randn(B, generator=gen) * std * _bernoulli((B,), p, gen)
    rot = rotation_matrices(angles, D, gen).to(xy)  # (B, D, D)
    return torch.einsum("bde,btke->btkd", rot, xy)


def scale(xy: torch.Tensor, std: float, p: float, gen: torch.Generator) -> torch.Tensor:
    """With probability p per sequence, multiply every coordinate by exp(N(0, std^2))."""
    B = xy.shape[0]
    factor = torch.exp(torch.randn(B, generator=gen) * std * _bernoulli((B,), p, gen))
    return xy * factor.to(xy)[:, None, None, None]


def rotation_matrices(angles: torch.Tensor, dim: int, gen: torch.Generator) -> torch.Tensor:
    """(..., dim, dim) rotations by `angles` (...): in-plane for dim 2, about a random unit axis for dim 3."""
    c, s = angles.cos(), angles.sin()
    if dim == 2:
        return torch.stack((torch.stack((c, -s), -1), torch.stack((s, c), -1)), -2)
    if dim != 3:
        raise ValueError(f"rotations need 2-D or 3-D coordinates, got {dim}-D")
    axis = torch.randn(*angles.shape, 3, generator=gen)
    axis = axis / axis.norm(dim=-1, keepdim=True).clamp(min=1e-8)
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    cross = torch.stack(
        (torch.stack((zero, -z, y), -1), torch.stack((z, zero, -x), -1), torch.stack((-y, x, zero), -1)), -2
    )
    eye = torch.eye(3).expand(*angles.shape, 3, 3)
    return eye + s[..., None, None] * cross + (1 - c)[..., None, None] * (cross @ cross)  # Rodrigues


def rotate_subtrees(
    xy: torch.Tensor,
    parents: tuple[int, ...],
    subtree: torch.Tensor,
    angles: torch.Tensor,
    gen: torch.Generator,
) -> torch.Tensor:
    """Rotate, for every joint j, the joints hanging from j about j by angles[:, j] (radians, (B, K); 0 = none).

    Joints are visited root first, so a rotation at the shoulder carries the elbow and wrist along before the
    elbow's own rotation is applied about the elbow's new position. subtree: (K, K) from
    `model.inputs.skeleton.descendants(parents)`.
    """
    B, _, K, D = xy.shape
    rot = rotation_matrices(angles, D, gen).to(xy)  # (B, K, D, D)
    out = xy.clone()
    for j in _root_first(parents):
        moving = subtree[j].to(xy.device)
        if not moving.any() or not bool((angles[:, j] != 0).any()):
            continue
        pivot = out[:, :, j : j + 1, :]  # (B, T, 1, D)
        rotated = torch.einsum("bde,btke->btkd", rot[:, j], out - pivot) + pivot
        out = torch.where(moving[None, None, :, None], rotated, out)
    return out


def _root_first(parents: tuple[int, ...]) -> list[int]:
    depth = []
    for k in range(len(parents)):
        d, p = 0, parents[k]
        while p >= 0:
            d, p = d + 1, parents[p]
        depth.append(d)
    return sorted(range(len(parents)), key=lambda k: depth[k])


def limb_angles(
    parents: tuple[int, ...], batch: int, *, std: float, p: float, one_limb: bool, gen: torch.Generator
) -> torch.Tensor:
    """(B, K) rotation angles at joints that have children.

    one_limb: LA2DS - with probability p, one randomly chosen joint per sequence gets N(0, std^2);
    otherwise CASA - every joint independently gets N(0, std^2) with probability p.
    """
    K = len(parents)
    has_children = torch.zeros(K, dtype=torch.bool)
    for k, parent in enumerate(parents):
        if parent >= 0:
            has_children[parent] = True
    candidates = has_children.nonzero().flatten()
    angles = torch.randn(batch, K, generator=gen) * std
    if one_limb:
        pick = candidates[torch.randint(len(candidates), (batch,), generator=gen)]
        chosen = torch.zeros(batch, K, dtype=torch.bool)
        chosen[torch.arange(batch), pick] = True
        chosen &= _bernoulli((batch, 1), p, gen)
    else:
        chosen = _bernoulli((batch, K), p, gen) & has_children
    return angles * chosen
