"""Known answers of the alignment metrics (model.metrics.alignment)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import kendalltau

from model.metrics import alignment as M


def _distinct(n: int, d: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


def test_tau_is_one_for_identical_and_minus_one_for_reversed_sequences():
    x = _distinct(41)
    assert M.kendalls_tau([x, x.copy()], stride=2) == (pytest.approx(1.0), 0)
    assert M.kendalls_tau([x, x[::-1].copy()], stride=2) == (pytest.approx(-1.0), 0)


def test_tau_equals_scipy_tau_b_over_every_ordered_pair():
    rng = np.random.default_rng(3)
    embs = [rng.normal(size=(int(rng.integers(6, 40)), 5)) for _ in range(5)]
    expected = []
    for i, a in enumerate(embs):
        for j, b in enumerate(embs):
            if i != j:
                q, c = a[::3], b[::3]
                nn = ((q[:, None] - c[None]) ** 2).sum(-1).argmin(1)
                expected.append(kendalltau(np.arange(len(nn)), nn).statistic)
    assert M.kendalls_tau(embs, stride=3) == (pytest.approx(np.nanmean(expected)), int(np.isnan(expected).sum()))


def test_constant_embeddings_give_nan_pairs_that_are_dropped_and_counted():
    x = _distinct(20)
    flat = np.ones((15, 4))  # every query frame finds the same neighbour: tau-b undefined
    mean, dropped = M.kendalls_tau([x, x.copy(), flat], stride=1)
    assert dropped == 4  # (x -> flat), (x' -> flat), (flat -> x), (flat -> x')
    assert mean == pytest.approx(1.0)  # the two valid pairs
    mean, dropped = M.kendalls_tau([flat, flat.copy()])
    assert math.isnan(mean) and dropped == 2


def test_tau_groups_pair_within_an_activity_and_average_over_activities():
    x, y = _distinct(21, seed=1), _distinct(21, seed=2)
    embs = [x, x.copy(), y, y[::-1].copy()]
    per = M.kendalls_tau_per_group(embs, ["a", "a", "b", "b"], stride=1)
    assert per["a"] == (pytest.approx(1.0), 2, 0) and per["b"] == (pytest.approx(-1.0), 2, 0)
    assert M.kendalls_tau(embs, stride=1, groups=["a", "a", "b", "b"]) == (pytest.approx(0.0), 0)


def test_content_tau_is_zero_for_position_and_tau_for_per_frame_features():
    rng = np.random.default_rng(4)
    lengths = [31, 40, 27, 35]
    # per-frame features of one motion seen at different speeds (each video samples the same smooth path)
    path = np.cumsum(rng.normal(size=(200, 3)), axis=0)
    frames = [path[np.linspace(0, 199, n).round().astype(int)] for n in lengths]
    position = [np.linspace(0, 1, n)[:, None] for n in lengths]  # t/T: the same when played backwards
    groups = ["a", "a", "b", "b"]
    for forward, backward, expected in ((frames, [f[::-1] for f in frames], "tau"), (position, position, 0.0)):
        tau = {g: m for g, (m, _, _) in M.kendalls_tau_per_group(forward, groups, 1).items()}
        reversed_, content = M.content_tau(tau, backward, forward, groups, stride=1)
        for g in ("a", "b"):
            assert tau[g] > 0.9
            assert content[g] == pytest.approx(tau[g] if expected == "tau" else 0.0)
            assert reversed_[g] == pytest.approx(-tau[g] if expected == "tau" else tau[g])


def test_tau_against_partners_matches_each_query_in_the_other_videos_partner_features():
    rng = np.random.default_rng(5)
    embs = [rng.normal(size=(n, 3)) for n in (12, 15, 9)]
    partners = [rng.normal(size=(n, 3)) for n in (12, 15, 9)]
    expected = []
    for i, a in enumerate(embs):
        for j, b in enumerate(partners):
            if i != j:
                nn = ((a[:, None] - b[None]) ** 2).sum(-1).argmin(1)
                expected.append(kendalltau(np.arange(len(nn)), nn).statistic)
    per = M.kendalls_tau_per_group(embs, None, 1, partners=partners)
    assert per["all"] == (pytest.approx(np.mean(expected)), 6, 0)
    with pytest.raises(ValueError, match="partners"):
        M.kendalls_tau_per_group(embs, None, 1, partners=partners[:2])


def test_retrieval_ap_on_a_hand_built_labelling():
    # Video 0 queries video 1 (and vice versa); 1-d embeddings make the neighbours obvious.
    v0 = np.array([[0.0], [10.0]])
    v1 = np.array([[0.1], [0.2], [10.1], [10.2]])
    l0, l1 = np.array([0, 1]), np.array([0, 1, 1, 1])
    # K=2. video 0: frame 0 -> {0.1 (0), 0.2 (1)} = 1/2; frame 1 -> {10.1 (1), 10.2 (1)} = 1 -> 3/4
    #      video 1: every frame gets both frames of video 0, one of each label -> 1/2
    assert M.retrieval_ap([v0, v1], [l0, l1], k=2, stride=1) == pytest.approx((0.75 + 0.5) / 2)
    # K=1. video 0: 0 -> 0.1 (0), 10 -> 10.1 (1): 1; video 1: 0.1 -> 0 ok, 0.2 -> 0 wrong, 10.x -> 10 ok: 3/4
    per_video = M.retrieval_precisions([v0, v1], [l0, l1], [1, 2], stride=1)
    assert per_video[1] == pytest.approx([1.0, 0.75])
    assert per_video[2] == pytest.approx([0.75, 0.5])


def test_retrieval_ignores_unlabelled_frames_and_stays_within_groups():
    v0, v1, v2 = np.array([[0.0], [5.0]]), np.array([[0.1], [5.1]]), np.array([[0.05], [5.05]])
    l0, l1, l2 = np.array([0, -1]), np.array([0, 1]), np.array([1, 1])
    # ungrouped: video 0's only query (0.0) finds 0.05 (label 1) first -> 0; grouped {0, 1}: finds 0.1 -> 1
    assert M.retrieval_precisions([v0, v1, v2], [l0, l1, l2], [1], stride=1)[1][0] == 0.0
    grouped = M.retrieval_precisions([v0, v1, v2], [l0, l1, l2], [1], stride=1, groups=["a", "a", "b"])
    assert grouped[1][0] == 1.0 and math.isnan(grouped[1][2])  # a lone video has nothing to retrieve


def test_activity_retrieval_counts_neighbours_of_the_same_activity():
    a1, a2 = np.zeros((3, 2)), np.zeros((3, 2)) + 0.01
    b1 = np.ones((3, 2))
    assert M.activity_retrieval([a1, a2, b1], ["x", "x", "y"], k=3, stride=1) == pytest.approx((1 + 1 + 0) / 3)


@pytest.mark.parametrize(
    ("n", "fraction", "expected"),
    [(10, 0.1, 1), (10, 0.5, 5), (10, 1.0, 10), (3, 0.1, 1), (29, 0.5, 14), (100, 0.29, 29)],
)
def test_fraction_rule_takes_floor_of_f_times_n_at_least_one(n, fraction, expected):
    assert M.n_first_videos(n, fraction) == expected


def test_phase_classification_trains_on_the_first_videos_only():
    # Videos 0-1 label the frame value by its sign; videos 2-9 carry the opposite labelling.
    x = np.linspace(-1, 1, 20)[:, None]
    good, bad = (x[:, 0] > 0).astype(int), (x[:, 0] <= 0).astype(int)
    train_embs, train_labels = [x] * 10, [good, good] + [bad] * 8
    for clf in ("svm", "logreg"):
        assert M.phase_classification(train_embs, train_labels, [x], [good], 0.2, clf) == 1.0
        assert M.phase_classification(train_embs, train_labels, [x], [good], 1.0, clf) == 0.0


def test_phase_classification_ignores_unlabelled_frames():
    x = np.linspace(-1, 1, 20)[:, None]
    y = (x[:, 0] > 0).astype(int)
    val_labels = y.copy()
    val_labels[:5] = -1
    assert M.phase_classification([x], [y], [x], [val_labels], 1.0, "logreg") == 1.0


def test_progress_targets_follow_the_definition():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 2])
    targets = M.progress_targets(labels, 3)
    t = np.arange(10)
    assert targets[:, 0] == pytest.approx((t - 2) / 10)
    assert targets[:, 1] == pytest.approx((t - 4) / 10)


def test_progress_r2_is_one_for_embeddings_equal_to_the_targets():
    rng = np.random.default_rng(0)
    labels = [np.sort(rng.integers(0, 4, size=int(rng.integers(20, 40)))) for _ in range(6)]
    embs = [M.progress_targets(y, 4) for y in labels]
    assert M.phase_progression(embs[:4], labels[:4], embs[4:], labels[4:], 4) == pytest.approx(1.0)


def test_uniform_positions_cover_the_clip():
    assert M.uniform_positions(31, 16).tolist() == [round(i * 2) for i in range(16)]
    assert M.uniform_positions(4, 16).min() == 0 and M.uniform_positions(4, 16).max() == 3


@pytest.mark.parametrize("pooling", ["concat", "mean", "meanmax"])
def test_action_recognition_separates_clips_by_their_frames(pooling):
    rng = np.random.default_rng(1)

    def clips(n):
        out, acts = [], []
        for i in range(n):
            act = i % 3
            e = rng.normal(0, 0.1, size=(int(rng.integers(10, 30)), 6))
            e[:, act] += 1
            out.append(e), acts.append(f"act{act}")
        return out, acts

    (tr, tr_a), (va, va_a) = clips(30), clips(12)
    assert M.action_recognition(tr, tr_a, va, va_a, n_frames=16, pooling=pooling) == 1.0
    assert M.clip_features(va, 16, pooling).shape == (12, {"concat": 96, "mean": 6, "meanmax": 12}[pooling])
