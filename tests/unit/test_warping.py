"""The path-returning DTW (model/blocks/warping.py): known answers on small matrices, against a brute-force
dynamic programme, open ends, bands, the per-frame mapping and the ahead/behind summary."""

from __future__ import annotations

import numpy as np
import pytest

from model.blocks.warping import dtw_path, frame_mapping, summary_text, warp_summary


def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a[:, None] - b[None, :])


def reference_cost(cost: np.ndarray, pattern: str) -> float:
    """Plain Python DP (closed ends) for the symmetric patterns."""
    n, m = cost.shape
    diag = 2.0 if pattern == "symmetric2" else 1.0
    acc = np.full((n, m), np.inf)
    for i in range(n):
        for j in range(m):
            c = cost[i, j]
            if i == 0 and j == 0:
                acc[i, j] = diag * c if pattern == "symmetric2" else c
                continue
            options = []
            if i and j:
                options.append(acc[i - 1, j - 1] + diag * c)
            if i:
                options.append(acc[i - 1, j] + c)
            if j:
                options.append(acc[i, j - 1] + c)
            acc[i, j] = min(options)
    return float(acc[-1, -1])


def check_path(path: np.ndarray, n: int, m: int, *, closed: bool = True) -> None:
    steps = np.diff(path, axis=0)
    assert (steps >= 0).all() and (steps.sum(1) >= 1).all() and (steps <= 2).all()
    if closed:
        assert tuple(path[0]) == (0, 0) and tuple(path[-1]) == (n - 1, m - 1)


@pytest.mark.parametrize("pattern", ["symmetric2", "symmetric1"])
def test_cost_matches_a_brute_force_dynamic_programme(pattern):
    rng = np.random.default_rng(0)
    for n, m in ((1, 1), (1, 5), (6, 1), (7, 9), (12, 5)):
        cost = rng.random((n, m))
        warp = dtw_path(cost, step_pattern=pattern)
        assert warp.cost == pytest.approx(reference_cost(cost, pattern))
        check_path(warp.path, n, m)
        w = np.where((np.diff(warp.path, axis=0) == 1).all(1), 2.0 if pattern == "symmetric2" else 1.0, 1.0)
        first = 2.0 if pattern == "symmetric2" else 1.0
        recomputed = first * cost[0, 0] + (w * cost[warp.path[1:, 0], warp.path[1:, 1]]).sum()
        assert warp.cost == pytest.approx(recomputed)  # the path returned is the one costed


def test_identical_sequences_give_the_diagonal():
    x = np.sin(np.linspace(0, 3, 40))
    warp = dtw_path(distances(x, x))
    np.testing.assert_array_equal(warp.path, np.stack([np.arange(40)] * 2, 1))
    assert warp.cost == 0.0 and warp.normalised_cost == 0.0


def test_recovers_a_known_monotonic_warp():
    t = np.linspace(0, 1, 80)
    a = np.sin(2 * np.pi * t) + t  # not periodic, so the answer is unique
    m = 110
    warp_of_b = np.round(79 * np.linspace(0, 1, m) ** 1.6).astype(int)  # B frame j shows A frame warp_of_b[j]
    b = a[warp_of_b]
    cost = distances(a, b)
    mapping = frame_mapping(dtw_path(cost).path, cost)
    truth = (m - 1) * (np.arange(80) / 79) ** (1 / 1.6)
    assert np.abs(mapping - truth).mean() <= 1.0
    assert (np.diff(mapping) >= 0).all()


def test_asymmetric_visits_every_frame_of_a_once():
    rng = np.random.default_rng(1)
    cost = rng.random((20, 30))
    warp = dtw_path(cost, step_pattern="asymmetric")
    np.testing.assert_array_equal(warp.path[:, 0], np.arange(20))
    assert set(np.diff(warp.path[:, 1])) <= {0, 1, 2}
    with pytest.raises(ValueError, match="no warping path"):
        dtw_path(rng.random((5, 20)), step_pattern="asymmetric")  # B would have to run 4x faster


def test_open_ends_leave_out_extra_frames_of_either_video():
    core = np.sin(np.linspace(0, 2 * np.pi, 50)) * 3
    b = np.concatenate([np.full(15, 10.0), core, np.full(10, -10.0)])  # B: unrelated frames around A's motion
    cost = distances(core, b)
    closed = dtw_path(cost)
    assert tuple(closed.path[0]) == (0, 0)
    open_ = dtw_path(cost, open_begin=True, open_end=True, skip_cost=1.0)
    assert tuple(open_.path[0]) == (0, 15) and tuple(open_.path[-1]) == (49, 64)
    assert open_.normalised_cost < closed.normalised_cost
    swapped = dtw_path(cost.T, open_begin=True, open_end=True, skip_cost=1.0)  # A has the extra frames
    assert tuple(swapped.path[0]) == (15, 0) and tuple(swapped.path[-1]) == (64, 49)
    mapping = frame_mapping(swapped.path, cost.T)
    assert (mapping[:15] == 0).all() and (mapping[65:] == 49).all()


def test_open_ends_with_an_infinite_skip_cost_are_closed():
    rng = np.random.default_rng(2)
    cost = rng.random((9, 13))
    closed = dtw_path(cost)
    assert dtw_path(cost, open_begin=True, open_end=True, skip_cost=np.inf).cost == pytest.approx(closed.cost)


def test_a_band_keeps_the_path_near_the_diagonal():
    rng = np.random.default_rng(3)
    cost = rng.random((30, 30))
    path = dtw_path(cost, band=2).path
    assert np.abs(path[:, 0] - path[:, 1]).max() <= 2


def test_frame_mapping_takes_the_cheapest_cell_of_each_row():
    cost = np.array([[0.0, 0.5, 0.1, 0.9], [0.9, 0.9, 0.9, 0.0]])
    path = np.array([[0, 0], [0, 1], [0, 2], [1, 3]])
    np.testing.assert_array_equal(frame_mapping(path, cost), [0, 3])
    path = np.array([[0, 1], [0, 2], [1, 3]])  # the first cell is not (0, 0): frames before take the path's start
    np.testing.assert_array_equal(frame_mapping(path, cost), [2, 3])


@pytest.mark.parametrize("bad, match", [(np.full((3, 3), np.nan), "NaN"), (np.zeros((0, 3)), "non-empty")])
def test_bad_matrices_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        dtw_path(bad)
    with pytest.raises(ValueError, match="step_pattern"):
        dtw_path(np.zeros((2, 2)), step_pattern="diagonal")


def test_summary_says_who_runs_ahead():
    fps = 10.0
    mapping = np.concatenate([np.arange(10), np.full(5, 9), np.arange(10, 20)])  # B waits 0.5 s for A mid-way
    path = np.stack([np.arange(25), mapping], 1)
    summary = warp_summary(mapping, path, fps, fps)
    assert summary["lag_at_start_s"] == 0.0
    assert summary["lag_at_end_s"] == pytest.approx(-0.5)  # B reaches the end 0.5 s before A: ahead
    assert summary["most_ahead"]["lag_s"] == pytest.approx(-0.5)
    assert summary["tempo_b_over_a"] == pytest.approx(19 / 24, abs=1e-4)
    text = summary_text(summary, 2.5, 2.0)
    assert "ends 0.50 s ahead of A" in text and "level with A" in text
