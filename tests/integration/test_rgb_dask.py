"""decode + extract_dino on a dask LocalCluster of 2 worker processes give exactly the serial result."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from pipeline.context import StageContext
from pipeline.dino.model import save_random_checkpoint
from pipeline.manifest import DatasetSpec
from pipeline.sequences import make_table, write_index
from pipeline.store import ArtifactStore
from pipeline.video.timeline import resample_indices, uniform_times
from pipeline.video.writer import write_video
from stages import decode, extract_dino

pytestmark = pytest.mark.slow
SOURCES = {"v0": (20, 25.0), "v1": (12, 10.0), "v2": (31, 30.0), "v3": (9, 24.0)}  # frames, fps
FPS = 10.0


def write_sources(folder) -> None:
    """The toy videos, encoded once and shared by the serial and the distributed run, so that the test
    compares decoding only (not two encodings of the same frames)."""
    rng = np.random.default_rng(0)
    for seq_id, (n, fps) in SOURCES.items():
        write_video(folder / f"{seq_id}.mp4", rng.integers(0, 256, (n, 48, 64, 3), dtype=np.uint8), fps)


def build(root, model_dir, videos) -> StageContext:
    rows = []
    for seq_id, (n, fps) in SOURCES.items():
        path = videos / f"{seq_id}.mp4"
        rows.append({
            "id": seq_id, "dataset": "toy", "split": "train", "activity": "wave",
            "n_frames": len(resample_indices(uniform_times(n, fps), FPS)), "fps": FPS, "source_fps": fps,
            "n_source_frames": n, "video": str(path), "frames_dir": "", "pose": "", "pose_format": "",
            "fingerprint": f"fp-{seq_id}", "labels": None,
        })
    params = {
        "decode": {"resize_short": 56, "crop": 56, "interpolation": "area", "length_tolerance": 3, "compression": "zstd"},
        "extract_dino": {"model": str(model_dir), "revision": "main", "pooling": "cls+mean", "image_size": 56,
                         "dtype": "auto", "batch_size": 4, "num_workers": 2, "group_frames": 10},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    spec = DatasetSpec(name="toy", kind="videos", root=root, fps=FPS, layout="penn13")
    ctx = StageContext(dataset=spec, params_path=root / "params.yaml", store_root=str(root / "data"), workdir=root)
    write_index(make_table(rows), ctx.index_path, {})
    return ctx


def contents(ctx: StageContext, artifact: str, name: str) -> dict[str, bytes]:
    store = ArtifactStore(ctx.artifact(artifact))
    return {s: store.read(s, name).tobytes() for s in store.sequences()}


def test_local_cluster_of_two_processes_equals_serial(tmp_path_factory):
    from dataclasses import replace

    from distributed import LocalCluster

    model_dir = save_random_checkpoint(tmp_path_factory.mktemp("model") / "ckpt", hidden_size=32,
                                       num_hidden_layers=2, num_attention_heads=2, image_size=56)
    videos = tmp_path_factory.mktemp("videos")
    write_sources(videos)
    serial = build(tmp_path_factory.mktemp("serial"), model_dir, videos)
    decode.run(serial)
    extract_dino.run(serial, device="cpu")

    distributed = build(tmp_path_factory.mktemp("dask"), model_dir, videos)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        ctx = replace(distributed, scheduler=cluster.scheduler_address)
        assert sorted(decode.run(ctx).computed) == sorted(SOURCES)
        summary = extract_dino.run(ctx, device="cpu")
    assert sorted(summary.computed) == sorted(SOURCES)
    for artifact, name in [("frames", "rgb"), ("frames", "timestamp"), ("dino", "feature")]:
        assert contents(ctx, artifact, name) == contents(serial, artifact, name), (artifact, name)
