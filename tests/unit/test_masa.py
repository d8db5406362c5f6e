"""MASA specifics: clip-level options, the clip token in U, and where the clustering gradient goes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.batch import collate
from model.inputs.coordinates import SkeletonAugmentParams
from model.losses.clip import TrajectoryDecoder
from model.method import InputSpec, Progress
from model.methods.masa import Masa
from pipeline.skeletons.layouts import get_layout
from tests.repo_params import repo_params
from tests.tiny_models import tiny_params

SPEC = InputSpec({"joints_2d": (13, 3)}, "penn13")
# The paper's formulation (params.yaml's masa header): every clip-level addition off, so each test turns on
# only the option it is about.
PAPER = dict(clip_token=False, decode_weight=0.0, decode_mirror=False, cross_weight=0.0, relate_weight=0.0,
             clip_scale=1.0)


def masa_params(**options):
    return tiny_params("masa", **{**PAPER, **options})


def _batch(lengths=(12, 20, 7)):
    rng = np.random.default_rng(0)
    return collate([{"joints_2d": np.concatenate([rng.normal(80, 15, (n, 13, 2)), np.ones((n, 13, 1))], -1)}
                    for n in lengths])


@pytest.mark.parametrize("options", [
    {},
    {"loss_combination": "printed"},
    {"cluster_level": "clip"},
    {"clip_token": True, "cluster_level": "token"},
    {"clip_token": True, "contrast_weight": 1.0, "contrast_on": "token"},
    {"contrast_weight": 1.0, "contrast_on": "frames", "contrast_head": False, "contrast_per_frame": True},
    {"clip_token": True, "decode_weight": 1.0},
    {"clip_token": True, "cross_weight": 1.0},
    {"cross_weight": 1.0},
    {"shared_trim": False, "augment": repo_params("masa.augment", SkeletonAugmentParams, rotate_p=1.0, scale_p=1.0)},
])
def test_loss_variants_train(options):
    torch.manual_seed(0)
    model = Masa.build(masa_params(**options), SPEC)
    loss, scalars = model.loss(_batch(), torch.Generator().manual_seed(0), Progress(0, 0))
    loss.backward()
    assert torch.isfinite(loss)
    assert {"matching", "clustering"} <= set(scalars)
    assert all(p.grad is not None for n, p in model.named_parameters() if n.startswith("encoder."))


def test_clip_token_output_is_appended_to_every_frame():
    torch.manual_seed(0)
    model = Masa.build(masa_params(clip_token=True, cluster_level="token"), SPEC).eval()
    batch = _batch()
    with torch.no_grad():
        u = model.embed(batch)
    d = masa_params().d_model
    assert u.shape == (3, 20, 2 * d)
    clip = u[0, :12, d:]
    assert torch.allclose(clip, clip[:1].expand_as(clip))  # one clip vector per sequence
    assert torch.all(u[2, 7:] == 0)


@pytest.mark.parametrize("clip_token", [False, True])
def test_without_position_encoding_a_video_played_backwards_gets_its_embedding_reversed(clip_token):
    # no frame index reaches the encoder: attention over a set of frames places each by what it shows
    rng = np.random.default_rng(1)
    joints = np.concatenate([rng.normal(80, 15, (15, 13, 2)), np.ones((15, 13, 1))], -1)
    forward, backward = collate([{"joints_2d": joints}]), collate([{"joints_2d": joints[::-1].copy()}])
    d = masa_params().d_model
    for position_encoding in (False, True):
        torch.manual_seed(0)
        model = Masa.build(masa_params(position_encoding=position_encoding, clip_token=clip_token), SPEC).eval()
        with torch.no_grad():
            u, v = model.embed(forward)[0, :, :d], model.embed(backward)[0, :, :d]
        assert torch.allclose(v.flip(0), u, atol=1e-5) is not position_encoding


def test_clip_scale_weights_only_the_clip_part_of_the_embedding():
    torch.manual_seed(0)
    model = Masa.build(masa_params(clip_token=True), SPEC).eval()
    scaled = Masa.build(masa_params(clip_token=True, clip_scale=3.0), SPEC).eval()
    scaled.load_state_dict(model.state_dict())
    d = masa_params().d_model
    with torch.no_grad():
        u, v = model.embed(_batch()), scaled.embed(_batch())
    assert torch.allclose(v[..., :d], u[..., :d])
    assert torch.allclose(v[..., d:], 3.0 * u[..., d:])


def test_cross_video_loss_pairs_each_sequence_with_its_nearest_other():
    torch.manual_seed(0)
    model = Masa.build(masa_params(clip_token=True, cross_weight=1.0), SPEC)
    off = Masa.build(masa_params(clip_token=True), SPEC)
    off.load_state_dict(model.state_dict())
    loss, scalars = model.loss(_batch(), torch.Generator().manual_seed(0), Progress(0, 0))
    base, _ = off.loss(_batch(), torch.Generator().manual_seed(0), Progress(0, 0))
    assert 0 < scalars["cross"] <= 1
    assert torch.isclose(loss, base + scalars["cross"], atol=1e-5)
    one, one_scalars = model.loss(_batch((12,)), torch.Generator().manual_seed(0), Progress(0, 0))
    assert "cross" not in one_scalars  # a batch of one sequence has no partner


def test_relate_distils_dtw_between_training_sequences_into_the_clip_vectors():
    rng = np.random.default_rng(0)
    seqs = [{"joints_2d": np.concatenate([rng.normal(80, 15, (n, 13, 2)), np.ones((n, 13, 1))], -1)}
            for n in (12, 20, 7, 9)]
    mirrored = seqs[0]["joints_2d"].copy()
    mirrored[..., 0] = 200 - mirrored[..., 0]
    mirrored[:, :, :2] = mirrored[:, list(get_layout("penn13").joint_flip_permutation), :2]
    seqs.append({"joints_2d": mirrored})  # sequence 0 seen in a mirror: the same motion for the teacher
    torch.manual_seed(0)
    model = Masa.build(masa_params(clip_token=True, relate_weight=2.0), SPEC)
    model.prepare(seqs)
    d = model.teacher.distance
    assert d.shape == (5, 5) and torch.allclose(d, d.T)
    assert d[0, 4] < 1e-4 < d[0, 1]
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    batch = collate(seqs[:4], index=[0, 1, 2, 3])
    loss, scalars = model.loss(batch, gen(), Progress(0, 0))
    off = Masa.build(masa_params(clip_token=True), SPEC)
    off.load_state_dict(model.state_dict())
    base, _ = off.loss(batch, gen(), Progress(0, 0))
    assert scalars["relate"] > 0
    assert torch.isclose(loss, base + 2.0 * scalars["relate"], atol=1e-5)
    with pytest.raises(ValueError, match="positions"):
        model.loss(collate(seqs[:4]), gen(), Progress(0, 0))  # rows not known to be training sequences
    _, pair = model.loss(collate(seqs[:2], index=[0, 1]), gen(), Progress(0, 0))
    assert "relate" not in pair  # two sequences: a softmax over one other says nothing
    with pytest.raises(ValueError, match="clip_token"):
        Masa.build(masa_params(relate_weight=1.0), SPEC)
    with pytest.raises(ValueError, match="relate_max_sequences"):
        Masa.build(masa_params(clip_token=True, relate_weight=1.0, relate_max_sequences=4), SPEC).prepare(seqs)


def test_mirrored_decoding_scores_a_motion_and_its_mirror_image_alike():
    torch.manual_seed(0)
    perm = get_layout("penn13").joint_flip_permutation
    decoder = TrajectoryDecoder(8, 16, 13, 2, mirror=perm)
    plain = TrajectoryDecoder(8, 16, 13, 2)
    plain.load_state_dict(decoder.state_dict())
    clip, times = torch.randn(2, 8), torch.rand(2, 6)
    target, conf, mask = torch.randn(2, 6, 13, 2), torch.ones(2, 6, 13), torch.ones(2, 6, dtype=torch.bool)
    image = target[:, :, list(perm)].clone()
    image[..., 0] = -image[..., 0]
    assert torch.isclose(decoder.loss(clip, times, target, conf, mask), decoder.loss(clip, times, image, conf, mask))
    assert decoder.loss(clip, times, target, conf, mask) <= plain.loss(clip, times, target, conf, mask) + 1e-6
    assert not torch.isclose(plain.loss(clip, times, target, conf, mask), plain.loss(clip, times, image, conf, mask))


def test_token_options_need_the_clip_token():
    with pytest.raises(ValueError, match="clip_token"):
        Masa.build(masa_params(cluster_level="token"), SPEC)


def test_clustering_reaches_the_encoder_only_through_the_predictor_side():
    """With the matching term switched off, the projection's output Z only gets gradient as the predictor's
    input (H(Z)), never as the stop-gradient target: zeroing H's dependence on Z leaves Z without gradient."""
    torch.manual_seed(0)
    model = Masa.build(masa_params(matching_weight=0.0), SPEC)
    grabbed = {}

    def keep(_module, _inputs, output):
        output.retain_grad()
        grabbed.setdefault("z", []).append(output)

    model.projection.register_forward_hook(keep)
    model.predictor.register_forward_pre_hook(lambda _m, args: (args[0].detach(), *args[1:]))
    loss, _ = model.loss(_batch(), torch.Generator().manual_seed(0), Progress(0, 0))
    loss.backward()
    assert all(z.grad is None or torch.all(z.grad == 0) for z in grabbed["z"])
