"""FrameInputs: keypoints and features of one method concatenated per frame, sized from the stored shapes."""

import numpy as np
import pytest
import torch

from model.batch import collate
from model.inputs.coordinates import SkeletonAugmentParams
from model.inputs.frame_inputs import FrameInputs
from model.method import InputSpec
from tests.repo_params import repo_params


def _items(lengths, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for n in lengths:
        joints = np.concatenate([rng.uniform(0, 100, (n, 13, 2)), np.ones((n, 13, 1))], axis=-1)
        out.append({"joints_2d": joints, "feature": rng.normal(3.0, 5.0, (n, 6))})
    return out


def test_width_and_order_follow_the_inputs():
    spec = InputSpec({"joints_2d": (13, 3), "feature": (6,)}, "penn13")
    both = FrameInputs(("joints_2d", "feature"), spec, "sequence", True, "Test")
    skeleton = FrameInputs(("joints_2d",), spec, "sequence", True, "Test")
    assert both.dim == skeleton.dim + 6 and skeleton.dim == skeleton.coords["joints_2d"].dim
    batch = collate(_items([5, 7]))
    streams = both.streams(batch)
    assert set(streams) == {"joints_2d", "joints_2d.conf", "feature"}
    x = both.features(streams, repo_params("masa.augment", SkeletonAugmentParams), None)
    assert x.shape == (2, 7, both.dim)
    torch.testing.assert_close(x[..., : skeleton.dim], skeleton.features(skeleton.streams(batch), repo_params("masa.augment", SkeletonAugmentParams), None))
    features = x[0, :5, skeleton.dim:]  # layer-normalised per frame, no learned parameters
    torch.testing.assert_close(features.mean(-1), torch.zeros(5), atol=1e-5, rtol=0)
    assert not list(both.parameters())


def test_augmentation_changes_skeletons_only_with_a_generator():
    spec = InputSpec({"joints_2d": (13, 3)}, "penn13")
    inputs = FrameInputs(("joints_2d",), spec, "sequence", True, "Test")
    streams = inputs.streams(collate(_items([8])))
    always = repo_params("masa.augment", SkeletonAugmentParams, flip_p=0.0, angle_p=0.0, translate_p=1.0, noise_p=0.0)
    plain = inputs.features(streams, always, None)
    moved = inputs.features(streams, always, torch.Generator().manual_seed(0))
    assert not torch.allclose(plain, moved)


def test_keypoints_without_a_layout_are_refused():
    with pytest.raises(ValueError, match="Test: keypoint input 'joints_2d' needs a skeleton layout"):
        FrameInputs(("joints_2d",), InputSpec({"joints_2d": (13, 3)}, None), "sequence", True, "Test")


def test_artifact_arrays_map_inputs_to_their_artifacts_and_refuse_unknown_names():
    from model.inputs.frame_inputs import artifact_arrays

    assert artifact_arrays(("joints_2d", "feature"), "Test") == (("keypoints", "joints_2d"), ("dino", "feature"))
    with pytest.raises(ValueError, match="Test: inputs must be a non-empty list"):
        artifact_arrays(("rgb",), "Test")
    with pytest.raises(ValueError, match="Test: inputs must be a non-empty list"):
        artifact_arrays((), "Test")
