"""Benchmark: the estimate_pose stage against a bare MediaPipe loop over the same frames, on real videos of people.

The videos of ../shared/data/videos (golf swings and jumping jacks, 360 x 640 to 1280 x 720, 1238 frames) form one
`videos` dataset at 30 fps, where every source frame is on the timeline, so both sides estimate exactly the
same frames. The bare loop decodes each video with PyAV (`to_ndarray(format="rgb24")`) and calls
`mp.solutions.pose.Pose(...).process` on every frame, one graph per video, nothing else; the stage runs
`stages.estimate_pose.run` in this process (`workers=1`: decode, frame selection, landmarks to pixels, the
zarr write, provenance, the runner). Runs alternate (bare, stage, bare, stage, ...) so that load from other
processes hits both alike; the ratio is of the medians of one run of this script. Frames/s per core = frames
per CPU-second of this process (MediaPipe's graph threads included). A last run with `--workers` processes
shows the scaling across sequences. Prints one JSON line.

    python bench/bench_estimate_pose.py [--repeats 3] [--workers 2] [--videos ../shared/data/videos]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

TARGET = 0.9  # the stage runs at >= 0.9x the bare loop


def bare_loop(videos: list[Path], settings) -> int:
    """Decode every frame of every video and run MediaPipe Pose on it; returns the frames processed."""
    import av
    import mediapipe as mp

    n = 0
    for path in videos:
        with mp.solutions.pose.Pose(static_image_mode=settings.static_image_mode,
                                    model_complexity=settings.model_complexity,
                                    smooth_landmarks=settings.smooth_landmarks,
                                    min_detection_confidence=settings.min_detection_confidence,
                                    min_tracking_confidence=settings.min_tracking_confidence) as pose, \
                av.open(str(path)) as container:
            for frame in container.decode(video=0):
                pose.process(frame.to_ndarray(format="rgb24"))
                n += 1
    return n


def stage_run(videos_root: Path, work: Path, workers: int) -> int:
    """The estimate_pose stage on a fresh store; returns the source frames it estimated."""
    from pipeline.context import StageContext
    from pipeline.manifest import DatasetSpec
    from pipeline.store import ArtifactStore
    from stages import estimate_pose

    spec = DatasetSpec(name="people", kind="videos", root=videos_root, fps=30.0, layout="penn13",
                       options={"videos": "."})
    ctx = StageContext(dataset=spec, params_path=work / "params.yaml", store_root=str(work / "data"),
                       workers=workers, workdir=work)
    estimate_pose.run(ctx)
    store = ArtifactStore(ctx.artifact("poses"))
    return sum(int(store.attrs(s)["n_estimated"]) for s in store.sequences())


def timed(fn) -> tuple[int, float, float]:
    """(frames, wall seconds, CPU seconds of this process) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    frames = fn()
    return frames, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--videos", type=Path, default=ROOT.parent / "shared" / "data" / "videos")
    args = parser.parse_args()
    if not args.videos.is_dir():
        raise SystemExit(f"no videos at {args.videos} (the real test videos of ../shared/data/videos)")
    import logging

    from pipeline.params import load_section
    from pipeline.skeletons.estimator import mediapipe_version
    from stages import index
    from stages.estimate_pose import EstimatePoseParams

    logging.basicConfig(level=logging.WARNING)
    videos = sorted(args.videos.rglob("*.mp4"))
    settings = load_section("estimate_pose", EstimatePoseParams, ROOT / "params.yaml").settings()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "params.yaml").write_text((ROOT / "params.yaml").read_text())
        _index(tmp, args.videos, index)
        bare, stage = [], []
        for r in range(args.repeats):
            bare.append(timed(lambda: bare_loop(videos, settings)))
            stage.append(timed(lambda r=r: stage_run(args.videos, _fresh(tmp, f"stage{r}"), 1)))
        parallel = timed(lambda: stage_run(args.videos, _fresh(tmp, "parallel"), args.workers))
    assert len({f for f, _, _ in bare + stage}) == 1, "both sides must estimate the same frames"
    frames = bare[0][0]
    bare_fps = float(np.median([f / w for f, w, _ in bare]))
    stage_fps = float(np.median([f / w for f, w, _ in stage]))
    ratio = stage_fps / bare_fps
    print(json.dumps({
        "benchmark": "estimate_pose",
        "videos": len(videos),
        "frames": frames,
        "estimator": mediapipe_version(),
        "model_complexity": settings.model_complexity,
        "bare_frames_per_s": round(bare_fps, 1),
        "stage_frames_per_s": round(stage_fps, 1),
        "ratio": round(ratio, 3),
        "target_ratio": TARGET,
        "meets_target": bool(ratio >= TARGET),
        "pair_ratios": [round((fs / ws) / (fb / wb), 3) for (fb, wb, _), (fs, ws, _) in zip(bare, stage)],
        "stage_frames_per_cpu_s": round(float(np.median([f / c for f, _, c in stage])), 1),
        "bare_frames_per_cpu_s": round(float(np.median([f / c for f, _, c in bare])), 1),
        f"stage_frames_per_s_{args.workers}_workers": round(parallel[0] / parallel[1], 1),
        "cores": len(os.sched_getaffinity(0)),
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "repeats": args.repeats,
    }))


def _index(work: Path, videos: Path, index_stage) -> None:
    """data/people/index.parquet of the videos, written once and shared by every stage run."""
    from pipeline.context import StageContext
    from pipeline.manifest import DatasetSpec

    spec = DatasetSpec(name="people", kind="videos", root=videos, fps=30.0, layout="penn13", options={"videos": "."})
    index_stage.run(StageContext(dataset=spec, params_path=work / "params.yaml", workdir=work))


def _fresh(tmp: Path, name: str) -> Path:
    """A work folder with the shared index and params, and no poses store yet."""
    import shutil

    work = tmp / name
    (work / "data" / "people").mkdir(parents=True)
    shutil.copy(tmp / "params.yaml", work / "params.yaml")
    shutil.copy(tmp / "data" / "people" / "index.parquet", work / "data" / "people" / "index.parquet")
    return work


if __name__ == "__main__":
    main()
