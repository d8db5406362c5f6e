"""Benchmark: SMPL and MANO forward passes (smplx, CPU, batched over frames) as the keypoints stage runs them.

Model files are generated with the real array shapes (SMPL: 6890 vertices, 24 joints; MANO: 778
vertices, 16 joints) in a temp dir, the SMPL one as an official-style chumpy pickle read through the
restricted unpickler. Times `pipeline.skeletons.body_models.lift` (forward, fingertips, reordering, orthographic
projection) on random poses. Prints one JSON line.

    python bench/bench_keypoints.py [--frames 8192] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.timing import median_seconds  # noqa: E402
from pipeline.skeletons.body_models import BATCH_VERTICES, lift  # noqa: E402
from tests.body_model_fixtures import write_model_dir  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import torch

    rng = np.random.default_rng(0)
    n = args.frames
    body = {"smpl_pose": rng.normal(0, 0.3, (n, 72)).astype(np.float32), "smpl_betas": rng.normal(0, 1, (n, 10)).astype(np.float32),
            "smpl_camera": np.tile(np.float32([200.0, 0.5, 0.5]), (n, 1))}
    hands = {f"{side}_hand_{key}": rng.normal(0, 0.3, (n, dim)).astype(np.float32)
             for side in ("left", "right") for key, dim in (("pose", 48), ("betas", 10), ("camera", 3))}
    with tempfile.TemporaryDirectory() as tmp:
        models = write_model_dir(Path(tmp))
        t0 = time.perf_counter()
        lift({k: v[:2] for k, v in body.items()}, models)
        lift({k: v[:2] for k, v in hands.items()}, models)
        load_s = time.perf_counter() - t0
        smpl_s = median_seconds(lambda: lift(body, models), args.repeats)
        mano_s = median_seconds(lambda: lift(hands, models), args.repeats)
    print(json.dumps({
        "benchmark": "keypoints_body_models",
        "frames": n,
        "batch_smpl": BATCH_VERTICES // 6890,
        "batch_mano": BATCH_VERTICES // 778,
        "torch_threads": torch.get_num_threads(),
        "smpl_frames_per_s": round(n / smpl_s),
        "mano_two_hands_frames_per_s": round(n / mano_s),
        "mano_hand_forwards_per_s": round(2 * n / mano_s),
        "model_load_s": round(load_s, 2),
        "load_average_1min": round(os.getloadavg()[0], 1),
        "reference": "ENVIRONMENT.md: SMPL forward ~600-1000 poses/s at batch 256 on this machine",
    }))


if __name__ == "__main__":
    main()
