"""`evaluate` stage: the literature's protocol on a method's embeddings and on the baselines.

Reads `data/<D>/index.parquet` (splits, activities, per-frame labels) and
- the learned embeddings `data/<D>/embeddings_<method>.zarr` `{seq}/embedding (time, feature)`, or, with
  `trained_on=D2`, embeds D's sequences with the model trained on D2 (`models/<D2>/<method>`);
- the raw inputs as "no learning" baselines: normalised 2D keypoints (`keypoints.zarr {seq}/joints_2d`) and
  DINOv2 features (`dino.zarr {seq}/feature`), each when its store exists, and always normalised time t/T.
Writes `metrics/<D>/<method>.json` (or `<method>_from_<D2>.json`): every metric per activity and overall
for every feature set, the robustness study when a trained model reads keypoints, the protocol and the
versions used; and the plots under `plots/<D>/<method>/` (see `stages.shared.plots`).
Training split: 'train'; evaluated split: 'val' when the index has one, else 'test'.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from model.metrics.protocol import (
    ProtocolParams,
    ProtocolResult,
    VideoSet,
    evaluate_features,
)
from model.metrics.robustness import RobustnessParams
from pipeline.context import StageContext
from pipeline.params import to_dict
from pipeline.sequences import SequenceIndex, read_index
from pipeline.skeletons.layouts import get_layout

log = logging.getLogger(__name__)


class EvaluateError(RuntimeError):
    """Inputs of the evaluation are missing or inconsistent."""


@dataclass(frozen=True)
class PlotParams:
    """enabled: write the PNGs; tsne_frames: frames (subsampled evenly) in the t-SNE plot."""

    enabled: bool
    tsne_frames: int
    tsne_perplexity: float


@dataclass(frozen=True)
class EvaluateParams:
    seed: int
    protocol: ProtocolParams
    robustness: RobustnessParams
    plots: PlotParams


@dataclass(frozen=True)
class Split:
    """The sequences of one split, in index order, with their per-frame labels (None: the dataset has none)."""

    ids: tuple[str, ...]
    activities: tuple[str, ...]
    n_frames: tuple[int, ...]
    labels: list[np.ndarray] | None

    def videos(self, embeddings: list[np.ndarray]) -> VideoSet:
        return VideoSet(self.ids, self.activities, embeddings, self.labels)


def run(ctx: StageContext, method: str, trained_on: str | None = None, device: str = "auto") -> dict[str, Any]:
    params = ctx.params("evaluate", EvaluateParams)
    start = time.perf_counter()
    index = read_index(ctx.index_path)
    eval_split = "val" if (index.table["split"] == "val").any() else "test"
    train, val = _split(index, "train"), _split(index, eval_split)
    name = method if trained_on is None else f"{method}_from_{trained_on}"
    if method == "raw" and trained_on is not None:
        raise EvaluateError("--trained-on needs a trained method, not 'raw'")

    features = _learned(ctx, method, trained_on, device, train, val)
    features.update(_baselines(ctx, train, val))
    results: dict[str, ProtocolResult] = {}
    for feat, (tr, va) in features.items():
        log.info("%s/%s: evaluating %s features (%d train, %d %s videos)",
                 ctx.name, name, feat, len(tr), len(va), eval_split)
        results[feat] = evaluate_features(train.videos(tr), val.videos(va), params.protocol, seed=params.seed)

    report = _report(ctx, method, trained_on, eval_split, train, val, results, params)
    if trained_on is None and method != "raw":
        predicted = _predicted_segmentation(ctx, method, val, params.protocol.segment_overlaps)
        if predicted is not None:
            report["features"]["learned"]["segmentation_predicted"] = predicted
    if method == "raw":
        robust, reason = None, "no trained model for method 'raw'"
    elif trained_on is not None:
        robust, reason = None, "not run on generalisation runs (--trained-on)"
    else:
        robust, reason = _robustness(ctx, method, device, train, val, params)
    report["robustness"] = robust
    if robust is None:
        report["skipped"]["robustness"] = reason
    report["seconds"]["total"] = time.perf_counter() - start
    _write_json(ctx.metrics_path(name), report)
    if params.plots.enabled:
        from stages.shared import plots

        models_dir = ctx.workdir / "models" / (trained_on or ctx.name) / method
        plots.write_all(ctx.plots_dir(name), val, {f: va for f, (_, va) in features.items()}, results,
                        models_dir, params.plots, seed=params.seed)
    log.info("%s/%s: metrics -> %s (%.1f s)", ctx.name, name, ctx.metrics_path(name), report["seconds"]["total"])
    return report


def _learned(ctx: StageContext, method: str, trained_on: str | None, device: str, train: Split, val: Split):
    """{"learned": (train, val) embeddings}: from the method's store, or embedded by the model trained on
    another dataset; {} for method 'raw'."""
    if trained_on is not None:
        from stages.shared.inputs import check_model_heatmaps

        models_dir = ctx.workdir / "models" / trained_on / method
        embedder = _load_embedder(models_dir, device)
        check_model_heatmaps(models_dir, ctx.artifact("heatmaps"))  # maps made like the training ones, or refuse
        return {"learned": tuple(_embed(ctx, embedder, s) for s in (train, val))}
    if method != "raw":
        url = ctx.artifact(f"embeddings_{method}")
        return {"learned": tuple(_read(url, s, "embedding") for s in (train, val))}
    return {}


def _predicted_segmentation(ctx: StageContext, method: str, val: Split, overlaps) -> dict[str, Any] | None:
    """The method's own per-frame segments (`embeddings_<method>.zarr {seq}/segment`, e.g. VASOT's
    prototypes) scored per activity against the phase labels, Hungarian-matched (compare with
    `segmentation_kmeans`); None when the method does not segment or there are no labels."""
    from model.metrics.segmentation import cluster_scores

    url = ctx.artifact(f"embeddings_{method}")
    store = _open(url)
    if val.labels is None or store is None or not val.ids or "segment" not in store.root[val.ids[0]]:
        return None
    preds = [p.ravel().astype(np.int64) for p in _read(url, val, "segment")]
    per = {}
    for act in sorted(set(val.activities)):
        rows = [i for i, a in enumerate(val.activities) if a == act]
        per[act] = cluster_scores([preds[i] for i in rows], [val.labels[i] for i in rows], overlaps)
    keys = next(iter(per.values()))
    return {**{k: float(np.mean([p[k] for p in per.values()])) for k in keys}, "per_activity": per}


def _split(index: SequenceIndex, split: str) -> Split:
    part = index.split(split)
    if len(part) == 0:
        raise EvaluateError(f"{index.path}: no sequences in split '{split}'")
    labels = [None if v is None else np.asarray(v, dtype=np.int64) for v in part.table["labels"]]
    n_frames = tuple(int(n) for n in part.table["n_frames"])
    if all(v is None for v in labels):
        labels = None
    else:
        labels = [np.full(n, -1, dtype=np.int64) if v is None else v for v, n in zip(labels, n_frames)]
    return Split(tuple(part.table["id"]), tuple(part.table["activity"]), n_frames, labels)


def _open(url: str):
    from pipeline.store import ArtifactStore, StoreError

    try:
        return ArtifactStore(url)
    except StoreError:
        return None


def _read(url: str, split: Split, array: str) -> list[np.ndarray]:
    """Per sequence of the split, `array` from the store at `url`, as float32 (time, feature)."""
    store = _open(url)
    if store is None:
        raise EvaluateError(f"no artifact store at {url} (has its stage run?)")
    have = set(store.sequences())
    missing = [s for s in split.ids if s not in have]
    if missing:
        raise EvaluateError(f"{url}: {len(missing)} sequence(s) of the index are missing, e.g. {missing[:5]}")
    out = []
    for seq_id, n in zip(split.ids, split.n_frames):
        data = np.asarray(store.read(seq_id, array), dtype=np.float32)
        if len(data) != n:
            raise EvaluateError(f"{url}: sequence {seq_id} has {len(data)} frames of '{array}', the index says {n}")
        out.append(data.reshape(n, -1))
    return out


def _baselines(ctx: StageContext, train: Split, val: Split) -> dict[str, tuple[list[np.ndarray], list[np.ndarray]]]:
    """raw_keypoints and raw_dino when their stores exist, and always time (t/T)."""
    from model.metrics.baselines import normalise_keypoints, time_feature

    out = {}
    if _open(ctx.artifact("keypoints")) is not None:
        layout = get_layout(ctx.dataset.layout)
        url = ctx.artifact("keypoints")
        out["raw_keypoints"] = tuple(
            [normalise_keypoints(j.reshape(len(j), layout.n_joints, 3), layout) for j in _read(url, s, "joints_2d")]
            for s in (train, val)
        )
    if _open(ctx.artifact("dino")) is not None:
        out["raw_dino"] = tuple(_read(ctx.artifact("dino"), s, "feature") for s in (train, val))
    out["time"] = tuple([time_feature(n) for n in s.n_frames] for s in (train, val))
    return out


def _load_embedder(models_dir: Path, device: str):
    if not models_dir.is_dir():
        raise EvaluateError(f"no trained model at {models_dir} (run `pipeline train` for it first)")
    from stages.shared.models import load_embedder

    return load_embedder(models_dir, device)


def _inputs(ctx: StageContext, embedder, split: Split) -> list[dict[str, np.ndarray]]:
    """Per sequence, the arrays the embedder reads, keyed by array name (heatmaps as float32 maps)."""
    from stages.shared.inputs import read_array

    stores = {artifact: _open(ctx.artifact(artifact)) for artifact, _ in embedder.inputs}
    for artifact, store in stores.items():
        if store is None:
            raise EvaluateError(f"the model needs {ctx.artifact(artifact)}, which does not exist")
    return [
        {array: read_array(stores[artifact], seq_id, array) for artifact, array in embedder.inputs}
        for seq_id in split.ids
    ]


def _embed(ctx: StageContext, embedder, split: Split) -> list[np.ndarray]:
    from model.metrics.robustness import embed_sequences

    return embed_sequences(embedder, _inputs(ctx, embedder, split), split.ids, split.activities)


def _robustness(ctx, method, device, train: Split, val: Split, params: EvaluateParams):
    """(results, None) or (None, reason) when there is no model or it does not read keypoints."""
    from model.metrics.robustness import JOINTS, robustness

    models_dir = ctx.models_dir(method)
    if not models_dir.is_dir():
        return None, f"no trained model at {models_dir}"
    embedder = _load_embedder(models_dir, device)
    if JOINTS not in [array for _, array in embedder.inputs]:
        return None, f"the model reads {list(embedder.inputs)}, not {JOINTS}"
    return robustness(
        embedder, train.videos([]), val.videos([]), _inputs(ctx, embedder, train), _inputs(ctx, embedder, val),
        get_layout(ctx.dataset.layout), params.robustness, params.protocol, seed=params.seed,
    ), None


def _report(ctx, method, trained_on, eval_split, train: Split, val: Split, results, params) -> dict[str, Any]:
    import sklearn

    skipped: dict[str, str] = {}
    for res in results.values():
        skipped.update(res.skipped)
    seconds: dict[str, float] = {}
    for feat, res in results.items():
        seconds.update({f"{feat}.{k}": v for k, v in res.seconds.items()})
    dino = _open(ctx.artifact("dino"))
    return {
        "dataset": ctx.name,
        "method": method,
        "dino": None if dino is None else {k: dino.provenance.get(k) for k in ("model", "resolved_revision", "pooling", "random_weights")},
        "trained_on": trained_on,
        "train_split": "train",
        "eval_split": eval_split,
        "n_train_videos": len(train.ids),
        "n_eval_videos": len(val.ids),
        "activities": sorted(set(val.activities)),
        "multi_activity": len(set(val.activities)) > 1,
        "frame_labels": val.labels is not None,
        "sklearn_version": sklearn.__version__,
        "params": to_dict(params),
        "features": {feat: res.metrics for feat, res in results.items()},
        "skipped": skipped,
        "seconds": seconds,
    }


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return None if math.isnan(obj) else float(obj)
    return obj


def _write_json(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_jsonable(report), indent=2) + "\n")
    tmp.replace(path)
