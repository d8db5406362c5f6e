"""`make-sample`: write the generated sample dataset the way a user's own data would look (kind `videos`).

    <root>/videos/<seq>.mp4         H.264 (libx264 through PyAV); MPEG-4 Part 2 through OpenCV if no H.264 encoder
    <root>/poses/<seq>.npz          joints_2d (T, 13, 3) [x, y, conf] pixels, joints_3d (T, 13, 3) metres, layout
    <root>/sequences.csv            sequence, activity, split
    <root>/labels.csv               sequence, frame, label (per video frame)
    <root>/label_names.csv          label, name ("<activity>/<phase>")
    <root>/dinov2-random/           a small DINOv2 checkpoint with RANDOM weights (real ones cannot be
                                    downloaded offline); the sample's extract_dino params point at it

Deterministic from `make_sample.seed`: each sequence draws from its own seeded generator, and no file records
which library versions wrote it (so DVC hashes it the same in any clone with the same libraries).

Safety: it writes only a manifest entry of kind `videos` (the sample's kind), and only into a root that
is empty, absent, or holds the marker file `.made-by-make-sample` it wrote there itself; anything else
is refused before a byte is touched. It builds the new sample in `<root>/.make-sample.tmp`, then
replaces just the entries listed above, so it never deletes outside its root, nor any file of its root
it does not write.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import shutil
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.context import StageContext
from pipeline.datasets import DatasetError
from pipeline.datasets.synthetic import (
    ACTIVITIES,
    label_offset,
    phase_names,
    sample_sequence,
)
from pipeline.dino.model import save_random_checkpoint
from pipeline.skeletons.layouts import PENN13

log = logging.getLogger(__name__)
MARKER = ".made-by-make-sample"
BUILD = ".make-sample.tmp"
OUTPUTS = ("videos", "poses", "sequences.csv", "labels.csv", "label_names.csv", "dinov2-random")


@dataclass(frozen=True)
class MakeSampleParams:
    """Sizes and difficulty of the generated dataset; video_fps differs from the manifest fps on purpose,
    so the pipeline's timestamp resampling is exercised."""

    seed: int
    train_per_activity: int
    val_per_activity: int
    video_fps: int
    image_size: int
    min_seconds: float
    max_seconds: float
    noise_std: float
    missing_joint_prob: float
    dino_hidden: int
    dino_layers: int


def run(ctx: StageContext) -> None:
    params = ctx.params("make_sample", MakeSampleParams)
    root = claim_root(ctx)
    start = time.perf_counter()
    tmp = root / BUILD
    _remove(tmp)
    for sub in ("videos", "poses"):
        (tmp / sub).mkdir(parents=True)
    plan = _plan(params)
    from pipeline.runner import progress

    label_rows, n_frames = [], 0
    for seq_id, activity, split, seed in progress(iterable=plan, desc="make-sample", unit="seq"):
        rng = np.random.default_rng(seed)
        seconds = rng.uniform(params.min_seconds, params.max_seconds)
        seq = sample_sequence(activity, rng, fps=params.video_fps, seconds=seconds, image_size=params.image_size,
                              missing_joint_prob=params.missing_joint_prob)
        frames = render_sequence(seq.joints_2d, rng, size=params.image_size, noise_std=params.noise_std)
        write_video(tmp / "videos" / f"{seq_id}.mp4", frames, params.video_fps)
        labelled = np.where(seq.joints_2d[..., 2:] > 0, seq.joints_2d, 0.0).astype(np.float32)  # OpenPose-style 0, 0, 0
        _write_npz(tmp / "poses" / f"{seq_id}.npz", joints_2d=labelled, joints_3d=seq.joints_3d,
                   layout=np.array(PENN13.name))
        offset = label_offset(activity)
        label_rows += [(seq_id, t, offset + int(p)) for t, p in enumerate(seq.phase)]
        n_frames += len(frames)
    _write_csv(tmp / "sequences.csv", ("sequence", "activity", "split"), [(s, a, sp) for s, a, sp, _ in plan])
    _write_csv(tmp / "labels.csv", ("sequence", "frame", "label"), label_rows)
    _write_csv(tmp / "label_names.csv", ("label", "name"), [(i, f"{a}/{p}") for i, (a, p) in enumerate(phase_names())])
    save_random_checkpoint(tmp / "dinov2-random", hidden_size=params.dino_hidden, num_hidden_layers=params.dino_layers,
                           num_attention_heads=max(1, params.dino_hidden // 32), intermediate_size=4 * params.dino_hidden,
                           use_swiglu_ffn=False, image_size=224, seed=params.seed)
    _drop_library_version(tmp / "dinov2-random" / "config.json")
    for name in OUTPUTS:  # replace only what make-sample writes
        _remove(root / name)
        (tmp / name).rename(root / name)
    tmp.rmdir()
    log.info("sample: %d sequences, %d video frames in %.1f s -> %s", len(plan), n_frames,
             time.perf_counter() - start, root)


def claim_root(ctx: StageContext) -> Path:
    """The dataset's root, once it is sure to be make-sample's own (see the module docstring): created
    with the marker when absent or empty; DatasetError, touching nothing, for any other folder or kind."""
    spec, root = ctx.dataset, ctx.dataset.root
    where = f"make-sample: dataset '{spec.name}' of {spec.manifest}"
    if spec.kind != "videos":
        raise DatasetError(f"{where} is of kind '{spec.kind}'; make-sample writes only the generated sample "
                           f"(kind 'videos'), so it leaves {root} untouched")
    if root.exists() and not root.is_dir():
        raise DatasetError(f"{where}: root {root} is a file, not a folder; make-sample leaves it untouched")
    if root.is_dir() and any(root.iterdir()) and not (root / MARKER).is_file():
        raise DatasetError(
            f"{where}: root {root} holds files that make-sample did not write (no {MARKER} marker); it refuses "
            f"to replace them. Point the entry's root at a new folder, or delete that folder yourself"
        )
    root.mkdir(parents=True, exist_ok=True)
    marker = root / MARKER
    if not marker.is_file():
        marker.write_text("This folder is written by `pipeline make-sample`, which replaces its videos/, poses/,\n"
                          "*.csv and dinov2-random/ on every run. Do not keep your own files here.\n")
    return root


def _remove(path: Path) -> None:
    """Delete a file, a link (not what it points to) or a folder of make-sample's own."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _plan(params: MakeSampleParams) -> list[tuple[str, str, str, list[int]]]:
    plan = []
    for a, activity in enumerate(ACTIVITIES):
        for split, count in (("train", params.train_per_activity), ("val", params.val_per_activity)):
            for i in range(count):
                seed = [params.seed, a, 0 if split == "train" else 1, i]
                plan.append((f"{activity}_{split}_{i:03d}", activity, split, seed))
    return plan


def render_sequence(joints_2d: np.ndarray, rng: np.random.Generator, *, size: int, noise_std: float) -> np.ndarray:
    """(T, size, size, 3) uint8 RGB frames of a stick figure: left limbs warm, right limbs cool, on a
    random smooth background with Gaussian pixel noise."""
    import cv2

    t = len(joints_2d)
    yy, xx = np.mgrid[0:size, 0:size] / size
    c0, c1 = rng.uniform(40, 200, 3), rng.uniform(40, 200, 3)
    mix = (np.cos(rng.uniform(0, np.pi)) * xx + np.sin(rng.uniform(0, np.pi)) * yy)[..., None]
    background = np.clip(c0 + (c1 - c0) * mix, 0, 255).astype(np.uint8)
    noise_bank = rng.normal(0, noise_std, size=(8, size, size, 3)).astype(np.int16)
    frames = np.empty((t, size, size, 3), np.uint8)
    pts = np.round(joints_2d[..., :2] * 16).astype(np.int32)  # 4 fractional bits for anti-aliased lines
    width = max(2, size // 40)
    for i in range(t):
        img = background.copy()
        for a, b in PENN13.limbs:
            name = PENN13.joints[a] + PENN13.joints[b]
            color = (230, 120, 40) if "l_" in name and "r_" not in name else (40, 140, 230) if "r_" in name and "l_" not in name else (240, 240, 240)
            cv2.line(img, tuple(pts[i, a]), tuple(pts[i, b]), color, width, cv2.LINE_AA, shift=4)
        cv2.circle(img, tuple(pts[i, PENN13.index("head")]), int(size / 18 * 16), (250, 220, 180), -1, cv2.LINE_AA, shift=4)
        frames[i] = np.clip(img.astype(np.int16) + noise_bank[rng.integers(len(noise_bank))], 0, 255)
    return frames


def write_video(path: Path, frames: np.ndarray, fps: int) -> None:
    """H.264 mp4 through PyAV (libx264, the same frames give the same bytes); MPEG-4 Part 2 through OpenCV
    where no H.264 encoder exists."""
    import av

    if "libx264" in av.codecs_available:
        from pipeline.video.writer import write_video as write_h264

        write_h264(path, frames, fps, crf=20, preset="veryfast")
        return
    import cv2

    log.warning("no H.264 encoder in PyAV: writing %s as MPEG-4 Part 2 (mp4v) through OpenCV", path)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (frames.shape[2], frames.shape[1]))
    for frame in frames:
        writer.write(frame[..., ::-1])
    writer.release()


def _drop_library_version(config: Path) -> None:
    """Remove the `transformers_version` that `save_pretrained` writes into config.json: it would make the
    checkpoint's digest, and with it every dino.zarr fingerprint, differ between installs (loading ignores it)."""
    data = json.loads(config.read_text())
    data.pop("transformers_version", None)
    config.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _write_npz(path: Path, **arrays: np.ndarray) -> None:
    """`np.savez` with bytes that do not depend on the Python release: uncompressed (zlib builds such as
    zlib-ng compress the same arrays to different bytes) and each member written whole with a fixed header.
    `np.savez` streams into zipfile, whose zip64 local headers changed within Python 3.11: 3.11.2 and 3.11.7
    wrote the same arrays to different bytes, so to different DVC hashes; these files are the same under both
    (checked)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=False)
            archive.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buffer.getvalue())


def _write_csv(path: Path, header: tuple[str, ...], rows) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
