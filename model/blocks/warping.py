"""Dynamic time warping that returns its path: which frame of one video matches which frame of another.

`dtw_path(cost)` finds the monotonic, continuous warping path through an (N, M) cost matrix (frames of A by
frames of B) with the least accumulated cost, under a step pattern:

- `symmetric2` (Sakoe & Chiba 1978; dtw-python's default): steps (1, 1) weight 2, (1, 0) and (0, 1) weight 1.
  Every path from (i0, j0) to (i1, j1) has total weight (i1 - i0) + (j1 - j0) + 2, whatever its shape, so no
  shape is favoured and costs of paths of different lengths compare after dividing by that weight;
- `symmetric1`: the same steps, all of weight 1 (favours the diagonal: fewer cells);
- `asymmetric`: A advances one frame per step, B by 0, 1 or 2 (weight 1): every frame of A appears once,
  B may run at most twice as fast as A.

Open ends (`open_begin`, `open_end`): either video may have extra frames before (after) the matched motion.
The path may then start anywhere on the first row or column (end anywhere on the last row or column), and
each frame left out at an end costs `skip_cost`, the price of a step that matches nothing. A frame is left
out when matching it would cost more than that, so `skip_cost` is a threshold on the local cost: infinity
gives the closed path from (0, 0) to (N - 1, M - 1), 0 would let the path shrink to almost nothing.
`band` (a Sakoe-Chiba band) keeps the path within `band` frames of the diagonal between the matrix corners.

`frame_mapping(path, cost, n_a)` turns a path into one matched B frame per frame of A (the cheapest cell of
the path on A's row; A's frames left out by open ends take the nearest end of the path), which is monotonic.
Pure numpy: no files, no torch, no compiler (a 450 x 450 matrix takes a few milliseconds).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

StepPattern = Literal["symmetric2", "symmetric1", "asymmetric"]
_PATTERNS = ("symmetric2", "symmetric1", "asymmetric")
# predecessor codes in the backtracking table
_START, _DIAG, _UP, _LEFT, _DIAG2 = 0, 1, 2, 3, 4
_STEPS = {_DIAG: (1, 1), _UP: (1, 0), _LEFT: (0, 1), _DIAG2: (1, 2)}


@dataclass(frozen=True)
class WarpingPath:
    """path: (L, 2) int64 (frame of A, frame of B) pairs, both non-decreasing, consecutive pairs one step
    apart; cost: the accumulated cost (with skipped end frames); normalised_cost: cost / the path's total
    step weight plus skipped frames (a mean per-frame distance, comparable across lengths)."""

    path: np.ndarray
    cost: float
    normalised_cost: float


def _accumulate(cost: np.ndarray, pattern: str, open_begin: bool, skip: float, band: float | None):
    """Accumulated costs D (N, M) and predecessor codes (N, M) int8, one row at a time.

    Within a row, D[i, j] = min(E[j], D[i, j - 1] + c[i, j]) where E holds the steps from the row above (and
    the starts): unrolled, D[i, :] = S + cummin(E - S) with S the row's cumulative cost, so each row is a few
    vectorised operations (no compiler needed). A cell comes from the left exactly where cummin(E - S) is
    below E - S there, which the backtracking follows to the cell where the row was entered."""
    n, m = cost.shape
    w_diag = w_start = 2.0 if pattern == "symmetric2" else 1.0
    acc = np.full((n, m), np.inf)
    pred = np.zeros((n, m), np.int8)
    slope = (m - 1) / (n - 1) if n > 1 else 0.0
    cols = np.arange(m)
    prev = np.full(m, np.inf)
    for i in range(n):
        lo, hi = 0, m
        if band is not None:
            lo, hi = max(0, int(np.ceil(i * slope - band - 1e-9))), min(m, int(np.floor(i * slope + band + 1e-9)) + 1)
            if lo >= hi:
                prev = np.full(m, np.inf)
                continue
        c = cost[i, lo:hi]
        entry, code = _entries(prev, c, lo, hi, pattern, w_diag)
        starts = np.full(hi - lo, np.inf)
        if open_begin and i == 0:
            starts = (cols[lo:hi]) * skip + w_start * c
        elif open_begin and lo == 0:
            starts[0] = i * skip + w_start * c[0]
        elif i == 0 and lo == 0:
            starts[0] = w_start * c[0]
        code = np.where(starts <= entry, _START, code)
        entry = np.minimum(entry, starts)
        row = np.full(m, np.inf)
        if pattern == "asymmetric":
            row[lo:hi] = entry
        else:  # the left steps: a running minimum
            run = np.cumsum(c)
            shifted = entry - run
            best = np.minimum.accumulate(shifted)
            row[lo:hi] = run + best
            code = np.where(best < shifted, _LEFT, code)
        acc[i] = row
        pred[i, lo:hi] = code
        prev = row
    return acc, pred


def _entries(prev: np.ndarray, c: np.ndarray, lo: int, hi: int, pattern: str, w_diag: float):
    """The cheapest way into each cell of a row from the row above: costs (hi - lo,) and step codes."""
    up = prev[lo:hi] + c
    diag = np.concatenate([[np.inf], prev])[lo:hi] + w_diag * c  # prev[j - 1]
    options = [(up, _UP), (diag, _DIAG)]
    if pattern == "asymmetric":
        options.append((np.concatenate([[np.inf, np.inf], prev])[lo:hi] + c, _DIAG2))  # prev[j - 2]
    entry, code = np.full(hi - lo, np.inf), np.full(hi - lo, _START, np.int8)
    for value, step in options:  # diagonal wins ties with up; later options only when strictly cheaper
        better = value < entry if step != _DIAG else value <= entry
        entry, code = np.where(better, value, entry), np.where(better, step, code)
    return entry, code


def _backtrack(pred: np.ndarray, i: int, j: int) -> np.ndarray:
    out = []
    while True:
        out.append((i, j))
        code = pred[i, j]
        if code == _START:
            break
        di, dj = _STEPS[int(code)]
        i, j = i - di, j - dj
    return np.array(out[::-1], dtype=np.int64)


def dtw_path(
    cost: np.ndarray,
    *,
    step_pattern: StepPattern = "symmetric2",
    open_begin: bool = False,
    open_end: bool = False,
    skip_cost: float = np.inf,
    band: int | None = None,
) -> WarpingPath:
    """The least-cost warping path through cost (N, M) >= 0 (module docstring for the options).

    band: None for no band, else the largest |j - i (M - 1) / (N - 1)| a path cell may have (frames of B).
    Raises ValueError for an empty or non-finite matrix, an unknown pattern, or a band that admits no path.
    """
    cost = np.ascontiguousarray(cost, dtype=np.float64)
    if cost.ndim != 2 or min(cost.shape) < 1:
        raise ValueError(f"cost must be a non-empty (N, M) matrix, got shape {cost.shape}")
    if not np.isfinite(cost).all():
        raise ValueError("cost holds NaN or infinite values")
    if step_pattern not in _PATTERNS:
        raise ValueError(f"step_pattern must be one of {_PATTERNS}, got {step_pattern!r}")
    if (open_begin or open_end) and not skip_cost >= 0:
        raise ValueError(f"open ends need a skip_cost >= 0, got {skip_cost}")
    n, m = cost.shape
    skip = float(skip_cost) if np.isfinite(skip_cost) else 1e300
    acc, pred = _accumulate(cost, step_pattern, open_begin, skip, None if band is None else float(band))
    end_i, end_j, total = _best_end(acc, open_end, skip)
    if not np.isfinite(total) or total >= 1e299:
        raise ValueError(f"no warping path through a {n} x {m} matrix with step pattern {step_pattern}"
                         f"{'' if band is None else f' and band {band}'}")
    path = _backtrack(pred, end_i, end_j)
    return WarpingPath(path, float(total), float(total) / _weight(path, n, m, step_pattern))


def _best_end(acc: np.ndarray, open_end: bool, skip: float) -> tuple[int, int, float]:
    """(i, j, total) of the cheapest end: the last cell, or with open ends any cell of the last row or column
    plus the frames it leaves out at the end."""
    n, m = acc.shape
    if not open_end:
        return n - 1, m - 1, float(acc[-1, -1])
    row = acc[-1, :] + (m - 1 - np.arange(m)) * skip  # ends on A's last frame, B's later frames skipped
    col = acc[:, -1] + (n - 1 - np.arange(n)) * skip
    j, i = int(np.argmin(row)), int(np.argmin(col))
    return (n - 1, j, float(row[j])) if row[j] <= col[i] else (i, m - 1, float(col[i]))


def _weight(path: np.ndarray, n: int, m: int, pattern: str) -> float:
    """Total step weight of `path` plus the frames it leaves out (the denominator of the normalised cost)."""
    (i0, j0), (i1, j1) = path[0], path[-1]
    skipped = i0 + j0 + (n - 1 - i1) + (m - 1 - j1)
    if pattern == "symmetric2":
        return float((i1 - i0) + (j1 - j0) + 2 + skipped)
    return float(len(path) + skipped)


def frame_mapping(path: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """(L, 2) path, (N, M) cost -> (N,) int64: for each frame of A, the frame of B it is matched with.

    Where the path holds several cells on A's row (B waits while A moves on is the other case), the
    cheapest is taken; A's frames before (after) the path take its first (last) B frame. Non-decreasing."""
    n = cost.shape[0]
    out = np.empty(n, np.int64)
    best = np.full(n, np.inf)
    for i, j in path:
        if cost[i, j] < best[i]:
            best[i], out[i] = cost[i, j], j
    first, last = path[0], path[-1]
    out[: first[0]] = first[1]
    out[last[0] + 1 :] = last[1]
    return out


def warp_summary(mapping: np.ndarray, path: np.ndarray, fps_a: float, fps_b: float) -> dict:
    """Who runs ahead: mapping (N_a,) B's frame per frame of A, path (L, 2), frame rates -> a JSON-able summary.

    lag(t) = B's time minus A's time at matched moments (frame k at k / fps): positive where B reaches a moment
    of the motion later than A does (B behind), negative where earlier (B ahead). Over the path's span of A
    (the matched motion): its lag at the start and end, the extremes and where they occur, and tempo = the
    path's span of B over its span of A, in seconds (above 1: B is slower)."""
    t_a = np.arange(len(mapping)) / fps_a
    lag = mapping / fps_b - t_a
    (i0, j0), (i1, j1) = (int(x) for x in path[0]), (int(x) for x in path[-1])
    span = slice(i0, i1 + 1)
    k_ahead, k_behind = i0 + int(np.argmin(lag[span])), i0 + int(np.argmax(lag[span]))
    dur_a = (i1 - i0) / fps_a
    dur_b = (j1 - j0) / fps_b
    return {
        "lag_definition": "B's time minus A's time at matched frames (s); > 0: B behind, < 0: B ahead",
        "matched_a_s": [round(i0 / fps_a, 4), round(i1 / fps_a, 4)],
        "matched_b_s": [round(j0 / fps_b, 4), round(j1 / fps_b, 4)],
        "lag_at_start_s": round(float(lag[i0]), 4),
        "lag_at_end_s": round(float(lag[i1]), 4),
        "most_ahead": {"lag_s": round(float(lag[k_ahead]), 4), "at_a_s": round(k_ahead / fps_a, 4)},
        "most_behind": {"lag_s": round(float(lag[k_behind]), 4), "at_a_s": round(k_behind / fps_a, 4)},
        "tempo_b_over_a": round(dur_b / dur_a, 4) if dur_a > 0 else None,
        "lag_s": np.round(lag, 4).tolist(),
    }


def summary_text(summary: dict, duration_a: float, duration_b: float) -> str:
    """One or two sentences a person reads first."""
    def side(lag: float) -> str:
        return f"{abs(lag):.2f} s {'behind' if lag > 0 else 'ahead of'} A" if abs(lag) >= 0.005 else "level with A"

    (a0, a1), (b0, b1) = summary["matched_a_s"], summary["matched_b_s"]
    tempo = summary["tempo_b_over_a"]
    text = (f"A lasts {duration_a:.2f} s, B {duration_b:.2f} s. The motion of A from {a0:.2f} to {a1:.2f} s matches "
            f"B from {b0:.2f} to {b1:.2f} s")
    text += f" (B takes {tempo:.2f}x A's time). " if tempo else ". "
    ahead, behind = summary["most_ahead"], summary["most_behind"]
    text += f"B starts {side(summary['lag_at_start_s'])}"
    if ahead["lag_s"] < min(summary["lag_at_start_s"], summary["lag_at_end_s"]) - 0.005:
        text += f", is furthest ahead at A {ahead['at_a_s']:.2f} s ({side(ahead['lag_s'])})"
    if behind["lag_s"] > max(summary["lag_at_start_s"], summary["lag_at_end_s"]) + 0.005:
        text += f", is furthest behind at A {behind['at_a_s']:.2f} s ({side(behind['lag_s'])})"
    text += f" and ends {side(summary['lag_at_end_s'])}."
    return text
