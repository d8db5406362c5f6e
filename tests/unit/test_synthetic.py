import numpy as np

from pipeline.datasets.synthetic import (
    ACTIVITIES,
    Camera,
    forward_kinematics,
    project,
    sample_sequence,
)
from pipeline.skeletons.layouts import PENN13


def test_neutral_pose_stands_on_the_floor_upright():
    angles = {k: np.zeros(1) for k in ("pitch", "l_sh_abd", "r_sh_abd", "l_sh_flex", "r_sh_flex", "l_elbow",
                                       "r_elbow", "l_hip_abd", "r_hip_abd", "l_hip_flex", "r_hip_flex", "l_knee", "r_knee")}
    from pipeline.datasets.synthetic import Body

    joints = forward_kinematics(angles, Body())[0]
    assert np.isclose(joints[[PENN13.index("l_ankle"), PENN13.index("r_ankle")], 1].min(), 0)
    assert joints[PENN13.index("head"), 1] > joints[PENN13.index("l_shoulder"), 1] > joints[PENN13.index("l_hip"), 1]
    assert joints[PENN13.index("l_shoulder"), 0] > 0 > joints[PENN13.index("r_shoulder"), 0]


def test_hip_flexion_moves_the_knee_forward():
    from pipeline.datasets.synthetic import Body

    base = {k: np.zeros(2) for k in ("pitch", "l_sh_abd", "r_sh_abd", "l_sh_flex", "r_sh_flex", "l_elbow",
                                     "r_elbow", "l_hip_abd", "r_hip_abd", "l_hip_flex", "r_hip_flex", "l_knee", "r_knee")}
    base["l_hip_flex"] = np.array([0.0, 90.0])
    joints = forward_kinematics(base, Body())
    knee = PENN13.index("l_knee")
    assert joints[1, knee, 2] < joints[0, knee, 2] - 0.3  # forward is -z


def test_sequences_are_deterministic_with_monotonic_phases():
    for activity, spec in ACTIVITIES.items():
        a = sample_sequence(activity, np.random.default_rng(3), fps=12, seconds=4, image_size=160, missing_joint_prob=0.05)
        b = sample_sequence(activity, np.random.default_rng(3), fps=12, seconds=4, image_size=160, missing_joint_prob=0.05)
        assert np.array_equal(a.joints_2d, b.joints_2d)
        assert np.all(np.diff(a.phase) >= 0) and a.phase[0] == 0 and a.phase[-1] == len(spec["phases"]) - 1
        assert a.joints_2d.shape == (len(a.phase), PENN13.n_joints, 3)
        visible = a.joints_2d[..., 2] > 0
        assert np.all((a.joints_2d[visible][:, :2] > 0) & (a.joints_2d[visible][:, :2] < 160))


def test_camera_yaw_changes_the_projection_only():
    joints = np.random.default_rng(0).normal(size=(1, 13, 3))
    front = project(joints, Camera(yaw=0, pitch=0, scale=50, cx=80, cy=80))
    turned = project(joints, Camera(yaw=40, pitch=0, scale=50, cx=80, cy=80))
    assert not np.allclose(front, turned)
    assert np.allclose(front[..., 1], project(joints, Camera(yaw=0, pitch=0, scale=50, cx=30, cy=80))[..., 1])
