"""What `pipeline align` aligns: a video file, or a sequence of a dataset (`DATASET:SEQ`), with its poses.

A video file goes through the project's own cached stages (index -> estimate_pose -> keypoints) in a
workspace keyed by its content:

    <cache>/<first 16 hex digits of the file's SHA-256>/
        raw/videos/<hash>.<ext>        a link to the file (the name, not the path, enters the fingerprints)
        data/video/index.parquet       a one-sequence `videos` dataset named `video`
        data/video/keypoints.zarr      (and whatever the pose stage writes beside it)
        data/video/embeddings.zarr     embeddings by model (`stages.align`)

so a video aligned once is never estimated again, under any name or path, and the stages' own fingerprints
decide what a params change recomputes. A `DATASET:SEQ` reads the dataset's index and keypoints store, which
its own stages made (`pipeline keypoints --dataset DATASET`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.context import StageContext
from pipeline.manifest import DatasetSpec, ManifestError, load_manifest
from pipeline.sequences import IndexTableError, read_index
from pipeline.skeletons.convert import ConversionError, conversion, convert_joints
from pipeline.skeletons.estimator import LAYOUT
from pipeline.store import ArtifactStore, StoreError

log = logging.getLogger(__name__)

WORKSPACE_DATASET = "video"
ESTIMATED_LAYOUT = LAYOUT  # the workspace keeps the estimator's layout
DATASET_REF = re.compile(r"^([a-z0-9_]+):([A-Za-z0-9][A-Za-z0-9_.\-]*)$")
Upstream = Sequence[Callable[[StageContext], Any]]


class AlignError(RuntimeError):
    """An input `pipeline align` cannot use; the message names the input and its file."""


@dataclass(frozen=True)
class Source:
    """One aligned input. joints: (T, K, 3) [x, y, confidence] pixels of `layout` on the timeline of `fps`
    (frame k at k / fps seconds); media: the video file or frame folder to show (None: nothing to show);
    source_fps: the frame folder's rate; content_id: SHA-256 of the file (or the dataset's fingerprint);
    workspace: the cache folder of a file (None for a dataset sequence); keypoints_fingerprint: what made the
    joints (a cache key for embeddings)."""

    label: str
    name: str
    joints: np.ndarray
    layout: str
    fps: float
    image_size: tuple[int, int] | None
    media: Path | None
    source_fps: float | None
    content_id: str
    workspace: Path | None
    keypoints_fingerprint: str

    @property
    def n_frames(self) -> int:
        return len(self.joints)

    @property
    def short_name(self) -> str:
        """The file name (or DATASET:SEQ), for captions."""
        return self.name if self.workspace is None else Path(self.name).name

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fps

    @property
    def width(self) -> float:
        """Image width in pixels (from the keypoints attrs; else the joints' extent)."""
        if self.image_size:
            return float(self.image_size[0])
        x = self.joints[..., 0][np.isfinite(self.joints[..., 0])]
        return float(x.max()) if len(x) else 1.0


def is_dataset_ref(text: str) -> bool:
    """`DATASET:SEQ` (and not an existing file whose name happens to contain a colon)."""
    return bool(DATASET_REF.match(text)) and not Path(text).exists()


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ----------------------------------------------------------------------------- video files
def from_file(
    path: Path, label: str, *, cache: Path, params_path: Path, fps: float | None, layout: str, upstream: Upstream,
    timings: dict[str, float] | None = None,
) -> Source:
    """Run the upstream stages on the workspace of video `path` and read its joints (cached by content);
    each stage's seconds go into `timings` as `<label>.<stage>`."""
    path = Path(path)
    if not path.is_file():
        raise AlignError(f"video {label} not found: {path}")
    digest = sha256_of(path)
    ctx = workspace_context(path, digest, cache=cache, params_path=params_path, fps=fps, layout=layout, label=label)
    timings = {} if timings is None else timings
    for stage in upstream:
        start = time.perf_counter()
        try:
            stage(ctx)
        except AlignError:
            raise
        except Exception as err:  # a stage's own error (corrupt video, no pose...) named with the user's file
            raise AlignError(f"video {label} ({path}): {_stage_name(stage)} failed: {err}") from err
        timings[f"{label}.{_stage_name(stage)}"] = round(time.perf_counter() - start, 3)
    store_url = ctx.artifact("keypoints")
    seq = digest[:16]
    try:
        store = ArtifactStore(store_url, mode="r")
        joints, attrs = store.read(seq, "joints_2d"), store.attrs(seq)
    except StoreError as err:
        raise AlignError(f"video {label} ({path}): no keypoints after the pose stages ({err})") from err
    return Source(label, str(path), joints, str(attrs.get("layout", layout)), float(attrs.get("fps", ctx.dataset.fps)),
                  _size(attrs.get("image_size")), path, None, digest, ctx.workdir, str(attrs.get("fingerprint", "")))


def workspace_context(
    path: Path, digest: str, *, cache: Path, params_path: Path, fps: float | None, layout: str, label: str,
) -> StageContext:
    """The one-video dataset of `path` (content hash `digest`) as a StageContext rooted in its workspace."""
    from pipeline.datasets import DatasetError
    from pipeline.datasets.videos import probe_video

    workspace = (cache / digest[:16]).resolve()
    videos = workspace / "raw" / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    link = videos / f"{digest[:16]}{path.suffix.lower() or '.mp4'}"
    _point_link(link, path.resolve())
    try:
        _, source_fps = probe_video(link, where=f"video {label}")
    except DatasetError as err:
        raise AlignError(f"video {label} cannot be decoded ({path}): {err}") from err
    spec = DatasetSpec(name=WORKSPACE_DATASET, kind="videos", root=workspace / "raw", fps=float(fps or source_fps),
                       layout=layout, options={"videos": "videos"}, manifest=workspace / "(align workspace)")
    return StageContext(dataset=spec, params_path=Path(params_path).resolve(), store_root=str(workspace / "data"),
                        workers=1, workdir=workspace)


def _point_link(link: Path, target: Path) -> None:
    """Make `link` a symbolic link to `target`, atomically replacing an older one (the file may have moved)."""
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return
    tmp = link.with_name(f".{link.name}.{os.getpid()}")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    os.replace(tmp, link)


def _stage_name(stage: Callable) -> str:
    module = getattr(stage, "__module__", "") or ""
    return module.rsplit(".", 1)[-1] or getattr(stage, "__name__", "a stage")


def _size(value) -> tuple[int, int] | None:
    return (int(value[0]), int(value[1])) if value else None


# ----------------------------------------------------------------------------- dataset sequences
def from_dataset(ref: str, label: str, *, manifest: Path, params_path: Path, store_root: str) -> Source:
    """`DATASET:SEQ`: the joints in data/<DATASET>/keypoints.zarr and the video or frames its index names."""
    dataset, seq = DATASET_REF.match(ref).groups()
    try:
        spec = load_manifest(manifest).get(dataset, check_root=False)
    except ManifestError as err:
        raise AlignError(f"input {label} ({ref}): {err}") from err
    ctx = StageContext(dataset=spec, params_path=params_path, store_root=store_root)
    try:
        row = read_index(ctx.index_path).row(seq)
    except (IndexTableError, FileNotFoundError) as err:
        raise AlignError(f"input {label} ({ref}): no index of dataset {dataset} at {ctx.index_path} "
                         f"(run `pipeline index --dataset {dataset}`): {err}") from err
    except KeyError as err:
        raise AlignError(f"input {label} ({ref}): dataset {dataset} has no sequence {seq} ({ctx.index_path})") from err
    try:
        store = ArtifactStore(ctx.artifact("keypoints"), mode="r")
        joints, attrs = store.read(seq, "joints_2d"), store.attrs(seq)
    except StoreError as err:
        raise AlignError(f"input {label} ({ref}): no keypoints for it (run `pipeline keypoints --dataset {dataset}`): "
                         f"{err}") from err
    media = row.get("video") or row.get("frames_dir") or ""
    return Source(label, ref, joints, str(attrs.get("layout", spec.layout)), float(attrs.get("fps", spec.fps)),
                  _size(attrs.get("image_size")), Path(media) if media else None,
                  float(row["source_fps"]) if row.get("frames_dir") else None, str(row["fingerprint"]), None,
                  str(attrs.get("fingerprint", "")))


# ----------------------------------------------------------------------------- skeleton layouts
def to_layout(source: Source, layout: str, *, purpose: str) -> np.ndarray:
    """The source's joints (T, K', 3) in `layout` (converted by `pipeline.skeletons.convert`); AlignError names
    the input when no conversion exists."""
    if source.layout == layout:
        return source.joints
    check_convertible(source.layout, layout, source.label, source.name, purpose)
    return convert_joints(source.joints, source.layout, layout)


def check_convertible(src: str, dst: str, label: str, name: str, purpose: str) -> None:
    """AlignError naming the input unless `src` skeletons convert to `dst`."""
    try:
        conversion(src, dst)
    except (ConversionError, KeyError) as err:
        raise AlignError(f"{purpose} takes {dst} skeletons, but video {label} ({name}) has {src} skeletons "
                         f"and they cannot be converted: {err}") from err
