"""Pose readers: one sequence's source poses (index columns `pose`, `pose_format`) on the dataset timeline.

Formats (joints in the skeleton layouts of `pipeline.skeletons.layouts`):

- `penn_mat`: Penn Action `labels/NNNN.mat`; x, y and visibility (-> confidence) of the 13 joints (penn13).
- `openpose_json`: a folder of per-frame OpenPose `*_keypoints.json` (BODY_25 `pose_keypoints_2d`), in
  frame-number order. One person per frame: the one nearest the previous frame's choice (`track`) or the
  one with the highest mean confidence (`confidence`, also `track`'s choice when there is nothing to
  track). A frame without people has every joint missing.
- `h2o_hand_pose`: an H2O `hand_pose` folder of per-frame `NNNNNN.txt`, each 128 numbers: left hand
  [valid, 21 x (x, y, z)], then right hand, in camera coordinates, joints in the mano21 order (hands42).
  With `cam_intrinsics.txt` (fx fy cx cy width height) beside the folder, 2D = perspective projection;
  without it, orthographic (x, y) in the 3D units.
- `npz`: `joints_2d (T, K, 3)` [x, y, conf] and optional `joints_3d (T, K, 3)` in the dataset's layout,
  optional `image_size` [width, height], and/or per-frame SMPL/MANO parameters for lifting
  (`pipeline.skeletons.body_models.MODEL_KEYS`): `{smpl,left_hand,right_hand}_{global_orient,pose,betas,camera,valid}`.

- estimated poses: a sequence of the `estimate_pose` stage's store (`data/<D>/poses.zarr`, blazepose33),
  already on the dataset timeline (`read_estimated`).

Missing joints have confidence 0 and, where the source gives no coordinate, NaN coordinates. Every array
is resampled from the source's constant frame rate to the dataset's with `pipeline.video.timeline`. Poses
whose layout differs from the dataset's (OpenPose body25 or estimated blazepose33 poses in a penn13 dataset)
are converted to it by `pipeline.skeletons.convert`; a conversion that cannot provide every joint is an error.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pipeline.datasets import DatasetError
from pipeline.skeletons.convert import ConversionError, conversion, convert_joints, convert_points
from pipeline.skeletons.layouts import get_layout
from pipeline.video.timeline import resample_indices, uniform_times

log = logging.getLogger(__name__)
PersonChoice = Literal["track", "confidence"]
FORMAT_LAYOUTS = {"penn_mat": "penn13", "openpose_json": "body25", "h2o_hand_pose": "hands42"}
HAND_JOINTS = get_layout("mano21").n_joints
H2O_NUMBERS = 2 * (1 + 3 * HAND_JOINTS)


@dataclass(frozen=True)
class Poses:
    """One sequence's poses. joints_2d: (T, K, 3) [x, y, conf] float32 (None when only model parameters
    are given); joints_3d: (T, K, 3) float32 or None; image_size: (width, height) or None; model_params:
    SMPL/MANO parameters by key, per-frame ones (T, ...) on the same timeline; projection: how joints_2d
    was obtained ("dataset" labels/detections, "estimated" by the estimate_pose stage, "perspective" or
    "orthographic" projection of joints_3d)."""

    layout: str
    joints_2d: np.ndarray | None
    joints_3d: np.ndarray | None = None
    image_size: tuple[int, int] | None = None
    model_params: dict[str, np.ndarray] = field(default_factory=dict)
    projection: str = "dataset"

    @property
    def n_frames(self) -> int:
        for arr in (self.joints_2d, self.joints_3d, *self.model_params.values()):
            if arr is not None and arr.ndim >= 2:
                return len(arr)
        raise ValueError("poses hold no per-frame array")

    def take(self, idx: np.ndarray) -> Poses:
        """The poses at source frames `idx` (per-frame arrays only; betas (B,) are kept as they are)."""
        def pick(arr):
            return None if arr is None else arr[idx]

        params = {k: (v if _is_constant(k, v) else v[idx]) for k, v in self.model_params.items()}
        return replace(self, joints_2d=pick(self.joints_2d), joints_3d=pick(self.joints_3d), model_params=params)

    def to_layout(self, layout: str) -> Poses:
        """The joints converted to `layout` (`pipeline.skeletons.convert`; model parameters are kept as they
        are); ConversionError names both layouts when `layout` needs joints this one cannot provide."""
        if layout == self.layout:
            return self
        j2 = None if self.joints_2d is None else convert_joints(self.joints_2d, self.layout, layout)
        j3 = None if self.joints_3d is None else convert_points(self.joints_3d, self.layout, layout)
        return replace(self, layout=layout, joints_2d=j2, joints_3d=j3)


def read_poses(row: Mapping[str, Any], layout: str, *, person: PersonChoice = "track") -> Poses:
    """The poses of index row `row` (dataset layout `layout`) resampled to the dataset timeline.

    Raises DatasetError naming the sequence and file for an unreadable source, a layout mismatch, or a
    frame count that disagrees with the index.
    """
    seq, fmt, path = row["id"], row["pose_format"], Path(row["pose"])
    where = f"{row['dataset']}: sequence {seq}" if row.get("dataset") else f"sequence {seq}"
    if fmt not in READERS:
        raise DatasetError(f"{where}: no pose source (pose_format {fmt!r}, pose {str(path)!r})")
    if not path.exists():
        raise DatasetError(f"{where}: pose source {path} does not exist")
    native = FORMAT_LAYOUTS.get(fmt, layout)
    try:
        conversion(native, layout)  # before reading: an impossible conversion fails at once
    except ConversionError as err:
        raise DatasetError(f"{where}: {fmt} poses ({path}) are {native}, but the dataset layout is {layout}: "
                           f"{err}") from err
    try:
        poses = READERS[fmt](path, native, person)
    except DatasetError as err:
        raise DatasetError(f"{where}: {err}") from err
    except Exception as err:  # an unreadable file raises OSError, ValueError, KeyError, zipfile.BadZipFile...
        raise DatasetError(f"{where}: cannot read {fmt} poses {path}: {type(err).__name__}: {err}") from err
    n_source = poses.n_frames
    if n_source != int(row["n_source_frames"]):
        raise DatasetError(
            f"{where}: {path} holds {n_source} frames of poses, the index says {row['n_source_frames']}"
        )
    idx = resample_indices(uniform_times(n_source, float(row["source_fps"])), float(row["fps"]))
    if len(idx) != int(row["n_frames"]):
        raise DatasetError(f"{where}: {path} resamples to {len(idx)} frames, the index says {row['n_frames']}")
    return _converted(poses.take(idx), layout, f"{where}: {fmt} poses {path}")


def read_estimated(store_url: str, row: Mapping[str, Any], layout: str) -> Poses:
    """The `estimate_pose` stage's poses of index row `row` (already on the dataset timeline), converted to the
    dataset layout `layout`. DatasetError names the sequence and the store when they are absent or stale."""
    from pipeline.store import ArtifactStore, StoreError

    seq = row["id"]
    where = f"{row['dataset']}: sequence {seq}" if row.get("dataset") else f"sequence {seq}"
    try:
        store = ArtifactStore(store_url)
        attrs = store.attrs(seq)
        joints = np.asarray(store.read(seq, "joints_2d"), dtype=np.float32)
    except StoreError as err:
        raise DatasetError(f"{where}: no estimated poses: {err}") from err
    if len(joints) != int(row["n_frames"]):
        raise DatasetError(f"{where}: {store_url} holds {len(joints)} frames of estimated poses, the index "
                           f"says {row['n_frames']} (stale: rerun `pipeline estimate-pose`)")
    size = tuple(int(v) for v in attrs["image_size"]) if attrs.get("image_size") else None
    poses = Poses(str(attrs["layout"]), joints, image_size=size, projection="estimated")
    return _converted(poses, layout, f"{where}: estimated poses in {store_url}")


def _converted(poses: Poses, layout: str, where: str) -> Poses:
    try:
        return poses.to_layout(layout)
    except ConversionError as err:
        raise DatasetError(f"{where} are {poses.layout}, the dataset layout is {layout}: {err}") from err


def read_penn(path: Path, layout: str, person: PersonChoice) -> Poses:
    from pipeline.datasets.penn_action import read_labels

    lab = read_labels(path)
    joints = np.stack([lab.x, lab.y, lab.visibility.astype(np.float64)], axis=-1).astype(np.float32)
    return Poses(layout, joints, image_size=(lab.width, lab.height))


def read_openpose(folder: Path, layout: str, person: PersonChoice) -> Poses:
    files = sorted(folder.glob("*_keypoints.json"), key=_frame_number)
    if not files:
        raise DatasetError(f"no *_keypoints.json files in {folder}")
    n_joints = get_layout(layout).n_joints
    people = [_openpose_people(path, n_joints) for path in files]
    return Poses(layout, choose_person(people, person))


def _openpose_people(path: Path, n_joints: int) -> np.ndarray:
    """(P, K, 3) [x, y, conf] of one OpenPose frame; undetected joints (conf 0) get NaN coordinates."""
    try:
        people = json.loads(path.read_text())["people"]
        if not people:
            return np.zeros((0, n_joints, 3), np.float32)
        arr = np.array([p["pose_keypoints_2d"] for p in people], dtype=np.float32).reshape(len(people), -1, 3)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise DatasetError(f"malformed OpenPose file {path}: {err!r}") from err
    if arr.shape[1] != n_joints:
        raise DatasetError(f"{path}: {arr.shape[1]} keypoints per person, the layout has {n_joints}")
    arr[..., :2][arr[..., 2] <= 0] = np.nan
    return arr


def choose_person(frames: list[np.ndarray], mode: PersonChoice = "track") -> np.ndarray:
    """(T, K, 3): one person per frame out of frames[t] (P_t, K, 3), deterministically (see module doc)."""
    n_joints = next((f.shape[1] for f in frames if f.ndim == 3), 0)
    out = np.full((len(frames), n_joints, 3), np.nan, dtype=np.float32)
    out[..., 2] = 0.0
    previous = None
    for t, people in enumerate(frames):
        if len(people) == 0:
            continue
        score = np.nan_to_num(people[..., 2]).mean(axis=1)
        pick = int(np.argmax(score))
        if mode == "track" and previous is not None:
            gap = np.linalg.norm(people[..., :2] - previous[:, :2], axis=-1)  # (P, K), NaN where either misses
            shared = np.isfinite(gap).sum(axis=1)
            if shared.any():
                mean_gap = np.where(shared > 0, np.nansum(gap, axis=1) / np.maximum(shared, 1), np.inf)
                pick = int(np.argmin(mean_gap))
        out[t] = previous = people[pick]
    return out


def read_h2o(folder: Path, layout: str, person: PersonChoice) -> Poses:
    files = sorted(folder.glob("*.txt"), key=_frame_number)
    if not files:
        raise DatasetError(f"no per-frame NNNNNN.txt files in {folder}")
    rows = np.stack([_h2o_frame(path) for path in files])  # (T, 128)
    hands = rows.reshape(len(rows), 2, 1 + 3 * HAND_JOINTS)
    valid = hands[:, :, 0] > 0  # (T, 2): left, right
    joints_3d = hands[:, :, 1:].reshape(len(rows), 2, HAND_JOINTS, 3).copy()
    joints_3d[~valid] = np.nan
    joints_3d = joints_3d.reshape(len(rows), 2 * HAND_JOINTS, 3)
    intrinsics = folder.parent / "cam_intrinsics.txt"
    if intrinsics.is_file():
        fx, fy, cx, cy, width, height = _h2o_intrinsics(intrinsics)
        z = joints_3d[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            xy = np.stack([fx * joints_3d[..., 0] / z + cx, fy * joints_3d[..., 1] / z + cy], axis=-1)
            conf = (np.isfinite(xy).all(axis=-1) & (z > 0)).astype(np.float32)
        size, projection = (int(width), int(height)), "perspective"
    else:
        xy = joints_3d[..., :2]
        conf = np.isfinite(xy).all(axis=-1).astype(np.float32)
        size, projection = None, "orthographic"
        log.debug("%s: no %s, projecting orthographically", folder, intrinsics.name)
    joints_2d = np.concatenate([xy, conf[..., None]], axis=-1).astype(np.float32)
    return Poses(layout, joints_2d, joints_3d.astype(np.float32), image_size=size, projection=projection)


def _h2o_frame(path: Path) -> np.ndarray:
    values = np.array(path.read_text().split(), dtype=np.float64)
    if values.shape != (H2O_NUMBERS,):
        raise DatasetError(f"H2O hand pose file {path} holds {values.size} numbers, expected {H2O_NUMBERS}")
    return values


def _h2o_intrinsics(path: Path) -> np.ndarray:
    values = np.array(path.read_text().split(), dtype=np.float64)
    if values.size < 6:
        raise DatasetError(f"{path}: expected fx fy cx cy width height, got {values.size} numbers")
    return values[:6]


def read_npz(path: Path, layout: str, person: PersonChoice) -> Poses:
    from pipeline.skeletons.body_models import MODEL_KEYS

    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    n_joints = get_layout(layout).n_joints
    joints = {}
    for key in ("joints_2d", "joints_3d"):
        if key in arrays:
            arr = np.asarray(arrays[key], dtype=np.float32)
            if arr.ndim != 3 or arr.shape[1:] != (n_joints, 3):
                raise DatasetError(f"{path}: {key} has shape {arr.shape}, layout {layout} needs (T, {n_joints}, 3)")
            joints[key] = arr
    params = {k: np.asarray(v, dtype=np.float32) for k, v in arrays.items() if k in MODEL_KEYS}
    if "joints_2d" not in joints and not params:
        raise DatasetError(f"{path}: neither joints_2d nor SMPL/MANO parameters ({sorted(MODEL_KEYS)[:3]}...)")
    size = tuple(int(s) for s in arrays["image_size"]) if "image_size" in arrays else None
    return Poses(layout, joints.get("joints_2d"), joints.get("joints_3d"), image_size=size, model_params=params)


def _frame_number(path: Path) -> tuple[int, str]:
    """Sort key: the last number in the file name (OpenPose `..._000000000012_keypoints`, H2O `000012`)."""
    numbers = re.findall(r"\d+", path.name)
    return (int(numbers[-1]) if numbers else -1, path.name)


def _is_constant(key: str, value: np.ndarray) -> bool:
    """Shape (betas (B,)) shared by every frame, rather than one row per frame."""
    return key.endswith("_betas") and value.ndim == 1


READERS = {"penn_mat": read_penn, "openpose_json": read_openpose, "h2o_hand_pose": read_h2o, "npz": read_npz}
