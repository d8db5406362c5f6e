"""model.blocks.ot against the POT library, plus marginals, masks, the temporal prior and gradients."""

import numpy as np
import ot as pot
import pytest
import torch

from model.blocks import ot as mot


@pytest.fixture(autouse=True)
def _one_thread():
    """These problems are tiny: one intra-op thread avoids OpenMP contention on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _simplex(rng, n):
    w = rng.random(n) + 0.1
    return w / w.sum()


def _points_structure(rng, n):
    x = rng.random((n, 2))
    c = pot.dist(x, x)
    return c / c.max()


def _t(x):
    return torch.as_tensor(x)[None]


def _ragged_batch(rng, lengths_x, lengths_y):
    """Padded cost (B, N, M) and masks for problems of the given lengths, plus the unpadded costs."""
    n, m = max(lengths_x), max(lengths_y)
    costs = [rng.random((nx, ny)) for nx, ny in zip(lengths_x, lengths_y)]
    padded = np.full((len(costs), n, m), 7.0)
    for i, c in enumerate(costs):
        padded[i, : c.shape[0], : c.shape[1]] = c
    mask_x = torch.arange(n)[None] < torch.tensor(lengths_x)[:, None]
    mask_y = torch.arange(m)[None] < torch.tensor(lengths_y)[:, None]
    return torch.tensor(padded), mask_x, mask_y, costs


@pytest.mark.parametrize(("n", "m", "eps"), [(5, 5, 0.1), (7, 11, 0.05), (12, 4, 0.02)])
def test_sinkhorn_matches_pot_sinkhorn_log(n, m, eps):
    rng = np.random.default_rng(n * m)
    cost, a, b = rng.random((n, m)), _simplex(rng, n), _simplex(rng, m)
    expected = pot.sinkhorn(a, b, cost, eps, method="sinkhorn_log", numItermax=40, stopThr=0.0, warn=False)
    plan = mot.sinkhorn(_t(cost), epsilon=eps, n_iters=40, a=_t(a), b=_t(b))[0].numpy()
    np.testing.assert_allclose(plan, expected, rtol=1e-9, atol=1e-12)


def test_unbalanced_matches_pot():
    rng = np.random.default_rng(1)
    cost, a, b = rng.random((6, 8)), _simplex(rng, 6), _simplex(rng, 8)
    with pytest.warns(UserWarning, match="entropy"):
        expected = pot.unbalanced.sinkhorn_unbalanced(
            a, b, cost, 0.05, 0.5, reg_type="entropy", numItermax=5000, stopThr=1e-13
        )
    plan = mot.sinkhorn(_t(cost), epsilon=0.05, n_iters=3000, a=_t(a), b=_t(b), reg_m=0.5)[0].numpy()
    np.testing.assert_allclose(plan, expected, rtol=1e-8, atol=1e-12)
    assert abs(plan.sum() - 1) > 1e-3, "the relaxation must actually move mass off the marginals"


def test_one_sided_relaxation_matches_pot():
    rng = np.random.default_rng(14)
    cost, a, b = rng.random((6, 8)), _simplex(rng, 6), _simplex(rng, 8)
    with pytest.warns(UserWarning, match="entropy"):
        expected = pot.unbalanced.sinkhorn_unbalanced(
            a, b, cost, 0.05, (float("inf"), 0.2), reg_type="entropy", numItermax=5000, stopThr=1e-13
        )
    plan = mot.sinkhorn(_t(cost), epsilon=0.05, n_iters=3000, a=_t(a), b=_t(b), reg_m=(float("inf"), 0.2))[0]
    np.testing.assert_allclose(plan.numpy(), expected, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(plan.sum(1).numpy(), a, atol=1e-12)


def test_ragged_batch_marginals_and_padding():
    rng = np.random.default_rng(2)
    cost, mask_x, mask_y, _ = _ragged_batch(rng, [9, 4, 6], [5, 8, 3])
    plan = mot.sinkhorn(cost, epsilon=0.05, n_iters=500, mask_x=mask_x, mask_y=mask_y)
    a, b = mot.uniform_marginal(mask_x, plan.dtype), mot.uniform_marginal(mask_y, plan.dtype)
    torch.testing.assert_close(plan.sum(2), a, atol=1e-9, rtol=0)
    torch.testing.assert_close(plan.sum(1), b, atol=1e-9, rtol=0)
    pad = ~(mask_x[:, :, None] & mask_y[:, None, :])
    assert (plan[pad] == 0).all()


def test_batched_equals_per_problem():
    rng = np.random.default_rng(3)
    cost, mask_x, mask_y, costs = _ragged_batch(rng, [9, 4, 6], [5, 8, 3])
    plan = mot.sinkhorn(cost, epsilon=0.05, n_iters=60, mask_x=mask_x, mask_y=mask_y)
    for i, c in enumerate(costs):
        alone = mot.sinkhorn(_t(c), epsilon=0.05, n_iters=60)[0]
        torch.testing.assert_close(plan[i, : c.shape[0], : c.shape[1]], alone, atol=1e-12, rtol=1e-10)


def test_fgw_matches_pot_entropic_fgw():
    rng = np.random.default_rng(4)
    n, m = 7, 9
    cost, a, b = rng.random((n, m)), _simplex(rng, n), _simplex(rng, m)
    c1, c2 = _points_structure(rng, n), _points_structure(rng, m)
    expected = pot.gromov.entropic_fused_gromov_wasserstein(
        cost, c1, c2, a, b, epsilon=0.05, alpha=0.5, max_iter=10, tol=0.0, numItermax=5000, stopThr=1e-13
    )
    plan = mot.fused_gromov_wasserstein(
        _t(cost), _t(c1), _t(c2), alpha=0.5, epsilon=0.05, n_outer=10, n_inner=3000, a=_t(a), b=_t(b)
    )[0].numpy()
    np.testing.assert_allclose(plan, expected, rtol=1e-7, atol=1e-11)


def test_fgw_ragged_batch_matches_pot_per_problem():
    rng = np.random.default_rng(5)
    lengths_x, lengths_y = [8, 5], [6, 9]
    cost, mask_x, mask_y, costs = _ragged_batch(rng, lengths_x, lengths_y)
    c1 = [_points_structure(rng, n) for n in lengths_x]
    c2 = [_points_structure(rng, m) for m in lengths_y]
    big_x, big_y = torch.zeros(2, 8, 8, dtype=torch.float64), torch.zeros(2, 9, 9, dtype=torch.float64)
    for i in range(2):
        big_x[i, : lengths_x[i], : lengths_x[i]] = torch.tensor(c1[i])
        big_y[i, : lengths_y[i], : lengths_y[i]] = torch.tensor(c2[i])
    plan = mot.fused_gromov_wasserstein(
        cost, big_x, big_y, alpha=0.3, epsilon=0.05, n_outer=5, n_inner=2000, mask_x=mask_x, mask_y=mask_y
    )
    for i in range(2):
        expected = pot.gromov.entropic_fused_gromov_wasserstein(
            costs[i], c1[i], c2[i], epsilon=0.05, alpha=0.3, max_iter=5, tol=0.0, numItermax=5000, stopThr=1e-13
        )
        np.testing.assert_allclose(plan[i, : lengths_x[i], : lengths_y[i]].numpy(), expected, atol=1e-10)
    assert (plan[~(mask_x[:, :, None] & mask_y[:, None, :])] == 0).all()


def test_small_epsilon_fgw_reaches_pot_exact_fgw():
    rng = np.random.default_rng(0)
    n, m = 7, 9
    cost, a, b = rng.random((n, m)), _simplex(rng, n), _simplex(rng, m)
    c1, c2 = _points_structure(rng, n), _points_structure(rng, m)
    exact = pot.gromov.fused_gromov_wasserstein2(cost, c1, c2, a, b, alpha=0.5)
    plan = mot.fused_gromov_wasserstein(
        _t(cost), _t(c1), _t(c2), alpha=0.5, epsilon=0.002, n_outer=50, n_inner=2000, a=_t(a), b=_t(b), tol=1e-10
    )
    value = mot.fgw_objective(_t(cost), _t(c1), _t(c2), plan, alpha=0.5).item()
    assert value == pytest.approx(exact, rel=1e-3)


def _mean_distance_to_diagonal(plan, mask_x, mask_y):
    prior = mot.temporal_prior(mask_x, mask_y, dtype=plan.dtype)
    return ((plan * prior).sum((1, 2)) / plan.sum((1, 2))).mean().item()


@pytest.mark.parametrize("power", [1.0, 2.0])
def test_temporal_prior_moves_mass_to_diagonal(power):
    generator = torch.Generator().manual_seed(6)
    cost = torch.rand(4, 20, 30, generator=generator, dtype=torch.float64)
    mask_x, mask_y = torch.ones(4, 20, dtype=torch.bool), torch.ones(4, 30, dtype=torch.bool)
    mask_x[1, 12:] = False
    kwargs = dict(epsilon=0.02, alpha=0.3, radius=0.1, prior_power=power, mask_x=mask_x, mask_y=mask_y)
    free = mot.align_plan(cost, rho=0.0, **kwargs)
    prior = mot.align_plan(cost, rho=2.0, **kwargs)
    assert _mean_distance_to_diagonal(prior, mask_x, mask_y) < 0.5 * _mean_distance_to_diagonal(free, mask_x, mask_y)


def test_gradcheck_sinkhorn_with_padding():
    generator = torch.Generator().manual_seed(7)
    cost = torch.rand(2, 3, 4, generator=generator, dtype=torch.float64, requires_grad=True)
    mask_x = torch.tensor([[True, True, True], [True, True, False]])
    mask_y = torch.tensor([[True, True, True, True], [True, True, True, False]])
    assert torch.autograd.gradcheck(
        lambda c: mot.sinkhorn(c, epsilon=0.1, n_iters=20, mask_x=mask_x, mask_y=mask_y), (cost,)
    )


def test_gradcheck_fgw():
    generator = torch.Generator().manual_seed(8)
    cost = torch.rand(1, 3, 4, generator=generator, dtype=torch.float64, requires_grad=True)
    c_x = mot.neighbourhood(torch.ones(1, 3, dtype=torch.bool), 0.4, torch.float64)
    c_y = mot.neighbourhood(torch.ones(1, 4, dtype=torch.bool), 0.4, torch.float64)
    assert torch.autograd.gradcheck(
        lambda c: mot.fused_gromov_wasserstein(c, c_x, c_y, alpha=0.5, epsilon=0.1, n_outer=3, n_inner=10), (cost,)
    )


def test_gradient_flows_float32_and_padding_gets_none():
    generator = torch.Generator().manual_seed(9)
    x = torch.randn(2, 10, 8, generator=generator, requires_grad=True)
    y = torch.randn(2, 12, 8, generator=generator)
    mask_x = torch.arange(10)[None] < torch.tensor([[10], [6]])
    mask_y = torch.arange(12)[None] < torch.tensor([[9], [12]])
    cost = 1 - torch.nn.functional.normalize(x, dim=2) @ torch.nn.functional.normalize(y, dim=2).transpose(1, 2)
    plan = mot.align_plan(cost, epsilon=0.05, alpha=0.5, rho=1.0, radius=0.1, mask_x=mask_x, mask_y=mask_y)
    (plan * cost).sum().backward()
    assert plan.dtype == torch.float32 and torch.isfinite(x.grad).all()
    assert x.grad[mask_x].abs().sum() > 0
    assert (x.grad[~mask_x] == 0).all()


def test_half_precision_is_solved_in_float32():
    cost = torch.rand(2, 16, 16, generator=torch.Generator().manual_seed(10)).half()
    plan = mot.sinkhorn(cost, epsilon=0.01, n_iters=200)
    assert plan.dtype == torch.float16 and torch.isfinite(plan).all()
    torch.testing.assert_close(plan.float().sum(2), torch.full((2, 16), 1 / 16), atol=1e-3, rtol=0)


def _noisy_segments(lengths, noise, seed):
    """Frames (T, 6) scattered around one of three orthogonal prototypes per segment, the truth (T,), and
    the frame-to-prototype cost 1 - cosine (1, T, 3)."""
    generator = torch.Generator().manual_seed(seed)
    prototypes = torch.eye(3, 6, dtype=torch.float64)
    truth = torch.cat([torch.full((n,), k) for k, n in enumerate(lengths)])
    frames = prototypes[truth] + noise * torch.randn(len(truth), 6, generator=generator, dtype=torch.float64)
    cost = 1 - torch.nn.functional.normalize(frames, dim=1) @ prototypes.T
    return frames, truth, cost[None]


def test_autocast_region_does_not_lower_precision():
    generator = torch.Generator().manual_seed(13)
    cost = torch.rand(2, 12, 10, generator=generator)
    kwargs = dict(epsilon=0.05, alpha=0.5, rho=1.0, radius=0.1)
    plain = mot.align_plan(cost, **kwargs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = mot.align_plan(cost, **kwargs)
    assert autocast.dtype == torch.float32
    torch.testing.assert_close(autocast, plain, atol=1e-7, rtol=1e-5)


def test_prototype_assignment_balanced_with_padding():
    _, truth, cost = _noisy_segments([12, 12, 12], 0.3, seed=11)
    padded = torch.cat([cost, torch.cat([cost[:, :24], torch.zeros(1, 12, 3, dtype=torch.float64)], 1)])
    mask = torch.arange(36)[None] < torch.tensor([[36], [24]])
    plan = mot.assign_to_prototypes(padded, epsilon=0.02, alpha=0.3, rho=0.5, radius=0.05, mask=mask, n_inner=200)
    torch.testing.assert_close(plan.sum(1), torch.full((2, 3), 1 / 3, dtype=torch.float64), atol=1e-4, rtol=0)
    rows = (1 / mask.sum(1, keepdim=True).double()).expand(2, 36)[mask]
    torch.testing.assert_close(plan.sum(2)[mask], rows, atol=1e-12, rtol=0)
    labels = mot.segment_labels(plan, mask)
    assert labels[0].tolist() == truth.tolist()
    assert (labels[1, 24:] == -1).all()


def test_unbalanced_assignment_recovers_unequal_segments():
    _, truth, cost = _noisy_segments([8, 20, 8], 0.3, seed=11)
    kwargs = dict(epsilon=0.02, alpha=0.3, rho=0.5, radius=0.05, n_inner=200)
    balanced = mot.segment_labels(mot.assign_to_prototypes(cost, **kwargs))[0]
    relaxed = mot.segment_labels(mot.assign_to_prototypes(cost, reg_m=0.1, **kwargs))[0]
    assert (balanced == truth).float().mean() < 0.8, "balanced marginals force segments of equal length"
    assert (relaxed == truth).float().mean() > 0.95


def test_structure_term_makes_segments_contiguous():
    _, truth, cost = _noisy_segments([20, 20, 20], 0.6, seed=12)
    kwargs = dict(epsilon=0.02, rho=0.0, radius=0.05, n_inner=100)
    linear_only = mot.segment_labels(mot.assign_to_prototypes(cost, alpha=0.0, **kwargs))[0]
    fused = mot.segment_labels(mot.assign_to_prototypes(cost, alpha=0.8, **kwargs))[0]
    assert (linear_only.diff() != 0).sum() > 10
    assert fused.tolist() == truth.tolist()


def test_uninformative_cost_gives_ordered_equal_segments():
    plan = mot.assign_to_prototypes(
        torch.zeros(1, 12, 4), epsilon=0.01, alpha=0.0, rho=1.0, radius=0.1, n_inner=300
    )
    assert mot.segment_labels(plan)[0].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]


def test_empty_problem_is_an_error():
    with pytest.raises(ValueError, match="at least one real frame"):
        mot.sinkhorn(torch.rand(2, 3, 3), epsilon=0.1, mask_x=torch.tensor([[True] * 3, [False] * 3]))
