"""Layout conversion: named joints land on the right joints, by the person's side (Penn Action's labels name the
person's right side 'left', measured on the real labels below); derived joints carry their confidence."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.skeletons.convert import ConversionError, can_convert, conversion, convert_joints, convert_points
from pipeline.skeletons.layouts import get_layout


def _joints(layout: str, t: int = 2) -> np.ndarray:
    """(t, K, 3): joint k at x = 10 k + frame, y = 100 + k, confidence 0.5 + k / (2 K)."""
    k = get_layout(layout).n_joints
    out = np.zeros((t, k, 3), np.float32)
    out[..., 0] = 10 * np.arange(k)[None] + np.arange(t)[:, None]
    out[..., 1] = 100 + np.arange(k)[None]
    out[..., 2] = 0.5 + np.arange(k)[None] / (2 * k)
    return out


def _at(joints: np.ndarray, layout: str, name: str) -> np.ndarray:
    return joints[:, get_layout(layout).index(name)]


@pytest.mark.parametrize("src", ["blazepose33", "body25"])
def test_coco17_takes_each_named_joint_from_the_same_side(src):
    joints = _joints(src)
    out = convert_joints(joints, src, "coco17")
    assert out.shape == (2, 17, 3)
    for name in get_layout("coco17").joints:  # all three layouts name the person's own side: left stays left
        np.testing.assert_array_equal(_at(out, "coco17", name), _at(joints, src, name))


@pytest.mark.parametrize("src", ["blazepose33", "body25", "coco17"])
def test_penn13_takes_the_person_s_left_for_penn_s_right_named_columns(src):
    """Penn Action's 'l_' columns hold the person's right side (see the realdata test below): the person's left
    shoulder of any other layout goes to Penn's column named 'r_shoulder', and so on for every side joint."""
    joints = _joints(src)
    out = convert_joints(joints, src, "penn13")
    assert out.shape == (2, 13, 3)
    for part in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle"):
        np.testing.assert_array_equal(_at(out, "penn13", f"r_{part}"), _at(joints, src, f"l_{part}"))
        np.testing.assert_array_equal(_at(out, "penn13", f"l_{part}"), _at(joints, src, f"r_{part}"))


def test_penn_head_is_the_confidence_weighted_mean_of_the_ears_with_the_best_confidence():
    joints = _joints("blazepose33", t=4)
    left, right, nose = (get_layout("blazepose33").index(n) for n in ("l_ear", "r_ear", "nose"))
    joints[:, left, :2], joints[:, right, :2], joints[:, nose, :2] = (10, 50), (30, 70), (99, 99)
    joints[:, left, 2], joints[:, right, 2] = [0.9, 0.9, 0.0, 0.0], [0.3, 0.0, 0.6, 0.0]
    joints[1, right, :2] = np.nan  # an unseen ear may have no coordinates at all
    joints[:, nose, 2] = [0.8, 0.8, 0.8, 0.0]
    head = _at(convert_joints(joints, "blazepose33", "penn13"), "penn13", "head")
    np.testing.assert_allclose(head[0], [(0.9 * 10 + 0.3 * 30) / 1.2, (0.9 * 50 + 0.3 * 70) / 1.2, 0.9], rtol=1e-6)
    np.testing.assert_allclose(head[1], [10, 50, 0.9])  # one ear seen: that ear
    np.testing.assert_allclose(head[2], [30, 70, 0.6])
    frame = joints[3].copy()
    frame[[left, right, nose], 2] = 0.0
    assert np.isnan(head[3, :2]).all() and head[3, 2] == 0.0  # nothing seen: missing, not made up
    nose_only = joints[3:4].copy()
    nose_only[0, nose, 2] = 0.7
    np.testing.assert_allclose(_at(convert_joints(nose_only, "blazepose33", "penn13"), "penn13", "head")[0],
                               [99, 99, 0.7])  # neither ear: the nose


def test_a_joint_both_layouts_have_is_copied_with_its_confidence_even_when_unseen():
    joints = _joints("coco17")
    joints[0, get_layout("coco17").index("l_wrist")] = (5, 6, 0.0)
    out = convert_joints(joints, "coco17", "penn13")
    np.testing.assert_array_equal(_at(out, "penn13", "r_wrist")[0], [5, 6, 0])


def test_missing_frames_stay_missing():
    joints = np.full((3, 33, 3), np.nan, np.float32)
    joints[..., 2] = 0.0
    out = convert_joints(joints, "blazepose33", "penn13")
    assert (out[..., 2] == 0).all() and np.isnan(out[..., :2]).all()


def test_identity_and_3d_points():
    joints = _joints("penn13")
    np.testing.assert_array_equal(convert_joints(joints, "penn13", "penn13"), joints)
    points = np.random.default_rng(0).normal(size=(3, 24, 3)).astype(np.float32)
    out = convert_points(points, "smpl24", "penn13")
    np.testing.assert_array_equal(_at(out, "penn13", "head"), _at(points, "smpl24", "head"))
    np.testing.assert_array_equal(_at(out, "penn13", "r_knee"), _at(points, "smpl24", "l_knee"))
    body = np.random.default_rng(1).normal(size=(2, 25, 3)).astype(np.float32)
    body[1, get_layout("body25").index("r_ear")] = np.nan
    head = convert_points(body, "body25", "penn13")[:, 0]
    ears = body[:, [get_layout("body25").index("l_ear"), get_layout("body25").index("r_ear")]]
    np.testing.assert_allclose(head[0], ears[0].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(head[1], ears[1, 0])


def test_impossible_conversions_name_both_layouts_and_the_joints():
    assert can_convert("blazepose33", "penn13") and not can_convert("penn13", "coco17")
    with pytest.raises(ConversionError, match=r"penn13 joints to coco17: penn13 has no nose, l_eye"):
        conversion("penn13", "coco17")
    with pytest.raises(ConversionError, match=r"\(\.\.\., 33, 3\)"):
        convert_joints(np.zeros((2, 13, 3)), "blazepose33", "penn13")


@pytest.mark.realdata
def test_penn_action_labels_name_the_person_s_right_side_left(shared_data):
    """What `swapped_sides` rests on: with the person facing the camera ('front' views), the column named
    l_shoulder lies left of r_shoulder in the image, i.e. on the person's right; with the back to the camera,
    right of it. Jumping jacks, squats and bench presses: no turning within a clip."""
    import pandas as pd

    from pipeline.datasets.penn_action import read_labels

    root = shared_data / "penn_action"
    table = pd.read_csv(root / "index.csv", dtype={"video_id": str})
    penn = get_layout("penn13")
    assert penn.swapped_sides
    pairs = [(penn.index(f"l_{part}"), penn.index(f"r_{part}")) for part in ("shoulder", "hip")]
    for view, expect_left_of in (("front", True), ("back", False)):
        rows = table[table.action.isin(["jumping_jacks", "squat", "bench_press"]) & (table.pose_view == view)]
        left_of = seen = 0
        for video in rows.video_id[:12]:
            lab = read_labels(root / "labels" / f"{video}.mat")
            for left, right in pairs:
                both = lab.visibility[:, left].astype(bool) & lab.visibility[:, right].astype(bool)
                left_of += int((lab.x[both, left] < lab.x[both, right]).sum())
                seen += int(both.sum())
        assert seen > 500, (view, seen)
        share = left_of / seen
        assert share > 0.95 if expect_left_of else share < 0.05, (view, share)
