"""`pipeline decode`, `pipeline extract-dino` and `pipeline export` end to end on a tiny generated dataset."""

from __future__ import annotations

import h5py
import numpy as np
import yaml
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.dino.model import save_random_checkpoint
from pipeline.sequences import make_table, write_index
from pipeline.store import ArtifactStore
from pipeline.video.writer import write_video


def test_decode_extract_export_from_the_command_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    (tmp_path / "raw").mkdir()
    rows = []
    for seq_id, n in [("clip-a", 12), ("clip-b", 8)]:
        path = write_video(tmp_path / "raw" / f"{seq_id}.mp4", rng.integers(0, 256, (n, 48, 64, 3), dtype=np.uint8), 12)
        rows.append({"id": seq_id, "dataset": "toy", "split": "train", "activity": "wave", "n_frames": n, "fps": 12.0,
                     "source_fps": 12.0, "n_source_frames": n, "video": str(path), "frames_dir": "", "pose": "",
                     "pose_format": "", "fingerprint": seq_id, "labels": None})
    write_index(make_table(rows), tmp_path / "data" / "toy" / "index.parquet", {})
    (tmp_path / "manifest.yaml").write_text(yaml.safe_dump(
        {"datasets": {"toy": {"kind": "videos", "root": "raw", "fps": 12, "layout": "penn13"}}}))
    save_random_checkpoint(tmp_path / "ckpt", hidden_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=28)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({
        "decode": {"resize_short": 28, "crop": 28, "interpolation": "area", "length_tolerance": 3, "compression": "zstd"},
        "extract_dino": {"model": str(tmp_path / "ckpt"), "revision": "main", "pooling": "cls", "image_size": 28,
                         "dtype": "auto", "batch_size": 8, "num_workers": 1, "group_frames": 100},
    }))
    cli = CliRunner()
    base = ["--manifest", "manifest.yaml", "--params", "params.yaml"]
    for args in (["decode", "-d", "toy", "-j", "1"], ["extract-dino", "-d", "toy", "--device", "cpu"],
                 ["export", "-d", "toy", "--artifact", "dino"]):
        result = cli.invoke(main, base + args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
    assert ArtifactStore("data/toy/frames.zarr").read("clip-a", "rgb").shape == (12, 28, 28, 3)
    with h5py.File("data/toy/dino.h5", "r") as h5:
        assert h5["clip-b/feature"].shape == (8, 32) and h5.attrs["pooling"] == "cls"

    (tmp_path / "params.yaml").write_text((tmp_path / "params.yaml").read_text().replace(str(tmp_path / "ckpt"), "nobody/none"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    result = cli.invoke(main, base + ["extract-dino", "-d", "toy", "--device", "cpu"])
    assert result.exit_code == 1 and "hf download nobody/none" in result.output and "Traceback" not in result.output
