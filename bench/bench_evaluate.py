"""Benchmark: the whole evaluation protocol on a Penn-Action-sized synthetic set, timed per metric.

A synthetic set shaped like Penn Action (13 activities, ~1,000 videos of ~70 frames, 2-6 phases each,
128-d embeddings, per-frame phase labels), split into train / val; every metric of `model.metrics.protocol`
(Kendall's tau, frame and activity retrieval, SVM and logistic-regression phase classification at three
label fractions, progression, k-means segmentation, F1@k / Edit, action and segment recognition) runs on
it once. Prints one JSON line: seconds per metric, the total, and the target (<= 60 s on this machine).

    python bench/bench_evaluate.py [--videos 1000] [--dim 128] [--frames 70] [--time-baseline]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.metrics.baselines import time_feature  # noqa: E402
from model.metrics.protocol import ProtocolParams, VideoSet, evaluate_features  # noqa: E402
from pipeline.params import load_section  # noqa: E402

TARGET_S = 60.0


def synthetic_set(n_videos: int, dim: int, frames: int, activities: int, seed: int) -> tuple[VideoSet, VideoSet]:
    """Phase prototypes per activity + a smooth drift + per-video offset + frame noise (SVM accuracy ~0.9)."""
    rng = np.random.default_rng(seed)
    n_phases = 2 + np.arange(activities) % 5
    protos = [rng.normal(0, 1, size=(k, dim)) for k in n_phases]
    drift = rng.normal(0, 1, size=(activities, dim))
    split = {"train": ([], [], [], []), "val": ([], [], [], [])}
    for v in range(n_videos):
        a = v % activities
        n = int(rng.integers(int(frames * 0.6), int(frames * 1.4)))
        cuts = np.sort(rng.uniform(0.1, 0.9, size=n_phases[a] - 1)) * n
        phase = np.searchsorted(cuts, np.arange(n), side="right")
        t = np.arange(n)[:, None] / n
        emb = protos[a][phase] + t * drift[a] + rng.normal(0, 0.3, size=(1, dim)) + rng.normal(0, 2.5, size=(n, dim))
        ids, acts, embs, labels = split["train" if v % 2 == 0 else "val"]
        ids.append(f"seq{v:05d}"), acts.append(f"activity{a:02d}")
        embs.append(emb.astype(np.float32)), labels.append((10 * a + phase).astype(np.int64))
    return tuple(VideoSet(tuple(i), tuple(a), e, y) for i, a, e, y in split.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--frames", type=int, default=70, help="mean frames per video")
    parser.add_argument("--activities", type=int, default=13)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-baseline", action="store_true", help="also time the t/T baseline the stage adds")
    args = parser.parse_args()

    train, val = synthetic_set(args.videos, args.dim, args.frames, args.activities, args.seed)
    params = load_section("evaluate.protocol", ProtocolParams, Path(__file__).resolve().parents[1] / "params.yaml")
    load_before = os.getloadavg()[0]  # other work on the machine slows every figure below
    start = time.perf_counter()
    result = evaluate_features(train, val, params, seed=args.seed)
    total = time.perf_counter() - start
    out = {
        "bench": "evaluate",
        "videos": args.videos,
        "train_videos": len(train.ids),
        "val_videos": len(val.ids),
        "frames": int(sum(len(e) for e in train.embeddings + val.embeddings)),
        "dim": args.dim,
        "cpus": len(os.sched_getaffinity(0)),
        "load_average_1min_before": round(load_before, 2),
        "seconds_per_metric": {k: round(v, 2) for k, v in sorted(result.seconds.items())},
        "total_s": round(total, 2),
        "target_s": TARGET_S,
        "ratio_to_target": round(total / TARGET_S, 3),
        "meets_target": total <= TARGET_S,
        "sanity": {
            "kendalls_tau": round(result.metrics["kendalls_tau"]["overall"], 4),
            "phase_classification_svm_100pct": round(result.metrics["phase_classification_svm_100pct"]["overall"], 4),
            "action_recognition": round(result.metrics["action_recognition"]["overall"], 4),
        },
    }
    if args.time_baseline:
        start = time.perf_counter()
        evaluate_features(*(s.with_embeddings([time_feature(len(e)) for e in s.embeddings]) for s in (train, val)),
                          params, seed=args.seed)
        out["time_baseline_s"] = round(time.perf_counter() - start, 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
