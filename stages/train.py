"""`train` stage: train an alignment method from the cached artifacts, then embed every sequence.

    pipeline train --dataset D --method M [--device auto|cpu|cuda]    (M: any method of `model.registry`)

Reads only the Zarr artifacts the method declares (`data/<D>/keypoints.zarr` joints_2d/joints_3d,
`data/<D>/dino.zarr` feature, `data/<D>/heatmaps.zarr` heatmap) and `data/<D>/index.parquet` (split,
activity). Writes:
- `models/<D>/<method>/checkpoint.pt` (+ `config.json`): weights, optimiser state and the config that made
  them (method, resolved params of `train` and of the method's section, input spec, skeleton layout, the
  heatmaps store's params when the method reads heatmaps, data fingerprint); with
  `train.multi_activity: false`, one such folder per activity under it;
- `models/<D>/<method>/log.jsonl`: one JSON record per logged step ({"step", "epoch", "loss", ...}, with
  wall-clock seconds; a local file DVC leaves out of the model, see .dvcignore);
- `models/<D>/<method>/MODEL_CARD.md`: data, inputs, params, code version, where its metrics are
  (`stages.shared.model_card`);
- `losses/<D>/<method>/<term>.tsv`: the same records' loss terms, one file per term, declared as DVC plots
  (`stages.shared.loss_curves`; per activity under `<activity>/` when there is one model per activity);
- `data/<D>/embeddings_<method>.zarr` `{seq}/embedding (time, feature)` for every sequence of every split,
  without augmentation, and for methods that segment (VASOT) `{seq}/segment (time,)` int64 per-frame
  segment labels beside it (one store per method keeps DVC's outputs fixed per stage).
A run interrupted after a checkpoint resumes from it when the config is unchanged (the result equals an
uninterrupted run); a finished checkpoint with the same config is reused; a change of params that shape only
the exported embedding (the method's `export_params`, e.g. `masa.clip_scale`) keeps the weights and re-exports;
any other change starts over.
"""

from __future__ import annotations

import json
import logging
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from model.embedder import Embedder
from model.method import AlignmentMethod
from model.registry import get_method
from model.trainer import TrainParams
from pipeline.checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint
from pipeline.context import StageContext
from pipeline.device import resolve_device
from pipeline.params import to_dict
from pipeline.store import ArtifactStore, code_version, fingerprint
from stages.shared import loss_curves
from stages.shared.inputs import Inputs, load_inputs
from stages.shared.model_card import write_model_card
from stages.shared.models import output_fingerprint

log = logging.getLogger(__name__)

def run(ctx: StageContext, method: str, device: str = "auto") -> None:
    cls = get_method(method)
    train_params = ctx.params("train", TrainParams)
    method_params = ctx.params(method, cls.params_cls)
    dev = resolve_device(device)
    with _reproducible(dev):
        _run(ctx, method, cls, train_params, method_params, dev)


@contextmanager
def _reproducible(device):
    """On the CPU, torch's deterministic kernels while training: the backward of tensor indexing (LA2DS's learned
    position table, `model.blocks.positional.LearnedPE`) accumulates in thread order, so with two threads the
    weights, and every hash of them in dvc.lock, differed in the last bits from run to run. On CUDA bit-exact
    runs are not promised (cuBLAS), so nothing changes there.

    Deterministic mode also fills every new uninitialised tensor (`torch.empty`) with NaN, a debugging aid for
    code that reads memory it never wrote; nothing here does, and the fills (36k an epoch of LA2DS on Penn
    Action) cost ~4% of its training time, so they are off while training."""
    import torch
    import torch.utils.deterministic

    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.utils.deterministic.fill_uninitialized_memory)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.utils.deterministic.fill_uninitialized_memory = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.utils.deterministic.fill_uninitialized_memory = before[2]


def _run(ctx: StageContext, method: str, cls, train_params: TrainParams, method_params, dev) -> None:
    inputs = load_inputs(ctx, cls.inputs(method_params))
    folder = ctx.models_dir(method)
    groups = _groups(inputs, train_params)
    root = loss_curves.folder(ctx.workdir, ctx.name, method)
    curves = {group: root if group is None else root / _safe(group) for group in groups}
    loss_curves.prune(root, curves.values())
    models: dict[str | None, AlignmentMethod] = {}
    for group, rows in groups.items():
        sub = folder if group is None else folder / _safe(group)
        log.info("%s/%s%s: training on %d sequences on %s", ctx.name, method, f" [{group}]" if group else "", len(rows), dev)
        models[group] = train_model(cls, method, method_params, train_params, inputs, rows, sub, dev, ctx.name, group,
                                    curves=loss_curves.LossCurves(curves[group]))
    embedder = Embedder(models, cls.inputs(method_params), dev)
    params = {"train": to_dict(train_params), method: to_dict(method_params)}
    write_embeddings(ctx, method, embedder, inputs, params, batch_size=train_params.embed_batch_size)
    write_model_card(folder, index_path=ctx.index_path)


# ----------------------------------------------------------------------------- training groups
def _groups(inputs: Inputs, params: TrainParams) -> dict[str | None, list[int]]:
    """Training rows per model: {None: all} for one multi-activity model, else {activity: rows}."""
    rows = [i for i, s in enumerate(inputs.splits) if s in params.train_splits]
    if not rows:
        raise ValueError(f"no sequences in the training split(s) {list(params.train_splits)}")
    if params.multi_activity:
        return {None: rows}
    groups: dict[str | None, list[int]] = {}
    for i in rows:
        groups.setdefault(inputs.activities[i], []).append(i)
    return groups


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", name)


# ----------------------------------------------------------------------------- training
def train_model(cls, method: str, method_params, train_params: TrainParams, inputs: Inputs, rows: list[int],
                folder: Path, device, dataset: str, activity: str | None, *,
                curves: loss_curves.LossCurves | None = None) -> AlignmentMethod:
    """Train (or resume, or reuse) one model on `rows` of `inputs`, checkpointing into `folder` (and its loss
    terms into `curves`)."""
    import torch

    from model.trainer import Trainer

    config = _jsonable({
        "method": method,
        "dataset": dataset,
        "activity": activity,
        "params": to_dict(method_params),
        "train": to_dict(train_params),
        "spec": inputs.spec.to_dict(),
        "layout": inputs.spec.layout,
        "heatmaps": inputs.heatmaps,  # the heatmaps store's params (embedding refuses other geometry)
        "data": fingerprint([(inputs.ids[i], inputs.source_fingerprints[i]) for i in rows]),
        "code_version": code_version(),
    })
    torch.manual_seed(train_params.seed)
    model = cls.build(method_params, inputs.spec)
    trainer = Trainer(model, train_params, [inputs.arrays[i] for i in rows], [inputs.activities[i] for i in rows],
                      device, ids=[inputs.ids[i] for i in rows])
    log_path = folder / "log.jsonl"
    if (folder / CHECKPOINT).is_file():
        saved = load_checkpoint(folder)
        if _training_config(saved["config"], cls) == _training_config(config, cls):
            if saved["config"] != config:  # only params that shape the export changed: same weights, new export
                changed = sorted(k for k in cls.export_params
                                 if saved["config"]["params"].get(k) != config["params"].get(k))
                log.info("%s: only %s changed since the checkpoint (export only): keeping its weights", folder,
                         ", ".join(changed))
                save_checkpoint(folder, config, saved["state"], complete=saved["complete"])
            trainer.load_state_dict(saved["state"])
            _truncate_log(log_path, trainer.step)
            log.info("%s: %s checkpoint at step %d", folder, "reusing the finished" if trainer.done else "resuming from the", trainer.step)
        else:
            log.warning("%s: config changed since the checkpoint; training from scratch", folder)
            log_path.unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    if curves is not None:
        curves.truncate(trainer.step)

    def on_log(record: dict[str, Any]) -> None:
        with log_path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        if curves is not None:
            curves.append(record)

    def on_checkpoint() -> None:
        save_checkpoint(folder, config, trainer.state_dict(), complete=trainer.done)

    if not trainer.done:
        trainer.run(on_log, on_checkpoint, desc=f"train {method}")
    return trainer.model


def _training_config(config: dict[str, Any], cls) -> dict[str, Any]:
    """`config` without the method's export-only params (`AlignmentMethod.export_params`): what the weights
    depend on."""
    return {**config, "params": {k: v for k, v in config["params"].items() if k not in cls.export_params}}


def _truncate_log(path: Path, step: int) -> None:
    """Drop log records past `step` (written after the checkpoint we resume from)."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in kept))


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj))


# ----------------------------------------------------------------------------- embedding
def write_embeddings(ctx: StageContext, method: str, embedder: Embedder, inputs: Inputs, params: dict, *,
                     batch_size: int) -> None:
    """Embed (and, for methods that segment, segment) every sequence of every split into
    data/<D>/embeddings_<method>.zarr, skipping sequences that are current."""
    from tqdm.auto import tqdm

    store = ArtifactStore(ctx.artifact(f"embeddings_{method}"), mode="a")
    store.set_provenance(stage="train", params=params, method=method)
    models_fp = fingerprint(output_fingerprint(embedder), embedder.segments)
    store.prune(inputs.ids)
    todo = []
    for i, seq in enumerate(inputs.ids):
        fp = fingerprint(models_fp, inputs.source_fingerprints[i])
        if not store.is_current(seq, fp):
            todo.append((i, fp))
    todo.sort(key=lambda item: len(next(iter(inputs.arrays[item[0]].values()))))
    with tqdm(total=len(todo), desc=f"embed {method}", unit="seq", dynamic_ncols=True) as bar:
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            acts = [inputs.activities[i] if embedder.per_activity else None for i, _ in chunk]
            items = [inputs.arrays[i] for i, _ in chunk]
            try:
                embs = embedder.embed_many(items, acts)
                segs = embedder.segment_many(items, acts) if embedder.segments else [None] * len(chunk)
            except (ValueError, IndexError) as err:
                names = [inputs.ids[i] for i, _ in chunk]
                raise RuntimeError(f"cannot embed sequences {names}: {err}") from err
            for (i, fp), emb, seg in zip(chunk, embs, segs):
                arrays = {"embedding": (np.asarray(emb, np.float32), ("time", "feature"))}
                if seg is not None:
                    arrays["segment"] = (seg, ("time",))
                store.write_sequence(
                    inputs.ids[i], arrays, fingerprint=fp,
                    attrs={"method": method, "n_frames": int(emb.shape[0]), "activity": inputs.activities[i]},
                )
            bar.update(len(chunk))
    log.info("%s: embeddings of %d sequences (%d recomputed) -> %s", ctx.name, len(inputs.ids), len(todo), store.url)
