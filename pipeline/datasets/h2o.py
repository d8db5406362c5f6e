"""H2O (Kwon et al., ICCV 2021), release layout, for the pouring-milk alignment benchmark.

    <root>/<subject>/<scene>/<seq>/<camera>/rgb/NNNNNN.png         frames
    <root>/<subject>/<scene>/<seq>/<camera>/hand_pose/NNNNNN.txt   left then right hand: validity flag and
                                                                   21 xyz joints each (128 numbers)
    <labels>/action_{train,val,test}.txt    `id path action_label start_act end_act start_frame end_frame`
                                            (test has no action_label); frames outside a segment are 0
    <split>                                 JSON {"train": {path: name}, "test": {...}} (CASA/LAV split)

Sequence ids are the H2O paths with '/' -> '_' (subject1_h1_1). Segment ends are taken as inclusive
(the release does not say; see ../shared/data/README.md). Sequences whose only annotations are in the
unlabelled test file get no per-frame labels.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.datasets import DatasetError, integer_column, relative_inside
from pipeline.datasets.segments import segments_to_frames
from pipeline.manifest import DatasetSpec
from pipeline.sequences import folder_fingerprint
from pipeline.video.timeline import resample_indices, uniform_times

SOURCE_FPS = 30.0
LABEL_FILES = ("action_train.txt", "action_val.txt", "action_test.txt")
# The milk actions of the pouring-milk benchmark (H2O's 36-class list; see ../shared/data/README.md).
LABEL_NAMES = {0: "background", 5: "grab milk", 13: "place milk", 18: "open milk", 21: "close milk", 23: "pour milk"}


def index_rows(spec: DatasetSpec) -> tuple[list[dict[str, Any]], dict[int, str]]:
    split_path = spec.path("split")
    if split_path is None or not split_path.is_file():
        raise DatasetError(f"{spec.name}: split file not found: {split_path} (manifest key 'split')")
    split = read_split(split_path, dataset=spec.name)
    segments = read_action_labels(spec.path("labels", "action_labels"), where=spec.name)
    camera = spec.options.get("camera", "cam4")
    rows = []
    for h2o_path, split_name in split.items():
        seq_dir = spec.root / h2o_path / camera
        rgb, pose = seq_dir / "rgb", seq_dir / "hand_pose"
        n_rgb = _count(rgb, "*.png")
        n_pose = _count(pose, "*.txt")
        if not n_rgb and not n_pose:
            raise DatasetError(f"{spec.name}: sequence {h2o_path}: no frames in {rgb} and no poses in {pose}")
        if n_rgb and n_pose and n_rgb != n_pose:
            raise DatasetError(f"{spec.name}: sequence {h2o_path}: {n_rgb} frames in {rgb} but {n_pose} poses in {pose}")
        # a copy may hold poses only: the timeline then comes from the pose files
        n_source = n_rgb or n_pose
        where = f"{spec.name}: sequence {h2o_path} ({spec.path('labels', 'action_labels')})"
        rows.append({
            "id": h2o_path.replace("/", "_"),
            "dataset": spec.name,
            "split": split_name,
            "activity": spec.options.get("activity", "pour_milk"),
            "n_frames": len(resample_indices(uniform_times(n_source, SOURCE_FPS), spec.fps)),
            "fps": spec.fps,
            "source_fps": SOURCE_FPS,
            "n_source_frames": n_source,
            "frames_dir": str(rgb) if n_rgb else "",
            "pose": str(pose) if n_pose else "",
            "pose_format": "h2o_hand_pose" if n_pose else "",
            "video_fingerprint": folder_fingerprint(rgb, "*.png") if n_rgb else "",
            "pose_fingerprint": folder_fingerprint(pose, "*.txt") if n_pose else "",
            "labels": _labels(segments.get(h2o_path), n_source, spec, where),
        })
    return rows, LABEL_NAMES


def read_split(path: Path, *, dataset: str = "h2o") -> dict[str, str]:
    """H2O path -> 'train' / 'val' / 'test' from a CASA/LAV split JSON; every path stays inside the root."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DatasetError(f"{dataset}: cannot read split file {path}: {err}") from err
    if not isinstance(data, dict):
        raise DatasetError(f"{dataset}: {path}: expected a JSON object of split name -> sequence paths")
    out = {}
    for split_name, members in data.items():
        if split_name not in ("train", "val", "test"):
            raise DatasetError(f"{dataset}: {path}: unknown split '{split_name}' (expected train/val/test)")
        for h2o_path in members:
            relative_inside(str(h2o_path), where=f"{dataset}: {path}: split '{split_name}'")
            if h2o_path in out:
                raise DatasetError(f"{dataset}: {path}: sequence {h2o_path} is in two splits")
            out[h2o_path] = split_name
    return out


def read_action_labels(folder: Path, *, where: str) -> dict[str, list[tuple[int, int, int]]]:
    """H2O path -> [(start, end_inclusive, action_label)] from the labelled action files in `folder`."""
    if not folder.is_dir():
        raise DatasetError(f"{where}: action label folder not found: {folder} (manifest key 'labels')")
    out: dict[str, list[tuple[int, int, int]]] = {}
    for name in LABEL_FILES:
        path = folder / name
        if not path.is_file():
            continue
        try:
            # the release's files are whitespace-separated
            table = pd.read_csv(path, sep=r"\s+")
        except Exception as err:
            raise DatasetError(f"{where}: cannot read {path}: {err}") from err
        if "action_label" not in table:  # the test file withholds labels
            continue
        missing = [c for c in ("path", "start_act", "end_act") if c not in table]
        if missing:
            raise DatasetError(f"{where}: {path} lacks column(s) {missing}")
        columns = [integer_column(table, c, where=f"{where}: {path}") for c in ("start_act", "end_act", "action_label")]
        for h2o_path, start, end, label in zip(table["path"], *columns):
            out.setdefault(h2o_path, []).append((int(start), int(end), int(label)))
    return out


def _labels(segments, n_source: int, spec: DatasetSpec, where: str) -> list[int] | None:
    if not segments:
        return None
    per_source = segments_to_frames(segments, n_source, where=where)
    return per_source[resample_indices(uniform_times(n_source, SOURCE_FPS), spec.fps)].tolist()


def _count(folder: Path, pattern: str) -> int:
    return sum(1 for _ in folder.glob(pattern)) if folder.is_dir() else 0


