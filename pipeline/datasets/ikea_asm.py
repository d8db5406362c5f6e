"""IKEA ASM (Ben-Shabat et al., WACV 2021), release layout.

    <root>/<furniture>/<recording>/<camera>/images/scan_video.avi
    <root>/<furniture>/<recording>/<camera>/predictions/pose2d/openpose/scan_video_<000000000000>_keypoints.json
    <labels>   CSV of ground-truth segments: case_name (<furniture>/<recording>), start_frame,
               end_frame_inclusive, gt_label, gt_label_name (the format of ../shared/data/ikea_asm)
    <split>    optional text file of test recordings, one <furniture>/<recording> per line (the release's
               test_cross_env.txt); without it, the recordings in the labels CSV (the official test split's
               ground truth) are 'test' and the others 'train'

Sequence ids are `<furniture>_<recording>`; the activity is the furniture. `furniture` in the manifest
keeps one furniture type (the alignment benchmark uses Kallax_Shelf_Drawer).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.datasets import DatasetError, integer_column
from pipeline.datasets.segments import segments_to_frames
from pipeline.datasets.videos import probe_video
from pipeline.manifest import DatasetSpec
from pipeline.sequences import file_fingerprint, folder_fingerprint
from pipeline.video.timeline import resample_indices, uniform_times

VIDEO = Path("images") / "scan_video.avi"
POSES = Path("predictions") / "pose2d" / "openpose"


def index_rows(spec: DatasetSpec) -> tuple[list[dict[str, Any]], dict[int, str]]:
    camera = spec.options.get("camera", "dev3")
    furniture = spec.options.get("furniture")
    segments, names = read_segments(spec.path("labels"), where=spec.name) if spec.path("labels") else ({}, {})
    test = _read_split(spec.path("split"), spec.name) if spec.path("split") else set(segments)
    recordings = sorted(
        # three levels above <camera>/images/scan_video.avi: the recording, <furniture>/<recording> from the root
        p.parent.parent.parent.relative_to(spec.root).as_posix()
        for p in spec.root.glob(f"*/*/{camera}/{VIDEO.as_posix()}")
    )
    if furniture:
        recordings = [r for r in recordings if r.split("/")[0] == furniture]
    if not recordings:
        raise DatasetError(f"{spec.name}: no videos {spec.root}/<furniture>/<recording>/{camera}/{VIDEO}")
    rows = []
    for case in recordings:
        cam_dir = spec.root / case / camera
        video = cam_dir / VIDEO
        where = f"{spec.name}: sequence {case}"
        n_source, source_fps = probe_video(video, where=where)
        pose_dir = cam_dir / POSES
        has_pose = pose_dir.is_dir() and any(pose_dir.glob("*_keypoints.json"))
        labels = None
        if case in segments:
            per_source = segments_to_frames(segments[case], n_source, where=f"{where} ({spec.path('labels')})")
            labels = per_source[resample_indices(uniform_times(n_source, source_fps), spec.fps)].tolist()
        rows.append({
            # a sequence id names a store group: no '/'
            "id": case.replace("/", "_"),
            "dataset": spec.name,
            "split": "test" if case in test else "train",
            "activity": case.split("/")[0],
            "n_frames": len(resample_indices(uniform_times(n_source, source_fps), spec.fps)),
            "fps": spec.fps,
            "source_fps": source_fps,
            "n_source_frames": n_source,
            "video": str(video),
            "pose": str(pose_dir) if has_pose else "",
            "pose_format": "openpose_json" if has_pose else "",
            "video_fingerprint": file_fingerprint(video),
            "pose_fingerprint": folder_fingerprint(pose_dir, "*_keypoints.json") if has_pose else "",
            "labels": labels,
        })
    return rows, names


def read_segments(path: Path, *, where: str) -> tuple[dict[str, list[tuple[int, int, int]]], dict[int, str]]:
    """case_name -> [(start, end_inclusive, label)] and label -> name, from the ground-truth segments CSV."""
    try:
        table = pd.read_csv(path, keep_default_na=False)  # label 0 is literally named "NA"
    except Exception as err:
        raise DatasetError(f"{where}: cannot read segment labels {path}: {err}") from err
    needed = ("case_name", "start_frame", "end_frame_inclusive", "gt_label", "gt_label_name")
    missing = [c for c in needed if c not in table]
    if missing:
        raise DatasetError(f"{where}: {path} lacks column(s) {missing}")
    for column in ("start_frame", "end_frame_inclusive", "gt_label"):
        table[column] = integer_column(table, column, where=f"{where}: {path}")
    segments: dict[str, list[tuple[int, int, int]]] = {}
    for r in table.itertuples():
        segments.setdefault(r.case_name, []).append((int(r.start_frame), int(r.end_frame_inclusive), int(r.gt_label)))
    names = dict(zip(table["gt_label"].astype(int), table["gt_label_name"].astype(str)))
    return segments, dict(sorted(names.items()))


def _read_split(path: Path, name: str) -> set[str]:
    if not path.is_file():
        raise DatasetError(f"{name}: split file not found: {path}")
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}
