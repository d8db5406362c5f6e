"""Skeleton layouts: joint names, limbs (bones), left/right pairs and normalisation joints.

Every channel count and model input size downstream is derived from these layouts (`len(layout.joints)`,
`layout.n_channels`), never written as a number.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True)
class Skeleton:
    """A named joint layout.

    `limbs` are (a, b) joint-index pairs; `root` is the joint (or joints, averaged) that 3D/2D
    normalisation centres on; `scale` is a pair of joints (or joint groups, averaged) whose distance
    normalises size, the direction from `scale[1]` to `scale[0]` being the skeleton's "up"; `lateral`
    is a pair of joint groups whose difference (`lateral[0]` minus `lateral[1]`) points across the
    skeleton (right to left), the second axis of a canonical frame. `swapped_sides` marks a layout whose
    l_/r_ names lie on the person's right/left (Penn Action's labels: see PENN13); layout conversion
    (`pipeline.skeletons.convert`) matches joints by the person's side, not by name.
    """

    name: str
    joints: tuple[str, ...]
    limbs: tuple[tuple[int, int], ...]
    root: tuple[int, ...]
    scale: tuple[tuple[int, ...], tuple[int, ...]]
    lateral: tuple[tuple[int, ...], tuple[int, ...]]
    swapped_sides: bool = False

    @property
    def n_joints(self) -> int:
        return len(self.joints)

    @property
    def n_limbs(self) -> int:
        return len(self.limbs)

    @property
    def n_channels(self) -> int:
        """Heatmap channels: joints then limbs."""
        return self.n_joints + self.n_limbs

    @property
    def channel_names(self) -> tuple[str, ...]:
        """Heatmap channel names: the joints, then each limb as "a-b"."""
        return self.joints + tuple(f"{self.joints[a]}-{self.joints[b]}" for a, b in self.limbs)

    def index(self, name: str) -> int:
        return self.joints.index(name)

    @cached_property
    def flip_pairs(self) -> tuple[tuple[int, int], ...]:
        """(left, right) joint-index pairs, matched by the l_/r_ (or left_/right_) name prefixes."""
        pairs = []
        for i, name in enumerate(self.joints):
            for left, right in (("l_", "r_"), ("left_", "right_")):
                if name.startswith(left):
                    other = right + name[len(left) :]
                    if other in self.joints:
                        pairs.append((i, self.joints.index(other)))
        return tuple(pairs)

    @cached_property
    def joint_flip_permutation(self) -> tuple[int, ...]:
        """perm[k] = the joint that joint k becomes under a horizontal flip."""
        perm = list(range(self.n_joints))
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return tuple(perm)

    @cached_property
    def channel_flip_permutation(self) -> tuple[int, ...]:
        """Permutation of heatmap channels (joints then limbs) under a horizontal flip.

        Flipped channel i holds the original channel perm[i]: joints swap with their mirror, limbs with
        the limb joining the mirrored joints.
        """
        jperm = self.joint_flip_permutation
        limb_index = {frozenset(limb): i for i, limb in enumerate(self.limbs)}
        perm = list(jperm)
        for a, b in self.limbs:
            mirrored = frozenset((jperm[a], jperm[b]))
            if mirrored not in limb_index:
                raise ValueError(f"{self.name}: limb {(a, b)} has no mirror limb")
            perm.append(self.n_joints + limb_index[mirrored])
        return tuple(perm)


def _limbs(joints: tuple[str, ...], pairs: list[tuple[str, str]]) -> tuple[tuple[int, int], ...]:
    return tuple((joints.index(a), joints.index(b)) for a, b in pairs)


def _layout(name, joints, limb_names, root, scale, lateral, swapped_sides=False) -> Skeleton:
    joints = tuple(joints)
    idx = joints.index

    def groups(pair):
        return (tuple(idx(j) for j in pair[0]), tuple(idx(j) for j in pair[1]))

    return Skeleton(
        name=name,
        joints=joints,
        limbs=_limbs(joints, limb_names),
        root=tuple(idx(j) for j in root),
        scale=groups(scale),
        lateral=groups(lateral),
        swapped_sides=swapped_sides,
    )


# Penn Action: the order of the official labels' x/y/visibility columns, named as the dataset names them.
# Measured on the labels (tests/unit/test_convert.py, realdata): in the jumping-jack, squat and bench-press
# clips filmed from the front (the person faces the camera; 186 clips, 16350 frames with both shoulders or
# both hips visible) 'l_shoulder' / 'l_hip' lie left of 'r_shoulder' / 'r_hip' in the image in 99.8% of
# frames, and in the 12 clips filmed from the back in none: the columns named left hold the person's RIGHT
# side. The names stay the dataset's; `swapped_sides` tells layout conversion so.
PENN13 = _layout(
    "penn13",
    ["head", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow", "l_wrist", "r_wrist",
     "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle"],
    [("head", "l_shoulder"), ("head", "r_shoulder"), ("l_shoulder", "r_shoulder"),
     ("l_shoulder", "l_elbow"), ("l_elbow", "l_wrist"), ("r_shoulder", "r_elbow"), ("r_elbow", "r_wrist"),
     ("l_shoulder", "l_hip"), ("r_shoulder", "r_hip"), ("l_hip", "r_hip"),
     ("l_hip", "l_knee"), ("l_knee", "l_ankle"), ("r_hip", "r_knee"), ("r_knee", "r_ankle")],
    root=["l_hip", "r_hip"],
    scale=(["l_shoulder", "r_shoulder"], ["l_hip", "r_hip"]),
    lateral=(["l_hip", "l_shoulder"], ["r_hip", "r_shoulder"]),
    swapped_sides=True,
)

# COCO keypoints in the annotation order; limbs are the dataset's official 19-pair `skeleton`.
COCO17 = _layout(
    "coco17",
    ["nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow",
     "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle"],
    [("l_ankle", "l_knee"), ("l_knee", "l_hip"), ("r_ankle", "r_knee"), ("r_knee", "r_hip"), ("l_hip", "r_hip"),
     ("l_shoulder", "l_hip"), ("r_shoulder", "r_hip"), ("l_shoulder", "r_shoulder"), ("l_shoulder", "l_elbow"),
     ("r_shoulder", "r_elbow"), ("l_elbow", "l_wrist"), ("r_elbow", "r_wrist"), ("l_eye", "r_eye"),
     ("nose", "l_eye"), ("nose", "r_eye"), ("l_eye", "l_ear"), ("r_eye", "r_ear"), ("l_ear", "l_shoulder"),
     ("r_ear", "r_shoulder")],
    root=["l_hip", "r_hip"],
    scale=(["l_shoulder", "r_shoulder"], ["l_hip", "r_hip"]),
    lateral=(["l_hip", "l_shoulder"], ["r_hip", "r_shoulder"]),
)

# OpenPose BODY_25, in OpenPose's keypoint order; limbs are the 24 pairs OpenPose renders.
BODY25 = _layout(
    "body25",
    ["nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist", "mid_hip",
     "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear",
     "l_big_toe", "l_small_toe", "l_heel", "r_big_toe", "r_small_toe", "r_heel"],
    [("neck", "nose"), ("neck", "r_shoulder"), ("r_shoulder", "r_elbow"), ("r_elbow", "r_wrist"),
     ("neck", "l_shoulder"), ("l_shoulder", "l_elbow"), ("l_elbow", "l_wrist"), ("neck", "mid_hip"),
     ("mid_hip", "r_hip"), ("r_hip", "r_knee"), ("r_knee", "r_ankle"), ("mid_hip", "l_hip"),
     ("l_hip", "l_knee"), ("l_knee", "l_ankle"), ("nose", "r_eye"), ("r_eye", "r_ear"), ("nose", "l_eye"),
     ("l_eye", "l_ear"), ("l_ankle", "l_big_toe"), ("l_big_toe", "l_small_toe"), ("l_ankle", "l_heel"),
     ("r_ankle", "r_big_toe"), ("r_big_toe", "r_small_toe"), ("r_ankle", "r_heel")],
    root=["mid_hip"],
    scale=(["neck"], ["mid_hip"]),
    lateral=(["l_hip", "l_shoulder"], ["r_hip", "r_shoulder"]),
)

# MediaPipe BlazePose's 33 landmarks in the model's output order (`mp.solutions.pose.PoseLandmark`), named
# by the person's side as MediaPipe names them (checked on a person facing the camera: 'l_shoulder' lies right
# of 'r_shoulder' in the image); limbs are MediaPipe's 35 `POSE_CONNECTIONS`.
BLAZEPOSE33 = _layout(
    "blazepose33",
    ["nose", "l_eye_inner", "l_eye", "l_eye_outer", "r_eye_inner", "r_eye", "r_eye_outer", "l_ear", "r_ear",
     "l_mouth", "r_mouth", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow", "l_wrist", "r_wrist",
     "l_pinky", "r_pinky", "l_index", "r_index", "l_thumb", "r_thumb", "l_hip", "r_hip", "l_knee", "r_knee",
     "l_ankle", "r_ankle", "l_heel", "r_heel", "l_foot_index", "r_foot_index"],
    [("nose", "l_eye_inner"), ("l_eye_inner", "l_eye"), ("l_eye", "l_eye_outer"), ("l_eye_outer", "l_ear"),
     ("nose", "r_eye_inner"), ("r_eye_inner", "r_eye"), ("r_eye", "r_eye_outer"), ("r_eye_outer", "r_ear"),
     ("l_mouth", "r_mouth"), ("l_shoulder", "r_shoulder"), ("l_shoulder", "l_elbow"), ("l_elbow", "l_wrist"),
     ("l_wrist", "l_pinky"), ("l_wrist", "l_index"), ("l_wrist", "l_thumb"), ("l_pinky", "l_index"),
     ("r_shoulder", "r_elbow"), ("r_elbow", "r_wrist"), ("r_wrist", "r_pinky"), ("r_wrist", "r_index"),
     ("r_wrist", "r_thumb"), ("r_pinky", "r_index"), ("l_shoulder", "l_hip"), ("r_shoulder", "r_hip"),
     ("l_hip", "r_hip"), ("l_hip", "l_knee"), ("r_hip", "r_knee"), ("l_knee", "l_ankle"), ("r_knee", "r_ankle"),
     ("l_ankle", "l_heel"), ("r_ankle", "r_heel"), ("l_heel", "l_foot_index"), ("r_heel", "r_foot_index"),
     ("l_ankle", "l_foot_index"), ("r_ankle", "r_foot_index")],
    root=["l_hip", "r_hip"],
    scale=(["l_shoulder", "r_shoulder"], ["l_hip", "r_hip"]),
    lateral=(["l_hip", "l_shoulder"], ["r_hip", "r_shoulder"]),
)

# SMPL's 24 joints in the model's kinematic order; limbs are the kinematic tree's 23 (parent, child) bones.
SMPL24 = _layout(
    "smpl24",
    ["pelvis", "l_hip", "r_hip", "spine1", "l_knee", "r_knee", "spine2", "l_ankle", "r_ankle", "spine3",
     "l_foot", "r_foot", "neck", "l_collar", "r_collar", "head", "l_shoulder", "r_shoulder", "l_elbow",
     "r_elbow", "l_wrist", "r_wrist", "l_hand", "r_hand"],
    [("pelvis", "l_hip"), ("pelvis", "r_hip"), ("pelvis", "spine1"), ("l_hip", "l_knee"), ("r_hip", "r_knee"),
     ("spine1", "spine2"), ("l_knee", "l_ankle"), ("r_knee", "r_ankle"), ("spine2", "spine3"),
     ("l_ankle", "l_foot"), ("r_ankle", "r_foot"), ("spine3", "neck"), ("spine3", "l_collar"),
     ("spine3", "r_collar"), ("neck", "head"), ("l_collar", "l_shoulder"), ("r_collar", "r_shoulder"),
     ("l_shoulder", "l_elbow"), ("r_shoulder", "r_elbow"), ("l_elbow", "l_wrist"), ("r_elbow", "r_wrist"),
     ("l_wrist", "l_hand"), ("r_wrist", "r_hand")],
    root=["pelvis"],
    scale=(["neck"], ["pelvis"]),
    lateral=(["l_hip", "l_shoulder"], ["r_hip", "r_shoulder"]),
)

# One hand, 21 joints: MANO's 16 (wrist + 3 per finger, in MANO's index/middle/pinky/ring/thumb order)
# reordered to the common OpenPose hand order, with fingertips (vertices 744, 320, 443, 554, 671) appended
# per finger: wrist, thumb1-4, index1-4, middle1-4, ring1-4, pinky1-4.
_FINGERS = ("thumb", "index", "middle", "ring", "pinky")
_HAND = ["wrist"] + [f"{f}{i}" for f in _FINGERS for i in range(1, 5)]
_HAND_BONES = [("wrist", f"{f}1") for f in _FINGERS] + [
    (f"{f}{i}", f"{f}{i + 1}") for f in _FINGERS for i in range(1, 4)
]
MANO21 = _layout(
    "mano21", _HAND, _HAND_BONES, root=["wrist"], scale=(["middle1"], ["wrist"]), lateral=(["index1"], ["pinky1"])
)

HANDS42 = _layout(
    "hands42",
    [f"l_{j}" for j in _HAND] + [f"r_{j}" for j in _HAND],
    [(f"l_{a}", f"l_{b}") for a, b in _HAND_BONES] + [(f"r_{a}", f"r_{b}") for a, b in _HAND_BONES],
    root=["l_wrist", "r_wrist"],
    scale=(["l_middle1", "r_middle1"], ["l_wrist", "r_wrist"]),
    lateral=(["l_wrist"], ["r_wrist"]),
)

LAYOUTS: dict[str, Skeleton] = {s.name: s for s in (PENN13, COCO17, BODY25, BLAZEPOSE33, SMPL24, MANO21, HANDS42)}


def get_layout(name: str) -> Skeleton:
    if name not in LAYOUTS:
        raise KeyError(f"unknown skeleton layout '{name}'; known: {sorted(LAYOUTS)}")
    return LAYOUTS[name]
