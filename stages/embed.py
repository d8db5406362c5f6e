"""`embed` command: embed any dataset with a trained model, e.g. a folder of one's own videos with MASA trained on
Penn Action.

    pipeline embed --dataset D --model models/<D2>/<method> [--device auto|cpu|cuda]

Reads the arrays the model declares (`stages.shared.inputs.load_inputs`: keypoints.zarr, dino.zarr, ...) for
every sequence of D's index and writes

    data/<D>/embeddings_<method>_from_<D2>.zarr   {seq}/embedding (time, feature) float32
                                                 {seq}/segment (time,) int64, for models that segment

one group per sequence as the train stage's `embeddings_<method>.zarr`, embedded the same way (no
augmentation, batches of the model's `train.embed_batch_size` in order of length). A separate store, not the
train stage's: that one is a DVC output of `train`, and the name says which model made the vectors even when
D2 is D. Store attrs: stage `embed`, the model folder, each model's recorded config, the weights fingerprint
and the layout conversion applied.

Layouts: keypoints in another layout than the model's are converted in memory (`pipeline.skeletons.convert`:
blazepose33 / body25 / coco17 -> penn13). A model whose inputs the dataset cannot provide is refused before
anything is written, naming the model's input and what the dataset has: a missing store, a layout with no
conversion (or heatmaps of another layout, which cannot be converted: set the manifest's `layout` so that
`keypoints` converts), another per-frame shape (e.g. DINO features of another size), activities a
per-activity model was not trained on. Incremental: a sequence is re-embedded when the model's weights or its
input arrays change; sequences that left the index are removed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.context import StageContext
from pipeline.runner import StageSummary
from pipeline.store import ArtifactStore, StoreError, fingerprint
from stages.shared.inputs import MAKES, Inputs, load_inputs

log = logging.getLogger(__name__)
STAGE = "embed"
KEYPOINT_ARRAYS = ("joints_2d", "joints_3d")


class EmbedError(RuntimeError):
    """The model cannot embed this dataset; the message names the model's input and what the dataset has."""


@dataclass(frozen=True)
class ModelInfo:
    """A trained model folder: method and dataset it was trained on, layout and per-frame input shapes it
    reads, and the train params (for the embedding batch size)."""

    folder: Path
    method: str
    trained_on: str
    layout: str | None
    arrays: dict[str, tuple[int, ...]]
    activities: tuple[str, ...] | None  # per-activity models' activities; None for one multi-activity model
    configs: dict[str | None, dict[str, Any]]

    @property
    def batch_size(self) -> int:
        return int(next(iter(self.configs.values()))["train"]["embed_batch_size"])


def output_name(info: ModelInfo) -> str:
    """The artifact name (`data/<D>/<name>.zarr`) of D's embeddings by this model."""
    return f"embeddings_{info.method}_from_{info.trained_on}"


def run(ctx: StageContext, model_dir: Path, device: str = "auto") -> StageSummary:
    from stages.shared.models import load_embedder, output_fingerprint

    start = time.perf_counter()
    info = read_model(Path(model_dir))
    embedder = load_embedder(info.folder, device)
    # every check comes before the output store is opened: a model that cannot embed this dataset writes nothing
    check_stores(ctx, info, embedder.inputs)
    check_heatmaps(ctx, info, embedder.inputs)
    inputs = load_inputs(ctx, embedder.inputs)
    inputs, conversion = fit_inputs(ctx, info, inputs)
    check_activities(ctx, info, inputs)
    url = ctx.artifact(output_name(info))
    model_fp = output_fingerprint(embedder)
    summary = write(url, embedder, inputs, info, model_fp, conversion)
    summary.seconds = time.perf_counter() - start
    log.info("%s: %d sequence(s) embedded by %s (%d up to date) -> %s",
             ctx.name, len(summary.computed), info.folder, len(summary.skipped), url)
    return summary


# ----------------------------------------------------------------------------- what the model reads
def read_model(folder: Path) -> ModelInfo:
    """The model folder's recorded configs; EmbedError when they disagree or the folder holds no model."""
    from pipeline.checkpoint import CheckpointError
    from stages.shared.models import model_configs

    try:
        configs = model_configs(folder)
    except CheckpointError as err:
        raise EmbedError(str(err)) from err
    first = next(iter(configs.values()))
    for key in ("method", "dataset", "layout", "spec"):
        if any(c[key] != first[key] for c in configs.values()):
            raise EmbedError(f"{folder}: the per-activity models disagree on '{key}'")
    # model_configs keys one multi-activity model as None, per-activity models by their activity
    activities = None if None in configs else tuple(sorted(configs))
    arrays = {k: tuple(v) for k, v in first["spec"]["arrays"].items()}
    return ModelInfo(folder, first["method"], first["dataset"], first["layout"], arrays, activities, configs)


def check_stores(ctx: StageContext, info: ModelInfo, needed: tuple[tuple[str, str], ...]) -> None:
    """Every store the model reads exists for this dataset (else: which one, and the command that makes it)."""
    for artifact in dict.fromkeys(a for a, _ in needed):
        try:
            ArtifactStore(ctx.artifact(artifact))
        except StoreError as err:
            arrays = [name for a, name in needed if a == artifact]
            make = MAKES.get(artifact, "the stage that writes it").format(d=ctx.name)
            raise EmbedError(f"the model {info.folder} reads {artifact}/{', '.join(arrays)}; dataset {ctx.name} "
                             f"has no {ctx.artifact(artifact)} (run `{make}`)") from err


def check_heatmaps(ctx: StageContext, info: ModelInfo, needed: tuple[tuple[str, str], ...]) -> None:
    """Heatmaps cannot be converted between layouts, and their geometry (size, sigma, box) must be the one the
    model trained on: `check_model_heatmaps` refuses a store made with other heatmap params, naming both."""
    if not any(artifact == "heatmaps" for artifact, _ in needed):
        return
    from stages.shared.inputs import check_model_heatmaps

    check_model_heatmaps(info.folder, ctx.artifact("heatmaps"))
    store = ArtifactStore(ctx.artifact("heatmaps"))
    first = next(iter(store.sequences()), None)
    layout = (store.attrs(first).get("layout") if first else None) or ctx.dataset.layout
    if info.layout and layout != info.layout:
        raise EmbedError(f"the model {info.folder} reads {info.layout} heatmaps; {ctx.artifact('heatmaps')} holds "
                         f"{layout} heatmaps, which cannot be converted: set `layout: {info.layout}` for {ctx.name} in "
                         f"{ctx.dataset.manifest} and rerun keypoints and heatmaps (keypoints converts the joints)")


def fit_inputs(ctx: StageContext, info: ModelInfo, inputs: Inputs) -> tuple[Inputs, str | None]:
    """The dataset's arrays as the model reads them: keypoints converted to the model's layout; then every
    per-frame shape must equal the model's. Returns (inputs, "src->dst" or None)."""
    from pipeline.skeletons.convert import ConversionError, convert_joints, convert_points

    source = inputs.spec.layout
    conversion = None
    if info.layout and source and source != info.layout and any(n in info.arrays for n in KEYPOINT_ARRAYS):
        try:
            arrays = [_convert(a, source, info.layout, convert_joints, convert_points) for a in inputs.arrays]
        except ConversionError as err:
            raise EmbedError(f"the model {info.folder} reads {info.layout} keypoints; dataset {ctx.name} has {source} "
                             f"keypoints ({ctx.artifact('keypoints')}), and {err}") from err
        conversion = f"{source}->{info.layout}"
        shapes = dict(inputs.spec.arrays)
        for name in KEYPOINT_ARRAYS:
            if arrays and name in arrays[0]:
                # the converted layout's joint count, which the shape check below compares with the model's
                shapes[name] = tuple(int(s) for s in arrays[0][name].shape[1:])
        inputs = replace(inputs, arrays=arrays, spec=replace(inputs.spec, arrays=shapes, layout=info.layout))
    for name, shape in info.arrays.items():
        have = inputs.spec.arrays.get(name)
        if have != shape:
            raise EmbedError(f"the model {info.folder} reads '{name}' frames of shape {shape}; dataset {ctx.name} "
                             f"provides {have} (layout {inputs.spec.layout})")
    return inputs, conversion


def _convert(arrays: dict[str, np.ndarray], src: str, dst: str, joints2d, points3d) -> dict[str, np.ndarray]:
    out = dict(arrays)
    if "joints_2d" in out:
        out["joints_2d"] = joints2d(out["joints_2d"], src, dst)
    if "joints_3d" in out:
        out["joints_3d"] = points3d(out["joints_3d"], src, dst)
    return out


def check_activities(ctx: StageContext, info: ModelInfo, inputs: Inputs) -> None:
    if info.activities is None:
        return
    unknown = sorted(set(inputs.activities) - set(info.activities))
    if unknown:
        raise EmbedError(f"the model {info.folder} holds one model per activity ({', '.join(info.activities)}); "
                         f"dataset {ctx.name} has activities it was not trained on: {', '.join(unknown)}")


# ----------------------------------------------------------------------------- writing
def write(url: str, embedder, inputs: Inputs, info: ModelInfo, model_fp: str, conversion: str | None) -> StageSummary:
    """Embed the sequences that are not current in the store at `url`, in batches of the model's embedding
    batch size (sorted by length, as the train stage does), and write each completely."""
    from pipeline.runner import progress

    store = ArtifactStore(url, mode="a")
    store.set_provenance(stage=STAGE, params={str(k): c for k, c in info.configs.items()}, model=str(info.folder),
                         method=info.method, trained_on=info.trained_on, model_fingerprint=model_fp,
                         conversion=conversion)
    summary = StageSummary(stage=STAGE, removed=store.prune(inputs.ids))
    todo = []
    for i, seq in enumerate(inputs.ids):
        fp = fingerprint(model_fp, inputs.source_fingerprints[i], conversion)
        if store.is_current(seq, fp):
            summary.skipped.append(seq)
        else:
            todo.append((i, fp))
    # a batch is padded to its longest sequence: similar lengths waste little
    todo.sort(key=lambda item: len(next(iter(inputs.arrays[item[0]].values()))))
    with progress(total=len(todo), desc=f"embed {info.method}", unit="seq") as bar:
        for first in range(0, len(todo), info.batch_size):
            chunk = todo[first : first + info.batch_size]
            _write_chunk(store, embedder, inputs, chunk, info)
            summary.computed.extend(inputs.ids[i] for i, _ in chunk)
            summary.frames += sum(len(next(iter(inputs.arrays[i].values()))) for i, _ in chunk)
            bar.update(len(chunk))
    return summary


def _write_chunk(store: ArtifactStore, embedder, inputs: Inputs, chunk: list[tuple[int, str]], info: ModelInfo
                 ) -> None:
    acts = [inputs.activities[i] if embedder.per_activity else None for i, _ in chunk]
    items = [inputs.arrays[i] for i, _ in chunk]
    try:
        embs = embedder.embed_many(items, acts)
        segs = embedder.segment_many(items, acts) if embedder.segments else [None] * len(chunk)
    except (ValueError, IndexError, KeyError) as err:
        names = [inputs.ids[i] for i, _ in chunk]
        raise EmbedError(f"cannot embed sequences {names} with {info.folder}: {err}") from err
    for (i, fp), emb, seg in zip(chunk, embs, segs):
        arrays = {"embedding": (np.asarray(emb, np.float32), ("time", "feature"))}
        if seg is not None:
            arrays["segment"] = (seg, ("time",))
        store.write_sequence(inputs.ids[i], arrays, fingerprint=fp,
                             attrs={"method": info.method, "trained_on": info.trained_on,
                                    "n_frames": int(emb.shape[0]), "activity": inputs.activities[i]})
