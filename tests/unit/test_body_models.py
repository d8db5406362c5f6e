"""SMPL / MANO lifting on generated model files with the real shapes; the restricted unpickler."""

import os
import pickle

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from pipeline.skeletons.body_model_files import (
    BodyModelError,
    load_model_data,
    model_file,
    safe_load_pickle,
)
from pipeline.skeletons.body_models import (
    MANO_TIP_VERTICES,
    MANO_TO_MANO21,
    lift,
    mano_joints,
    mano_layer,
    normalise_3d,
    project_orthographic,
    smpl_joints,
    smpl_layer,
)
from pipeline.skeletons.layouts import get_layout
from tests.body_model_fixtures import model_arrays, write_model, write_model_dir


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    return write_model_dir(tmp_path_factory.mktemp("body_models"))


def _template_joints(kind, seed):
    arrays = model_arrays(kind, seed)
    return arrays["J_regressor"] @ arrays["v_template"], arrays["v_template"]


def test_chumpy_pickle_loads_to_plain_arrays(model_dir):
    data = load_model_data(model_dir / "smpl" / "SMPL_NEUTRAL.pkl", "smpl")
    expected = model_arrays("smpl", 0)
    assert data["shapedirs"].shape == (6890, 3, 10) and data["posedirs"].shape == (6890, 3, 207)
    assert data["J_regressor"].shape == (24, 6890) and isinstance(data["J_regressor"], np.ndarray)
    for key in expected:
        np.testing.assert_array_equal(data[key], expected[key])


def test_smpl_zero_pose_gives_template_joints(model_dir):
    layer = smpl_layer(str(model_file(model_dir, "smpl")), "neutral")
    zeros = np.zeros((3, 3)), np.zeros((3, 69)), np.zeros((3, 10))
    joints = smpl_joints(layer, *zeros)
    template, _ = _template_joints("smpl", 0)
    assert joints.shape == (3, 24, 3)
    np.testing.assert_allclose(joints, np.broadcast_to(template, joints.shape), atol=1e-5)


def test_smpl_global_rotation_rotates_about_the_root(model_dir):
    layer = smpl_layer(str(model_file(model_dir, "smpl")), "neutral")
    rotvec = np.array([[0.0, 0.0, np.pi / 2], [0.3, -0.2, 0.1]])
    joints = smpl_joints(layer, rotvec, np.zeros((2, 69)), np.zeros((2, 10)))
    template, _ = _template_joints("smpl", 0)
    for t, r in enumerate(Rotation.from_rotvec(rotvec).as_matrix()):
        np.testing.assert_allclose(joints[t], (template - template[0]) @ r.T + template[0], atol=1e-5)


def test_mano_zero_pose_gives_template_joints_and_tips_in_mano21_order(model_dir):
    layer = mano_layer(str(model_file(model_dir, "mano", side="right")), True, True)
    joints = mano_joints(layer, np.zeros((2, 3)), np.zeros((2, 45)), np.zeros((2, 10)))
    template, verts = _template_joints("mano", 1)
    native = np.concatenate([template, verts[list(MANO_TIP_VERTICES.values())]])
    assert joints.shape == (2, 21, 3)
    np.testing.assert_allclose(joints[0], native[list(MANO_TO_MANO21)], atol=1e-5)
    assert MANO_TO_MANO21 == (0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20)
    hand = get_layout("mano21")
    np.testing.assert_allclose(joints[0, hand.index("thumb4")], verts[744], atol=1e-5)
    np.testing.assert_allclose(joints[0, hand.index("pinky4")], verts[671], atol=1e-5)


def test_each_hand_uses_its_own_side(model_dir):
    params = {
        "left_hand_pose": np.zeros((2, 48), np.float32),  # FrankMocap layout: global orientation first
        "right_hand_global_orient": np.zeros((2, 3), np.float32),
        "right_hand_pose": np.zeros((2, 45), np.float32),
        "right_hand_valid": np.array([1, 0], np.float32),
    }
    lifted = lift(params, model_dir)
    assert lifted.layout == "hands42" and lifted.joints_3d.shape == (2, 42, 3)
    for side, seed, half in (("left", 2, slice(0, 21)), ("right", 1, slice(21, 42))):
        template, verts = _template_joints("mano", seed)
        native = np.concatenate([template, verts[list(MANO_TIP_VERTICES.values())]])[list(MANO_TO_MANO21)]
        np.testing.assert_allclose(lifted.joints_3d[0, half], native, atol=1e-5, err_msg=side)
    assert np.isnan(lifted.joints_3d[1, 21:]).all() and (lifted.joints_2d[1, 21:, 2] == 0).all()
    assert (lifted.joints_2d[:, :21, 2] == 1).all()


def test_lift_smpl_projects_with_the_weak_perspective_camera(model_dir):
    n = 3
    params = {
        "smpl_pose": np.zeros((n, 72), np.float32),
        "smpl_betas": np.zeros(10, np.float32),
        "smpl_camera": np.array([[2.0, 0.5, -1.0]] * n, np.float32),
    }
    lifted = lift(params, model_dir)
    template, _ = _template_joints("smpl", 0)
    assert lifted.layout == "smpl24"
    np.testing.assert_allclose(lifted.joints_2d[..., :2], np.broadcast_to(2.0 * (template[:, :2] + [0.5, -1.0]), (n, 24, 2)), atol=1e-4)
    assert (lifted.joints_2d[..., 2] == 1).all()


def test_project_marks_invalid_frames_and_non_finite_joints():
    joints = np.ones((2, 3, 3))
    joints[0, 1] = np.nan
    out = project_orthographic(joints, valid=np.array([True, False]))
    assert out[0, 0, 2] == 1 and out[0, 1, 2] == 0 and np.isnan(out[0, 1, :2]).all()
    assert (out[1, :, 2] == 0).all()


def test_normalise_3d_is_canonical_and_invariant():
    layout = get_layout("penn13")
    rng = np.random.default_rng(0)
    joints = rng.normal(0, 1, (4, 13, 3))
    out = normalise_3d(joints, layout)
    root = out[:, list(layout.root)].mean(axis=1)
    up = out[:, list(layout.scale[0])].mean(axis=1) - out[:, list(layout.scale[1])].mean(axis=1)
    lateral = out[:, list(layout.lateral[0])].mean(axis=1) - out[:, list(layout.lateral[1])].mean(axis=1)
    np.testing.assert_allclose(root, 0, atol=1e-6)
    np.testing.assert_allclose(up, np.tile([0, 1, 0], (4, 1)), atol=1e-6)
    np.testing.assert_allclose(lateral[:, 2], 0, atol=1e-6)
    assert (lateral[:, 0] > 0).all()
    moved = 3.0 * joints @ Rotation.from_rotvec([0.4, -1.0, 2.0]).as_matrix().T + [5.0, -2.0, 1.0]
    np.testing.assert_allclose(normalise_3d(moved, layout), out, atol=1e-5)
    joints[1, layout.root[0]] = np.nan
    assert np.isnan(normalise_3d(joints, layout)[1]).all()


def test_missing_model_file_says_what_and_where(tmp_path):
    with pytest.raises(BodyModelError, match=r"SMPL_NEUTRAL\.pkl.*https://smpl\.is\.tue\.mpg\.de"):
        model_file(tmp_path, "smpl")
    with pytest.raises(BodyModelError, match=r"MANO_LEFT\.pkl.*https://mano\.is\.tue\.mpg\.de"):
        lift({"left_hand_pose": np.zeros((1, 48), np.float32)}, tmp_path)


class _RunsCode:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


class _Evals:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


@pytest.mark.parametrize("payload", ["system", "eval", "numpy"])
def test_code_running_pickles_are_refused(tmp_path, payload):
    target = tmp_path / "pwned"
    obj = {"system": _RunsCode(target), "eval": _Evals(), "numpy": np.load}[payload]
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(pickle.dumps({"v_template": obj}, protocol=2))
    with pytest.raises(BodyModelError, match="not allowed"):
        safe_load_pickle(path)
    assert not target.exists()


def test_malformed_model_files_name_the_file_and_key(tmp_path):
    arrays = model_arrays("mano", 3)
    del arrays["hands_mean"]
    path = write_model(tmp_path / "MANO_RIGHT.npz", arrays, style="npz")
    with pytest.raises(BodyModelError, match=r"MANO_RIGHT\.npz.*hands_mean"):
        load_model_data(path, "mano")
    arrays = model_arrays("smpl", 3)
    arrays["weights"] = arrays["weights"][:, :20]  # a new array, the cached one is untouched
    path = write_model(tmp_path / "SMPL_MALE.pkl", arrays)
    with pytest.raises(BodyModelError, match=r"SMPL_MALE\.pkl: weights"):
        load_model_data(path, "smpl")


def test_left_shape_basis_is_mirrored_when_it_copies_the_right_one(tmp_path):
    right = model_arrays("mano", 4)
    write_model(tmp_path / "MANO_RIGHT.npz", right, style="npz")
    write_model(tmp_path / "MANO_LEFT.npz", right, style="npz")
    layer = mano_layer(str(tmp_path / "MANO_LEFT.npz"), False, True)
    np.testing.assert_allclose(layer.shapedirs.numpy().reshape(778, 3, 10)[:, 0], -right["shapedirs"][:, 0], rtol=1e-6)
