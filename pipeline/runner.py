"""Incremental, parallel execution of a heavy stage's per-sequence work.

`run_incremental` is the loop every heavy stage shares: record provenance, delete sequences that left
the index, skip sequences whose stored fingerprint matches, run the rest (inline, in a local process or
thread pool, or on a dask.distributed cluster) with a progress bar, and fail at the end, naming every
sequence that failed, after the others have been written. A killed run resumes where it stopped
because finished sequences are marked complete and match their fingerprint.

A work function is a top-level (picklable) callable `work(store_url, task) -> n_frames written`; it
computes one sequence and writes it with `ArtifactStore(store_url, mode="a").write_sequence(...)`.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import logging
import multiprocessing
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pipeline.store import ArtifactStore

log = logging.getLogger(__name__)
Executor = Literal["process", "thread"]


class StageError(RuntimeError):
    """One or more sequences of a stage failed; the message names each sequence and its error."""


@dataclass(frozen=True)
class Task:
    """One sequence's work: its id, the fingerprint of everything that determines its output, its frame
    count (for progress) and whatever the work function needs (index row, resolved params...)."""

    seq_id: str
    fingerprint: str
    n_frames: int
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class StageSummary:
    stage: str
    computed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    frames: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        rate = self.frames / self.seconds if self.seconds > 0 else 0.0
        return (
            f"{self.stage}: {len(self.computed)} computed, {len(self.skipped)} up to date, "
            f"{len(self.removed)} removed; {self.frames} frames in {self.seconds:.1f} s ({rate:.0f} frames/s)"
        )


def open_for_stage(store_url: str, *, stage: str, params: Mapping[str, Any], **extra: Any) -> ArtifactStore:
    """Open (creating if needed) a stage's store and record provenance, only when it changed."""
    store = ArtifactStore(store_url, mode="a")
    current = store.provenance
    wanted = {"stage": stage, "params": params, **extra}
    from pipeline.store import _jsonable, code_version

    wanted = _jsonable(wanted)
    if any(current.get(k) != v for k, v in wanted.items()) or current.get("code_version") != code_version():
        store.set_provenance(stage=stage, params=params, **extra)
    return store


def run_incremental(
    store_url: str,
    tasks: Sequence[Task],
    work: Callable[[str, Task], int],
    *,
    stage: str,
    params: Mapping[str, Any],
    provenance: Mapping[str, Any] | None = None,
    scheduler: str | None = None,
    workers: int = 1,
    executor: Executor = "process",
) -> StageSummary:
    """Bring the store at `store_url` up to date with `tasks`; see the module docstring."""
    start = time.perf_counter()
    store = open_for_stage(store_url, stage=stage, params=params, **dict(provenance or {}))
    summary = StageSummary(stage=stage)
    summary.removed = store.prune(t.seq_id for t in tasks)
    todo = []
    for task in tasks:
        if store.is_current(task.seq_id, task.fingerprint):
            summary.skipped.append(task.seq_id)
        else:
            todo.append(task)
    if summary.skipped:
        log.info("%s: %d sequence(s) up to date, %d to compute", stage, len(summary.skipped), len(todo))
    fn = functools.partial(work, store_url)
    failures: dict[str, str] = {}
    for task, result in map_tasks(fn, todo, scheduler=scheduler, workers=workers, executor=executor, desc=stage):
        if isinstance(result, BaseException):
            failures[task.seq_id] = f"{type(result).__name__}: {result}"
            log.error("%s: sequence %s failed: %s", stage, task.seq_id, result)
        else:
            summary.computed.append(task.seq_id)
            summary.frames += int(result or 0)
    summary.seconds = time.perf_counter() - start
    if failures:
        lines = "\n".join(f"  {seq}: {msg}" for seq, msg in sorted(failures.items()))
        raise StageError(
            f"{stage}: {len(failures)} of {len(todo)} sequence(s) failed "
            f"({len(summary.computed)} others were written and are kept):\n{lines}"
        )
    log.info(summary.line())
    return summary


def map_tasks(
    fn: Callable[[Task], Any],
    tasks: Sequence[Task],
    *,
    scheduler: str | None,
    workers: int,
    executor: Executor,
    desc: str,
) -> Iterable[tuple[Task, Any]]:
    """Yield (task, result or exception) as tasks finish, with a progress bar of sequences and frames/s."""
    if not tasks:
        return
    bar = progress(total=len(tasks), desc=desc, unit="seq")
    frames, t0 = 0, time.perf_counter()
    try:
        for task, result in _dispatch(fn, tasks, scheduler=scheduler, workers=workers, executor=executor):
            if not isinstance(result, BaseException):
                frames += int(result or 0)
            bar.update(1)
            bar.set_postfix_str(f"{frames / max(time.perf_counter() - t0, 1e-9):.0f} frames/s", refresh=False)
            yield task, result
    finally:
        bar.close()


def _dispatch(fn, tasks, *, scheduler, workers, executor):
    if scheduler:
        yield from _dispatch_dask(fn, tasks, scheduler)
        return
    if workers <= 1:
        for task in tasks:
            yield task, _call(fn, task)
        return
    if executor == "thread":
        pool = cf.ThreadPoolExecutor(max_workers=workers)
    else:
        pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    with pool:
        futures = {pool.submit(_call, fn, task): task for task in tasks}
        try:
            for fut in cf.as_completed(futures):
                yield futures[fut], fut.result()
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise


def _dispatch_dask(fn, tasks, address: str):
    from distributed import Client, as_completed

    with Client(address) as client:
        futures = {client.submit(_call, fn, task, pure=False, key=f"{task.seq_id}-{task.fingerprint[:8]}"): task for task in tasks}
        for fut in as_completed(futures):
            yield futures[fut], fut.result()


def _call(fn, task):
    """Run one task; return its exception instead of raising so one bad sequence does not stop the rest."""
    try:
        return fn(task)
    except Exception as err:  # reported with the sequence id by run_incremental, then raised as StageError
        return err


def progress(**kwargs):
    from tqdm.auto import tqdm

    kwargs.setdefault("mininterval", 0.5)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(**kwargs)
