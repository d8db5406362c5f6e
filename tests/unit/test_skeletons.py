"""Skeleton layouts against the official joint orders, and the invariants every layout must keep."""

import pytest

from pipeline.skeletons.layouts import LAYOUTS, get_layout

# Official orders, written out independently of the module under test.
PENN_ORDER = ["head", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow", "l_wrist", "r_wrist",
              "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle"]
COCO_ORDER = ["nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow",
              "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle"]
# pycocotools' person category `skeleton`, 1-based
COCO_SKELETON = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9],
                 [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]]
BODY25_ORDER = ["nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist", "mid_hip",
                "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear",
                "l_big_toe", "l_small_toe", "l_heel", "r_big_toe", "r_small_toe", "r_heel"]
# OpenPose's POSE_BODY_25_PAIRS_RENDER_GPU
BODY25_PAIRS = [1, 8, 1, 2, 1, 5, 2, 3, 3, 4, 5, 6, 6, 7, 8, 9, 9, 10, 10, 11, 8, 12, 12, 13, 13, 14, 1, 0, 0, 15,
                15, 17, 0, 16, 16, 18, 14, 19, 19, 20, 14, 21, 11, 22, 22, 23, 11, 24]
SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
HAND_ORDER = ["wrist"] + [f"{f}{i}" for f in ("thumb", "index", "middle", "ring", "pinky") for i in range(1, 5)]


def _unordered(pairs):
    return {frozenset(p) for p in pairs}


def test_official_joint_orders():
    assert list(get_layout("penn13").joints) == PENN_ORDER
    assert list(get_layout("coco17").joints) == COCO_ORDER
    assert list(get_layout("body25").joints) == BODY25_ORDER
    assert get_layout("smpl24").n_joints == 24
    assert list(get_layout("mano21").joints) == HAND_ORDER
    assert list(get_layout("hands42").joints) == [f"l_{j}" for j in HAND_ORDER] + [f"r_{j}" for j in HAND_ORDER]


def test_official_limbs():
    coco = get_layout("coco17")
    assert _unordered(coco.limbs) == _unordered((a - 1, b - 1) for a, b in COCO_SKELETON)
    body25 = get_layout("body25")
    assert _unordered(body25.limbs) == _unordered(zip(BODY25_PAIRS[::2], BODY25_PAIRS[1::2]))
    smpl = get_layout("smpl24")
    assert _unordered(smpl.limbs) == _unordered((p, c) for c, p in enumerate(SMPL_PARENTS) if p >= 0)
    hand = get_layout("mano21")
    assert hand.n_limbs == 20
    assert all(hand.joints[a] == "wrist" or hand.joints[a][:-1] == hand.joints[b][:-1] for a, b in hand.limbs)


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_limbs_are_valid_and_unique(name):
    layout = get_layout(name)
    assert len(set(layout.joints)) == layout.n_joints
    for a, b in layout.limbs:
        assert 0 <= a < layout.n_joints and 0 <= b < layout.n_joints and a != b
    assert len(_unordered(layout.limbs)) == layout.n_limbs
    assert layout.n_channels == layout.n_joints + layout.n_limbs == len(layout.channel_names)
    for group in (layout.root, *layout.scale, *layout.lateral):
        assert group and all(0 <= j < layout.n_joints for j in group)


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_flip_permutations_are_involutions(name):
    layout = get_layout(name)
    for perm in (layout.joint_flip_permutation, layout.channel_flip_permutation):
        assert sorted(perm) == list(range(len(perm)))
        assert [perm[p] for p in perm] == list(range(len(perm)))


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_flip_swaps_left_and_right_names(name):
    layout = get_layout(name)
    for k, j in enumerate(layout.joint_flip_permutation):
        a, b = layout.joints[k], layout.joints[j]
        mirrored = {"l_": "r_", "r_": "l_"}.get(a[:2], a[:2]) + a[2:]
        assert b == mirrored
    perm = layout.channel_flip_permutation
    for i, (a, b) in enumerate(layout.limbs):
        fa, fb = layout.joint_flip_permutation[a], layout.joint_flip_permutation[b]
        assert frozenset(layout.limbs[perm[layout.n_joints + i] - layout.n_joints]) == frozenset((fa, fb))


def test_penn_flip_pairs():
    penn = get_layout("penn13")
    names = {(penn.joints[a], penn.joints[b]) for a, b in penn.flip_pairs}
    assert names == {(f"l_{j}", f"r_{j}") for j in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")}
    assert penn.joint_flip_permutation[penn.index("head")] == penn.index("head")


def test_one_hand_has_no_mirror_and_two_hands_swap():
    assert get_layout("mano21").joint_flip_permutation == tuple(range(21))
    hands = get_layout("hands42")
    assert hands.joint_flip_permutation[:21] == tuple(range(21, 42))


def test_unknown_layout_names_the_known_ones():
    with pytest.raises(KeyError, match="penn13"):
        get_layout("penn14")
