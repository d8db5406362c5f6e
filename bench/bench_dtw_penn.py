"""Benchmark: how well the DTW teacher (`masa.relate_weight`, `la2ds.relate_weight`) separates Penn Action's 13
actions on its own.

    python bench/bench_dtw_penn.py [--split test|val] [--workdir DIR] [--source keypoints|heatmaps]

Runs `index` and `keypoints` (and `heatmaps` for --source heatmaps) on the official Penn Action labels (the work
folder is shared with bench_train_penn.py), turns each video into the teacher's curves (keypoints: MASA's,
`model.methods.masa.skeleton_curves`, normalised skeleton at `masa.relate_frames` uniform frames; heatmaps:
LA2DS's, `model.methods.la2ds.heatmap_curves`, the joint channels' centroids, normalised the same way, at
`la2ds.relate_frames` frames) and prints ONE JSON line with, per split, the share of
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
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_train_penn import prepare_index  # noqa: E402
from bench.workdir import make_context  # noqa: E402


def nearest_accuracy(distance: np.ndarray, labels: np.ndarray) -> float:
    """Share of rows whose nearest other row (smallest distance, diagonal excluded) has their label."""
    d = distance.copy()
    np.fill_diagonal(d, np.inf)
    return float((labels[d.argmin(1)] == labels).mean())


def curve_source(ctx, source: str, layout):
    """(a function: sequence ids -> their teacher curves (N, L, K, D), the JSON result's header) for `source`
    and the keypoints' skeleton `layout`."""
    from pipeline.store import ArtifactStore

    if source == "keypoints":
        from model.inputs.coordinates import CoordinateInput
        from model.methods.masa import MasaParams, skeleton_curves

        params = ctx.params("masa", MasaParams)
        store = ArtifactStore(ctx.artifact("keypoints"))

        def keypoint_curves(ids: list[str]) -> torch.Tensor:
            joints = [store.read(seq, "joints_2d") for seq in ids]
            coords = CoordinateInput("joints_2d", joints[0].shape[1:], layout.name, params.normalise,
                                     params.use_confidence)
            return skeleton_curves(joints, coords, params.relate_frames)

        return keypoint_curves, {"source": source, "frames": params.relate_frames, "normalise": params.normalise}
    from model.methods.la2ds import La2dsParams, heatmap_curves
    from stages.shared.heatmap_store import read_maps

    params = ctx.params("la2ds", La2dsParams)
    store = ArtifactStore(ctx.artifact("heatmaps"))

    def map_curves(ids: list[str]) -> torch.Tensor:
        return torch.stack([heatmap_curves(read_maps(store, seq), layout, params.relate_frames) for seq in ids])

    return map_curves, {"source": source, "frames": params.relate_frames, "normalise": "sequence"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("test", "val"), default="test")
    parser.add_argument("--workdir", type=Path, default=None, help="default: .cache/bench_train_penn/<split>")
    parser.add_argument("--source", choices=("keypoints", "heatmaps"), default="keypoints",
                        help="the skeletons MASA's teacher reads (keypoints) or LA2DS's (the heatmaps' centroids)")
    args = parser.parse_args()
    work = args.workdir or ROOT / ".cache" / "bench_train_penn" / args.split
    ctx = make_context(work, "pennaction", [])
    prepare_index(ctx, args.split)
    from stages import keypoints

    keypoints.run(ctx)
    if args.source == "heatmaps":
        from stages import heatmaps

        heatmaps.run(ctx)
    from model.blocks.dtw import mirror_dtw_matrix
    from model.losses.relate import DtwTeacher
    from pipeline.sequences import read_index
    from pipeline.skeletons.layouts import get_layout
    from pipeline.store import ArtifactStore

    table = read_index(ctx.index_path).table
    layout = get_layout(ArtifactStore(ctx.artifact("keypoints")).provenance["layout"])
    curves_of, result = curve_source(ctx, args.source, layout)
    for split in ("train", args.split):
        rows = table[table["split"] == split]
        x = curves_of(list(rows["id"]))  # (N, L, K, D)
        teacher = DtwTeacher(temperature=1.0, teacher_temperature=1.0, max_sequences=len(x), owner="bench")
        start = time.perf_counter()
        teacher.fit(x, layout.joint_flip_permutation)  # what training computes (temperatures unused here)
        seconds = time.perf_counter() - start
        with_mirror = teacher.distance.numpy()
        labels = rows["activity"].to_numpy()
        result[split] = {
            "videos": len(rows),
            "nn_accuracy_mirror": round(nearest_accuracy(with_mirror, labels), 4),
            "nn_accuracy_plain": round(nearest_accuracy(mirror_dtw_matrix(x.flatten(2).numpy()), labels), 4),
            "dtw_seconds": round(seconds, 2),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
