"""DTW between whole sequences, with and without mirror images (model.blocks.dtw)."""

from __future__ import annotations

import numpy as np
import pytest

from model.blocks.dtw import mirror_dtw_matrix


def _reference_dtw(a: np.ndarray, b: np.ndarray) -> float:
    acc = np.full((len(a) + 1, len(b) + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(len(a)):
        for j in range(len(b)):
            cost = np.linalg.norm(a[i] - b[j])
            acc[i + 1, j + 1] = cost + min(acc[i, j + 1], acc[i + 1, j], acc[i, j])
    return float(acc[-1, -1])


def test_matches_a_plain_dynamic_programme_and_is_symmetric():
    x = np.random.default_rng(0).normal(size=(5, 9, 4)).astype(np.float32)
    d = mirror_dtw_matrix(x)
    assert d.shape == (5, 5)
    assert np.allclose(d, d.T) and np.all(np.diag(d) == 0)
    for i, j in [(0, 1), (2, 4), (3, 0)]:
        assert d[i, j] == pytest.approx(_reference_dtw(x[i], x[j]), rel=1e-5)


@pytest.mark.parametrize("n", [1, 2, 3, 6, 7])
def test_every_pair_is_computed_for_odd_and_even_counts(n):
    # rows are taken in pairs (k, n - 1 - k) for the threads' balance: the middle row of an odd n must not be
    # skipped or done twice, and no pair left at zero
    x = np.random.default_rng(n).normal(size=(n, 6, 3)).astype(np.float32)
    d = mirror_dtw_matrix(x)
    expected = np.array([[_reference_dtw(a, b) for b in x] for a in x])
    np.testing.assert_allclose(d, expected, rtol=1e-5)


def test_the_same_motion_at_another_pace_is_at_distance_zero_and_reversed_it_is_not():
    t = np.linspace(0, 1, 11, dtype=np.float32)
    motion = np.stack([np.sin(3 * t), t ** 2], -1)  # (11, 2): 11 distinct poses
    early = motion[[0, 1, 2, 3, 3, 4, 5, 6, 7, 8, 9, 10]]  # lingers at pose 3
    late = motion[[0, 1, 2, 3, 4, 5, 6, 7, 8, 8, 9, 10]]  # lingers at pose 8
    d = mirror_dtw_matrix(np.stack([early, late, late[::-1].copy()]))
    assert d[0, 1] == pytest.approx(0.0, abs=1e-6)
    assert d[0, 2] > 1.0


def test_a_mirror_image_is_at_distance_zero_only_when_mirrors_are_allowed():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(8, 3, 2)).astype(np.float32)  # 8 frames, 3 joints (left, right, centre), (x, y)

    def mirror(s):
        m = s[:, [1, 0, 2]].copy()
        m[..., 0] *= -1
        return m

    seqs = np.stack([x, mirror(x), rng.normal(size=(8, 3, 2)).astype(np.float32)])
    flat = seqs.reshape(3, 8, -1)
    mirrored = np.stack([mirror(s) for s in seqs]).reshape(3, 8, -1)
    plain, either = mirror_dtw_matrix(flat), mirror_dtw_matrix(flat, mirrored)
    assert plain[0, 1] > 1.0
    assert either[0, 1] == pytest.approx(0.0, abs=1e-6)
    assert np.all(either <= plain + 1e-6)
    assert np.allclose(either, either.T)


def test_rejects_mismatched_mirror_images():
    x = np.zeros((3, 4, 2), np.float32)
    with pytest.raises(ValueError, match="mirror images"):
        mirror_dtw_matrix(x, np.zeros((3, 5, 2), np.float32))
