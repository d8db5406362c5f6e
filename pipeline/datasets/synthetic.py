"""Motion of the generated sample dataset: articulated figures performing phased activities.

Pure maths (no I/O): an activity is a list of key poses; phase p is the motion from key pose p to p + 1.
A sequence draws its body proportions, per-phase durations, speed warps, pauses and camera, and yields
per-frame 3D joints (metres, y up, the figure facing -z), their 2D projection (pixels) and phase labels.
Joints follow `pipeline.skeletons.layouts.PENN13`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.skeletons.layouts import PENN13

# Key-pose angles in degrees. Missing keys are 0; elbows rest slightly bent.
ANGLES = ("pitch", "l_sh_abd", "r_sh_abd", "l_sh_flex", "r_sh_flex", "l_elbow", "r_elbow",
          "l_hip_abd", "r_hip_abd", "l_hip_flex", "r_hip_flex", "l_knee", "r_knee")
NEUTRAL = {"l_elbow": 10.0, "r_elbow": 10.0, "l_sh_abd": 8.0, "r_sh_abd": 8.0}

ACTIVITIES: dict[str, dict] = {
    "squat": {
        "phases": ["descend", "bottom_out", "rise"],
        "keys": [{}, {"pitch": 20, "l_hip_flex": 50, "r_hip_flex": 50, "l_knee": 70, "r_knee": 70, "l_sh_flex": 60, "r_sh_flex": 60},
                 {"pitch": 35, "l_hip_flex": 100, "r_hip_flex": 100, "l_knee": 125, "r_knee": 125, "l_sh_flex": 90, "r_sh_flex": 90}, {}],
    },
    "jumping_jack": {
        "phases": ["open", "clap", "lower", "close"],
        "keys": [{}, {"l_sh_abd": 90, "r_sh_abd": 90, "l_hip_abd": 15, "r_hip_abd": 15},
                 {"l_sh_abd": 170, "r_sh_abd": 170, "l_hip_abd": 25, "r_hip_abd": 25, "l_elbow": 0, "r_elbow": 0},
                 {"l_sh_abd": 90, "r_sh_abd": 90, "l_hip_abd": 15, "r_hip_abd": 15}, {}],
    },
    "pick_up": {
        "phases": ["bend", "reach", "stand_up"],
        "keys": [{}, {"pitch": 45, "l_sh_flex": 30, "r_sh_flex": 30},
                 {"pitch": 85, "l_knee": 25, "r_knee": 25, "l_hip_flex": 10, "r_hip_flex": 10, "l_sh_flex": 85, "r_sh_flex": 85}, {}],
    },
    "serve": {
        "phases": ["wind_up", "cock", "strike", "follow_through"],
        "keys": [{}, {"r_sh_abd": 100, "r_elbow": 90, "l_sh_flex": 110},
                 {"r_sh_abd": 160, "r_elbow": 135, "l_sh_flex": 140, "pitch": -10},
                 {"r_sh_flex": 170, "r_sh_abd": 20, "r_elbow": 0, "l_sh_flex": 60, "pitch": 10},
                 {"r_sh_flex": 40, "pitch": 35, "l_sh_flex": 10, "r_hip_flex": 20, "r_knee": 20}],
    },
}


@dataclass(frozen=True)
class Body:
    """Segment lengths in metres."""

    torso: float = 0.55
    head: float = 0.25
    shoulder_w: float = 0.19
    hip_w: float = 0.11
    upper_arm: float = 0.30
    forearm: float = 0.27
    thigh: float = 0.45
    shin: float = 0.43


@dataclass(frozen=True)
class Camera:
    yaw: float  # degrees about the vertical axis
    pitch: float  # degrees about the horizontal axis
    scale: float  # pixels per metre
    cx: float
    cy: float
    distance: float = 6.0  # metres, for the mild perspective


@dataclass(frozen=True)
class SampleSequence:
    activity: str
    joints_3d: np.ndarray  # (T, 13, 3) metres
    joints_2d: np.ndarray  # (T, 13, 3) [x, y, conf] pixels; conf 0 = label missing (the figure is still drawn)
    phase: np.ndarray  # (T,) phase index within the activity


def phase_names() -> list[tuple[str, str]]:
    """(activity, phase) for every global label id, in id order."""
    return [(a, p) for a, spec in ACTIVITIES.items() for p in spec["phases"]]


def label_offset(activity: str) -> int:
    return [a for a, _ in phase_names()].index(activity)


def _rot_x(deg: np.ndarray) -> np.ndarray:
    a = np.radians(deg)
    c, s = np.cos(a), np.sin(a)
    one, zero = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([one, zero, zero], -1), np.stack([zero, c, -s], -1), np.stack([zero, s, c], -1)], -2)


def _rot_z(deg: np.ndarray) -> np.ndarray:
    a = np.radians(deg)
    c, s = np.cos(a), np.sin(a)
    one, zero = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, -s, zero], -1), np.stack([s, c, zero], -1), np.stack([zero, zero, one], -1)], -2)


def _limb_dir(abd: np.ndarray, flex: np.ndarray, side: float) -> np.ndarray:
    """(T, 3) unit direction of a limb hanging down, abducted sideways then flexed forward (towards -z)."""
    down = np.array([0.0, -1.0, 0.0])
    return _rot_x(flex) @ _rot_z(side * abd) @ down


def forward_kinematics(angles: dict[str, np.ndarray], body: Body) -> np.ndarray:
    """(T, 13, 3) joint positions for per-frame angle arrays (degrees), feet resting on y = 0."""
    t = len(angles["pitch"])
    trunk = _rot_x(-angles["pitch"])  # (T, 3, 3): bend forward
    pelvis = np.zeros((t, 3))
    neck = pelvis + trunk @ np.array([0.0, body.torso, 0.0])
    joints = np.zeros((t, 13, 3))
    j = PENN13.index
    joints[:, j("head")] = neck + trunk @ np.array([0.0, body.head, 0.0])
    for side, sign in (("l", 1.0), ("r", -1.0)):
        shoulder = neck + trunk @ np.array([sign * body.shoulder_w, -0.04, 0.0])
        arm = np.einsum("tij,tj->ti", trunk, _limb_dir(angles[f"{side}_sh_abd"], angles[f"{side}_sh_flex"], sign))
        fore = np.einsum(
            "tij,tj->ti", trunk, _limb_dir(angles[f"{side}_sh_abd"], angles[f"{side}_sh_flex"] + angles[f"{side}_elbow"], sign)
        )
        elbow = shoulder + body.upper_arm * arm
        hip = pelvis + np.array([sign * body.hip_w, 0.0, 0.0])
        thigh = _limb_dir(angles[f"{side}_hip_abd"], angles[f"{side}_hip_flex"], sign)
        shin = _limb_dir(angles[f"{side}_hip_abd"], angles[f"{side}_hip_flex"] - angles[f"{side}_knee"], sign)
        knee = hip + body.thigh * thigh
        joints[:, j(f"{side}_shoulder")] = shoulder
        joints[:, j(f"{side}_elbow")] = elbow
        joints[:, j(f"{side}_wrist")] = elbow + body.forearm * fore
        joints[:, j(f"{side}_hip")] = hip
        joints[:, j(f"{side}_knee")] = knee
        joints[:, j(f"{side}_ankle")] = knee + body.shin * shin
    floor = joints[:, [j("l_ankle"), j("r_ankle")], 1].min(axis=1)
    joints[..., 1] -= floor[:, None]
    return joints


def project(joints_3d: np.ndarray, cam: Camera) -> np.ndarray:
    """(T, K, 3) metres -> (T, K, 2) pixels: yaw/pitch rotation then weak perspective, image y down."""
    rot = _rot_x(np.asarray(cam.pitch)) @ np.array(
        [[np.cos(np.radians(cam.yaw)), 0, np.sin(np.radians(cam.yaw))], [0, 1, 0],
         [-np.sin(np.radians(cam.yaw)), 0, np.cos(np.radians(cam.yaw))]]
    )
    centre = np.array([0.0, 0.9, 0.0])
    p = (joints_3d - centre) @ rot.T
    persp = cam.distance / (cam.distance + p[..., 2:3])
    return np.concatenate([cam.cx + cam.scale * persp * p[..., :1], cam.cy - cam.scale * persp * p[..., 1:2]], -1)


def sample_sequence(activity: str, rng: np.random.Generator, *, fps: float, seconds: float, image_size: int,
                    missing_joint_prob: float) -> SampleSequence:
    """One randomised performance of `activity` lasting about `seconds` at `fps`."""
    spec = ACTIVITIES[activity]
    keys = [{**NEUTRAL, **k} for k in spec["keys"]]
    n_phases = len(keys) - 1
    n_frames = max(n_phases * 4, int(round(seconds * fps)))
    # per-frame progress through the key poses: phase durations vary, speed warps inside each phase, pauses
    weights = rng.gamma(6.0, 1.0, size=n_phases)
    pauses = np.where(rng.random(n_phases) < 0.35, rng.uniform(0.15, 0.5, n_phases), 0.0)
    shares = weights / weights.sum() * (1 - pauses.sum() / (1 + pauses.sum()))
    holds = pauses / (1 + pauses.sum())
    bounds = np.cumsum(np.ravel(np.column_stack([shares, holds])))
    u = (np.arange(n_frames) + 0.5) / n_frames
    progress = np.zeros(n_frames)
    start = 0.0
    for p in range(n_phases):
        move_end, hold_end = bounds[2 * p], bounds[2 * p + 1]
        gamma = rng.uniform(0.6, 1.7)
        inside = (u >= start) & (u < move_end)
        local = np.clip((u[inside] - start) / max(move_end - start, 1e-9), 0, 1) ** gamma
        progress[inside] = p + 0.5 - 0.5 * np.cos(np.pi * local)
        progress[(u >= move_end) & (u < hold_end)] = p + 1 - 1e-6
        start = hold_end
    progress[u >= start] = n_phases - 1e-6
    phase = np.minimum(progress.astype(int), n_phases - 1)
    jitter = [{k: v + rng.normal(0, 6.0) for k, v in key.items()} for key in keys]
    angles = {}
    for name in ANGLES:
        values = np.array([k.get(name, 0.0) for k in jitter])
        angles[name] = np.interp(progress, np.arange(len(values)), values)
    body = Body(**{f: v * rng.uniform(0.88, 1.12) for f, v in Body().__dict__.items()})
    joints_3d = forward_kinematics(angles, body)
    cam = Camera(
        yaw=rng.uniform(-45, 45), pitch=rng.uniform(-8, 12), scale=image_size * rng.uniform(0.33, 0.40),
        cx=image_size * rng.uniform(0.42, 0.58), cy=image_size * rng.uniform(0.50, 0.58),
    )
    xy = project(joints_3d, cam)
    conf = (rng.random(xy.shape[:2]) >= missing_joint_prob).astype(np.float64)
    joints_2d = np.concatenate([xy, conf[..., None]], -1).astype(np.float32)
    return SampleSequence(activity, joints_3d.astype(np.float32), joints_2d, phase)
