"""Benchmark: VASOT's joint alignment + segmentation model against the two single-task models it replaces,
on the generated sample dataset (`pipeline make-sample`).

    python bench/bench_vasot.py [--threads 2] [--set section.key=value ...]

Three trainings of the `vasot` method with the repository's params (sample overrides included), each in its
own child process so that its peak memory is its own: `joint` (params as they are), `alignment`
(`vasot.segment_weight=0`) and `segmentation` (`vasot.align_weight=0`). Each runs the real `train` and
`evaluate` stages on the shared `index` and `keypoints` artifacts of a work folder (default .cache/bench_vasot).
Figures per model: training seconds, peak resident memory of the process (and before training: the
interpreter, torch and the data), checkpoint bytes, Kendall's tau, and the model's own segmentation (MoF,
F1, mIoU, Edit, F1@{10,25,50}; Hungarian per activity) beside k-means on the raw keypoints.
Judged by: joint / (alignment + segmentation) for training time and storage, joint / max(separate) for
peak memory (the two single-task models trained one after the other), and the joint model's segmentation
MoF against k-means on the raw keypoints. The VASOT paper reports about half the memory and storage.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.workdir import make_context  # noqa: E402

CONFIGS = {"joint": [], "alignment": ["vasot.segment_weight=0"], "segmentation": ["vasot.align_weight=0"]}
SEGMENT_KEYS = ("mof", "f1", "miou", "edit", "f1_at_10", "f1_at_25", "f1_at_50")


def main() -> None:
    args = parse_args()
    root = Path(args.workdir or ROOT / ".cache" / "bench_vasot").resolve()
    if args.child:
        child(root / args.child, args.overrides + CONFIGS[args.child], args.threads)
        return
    shared = prepare(root / "shared", args.overrides)
    runs = {}
    for name in CONFIGS:
        work = root / name
        data = work / "data" / "sample"
        data.mkdir(parents=True, exist_ok=True)
        for artifact in ("index.parquet", "keypoints.zarr"):
            link = data / artifact
            if not link.exists():
                link.symlink_to(shared / artifact)
        cmd = [sys.executable, __file__, "--child", name, "--workdir", str(root), "--threads", str(args.threads)]
        cmd += [f"--set={item}" for item in args.overrides]
        proc = subprocess.Popen(cmd)
        _, status, usage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"bench_vasot: the '{name}' run failed (see its output above)")
        runs[name] = json.loads((work / "result.json").read_text())
        runs[name]["peak_rss_mb"] = round(usage.ru_maxrss / 1024, 1)  # Linux: KiB
    joint, align, seg = runs["joint"], runs["alignment"], runs["segmentation"]
    print(json.dumps({
        "bench": "vasot_joint_vs_separate",
        "dataset": "sample",
        "threads": args.threads,
        "overrides": args.overrides,
        "runs": runs,
        "ratios": {
            "train_time_joint_over_separate": round(joint["train_seconds"] / (align["train_seconds"] + seg["train_seconds"]), 3),
            "storage_joint_over_separate": round(joint["checkpoint_bytes"] / (align["checkpoint_bytes"] + seg["checkpoint_bytes"]), 3),
            "peak_rss_joint_over_max_separate": round(joint["peak_rss_mb"] / max(align["peak_rss_mb"], seg["peak_rss_mb"]), 3),
            "training_rss_increase_joint_over_max_separate": round(
                (joint["peak_rss_mb"] - joint["rss_before_train_mb"])
                / max(align["peak_rss_mb"] - align["rss_before_train_mb"], seg["peak_rss_mb"] - seg["rss_before_train_mb"]), 3),
            "mof_joint_minus_kmeans_raw": round(joint["segmentation"]["mof"] - joint["kmeans_raw_keypoints"]["mof"], 4),
        },
    }))


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="override a params.yaml value for all three runs (YAML value), e.g. --set train.epochs=5")
    ap.add_argument("--workdir", default=None, help="default: .cache/bench_vasot")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--child", choices=sorted(CONFIGS), help=argparse.SUPPRESS)
    return ap.parse_args()


def prepare(shared: Path, overrides: list[str]) -> Path:
    """The sample's raw data (generated if absent), its index and keypoints, once for the three runs."""
    from stages import index, keypoints, make_sample

    ctx = make_context(shared, "sample", overrides)
    if not (ctx.dataset.root / "sequences.csv").is_file():
        make_sample.run(ctx)
    index.run(ctx)
    keypoints.run(ctx)
    return shared / "data" / "sample"


def child(work: Path, overrides: list[str], threads: int) -> None:
    """One training + evaluation of `vasot` in `work`; writes work/result.json."""
    import shutil

    import torch

    from stages import evaluate, train

    torch.set_num_threads(threads)
    ctx = make_context(work, "sample", overrides)
    shutil.rmtree(ctx.models_dir("vasot"), ignore_errors=True)
    shutil.rmtree(ctx.artifact("embeddings_vasot"), ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    train.run(ctx, "vasot", device="cpu")
    stage_seconds = time.perf_counter() - start
    log = [json.loads(line) for line in (ctx.models_dir("vasot") / "log.jsonl").read_text().splitlines()]
    report = evaluate.run(ctx, "vasot", device="cpu")
    learned, raw = report["features"]["learned"], report["features"]["raw_keypoints"]
    own = learned.get("segmentation_predicted") or {}
    result = {
        "overrides": overrides,
        "train_seconds": round(log[-1]["elapsed_s"], 1),
        "stage_seconds": round(stage_seconds, 1),
        "rss_before_train_mb": round(before, 1),
        "checkpoint_bytes": sum(p.stat().st_size for p in ctx.models_dir("vasot").rglob("*.pt")),
        "tau": round(learned["kendalls_tau"]["overall"], 4),
        "tau_raw_keypoints": round(raw["kendalls_tau"]["overall"], 4),
        "segmentation": {k: round(own[k], 4) for k in SEGMENT_KEYS if k in own},
        "kmeans_learned": {k: round(learned["segmentation_kmeans"][k], 4) for k in SEGMENT_KEYS if k in learned["segmentation_kmeans"]},
        "kmeans_raw_keypoints": {k: round(raw["segmentation_kmeans"][k], 4) for k in SEGMENT_KEYS if k in raw["segmentation_kmeans"]},
        "final_loss": {k: round(v, 4) for k, v in log[-1].items() if k in ("loss", "align", "segment")},
    }
    (work / "result.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
