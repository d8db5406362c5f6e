"""Benchmark: how well MASA's DTW teacher (`masa.relate_weight`) separates Penn Action's 13 actions on its own.

    python bench/bench_dtw_penn.py [--split test|val] [--workdir DIR]

Runs `index` and `keypoints` on the official Penn Action labels (the work folder is shared with
bench_train_penn.py), turns each video's 2D keypoints into the teacher's curves (`model.methods.masa.skeleton_curves`:
normalised skeleton, `masa.relate_frames` uniform frames) and prints ONE JSON line with, per split, the share of
videos whose DTW-nearest other video of the same split has their action, with and without mirror images, and
the seconds the N x N DTW matrix took (the teacher computes it over the training split before training).
No labels enter the teacher; they only score it here. The figure it is judged by: `nn_accuracy_mirror` on
the evaluation split, the clip vector's nearest-video accuracy it gives MASA to learn from (compare with MASA's
activity retrieval AP@10).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_train_penn import prepare_index  # noqa: E402
from bench.workdir import make_context  # noqa: E402


def nearest_accuracy(distance: np.ndarray, labels: np.ndarray) -> float:
    """Share of rows whose nearest other row (smallest distance, diagonal excluded) has their label."""
    d = distance.copy()
    np.fill_diagonal(d, np.inf)
    return float((labels[d.argmin(1)] == labels).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("test", "val"), default="test")
    parser.add_argument("--workdir", type=Path, default=None, help="default: .cache/bench_train_penn/<split>")
    args = parser.parse_args()
    work = args.workdir or ROOT / ".cache" / "bench_train_penn" / args.split
    ctx = make_context(work, "pennaction", [])
    prepare_index(ctx, args.split)
    from stages import keypoints

    keypoints.run(ctx)
    from model.blocks.dtw import mirror_dtw_matrix
    from model.inputs.coordinates import CoordinateInput
    from model.methods.masa import MasaParams, skeleton_curves
    from pipeline.sequences import read_index
    from pipeline.store import ArtifactStore

    params = ctx.params("masa", MasaParams)
    table = read_index(ctx.index_path).table
    store = ArtifactStore(ctx.artifact("keypoints"))
    layout = store.provenance["layout"]
    coords = None
    result: dict = {"frames": params.relate_frames, "normalise": params.normalise}
    for split in ("train", args.split):
        rows = table[table["split"] == split]
        joints = [store.read(seq, "joints_2d") for seq in rows["id"]]
        if coords is None:
            coords = CoordinateInput("joints_2d", joints[0].shape[1:], layout, params.normalise, params.use_confidence)
        x, mirrored = skeleton_curves(joints, coords, params.relate_frames)
        start = time.perf_counter()
        with_mirror = mirror_dtw_matrix(x, mirrored)
        seconds = time.perf_counter() - start
        labels = rows["activity"].to_numpy()
        result[split] = {
            "videos": len(rows),
            "nn_accuracy_mirror": round(nearest_accuracy(with_mirror, labels), 4),
            "nn_accuracy_plain": round(nearest_accuracy(mirror_dtw_matrix(x), labels), 4),
            "dtw_seconds": round(seconds, 2),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
