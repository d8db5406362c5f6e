"""Test-time keypoint perturbations for the robustness study of LA2DS (Sec. 4.1, Tables 3-4).

- Missing keypoints: in each frame, with probability p, one limb (body layouts: an arm = elbow, wrist,
  hand; a leg = knee, ankle, foot, heel, toes) or one finger (hand layouts) chosen uniformly is removed.
  A removed joint becomes (0, 0, 0), OpenPose's encoding of a joint it did not detect, so a model that
  honours the confidence channel ignores it and one that does not sees a far-off point.
- Noisy keypoints: Gaussian noise on the (x, y) of every present joint, with a standard deviation given
  as a fraction of the sequence's body size (`model.metrics.baselines.skeleton_scale`), so one setting means
  the same on 1080p Penn Action frames and on small hand crops.
Groups are derived from the layout's joint names, never from joint counts.
"""

from __future__ import annotations

import numpy as np

from model.metrics.baselines import skeleton_scale
from pipeline.skeletons.layouts import Skeleton

FINGERS = ("thumb", "index", "middle", "ring", "pinky")
ARM = ("elbow", "wrist", "hand")
LEG = ("knee", "ankle", "foot", "heel", "toe")
SIDES = ("left_", "right_", "l_", "r_")


def _part(name: str) -> tuple[str, str] | None:
    """(side, part) of a joint name, e.g. 'l_index2' -> ('l_', 'index'), 'r_knee' -> ('r_', 'leg')."""
    side = next((s for s in SIDES if name.startswith(s)), "")
    base = name[len(side) :]
    finger = next((f for f in FINGERS if base.startswith(f)), None)
    if finger:
        return side, finger
    if any(word in base for word in ARM):
        return side, "arm"
    if any(word in base for word in LEG):
        return side, "leg"
    return None


def limb_groups(layout: Skeleton) -> tuple[tuple[int, ...], ...]:
    """Joint-index groups that can go missing together: fingers for hand layouts, else arms and legs."""
    groups: dict[tuple[str, str], list[int]] = {}
    for i, name in enumerate(layout.joints):
        part = _part(name)
        if part is not None:
            groups.setdefault(part, []).append(i)
    fingers = {key: g for key, g in groups.items() if key[1] in FINGERS}
    groups = fingers or groups  # a hand layout loses fingers, never its wrist
    if not groups:
        raise ValueError(f"layout {layout.name}: no limb or finger joints recognised in {layout.joints}")
    return tuple(tuple(g) for _, g in sorted(groups.items()))


def drop_limbs(
    joints_2d: np.ndarray, groups: tuple[tuple[int, ...], ...], p: float, rng: np.random.Generator
) -> np.ndarray:
    """(T, K, 3) -> a copy where each frame, with probability p, loses one random group (set to 0, 0, 0)."""
    out = np.array(joints_2d, dtype=np.float32, copy=True)
    hit = np.flatnonzero(rng.random(len(out)) < p)
    choice = rng.integers(len(groups), size=len(hit))
    for t, g in zip(hit, choice):
        out[t, list(groups[g])] = 0.0
    return out


def add_keypoint_noise(joints_2d: np.ndarray, std: float, layout: Skeleton, rng: np.random.Generator) -> np.ndarray:
    """(T, K, 3) -> a copy with N(0, (std * body size)^2) added to x and y of every present joint."""
    out = np.array(joints_2d, dtype=np.float32, copy=True)
    sigma = std * skeleton_scale(joints_2d, layout)
    present = (out[..., 2] > 0) & np.isfinite(out[..., :2]).all(-1)
    noise = rng.normal(0.0, sigma, size=out[..., :2].shape).astype(np.float32)
    out[..., :2] += noise * present[..., None]
    return out
