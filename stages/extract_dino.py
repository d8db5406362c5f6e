"""`extract_dino` stage: frames.zarr -> data/<dataset>/dino.zarr `{seq}/feature (time, feature) float16`.

Frozen DINOv2 (transformers) over every decoded frame, pooled per frame (`cls`, patch `mean`, or
`cls+mean`). Batches span sequences and are read from frames.zarr by background threads while the model
runs; normalisation happens on the device; bf16 autocast on CUDA, float32 on CPU, inference mode. A
sequence is written once all its frames are embedded, so a killed run resumes at the first unfinished
sequence. A sequence is recomputed when its frames or any of model, resolved revision, pooling,
image_size, dtype change; the store's attrs record the model, revision, pooling and feature layout.

With `--scheduler ADDRESS` the sequences are split into groups of about `group_frames` frames, one dask
task per group; each worker process loads the model once and runs one group at a time on its device.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

from pipeline.context import StageContext
from pipeline.dino.embedding import embed_jobs
from pipeline.dino.model import ModelSource, Pooling, feature_layout, resolve
from pipeline.params import to_dict
from pipeline.runner import StageError, StageSummary, Task, map_tasks, open_for_stage
from pipeline.sequences import read_index
from pipeline.store import ArtifactStore, absolute_url, fingerprint

log = logging.getLogger(__name__)
STAGE = "extract_dino"


@dataclass(frozen=True)
class ExtractDinoParams:
    """model: hub id or local checkpoint folder; revision: hub branch/tag/commit; pooling: cls | mean |
    cls+mean; image_size: model input (px); dtype: auto (bf16 on CUDA, fp32 on CPU) | float32 | bfloat16;
    batch_size: frames per forward; num_workers: threads reading frames (and writing features);
    group_frames: frames per dask task.
    These last four change speed, not features, and are left out of the fingerprints."""

    model: str
    revision: str
    pooling: Pooling
    image_size: int
    dtype: Literal["auto", "float32", "bfloat16"]
    batch_size: int
    num_workers: int
    group_frames: int


@dataclass(frozen=True)
class Job:
    """One sequence to embed: its frame count, fingerprint and the attrs to store with it."""

    seq_id: str
    n_frames: int
    fingerprint: str
    attrs: dict[str, Any]


def run(ctx: StageContext, device: str = "auto") -> StageSummary:
    params = ctx.params(STAGE, ExtractDinoParams)
    start = time.perf_counter()
    source = resolve(params.model, params.revision)
    index = read_index(ctx.index_path)
    visual = [r for r in index.rows() if r["video"] or r["frames_dir"]]
    if not visual:
        raise StageError(f"{ctx.name}: no sequence has a video or a frame folder, so there is nothing to embed")
    frames_url = absolute_url(ctx.artifact("frames"))
    jobs, missing = make_jobs(ArtifactStore(frames_url), visual, params, source)
    store = open_for_stage(absolute_url(ctx.artifact("dino")), stage=STAGE, params=to_dict(params), **_provenance(source, params))
    summary = StageSummary(stage=STAGE, removed=store.prune(r["id"] for r in visual))
    todo = [j for j in jobs if not store.is_current(j.seq_id, j.fingerprint)]
    waiting = {j.seq_id for j in todo}
    summary.skipped = [j.seq_id for j in jobs if j.seq_id not in waiting]
    log.info("%s: %d sequence(s) up to date, %d to embed (%d frames)", STAGE, len(summary.skipped), len(todo),
             sum(j.n_frames for j in todo))
    settings = {**to_dict(params), "source": dataclasses.asdict(source), "device": device}
    if todo and ctx.scheduler:
        done, failures = _run_dask(ctx.scheduler, frames_url, store.url, todo, settings)
    elif todo:
        done, failures = embed_jobs(frames_url, store.url, todo, settings, show_progress=True)
    else:
        done, failures = [], {}
    failures.update(missing)
    summary.computed = done
    written = set(done)
    summary.frames = sum(j.n_frames for j in todo if j.seq_id in written)
    summary.seconds = time.perf_counter() - start
    if failures:
        lines = "\n".join(f"  {seq}: {msg}" for seq, msg in sorted(failures.items()))
        raise StageError(
            f"{STAGE}: {len(failures)} sequence(s) failed ({len(done)} others were written and are kept):\n{lines}"
        )
    log.info(summary.line())
    return summary


def make_jobs(
    frames: ArtifactStore, rows, params: ExtractDinoParams, source: ModelSource
) -> tuple[list[Job], dict[str, str]]:
    """Jobs for the index rows whose frames are decoded, and {seq_id: reason} for those that are not."""
    jobs, missing = [], {}
    decoded = set(frames.sequences())
    for row in rows:
        seq_id = row["id"]
        if seq_id not in decoded:
            missing[seq_id] = f"no frames in {frames.url} (run `pipeline decode`, or see why it failed there)"
            continue
        attrs = frames.attrs(seq_id)
        if attrs.get("n_frames") != row["n_frames"]:
            missing[seq_id] = f"{frames.url} holds {attrs.get('n_frames')} frames, the index {row['n_frames']}: re-run decode"
            continue
        fp = fingerprint(
            attrs["fingerprint"], source.model, source.resolved, params.pooling, params.image_size, params.dtype
        )
        job_attrs = {"fps": attrs["fps"], "n_frames": row["n_frames"], "frames_fingerprint": attrs["fingerprint"]}
        jobs.append(Job(seq_id, row["n_frames"], fp, job_attrs))
    return jobs, missing


def _provenance(source: ModelSource, params: ExtractDinoParams) -> dict[str, Any]:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(source.model, revision=source.revision, local_files_only=source.local_files_only)
    layout = feature_layout(config.hidden_size, params.pooling)
    return {
        "model": source.model,
        "revision": source.revision,
        "resolved_revision": source.resolved,
        "pooling": params.pooling,
        "feature_dim": layout[-1][2],
        "feature_layout": [list(part) for part in layout],
        "image_size": params.image_size,
        "random_weights": bool(getattr(config, "random_weights", False)),
    }


def group_jobs(jobs: list[Job], group_frames: int) -> list[list[Job]]:
    """Consecutive whole sequences, about `group_frames` frames per group (at least one sequence each)."""
    groups, current, size = [], [], 0
    for job in jobs:
        if current and size + job.n_frames > group_frames:
            groups.append(current)
            current, size = [], 0
        current.append(job)
        size += job.n_frames
    return groups + ([current] if current else [])


def _run_dask(
    address: str, frames_url: str, dino_url: str, todo: list[Job], settings: dict
) -> tuple[list[str], dict[str, str]]:
    groups = group_jobs(todo, settings["group_frames"])
    tasks = [
        Task(f"group{i:05d}", fingerprint([j.fingerprint for j in g]), sum(j.n_frames for j in g), {"jobs": g})
        for i, g in enumerate(groups)
    ]
    fn = functools.partial(embed_group, frames_url, dino_url, settings)
    done, failures = [], {}
    for task, result in map_tasks(fn, tasks, scheduler=address, workers=1, executor="process", desc=STAGE):
        ids = [j.seq_id for j in task.payload["jobs"]]
        if isinstance(result, GroupError):
            failures.update(result.failures)
            done += [s for s in ids if s not in result.failures]
        elif isinstance(result, BaseException):
            failures.update({s: f"{type(result).__name__}: {result}" for s in ids})
        else:
            done += ids
    return done, failures


class GroupError(RuntimeError):
    """Some sequences of a dask group failed; `failures` maps each to its error."""

    def __init__(self, failures: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in sorted(failures.items())))
        self.failures = failures


_WORKER_LOCK = threading.Lock()


def embed_group(frames_url: str, dino_url: str, settings: dict, task: Task) -> int:
    """Dask task: embed one group of sequences on this worker's device; returns the frames written.

    The model is loaded once per worker process (cached), and a lock keeps one group at a time on the
    device even when the worker runs several threads."""
    with _WORKER_LOCK:
        done, failures = embed_jobs(frames_url, dino_url, task.payload["jobs"], settings, cache_model=True)
    if failures:
        raise GroupError(failures)
    written = set(done)
    return sum(j.n_frames for j in task.payload["jobs"] if j.seq_id in written)
