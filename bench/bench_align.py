"""Benchmark: `pipeline align` of two 10 s videos at 30 fps, from nothing and again from the cache.

    python bench/bench_align.py [--workdir DIR]

Two real 10 s, 30 fps, 360 x 640 H.264 clips are cut from ../shared/data/videos/golf_swing/swing4.mp4 (frames
0-299 and 150-449: one golfer, two files with different content) and a third 10 s clip from swing5 padded with
its last frame. Runs, each as the user would, `pipeline align` in a subprocess (Python start-up included):
1. `cold`: A with B and an empty cache (index, MediaPipe pose estimation, keypoints for both, then the rest);
2. `cached`: the same again into a new folder (goal: <= 5 s);
3. `third`: A with the third clip (A's poses come from the cache; only the third is estimated).
Reports each run's wall time, its CPU time (user + system, all threads: what it costs whatever the load; on
an otherwise idle machine the wall time is about this or less) and the steps align times itself (alignment.json `timings_s`: per video index /
estimate_pose / keypoints, features, align, videos, page), the machine's cores and its load average before and
after (the machine is shared: other jobs inflate the times). Goals: cold <= 60 s, cached <= 5 s on 2 cores.
Prints ONE JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GOLF = ROOT.parent / "shared" / "data" / "videos" / "golf_swing"


def make_clips(folder: Path) -> dict[str, Path]:
    from pipeline.video.reader import iter_frames
    from pipeline.video.writer import write_video

    swing4 = np.stack([rgb for _, rgb in iter_frames(GOLF / "swing4.mp4")])
    swing5 = np.stack([rgb for _, rgb in iter_frames(GOLF / "swing5.mp4")])
    swing5 = np.concatenate([swing5, np.repeat(swing5[-1:], 300 - len(swing5), 0)])
    clips = {"a": swing4[:300], "b": swing4[150:450], "c": swing5[:300]}
    paths = {}
    for name, frames in clips.items():
        paths[name] = write_video(folder / f"clip_{name}.mp4", frames, 30)
    return paths


def run_align(work: Path, a: Path, b: Path, out: str) -> dict:
    import resource

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "--params", str(ROOT / "params.yaml"), "-q", "align", str(a), str(b),
         "--out", out, "--cache", str(work / "cache")],
        cwd=work, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if result.returncode:
        raise SystemExit(f"align failed:\n{result.stdout}\n{result.stderr[-3000:]}")
    timings = json.loads((work / out / "alignment.json").read_text())["timings_s"]
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "steps_s": timings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    if not GOLF.is_dir():
        raise SystemExit(f"the golf swing videos are not at {GOLF}")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_align_"))
    shutil.rmtree(work / "cache", ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    clips = make_clips(work)
    load_before = os.getloadavg()
    runs = {
        "cold": run_align(work, clips["a"], clips["b"], "out_cold"),
        "cached": run_align(work, clips["a"], clips["b"], "out_cached"),
        "third": run_align(work, clips["a"], clips["c"], "out_third"),
    }
    import mediapipe

    print(json.dumps({
        "benchmark": "align",
        "videos": "two 10 s clips, 30 fps, 360 x 640 H.264 (swing4 frames 0-299 and 150-449); third: swing5 padded",
        "cores": len(os.sched_getaffinity(0)),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "mediapipe": mediapipe.__version__,
        "goals_s": {"cold": 60, "cached": 5},
        **runs,
    }))


if __name__ == "__main__":
    main()
