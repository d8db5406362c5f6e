"""Benchmark: the `heatmaps` stage end to end over all real Penn Action sequences (2150, ~156k frames).

Runs `index`, then `keypoints`, then `heatmaps` (the timed one: read keypoints, crop, render, quantise,
compress, write) into a temporary working directory, with params.yaml's sections and every core as
local workers. Prints one JSON line: time, frames/s and store size on disk, judged against <= 60 s.
Needs ../shared/data/penn_action (or $SHARED_DATA); prints a skip line without it.

    python bench/bench_heatmaps_stage.py [--workers N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.context import StageContext, default_workers  # noqa: E402
from pipeline.manifest import DatasetSpec  # noqa: E402
from stages import heatmaps, index, keypoints  # noqa: E402

TARGET_S = 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--keep", type=Path, default=None, help="work here and keep the stores (default: a temp dir)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    penn = Path(os.environ.get("SHARED_DATA", ROOT.parent / "shared" / "data")) / "penn_action"
    if not (penn / "labels").is_dir():
        print(json.dumps({"benchmark": "heatmaps_stage", "skipped": f"no Penn Action labels in {penn}"}))
        return
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="bench_heatmaps_"))
    try:
        spec = DatasetSpec(name="pennaction", kind="penn_action", root=penn, fps=30.0, layout="penn13")
        ctx = StageContext(dataset=spec, params_path=ROOT / "params.yaml", store_root=str(workdir / "data"),
                           workers=args.workers, workdir=workdir)
        times = {}
        for name, stage in (("index", index), ("keypoints", keypoints), ("heatmaps", heatmaps)):
            t0 = time.perf_counter()
            summary = stage.run(ctx)
            times[name] = time.perf_counter() - t0
        store = Path(ctx.artifact("heatmaps"))
        size = sum(p.stat().st_size for p in store.rglob("*") if p.is_file())
        files = sum(1 for p in store.rglob("*") if p.is_file())
        params = ctx.params("heatmaps", heatmaps.HeatmapsParams)
        raw = summary.frames * 27 * params.size**2 * (2 if params.dtype == "float16" else 1)
        print(json.dumps({
            "benchmark": "heatmaps_stage",
            "sequences": len(summary.computed),
            "frames": summary.frames,
            "workers": args.workers,
            "dtype": params.dtype,
            "sigma": params.sigma,
            "heatmaps_s": round(times["heatmaps"], 1),
            "frames_per_s": round(summary.frames / times["heatmaps"]),
            "store_mb": round(size / 2**20, 1),
            "store_files": files,
            "compression_ratio": round(raw / size, 2),
            "index_s": round(times["index"], 1),
            "keypoints_s": round(times["keypoints"], 1),
            "target_s": TARGET_S,
            "meets_target": times["heatmaps"] <= TARGET_S,
        }))
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
