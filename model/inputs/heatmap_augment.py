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
  old segment onto the new one and keeps distances across it). Exact up to bicubic resampling, except
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

The geometric parts (flip, limb rotation, position noise, affine) compose into one affine map per frame and
channel and are resampled once (`torch.nn.functional.grid_sample`, bicubic, zeros outside), only for the
maps that move; a channel that is only mirrored is reversed instead (exact, no resampling). Every random value
is drawn on the CPU generator `gen`, so a seed gives the same augmentation on any device, except the per-cell
map noise, drawn on the maps' device from a seed taken from `gen` (repeatable per device). Rotations are in
cell units: they are rotations of the image only for a square crop box (`heatmaps.square: true`, the default).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from model import cpu_gather
from model.inputs import warp_cpu
from model.inputs.skeleton import descendants, kinematic_parents
from model.inputs.warp_cpu import KEEP, MIRROR, WARP
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
    still = ((a2 == a) & (b2 == b)).all(-1)[..., None, None]  # ends that do not move: exactly the identity
    linear = torch.where(short | still, torch.eye(2, device=a.device).expand_as(linear), linear)
    shift = torch.where(short.squeeze(-1), (a2 + b2 - a - b) / 2, a2 - (linear @ a.unsqueeze(-1)).squeeze(-1))
    return torch.cat((linear, shift.unsqueeze(-1)), dim=-1)


def warp(maps: Tensor, maps_to: Tensor) -> Tensor:
    """Resample maps (M, S, S) under per-map affine maps (M, 2, 3) in cell coordinates: out(p) = maps(A^-1 p),
    bicubic, zero outside the grid, clipped at 0 -> (M, S, S) float32, a new tensor. The identity returns the
    maps (to float rounding)."""
    out = maps.float().unsqueeze(1).clone()  # (M, 1, S, S): M frames of one channel
    M = len(out)
    rows = torch.arange(M, device=maps.device)
    resample_frames(out, rows, maps_to[:, None], torch.zeros(M, 1, dtype=torch.long, device=maps.device),
                    torch.full((M, 1), WARP, dtype=torch.int8, device=maps.device))
    return out.squeeze(1)


def resample_frames(frames: Tensor, sel: Tensor, maps_to: Tensor, source_channel: Tensor, mode: Tensor) -> None:
    """frames (F, C, S, S) float32, changed in place at frames sel (N,): channel c of frame sel[i] becomes, by
    mode[i, c] (N, C): itself (KEEP); channel source_channel[i, c] (N, C) under the affine map maps_to[i, c]
    (N, C, 2, 3) (WARP: out(p) = map(A^-1 p), bicubic, zero outside the grid, clipped at 0); or that channel
    mirrored, its cells reversed along u (MIRROR: exact). Every output reads the frames as they were.

    On the CPU a compiled loop does it in one pass over the frames (model/inputs/warp_cpu.py); elsewhere
    `torch.nn.functional.grid_sample` does, on the moving channels gathered, then scattered back."""
    linear, shift = maps_to[..., :2], maps_to[..., 2]
    det = linear[..., 0, 0] * linear[..., 1, 1] - linear[..., 0, 1] * linear[..., 1, 0]
    inv = torch.stack((torch.stack((linear[..., 1, 1], -linear[..., 0, 1]), -1),
                       torch.stack((-linear[..., 1, 0], linear[..., 0, 0]), -1)), -2) / det[..., None, None]
    source_of = torch.cat((inv, -(inv @ shift.unsqueeze(-1))), dim=-1)  # (N, C, 2, 3): output cell -> source point
    if frames.device.type == "cpu":
        warp_cpu.resample_frames(frames, sel, source_of, source_channel, mode)
    else:
        resample_frames_torch(frames, sel, source_of, source_channel, mode)


def resample_frames_torch(frames: Tensor, sel: Tensor, source_of: Tensor, source_channel: Tensor,
                          mode: Tensor) -> None:
    """`resample_frames` through `grid_sample`, given source_of (N, C, 2, 3): the inverse maps, each taking an
    output cell to the source point it samples."""
    f, c = (mode == WARP).nonzero(as_tuple=True)
    fm, cm = (mode == MIRROR).nonzero(as_tuple=True)
    # both read the frames before either writes them
    moved = grid_sample_warp(frames[sel[f], source_channel[f, c]], source_of[f, c])
    mirrored = frames[sel[fm], source_channel[fm, cm]].flip(-1)
    frames[sel[f], c] = moved
    frames[sel[fm], cm] = mirrored


def grid_sample_warp(maps: Tensor, source_of: Tensor) -> Tensor:
    """maps (M, S, S) sampled at source_of (M, 2, 3) @ (u, v, 1) for every output cell (u, v), bicubic, zero
    outside, clipped at 0 -> (M, S, S), through `torch.nn.functional.grid_sample` (its grid: (M, S, S, 2))."""
    M, S, _ = maps.shape
    inv, inv_shift = source_of[:, :, :2], source_of[:, :, 2]
    # source point in cells, then grid_sample's [-1, 1] (align_corners=False: -1 is the left edge of cell 0)
    norm = 2.0 / S
    cells = torch.arange(S, dtype=maps.dtype, device=maps.device)[None, :, None]  # (1, S, 1)
    along_u = cells * (inv[:, None, :, 0] * norm) + (inv_shift * norm + (norm / 2 - 1))[:, None, :]  # (M, S, 2)
    along_v = cells * (inv[:, None, :, 1] * norm)  # (M, S, 2)
    grid = along_u[:, None, :, :] + along_v[:, :, None, :]  # (M, S, S, 2): [m, v, u] -> source (x, y)
    # bicubic: a sub-cell shift keeps a sigma-1 blob's peak (0.99 of the re-rendered one; bilinear 0.87) and is
    # exact at whole cells; its small overshoot below 0 is clipped
    out = F.grid_sample(maps.unsqueeze(1), grid, mode="bicubic", padding_mode="zeros", align_corners=False)
    return out.squeeze(1).clamp_min_(0)


def frame_centres(frames: Tensor, sel: Tensor, channels: int) -> tuple[Tensor, Tensor]:
    """`centres` of the first `channels` channels of frames (F, C, S, S) float32 at sel (N,) -> ((N, channels, 2),
    (N, channels)); on the CPU summed where the frames lie (model/inputs/warp_cpu.py), not gathered first."""
    if frames.device.type != "cpu":
        return centres(frames[sel, :channels])
    moments = warp_cpu.channel_moments(frames, sel, channels)
    mass = moments[..., 0]
    uv = (moments[..., 1:] / mass.clamp_min(EPS)[..., None]).float()
    return uv, mass > EPS


def centres(maps: Tensor) -> tuple[Tensor, Tensor]:
    """(..., S, S) maps -> their centroids (..., 2) (u, v) in cells, and (...) bool: the map is not empty."""
    S = maps.shape[-1]
    cells = torch.arange(S, dtype=maps.dtype, device=maps.device)
    mass = maps.sum((-2, -1))
    u = (maps.sum(-2) * cells).sum(-1) / mass.clamp_min(EPS)
    v = (maps.sum(-1) * cells).sum(-1) / mass.clamp_min(EPS)
    return torch.stack((u, v), -1), mass > EPS


# ----------------------------------------------------------------------------- the augmentation of a batch
@dataclass
class Draws:
    """Every random value of one batch's augmentation, drawn in a fixed order whatever the probabilities
    (so that switching one augmentation off does not change the others' draws). Shapes: (B,) per sequence,
    (B, N) per frame."""

    flip: Tensor
    limb: Tensor
    jitter_on: Tensor
    affine: Tensor
    pivot: Tensor
    angle: Tensor
    jitter: Tensor  # (B, N, K, 2) cells
    rotate: Tensor  # the sequence affine: angle, scale factor, (B, 2) shift in cells
    scale: Tensor
    shift: Tensor
    drop: Tensor  # (B, N) bool
    drop_joint: Tensor  # (B, N) long
    noise: Tensor
    noise_seed: int


class HeatmapAugment:
    """The augmented view of a batch of heatmap sequences (see the module docstring) for one skeleton layout."""

    def __init__(self, layout: Skeleton, params: HeatmapAugmentParams):
        self.layout, self.params = layout, params
        K = layout.n_joints
        self.limbs = torch.as_tensor(layout.limbs, dtype=torch.long).reshape(-1, 2)
        parents = kinematic_parents(layout)
        subtree = descendants(parents)  # (K, K): [j, k] joint k hangs from joint j
        self.pivots = torch.as_tensor([j for j in range(K) if subtree[j].any()], dtype=torch.long)
        # moves[j, c]: channel c turns with a rotation about joint j (its subtree's joints, and the limbs with
        # both ends in the subtree or at j)
        ends = (subtree | torch.eye(K, dtype=torch.bool))[:, self.limbs]  # (K, L, 2)
        self.moves = torch.cat((subtree, ends.all(-1) & subtree[:, self.limbs].any(-1)), dim=1)
        # touches[k, c]: the channels that vanish with joint k (its own and its limbs')
        limb_has = (self.limbs == torch.arange(K)[:, None, None]).any(-1)  # (K, L)
        self.touches = torch.cat((torch.eye(K, dtype=torch.bool), limb_has), dim=1)
        self.perm = torch.as_tensor(layout.channel_flip_permutation, dtype=torch.long)

    def __call__(self, maps: Tensor, src: Tensor, mask: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """The augmented view of a batch, as the frames that differ from what they show.

        maps (B, T, C, S, S): the batch's maps; src (B, N): the frame of its row each augmented frame shows;
        mask (B, N): real augmented frames. Returns (frames (F', C, S, S), changed (F,) bool): over the F real
        augmented frames, packed row by row (`mask` order), which ones augmentation changed, and those frames
        (in the same order); an unchanged frame is exactly maps[b, src[b, n]]."""
        with torch.autocast(maps.device.type, enabled=False):  # cell positions need float32, not bf16
            return self._augment(maps, src, mask, gen)

    def _augment(self, maps: Tensor, src: Tensor, mask: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        d = self.draw(*mask.shape, gen)
        dev = maps.device
        rows, cols = mask.nonzero(as_tuple=True)
        warped = (d.flip | d.limb | d.jitter_on | d.affine).to(dev)
        noisy = d.noise.to(dev)
        dropped = d.drop.to(dev)[rows, cols]
        changed = warped[rows] | noisy[rows] | dropped
        which = changed.nonzero().squeeze(1)  # positions among the F frames
        # (F', C, S, S), a new tensor; float32 whatever the batch holds (float16 maps: model.batch.collate)
        at_rows, at_frames = rows[which], src[rows[which], cols[which]]
        if cpu_gather.handles(maps, torch.float32):  # one compiled pass on the CPU (model/cpu_gather.py)
            frames = cpu_gather.gather_frames(maps, at_rows, at_frames, torch.float32)
        else:
            frames = maps[at_rows, at_frames].float()
        seq, at = rows[which], cols[which]
        self._geometric(frames, seq, at, d, warped[seq])
        self._dropout(frames, seq, at, d)
        self._noise(frames, noisy[seq], d.noise_seed)
        return frames, changed

    def draw(self, B: int, N: int, gen: torch.Generator) -> Draws:
        """All random values for B sequences of at most N augmented frames."""
        p, K = self.params, self.layout.n_joints
        flip, limb, jitter_on, affine = (_bernoulli(B, q, gen) for q in (p.flip_p, p.limb_p, p.position_p, p.affine_p))
        pivot = self.pivots[torch.randint(len(self.pivots), (B,), generator=gen)]
        angle = torch.randn(B, generator=gen) * p.limb_std
        jitter = torch.randn(B, N, K, 2, generator=gen) * p.position_std
        rotate = torch.randn(B, generator=gen) * p.rotate_std
        scale = torch.exp(torch.randn(B, generator=gen) * p.scale_std)
        shift = torch.randn(B, 2, generator=gen) * p.translate_std
        drop = torch.rand(B, N, generator=gen) < p.drop_p
        drop_joint = torch.randint(K, (B, N), generator=gen)
        noise = _bernoulli(B, p.noise_p, gen)
        seed = int(torch.randint(2**62, (), generator=gen))
        return Draws(flip, limb, jitter_on, affine, pivot, angle, jitter, rotate, scale, shift, drop, drop_joint,
                     noise, seed)

    def _geometric(self, frames: Tensor, seq: Tensor, at: Tensor, d: Draws, warped: Tensor) -> None:
        """Flip, limb rotation, position noise and the sequence affine of the frames (F', C, S, S) of sequences
        `seq` (F',) at positions `at` (F',) where `warped` (F',): composed into one affine map per frame and
        channel, and resampled once (in place; a map whose transform is the identity is not resampled)."""
        if not bool(warped.any()):
            return
        _, C, S, _ = frames.shape
        K, dev = self.layout.n_joints, frames.device
        fsel = warped.nonzero().squeeze(1)
        s, n = seq[fsel].cpu(), at[fsel].cpu()
        flipped = d.flip[s].to(dev)  # (Fs,)
        perm = self.perm.to(dev)
        # joint centres as the flipped maps would show them: channel perm[k], mirrored
        centre, found = frame_centres(frames, fsel, K)  # (Fs, K, 2), (Fs, K)
        mirrored = centre[:, perm[:K]].clone()
        mirrored[..., 0] = S - 1.0 - mirrored[..., 0]
        centre = torch.where(flipped[:, None, None], mirrored, centre)
        found = torch.where(flipped[:, None], found[:, perm[:K]], found)
        angle = torch.where(d.limb[s], d.angle[s], 0.0).to(dev)
        jitter = (d.jitter[s, n] * d.jitter_on[s, None, None]).to(dev)  # (Fs, K, 2)
        whole = sequence_affine(d.rotate[s], d.scale[s], d.shift[s], S)
        whole = torch.where(d.affine[s, None, None], whole, identity(len(s))).to(dev)
        maps_to = self._frame_maps(centre, found, d.pivot[s].to(dev), angle, jitter, whole)  # (Fs, C, 2, 3)
        mirror = torch.tensor([[-1.0, 0.0, S - 1.0], [0.0, 1.0, 0.0]], device=dev)
        maps_to = torch.where(flipped[:, None, None, None], compose(maps_to, mirror), maps_to)
        # a channel whose map is the bare mirror is the flipped frame's channel perm[c] with its cells reversed:
        # exact, and about a third of the moving maps at the paper's probabilities need no resampling
        bare = flipped[:, None] & (maps_to - mirror).abs().amax((-2, -1)).le(1e-6)  # (Fs, C)
        resampled = ~bare & (maps_to - identity(device=dev)).abs().amax((-2, -1)).gt(1e-6)
        mode = torch.full(bare.shape, KEEP, dtype=torch.int8, device=dev)
        mode[bare], mode[resampled] = MIRROR, WARP
        # a flipped frame's channel c shows channel perm[c]
        channel = torch.where(flipped[:, None], perm, torch.arange(C, device=dev))  # (Fs, C)
        resample_frames(frames, fsel, maps_to, channel, mode)

    def _frame_maps(self, centre: Tensor, found: Tensor, pivot: Tensor, angle: Tensor, jitter: Tensor,
                    whole: Tensor) -> Tensor:
        """(Fs, C, 2, 3) affine map of every channel of Fs frames with joint centres (Fs, K, 2) (found: (Fs, K)):
        rotation of the pivot's subtree by `angle` (Fs,), then the joints' shifts `jitter` (Fs, K, 2) (limbs
        following their joints), then the sequence's affine `whole` (Fs, 2, 3)."""
        Fs, K = centre.shape[:2]
        C, dev = K + len(self.limbs), centre.device
        frames = torch.arange(Fs, device=dev)
        angle = angle * found[frames, pivot]  # no pivot in a frame: no rotation
        turn = rotation_about(angle, centre[frames, pivot])  # (Fs, 2, 3)
        moves = self.moves.to(dev)[pivot]  # (Fs, C)
        frame = torch.where(moves[:, :, None, None], turn[:, None], identity(Fs, C, device=dev))
        joints = frame[:, :K].clone()
        joints[..., 2] += jitter  # a joint's shift follows its rotation
        final = apply(joints, centre)  # where every joint ends up (Fs, K, 2)
        # a limb turns with its subtree (or not), then stretches so that its ends meet their joints
        a, b = self.limbs[:, 0].to(dev), self.limbs[:, 1].to(dev)
        limb_frame = frame[:, K:]
        ends = segment_map(apply(limb_frame, centre[:, a]), apply(limb_frame, centre[:, b]), final[:, a], final[:, b])
        return compose(whole[:, None], torch.cat((joints, compose(ends, limb_frame)), dim=1))

    def _dropout(self, frames: Tensor, seq: Tensor, at: Tensor, d: Draws) -> None:
        """Zero, in the frames where it was drawn, one joint's channel and its limbs' channels (in place)."""
        s, n = seq.cpu(), at.cpu()
        gone = self.touches[d.drop_joint[s, n]] & d.drop[s, n, None]  # (F', C)
        if bool(gone.any()):
            f, c = gone.to(frames.device).nonzero(as_tuple=True)
            frames[f, c] = 0.0

    def _noise(self, frames: Tensor, noisy: Tensor, seed: int) -> None:
        """Add N(0, noise_std^2) per cell to the frames of noisy sequences (F',), clipped at 0 (in place)."""
        if not bool(noisy.any()):
            return
        f = noisy.nonzero().squeeze(1)
        gen = torch.Generator(frames.device).manual_seed(seed)
        noise = torch.randn((len(f), *frames.shape[1:]), generator=gen, device=frames.device, dtype=frames.dtype)
        frames[f] = (frames[f] + self.params.noise_std * noise).clamp_min(0)


def _bernoulli(n: int, p: float, gen: torch.Generator) -> Tensor:
    return torch.rand(n, generator=gen) < p
