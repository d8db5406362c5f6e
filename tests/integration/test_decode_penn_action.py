"""decode on Penn Action's official layout: real label files, frame folders beside them (images generated)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from pipeline.context import StageContext
from pipeline.datasets.penn_action import read_labels
from pipeline.manifest import DatasetSpec
from pipeline.runner import StageError
from pipeline.store import ArtifactStore
from stages import decode, index

pytestmark = pytest.mark.realdata
SEQUENCES = ("0002", "0003")


def _shared_data() -> Path:
    root = Path(os.environ.get("SHARED_DATA", Path(__file__).resolve().parents[2] / ".." / "shared" / "data"))
    if not (root / "penn_action" / "labels").is_dir():
        pytest.skip(f"real Penn Action labels not found under {root} (set SHARED_DATA)")
    return root


def penn_root(tmp_path: Path, with_frames: bool) -> Path:
    root = tmp_path / "penn"
    (root / "labels").mkdir(parents=True)
    for seq_id in SEQUENCES:
        label = _shared_data() / "penn_action" / "labels" / f"{seq_id}.mat"
        shutil.copy(label, root / "labels")
        if with_frames:
            folder = root / "frames" / seq_id
            folder.mkdir(parents=True)
            for i in range(read_labels(label).n_frames):
                cv2.imwrite(str(folder / f"{i + 1:06d}.jpg"), np.full((27, 48, 3), i % 256, np.uint8))
    return root


def make_ctx(tmp_path: Path, root: Path, fps: float) -> StageContext:
    params = {"index": {"min_frames": 2},
              "decode": {"resize_short": 24, "crop": 24, "interpolation": "area", "length_tolerance": 3, "compression": "none"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    spec = DatasetSpec(name="pennaction", kind="penn_action", root=root, fps=fps, layout="penn13")
    return StageContext(dataset=spec, params_path=tmp_path / "params.yaml", store_root=str(tmp_path / "data"), workdir=tmp_path)


def test_frame_folders_decode_to_the_label_timeline(tmp_path):
    ctx = make_ctx(tmp_path, penn_root(tmp_path, with_frames=True), fps=10.0)
    index.run(ctx)
    decode.run(ctx)
    store = ArtifactStore(ctx.artifact("frames"))
    for seq_id in SEQUENCES:
        n_source = read_labels(ctx.dataset.root / "labels" / f"{seq_id}.mat").n_frames
        rgb = store.read(seq_id, "rgb")
        assert rgb.shape[1:] == (24, 24, 3) and len(rgb) == store.attrs(seq_id)["n_frames"] == n_source // 3  # whole 0.1 s steps
        np.testing.assert_allclose(store.read(seq_id, "timestamp"), np.arange(len(rgb)) * 3 / 30)
        assert abs(float(rgb[1].mean()) - 3) < 2  # frame 1 at 10 fps is source frame 3 (grey level 3)


def test_labels_only_release_is_a_clear_error(tmp_path):
    ctx = make_ctx(tmp_path, penn_root(tmp_path, with_frames=False), fps=30.0)
    index.run(ctx)
    with pytest.raises(StageError, match="no sequence has a video or a frame folder"):
        decode.run(ctx)
