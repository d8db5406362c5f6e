"""2D keypoints as heatmap input (LA2DS, late fusion): crop box, skeleton augmentation, rasterisation.

LA2DS Sec. 3.2 augments the 2D *skeleton* and rasterises the augmented skeleton: here the joints (B, T, K, 3)
[x, y, confidence] in image pixels are augmented in pixel space (flip about the crop box's vertical centre
line with left/right joints swapped, one limb rotated about its joint, Gaussian position noise measured in
heatmap cells), then rendered with `pipeline.heatmaps.raster_torch.render_torch` on the joints' device. Both the original and
the augmented sequence are rendered in the original sequence's crop box, the convention of the heatmaps
stage (`crop_box` over the sequence's confident joints).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from model.inputs import skeleton_augment as aug
from model.inputs.skeleton import descendants, kinematic_parents
from pipeline.heatmaps.raster_torch import crop_box, render_torch
from pipeline.skeletons.layouts import get_layout


@dataclass(frozen=True)
class HeatmapAugmentParams:
    """LA2DS Table 9: temporal subset with probability 0.5 (keeping at least temporal_min_fraction of the
    frames); flip, one-limb rotation (std in radians) and position noise (std in heatmap cells), each with
    probability 0.3 per sequence."""

    temporal_p: float
    temporal_min_fraction: float
    flip_p: float
    rotate_p: float
    rotate_std: float
    position_p: float
    position_std: float


@dataclass(frozen=True)
class HeatmapParams:
    """Rasterisation: size x size grid, Gaussian sigma in cells, crop box padded by `pad` of its larger
    side on every side and made square when `square` (the names of the heatmaps section)."""

    size: int
    sigma: float
    pad: float
    square: bool


class HeatmapInput:
    """Joints of one layout -> (B, T, K + L, S, S) heatmaps, with LA2DS's skeleton augmentations."""

    def __init__(self, layout_name: str, params: HeatmapParams):
        self.layout = get_layout(layout_name)
        self.params = params
        self.parents = kinematic_parents(self.layout)
        self.subtree = descendants(self.parents)

    @property
    def channels(self) -> int:
        return self.layout.n_channels

    def boxes(self, joints: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, K, 3), (B, T) -> (B, 4) crop boxes over each sequence's confident joints. A sequence with no
        confident joint at all (Penn Action has one: every visibility flag 0) renders all-zero maps whatever
        its box, so the unit box stands in."""
        return crop_box(joints.float(), mask, pad=self.params.pad, square=self.params.square,
                        fallback=(0.0, 0.0, 1.0, 1.0))

    def render(self, joints: torch.Tensor, box: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, K, 3) pixels, (B, 4) boxes -> (B, T, K + L, S, S); with `mask` (B, T) only real frames are
        rasterised (padding stays zero)."""
        p = self.params
        if mask is None:
            return render_torch(joints.float(), self.layout.limbs, box, p.size, p.sigma)
        if joints.device.type == "cpu":  # the compiled per-sequence renderer: padding costs little there
            return render_torch(joints.float(), self.layout.limbs, box, p.size, p.sigma) * mask[..., None, None, None]
        B, T = mask.shape
        rows = torch.arange(B, device=mask.device)[:, None].expand(B, T)[mask]  # (N,) sequence of each real frame
        frames = render_torch(joints[mask].float()[:, None], self.layout.limbs, box[rows], p.size, p.sigma)[:, 0]
        out = frames.new_zeros(B, T, *frames.shape[1:])
        out[mask] = frames
        return out

    def augment(self, joints: torch.Tensor, box: torch.Tensor, p: HeatmapAugmentParams, gen: torch.Generator) -> torch.Tensor:
        """Flip, one-limb rotation and position noise of (B, T, K, 3) joints in pixels (confidences follow
        their joints through the flip)."""
        B = joints.shape[0]
        xy, conf = joints[..., :2], joints[..., 2]
        conf = torch.where(torch.isfinite(xy).all(-1), conf, torch.zeros_like(conf))  # NaN joints stay missing
        perm = self.layout.joint_flip_permutation
        centre_x = ((box[:, 0] + box[:, 2]) / 2).cpu()
        xy, flipped = aug.random_flip(xy, perm, centre_x, p.flip_p, gen)
        conf = torch.where(flipped.to(conf.device)[:, None, None], conf[..., list(perm)], conf)
        angles = aug.limb_angles(self.parents, B, std=p.rotate_std, p=p.rotate_p, one_limb=True, gen=gen)
        xy = aug.rotate_subtrees(torch.nan_to_num(xy), self.parents, self.subtree, angles, gen)
        cell = ((box[:, 2] - box[:, 0]) / self.params.size).cpu()  # pixels per heatmap cell
        xy = aug.position_noise(xy, p.position_std * cell, p.position_p, gen)
        return torch.cat((xy, conf.unsqueeze(-1)), dim=-1)
