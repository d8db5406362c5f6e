"""SMPL and MANO through smplx: per-frame parameters -> 3D joints -> orthographic 2D, batched over frames.

Parameters come FrankMocap-style, per frame, under these keys (`MODEL_KEYS`; T frames):

    smpl_global_orient (T, 3), smpl_pose (T, 69)            axis-angle; or smpl_pose (T, 72) with the
    left_hand_global_orient (T, 3), left_hand_pose (T, 45)   global orientation first (FrankMocap's
    right_hand_global_orient (T, 3), right_hand_pose (T, 45) pred_body_pose / pred_hand_pose)
    <prefix>_betas (B,) or (T, B), <prefix>_camera (T, 3) [s, tx, ty], <prefix>_valid (T,)

SMPL gives the 24 joints of smpl24. Each hand goes through its own side's MANO layer: 16 joints in MANO's
order (wrist, index, middle, pinky, ring, thumb) plus the fingertip vertices 744, 320, 443, 554, 671
(thumb, index, middle, ring, pinky), reordered to mano21; both hands make hands42 (a missing side is NaN).
2D is the weak-perspective camera of HMR / FrankMocap: (x, y) = s * ((X, Y) + (tx, ty)), confidence 1.
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

import numpy as np

from pipeline.skeletons.body_model_files import (
    BodyModelError,
    load_model_data,
    model_file,
)
from pipeline.skeletons.layouts import Skeleton, get_layout

log = logging.getLogger(__name__)

PREFIXES = ("smpl", "left_hand", "right_hand")
MODEL_KEYS = frozenset(f"{p}_{k}" for p in PREFIXES for k in ("global_orient", "pose", "betas", "camera", "valid"))
MANO_JOINTS = ("wrist", "index1", "index2", "index3", "middle1", "middle2", "middle3", "pinky1", "pinky2", "pinky3",
               "ring1", "ring2", "ring3", "thumb1", "thumb2", "thumb3")
MANO_TIP_VERTICES = {"thumb": 744, "index": 320, "middle": 443, "ring": 554, "pinky": 671}
_MANO_ALL = MANO_JOINTS + tuple(f"{finger}4" for finger in MANO_TIP_VERTICES)
MANO_TO_MANO21 = tuple(_MANO_ALL.index(name) for name in get_layout("mano21").joints)
"""mano21 joint i is joint MANO_TO_MANO21[i] of MANO's 16 joints followed by the 5 fingertips."""
BATCH_VERTICES = 2**21
"""Frames per forward pass = this // vertices (SMPL 304, MANO 2695): keeps the pose-blend intermediate
(frames x vertices x 3 floats) near 24 MiB, which measured fastest on a 2-core CPU."""


@dataclass(frozen=True)
class Lifted:
    """joints_3d (T, K, 3) and joints_2d (T, K, 3) [x, y, conf] float32 in `layout`; NaN / 0 where invalid."""

    layout: str
    joints_3d: np.ndarray
    joints_2d: np.ndarray


def lift(params: dict[str, np.ndarray], model_dir: str | Path, *, gender: str = "neutral",
         flat_hand_mean: bool = True) -> Lifted:
    """3D and projected 2D joints of per-frame SMPL (smpl24) or MANO (hands42) parameters (keys above)."""
    body = any(k.startswith("smpl_") for k in params)
    hands = [side for side in ("left", "right") if any(k.startswith(f"{side}_hand_") for k in params)]
    if body and hands:
        raise BodyModelError("parameters hold both SMPL and MANO keys; one sequence is one skeleton layout")
    if body:
        layer = smpl_layer(str(model_file(model_dir, "smpl", gender=gender)), gender)
        joints_3d, valid = _run(params, "smpl", 69, partial(smpl_joints, layer))
        return Lifted("smpl24", joints_3d, project_orthographic(joints_3d, params.get("smpl_camera"), valid))
    if not hands:
        raise BodyModelError(f"no SMPL/MANO parameters among keys {sorted(params)}")
    n_frames = len(next(v for v in params.values() if v.ndim == 2))
    n_joints = get_layout("mano21").n_joints
    parts_3d, parts_2d = [], []
    for side in ("left", "right"):
        if side not in hands:
            parts_3d.append(np.full((n_frames, n_joints, 3), np.nan, np.float32))
            parts_2d.append(_missing_2d(n_frames, n_joints))
            continue
        layer = mano_layer(str(model_file(model_dir, "mano", side=side)), side == "right", flat_hand_mean)
        joints_3d, valid = _run(params, f"{side}_hand", 45, partial(mano_joints, layer))
        parts_3d.append(joints_3d)
        parts_2d.append(project_orthographic(joints_3d, params.get(f"{side}_hand_camera"), valid))
    return Lifted("hands42", np.concatenate(parts_3d, axis=1), np.concatenate(parts_2d, axis=1))


def smpl_joints(layer, global_orient: np.ndarray, body_pose: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """(T, 24, 3) float32 SMPL joints of global_orient (T, 3), body_pose (T, 69), betas (T, B)."""
    import torch

    out, batch = [], _batch(layer)
    with torch.no_grad():
        for s in range(0, len(global_orient), batch):
            go, pose, b = (torch.as_tensor(a[s : s + batch], dtype=torch.float32) for a in (global_orient, body_pose, betas))
            result = layer(global_orient=go, body_pose=pose, betas=_fit_betas(b, layer.num_betas))
            out.append(result.joints[:, : get_layout("smpl24").n_joints].numpy())  # then smplx's extra joints
    return np.concatenate(out).astype(np.float32)


def mano_joints(layer, global_orient: np.ndarray, hand_pose: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """(T, 21, 3) float32 joints in mano21 order: MANO's 16 joints plus fingertip vertices, reordered."""
    import torch

    tips = torch.as_tensor(list(MANO_TIP_VERTICES.values()))
    order = torch.as_tensor(MANO_TO_MANO21)
    out, batch = [], _batch(layer)
    with torch.no_grad():
        for s in range(0, len(global_orient), batch):
            go, pose, b = (torch.as_tensor(a[s : s + batch], dtype=torch.float32) for a in (global_orient, hand_pose, betas))
            result = layer(global_orient=go, hand_pose=pose, betas=_fit_betas(b, layer.num_betas))
            joints = torch.cat([result.joints[:, : len(MANO_JOINTS)], result.vertices[:, tips]], dim=1)
            out.append(joints[:, order].numpy())
    return np.concatenate(out).astype(np.float32)


def project_orthographic(joints_3d: np.ndarray, camera: np.ndarray | None = None,
                         valid: np.ndarray | None = None) -> np.ndarray:
    """(T, K, 3) [x, y, conf]: (x, y) = s * ((X, Y) + (tx, ty)) with camera (T, 3) [s, tx, ty] (default
    s = 1, t = 0); conf 1, or 0 (and NaN x, y) where a frame is invalid or a joint is not finite."""
    n_frames = len(joints_3d)
    camera = np.tile([1.0, 0.0, 0.0], (n_frames, 1)) if camera is None else np.asarray(camera, np.float64)
    xy = camera[:, None, :1] * (joints_3d[..., :2] + camera[:, None, 1:3])
    ok = np.isfinite(xy).all(axis=-1)
    if valid is not None:
        ok &= np.asarray(valid, bool)[:, None]
    xy[~ok] = np.nan
    return np.concatenate([xy, ok[..., None]], axis=-1).astype(np.float32)


def normalise_3d(joints: np.ndarray, layout: Skeleton) -> np.ndarray:
    """CASA-style normalisation of joints (T, K, 3): per frame, centred on the layout's root, rotated into
    the canonical frame (y: up, from scale[1] to scale[0]; x: lateral, orthogonalised; z = x cross y) and
    divided by the up length (torso, or wrist-to-middle-knuckle), so that length is 1. Frames whose
    reference joints are missing or degenerate become NaN."""
    joints = np.asarray(joints, dtype=np.float64)

    def centre(group):
        return joints[:, list(group)].mean(axis=1)  # (T, 3)

    up = centre(layout.scale[0]) - centre(layout.scale[1])
    lateral = centre(layout.lateral[0]) - centre(layout.lateral[1])
    length = np.linalg.norm(up, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        e_y = up / length
        e_x = lateral - (lateral * e_y).sum(-1, keepdims=True) * e_y
        e_x = e_x / np.linalg.norm(e_x, axis=-1, keepdims=True)
        e_z = np.cross(e_x, e_y)
        rotation = np.stack([e_x, e_y, e_z], axis=1)  # (T, 3, 3): rows are the canonical axes
        out = np.einsum("tij,tkj->tki", rotation, joints - centre(layout.root)[:, None]) / length[:, None]
    bad = ~np.isfinite(rotation).all(axis=(1, 2)) | (length[:, 0] < 1e-9)
    out[bad] = np.nan
    return out.astype(np.float32)


@lru_cache(maxsize=4)
def smpl_layer(path: str, gender: str):
    """An smplx.SMPL built from the (safely loaded) model file at `path`."""
    import smplx
    from smplx.utils import Struct

    data = load_model_data(path, "smpl")
    with contextlib.redirect_stdout(io.StringIO()):  # smplx prints a warning about 10-beta models
        layer = smplx.SMPL(path, data_struct=Struct(**data), gender=gender, create_transl=False)
    return layer.eval()


@lru_cache(maxsize=4)
def mano_layer(path: str, is_rhand: bool, flat_hand_mean: bool):
    """An smplx.MANO (axis-angle hand pose, no PCA) for one side, from the model file at `path`."""
    import smplx
    from smplx.utils import Struct

    data = load_model_data(path, "mano")
    if not is_rhand:
        data = _fix_left_shapedirs(data, Path(path))
    with contextlib.redirect_stdout(io.StringIO()):
        layer = smplx.MANO(path, is_rhand=is_rhand, data_struct=Struct(**data), use_pca=False,
                           flat_hand_mean=flat_hand_mean, create_transl=False)
    return layer.eval()


def _fix_left_shapedirs(left: dict[str, np.ndarray], path: Path) -> dict[str, np.ndarray]:
    """The released MANO_LEFT carries the right hand's x shape directions (a known defect that smplx users
    patch the same way): mirror them when they equal the right model's."""
    right_path = next((p for p in (path.with_name(f"MANO_RIGHT{s}") for s in (".pkl", ".npz")) if p.is_file()), None)
    if right_path is None:
        return left
    right = load_model_data(right_path, "mano")
    if np.abs(left["shapedirs"][:, 0] - right["shapedirs"][:, 0]).sum() < 1.0:
        log.info("%s: x shape directions equal the right hand's; mirroring them", path)
        left = {**left, "shapedirs": left["shapedirs"].copy()}
        left["shapedirs"][:, 0] *= -1
    return left


def _run(params, prefix: str, pose_dim: int, forward) -> tuple[np.ndarray, np.ndarray]:
    """Forward one model over every frame; invalid frames (flag 0 or non-finite) come out NaN."""
    go, pose = _orient_and_pose(params, prefix, pose_dim)
    n_frames = len(go)
    betas = params.get(f"{prefix}_betas", np.zeros(10, np.float32))
    betas = np.broadcast_to(betas, (n_frames, betas.shape[-1])) if betas.ndim == 1 else betas
    valid = np.asarray(params.get(f"{prefix}_valid", np.ones(n_frames)), bool)
    arrays = (go, pose, betas)
    if any(len(a) != n_frames for a in arrays) or len(valid) != n_frames:
        raise BodyModelError(f"{prefix} parameters disagree on the number of frames: {[a.shape for a in arrays]}")
    valid = valid & np.all([np.isfinite(a).all(axis=1) for a in arrays], axis=0)
    go, pose, betas = (np.where(valid[:, None], a, 0.0) for a in arrays)
    joints = forward(go, pose, betas)
    joints[~valid] = np.nan
    return joints, valid


def _orient_and_pose(params, prefix: str, pose_dim: int) -> tuple[np.ndarray, np.ndarray]:
    pose = params.get(f"{prefix}_pose")
    if pose is None:
        raise BodyModelError(f"missing {prefix}_pose")
    if f"{prefix}_global_orient" in params:
        go = params[f"{prefix}_global_orient"]
    elif pose.ndim == 2 and pose.shape[1] == pose_dim + 3:
        go, pose = pose[:, :3], pose[:, 3:]
    else:
        raise BodyModelError(f"{prefix}_pose has shape {pose.shape}: need (T, {pose_dim}) and {prefix}_global_orient, "
                             f"or (T, {pose_dim + 3}) with the global orientation first")
    if go.ndim != 2 or go.shape[1] != 3 or pose.ndim != 2 or pose.shape[1] != pose_dim:
        raise BodyModelError(f"{prefix}: global_orient {go.shape} and pose {pose.shape}, need (T, 3) and (T, {pose_dim})")
    return go, pose


def _batch(layer) -> int:
    return max(1, BATCH_VERTICES // layer.v_template.shape[0])


def _fit_betas(betas, n: int):
    """betas (T, B) cut or zero-padded to the model's n shape coefficients."""
    import torch

    if betas.shape[1] >= n:
        return betas[:, :n]
    return torch.cat([betas, betas.new_zeros(len(betas), n - betas.shape[1])], dim=1)


def _missing_2d(n_frames: int, n_joints: int) -> np.ndarray:
    out = np.full((n_frames, n_joints, 3), np.nan, np.float32)
    out[..., 2] = 0.0
    return out
