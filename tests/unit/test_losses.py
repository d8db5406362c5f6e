"""Alignment losses: ~0 for a perfect correspondence, large for a shuffled one; stop-gradient; combinations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from model.losses.alignment import (
    bidirectional_matching_loss,
    clip_clustering_loss,
    clip_contrastive_loss,
    clustering_loss,
    combine_losses,
    contrastive_regression_loss,
    cycle_back_loss,
    nearest_partners,
    relation_distillation_loss,
)


def _one_hot_views(g1: torch.Tensor, g2: torch.Tensor, n: int, scale: float = 1.0):
    """Embeddings that identify original frames exactly: z = scale * one_hot(original index)."""
    return scale * F.one_hot(g1, n).float()[None], scale * F.one_hot(g2, n).float()[None]


def test_bidirectional_matching_is_near_zero_for_a_perfect_correspondence():
    n = 40
    g1 = torch.sort(torch.randint(0, n, (30,), generator=torch.Generator().manual_seed(0))).values
    g2 = torch.sort(torch.randint(0, n, (50,), generator=torch.Generator().manual_seed(1))).values
    m1, m2 = torch.ones(1, len(g1), dtype=torch.bool), torch.ones(1, len(g2), dtype=torch.bool)
    # a smooth code of the original index (nearby frames similar), so frames without an exact twin in the
    # other view are matched to their neighbours in time
    pos = torch.arange(n).float()
    code = torch.stack((torch.cos(pos / n * 3), torch.sin(pos / n * 3)), -1)
    z1, z2 = code[g1][None], code[g2][None]
    loss = bidirectional_matching_loss(z1, m1, g1[None] / (n - 1), z2, m2, g2[None] / (n - 1), temperature=0.01)
    assert loss < 1e-3


def test_bidirectional_matching_is_large_for_a_shuffled_correspondence():
    n = 40
    g = torch.arange(n)
    z1, z2 = _one_hot_views(g, g, n)
    m = torch.ones(1, n, dtype=torch.bool)
    idx = g[None] / (n - 1)
    perfect = bidirectional_matching_loss(z1, m, idx, z2, m, idx, temperature=0.1)
    shuffled = z2[:, torch.randperm(n, generator=torch.Generator().manual_seed(0))]
    wrong = bidirectional_matching_loss(z1, m, idx, shuffled, m, idx, temperature=0.1)
    assert perfect < 1e-4
    assert wrong > 0.05
    assert wrong > 1000 * perfect


def test_contrastive_regression_perfect_and_shuffled():
    n = 30
    z = F.one_hot(torch.arange(n), n).float()[None] * 3
    keep = torch.arange(0, n, 2)
    m, m_aug = torch.ones(1, n, dtype=torch.bool), torch.ones(1, len(keep), dtype=torch.bool)
    idx, idx_aug = torch.arange(n)[None] / (n - 1), keep[None] / (n - 1)
    perfect = contrastive_regression_loss(z, m, idx, z[:, keep], m_aug, idx_aug, temperature=0.1)
    shuffled = z[:, keep[torch.randperm(len(keep), generator=torch.Generator().manual_seed(0))]]
    wrong = contrastive_regression_loss(z, m, idx, shuffled, m_aug, idx_aug, temperature=0.1)
    assert perfect < 1e-6
    assert wrong > 0.05


def test_padding_does_not_change_the_matching_loss():
    torch.manual_seed(0)
    z1, z2 = torch.randn(1, 6, 8), torch.randn(1, 9, 8)
    i1, i2 = torch.rand(1, 6), torch.rand(1, 9)
    ones = lambda t: torch.ones(1, t, dtype=torch.bool)  # noqa: E731
    alone = bidirectional_matching_loss(z1, ones(6), i1, z2, ones(9), i2, 0.1)
    pad = lambda x, k: torch.cat((x, torch.full((1, k, *x.shape[2:]), 5.0)), 1)  # noqa: E731
    mask = lambda t, k: torch.cat((ones(t), torch.zeros(1, k, dtype=torch.bool)), 1)  # noqa: E731
    padded = bidirectional_matching_loss(pad(z1, 3), mask(6, 3), pad(i1, 3), pad(z2, 2), mask(9, 2), pad(i2, 2), 0.1)
    torch.testing.assert_close(padded, alone)


def test_clustering_loss_sends_no_gradient_to_the_stop_gradient_side():
    torch.manual_seed(0)
    z1 = torch.randn(2, 5, 8, requires_grad=True)
    z2 = torch.randn(2, 7, 8, requires_grad=True)
    h1 = torch.randn(2, 5, 8, requires_grad=True)
    h2 = torch.randn(2, 7, 8, requires_grad=True)
    g1 = torch.tensor([[0, 1, 2, 3, 4], [0, 0, 1, 2, 2]])
    g2 = torch.tensor([[0, 1, 1, 2, 3, 4, 4], [0, 1, 1, 2, 2, 2, 2]])
    m1, m2 = torch.ones(2, 5, dtype=torch.bool), torch.ones(2, 7, dtype=torch.bool)
    clustering_loss(z1, h1, m1, g1, z2, h2, m2, g2).backward()
    assert z1.grad is None and z2.grad is None
    assert h1.grad is not None and h1.grad.abs().sum() > 0 and h2.grad.abs().sum() > 0


def test_clustering_loss_is_minus_one_when_predictions_match_their_twins():
    g = torch.tensor([[0, 1, 2, 3]])
    z = torch.randn(1, 4, 6)
    m = torch.ones(1, 4, dtype=torch.bool)
    # only frames with the same original index pair up, so identical twins give -1 exactly
    assert clustering_loss(z, z, m, g, z, z, m, g).item() == pytest.approx(-1.0, abs=1e-6)


def test_clip_level_losses():
    torch.manual_seed(0)
    z1 = torch.randn(3, 5, 8, requires_grad=True)
    h2 = torch.randn(3, 6, 8, requires_grad=True)
    m1, m2 = torch.ones(3, 5, dtype=torch.bool), torch.ones(3, 6, dtype=torch.bool)
    clip_clustering_loss(z1, z1, m1, h2, h2, m2).backward()
    assert z1.grad is not None  # through the prediction side only: h1 is z1 here
    c = torch.randn(4, 5, 8)
    same = clip_contrastive_loss(c, torch.ones(4, 5, dtype=torch.bool), c, torch.ones(4, 5, dtype=torch.bool), 0.05, per_frame=False)
    other = clip_contrastive_loss(c, torch.ones(4, 5, dtype=torch.bool), c.roll(1, 0), torch.ones(4, 5, dtype=torch.bool), 0.05, per_frame=False)
    assert same < other
    framewise = clip_contrastive_loss(c, torch.ones(4, 5, dtype=torch.bool), c, torch.ones(4, 5, dtype=torch.bool), 0.05, per_frame=True)
    assert torch.isfinite(framewise)


def test_combinations():
    lm, lc = torch.tensor(0.2), torch.tensor(-0.5)
    assert combine_losses(lm, lc, "sum", weight=2.0).item() == pytest.approx(0.2 - 1.0)
    assert combine_losses(lm, lc, "printed", weight=2.0).item() == pytest.approx(0.2 * 2 / (1 + 1e-7 - 0.5))
    with pytest.raises(ValueError):
        combine_losses(lm, lc, "product", weight=1.0)  # type: ignore[arg-type]


def test_nearest_partners_are_the_most_similar_other_sequence():
    keys = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [0.1, 0.9]])
    assert nearest_partners(keys).tolist() == [2, 3, 0, 1]
    same = torch.ones(3, 4)
    assert all(j != i for i, j in enumerate(nearest_partners(same).tolist()))


def test_cycle_back_is_near_zero_between_videos_of_one_motion_and_large_against_a_frozen_one():
    # A: 30 frames of a smooth motion; B: the same motion at another rate (18 frames) and padded to 40
    pos_a, pos_b = torch.linspace(0, 1, 30), torch.linspace(0, 1, 18)

    def code(t):
        return torch.stack((torch.cos(3 * t), torch.sin(3 * t)), -1)

    za = code(pos_a)[None]
    zb = torch.cat((code(pos_b), torch.zeros(22, 2)))[None]
    mask_a = torch.ones(1, 30, dtype=torch.bool)
    mask_b = torch.arange(40)[None] < 18
    good = cycle_back_loss(za, mask_a, pos_a[None], zb, mask_b, temperature=0.01)
    frozen = cycle_back_loss(za, mask_a, pos_a[None], code(torch.full((40,), 0.5))[None], mask_b, temperature=0.01)
    padded = cycle_back_loss(za, mask_a, pos_a[None], zb.masked_fill(~mask_b[..., None], 5.0), mask_b, 0.01)
    assert good < 1e-3
    assert frozen > 0.05
    assert torch.isclose(good, padded)


def test_relation_distillation_rewards_clip_vectors_that_rank_like_the_teacher():
    # teacher: sequences 0, 1 close; 2, 3 close; the two pairs far apart
    dist = torch.tensor([[0.0, 1, 9, 9], [1, 0, 9, 9], [9, 9, 0, 1], [9, 9, 1, 0]])
    agree = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    swapped = agree[[0, 2, 1, 3]]  # 0 now resembles 2, 1 resembles 3
    good = relation_distillation_loss(agree, dist, temperature=0.1, teacher_temperature=0.1)
    bad = relation_distillation_loss(swapped, dist, temperature=0.1, teacher_temperature=0.1)
    assert 0 <= good < 0.05
    assert bad > 1.0
    # units of the teacher's distance do not matter; the diagonal is ignored
    assert torch.isclose(good, relation_distillation_loss(agree, 100 * dist, 0.1, 0.1))
    keys = agree.clone().requires_grad_(True)
    relation_distillation_loss(keys, dist, 0.1, 0.1).backward()
    assert torch.isfinite(keys.grad).all()
