"""A method's per-frame inputs (MASA, early fusion, VASOT): several stored arrays, each turned into
per-frame vectors and concatenated.

Keypoint arrays (joints_2d, joints_3d) become normalised skeleton coordinates (`model.inputs.coordinates`),
augmentable; feature arrays (DINOv2) are layer-normalised without learned parameters. The width `dim`
follows from the stored shapes and the skeleton layout.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from model.batch import Batch
from model.inputs.coordinates import (
    KEYPOINT_ARRAYS,
    CoordinateInput,
    SkeletonAugmentParams,
)
from model.method import InputSpec

ARTIFACT_OF = {"joints_2d": "keypoints", "joints_3d": "keypoints", "feature": "dino"}  # array -> its artifact


def artifact_arrays(names: tuple[str, ...], owner: str) -> tuple[tuple[str, str], ...]:
    """(artifact, array) pairs a method reads for its `inputs` names; ValueError naming `owner` otherwise."""
    unknown = [a for a in names if a not in ARTIFACT_OF]
    if unknown or not names:
        raise ValueError(f"{owner}: inputs must be a non-empty list of {sorted(ARTIFACT_OF)}, got {names}")
    return tuple((ARTIFACT_OF[a], a) for a in names)


class FrameInputs(nn.Module):
    """names: the input arrays in concatenation order; owner: the method's name, for errors."""

    def __init__(self, names: tuple[str, ...], spec: InputSpec, normalise: Literal["sequence", "frame"],
                 use_confidence: bool, owner: str):
        super().__init__()
        self.names = tuple(names)
        self.coords: dict[str, CoordinateInput] = {}
        self.feature_norms = nn.ModuleDict()
        self.dim = 0
        for name in self.names:
            shape = spec.shape(name, owner)
            if name in KEYPOINT_ARRAYS:
                if spec.layout is None:
                    raise ValueError(f"{owner}: keypoint input '{name}' needs a skeleton layout")
                self.coords[name] = CoordinateInput(name, shape, spec.layout, normalise, use_confidence)
                self.dim += self.coords[name].dim
            else:
                self.feature_norms[name] = nn.LayerNorm(shape[-1], elementwise_affine=False)
                self.dim += shape[-1]

    def streams(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Each input array of the batch (B, T, ...), keypoints as normalised coordinates plus their
        confidences under '<name>.conf'; streams can be gathered along time before `features`."""
        out = {}
        for name in self.names:
            x = batch.arrays[name]
            if name in self.coords:
                out[name], out[name + ".conf"] = self.coords[name].prepare(x, batch.mask)
            else:
                out[name] = x
        return out

    def features(self, streams: dict[str, torch.Tensor], augment: SkeletonAugmentParams,
                 gen: torch.Generator | None) -> torch.Tensor:
        """Per-frame input vectors (B, T, dim); skeleton streams augmented with `augment` when `gen` is given."""
        parts = []
        for name in self.names:
            if name in self.coords:
                xy, conf = streams[name], streams[name + ".conf"]
                if gen is not None:
                    xy, conf = self.coords[name].augment(xy, conf, augment, gen)
                parts.append(self.coords[name].features(xy, conf))
            else:
                parts.append(self.feature_norms[name](streams[name].float()))
        return torch.cat(parts, dim=-1)
