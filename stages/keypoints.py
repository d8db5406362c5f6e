"""`keypoints` stage: every sequence's 2D (and 3D, where it exists) joints -> data/<D>/keypoints.zarr.

Reads each index row's pose source (`pipeline.skeletons.poses`): the poses the `estimate_pose` stage wrote
for it in `data/<D>/poses.zarr` when there are any, else its pose file; converts them to the dataset's
layout when they are in another (`pipeline.skeletons.convert`: estimated blazepose33 -> penn13, ...); lifts
SMPL/MANO parameters through the body models when an npz holds them (`pipeline.skeletons.body_models`),
optionally normalises the 3D joints, and writes:

    {seq}/joints_2d (time, joint, coord)  [x, y, conf] float32, image pixels (conf 0 = missing)
    {seq}/joints_3d (time, joint, xyz)    float32, where the source has 3D

with attrs `layout` (skeleton name), `joints`, `image_size` ([width, height] or null), `projection`,
`fps`, `n_frames`. Every sequence of a store has the dataset's layout. Incremental: a sequence is
recomputed when its pose source (the index's `pose_fingerprint`), timeline, these params or the body
model files change (for estimated poses: when the estimated sequence changes); a new video alone does not
touch a sequence with a pose file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pipeline.context import StageContext
from pipeline.params import to_dict
from pipeline.runner import StageError, StageSummary, Task, run_incremental
from pipeline.sequences import file_fingerprint, pose_source, read_index, visual_source
from pipeline.store import ArtifactStore, StoreError, fingerprint

log = logging.getLogger(__name__)
STAGE = "keypoints"
TIMELINE = ("fps", "n_frames", "n_source_frames", "source_fps", "pose_format")
ESTIMATED = "poses"  # the estimate_pose stage's artifact


@dataclass(frozen=True)
class KeypointsParams:
    """body_model_dir: folder with SMPL_<GENDER> / MANO_<SIDE> .pkl or .npz (relative to the working
    directory); smpl_gender: which SMPL file; mano_flat_hand_mean: hand poses relative to the flat hand
    (else to MANO's mean pose); lift: lift SMPL/MANO parameters when an npz holds them (else use its joints
    arrays); normalise3d: store joints_3d root-centred, in canonical axes, at unit size
    (`pipeline.skeletons.body_models.normalise_3d`); openpose_person: `track` or `confidence` (`pipeline.skeletons.poses`)."""

    body_model_dir: str
    smpl_gender: Literal["neutral", "male", "female"]
    mano_flat_hand_mean: bool
    lift: bool
    normalise3d: bool
    openpose_person: Literal["track", "confidence"]


def run(ctx: StageContext) -> StageSummary:
    params = ctx.params(STAGE, KeypointsParams)
    index = read_index(ctx.index_path)
    estimated = _estimated(ctx, list(index.rows()))
    no_pose = [row["id"] for row in index.rows() if not row["pose_format"] and row["id"] not in estimated]
    if no_pose:
        hint = (f"; estimate them from their videos with `pipeline estimate-pose --dataset {ctx.name}`"
                if any(r["video"] or r["frames_dir"] for r in index.rows() if r["id"] in set(no_pose)) else "")
        raise StageError(
            f"{STAGE}: {len(no_pose)} sequence(s) of {ctx.index_path} have no pose source "
            f"(dataset {ctx.name}, manifest {ctx.dataset.manifest}): {', '.join(no_pose[:10])}{hint}"
        )
    model_dir = (Path(ctx.workdir) / params.body_model_dir).resolve()
    resolved = to_dict(params)
    # only npz pose files can hold SMPL/MANO parameters to lift: other datasets neither depend on nor need the licensed
    # files
    models = _model_files_fingerprint(model_dir) if any(r["pose_format"] == "npz" for r in index.rows()) else ""
    tasks = []
    for row in index.rows():
        timeline = {k: row[k] for k in TIMELINE}
        held = estimated.get(row["id"])  # (fingerprint, why unusable) of its estimated poses, if any
        upstream = held[0] if held else pose_source(row)
        tasks.append(Task(
            seq_id=row["id"],
            fingerprint=fingerprint(upstream, timeline, resolved, ctx.dataset.layout, models),
            n_frames=int(row["n_frames"]),
            source=pose_source(row),
            payload={"row": {"id": row["id"], "dataset": ctx.name, "pose": row["pose"], **timeline},
                     "layout": ctx.dataset.layout, "params": resolved, "model_dir": str(model_dir),
                     "estimated": ctx.artifact(ESTIMATED) if held else None},
            blocked=(f"its estimated poses in {ctx.artifact(ESTIMATED)} are {held[1]} (rerun `pipeline "
                     f"estimate-pose --dataset {ctx.name}`)") if held and held[1] else None,
        ))
    summary = run_incremental(
        ctx.artifact(STAGE),
        tasks,
        extract_sequence,
        stage=STAGE,
        params=resolved,
        dataset=ctx.name,
        provenance={"layout": ctx.dataset.layout},
        scheduler=ctx.scheduler,
        workers=ctx.workers,
    )
    return summary


def extract_sequence(store_url: str, task: Task) -> int:
    """Read (and lift) one sequence's poses and write them; returns its frame count."""
    from pipeline.skeletons.body_models import lift, normalise_3d
    from pipeline.skeletons.layouts import get_layout
    from pipeline.skeletons.poses import read_estimated, read_poses

    params = KeypointsParams(**task.payload["params"])
    row, layout = task.payload["row"], task.payload["layout"]
    if task.payload["estimated"]:
        poses = read_estimated(task.payload["estimated"], row, layout)
    else:
        poses = read_poses(row, layout, person=params.openpose_person)
    joints_2d, joints_3d, projection = poses.joints_2d, poses.joints_3d, poses.projection
    # an npz with body model parameters but no joints is lifted even when `lift` is off
    if poses.model_params and (params.lift or joints_2d is None):
        lifted = lift(poses.model_params, task.payload["model_dir"], gender=params.smpl_gender,
                      flat_hand_mean=params.mano_flat_hand_mean)
        if lifted.layout != layout:
            raise ValueError(f"{task.seq_id}: the body model parameters in {row['pose']} give {lifted.layout} joints, "
                             f"but the dataset layout is {layout} (set `layout: {lifted.layout}` in the manifest)")
        # lifted 2D joints are the orthographic projection of the 3D ones (DESIGN.md Sec. 3)
        joints_2d, joints_3d, projection = lifted.joints_2d, lifted.joints_3d, "orthographic"
    if joints_3d is not None and params.normalise3d:
        joints_3d = normalise_3d(joints_3d, get_layout(layout))
    arrays = {"joints_2d": (joints_2d, ("time", "joint", "coord"))}
    if joints_3d is not None:
        arrays["joints_3d"] = (joints_3d, ("time", "joint", "xyz"))
    ArtifactStore(store_url, mode="a").write_sequence(
        task.seq_id,
        arrays,
        fingerprint=task.fingerprint,
        source=task.source,
        attrs={
            "layout": layout,
            "joints": list(get_layout(layout).joints),
            "image_size": list(poses.image_size) if poses.image_size else None,
            "projection": projection,
            "normalised3d": bool(joints_3d is not None and params.normalise3d),
            "fps": row["fps"],
            "n_frames": len(joints_2d),
            # the artifact's name, not its URL: the stored bytes do not depend on where the stores live
            "source": f"{ESTIMATED}.zarr" if task.payload["estimated"] else row["pose"],
        },
    )
    return len(joints_2d)


def _estimated(ctx: StageContext, rows: list[dict]) -> dict[str, tuple[str | None, str | None]]:
    """{sequence id: (fingerprint, why it is unusable or None)} of every index sequence the estimate_pose stage's
    store holds, complete or not ({} when it has not run): keypoints reads these instead of pose files."""
    try:
        store = ArtifactStore(ctx.artifact(ESTIMATED))
    except StoreError:
        return {}
    # complete or not: a sequence whose estimate failed is blocked with the reason instead of silently read from a pose
    # file
    held = set(store.all_groups())
    return {row["id"]: (store.fingerprint_of(row["id"]), store.unusable(row["id"], source=visual_source(row)))
            for row in rows if row["id"] in held}


def _model_files_fingerprint(directory: Path) -> str:
    """Digest of the body model files present (a changed model file re-lifts every sequence)."""
    # the places `body_model_files.model_file` looks: the folder and its smpl/, mano/ subfolders
    files = sorted(p for pattern in ("SMPL_*", "MANO_*", "*/SMPL_*", "*/MANO_*") for p in directory.glob(pattern))
    return fingerprint([(str(p.relative_to(directory)), file_fingerprint(p)) for p in files if p.is_file()])
