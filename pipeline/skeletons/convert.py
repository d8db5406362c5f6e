"""Layout conversion: joints of one skeleton layout as the joints of another (blazepose33 / body25 / coco17 /
smpl24 -> penn13, blazepose33 / body25 -> coco17, ...), so that a model trained on one layout embeds poses
from another source (a model trained on Penn Action labels embeds MediaPipe's estimates).

Joints are matched by name *and by the person's side*: a layout with `swapped_sides` (Penn Action, whose
columns named left hold the person's right side, see `pipeline.skeletons.layouts.PENN13`) has its l_/r_
names swapped before matching, so the person's left shoulder stays the person's left shoulder.

A target joint the source lacks is derived from joints it has (`DERIVED`):
- `head` (Penn Action's head point) = the confidence-weighted mean of the two ears, which brackets the
  head's centre seen from the front and lies near it seen from the side; when neither ear is seen, the
  nose. Its confidence is the highest of the joints used: the head is located as well as its best-seen
  part.
A conversion that needs a joint neither present nor derivable is refused, naming the joints.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from pipeline.skeletons.layouts import Skeleton, get_layout


class ConversionError(ValueError):
    """No conversion between two layouts: the message names both and the joints that cannot be provided."""


@dataclass(frozen=True)
class Derived:
    """A joint computed from `sources` (joint names, by the person's side), or from `fallback` when none of
    the sources is seen in a frame: confidence-weighted mean position, highest confidence."""

    sources: tuple[str, ...]
    fallback: tuple[str, ...] = ()


DERIVED: dict[str, Derived] = {"head": Derived(("l_ear", "r_ear"), fallback=("nose",))}


@dataclass(frozen=True)
class Conversion:
    """How to build each joint of `dst` from `src`: `groups[j]` is a tuple of alternatives (source joint
    index tuples), the first with any confident joint wins; a direct copy is ((i,),)."""

    src: str
    dst: str
    groups: tuple[tuple[tuple[int, ...], ...], ...]

    @property
    def identity(self) -> bool:
        return self.src == self.dst


def person_side(name: str, layout: Skeleton) -> str:
    """`name` of `layout` as the joint on the person's same side would be named in an unswapped layout."""
    if not layout.swapped_sides:
        return name
    for a, b in (("l_", "r_"), ("r_", "l_"), ("left_", "right_"), ("right_", "left_")):
        if name.startswith(a):
            return b + name[len(a):]
    return name


# layouts are fixed at import, so a (src, dst) pair's conversion never changes; it is asked for per sequence
@lru_cache(maxsize=None)
def conversion(src: str, dst: str) -> Conversion:
    """The conversion from layout `src` to layout `dst`; ConversionError when `src` cannot provide a joint."""
    source, target = get_layout(src), get_layout(dst)
    by_side = {person_side(name, source): i for i, name in enumerate(source.joints)}
    groups, missing = [], []
    for name in target.joints:
        wanted = person_side(name, target)
        if wanted in by_side:
            groups.append(((by_side[wanted],),))
        elif wanted in DERIVED and all(j in by_side for j in DERIVED[wanted].sources):
            rule = DERIVED[wanted]
            alternatives = [tuple(by_side[j] for j in rule.sources)]
            if rule.fallback and all(j in by_side for j in rule.fallback):
                alternatives.append(tuple(by_side[j] for j in rule.fallback))
            groups.append(tuple(alternatives))
        else:
            missing.append(name)
    if missing:
        raise ConversionError(f"cannot convert {src} joints to {dst}: {src} has no {', '.join(missing)} "
                              f"(nor the joints to derive them from)")
    return Conversion(src, dst, tuple(groups))


def can_convert(src: str, dst: str) -> bool:
    try:
        conversion(src, dst)
    except ConversionError:
        return False
    return True


def convert_joints(joints: np.ndarray, src: str, dst: str) -> np.ndarray:
    """(T, K_src, 3) [x, y, conf] in layout `src` -> (T, K_dst, 3) float32 in layout `dst`: a
    joint both layouts have is copied as it is; a derived joint that no source sees has NaN coordinates
    and confidence 0."""
    joints = np.asarray(joints, dtype=np.float32)
    conv = conversion(src, dst)
    _check_shape(joints, src)
    if conv.identity:
        # a copy: np.asarray may have returned the caller's own array, which the result must not alias
        return joints.copy()
    out = np.full((*joints.shape[:-2], len(conv.groups), 3), np.nan, dtype=np.float32)
    out[..., 2] = 0.0
    for j, alternatives in enumerate(conv.groups):
        if alternatives == ((alternatives[0][0],),):  # a joint both layouts have: copied as it is
            out[..., j, :] = joints[..., alternatives[0][0], :]
            continue
        for sources in reversed(alternatives):  # the first alternative is written last, where it is seen
            # a NaN confidence counts as 0 (missing), as everywhere in the pipeline
            xy, conf = _weighted(joints[..., sources, :2], np.nan_to_num(joints[..., sources, 2]))
            seen = conf > 0
            out[..., j, :2][seen] = xy[seen]
            out[..., j, 2][seen] = conf[seen]
    return out


def convert_points(points: np.ndarray, src: str, dst: str) -> np.ndarray:
    """(T, K_src, 3) xyz (3D joints, NaN = missing) in layout `src` -> (T, K_dst, 3) float32 in `dst`; a
    derived joint is the plain mean of its finite sources (3D joints carry no confidence)."""
    points = np.asarray(points, dtype=np.float32)
    conv = conversion(src, dst)
    _check_shape(points, src)
    if conv.identity:
        return points.copy()
    out = np.full((*points.shape[:-2], len(conv.groups), 3), np.nan, dtype=np.float32)
    for j, alternatives in enumerate(conv.groups):
        for sources in reversed(alternatives):
            part = points[..., sources, :]
            weight = np.isfinite(part).all(axis=-1).astype(np.float32)
            xyz, seen = _weighted(part, weight)
            out[..., j, :][seen > 0] = xyz[seen > 0]
    return out


def _weighted(coords: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(coords (..., n, C), weight (..., n)) -> (weighted mean (..., C), max weight (...)); NaN where all
    weights are 0."""
    total = weight.sum(axis=-1)
    # NaN * 0 is still NaN
    safe = np.where(weight[..., None] > 0, coords, 0.0)
    # all weights 0: 0 / 0 gives the promised NaN
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (safe * weight[..., None]).sum(axis=-2) / total[..., None]
    return mean.astype(np.float32), weight.max(axis=-1, initial=0.0)


def _check_shape(joints: np.ndarray, src: str) -> None:
    n = get_layout(src).n_joints
    if joints.ndim < 2 or joints.shape[-2:] != (n, 3):
        raise ConversionError(f"{src} joints must have shape (..., {n}, 3), got {joints.shape}")
