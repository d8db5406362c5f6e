"""`heatmaps` stage: joint + limb heatmaps of every sequence's 2D keypoints -> data/<D>/heatmaps.zarr.

Reads `keypoints.zarr` (`{seq}/joints_2d` and its layout), computes the sequence's crop box and renders
`pipeline.heatmaps.raster.render` on a size x size grid. Writes per sequence:

    {seq}/heatmap (time, channel, y, x)   channels = the layout's joints, then its limbs
    {seq}/box     (bound,)                the crop box x0, y0, x1, y1 in image pixels, float64

`dtype: float16` stores the maps as they are; `dtype: uint8` stores round(255 * min(h, 1)), so that
h = heatmap * attrs["scale"] (1/255) to within 1/510 (maps with confidences above 1 saturate). Both are
zstd-compressed at `compression_level`. Incremental: a sequence is recomputed only when its keypoints
or these params change.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np

from pipeline.context import StageContext
from pipeline.params import to_dict
from pipeline.runner import StageError, StageSummary, Task, run_incremental
from pipeline.sequences import pose_source, read_index
from pipeline.store import ArtifactStore, fingerprint

log = logging.getLogger(__name__)
STAGE = "heatmaps"


@dataclass(frozen=True)
class HeatmapsParams:
    """size: grid cells per side; sigma: Gaussian std in grid cells; pad: each side of the crop box grows by
    this fraction of the box's width (height); square: make the crop box square (about its centre);
    dtype: stored dtype (see module docstring); compression_level: zstd level."""

    size: int
    sigma: float
    pad: float
    square: bool
    dtype: Literal["float16", "uint8"]
    compression_level: int


def run(ctx: StageContext) -> StageSummary:
    params = ctx.params(STAGE, HeatmapsParams)
    if params.size < 1 or params.sigma <= 0 or params.pad < 0:
        raise StageError(f"{STAGE}: need size >= 1, sigma > 0 and pad >= 0 in {ctx.params_path}, got {params}")
    keypoints_url = ctx.artifact("keypoints")
    keypoints = ArtifactStore(keypoints_url)
    index = read_index(ctx.index_path)
    resolved = to_dict(params)
    # sequences already run in parallel: render's own threads would oversubscribe the cores
    threads = 1 if (ctx.scheduler or ctx.workers > 1) else None
    tasks = [_task(row, keypoints, resolved, threads, ctx.name) for row in index.rows()]
    summary = run_incremental(
        ctx.artifact(STAGE),
        tasks,
        render_sequence,
        stage=STAGE,
        params=resolved,
        dataset=ctx.name,
        # the store's name, not its URL: the same keypoints give the same bytes under any --store-root
        provenance={"keypoints": "keypoints.zarr"},
        scheduler=ctx.scheduler,
        workers=ctx.workers,
    )
    return summary


def _task(row: dict, keypoints: ArtifactStore, resolved: dict, threads: int | None, dataset: str) -> Task:
    """One sequence's task; blocked when its keypoints are missing, stale or made from an older pose file."""
    source = pose_source(row)
    unusable = keypoints.unusable(row["id"], source=source)
    return Task(
        seq_id=row["id"],
        # the keypoints' stored fingerprint, not the pose file's: a change of keypoints params reaches the heatmaps too
        fingerprint=fingerprint(keypoints.fingerprint_of(row["id"]), resolved),
        n_frames=int(row["n_frames"]),
        payload={"keypoints": keypoints.url, "params": resolved, "threads": threads},
        source=source,
        blocked=(f"no keypoints in {keypoints.url} ({unusable}); run `pipeline keypoints --dataset {dataset}`, "
                 f"or see why it failed there") if unusable else None,
    )


def render_sequence(store_url: str, task: Task) -> int:
    """Render one sequence's heatmaps from its stored keypoints and write them; returns its frame count."""
    from pipeline.heatmaps.raster import crop_box, quantise, render
    from pipeline.skeletons.layouts import get_layout

    params = HeatmapsParams(**task.payload["params"])
    keypoints = ArtifactStore(task.payload["keypoints"])
    seq = task.seq_id
    attrs = keypoints.attrs(seq)
    joints = keypoints.array(seq, "joints_2d")[...]
    layout = get_layout(attrs["layout"])
    if joints.ndim != 3 or joints.shape[1:] != (layout.n_joints, 3):
        raise ValueError(f"{seq}: joints_2d in {keypoints.url} has shape {joints.shape}, layout {layout.name} "
                         f"needs (T, {layout.n_joints}, 3)")
    image = attrs.get("image_size")
    try:
        # no confident joint in any frame: the whole image as the box, so the sequence gets empty maps instead of
        # failing
        box = crop_box(joints, pad=params.pad, square=params.square, fallback=(0, 0, *image) if image else None)
    except ValueError as err:
        raise ValueError(f"{seq}: {err} in {keypoints.url} (poses from {attrs.get('source') or 'an unrecorded file'}), "
                         f"and no image size to fall back on") from err
    maps = render(joints, layout.limbs, box, params.size, params.sigma, threads=task.payload["threads"])
    stored, scale = quantise(maps, params.dtype)
    ArtifactStore(store_url, mode="a").write_sequence(
        seq,
        {"heatmap": (stored, ("time", "channel", "y", "x")), "box": (np.asarray(box, dtype=np.float64), ("bound",))},
        fingerprint=task.fingerprint,
        source=task.source,
        attrs={
            "layout": layout.name,
            "channels": list(layout.channel_names),
            "n_frames": len(joints),
            "fps": attrs.get("fps"),
            "scale": scale,
            "box_order": ["x0", "y0", "x1", "y1"],
        },
        compression="zstd",
        level=params.compression_level,
    )
    return len(joints)
