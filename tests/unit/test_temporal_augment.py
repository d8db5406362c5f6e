"""Temporal augmentation maps point to the right original frames."""

from __future__ import annotations

import torch

from model.batch import gather_frames, pad_indices
from model.inputs.temporal_augment import (
    dual_maps,
    one_way_maps,
    subset_map,
    trim_window,
)


def test_dual_maps_point_to_the_right_original_frames():
    gen = torch.Generator().manual_seed(0)
    lengths = [40, 25, 60]
    frames = torch.zeros(3, 60, 2)
    for b, n in enumerate(lengths):  # each frame carries (sequence, original index)
        frames[b, :n, 0] = b
        frames[b, :n, 1] = torch.arange(n)
    maps = [dual_maps(n, gen, trim_min_fraction=0.5, rate=(0.5, 1.5), max_frames=500) for n in lengths]
    g1, m1 = pad_indices([a for a, _ in maps])
    view = gather_frames(frames, g1)
    for b, (a, _) in enumerate(maps):
        assert torch.equal(view[b, : len(a), 1].long(), a)
        assert torch.all(view[b, : len(a), 0] == b)
        assert int(m1[b].sum()) == len(a)


def test_dual_maps_share_one_trim_window_and_have_drops_and_repeats():
    gen = torch.Generator().manual_seed(1)
    repeats = drops = 0
    for _ in range(50):
        state = gen.get_state()
        start, stop = trim_window(100, gen, 0.5)  # the window dual_maps draws first from the same state
        gen.set_state(state)
        g1, g2 = dual_maps(100, gen, trim_min_fraction=0.5, rate=(0.5, 1.5), max_frames=500)
        for g in (g1, g2):
            assert torch.all(g[1:] >= g[:-1])  # monotone
            assert g.min() >= start and g.max() < stop
            repeats += int((g[1:] == g[:-1]).any())
            drops += int(((g[1:] - g[:-1]) > 1).any())
    assert repeats > 0 and drops > 0


def test_trim_window_respects_its_minimum():
    gen = torch.Generator().manual_seed(2)
    for _ in range(100):
        start, stop = trim_window(50, gen, 0.6)
        assert 0 <= start < stop <= 50 and stop - start >= 30
    assert trim_window(50, gen, 1.0) == (0, 50)


def test_subset_maps_are_sorted_distinct_frames():
    gen = torch.Generator().manual_seed(3)
    for _ in range(50):
        s = subset_map(40, gen, probability=0.7, min_fraction=0.5, max_frames=40)
        assert torch.all(s[1:] > s[:-1]) and s.min() >= 0 and s.max() < 40 and len(s) >= 20
    assert torch.equal(subset_map(10, gen, probability=0.0, min_fraction=0.5, max_frames=10), torch.arange(10))


def test_one_way_maps_window_and_positions():
    gen = torch.Generator().manual_seed(4)
    g0, m0, pos, m1 = one_way_maps([30, 300], gen, probability=1.0, min_fraction=0.5, max_frames=100)
    assert int(m0[0].sum()) == 30 and int(m0[1].sum()) == 100
    window = g0[1, :100]
    assert torch.equal(window, torch.arange(window[0], window[0] + 100))
    assert int(pos[1, m1[1]].max()) < 100
