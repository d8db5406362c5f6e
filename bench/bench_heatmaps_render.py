"""Benchmark: `pipeline.heatmaps.raster.render` frames/s for Penn Action's 13 joints + 14 limbs at 30 x 30.

Baseline, same inputs, same run: a straightforward renderer written here, one Python loop over frames and
over joints/limbs, each map computed densely over the grid with NumPy (the cutoff applied the same way, so
both produce the same maps: the benchmark checks it). Inputs: the real Penn Action labels when
../shared/data/penn_action is present (frames of consecutive sequences, each in its own crop box), else
synthetic poses. Prints one JSON line; judged by frames_per_s against the 20,000 frames/s target.

    python bench/bench_heatmaps_render.py [--frames 20000] [--baseline-frames 400] [--sigma S]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.timing import median_seconds  # noqa: E402
from pipeline.heatmaps.raster import CUTOFF, crop_box, render, to_grid  # noqa: E402
from pipeline.params import load_section  # noqa: E402
from pipeline.skeletons.layouts import get_layout  # noqa: E402
from stages.heatmaps import HeatmapsParams  # noqa: E402

TARGET = 20_000.0


def baseline_render(joints, limbs, box, size, sigma):
    """Per frame, per joint, per limb: dense NumPy maps over the grid. (T, K + L, S, S) float32."""
    grid = to_grid(joints, box, size)
    cols, rows = np.meshgrid(np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32))
    r2 = 2 * sigma**2 * math.log(1 / CUTOFF)
    out = np.zeros((len(joints), joints.shape[1] + len(limbs), size, size), dtype=np.float32)
    for t in range(len(joints)):
        for k, (u, v, c) in enumerate(grid[t]):
            d2 = (cols - u) ** 2 + (rows - v) ** 2
            out[t, k] = c * np.exp(-d2 / (2 * sigma**2)) * (d2 <= r2)
        for m, (a, b) in enumerate(limbs):
            (ax, ay, ca), (bx, by, cb) = grid[t, a], grid[t, b]
            dx, dy = bx - ax, by - ay
            length2 = dx * dx + dy * dy
            s = np.clip(((cols - ax) * dx + (rows - ay) * dy) / length2, 0, 1) if length2 > 0 else 0.0
            d2 = (cols - ax - s * dx) ** 2 + (rows - ay - s * dy) ** 2
            out[t, len(grid[t]) + m] = min(ca, cb) * np.exp(-d2 / (2 * sigma**2)) * (d2 <= r2)
    return out


def load_inputs(n_frames: int):
    """A list of (joints (T, 13, 3), box) sequences totalling >= n_frames, and where they came from."""
    data = Path(os.environ.get("SHARED_DATA", ROOT.parent / "shared" / "data")) / "penn_action" / "labels"
    seqs = []
    if data.is_dir():
        from pipeline.datasets.penn_action import read_labels

        for path in sorted(data.glob("*.mat")):
            lab = read_labels(path)
            joints = np.stack([lab.x, lab.y, lab.visibility.astype(np.float64)], axis=-1)
            seqs.append((joints, crop_box(joints, pad=0.1, square=True, fallback=(0, 0, lab.width, lab.height))))
            if sum(len(j) for j, _ in seqs) >= n_frames:
                return seqs, f"penn_action labels ({len(seqs)} sequences)"
    rng = np.random.default_rng(0)
    while sum(len(j) for j, _ in seqs) < n_frames:
        walk = np.cumsum(rng.normal(0, 3, (80, 13, 2)), axis=0) + rng.uniform(100, 300, (1, 13, 2))
        joints = np.concatenate([walk, (rng.random((80, 13, 1)) > 0.1).astype(float)], axis=-1)
        seqs.append((joints, crop_box(joints, pad=0.1, square=True)))
    return seqs, f"synthetic ({len(seqs)} sequences)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--baseline-frames", type=int, default=400)
    parser.add_argument("--sigma", type=float, default=None, help="default: params.yaml heatmaps.sigma")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    params = load_section("heatmaps", HeatmapsParams, ROOT / "params.yaml")
    sigma = args.sigma or params.sigma
    size, limbs = params.size, get_layout("penn13").limbs
    seqs, source = load_inputs(args.frames)
    # one box for the whole batch (the renderer's own cost); per-sequence boxes in the per-sequence run
    joints = np.concatenate([j for j, _ in seqs])[: args.frames]
    box = seqs[0][1]

    t0 = time.perf_counter()
    render(joints[:8], limbs, box, size, sigma)
    first_call_s = time.perf_counter() - t0
    cores = len(os.sched_getaffinity(0))
    batched = median_seconds(lambda: render(joints, limbs, box, size, sigma, threads=cores), args.repeats)
    one_core = median_seconds(lambda: render(joints, limbs, box, size, sigma, threads=1), args.repeats)
    per_seq = median_seconds(lambda: [render(j, limbs, b, size, sigma, threads=1) for j, b in seqs], args.repeats)
    n_seq_frames = sum(len(j) for j, _ in seqs)

    few = joints[: args.baseline_frames]
    t0 = time.perf_counter()
    slow = baseline_render(few, limbs, box, size, sigma)
    baseline_s = time.perf_counter() - t0
    max_diff = float(np.abs(slow - render(few, limbs, box, size, sigma)).max())

    fps = len(joints) / batched
    baseline_fps = len(few) / baseline_s
    print(json.dumps({
        "benchmark": "heatmaps_render",
        "inputs": source,
        "frames": len(joints),
        "joints": 13,
        "limbs": len(limbs),
        "size": size,
        "sigma": sigma,
        "cores": cores,
        "frames_per_s": round(fps),
        "frames_per_s_one_core": round(len(joints) / one_core),
        "frames_per_s_per_sequence_calls_one_core": round(n_seq_frames / per_seq),
        "baseline_frames_per_s": round(baseline_fps, 1),
        "speedup_vs_baseline": round(fps / baseline_fps, 1),
        "max_abs_diff_vs_baseline": max_diff,
        "output_gb_per_s": round(fps * (13 + len(limbs)) * size * size * 4 / 1e9, 2),
        "first_call_s": round(first_call_s, 2),
        "load_average_1min": round(os.getloadavg()[0], 1),
        "target_frames_per_s": TARGET,
        "meets_target": fps >= TARGET,
    }))


if __name__ == "__main__":
    main()
