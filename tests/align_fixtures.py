"""Videos with known answers for the align tests: a video, a copy resampled by a known monotonic warp, and a
mirrored warped copy, with the poses of each (the original's poses warped and mirrored the same way)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from pipeline.skeletons.layouts import get_layout
from pipeline.video.reader import iter_frames
from pipeline.video.writer import write_video

WARP_POWER = 1.5  # B frame j shows A frame (n - 1) * (j / (m - 1)) ** WARP_POWER: B starts slow, ends fast
STRETCH = 1.3  # B has this many times A's frames


@dataclass(frozen=True)
class Warp:
    """source: A's frame shown by each frame of B (m,); truth: the (fractional) frame of B matching each frame
    of A (n,), the inverse of the warp."""

    source: np.ndarray
    truth: np.ndarray


def make_warp(n: int) -> Warp:
    m = int(round(STRETCH * n))
    source = np.round((n - 1) * np.linspace(0, 1, m) ** WARP_POWER).astype(np.int64)
    truth = (m - 1) * (np.arange(n) / (n - 1)) ** (1 / WARP_POWER)
    return Warp(source, truth)


def read_rgb(path: Path) -> np.ndarray:
    return np.stack([rgb for _, rgb in iter_frames(path)])


def mirror_poses(joints: np.ndarray, width: int, layout: str) -> np.ndarray:
    """What a pose estimator reports on the horizontally flipped video: x mirrored, left and right swapped."""
    out = joints[:, list(get_layout(layout).joint_flip_permutation)].copy()
    out[..., 0] = width - 1 - out[..., 0]
    return out


def write_warped_videos(folder: Path, video: Path, joints: np.ndarray, fps: float) -> Warp:
    """folder/{orig,warp,mirror}.mp4 and, beside each, <name>.npz with its joints_2d (penn13)."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = read_rgb(video)
    n = min(len(rgb), len(joints))
    rgb, joints = rgb[:n], joints[:n]
    warp = make_warp(n)
    width = rgb.shape[2]
    made = {
        "orig": (rgb, joints),
        "warp": (rgb[warp.source], joints[warp.source]),
        "mirror": (rgb[warp.source][:, :, ::-1], mirror_poses(joints[warp.source], width, "penn13")),
    }
    for name, (frames, poses) in made.items():
        write_video(folder / f"{name}.mp4", np.ascontiguousarray(frames), fps)
        np.savez(folder / f"{name}.npz", joints_2d=poses.astype(np.float32))
    return warp


def add_videos_dataset(project: Path, name: str, root: Path, fps: float) -> None:
    """Describe `root` (videos/*.mp4, poses/*.npz) as a `videos` dataset in the project's manifest."""
    manifest = project / "data_manifest.yaml"
    data = yaml.safe_load(manifest.read_text())
    data["datasets"][name] = {"kind": "videos", "root": str(root), "fps": fps, "layout": "penn13", "poses": "poses"}
    manifest.write_text(yaml.safe_dump(data, sort_keys=False))


def sample_video(project: Path, seq: str) -> tuple[Path, np.ndarray]:
    """A generated sample video and its poses (penn13, the video's own frame rate)."""
    raw = project / "data" / "sample" / "raw"
    return raw / "videos" / f"{seq}.mp4", np.load(raw / "poses" / f"{seq}.npz")["joints_2d"]
