"""Penn Action (Zhang, Zhu, Derpanis, ICCV 2013), official layout.

    <root>/labels/NNNN.mat    action, pose (view), x, y, visibility (T, 13), bbox, train (+1/-1), dimensions
    <root>/frames/NNNN/*.jpg  optional; the labels alone are enough to index and to build keypoints

The 13 joints are in the order of `pipeline.skeletons.layouts.PENN13`. Penn Action has no public per-frame phase
labels, so `labels` is null; `train` = 1 gives split 'train', -1 gives 'test'.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.datasets import DatasetError
from pipeline.manifest import DatasetSpec
from pipeline.sequences import file_fingerprint, folder_fingerprint
from pipeline.video.timeline import resample_indices, uniform_times

SOURCE_FPS = 30.0
FRAME_EXTS = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class PennLabels:
    """One Penn Action label file. x, y: (T, 13) pixels; visibility: (T, 13) {0, 1}; dims: (H, W)."""

    seq_id: str
    action: str
    view: str
    train: bool
    x: np.ndarray
    y: np.ndarray
    visibility: np.ndarray
    bbox: np.ndarray
    height: int
    width: int

    @property
    def n_frames(self) -> int:
        return self.x.shape[0]


def read_labels(path: str | Path, *, dataset: str = "Penn Action") -> PennLabels:
    """Read and check one `labels/NNNN.mat`; any defect raises DatasetError naming the dataset and file."""
    import scipy.io

    path = Path(path)
    try:
        mat = scipy.io.loadmat(path)
    except Exception as err:  # scipy raises ValueError/TypeError/OSError on truncated or foreign files
        raise DatasetError(f"{dataset}: cannot read label file {path}: {err}") from err
    try:
        x = np.asarray(mat["x"], dtype=np.float64)
        y = np.asarray(mat["y"], dtype=np.float64)
        vis = np.asarray(mat["visibility"], dtype=np.uint8)
        # `nframes` is stored as uint8 in the release and wraps past 255: use the arrays' length
        dims = np.asarray(mat["dimensions"]).ravel()
        labels = PennLabels(
            seq_id=path.stem,
            action=str(np.asarray(mat["action"]).ravel()[0]).strip(),
            view=str(np.asarray(mat["pose"]).ravel()[0]).strip() if "pose" in mat else "",
            train=int(np.asarray(mat["train"]).ravel()[0]) == 1,
            x=x,
            y=y,
            visibility=vis,
            bbox=np.asarray(mat.get("bbox", np.zeros((len(x), 4))), dtype=np.float64),
            height=int(dims[0]),
            width=int(dims[1]),
        )
    except (KeyError, IndexError, ValueError) as err:
        raise DatasetError(f"{dataset}: label file {path} lacks or mangles a field: {err!r}") from err
    if not (x.shape == y.shape == vis.shape) or x.ndim != 2 or x.shape[1] != 13:
        raise DatasetError(
            f"{dataset}: label file {path}: x {x.shape}, y {y.shape}, visibility {vis.shape}; expected (T, 13) each"
        )
    return labels


def index_rows(spec: DatasetSpec) -> tuple[list[dict[str, Any]], dict[int, str]]:
    label_dir = spec.root / "labels"
    files = sorted(label_dir.glob("*.mat"))
    if not files:
        raise DatasetError(f"{spec.name}: no label files {label_dir}/*.mat (Penn Action's official layout)")
    keep = set(spec.options.get("actions") or [])
    rows = []
    for path in files:
        lab = read_labels(path, dataset=spec.name)
        if keep and lab.action not in keep:
            continue
        rows.append(_row(spec, lab, path))
    return rows, {}


def _row(spec: DatasetSpec, lab: PennLabels, path: Path) -> dict[str, Any]:
    frames_dir = spec.root / "frames" / lab.seq_id
    n_source = lab.n_frames
    video_fp = ""
    if frames_dir.is_dir():
        n_images = sum(1 for p in frames_dir.iterdir() if p.suffix.lower() in FRAME_EXTS)
        if n_images != n_source:
            raise DatasetError(
                f"{spec.name}: sequence {lab.seq_id}: {frames_dir} holds {n_images} frames but {path} labels {n_source}"
            )
        video_fp = folder_fingerprint(frames_dir)
    n_frames = len(resample_indices(uniform_times(n_source, SOURCE_FPS), spec.fps))
    return {
        "id": lab.seq_id,
        "dataset": spec.name,
        "split": "train" if lab.train else "test",
        "activity": lab.action,
        "n_frames": n_frames,
        "fps": spec.fps,
        "source_fps": SOURCE_FPS,
        "n_source_frames": n_source,
        "frames_dir": str(frames_dir) if frames_dir.is_dir() else "",
        "pose": str(path),
        "pose_format": "penn_mat",
        "video_fingerprint": video_fp,
        "pose_fingerprint": file_fingerprint(path),
        "labels": None,
    }
