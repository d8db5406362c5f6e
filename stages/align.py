"""`align`: which frame of video B matches each frame of video A (an on-demand command, not a DVC stage).

    pipeline align A.mp4 B.mp4 --out DIR [--model models/<D>/<method>]      (inputs may be DATASET:SEQ too)

1. Poses: a video file goes through the cached stages index -> estimate_pose -> keypoints in a workspace keyed
   by its content (`stages.shared.align_sources`), so a video aligned once is never processed again.
2. Features: a trained model's embeddings (`--model`; the poses converted to the model's skeleton layout,
   cached in the workspace), else normalised poses with velocities (`model.inputs.pose_features`).
3. Alignment: monotonic DTW on the (N_a, N_b) feature distances (`model.blocks.warping`), or DTW through the
   entropic fused-GW transport plan of VASOT (`model.blocks.ot.align_plan`); with `mirror`, B's mirror image
   too, keeping the cheaper path (a left- against a right-handed performer).
4. Outputs, written into a temporary folder beside DIR and moved into DIR at the end (a failure leaves DIR as
   it was): alignment.csv (one row per frame of A), alignment.json (inputs, features, model, path, summary),
   A.mp4 / B.mp4 (browser-playable copies on the CSV's timeline), side_by_side.mp4 and alignment.html.
Every setting is in params.yaml's `align` section.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from model.blocks.warping import WarpingPath, dtw_path, frame_mapping, summary_text, warp_summary
from model.inputs.pose_features import embedding_cost, mirror_joints, pose_cost, pose_features
from pipeline.context import StageContext
from pipeline.params import load_section, to_dict
from pipeline.skeletons.layouts import get_layout
from stages.shared import align_sources as sources
from stages.shared.align_media import VideoSettings, write_alignment_videos
from stages.shared.align_sources import AlignError, Source
from stages.shared.viewer import matrix_png, render_page

if TYPE_CHECKING:  # torch is imported only when a model is given: aligning poses starts in a second
    from stages.shared.align_model import AlignModel

log = logging.getLogger(__name__)
STAGE = "align"


@dataclass(frozen=True)
class AlignOtParams:
    """The OT alternative (`method: ot`): VASOT's fused-GW plan between the frames (`model.blocks.ot.align_plan`,
    on distances divided by their median), then the DTW path through -log(plan)."""

    epsilon: float
    alpha: float
    rho: float
    radius: float
    n_outer: int
    n_inner: int


@dataclass(frozen=True)
class AlignParams:
    """See params.yaml `align` for what each setting does and why it has its value."""

    fps: float | None
    features: Literal["auto", "pose"]
    pose_layout: str
    min_confidence: float
    smooth_s: float
    speed_quantile: float
    velocity_weight: float
    mirror: bool
    method: Literal["dtw", "ot"]
    step_pattern: Literal["symmetric2", "symmetric1", "asymmetric"]
    open_begin: bool
    open_end: bool
    skip_cost: float
    band: float | None
    min_frames: int
    min_person_fraction: float
    video_height: int
    video_crf: int
    video_preset: str
    matrix_side: int
    ot: AlignOtParams


@dataclass(frozen=True)
class AlignRequest:
    """What the command line chose: the two inputs, DIR, the model folder, and where things live."""

    input_a: str
    input_b: str
    out: Path
    model: Path | None
    device: str
    params_path: Path
    manifest: Path
    store_root: str
    cache: Path


@dataclass(frozen=True)
class Alignment:
    """The result: path (L, 2); mapping (N_a,) B's frame per frame of A; distance (N_a,); cost (N_a, N_b) the
    feature distances to B as matched (its mirror image when b_mirrored); mean distance along the path of the
    kept and of the other orientation."""

    path: np.ndarray
    mapping: np.ndarray
    distance: np.ndarray
    cost: np.ndarray
    b_mirrored: bool
    path_distance: float
    other_path_distance: float | None


def run(request: AlignRequest, *, upstream: Sequence[Callable[[StageContext], Any]]) -> dict[str, Any]:
    """Align the request's two inputs and write DIR; returns alignment.json's content. `upstream`: the stages
    that turn a video file's workspace into keypoints, in order (the CLI passes index, estimate_pose, keypoints)."""
    params = load_section(STAGE, AlignParams, request.params_path)
    get_layout(params.pose_layout)
    timings: dict[str, float] = {}
    total = time.perf_counter()
    model = None
    if request.model is not None:
        from stages.shared.align_model import load_align_model

        with _timed(timings, "load_model"):
            model = load_align_model(request.model, request.device)
        for text, label in ((request.input_a, "A"), (request.input_b, "B")):  # before estimating any pose
            if not sources.is_dataset_ref(text):
                sources.check_convertible(sources.ESTIMATED_LAYOUT, model.layout, label, text, f"model {model.path}")
    with _timed(timings, "poses"):
        a = _source(request, request.input_a, "A", params, upstream, timings)
        b = _source(request, request.input_b, "B", params, upstream, timings)
    for s in (a, b):
        check_source(s, params)
    with _timed(timings, "features"):
        feats = _features(a, b, params, model)
    with _timed(timings, "align"):
        result = align_features(*feats, params)
    document = _document(request, params, a, b, model, result)
    if model is not None and model.multi_activity:
        from stages.shared.align_model import predict_activity

        with _timed(timings, "activity"):
            document["activity"] = predict_activity(model, request.store_root, feats[0], feats[1])
    with _timed(timings, "outputs"):
        _write_outputs(request.out, a, b, result, document, params, timings, total)
    log.info("%s -> %s", document["summary_text"], request.out)
    return document


@contextlib.contextmanager
def _timed(timings: dict[str, float], name: str):
    start = time.perf_counter()
    yield
    timings[name] = round(time.perf_counter() - start, 3)


# ----------------------------------------------------------------------------- inputs
def _source(request: AlignRequest, text: str, label: str, params: AlignParams, upstream, timings) -> Source:
    if sources.is_dataset_ref(text):
        return sources.from_dataset(text, label, manifest=request.manifest, params_path=request.params_path,
                                    store_root=request.store_root)
    return sources.from_file(Path(text), label, cache=request.cache, params_path=request.params_path,
                             fps=params.fps, layout=sources.ESTIMATED_LAYOUT, upstream=upstream, timings=timings)


def check_source(source: Source, params: AlignParams) -> None:
    """Refuse a video too short to align, or one where a person is missing from most frames."""
    where = f"video {source.label} ({source.name})"
    if source.n_frames < params.min_frames:
        raise AlignError(f"{where} is too short: {source.n_frames} frames ({source.duration_s:.2f} s at "
                         f"{source.fps:g} fps); align needs at least {params.min_frames} (align.min_frames)")
    found = int((np.nan_to_num(source.joints[..., 2]) > 0).any(axis=1).sum())
    if found < params.min_person_fraction * source.n_frames:
        raise AlignError(f"{where}: a person is found in only {found} of {source.n_frames} frames; align needs "
                         f"{params.min_person_fraction:.0%} of them (align.min_person_fraction)")


# ----------------------------------------------------------------------------- features
def _features(a: Source, b: Source, params: AlignParams, model: AlignModel | None):
    """(features of A, of B, of B's mirror image or None): embeddings (T, D) or PoseFeatures."""
    if model is not None and params.features == "auto":
        from stages.shared.align_model import embed_source

        emb_a, emb_b = embed_source(model, a), embed_source(model, b)
        return emb_a, emb_b, embed_source(model, b, mirrored=True) if params.mirror else None
    layout = get_layout(params.pose_layout)

    def feats(source: Source, mirrored: bool = False):
        joints = sources.to_layout(source, params.pose_layout, purpose="pose features (align.pose_layout)")
        if mirrored:
            joints = mirror_joints(joints, layout, source.width)
        return pose_features(joints, layout, fps=source.fps, smooth_s=params.smooth_s,
                             speed_quantile=params.speed_quantile, min_confidence=params.min_confidence)

    return feats(a), feats(b), feats(b, mirrored=True) if params.mirror else None


def _cost(fa, fb, params: AlignParams) -> np.ndarray:
    if isinstance(fa, np.ndarray):
        return embedding_cost(fa, fb)
    return pose_cost(fa, fb, velocity_weight=params.velocity_weight)


def align_features(fa, fb, fb_mirrored, params: AlignParams) -> Alignment:
    """DTW (or OT + DTW) between A and B, and B's mirror image when given; the cheaper orientation wins."""
    candidates = []
    for mirrored, fbx in ((False, fb), (True, fb_mirrored)):
        if fbx is None:
            continue
        cost = _cost(fa, fbx, params)
        warp = _warp(cost, params)
        candidates.append((float(cost[warp.path[:, 0], warp.path[:, 1]].mean()), mirrored, cost, warp))
    candidates.sort(key=lambda c: c[0])
    (best, mirrored, cost, warp), others = candidates[0], candidates[1:]
    mapping = frame_mapping(warp.path, cost)
    return Alignment(warp.path, mapping, cost[np.arange(len(mapping)), mapping], cost, mirrored, best,
                     others[0][0] if others else None)


def _warp(cost: np.ndarray, params: AlignParams) -> WarpingPath:
    local = _ot_cost(cost, params.ot) if params.method == "ot" else cost
    band = None if params.band is None else int(np.ceil(params.band * max(cost.shape)))
    return dtw_path(local, step_pattern=params.step_pattern, open_begin=params.open_begin, open_end=params.open_end,
                    skip_cost=params.skip_cost * float(np.median(local)), band=band)


def _ot_cost(cost: np.ndarray, p: AlignOtParams) -> np.ndarray:
    """-log of the fused-GW plan (rows scaled to sum to 1): a cost whose cheapest monotone path DTW finds."""
    import torch

    from model.blocks.ot import align_plan

    scaled = torch.as_tensor(cost / max(float(np.median(cost)), 1e-12), dtype=torch.float64)[None]
    plan = align_plan(scaled, epsilon=p.epsilon, alpha=p.alpha, rho=p.rho, radius=p.radius,
                      n_outer=p.n_outer, n_inner=p.n_inner)[0].numpy()
    rows = plan / np.maximum(plan.sum(1, keepdims=True), 1e-300)
    return -np.log(np.maximum(rows, 1e-12))


# ----------------------------------------------------------------------------- outputs
def _document(request: AlignRequest, params: AlignParams, a: Source, b: Source, model: AlignModel | None,
              result: Alignment) -> dict[str, Any]:
    summary = warp_summary(result.mapping, result.path, a.fps, b.fps)
    if model is not None and params.features == "auto":
        features = {"kind": "embedding", "description": f"embeddings of the {model.method} model {model.path} "
                    f"(poses converted from their layout to {model.layout}), Euclidean distance"}
    else:
        features = {"kind": "pose", "description": f"normalised {params.pose_layout} poses (centred on the hips per "
                    f"frame, scaled by the median torso length) with velocities (weight {params.velocity_weight}), "
                    "confidence-weighted RMS distance"}
    return {
        "inputs": {"a": _input_doc(a), "b": _input_doc(b)},
        "features": features,
        "model": None if model is None else model.describe(),
        "alignment": {"method": params.method, "step_pattern": params.step_pattern, "open_begin": params.open_begin,
                      "open_end": params.open_end, "b_mirrored": result.b_mirrored,
                      "mean_path_distance": round(result.path_distance, 5),
                      "mean_path_distance_other_orientation": None if result.other_path_distance is None
                      else round(result.other_path_distance, 5)},
        "path": result.path.tolist(),
        "summary": {"duration_a_s": round(a.duration_s, 4), "duration_b_s": round(b.duration_s, 4), **summary},
        "summary_text": summary_text(summary, a.duration_s, b.duration_s),
        "params": to_dict(params),
    }


def _input_doc(s: Source) -> dict[str, Any]:
    return {"name": s.name, "path": str(Path(s.media).resolve()) if s.media else None,
            "content_sha256" if s.workspace else "content_fingerprint": s.content_id,
            "fps": s.fps, "frames": s.n_frames, "duration_s": round(s.duration_s, 4), "layout": s.layout,
            "workspace": str(s.workspace) if s.workspace else None}


def _write_outputs(out: Path, a: Source, b: Source, result: Alignment, document: dict, params: AlignParams,
                   timings: dict[str, float], total_start: float) -> None:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AlignError(f"--out {out} exists and is not a folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; DIR should get the usual permissions
    try:
        _write_csv(tmp / "alignment.csv", result, a.fps, b.fps)
        settings = VideoSettings(params.video_height, params.video_crf, params.video_preset)
        note = "B matched as its mirror image" if result.b_mirrored else ""
        with _timed(timings, "videos"):
            files = write_alignment_videos(tmp, a, b, result.mapping, result.distance, settings, note=note)
        with _timed(timings, "page"):
            (tmp / "alignment.html").write_text(_page(document, result, a, b, files, params), encoding="utf-8")
        timings["total"] = round(time.perf_counter() - total_start, 3)
        document["files"] = {"csv": "alignment.csv", "page": "alignment.html", **files}
        document["timings_s"] = timings
        (tmp / "alignment.json").write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
        _publish(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_csv(path: Path, result: Alignment, fps_a: float, fps_b: float) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["frame_a", "time_a_s", "frame_b", "time_b_s", "distance"])
        for i, (j, d) in enumerate(zip(result.mapping, result.distance)):
            writer.writerow([i, f"{i / fps_a:.4f}", int(j), f"{j / fps_b:.4f}", f"{d:.5f}"])


def _page(document: dict, result: Alignment, a: Source, b: Source, files: dict, params: AlignParams) -> str:
    activity = document.get("activity") or {}
    data = {
        "n_a": a.n_frames, "n_b": b.n_frames, "fps_a": a.fps, "fps_b": b.fps,
        "mapping": result.mapping.tolist(), "distance": np.round(result.distance, 4).tolist(),
        "lag_s": document["summary"]["lag_s"], "path": document["path"],
        "matrix_png": matrix_png(result.cost, max_side=params.matrix_side), "matrix_side": params.matrix_side,
        "name_a": a.short_name, "name_b": b.short_name, "b_mirrored": result.b_mirrored,
        "summary_text": document["summary_text"], "features_text": "Features: " + document["features"]["description"],
        "activity_text": activity.get("text", ""), "activity_warning": activity.get("warning", ""),
    }
    return render_page(data, video_a=files["a"], video_b=files["b"], title=f"{a.short_name} vs {b.short_name}")


def _publish(tmp: Path, out: Path) -> None:
    """Move the finished files into `out`: the whole folder at once when `out` is new (or empty), else file by
    file (each replace is atomic; other files in `out` are left alone)."""
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    if not out.exists():
        os.replace(tmp, out)
        tmp.mkdir()  # the caller's cleanup removes it
        return
    for item in sorted(tmp.iterdir(), key=lambda p: p.name == "alignment.json"):  # the json last: it marks done
        os.replace(item, out / item.name)
