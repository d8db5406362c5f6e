"""`extract_dino` stage: frames.zarr -> data/<dataset>/dino.zarr `{seq}/feature (time, feature) float16`.

Frozen DINOv2 (transformers) over every decoded frame, pooled per frame (`cls`, patch `mean`, or
`cls+mean`). Batches span sequences and are read from frames.zarr by background threads while the model
runs; normalisation happens on the device; bf16 autocast on CUDA, float32 on CPU, inference mode. A
sequence is written once all its frames are embedded, so a killed run resumes at the first unfinished
sequence. A sequence is recomputed when its frames or any of model, resolved revision, pooling,
image_size, dtype change; the store's attrs record the model, revision, pooling and feature layout, and
change only once the new model has loaded (a run that cannot load it leaves them as they were). Frames
that are missing, stale, or decoded from an older version of the video than the index describes fail
their sequence by name (and mark its features stale) instead of being embedded.

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
from pipeline.runner import (
    StageError,
    StageSummary,
    Task,
    begin,
    fail_stage,
    map_tasks,
    open_for_stage,
    plan,
)
from pipeline.sequences import read_index, visual_source
from pipeline.store import ArtifactStore, absolute_url, fingerprint

log = logging.getLogger(__name__)
STAGE = "extract_dino"


@dataclass(frozen=True)
class ExtractDinoParams:
    """model: hub id or local checkpoint folder; revision: hub branch/tag/commit; pooling: cls | mean |
    cls+mean; image_size: model input (px); dtype: auto (bf16 on CUDA, fp32 on CPU) | float32 | bfloat16;
    batch_size: frames per forward; num_workers: threads reading frames (and writing features);
    group_frames: frames per dask task.
    batch_size, num_workers and group_frames change speed, not features, and are left out of the fingerprints
    (dtype changes the features and is in them)."""

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
    """One sequence to embed: its frame count, fingerprint, the attrs to store with it and the index's
    fingerprint of its video (`source`)."""

    seq_id: str
    n_frames: int
    fingerprint: str
    attrs: dict[str, Any]
    source: str | None = None


def run(ctx: StageContext, device: str = "auto") -> StageSummary:
    params = ctx.params(STAGE, ExtractDinoParams)
    start = time.perf_counter()
    # first: an unavailable model fails the run before `plan` marks anything stale
    source = resolve(params.model, params.revision)
    index = read_index(ctx.index_path)
    visual = [r for r in index.rows() if r["video"] or r["frames_dir"]]
    if not visual:
        raise StageError(f"{ctx.name}: no sequence has a video or a frame folder, so there is nothing to embed")
    # dask workers may start in another directory
    frames_url = absolute_url(ctx.artifact("frames"))
    jobs, missing = make_jobs(ArtifactStore(frames_url), visual, params, source)
    provenance = _provenance(source, params)
    todo_plan = plan(open_for_stage(absolute_url(ctx.artifact("dino"))), _tasks(jobs, missing))
    summary = StageSummary(stage=STAGE, removed=todo_plan.removed, skipped=todo_plan.skipped, revived=todo_plan.revive)
    todo = [t.payload["job"] for t in todo_plan.todo]
    log.info("%s: %d sequence(s) up to date, %d to embed (%d frames)", STAGE, len(summary.skipped) + len(summary.revived),
             len(todo), sum(j.n_frames for j in todo))
    settings = {**to_dict(params), "source": dataclasses.asdict(source), "device": device}
    ready = functools.partial(begin, todo_plan, stage=STAGE, params=to_dict(params), **provenance)
    dino_url = todo_plan.store.url
    if todo and ctx.scheduler:
        ready()  # the workers load the model: a cluster run records its settings as it starts
        done, failures = _run_dask(ctx.scheduler, frames_url, dino_url, todo, settings)
    elif todo:  # provenance and revivals only once the model has loaded (embed_jobs calls `ready`)
        done, failures = embed_jobs(frames_url, dino_url, todo, settings, show_progress=True, on_ready=ready)
    else:
        ready()
        done, failures = [], {}
    failures.update({t.seq_id: t.blocked for t in todo_plan.blocked})
    summary.computed = done
    written = set(done)
    summary.frames = sum(j.n_frames for j in todo if j.seq_id in written)
    summary.seconds = time.perf_counter() - start
    fail_stage(todo_plan.store, failures, stage=STAGE, dataset=ctx.name,
               attempted=len(todo) + len(todo_plan.blocked), written=len(done))
    log.info(summary.line())
    return summary


def make_jobs(
    frames: ArtifactStore, rows, params: ExtractDinoParams, source: ModelSource
) -> tuple[list[Job], dict[str, str]]:
    """Jobs for the index rows whose frames are decoded from the video the index describes now, and
    {seq_id: reason} for those whose frames are missing, stale, or decoded from an older video."""
    jobs, missing = [], {}
    for row in rows:
        seq_id = row["id"]
        unusable = frames.unusable(seq_id, source=visual_source(row))
        if unusable:
            missing[seq_id] = f"no frames in {frames.url} ({unusable}); run `pipeline decode`, or see why it failed there"
            continue
        attrs = frames.attrs(seq_id)
        if attrs.get("n_frames") != row["n_frames"]:
            missing[seq_id] = f"{frames.url} holds {attrs.get('n_frames')} frames, the index {row['n_frames']}: re-run decode"
            continue
        # the resolved commit, not `revision`: a branch such as "main" can move to other weights under the same name
        fp = fingerprint(
            attrs["fingerprint"], source.model, source.resolved, params.pooling, params.image_size, params.dtype
        )
        job_attrs = {"fps": attrs["fps"], "n_frames": row["n_frames"], "frames_fingerprint": attrs["fingerprint"]}
        jobs.append(Job(seq_id, row["n_frames"], fp, job_attrs, visual_source(row)))
    return jobs, missing


def _tasks(jobs: list[Job], missing: dict[str, str]) -> list[Task]:
    """The runner's view of the jobs (for `plan`), and of the sequences that cannot be embedded."""
    tasks = [Task(j.seq_id, j.fingerprint, j.n_frames, {"job": j}, source=j.source) for j in jobs]
    return tasks + [Task(seq_id, "", 0, blocked=reason) for seq_id, reason in missing.items()]


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
        # never splits a sequence: one task writes it whole
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
