"""Skeleton coordinates as a per-frame input stream (MASA, CASA, early fusion).

`CoordinateInput` turns a stored keypoint array (joints_2d (T, K, 3) [x, y, conf] pixels, or joints_3d
(T, K, 3) xyz) into normalised coordinates, applies CASA-style spatial augmentations to them, and flattens
them into per-frame feature vectors (K * D coordinates, plus K confidences for 2D input). Its size follows
from the layout and the stored shape, never from a constant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from model.inputs import skeleton_augment as aug
from model.inputs.skeleton import (
    descendants,
    kinematic_parents,
    normalise,
    split_joints,
)
from pipeline.skeletons.layouts import get_layout

KEYPOINT_ARRAYS = ("joints_2d", "joints_3d")


@dataclass(frozen=True)
class SkeletonAugmentParams:
    """Probabilities per sequence and noise sizes, in units of the normalised skeleton (root-centred, torso
    length 1): flip with left/right swap; angle noise on every bone (CASA: 10 degrees, p 0.3); one global
    translation; independent Gaussian noise per joint and frame; one global rotation about the root and one
    global scale factor (camera changes; off in CASA)."""

    flip_p: float
    angle_p: float
    angle_std_deg: float
    translate_p: float
    translate_std: float
    noise_p: float
    noise_std: float
    rotate_p: float
    rotate_std_deg: float
    scale_p: float
    scale_std: float


class CoordinateInput:
    """One keypoint array of a layout as normalised per-frame coordinate features."""

    def __init__(self, array: str, shape: tuple[int, ...], layout_name: str,
                 normalise_mode: Literal["sequence", "frame"], use_confidence: bool):
        if array not in KEYPOINT_ARRAYS:
            raise ValueError(f"keypoint input must be one of {KEYPOINT_ARRAYS}, got '{array}'")
        self.layout = get_layout(layout_name)
        if shape[0] != self.layout.n_joints:
            raise ValueError(f"{array} has {shape[0]} joints per frame but layout {layout_name} has {self.layout.n_joints}")
        self.array = array
        self.has_confidence = array == "joints_2d"
        self.coord_dim = shape[1] - 1 if self.has_confidence else shape[1]
        self.normalise_mode = normalise_mode
        self.use_confidence = use_confidence and self.has_confidence
        self.parents = kinematic_parents(self.layout)
        self.subtree = descendants(self.parents)

    @property
    def dim(self) -> int:
        """Per-frame feature size: K * D coordinates (+ K confidences)."""
        K = self.layout.n_joints
        return K * self.coord_dim + (K if self.use_confidence else 0)

    def prepare(self, joints: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Stored joints (B, T, K, C) -> normalised coordinates (B, T, K, D) and confidences (B, T, K)."""
        xy, conf = split_joints(joints, self.has_confidence)
        return normalise(xy, conf, mask, self.layout, self.normalise_mode), conf

    def augment(
        self, xy: torch.Tensor, conf: torch.Tensor, p: SkeletonAugmentParams, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """CASA's spatial augmentations on normalised coordinates (B, T, K, D) and their confidences (B, T, K),
        angle noise included (a flip swaps the confidences of left/right joints too)."""
        B = xy.shape[0]
        perm = self.layout.joint_flip_permutation
        xy, flipped = aug.random_flip(xy, perm, torch.zeros(B), p.flip_p, gen)
        conf = torch.where(flipped.to(conf.device)[:, None, None], conf[..., list(perm)], conf)
        angles = aug.limb_angles(self.parents, B, std=math.radians(p.angle_std_deg), p=p.angle_p,
                                 one_limb=False, gen=gen)
        xy = aug.rotate_subtrees(xy, self.parents, self.subtree, angles, gen)
        xy = aug.rotate_global(xy, math.radians(p.rotate_std_deg), p.rotate_p, gen)
        xy = aug.scale(xy, p.scale_std, p.scale_p, gen)
        xy = aug.translate(xy, p.translate_std, p.translate_p, gen)
        return aug.position_noise(xy, p.noise_std, p.noise_p, gen), conf

    def features(self, xy: torch.Tensor, conf: torch.Tensor) -> torch.Tensor:
        """(B, T, K, D), (B, T, K) -> (B, T, dim); missing joints stay zero."""
        xy = xy * (conf > 0).unsqueeze(-1)
        flat = xy.flatten(2)
        return torch.cat((flat, conf), dim=-1) if self.use_confidence else flat
