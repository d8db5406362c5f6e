"""Benchmark the decode stage against bare PyAV loops over the same files; prints one JSON line.

Synthetic H.264 videos (textured, moving, noisy content) are written to a temp dir. Measured on the
same files, in one process each:
- `bare_fps`: a bare PyAV loop that decodes every frame and converts it to the stage's output (one
  swscale pass to RGB at shorter side `resize_short`, then the centre crop): the library work the stage
  cannot avoid. The judged ratio is stage_fps / bare_fps (target >= 0.9), i.e. the cost of the stage's
  timestamps, resampling, zarr writes and bookkeeping (params.yaml's decode section; `--compression`).
- `bare_full_rgb_fps`: decode + full-resolution RGB conversion of every frame (the naive loop), and
  `decode_only_fps`: decode without conversion, for context.
- `stage_fps`: `stages.decode.run` with one worker at the dataset fps = the video fps (every frame kept);
  `stage_resampled_source_fps`: source frames per second when the dataset fps is a third of the
  video's (only kept frames are converted).
- The bare loop and the stage run alternately `--repeat` times; the best of each counts. `cpu_ratio`
  compares CPU time per frame (all threads of the process), which other load on the machine disturbs
  less than wall time.

    python bench/bench_decode.py [--videos 6 --frames 150 --width 640 --height 480]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.context import StageContext  # noqa: E402
from pipeline.manifest import DatasetSpec  # noqa: E402
from pipeline.sequences import make_table, write_index  # noqa: E402
from pipeline.video.reader import Geometry  # noqa: E402
from pipeline.video.timeline import resample_indices, uniform_times  # noqa: E402
from pipeline.video.writer import write_video  # noqa: E402
from stages import decode  # noqa: E402

FPS = 30.0
PARAMS = {"resize_short": 256, "crop": 224, "interpolation": "area", "length_tolerance": 3, "compression": "none"}


def synthetic_frames(n: int, height: int, width: int, seed: int) -> np.ndarray:
    """(n, H, W, 3) uint8: a drifting sinusoidal texture, a moving box and sensor-like noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = np.empty((n, height, width, 3), np.uint8)
    for t in range(n):
        base = 128 + 60 * np.sin((xx + 3 * t) / 17.0) * np.cos((yy - 2 * t) / 23.0)
        image = np.stack([base, np.roll(base, 7, axis=1), 255 - base], axis=-1)
        x0 = int((t * 5) % (width - 80))
        image[height // 3 : height // 3 + 80, x0 : x0 + 80] = (220, 40, 40)
        image += rng.normal(0, 6, image.shape)
        frames[t] = np.clip(image, 0, 255)
    return frames


def make_dataset(root: Path, n_videos: int, n_frames: int, height: int, width: int, fps: float, compression: str) -> StageContext:
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n_videos):
        path = write_video(root / f"v{i}.mp4", synthetic_frames(n_frames, height, width, i), FPS, crf=23)
        rows.append({
            "id": f"v{i}", "dataset": "bench", "split": "train", "activity": "a",
            "n_frames": len(resample_indices(uniform_times(n_frames, FPS), fps)), "fps": fps, "source_fps": FPS,
            "n_source_frames": n_frames, "video": str(path), "frames_dir": "", "pose": "", "pose_format": "",
            "fingerprint": f"v{i}", "labels": None,
        })
    import yaml

    (root / "params.yaml").write_text(yaml.safe_dump({"decode": {**PARAMS, "compression": compression}}))
    spec = DatasetSpec(name="bench", kind="videos", root=root, fps=fps, layout="penn13")
    ctx = StageContext(dataset=spec, params_path=root / "params.yaml", store_root=str(root / "data"), workdir=root)
    write_index(make_table(rows), ctx.index_path, {})
    return ctx


def timed(fn, *args) -> tuple[float, float, float]:
    """(frames returned by fn, wall seconds, CPU seconds of this process, all threads)."""
    wall, cpu = time.perf_counter(), time.process_time()
    frames = fn(*args)
    return frames, time.perf_counter() - wall, time.process_time() - cpu


def bare_loop(paths: list[Path], convert) -> int:
    """Decode every frame of `paths` and apply `convert` to it; returns the number of frames."""
    import av

    n = 0
    for path in paths:
        with av.open(str(path)) as container:
            for frame in container.decode(container.streams.video[0]):
                convert(frame)
                n += 1
    return n


def to_output(frame, geometry=Geometry(256, 224, "area")):
    height, width = geometry.resized(frame.height, frame.width)
    rgb = frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="AREA")
    top, left = geometry.crop_box(height, width)
    return np.ascontiguousarray(rgb[top : top + 224, left : left + 224])


def stage_run(ctx: StageContext) -> int:
    """One full decode run into a fresh store; returns the frames written."""
    shutil.rmtree(ctx.artifact("frames"), ignore_errors=True)
    return decode.run(ctx).frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--repeat", type=int, default=3, help="interleaved measurements of each; the best counts")
    parser.add_argument("--compression", default="none", choices=["none", "zstd"], help="decode.compression")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_decode_") as tmp:
        root = Path(tmp)
        ctx = make_dataset(root / "same", args.videos, args.frames, args.height, args.width, FPS, args.compression)
        paths = sorted((root / "same").glob("*.mp4"))
        n_source = args.videos * args.frames
        bare_loop(paths[:1], to_output)  # warm the file cache, the libraries and the stage's imports
        stage_run(replace(ctx, workers=1))
        bare, stage = [], []
        for _ in range(args.repeat):  # interleaved, best of each: robust to other load on the machine
            bare.append(timed(bare_loop, paths, to_output))
            stage.append(timed(stage_run, replace(ctx, workers=1)))
        full_rgb = timed(bare_loop, paths, lambda f: f.to_ndarray(format="rgb24"))
        decode_only = timed(bare_loop, paths, lambda f: None)
        resampled_root = root / "resampled"
        shutil.copytree(root / "same", resampled_root, ignore=shutil.ignore_patterns("data"))
        resampled = timed(stage_run, replace(make_index_at(resampled_root, ctx, FPS / 3), workers=1))
    bare_fps, stage_fps = max(n / w for n, w, _ in bare), max(n / w for n, w, _ in stage)
    bare_cpu, stage_cpu = min(c / n for n, _, c in bare), min(c / n for n, _, c in stage)
    print(json.dumps({
        "bench": "decode",
        "videos": args.videos, "frames_per_video": args.frames, "size": [args.width, args.height],
        "output": [224, 224], "compression": args.compression, "library": "PyAV (FFmpeg) " + _av_version(),
        "bare_fps": round(bare_fps, 1), "stage_fps": round(stage_fps, 1),
        "ratio": round(stage_fps / bare_fps, 3), "target": 0.9, "meets_target": stage_fps / bare_fps >= 0.9,
        "bare_fps_samples": [round(n / w, 1) for n, w, _ in bare],
        "stage_fps_samples": [round(n / w, 1) for n, w, _ in stage],
        "cpu_ms_per_frame": {"bare": round(1e3 * bare_cpu, 3), "stage": round(1e3 * stage_cpu, 3)},
        "cpu_ratio": round(bare_cpu / stage_cpu, 3),
        "bare_full_rgb_fps": round(full_rgb[0] / full_rgb[1], 1),
        "decode_only_fps": round(decode_only[0] / decode_only[1], 1),
        "stage_resampled_source_fps": round(n_source / resampled[1], 1), "resampled_fps": [FPS, FPS / 3],
    }))


def make_index_at(root: Path, ctx: StageContext, fps: float) -> StageContext:
    """The same videos indexed at another dataset fps."""
    from pipeline.sequences import read_index

    table = read_index(ctx.index_path).table.copy()
    table["video"] = [str(root / Path(v).name) for v in table["video"]]
    table["fps"] = fps
    table["n_frames"] = [len(resample_indices(uniform_times(n, FPS), fps)) for n in table["n_source_frames"]]
    spec = replace(ctx.dataset, root=root, fps=fps)
    new = replace(ctx, dataset=spec, params_path=root / "params.yaml", store_root=str(root / "data"), workdir=root)
    write_index(make_table(table.to_dict("records")), new.index_path, {})
    return new


def _av_version() -> str:
    import av

    return av.__version__


if __name__ == "__main__":
    main()
