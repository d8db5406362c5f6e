"""A user's own folder of videos (manifest kind `videos`).

    <root>/<videos>/**/<seq>.<ext>   any container/codec FFmpeg decodes; the file stem is the sequence id
    <root>/<sequences>               optional CSV `sequence,activity,split`; without it the activity is the
                                     video's parent folder name ("all" at top level) and every split is train
    <root>/<labels>                  optional CSV `sequence,frame,label` (frame = 0-based source frame,
                                     label = integer); frames not listed are unlabelled (-1)
    <root>/<label_names>             optional CSV `label,name`
    <root>/<poses>/<seq>.npz         optional poses: joints_2d (T, K, 3) [x, y, conf], joints_3d (T, K, 3)

Frame counts and rates come from the container (PyAV) without decoding.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.datasets import DatasetError, integer_column, refuse_duplicates
from pipeline.manifest import DatasetSpec
from pipeline.sequences import file_fingerprint
from pipeline.video.timeline import resample_indices, uniform_times

DEFAULT_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm")


def index_rows(spec: DatasetSpec) -> tuple[list[dict[str, Any]], dict[int, str]]:
    video_dir = spec.path("videos", "videos")
    exts = tuple(e.lower() for e in spec.options.get("extensions", DEFAULT_EXTENSIONS))
    videos = sorted(p for p in video_dir.rglob("*") if p.suffix.lower() in exts) if video_dir.is_dir() else []
    if not videos:
        raise DatasetError(f"{spec.name}: no videos ({', '.join(exts)}) under {video_dir}")
    by_id: dict[str, Path] = {}
    for path in videos:
        if path.stem in by_id:
            raise DatasetError(f"{spec.name}: duplicate sequence id {path.stem}: {by_id[path.stem]} and {path}")
        by_id[path.stem] = path
    meta = _read_sequences(spec, by_id, video_dir)
    labels = _read_labels(spec, set(by_id))
    pose_dir = spec.path("poses")
    rows = []
    for seq_id, path in by_id.items():
        n_source, source_fps = probe_video(path, where=f"{spec.name}: sequence {seq_id}")
        # from the container's count and rate, assuming a constant rate (nothing is decoded here); decode reads the real
        # timestamps and reconciles a small difference (timeline.fit_indices)
        n_frames = len(resample_indices(uniform_times(n_source, source_fps), spec.fps))
        pose = pose_dir / f"{seq_id}.npz" if pose_dir is not None else None
        row = {
            "id": seq_id,
            "dataset": spec.name,
            "split": meta[seq_id][1],
            "activity": meta[seq_id][0],
            "n_frames": n_frames,
            "fps": spec.fps,
            "source_fps": source_fps,
            "n_source_frames": n_source,
            "video": str(path),
            "pose": str(pose) if pose is not None and pose.is_file() else "",
            "pose_format": "npz" if pose is not None and pose.is_file() else "",
            "video_fingerprint": file_fingerprint(path),
            "pose_fingerprint": file_fingerprint(pose) if pose is not None and pose.is_file() else "",
            "labels": _to_timeline(labels.get(seq_id), n_source, source_fps, spec, seq_id),
        }
        rows.append(row)
    return rows, _read_label_names(spec)


def probe_video(path: Path, *, where: str) -> tuple[int, float]:
    """(frame count, frames per second) of a video's first video stream, from the container."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DatasetError(f"{where}: {path} has no video stream")
            stream = container.streams.video[0]
            # average_rate may be None; base_rate is the stream's nominal rate
            fps = float(stream.average_rate or stream.base_rate or 0)
            # `frames` is 0 where the container records no count (e.g. Matroska): count packets instead, still without
            # decoding; the size test skips the empty flush packet demux yields last
            n = stream.frames or sum(1 for p in container.demux(stream) if p.size)
    except DatasetError:
        raise
    except Exception as err:  # av raises its own error hierarchy for corrupt/foreign files
        raise DatasetError(f"{where}: cannot read video {path}: {err}") from err
    if n < 1 or fps <= 0:
        raise DatasetError(f"{where}: video {path} reports {n} frames at {fps} fps")
    return int(n), fps


def _read_sequences(spec: DatasetSpec, by_id: dict[str, Path], video_dir: Path) -> dict[str, tuple[str, str]]:
    path = spec.path("sequences")
    if path is None:
        return {s: (p.parent.name if p.parent != video_dir else "all", "train") for s, p in by_id.items()}
    table = _read_csv(spec, path, ("sequence", "activity", "split"))
    refuse_duplicates(table, ["sequence"], where=f"{spec.name}: {path}")
    missing = sorted(set(by_id) - set(table["sequence"]))
    if missing:
        raise DatasetError(f"{spec.name}: {path} lists no activity/split for sequence(s) {missing[:10]}")
    extra = sorted(set(table["sequence"]) - set(by_id))
    if extra:
        raise DatasetError(f"{spec.name}: {path} names sequence(s) with no video: {extra[:10]}")
    return {r.sequence: (str(r.activity), str(r.split)) for r in table.itertuples()}


def _read_labels(spec: DatasetSpec, ids: set[str]) -> dict[str, pd.DataFrame]:
    path = spec.path("labels")
    if path is None:
        return {}
    table = _read_csv(spec, path, ("sequence", "frame", "label"))
    for column in ("frame", "label"):
        table[column] = integer_column(table, column, where=f"{spec.name}: {path}")
    refuse_duplicates(table, ["sequence", "frame"], where=f"{spec.name}: {path}")
    unknown = sorted(set(table["sequence"]) - ids)
    if unknown:
        raise DatasetError(f"{spec.name}: {path} labels unknown sequence(s) {unknown[:10]}")
    return {seq: group for seq, group in table.groupby("sequence")}


def _read_label_names(spec: DatasetSpec) -> dict[int, str]:
    path = spec.path("label_names")
    if path is None:
        return {}
    table = _read_csv(spec, path, ("label", "name"))
    table["label"] = integer_column(table, "label", where=f"{spec.name}: {path}")
    refuse_duplicates(table, ["label"], where=f"{spec.name}: {path}")
    return {int(r.label): str(r.name) for r in table.itertuples()}


def _to_timeline(labels: pd.DataFrame | None, n_source: int, source_fps: float, spec: DatasetSpec, seq_id: str):
    """Per-source-frame labels -> per-frame labels on the dataset timeline (-1 where unlabelled)."""
    if labels is None:
        return None
    frames = labels["frame"].to_numpy()
    outside = frames[(frames < 0) | (frames >= n_source)]
    if outside.size:
        raise DatasetError(
            f"{spec.name}: sequence {seq_id}: {spec.path('labels')} labels frame {int(outside[0])} "
            f"but the video has {n_source} frames (0..{n_source - 1})"
        )
    per_source = np.full(n_source, -1, dtype=np.int64)
    per_source[frames] = labels["label"].to_numpy(dtype=np.int64)
    return per_source[resample_indices(uniform_times(n_source, source_fps), spec.fps)].tolist()


def _read_csv(spec: DatasetSpec, path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    if not path.is_file():
        raise DatasetError(f"{spec.name}: file not found: {path}")
    try:
        # str: sequence ids such as 0001 must not be parsed as the number 1
        table = pd.read_csv(path, dtype={"sequence": str})
    except Exception as err:
        raise DatasetError(f"{spec.name}: cannot read CSV {path}: {err}") from err
    missing = [c for c in columns if c not in table]
    if missing:
        raise DatasetError(f"{spec.name}: {path} lacks column(s) {missing} (expected {', '.join(columns)})")
    return table
