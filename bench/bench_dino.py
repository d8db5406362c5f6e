"""Benchmark DINOv2 feature extraction: the stage's loop against the model alone; prints one JSON line.

Random-weight DINOv2 checkpoints of the released shapes are written to a temp dir (no download), and
a frames.zarr of random 224 x 224 uint8 frames in sequences of `--seq-frames`. Measured in one run:
- `model_fps`: the model alone on preloaded, already normalised tensors on the device, same batch size,
  same dtype (float32 on CPU; bf16 autocast on CUDA), inference mode;
- `stage_fps`: the stage's embedding loop (`pipeline.dino.embedding.embed_jobs`, model already loaded): read
  frames.zarr in background threads, copy to the device, normalise there, model, pool, write dino.zarr;
- `stage_run_fps`: the whole `stages.extract_dino.run` (index, fingerprints, model loading included).
The model and the stage loop are measured alternately `--repeat` times and the best of each counts, so
that other load on the machine hurts neither side alone. The judged ratio is stage_fps / model_fps
(target >= 0.9); `cpu_ratio` compares CPU time per frame (all threads), which other load on the
machine disturbs less than wall time. On CUDA each shape also gets its share of
the GPU's bf16 dense peak from the FLOPs per 224 x 224 frame (ViT-S/14 ~ 12, ViT-B/14 46.3, ViT-g/14 599
GFLOPs).

    python bench/bench_dino.py                                    # CPU: dinov2-small shape, fp32
    python bench/bench_dino.py --device cuda --shapes base giant  # GPU: bf16, bigger batches
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pipeline.context import StageContext  # noqa: E402
from pipeline.manifest import DatasetSpec  # noqa: E402
from pipeline.sequences import make_table, write_index  # noqa: E402
from pipeline.store import ArtifactStore  # noqa: E402

GFLOPS_PER_FRAME = {"small": 12.0, "base": 46.3, "large": 161.0, "giant": 599.0}
# bf16 dense tensor-core peaks, TFLOP/s (vendor datasheets, without sparsity), matched against
# torch.cuda.get_device_name in order: the first entry whose words all appear in the name wins.
PEAK_TFLOPS = [("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("H200", 989.0), ("A100", 312.0), ("L40S", 362.0)]


def make_dataset(root: Path, n_frames: int, seq_frames: int, model_dir: Path, args) -> StageContext:
    import yaml

    rng = np.random.default_rng(0)
    frames = ArtifactStore(str(root / "data" / "bench" / "frames.zarr"), mode="a")
    rows, done = [], 0
    while done < n_frames:
        n = min(seq_frames, n_frames - done)
        seq_id = f"s{len(rows):05d}"
        rgb = rng.integers(0, 256, (n, 224, 224, 3), dtype=np.uint8)
        frames.write_sequence(seq_id, {"rgb": (rgb, ("time", "y", "x", "channel"))}, fingerprint=seq_id,
                              attrs={"fps": 30.0, "n_frames": n}, compression=args.frames_compression)
        rows.append({"id": seq_id, "dataset": "bench", "split": "train", "activity": "a", "n_frames": n,
                     "fps": 30.0, "source_fps": 30.0, "n_source_frames": n, "video": f"{seq_id}.mp4",
                     "frames_dir": "", "pose": "", "pose_format": "", "fingerprint": seq_id, "labels": None})
        done += n
    params = {"model": str(model_dir), "revision": "main", "pooling": args.pooling, "image_size": 224,
              "dtype": "auto", "batch_size": args.batch_size, "num_workers": args.num_workers, "group_frames": 8192}
    (root / "params.yaml").write_text(yaml.safe_dump({"extract_dino": params}))
    spec = DatasetSpec(name="bench", kind="videos", root=root, fps=30.0, layout="penn13")
    ctx = StageContext(dataset=spec, params_path=root / "params.yaml", store_root=str(root / "data"), workdir=root)
    write_index(make_table(rows), ctx.index_path, {})
    return ctx


def model_alone_fps(model, device, batch_size: int, n_frames: int, bf16: bool) -> tuple[float, float]:
    """(frames/s, CPU seconds per frame) of the bare forward on preloaded, normalised (B, 3, 224, 224)
    tensors on the device."""
    import torch

    batch = torch.randn(batch_size, 3, 224, 224, device=device)
    n_batches = max(1, n_frames // batch_size)

    def forward():
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            return model(pixel_values=batch).last_hidden_state

    forward()  # warm-up (kernel selection, caches)
    _sync(device)
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(n_batches):
        forward()
    _sync(device)
    frames = n_batches * batch_size
    return frames / (time.perf_counter() - start), (time.process_time() - cpu) / frames


def stage_loop_fps(ctx: StageContext, device_name: str) -> tuple[float, float]:
    """(frames/s, CPU seconds per frame) of the embedding loop, model already loaded (cached here)."""
    from pipeline.device import resolve_device
    from pipeline.dino.embedding import cached_model, embed_jobs
    from pipeline.dino.model import resolve
    from pipeline.params import to_dict
    from pipeline.sequences import read_index
    from stages.extract_dino import STAGE, ExtractDinoParams, make_jobs

    params = ctx.params(STAGE, ExtractDinoParams)
    source = resolve(params.model, params.revision)
    device = resolve_device(device_name)
    cached_model(source, device)
    rows = list(read_index(ctx.index_path).rows())
    jobs, _ = make_jobs(ArtifactStore(ctx.artifact("frames")), rows, params, source)
    settings = {**to_dict(params), "source": dataclasses.asdict(source), "device": device_name}
    frames_url, dino_url = ctx.artifact("frames"), ctx.artifact("dino")
    ArtifactStore(dino_url, mode="a")
    embed_jobs(frames_url, dino_url, jobs[:1], settings, cache_model=True)  # warm-up
    _sync(device)
    start, cpu = time.perf_counter(), time.process_time()
    done, failures = embed_jobs(frames_url, dino_url, jobs, settings, cache_model=True)
    _sync(device)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    if failures or len(done) != len(jobs):
        raise RuntimeError(f"benchmark run failed: {failures}")
    frames = sum(j.n_frames for j in jobs)
    return frames / seconds, cpu / frames


def stage_run_fps(ctx: StageContext, device_name: str) -> float:
    from stages import extract_dino

    shutil.rmtree(ctx.artifact("dino"), ignore_errors=True)
    start = time.perf_counter()
    summary = extract_dino.run(ctx, device=device_name)
    return summary.frames / (time.perf_counter() - start)


def bench_shape(shape: str, args, root: Path) -> dict:
    import torch

    from pipeline.device import resolve_device
    from pipeline.dino.embedding import resolve_dtype
    from pipeline.dino.model import load_model, resolve, save_random_checkpoint

    device = resolve_device(args.device)
    bf16 = resolve_dtype("auto", device) == "bfloat16"
    model_dir = save_random_checkpoint(root / f"dinov2-{shape}", shape)
    n_frames = args.frames or (128 if device.type == "cpu" else {"giant": 4096}.get(shape, 16384))
    ctx = make_dataset(root / shape, n_frames, args.seq_frames, model_dir, args)
    model = load_model(resolve(str(model_dir), "main"), device)
    model_samples, stage_samples = [], []
    for _ in range(args.repeat):  # interleaved, best of each: robust to other load on the machine
        model_samples.append(model_alone_fps(model, device, args.batch_size, n_frames, bf16))
        stage_samples.append(stage_loop_fps(ctx, args.device))
    del model
    model_fps, stage_fps = max(f for f, _ in model_samples), max(f for f, _ in stage_samples)
    model_cpu, stage_cpu = min(c for _, c in model_samples), min(c for _, c in stage_samples)
    run_fps = stage_run_fps(ctx, args.device) if not args.skip_run else None
    result = {
        "shape": shape, "dtype": "bfloat16" if bf16 else "float32", "frames": n_frames,
        "model_fps": round(model_fps, 2), "stage_fps": round(stage_fps, 2),
        "ratio": round(stage_fps / model_fps, 3), "stage_run_fps": run_fps and round(run_fps, 2),
        "model_fps_samples": [round(f, 2) for f, _ in model_samples],
        "stage_fps_samples": [round(f, 2) for f, _ in stage_samples],
        "cpu_ms_per_frame": {"model": round(1e3 * model_cpu, 2), "stage": round(1e3 * stage_cpu, 2)},
        "cpu_ratio": round(model_cpu / stage_cpu, 3),
    }
    if device.type == "cuda":
        peak = _peak_tflops(torch.cuda.get_device_name(device))
        result["gflops_per_frame"] = GFLOPS_PER_FRAME[shape]
        result["model_share_of_peak"] = peak and round(model_fps * GFLOPS_PER_FRAME[shape] / 1e3 / peak, 3)
        result["stage_share_of_peak"] = peak and round(stage_fps * GFLOPS_PER_FRAME[shape] / 1e3 / peak, 3)
    shutil.rmtree(root / shape, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--shapes", nargs="+", default=None, help="small base large giant (default: small on CPU, base giant on CUDA)")
    parser.add_argument("--frames", type=int, default=None, help="frames per shape (default 128 on CPU, 16384 / 4096 on CUDA)")
    parser.add_argument("--repeat", type=int, default=2, help="interleaved measurements of each; the best counts")
    parser.add_argument("--batch-size", type=int, default=None, help="default 32 on CPU, 512 on CUDA")
    parser.add_argument("--seq-frames", type=int, default=64, help="frames per sequence")
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--pooling", default="cls+mean")
    parser.add_argument("--frames-compression", default="none", choices=["zstd", "none"], help="of the frames.zarr read")
    parser.add_argument("--skip-run", action="store_true", help="skip the whole-stage measurement")
    args = parser.parse_args()
    args.frames_compression = None if args.frames_compression == "none" else args.frames_compression
    import torch

    from pipeline.device import resolve_device

    device = resolve_device(args.device)
    args.batch_size = args.batch_size or (32 if device.type == "cpu" else 512)
    shapes = args.shapes or (["small"] if device.type == "cpu" else ["base", "giant"])
    with tempfile.TemporaryDirectory(prefix="bench_dino_") as tmp:
        results = [bench_shape(shape, args, Path(tmp)) for shape in shapes]
    worst = min(r["ratio"] for r in results)
    print(json.dumps({
        "bench": "dino", "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch_threads": torch.get_num_threads(), "batch_size": args.batch_size, "pooling": args.pooling,
        "seq_frames": args.seq_frames, "num_workers": args.num_workers, "results": results,
        "ratio": worst, "target": 0.9, "meets_target": worst >= 0.9,
        "gpu": "measured" if device.type == "cuda" else "not measured (no CUDA device here)",
    }))


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_tflops(name: str) -> float | None:
    for key, peak in PEAK_TFLOPS:
        if all(part in name for part in key.split()):
            return peak
    return None


if __name__ == "__main__":
    main()
