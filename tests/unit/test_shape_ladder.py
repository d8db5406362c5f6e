"""Shapes that repeat for the CPU's bfloat16 matmuls (model/blocks/shape_ladder.py): the ladder's rungs, when
padding applies, and that LA2DS's losses and tokens do not see it."""

from __future__ import annotations

import numpy as np
import torch

from model.batch import collate
from model.blocks import shape_ladder
from model.blocks.encoders import HeatmapEncoder
from model.method import Progress
from model.methods import la2ds
from model.methods.la2ds import La2ds
from tests.tiny_models import tiny_params
from tests.unit.test_la2ds import SPEC, _maps, _motion


def test_rows_climb_a_ladder_of_few_rungs_just_above_n():
    sizes = np.arange(1, 20001)
    rungs = np.array([shape_ladder.rows(int(n)) for n in sizes])
    assert (rungs >= sizes).all() and (np.diff(rungs) >= 0).all()
    assert (rungs[:64] == sizes[:64]).all()  # small counts stay as they are
    big = sizes > 64
    assert (rungs[big] % 8 == 0).all()
    assert (rungs[big] <= sizes[big] * 2 ** (1 / shape_ladder.RUNGS_PER_OCTAVE) + 8).all()
    assert len(np.unique(rungs[sizes >= 1000])) <= 5 * shape_ladder.RUNGS_PER_OCTAVE  # 1,000 .. 20,000: ~4.3 octaves
    assert all(shape_ladder.rows(int(r)) == r for r in np.unique(rungs))  # a rung is its own rung


def test_length_rounds_up_to_a_multiple():
    m = shape_ladder.LENGTH_MULTIPLE
    assert [shape_ladder.length(n) for n in (1, m, m + 1, 3 * m - 1)] == [m, m, 2 * m, 3 * m]


def test_pad_length_adds_zeros_at_the_end_of_time():
    x = torch.arange(6).reshape(2, 3, 1)
    mask = torch.ones(2, 3, dtype=torch.bool)
    padded, padded_mask = shape_ladder.pad_length(x), shape_ladder.pad_length(mask)
    assert padded.shape == (2, shape_ladder.LENGTH_MULTIPLE, 1) and padded_mask.dtype == torch.bool
    assert torch.equal(padded[:, :3], x) and not padded[:, 3:].any() and not padded_mask[:, 3:].any()
    full = torch.zeros(2, shape_ladder.LENGTH_MULTIPLE)
    assert shape_ladder.pad_length(full) is full  # a length on the ladder already: no copy


def test_only_bfloat16_on_a_cpu_compiles_per_shape():
    cpu = torch.device("cpu")
    assert shape_ladder.compiles_per_shape(cpu, torch.bfloat16)
    assert not shape_ladder.compiles_per_shape(cpu, torch.float32)
    assert not shape_ladder.compiles_per_shape(cpu)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert shape_ladder.compiles_per_shape(cpu, torch.float32) and shape_ladder.compiles_per_shape(cpu)
    with torch.autocast("cpu", dtype=torch.float16):
        assert not shape_ladder.compiles_per_shape(cpu)
    assert not shape_ladder.compiles_per_shape(torch.device("cuda"), torch.bfloat16)


def _pad_off(monkeypatch):
    monkeypatch.setattr(shape_ladder, "compiles_per_shape", lambda device, dtype=None: False)


def test_padded_spatial_rows_leave_every_frame_token_as_it_was(monkeypatch):
    torch.manual_seed(0)
    encoder = HeatmapEncoder(channels=3, size=8, patch=4, dim=16, heads=2, spatial_layers=1, temporal_layers=1,
                             max_len=8, clip_token=False)
    embedded = torch.randn(70, 4, 16)  # 70 frames: padded to the rung above (80)
    assert shape_ladder.rows(70) > 70
    seen = []
    encoder.spatial.register_forward_hook(lambda module, args, out: seen.append(args[0].shape[0]))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        padded = encoder.spatial_tokens(embedded)
        _pad_off(monkeypatch)
        plain = encoder.spatial_tokens(embedded)
    assert seen == [shape_ladder.rows(70), 70]
    assert padded.shape == plain.shape == (70, 16)
    torch.testing.assert_close(padded, plain, atol=2e-2, rtol=2e-2)  # bfloat16 matmuls of other row counts


def test_la2ds_views_are_padded_to_repeating_lengths_and_the_loss_does_not_see_it(monkeypatch):
    seqs = [{"heatmap": _maps(_motion(n, kind, seed=n))} for n, kind in ((12, 0), (17, 0), (10, 1))]
    batch = collate(seqs, index=[0, 1, 2])
    torch.manual_seed(0)
    model = La2ds.build(tiny_params("la2ds", clip_token=True, relate_weight=0.0, cross_weight=0.5), SPEC)
    shapes = []
    views = la2ds.heatmap_views
    monkeypatch.setattr(la2ds, "heatmap_views", lambda *a: shapes.append(v := views(*a)) or v)
    results = []
    for padded in (True, False):
        if not padded:
            _pad_off(monkeypatch)
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss, scalars = model.loss(batch, torch.Generator().manual_seed(3), Progress(0, 0))
        loss.backward()
        results.append((loss.detach().float(), scalars, model.head.mlp[0].weight.grad.clone()))
    on, off = shapes
    assert on.m0.shape[1] % shape_ladder.LENGTH_MULTIPLE == 0 and on.m1.shape[1] % shape_ladder.LENGTH_MULTIPLE == 0
    assert on.m0.shape[1] > off.m0.shape[1] == 17  # the longest window: all of the 17-frame sequence
    assert torch.equal(on.m0[:, :17], off.m0) and not on.m0[:, 17:].any() and not on.m1[:, off.m1.shape[1]:].any()
    assert torch.equal(on.g0[:, :17], off.g0) and torch.equal(on.pos[:, : off.pos.shape[1]], off.pos)
    (loss_on, scalars_on, grad_on), (loss_off, scalars_off, grad_off) = results
    assert scalars_on.keys() == scalars_off.keys()
    torch.testing.assert_close(loss_on, loss_off, atol=1e-3, rtol=1e-2)
    torch.testing.assert_close(grad_on, grad_off, atol=1e-3, rtol=5e-2)


def test_float32_training_pads_nothing():
    seqs = [{"heatmap": _maps(_motion(n, 0, seed=n))} for n in (12, 17)]
    batch = collate(seqs, index=[0, 1])
    model = La2ds.build(tiny_params("la2ds", clip_token=False, relate_weight=0.0), SPEC)
    views = la2ds.heatmap_views(model.augment, batch, model.params, torch.Generator().manual_seed(0))
    assert views.m0.shape[1] == 17
