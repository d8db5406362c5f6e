"""Early fusion (MASA Fig. 2): per-frame DINO features and skeleton coordinates concatenated, then MASA.

The network, augmentation and losses are MASA's (`model.methods.masa`); only the input differs: its `inputs` list
must hold a DINO feature array (`feature`) and a keypoint array (`joints_2d` or `joints_3d`). Temporal
augmentation moves both streams together; spatial augmentation touches the skeleton stream only.
"""

from __future__ import annotations

from dataclasses import dataclass

from model.inputs.coordinates import KEYPOINT_ARRAYS
from model.methods.masa import Masa, MasaParams


@dataclass(frozen=True)
class FusionEarlyParams(MasaParams):
    """MASA's params (see `model.methods.masa.MasaParams`), every key spelled out in its own `fusion_early`
    section of params.yaml; `inputs` must name a DINO feature array and a keypoint array."""


class FusionEarly(Masa):
    params_cls = FusionEarlyParams

    @classmethod
    def inputs(cls, params: MasaParams) -> tuple[tuple[str, str], ...]:
        pairs = super().inputs(params)
        names = [name for _, name in pairs]
        if "feature" not in names or not any(n in KEYPOINT_ARRAYS for n in names):
            raise ValueError(f"fusion_early needs 'feature' and one of {KEYPOINT_ARRAYS} in its inputs, got {names}")
        return pairs
