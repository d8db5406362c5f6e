"""LA2DS's augmentations in heatmap space, batched on the maps' device (LA2DS Sec. 3.2, Table 9).

LA2DS augments the 2D skeleton and rasterises the augmented skeleton. Here the maps come rendered once from
`heatmaps.zarr` (channels: the layout's K joints, then its L limbs, on an S x S grid of cells; cell (r, c) is
centred on (u, v) = (c, r)), so each augmentation is done to the maps:

- temporal subset (paper, p 0.5): the augmented view is a random subset of the original window's frames
  (`model.inputs.temporal_augment.one_way_maps`); its positions are the correspondence labels.
- horizontal flip (paper, p 0.3): exact twin: x reversed and left/right channels swapped
  (`Skeleton.channel_flip_permutation`), as `pipeline.heatmaps.raster_torch.flip_heatmaps_torch`.
- position noise (paper, 1 cell, p 0.3): every joint channel of every frame is shifted by its own
  N(0, std^2) offset, and every limb channel is moved with its two joints (the affine map that takes the
  old segment onto the new one and keeps distances across it). Exact up to bilinear resampling, except
  that a limb's rounded ends stretch with it.
- one limb's rotation (paper, 0.1 rad, p 0.3) has **no exact heatmap-space twin**: the joints' positions
  are not stored, only their maps, and a map's content outside the grid is lost. What stands in for it:
  the channels of the subtree hanging from a random joint (its joints and the limbs between them) are
  rotated about that joint's centre as located from its own map (the centroid of the channel: exact while
  the blob lies inside the grid); a frame where that joint is missing is left as it is.
- additions, each off at p 0 (params.yaml `la2ds.augment`): one random affine per sequence (rotation about
  the grid centre, scale, translation: a camera change); channel dropout (in a frame, one joint's channel and
  the channels of its limbs zeroed, as a missing keypoint renders: the robustness LA2DS Tab. 3 tests); and
  additive Gaussian noise (clipped at 0).

The geometric parts (limb rotation, position noise, affine) compose into one affine map per frame and
channel and are resampled once (`torch.nn.functional.grid_sample`, bilinear, zeros outside), only for the
sequences that draw one. Every random value is drawn on the CPU generator `gen`, so a seed gives the same
augmentation on any device, except the per-cell map noise, drawn on the maps' device from a seed taken from
`gen` (repeatable per device). Rotations are in cell units: they are rotations of the image only for a
square crop box (`heatmaps.square: true`, the default).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from model.inputs.skeleton import descendants, kinematic_parents
from pipeline.skeletons.layouts import Skeleton

EPS = 1e-6


@dataclass(frozen=True)
class HeatmapAugmentParams:
    """Probabilities are per sequence (drop_p: per frame). temporal_*: subset of at least that fraction of the
    window; limb_std: radians; position_std and translate_std: cells; rotate_std: radians; scale_std: std of
    the log scale factor; noise_std: in map units (maps are in [0, 1])."""

    temporal_p: float
    temporal_min_fraction: float
    flip_p: float
    limb_p: float
    limb_std: float
    position_p: float
    position_std: float
    affine_p: float
    rotate_std: float
    scale_std: float
    translate_std: float
    drop_p: float
    noise_p: float
    noise_std: float


# ----------------------------------------------------------------------------- affine maps on the cell grid
def identity(*lead: int, device: torch.device | str = "cpu") -> Tensor:
    """(*lead, 2, 3) identity maps [L | t] (a point p goes to L p + t)."""
    return torch.eye(2, 3, device=device).expand(*lead, 2, 3).clone()


def compose(a: Tensor, b: Tensor) -> Tensor:
    """a after b: (..., 2, 3) each -> (..., 2, 3)."""
    linear = a[..., :2] @ b[..., :2]
    shift = (a[..., :2] @ b[..., 2:]) + a[..., 2:]
    return torch.cat((linear, shift), dim=-1)


def apply(a: Tensor, points: Tensor) -> Tensor:
    """(..., 2, 3) maps applied to (..., 2) points."""
    return (a[..., :2] @ points.unsqueeze(-1)).squeeze(-1) + a[..., 2]


def rotation_about(angle: Tensor, centre: Tensor) -> Tensor:
    """(...,) angles in radians, (..., 2) centres -> (..., 2, 3) rotations about the centres (a positive angle
    turns +u (right) towards +v (down): clockwise on screen)."""
    c, s = angle.cos(), angle.sin()
    linear = torch.stack((torch.stack((c, -s), -1), torch.stack((s, c), -1)), -2)
    shift = centre - (linear @ centre.unsqueeze(-1)).squeeze(-1)
    return torch.cat((linear, shift.unsqueeze(-1)), dim=-1)


def sequence_affine(angle: Tensor, scale: Tensor, shift: Tensor, size: int) -> Tensor:
    """(B,) angles, (B,) scale factors, (B, 2) shifts in cells -> (B, 2, 3): rotate and scale about the grid
    centre, then shift. Angle 0, scale 1, shift 0 is the identity."""
    centre = torch.full_like(shift, (size - 1) / 2)
    a = rotation_about(angle, centre)
    a[..., :2] = a[..., :2] * scale[..., None, None]
    a[..., 2] = centre - (a[..., :2] @ centre.unsqueeze(-1)).squeeze(-1) + shift
    return a


def segment_map(a: Tensor, b: Tensor, a2: Tensor, b2: Tensor) -> Tensor:
    """(..., 2) segment ends before (a, b) and after (a2, b2) -> (..., 2, 3): the affine map taking a to a2 and
    b to b2 that keeps distances across the segment (so a limb's Gaussian tube keeps its width). A segment
    shorter than a hundredth of a cell is moved by the mean shift of its ends."""
    d, d2 = b - a, b2 - a2
    length, length2 = d.norm(dim=-1, keepdim=True), d2.norm(dim=-1, keepdim=True)
    e, e2 = d / length.clamp_min(EPS), d2 / length2.clamp_min(EPS)
    n, n2 = torch.stack((-e[..., 1], e[..., 0]), -1), torch.stack((-e2[..., 1], e2[..., 0]), -1)
    stretch = (length2 / length.clamp_min(EPS)).unsqueeze(-1)
    linear = stretch * e2.unsqueeze(-1) * e.unsqueeze(-2) + n2.unsqueeze(-1) * n.unsqueeze(-2)
    short = (length < 1e-2).unsqueeze(-1)
    linear = torch.where(short, torch.eye(2, device=a.device).expand_as(linear), linear)
    shift = torch.where(short.squeeze(-1), (a2 + b2 - a - b) / 2, a2 - (linear @ a.unsqueeze(-1)).squeeze(-1))
    return torch.cat((linear, shift.unsqueeze(-1)), dim=-1)


def warp(maps: Tensor, maps_to: Tensor) -> Tensor:
    """Resample maps (M, S, S) under per-map affine maps (M, 2, 3) in cell coordinates: out(p) = maps(A^-1 p),
    bilinear, zero outside the grid. The identity returns the maps (to float rounding)."""
    M, S, _ = maps.shape
    linear, shift = maps_to[:, :, :2], maps_to[:, :, 2]
    det = linear[:, 0, 0] * linear[:, 1, 1] - linear[:, 0, 1] * linear[:, 1, 0]
    inv = torch.stack((torch.stack((linear[:, 1, 1], -linear[:, 0, 1]), -1),
                       torch.stack((-linear[:, 1, 0], linear[:, 0, 0]), -1)), -2) / det[:, None, None]
    inv_shift = -(inv @ shift.unsqueeze(-1)).squeeze(-1)  # (M, 2)
    # source point in cells, then grid_sample's [-1, 1] (align_corners=False: -1 is the left edge of cell 0)
    norm = 2.0 / S
    cols = inv[:, None, None, :, 0] * norm  # (M, 1, 1, 2): how (x, y) of the source move with u
    rows = inv[:, None, None, :, 1] * norm
    offset = (inv_shift * norm + (norm / 2 - 1))[:, None, None, :]
    cells = torch.arange(S, dtype=maps.dtype, device=maps.device)
    grid = cells[None, None, :, None] * cols + cells[None, :, None, None] * rows + offset  # (M, S, S, 2)
    out = F.grid_sample(maps.unsqueeze(1), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.squeeze(1)


def centres(maps: Tensor) -> tuple[Tensor, Tensor]:
    """(..., S, S) maps -> their centroids (..., 2) (u, v) in cells, and (...) bool: the map is not empty."""
    S = maps.shape[-1]
    cells = torch.arange(S, dtype=maps.dtype, device=maps.device)
    mass = maps.sum((-2, -1))
    u = (maps.sum(-2) * cells).sum(-1) / mass.clamp_min(EPS)
    v = (maps.sum(-1) * cells).sum(-1) / mass.clamp_min(EPS)
    return torch.stack((u, v), -1), mass > EPS


# ----------------------------------------------------------------------------- the augmentation of a batch
def take_frames(x: Tensor, index: Tensor) -> Tensor:
    """x (B, T, ...), index (B, N) into each row's frames -> (B, N, ...) (a new tensor)."""
    rows = torch.arange(x.shape[0], device=x.device)[:, None]
    return x[rows, index.to(x.device)]


def flip(maps: Tensor, layout: Skeleton) -> Tensor:
    """Horizontally flipped maps (..., C, S, S): x reversed, left/right channels swapped."""
    perm = torch.as_tensor(layout.channel_flip_permutation, device=maps.device)
    return maps.index_select(-3, perm).flip(-1)


class HeatmapAugment:
    """The augmented view of a batch of heatmap sequences (see the module docstring) for one skeleton layout."""

    def __init__(self, layout: Skeleton, params: HeatmapAugmentParams):
        self.layout, self.params = layout, params
        K, C = layout.n_joints, layout.n_channels
        self.limbs = torch.as_tensor(layout.limbs, dtype=torch.long).reshape(-1, 2)
        parents = kinematic_parents(layout)
        subtree = descendants(parents)  # (K, K): [j, k] joint k hangs from joint j
        self.pivots = torch.as_tensor([j for j in range(K) if subtree[j].any()], dtype=torch.long)
        # moves[j, c]: channel c turns with a rotation about joint j (its subtree's joints, limbs with both
        # ends in the subtree or at j)
        with_pivot = subtree | torch.eye(K, dtype=torch.bool)
        ends = with_pivot[:, self.limbs]  # (K, L, 2)
        self.moves = torch.cat((subtree, ends.all(-1) & subtree[:, self.limbs].any(-1)), dim=1)
        # touches[k, c]: channels that vanish with joint k (its own and its limbs')
        self.touches = torch.cat((torch.eye(K, dtype=torch.bool), (self.limbs == torch.arange(K)[:, None, None]).any(-1)), 1)
        assert self.moves.shape == self.touches.shape == (K, C)

    def __call__(self, original: Tensor, pos: Tensor, mask: Tensor, gen: torch.Generator) -> Tensor:
        """original (B, M, C, S, S) maps of the original view; pos (B, N) the augmented frames' positions in it,
        mask (B, N) their real frames -> the augmented view (B, N, C, S, S), zero on padding."""
        maps = take_frames(original, pos) * mask[..., None, None, None].to(original.dtype)
        B = maps.shape[0]
        p = self.params
        flipped = _rows(_bernoulli(B, p.flip_p, gen), maps.device)
        if len(flipped):
            maps[flipped] = flip(maps[flipped], self.layout)
        maps = self._geometric(maps, mask, gen)
        maps = self._dropout(maps, gen)
        return self._noise(maps, gen) * mask[..., None, None, None].to(maps.dtype)

    def _geometric(self, maps: Tensor, mask: Tensor, gen: torch.Generator) -> Tensor:
        """Limb rotation, position noise and the sequence affine, composed per frame and channel, resampled once."""
        B, N, C, S, _ = maps.shape
        K, p = self.layout.n_joints, self.params
        limb_on, jitter_on, affine_on = (_bernoulli(B, q, gen) for q in (p.limb_p, p.position_p, p.affine_p))
        pivot = self.pivots[torch.randint(len(self.pivots), (B,), generator=gen)]
        angle = torch.randn(B, generator=gen) * p.limb_std
        jitter = torch.randn(B, N, K, 2, generator=gen) * p.position_std * jitter_on[:, None, None, None]
        whole = sequence_affine(torch.randn(B, generator=gen) * p.rotate_std,
                                torch.exp(torch.randn(B, generator=gen) * p.scale_std),
                                torch.randn(B, 2, generator=gen) * p.translate_std, S)
        chosen = limb_on | jitter_on | affine_on
        if not bool(chosen.any()):
            return maps
        rows = chosen.nonzero().squeeze(1)
        dev = maps.device
        sub = maps[rows.to(dev)]  # (R, N, C, S, S)
        whole = torch.where(affine_on[rows, None, None], whole[rows], identity(len(rows)))
        maps_to = self._frame_maps(sub, pivot[rows].to(dev), torch.where(limb_on[rows], angle[rows], 0.0).to(dev),
                                   jitter[rows].to(dev), whole.to(dev))  # (R, N, C, 2, 3)
        real = mask[rows.to(dev)]  # only real frames are resampled
        moved = warp(sub[real].reshape(-1, S, S), maps_to[real].reshape(-1, 2, 3))
        sub[real] = moved.reshape(-1, C, S, S)
        maps[rows.to(dev)] = sub
        return maps

    def _frame_maps(self, sub: Tensor, pivot: Tensor, angle: Tensor, jitter: Tensor, whole: Tensor) -> Tensor:
        """(R, N, C, 2, 3) affine map of every channel of every frame: rotation of the pivot's subtree, then
        the joints' shifts (limbs following their joints), then the sequence's affine."""
        R, N, C = sub.shape[:3]
        K = self.layout.n_joints
        at, found = centres(sub[:, :, :K])  # (R, N, K, 2), (R, N, K)
        rows = torch.arange(R, device=sub.device)
        centre = at[rows, :, pivot]  # (R, N, 2)
        angle = angle[:, None].expand(R, N) * found[rows, :, pivot]  # no pivot in a frame: no rotation
        turn = rotation_about(angle, centre)  # (R, N, 2, 3)
        moves = self.moves.to(sub.device)[pivot]  # (R, C)
        frame = torch.where(moves[:, None, :, None, None], turn[:, :, None], identity(R, N, C, device=sub.device))
        joints = frame[:, :, :K].clone()
        joints[..., 2] += jitter  # a joint's shift follows its rotation
        final = apply(joints, at)  # where every joint ends up (R, N, K, 2)
        # a limb is rotated with its subtree (or not), then stretched so that its ends meet their joints
        a, b = self.limbs[:, 0].to(sub.device), self.limbs[:, 1].to(sub.device)
        limb_frame = frame[:, :, K:]
        ends = segment_map(apply(limb_frame, at[:, :, a]), apply(limb_frame, at[:, :, b]), final[:, :, a], final[:, :, b])
        return compose(whole[:, None, None], torch.cat((joints, compose(ends, limb_frame)), dim=2))

    def _dropout(self, maps: Tensor, gen: torch.Generator) -> Tensor:
        """With probability drop_p per frame, one random joint's channel and its limbs' channels zeroed."""
        B, N = maps.shape[:2]
        if self.params.drop_p <= 0:
            return maps
        hit = torch.rand(B, N, generator=gen) < self.params.drop_p
        joint = torch.randint(self.layout.n_joints, (B, N), generator=gen)
        if not bool(hit.any()):
            return maps
        keep = ~(self.touches[joint] & hit[..., None])  # (B, N, C)
        return maps * keep.to(maps.device, maps.dtype)[..., None, None]

    def _noise(self, maps: Tensor, gen: torch.Generator) -> Tensor:
        """With probability noise_p per sequence, add N(0, noise_std^2) per cell (clipped at 0)."""
        on = _rows(_bernoulli(maps.shape[0], self.params.noise_p, gen), maps.device)
        seed = int(torch.randint(2**62, (), generator=gen))
        if not len(on):
            return maps
        device_gen = torch.Generator(maps.device).manual_seed(seed)
        noise = torch.randn(maps[on].shape, generator=device_gen, device=maps.device, dtype=maps.dtype)
        maps[on] = (maps[on] + self.params.noise_std * noise).clamp_min(0)
        return maps


def _bernoulli(n: int, p: float, gen: torch.Generator) -> Tensor:
    return torch.rand(n, generator=gen) < p


def _rows(chosen: Tensor, device: torch.device) -> Tensor:
    return chosen.nonzero().squeeze(1).to(device)
