"""`evaluate` stage: the literature's protocol on a method's embeddings and on the baselines.

Reads `data/<D>/index.parquet` (splits, activities, per-frame labels) and
- the learned embeddings `data/<D>/embeddings_<method>.zarr` `{seq}/embedding (time, feature)`, or, with
  `trained_on=D2`, embeds D's sequences with the model trained on D2 (`models/<D2>/<method>`);
- the raw inputs as "no learning" baselines: normalised 2D keypoints (`keypoints.zarr {seq}/joints_2d`) and
  DINOv2 features (`dino.zarr {seq}/feature`), each when its store exists, and always normalised time t/T;
- the trained model (`models/<D>/<method>`, or D2's): it embeds every evaluated sequence played backwards (the
  content tau, `model.metrics.alignment.content_tau`) and the perturbed ones of the robustness study.
Writes, for run name `<method>` (or `<method>_from_<D2>`):
- `metrics/<D>/<run>.json`: the headline numbers of the learned embeddings, one flat level (`HEADLINE`), the
  file `dvc metrics show / diff` and `dvc exp show` read;
- `reports/runs/<D>/<run>.json`: the full report: every metric per activity and overall for every feature set
  (learned and baselines), the robustness study when a trained model reads keypoints, the params, the protocol,
  the model's setting and the versions used; `pipeline report` tables these;
- `timings/<D>/<run>.json`: seconds of training (from the model's log) and of each metric: wall-clock figures
  of this machine, kept out of the two files above so that those are the same bytes on every run;
- the plots under `plots/<D>/<run>/` (see `stages.shared.plots`).
Training split: 'train'; evaluated split: 'val' when the index has one, else 'test'.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
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
from pipeline.context import REPORTS, StageContext
from pipeline.params import to_dict
from pipeline.sequences import SequenceIndex, read_index
from pipeline.skeletons.layouts import get_layout
from stages.shared import loss_curves
from stages.shared.heatmap_store import HEATMAP

log = logging.getLogger(__name__)

# metrics/<D>/<run>.json: (key, metric of the full report, field of its entry); percentages stay fractions
HEADLINE = (
    ("tau", "kendalls_tau", "overall"),
    ("tau_content", "kendalls_tau_content", "overall"),  # the part of tau position cannot give (t/T: 0)
    ("ap10", "retrieval_ap_at_10", "overall"),
    ("cls100", "phase_classification_svm_100pct", "overall"),
    ("progress", "phase_progression", "overall"),  # R^2 floored at 0 (below: worse than a constant, meaningless)
    ("act_ret10", "activity_retrieval_ap_at_10", "overall"),
    ("action", "action_recognition", "overall"),
    ("mof", "segmentation_predicted", "mof"),  # the method's own segments (VASOT), not k-means
)
TIMINGS = "timings"


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
    """The sequences of one split, in index order, with their per-frame labels (None: the dataset has none)
    and the labels' names ({label: "<activity>/<phase>"}, for plots)."""

    ids: tuple[str, ...]
    activities: tuple[str, ...]
    n_frames: tuple[int, ...]
    labels: list[np.ndarray] | None
    label_names: dict[int, str] = field(default_factory=dict)

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

    models_dir = ctx.workdir / "models" / (trained_on or ctx.name) / method
    model = TrainedModel(models_dir, device)
    features = _learned(ctx, method, trained_on, model, train, val)
    features.update(_baselines(ctx, train, val))
    results: dict[str, ProtocolResult] = {}
    for feat, (tr, va) in features.items():
        log.info("%s/%s: evaluating %s features (%d train, %d %s videos)",
                 ctx.name, name, feat, len(tr), len(va), eval_split)
        backward, reason = _backward(ctx, feat, va, model, val)
        results[feat] = evaluate_features(train.videos(tr), val.videos(va), params.protocol, seed=params.seed,
                                          backward=backward)
        if reason is not None:
            results[feat].skipped["kendalls_tau_content"] = reason

    report = _report(ctx, method, trained_on, eval_split, train, val, results, params, models_dir)
    _add_model_studies(ctx, method, trained_on, model, train, val, params, report)
    timings = {
        "train_s": train_seconds(models_dir),
        "evaluate_s": time.perf_counter() - start,
        "evaluate": {f"{feat}.{k}": v for feat, res in results.items() for k, v in res.seconds.items()},
    }
    _write_json(ctx.metrics_path(name), headline(report), digits=4)
    _write_json(report_path(ctx.workdir, ctx.name, name), report, digits=6)
    _write_json(ctx.workdir / TIMINGS / ctx.name / f"{name}.json", timings, digits=2)
    if params.plots.enabled:
        from stages.shared import plots

        plots.write_all(ctx.plots_dir(name), val, {f: va for f, (_, va) in features.items()}, results,
                        models_dir, params.plots, seed=params.seed, title=f"{name} on {ctx.name}",
                        curves=loss_curves.folder(ctx.workdir, trained_on or ctx.name, method))
    log.info("%s/%s: metrics -> %s, full report -> %s (%.1f s)", ctx.name, name, ctx.metrics_path(name),
             report_path(ctx.workdir, ctx.name, name), time.perf_counter() - start)
    return {**report, "seconds": timings}


def _add_model_studies(ctx, method, trained_on, model: TrainedModel, train: Split, val: Split, params,
                       report) -> None:
    """The method's own segmentation and the robustness study, into `report` (or the reason they were skipped)."""
    if trained_on is None and method != "raw":
        predicted = _predicted_segmentation(ctx, method, val, params.protocol.segment_overlaps)
        if predicted is not None:
            report["features"]["learned"]["segmentation_predicted"] = predicted
    if method == "raw":
        robust, reason = None, "no trained model for method 'raw'"
    elif trained_on is not None:
        robust, reason = None, "not run on generalisation runs (--trained-on)"
    else:
        robust, reason = _robustness(ctx, model, train, val, params)
    report["robustness"] = robust
    if robust is None:
        report["skipped"]["robustness"] = reason


def report_path(workdir: Path, dataset: str, name: str) -> Path:
    """`<workdir>/reports/runs/<dataset>/<run>.json`, the full report `pipeline report` reads."""
    return Path(workdir) / REPORTS / "runs" / dataset / f"{name}.json"


def headline(report: dict[str, Any]) -> dict[str, float]:
    """The `HEADLINE` numbers of the learned features (method 'raw': of its first baseline); metrics not
    computed for this run are left out (DVC shows '-'); a negative progression R^2 (an untrained or collapsed
    embedding: -1e6 is possible) is 0 here, its value stays in the full report. Written rounded to 4 decimals."""
    features = report["features"]
    metrics = features.get("learned") or next(iter(features.values()))
    out = {}
    for key, metric, part in HEADLINE:
        entry = metrics.get(metric)
        value = entry.get(part) if isinstance(entry, dict) else None
        if isinstance(value, (int, float)) and math.isfinite(value):
            out[key] = max(float(value), 0.0) if metric == "phase_progression" else float(value)
    return out


def train_seconds(models_dir: Path) -> float | None:
    """Training seconds from the model's local log (summed over per-activity models); None without a log
    (a model pulled from a DVC remote comes without it)."""
    logs = [models_dir / "log.jsonl"] if (models_dir / "log.jsonl").is_file() else sorted(models_dir.glob("*/log.jsonl"))
    total = None
    for path in logs:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        if lines:
            total = (total or 0.0) + float(json.loads(lines[-1]).get("elapsed_s", 0.0))
    return total


def model_setting(models_dir: Path) -> bool | None:
    """train.multi_activity of the model(s) in `models_dir` as recorded in their config.json: True (one model
    for all activities), False (one per activity, in sub-folders), None (no trained model)."""
    single = models_dir / "config.json"
    configs = [single] if single.is_file() else sorted(models_dir.glob("*/config.json"))
    if not configs:
        return None
    return bool(json.loads(configs[0].read_text())["train"]["multi_activity"])


def _learned(ctx: StageContext, method: str, trained_on: str | None, model: TrainedModel, train: Split,
             val: Split):
    """{"learned": (train, val) embeddings}: from the method's store, or embedded by the model trained on
    another dataset; {} for method 'raw'."""
    if trained_on is not None:
        from stages.shared.inputs import check_model_heatmaps

        embedder = model()
        check_model_heatmaps(model.models_dir, ctx.artifact("heatmaps"))  # maps made like the training ones, or refuse
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
    return Split(tuple(part.table["id"]), tuple(part.table["activity"]), n_frames, labels, dict(index.label_names))


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


def _backward(ctx: StageContext, feat: str, forward: list[np.ndarray], model: TrainedModel,
              val: Split) -> tuple[list[np.ndarray] | None, str | None]:
    """Per val video, feature set `feat` of the video played backwards (for the content tau,
    `model.metrics.alignment.content_tau`), or (None, why not): the learned embeddings from the trained model
    on its inputs reversed in time; t/T is the same backwards (position alone); per-frame baselines are their
    rows reversed."""
    if feat == "time":
        return forward, None
    if feat != "learned":
        return [f[::-1] for f in forward], None
    if not model.models_dir.is_dir():
        return None, f"no trained model at {model.models_dir} to embed the videos played backwards"
    from model.metrics.robustness import embed_sequences
    from pipeline.runner import progress

    embedder = model()
    items = [{name: TimeReversed(array) for name, array in item.items()} for item in _inputs(ctx, embedder, val)]
    with progress(total=len(items), desc="evaluate: embed played backwards", unit="seq") as bar:
        backward = embed_sequences(embedder, items, val.ids, val.activities, progress=bar.update)
    if backward and backward[0].shape[1] != forward[0].shape[1]:
        raise EvaluateError(f"the stored embeddings of {val.ids[0]} have {forward[0].shape[1]} features, the model at "
                            f"{model.models_dir} makes {backward[0].shape[1]}: re-run its train stage")
    return backward, None


class TimeReversed:
    """One sequence's array (T, ...) played backwards, read when a batch reads it (`np.asarray`), padded in the
    wrapped array's `batch_dtype` (`model.batch.collate`) as the forward pass pads it."""

    def __init__(self, array: Any):
        self.array = array
        self.batch_dtype = getattr(array, "batch_dtype", np.dtype(np.float32))

    def __len__(self) -> int:
        return len(self.array)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(self.array, dtype=dtype)[::-1])


class TrainedModel:
    """The run's trained model(s), loaded on first use and then shared: the learned features of a
    `--trained-on` run, the videos played backwards and the robustness study embed with one loaded model."""

    def __init__(self, models_dir: Path, device: str):
        self.models_dir, self.device, self._embedder = models_dir, device, None

    def __call__(self):
        if self._embedder is None:
            self._embedder = _load_embedder(self.models_dir, self.device)
        return self._embedder


def _load_embedder(models_dir: Path, device: str):
    if not models_dir.is_dir():
        raise EvaluateError(f"no trained model at {models_dir} (run `pipeline train` for it first)")
    from stages.shared.models import load_embedder

    return load_embedder(models_dir, device)


def _inputs(ctx: StageContext, embedder, split: Split) -> list[dict[str, np.ndarray]]:
    """Per sequence, the arrays the embedder reads, keyed by array name. Heatmaps stay on disk until a batch
    reads them (`StoredMaps`, float32 maps on `np.asarray`): Penn Action's test split alone is ~9 GiB of
    float32 maps, more than this machine's memory once the training split is loaded beside it."""
    from stages.shared.heatmap_store import ByteLRU, open_maps
    from stages.shared.inputs import read_array

    stores = {artifact: _open(ctx.artifact(artifact)) for artifact, _ in embedder.inputs}
    for artifact, store in stores.items():
        if store is None:
            raise EvaluateError(f"the model needs {ctx.artifact(artifact)}, which does not exist")
    no_cache = ByteLRU(0)  # each sequence's maps are read once per embedding pass

    def load(artifact: str, array: str, seq_id: str):
        if array == HEATMAP:
            return open_maps(stores[artifact], seq_id, no_cache)
        return read_array(stores[artifact], seq_id, array)

    return [{array: load(artifact, array, seq_id) for artifact, array in embedder.inputs} for seq_id in split.ids]


def _embed(ctx: StageContext, embedder, split: Split) -> list[np.ndarray]:
    from model.metrics.robustness import embed_sequences

    return embed_sequences(embedder, _inputs(ctx, embedder, split), split.ids, split.activities)


def _robustness(ctx, model: TrainedModel, train: Split, val: Split, params: EvaluateParams):
    """(results, None) or (None, reason) when there is no model or it reads neither keypoints nor maps made
    from them. A model that reads heatmaps gets maps re-rendered from the perturbed joints (`_rerender`)."""
    from model.metrics.robustness import JOINTS, robustness
    from pipeline.runner import progress

    if not model.models_dir.is_dir():
        return None, f"no trained model at {model.models_dir}"
    if not params.robustness.settings:
        return None, "evaluate.robustness lists no drop probabilities and no noise levels"
    embedder = model()
    reads = [array for _, array in embedder.inputs]
    derive, val_inputs = None, _inputs(ctx, embedder, val)
    if JOINTS not in reads:
        if HEATMAP not in reads:
            return None, f"the model reads {list(embedder.inputs)}, neither {JOINTS} nor {HEATMAP}"
        derive = _rerender(ctx, val_inputs, val.ids)
    total = len(train.ids) + params.robustness.settings * len(val.ids)
    with progress(total=total, desc="evaluate: robustness", unit="seq") as bar:
        return robustness(
            embedder, train.videos([]), val.videos([]), _inputs(ctx, embedder, train), val_inputs,
            get_layout(ctx.dataset.layout), params.robustness, params.protocol, seed=params.seed, derive=derive,
            progress=bar.update,
        ), None


def _rerender(ctx: StageContext, inputs: list[dict[str, np.ndarray]], ids: list[str]):
    """Adds each sequence's joints_2d and crop box to `inputs` (in place) and returns the function that
    remakes its heatmaps from (perturbed) joints: the heatmaps stage's renderer, params and box, and its
    storage rounding, so clean joints give back the stored maps. The box stays the clean one (the crop is
    the camera's, not the estimator's)."""
    from model.metrics.robustness import JOINTS
    from stages.shared.heatmap_store import store_params

    keypoints, heatmaps = _open(ctx.artifact("keypoints")), _open(ctx.artifact("heatmaps"))
    if keypoints is None:
        raise EvaluateError(f"the robustness study of a heatmap model needs {ctx.artifact('keypoints')}")
    made = store_params(heatmaps)
    for arrays, seq_id in zip(inputs, ids):
        arrays[JOINTS] = keypoints.read(seq_id, JOINTS)
        arrays["box"] = heatmaps.read(seq_id, "box")
    limbs = get_layout(ctx.dataset.layout).limbs

    def derive(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {**arrays, HEATMAP: RenderedMaps(arrays[JOINTS], arrays["box"], limbs, made)}

    return derive


class RenderedMaps:
    """One sequence's heatmaps (T, C, S, S) rendered from `joints` when a batch reads them (`np.asarray`), as the
    heatmaps stage would store and `StoredMaps` would return them; `len` needs no rendering. Lazy for the
    reason `_inputs` is: a split's maps do not fit in memory at once."""

    def __init__(self, joints: np.ndarray, box: np.ndarray, limbs, params: dict[str, Any]):
        self.joints, self.box, self.limbs, self.params = joints, box, limbs, params

    def __len__(self) -> int:
        return len(self.joints)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        from pipeline.heatmaps.raster import quantise, render

        p = self.params
        stored, scale = quantise(render(self.joints, self.limbs, self.box, p["size"], p["sigma"]), p["dtype"])
        maps = stored.astype(np.float32) * np.float32(scale)
        return maps if dtype is None else maps.astype(dtype, copy=False)


def _report(ctx, method, trained_on, eval_split, train: Split, val: Split, results, params,
            models_dir: Path) -> dict[str, Any]:
    import sklearn

    skipped: dict[str, str] = {}
    for res in results.values():
        skipped.update(res.skipped)
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
        "multi_activity": None if method == "raw" else model_setting(models_dir),
        "frame_labels": val.labels is not None,
        "sklearn_version": sklearn.__version__,
        "params": to_dict(params),
        "features": {feat: res.metrics for feat, res in results.items()},
        "skipped": skipped,
    }


def _jsonable(obj: Any, digits: int) -> Any:
    """JSON types, floats rounded to `digits` decimals (NaN -> null): the last bits of a float differ between
    BLAS builds, and the files must not change when the numbers they report do not."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v, digits) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return round(float(obj), digits) if math.isfinite(obj) else None
    return obj


def _write_json(path: Path, report: dict[str, Any], *, digits: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_jsonable(report, digits), indent=2) + "\n")
    tmp.replace(path)
