"""LA2DS's clip-level additions (model/methods/la2ds.py): the skeleton its heatmaps show, the clip token in the
exported embedding, the DTW teacher computed from the maps alone, the cross-video loss, and float16 batches."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from model.batch import collate
from model.inputs.skeleton import normalise
from model.method import InputSpec, Progress
from model.methods.la2ds import La2ds, heatmap_curves
from pipeline.heatmaps.raster_torch import render_torch
from pipeline.skeletons.layouts import get_layout
from tests.tiny_models import tiny_params

PENN = get_layout("penn13")
S = 30
BOX = torch.tensor([0.0, 0.0, 30.0, 30.0])  # one pixel per cell: cell (r, c) is centred on pixel (c + 0.5, r + 0.5)
SPEC = InputSpec({"heatmap": (PENN.n_channels, S, S)}, "penn13")
STANDING = torch.tensor([[15, 4], [12, 8], [18, 8], [10, 12], [20, 12], [9, 16], [21, 16], [13, 17], [17, 17],
                         [13, 22], [17, 22], [13, 27], [17, 27]], dtype=torch.float32)


def _motion(frames: int, kind: int, seed: int) -> torch.Tensor:
    """(T, K, 3) joints in pixels: a standing person whose arms swing (kind 0) or who squats (kind 1)."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.linspace(0, 1, frames)[:, None]
    xy = STANDING.expand(frames, -1, -1).clone()
    if kind == 0:
        xy[:, 5:7, 1] -= 6 * torch.sin(np.pi * t)  # wrists rise and fall
    else:
        xy[:, :11, 1] += 4 * torch.sin(np.pi * t)  # everything above the knees goes down and up
    xy = xy + 0.5 + 0.1 * torch.randn(frames, PENN.n_joints, 2, generator=gen)
    return torch.cat((xy, torch.ones(frames, PENN.n_joints, 1)), -1)


def _maps(joints: torch.Tensor) -> np.ndarray:
    return render_torch(joints, PENN.limbs, BOX, S, 1.0).numpy()


def _mirror(joints: torch.Tensor) -> torch.Tensor:
    out = joints[:, list(PENN.joint_flip_permutation)].clone()
    out[..., 0] = S - out[..., 0]
    return out


def test_heatmap_curves_are_the_normalised_skeleton_the_maps_show():
    joints = _motion(20, 0, seed=0)
    curves = heatmap_curves(_maps(joints), PENN, frames=8)
    picked = joints[np.linspace(0, 19, 8).round().astype(int)]
    cells = picked[None, :, :, :2] - 0.5  # pixels -> cell coordinates
    confident, real = torch.ones(1, 8, PENN.n_joints), torch.ones(1, 8, dtype=torch.bool)
    expected = normalise(cells, confident, real, PENN, "sequence")[0]
    assert curves.shape == (8, PENN.n_joints, 2)
    torch.testing.assert_close(curves, expected, atol=0.02, rtol=0)  # centroids of well-inside blobs are exact


def test_heatmap_curves_mark_a_missing_joint_as_zero():
    joints = _motion(6, 0, seed=0)
    joints[:, 3, 2] = 0  # the left elbow is never seen: its channel is empty
    curves = heatmap_curves(_maps(joints), PENN, frames=6)
    assert torch.all(curves[:, 3] == 0) and torch.all(curves[:, 4].abs().sum(-1) > 0)


def test_clip_token_appends_one_scaled_vector_per_sequence_and_leaves_the_frame_part():
    torch.manual_seed(0)
    model = La2ds.build(tiny_params("la2ds", clip_token=True, clip_scale=3.0, relate_weight=0.0), SPEC).eval()
    batch = collate([{"heatmap": _maps(_motion(n, 0, seed=n))} for n in (9, 5)])
    with torch.no_grad():
        u = model.embed(batch)
        frames, clip = model.encoder.forward_clip(batch.arrays["heatmap"], batch.mask)
    d = model.params.d_model
    assert u.shape == (2, 9, 2 * d)
    torch.testing.assert_close(u[1, :5, d:], 3.0 * clip[1].expand(5, d))
    assert torch.all(u[1, 5:] == 0)  # padding
    torch.testing.assert_close(u[..., :d], model.head.single(frames, batch.mask))
    off = La2ds.build(tiny_params("la2ds", clip_token=False, relate_weight=0.0), SPEC)
    assert off.embed(batch).shape == (2, 9, d) and off.encoder.clip_token is None


@pytest.mark.parametrize("clip_token", [False, True])
def test_without_position_encoding_a_video_played_backwards_gets_its_embedding_reversed(clip_token):
    # no frame index reaches the temporal transformer or the alignment head: each frame is placed by its maps
    maps = _maps(_motion(12, 0, seed=3))
    forward, backward = collate([{"heatmap": maps}]), collate([{"heatmap": maps[::-1].copy()}])
    for position_encoding in (False, True):
        torch.manual_seed(0)
        params = tiny_params("la2ds", clip_token=clip_token, relate_weight=0.0, position_encoding=position_encoding)
        model = La2ds.build(params, SPEC).eval()
        d = model.params.d_model
        with torch.no_grad():
            u, v = model.embed(forward)[0, :, :d], model.embed(backward)[0, :, :d]
        assert torch.allclose(v.flip(0), u, atol=1e-5) is not position_encoding
        assert (model.encoder.temporal_pe is None) is not position_encoding
        assert (model.head.pe is None) is not position_encoding


def test_by_phase_a_video_played_at_half_speed_embeds_like_itself():
    # every frame shown twice: by index, frame i of the video and frame 2i of the slow one lie far apart; by
    # phase both sit at (nearly) the same fraction of their clips, so their embeddings nearly agree
    maps = _maps(_motion(12, 0, seed=5))
    fast, slow = collate([{"heatmap": maps}]), collate([{"heatmap": np.repeat(maps, 2, axis=0)}])
    gaps = {}
    for positions in ("index", "phase"):
        torch.manual_seed(0)
        model = La2ds.build(tiny_params("la2ds", clip_token=False, relate_weight=0.0, positions=positions,
                                        max_len=16), SPEC).eval()
        with torch.no_grad():
            u, v = model.embed(fast)[0], model.embed(slow)[0, ::2]
        gaps[positions] = float((u - v).norm(dim=-1).mean() / u.norm(dim=-1).mean())
    assert gaps["phase"] < 0.5 * gaps["index"], gaps


def test_relate_distils_dtw_between_the_skeletons_the_heatmaps_show():
    seqs = [{"heatmap": _maps(_motion(n, kind, seed=n))} for n, kind in ((12, 0), (16, 0), (10, 1), (14, 1))]
    seqs.append({"heatmap": _maps(_mirror(_motion(12, 0, seed=12)))})  # sequence 0 in a mirror
    torch.manual_seed(0)
    model = La2ds.build(tiny_params("la2ds", clip_token=True, relate_weight=2.0, relate_frames=8), SPEC)
    model.prepare(seqs)
    d = model.teacher.distance
    assert d.shape == (5, 5) and torch.allclose(d, d.T)
    assert d[0, 4] < 0.05 * d[0, 2]  # the mirror image is the same motion for the teacher
    assert d[0, 1] < d[0, 2] and d[2, 3] < d[2, 1]  # same kind of motion: closer
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    batch = collate(seqs[:4], index=[0, 1, 2, 3])
    loss, scalars = model.loss(batch, gen(), Progress(0, 0))
    off = La2ds.build(tiny_params("la2ds", clip_token=True, relate_weight=0.0), SPEC)
    off.load_state_dict(model.state_dict())
    base, base_scalars = off.loss(batch, gen(), Progress(0, 0))
    assert scalars["relate"] > 0 and "relate" not in base_scalars
    assert torch.isclose(loss, base + 2.0 * scalars["relate"], atol=1e-5)
    loss.backward()
    assert model.encoder.clip_token.grad is not None and model.encoder.clip_token.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="positions"):
        model.loss(collate(seqs[:4]), gen(), Progress(0, 0))  # rows not known to be training sequences
    _, pair = model.loss(collate(seqs[:2], index=[0, 1]), gen(), Progress(0, 0))
    assert "relate" not in pair  # two sequences: a softmax over one other says nothing
    with pytest.raises(ValueError, match="clip_token"):
        La2ds.build(tiny_params("la2ds", clip_token=False, relate_weight=1.0), SPEC)
    with pytest.raises(ValueError, match="relate_max_sequences"):
        small = tiny_params("la2ds", clip_token=True, relate_weight=1.0, relate_max_sequences=4)
        La2ds.build(small, SPEC).prepare(seqs)


def test_without_the_additions_la2ds_prepares_nothing_and_trains_the_paper_loss():
    model = La2ds.build(tiny_params("la2ds", clip_token=False, relate_weight=0.0), SPEC)
    model.prepare([{"heatmap": np.zeros((3, PENN.n_channels, S, S), np.float32)}])  # not read: relate is off
    assert model.teacher.distance is None
    batch = collate([{"heatmap": _maps(_motion(n, 0, seed=n))} for n in (9, 7, 8)], index=[0, 1, 2])
    _, scalars = model.loss(batch, torch.Generator().manual_seed(0), Progress(0, 0))
    assert set(scalars) == {"matching"}


@pytest.mark.parametrize("clip_token", [True, False])
def test_cross_adds_cycle_back_between_each_sequence_and_its_nearest_other(clip_token):
    seqs = [{"heatmap": _maps(_motion(n, kind, seed=n))} for n, kind in ((12, 0), (16, 0), (10, 1))]
    batch = collate(seqs, index=[0, 1, 2])
    torch.manual_seed(0)
    model = La2ds.build(tiny_params("la2ds", clip_token=clip_token, relate_weight=0.0, cross_weight=0.5), SPEC)
    off = La2ds.build(tiny_params("la2ds", clip_token=clip_token, relate_weight=0.0, cross_weight=0.0), SPEC)
    off.load_state_dict(model.state_dict())
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    loss, scalars = model.loss(batch, gen(), Progress(0, 0))
    base, base_scalars = off.loss(batch, gen(), Progress(0, 0))
    assert scalars["cross"] > 0 and "cross" not in base_scalars
    assert torch.isclose(loss, base + 0.5 * scalars["cross"], atol=1e-5)
    loss.backward()
    assert model.head.mlp[0].weight.grad.abs().sum() > 0
    _, single = model.loss(collate(seqs[:1], index=[0]), gen(), Progress(0, 0))
    assert "cross" not in single  # one sequence has no other to cycle through


def test_a_float16_batch_trains_and_embeds_as_its_float32_values_do():
    # stored heatmaps reach a batch as float16 (model.batch.collate); the model computes in its own dtype
    seqs = [{"heatmap": _maps(_motion(n, kind, seed=n)).astype(np.float16)} for n, kind in ((12, 0), (9, 1), (10, 0))]
    half = collate(seqs, index=[0, 1, 2])
    half.arrays["heatmap"] = half.arrays["heatmap"].half()  # as collate pads StoredMaps
    full = collate(seqs, index=[0, 1, 2])
    assert full.arrays["heatmap"].dtype == torch.float32
    augment = dataclasses.replace(tiny_params("la2ds").augment, flip_p=0.5, limb_p=0.5, position_p=0.5)
    params = tiny_params("la2ds", clip_token=True, relate_weight=0.0, augment=augment)
    torch.manual_seed(0)
    model = La2ds.build(params, SPEC)
    results = []
    for batch in (half, full):
        model.zero_grad()
        loss, _ = model.loss(batch, torch.Generator().manual_seed(3), Progress(0, 0))
        loss.backward()
        results.append((loss.detach(), model.encoder.embed.weight.grad.clone(), model.eval().embed(batch).detach()))
        model.train()
    for a, b in zip(*results, strict=True):
        assert torch.equal(a, b)
