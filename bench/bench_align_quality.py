"""Benchmark: how well `pipeline align` matches the phases of two real golf swings, both directions.

    python bench/bench_align_quality.py [--workdir DIR] [--model models/pennaction/masa]

The two labelled swings of ../shared/data/videos/golf_swing (swing4: 450 frames, another golfer in swing5: 253;
per-frame phases Setup, Takeaway, Backswing, Downswing, Follow-through; swing5 has no Setup) go through align's
own stages (MediaPipe poses cached in <workdir>/cache). For A -> B in both directions it scores the share of
A's frames mapped onto a frame of B with the same phase:
- `linear`: frame i of A -> frame i * N_b / N_a of B (the naive answer);
- `dtw_raw`: the issue's reference, plain DTW (symmetric, closed ends) on BlazePose shoulders-to-ankles (12
  joints) centred on the hips and scaled by the torso per frame, Euclidean distance;
- `align`: align's defaults (params.yaml `align`), then one row per variant that changes one setting from them;
- `align_model`: align's defaults with --model, when the model folder exists (else reported absent).
Each score is given over all of A's frames (`all`) and over A's frames whose phase occurs in B (`shared`):
swing4's 150 Setup frames have no counterpart in swing5, so for swing4 -> swing5 `all` cannot exceed 300 / 450
(`ceiling`). For align's defaults, where each phase of A starts in B compared with B's own labels
(`align_phase_start_offsets_frames`). Prints ONE JSON line. Labels only score; nothing is fitted to them.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GOLF = ROOT.parent / "shared" / "data" / "videos" / "golf_swing"
BODY = [11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28]  # BlazePose shoulders, elbows, wrists, hips, knees, ankles
VARIANTS = {  # one setting changed from align's defaults each (the reasons are in docs/align.md)
    "no_velocity": {"velocity_weight": 0.0},
    "velocity_1.0": {"velocity_weight": 1.0},
    "no_smoothing": {"smooth_s": 0.0},
    "smooth_0.2s": {"smooth_s": 0.2},
    "symmetric1": {"step_pattern": "symmetric1"},
    "asymmetric": {"step_pattern": "asymmetric"},
    "open_ends": {"open_begin": True, "open_end": True},
    "no_mirror": {"mirror": False},
    "min_confidence_0.5": {"min_confidence": 0.5},
    "ot": {"method": "ot"},
}


def phases(name: str) -> np.ndarray:
    with (GOLF / f"{name}.phases.csv").open() as fh:
        return np.array([row["phase"] for row in csv.DictReader(fh)])


def score(mapping: np.ndarray, pa: np.ndarray, pb: np.ndarray) -> dict[str, float]:
    same = pa == pb[mapping]
    shared = np.isin(pa, np.unique(pb))
    return {"all": round(float(same.mean()), 3), "shared": round(float(same[shared].mean()), 3)}


def boundary_offsets(mapping: np.ndarray, pa: np.ndarray, pb: np.ndarray) -> dict[str, int]:
    """For each phase of A that B has too: B's frame matched with the phase's first frame in A minus the phase's
    first frame in B (frames; > 0: matched late). The hand labels themselves may be a few frames late."""
    out = {}
    for phase in dict.fromkeys(pa):
        if phase in set(pb):
            out[phase] = int(mapping[np.argmax(pa == phase)]) - int(np.argmax(pb == phase))
    return out


def raw_dtw_mapping(joints_a: np.ndarray, joints_b: np.ndarray) -> np.ndarray:
    """The issue's reference: plain DTW on hip-centred, torso-scaled BlazePose shoulders-to-ankles."""
    from model.blocks.warping import dtw_path, frame_mapping
    from model.inputs.pose_features import embedding_cost

    def feats(j: np.ndarray) -> np.ndarray:
        j = np.nan_to_num(j)
        hip, shoulder = j[:, [23, 24], :2].mean(1), j[:, [11, 12], :2].mean(1)
        torso = np.maximum(np.linalg.norm(shoulder - hip, axis=1), 1e-6)
        return ((j[:, BODY, :2] - hip[:, None]) / torso[:, None, None]).reshape(len(j), -1)

    cost = embedding_cost(feats(joints_a), feats(joints_b))
    return frame_mapping(dtw_path(cost, step_pattern="symmetric1").path, cost)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None, help="keeps the pose cache between runs")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "pennaction" / "masa")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not GOLF.is_dir():
        raise SystemExit(f"the labelled golf swings are not at {GOLF}")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_align_quality_"))
    work.mkdir(parents=True, exist_ok=True)
    os.chdir(work)  # the stages write index paths relative to the working directory

    from pipeline.params import load_section
    from stages import align as stage
    from stages import estimate_pose, index, keypoints
    from stages.shared import align_sources as sources

    params = load_section("align", stage.AlignParams, ROOT / "params.yaml")
    upstream = (index.run, estimate_pose.run, keypoints.run)
    start = time.perf_counter()
    src = {name: sources.from_file(GOLF / f"{name}.mp4", name, cache=work / "cache", params_path=ROOT / "params.yaml",
                                   fps=params.fps, layout=sources.ESTIMATED_LAYOUT, upstream=upstream)
           for name in ("swing4", "swing5")}
    pose_seconds = time.perf_counter() - start
    model = None
    if args.model.is_dir():
        from stages.shared.align_model import load_align_model

        model = load_align_model(args.model, "cpu")
    results = {}
    for a, b in (("swing4", "swing5"), ("swing5", "swing4")):
        pa, pb = phases(a), phases(b)
        row = {"ceiling_all": round(float(np.isin(pa, np.unique(pb)).mean()), 3)}
        n_a, n_b = src[a].n_frames, src[b].n_frames
        row["linear"] = score(np.minimum(((np.arange(n_a) + 0.5) * n_b / n_a).astype(int), n_b - 1), pa, pb)
        row["dtw_raw"] = score(raw_dtw_mapping(src[a].joints, src[b].joints), pa, pb)
        mapping = stage.align_features(*stage._features(src[a], src[b], params, None), params).mapping
        row["align"] = score(mapping, pa, pb)
        row["align_phase_start_offsets_frames"] = boundary_offsets(mapping, pa, pb)
        for name, change in VARIANTS.items():
            p = dataclasses.replace(params, **change)
            row[f"align_{name}"] = score(stage.align_features(*stage._features(src[a], src[b], p, None), p).mapping,
                                         pa, pb)
        if model is not None:
            row["align_model"] = score(stage.align_features(*stage._features(src[a], src[b], params, model),
                                                            params).mapping, pa, pb)
        results[f"{a}->{b}"] = row
    print(json.dumps({
        "benchmark": "align_quality",
        "videos": {name: {"frames": s.n_frames, "fps": s.fps} for name, s in src.items()},
        "model": str(args.model) if model is not None else f"absent ({args.model} not found)",
        "pose_seconds": round(pose_seconds, 2),
        "results": results,
    }))


if __name__ == "__main__":
    main()
