"""Incremental, parallel execution of a heavy stage's per-sequence work.

`run_incremental` is the loop every heavy stage shares, in two steps that every stage (extract_dino
included, which runs its own model loop) goes through:

1. `plan`: delete sequences that left the index, skip those whose stored fingerprint (and source) match,
   and mark every other one stale at once (`ArtifactStore.invalidate`): its inputs or settings changed,
   so its old content must not look current, whatever happens next. A task whose input is unavailable
   (`Task.blocked`: the upstream sequence is missing, stale, or made from an older source) is marked
   stale too, and fails with that reason.
2. `begin`, once the stage is ready to write (inputs checked, model loaded): revive the stale sequences
   whose fingerprint matches again, and record the provenance (stage, params, code version) only if it
   changed. So at every moment each complete sequence was made by the settings the provenance records,
   and a run that fails before it writes anything changes nothing but the staleness marks.

Then the work runs (inline, in a local process or thread pool, or on a dask.distributed cluster) with a
progress bar, and the stage fails at the end, naming the dataset, the store and every sequence that
failed (one line per distinct error), after the others have been written; a failed sequence stays stale,
with its error recorded as the reason. A killed run resumes where it stopped because finished sequences
are marked complete and match their fingerprint. Local worker processes exit when the coordinator dies.

A work function is a top-level (picklable) callable `work(store_url, task) -> n_frames written`; it
computes one sequence and writes it with `ArtifactStore(store_url, mode="a").write_sequence(...)`,
passing `fingerprint=task.fingerprint, source=task.source`.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pipeline.store import ArtifactStore, StoreError, _jsonable, code_version

log = logging.getLogger(__name__)
Executor = Literal["process", "thread"]
PARENT_POLL_S = 1.0
RECOMPUTING = "its inputs or settings changed; it is being recomputed"


class StageError(RuntimeError):
    """One or more sequences of a stage failed; the message names each sequence and its error."""


@dataclass(frozen=True)
class Task:
    """One sequence's work: its id, the fingerprint of everything that determines its output, its frame
    count (for progress) and whatever the work function needs (index row, resolved params...).
    source: the index's fingerprint of the raw data the output derives from (recorded with it, so that
    later stages can check it); blocked: why the task's input is unavailable (it then fails unrun)."""

    seq_id: str
    fingerprint: str
    n_frames: int
    payload: Mapping[str, Any] = field(default_factory=dict)
    source: str | None = None
    blocked: str | None = None


@dataclass
class StageSummary:
    stage: str
    computed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    revived: list[str] = field(default_factory=list)
    frames: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        rate = self.frames / self.seconds if self.seconds > 0 else 0.0
        revived = f", {len(self.revived)} revived" if self.revived else ""
        return (
            f"{self.stage}: {len(self.computed)} computed, {len(self.skipped)} up to date{revived}, "
            f"{len(self.removed)} removed; {self.frames} frames in {self.seconds:.1f} s ({rate:.0f} frames/s)"
        )


@dataclass
class Plan:
    """What a run must do to a store: `todo` to compute, `blocked` to fail (input unavailable), `revive`
    to mark complete again; `skipped` and `removed` are ids."""

    store: ArtifactStore
    todo: list[Task]
    blocked: list[Task]
    revive: list[str]
    skipped: list[str]
    removed: list[str]


def plan(store: ArtifactStore, tasks: Sequence[Task]) -> Plan:
    """Prune, classify `tasks`, and mark stale at once every sequence that is not current (module doc)."""
    removed = store.prune(t.seq_id for t in tasks)
    todo, blocked, revive, skipped = [], [], [], []
    for task in tasks:
        if task.blocked is not None:
            blocked.append(task)
            store.invalidate(task.seq_id, f"its input is unavailable: {task.blocked}")
        elif store.is_current(task.seq_id, task.fingerprint, task.source):
            skipped.append(task.seq_id)
        elif store.revivable(task.seq_id, task.fingerprint, task.source):
            revive.append(task.seq_id)
        else:
            todo.append(task)
            store.invalidate(task.seq_id, RECOMPUTING)
    return Plan(store, todo, blocked, revive, skipped, removed)


def begin(plan: Plan, *, stage: str, params: Mapping[str, Any], **extra: Any) -> None:
    """The stage is about to write with these settings: revive what matches again, record provenance."""
    for seq_id in plan.revive:
        plan.store.revive(seq_id)
    if plan.revive:
        log.info("%s: %d stale sequence(s) match their inputs again and were revived without recomputing",
                 stage, len(plan.revive))
    record_provenance(plan.store, stage=stage, params=params, **extra)


def record_provenance(store: ArtifactStore, *, stage: str, params: Mapping[str, Any], **extra: Any) -> None:
    """Write the store's provenance only when it changed (an unchanged store keeps its bytes)."""
    current = store.provenance
    wanted = _jsonable({"stage": stage, "params": params, **extra})
    # code_version is added by set_provenance, not part of `wanted`, so it is compared on its own
    if any(current.get(k) != v for k, v in wanted.items()) or current.get("code_version") != code_version():
        store.set_provenance(stage=stage, params=params, **extra)


def open_for_stage(store_url: str) -> ArtifactStore:
    """Open a stage's store for writing, creating it if needed."""
    return ArtifactStore(store_url, mode="a")


def run_incremental(
    store_url: str,
    tasks: Sequence[Task],
    work: Callable[[str, Task], int],
    *,
    stage: str,
    params: Mapping[str, Any],
    dataset: str = "",
    provenance: Mapping[str, Any] | None = None,
    scheduler: str | None = None,
    workers: int = 1,
    executor: Executor = "process",
) -> StageSummary:
    """Bring the store at `store_url` up to date with `tasks`; see the module docstring."""
    start = time.perf_counter()
    todo_plan = plan(open_for_stage(store_url), tasks)
    begin(todo_plan, stage=stage, params=params, **dict(provenance or {}))
    summary = StageSummary(stage=stage, skipped=todo_plan.skipped, removed=todo_plan.removed,
                           revived=todo_plan.revive)
    todo = todo_plan.todo
    if summary.skipped or summary.revived:
        log.info("%s: %d sequence(s) up to date, %d to compute", stage, len(summary.skipped) + len(summary.revived),
                 len(todo))
    failures = {t.seq_id: t.blocked for t in todo_plan.blocked}
    fn = functools.partial(work, store_url)
    for task, result in map_tasks(fn, todo, scheduler=scheduler, workers=workers, executor=executor, desc=stage):
        if isinstance(result, BaseException):
            failures[task.seq_id] = f"{type(result).__name__}: {result}"
            _log_failure(stage, task.seq_id, failures)
        else:
            summary.computed.append(task.seq_id)
            summary.frames += int(result or 0)
    summary.seconds = time.perf_counter() - start
    fail_stage(todo_plan.store, failures, stage=stage, dataset=dataset, attempted=len(todo) + len(todo_plan.blocked),
               written=len(summary.computed))
    log.info(summary.line())
    return summary


def fail_stage(store: ArtifactStore, failures: Mapping[str, str], *, stage: str, dataset: str, attempted: int,
               written: int) -> None:
    """Mark each failed sequence stale with its error, and raise one StageError naming the dataset, the
    store and every failed sequence, one line per distinct error (a missing model file is said once)."""
    if not failures:
        return
    for seq_id, message in failures.items():
        try:
            store.invalidate(seq_id, f"{stage} failed: {message}")
        except StoreError as err:  # the failure itself is what gets reported
            log.debug("could not record the failure of %s: %s", seq_id, err)
    where = f"{dataset}, {store.url}" if dataset else store.url
    raise StageError(
        f"{stage} ({where}): {len(failures)} of {attempted} sequence(s) failed and are marked stale "
        f"({written} others were written and are kept):\n{failure_lines(failures)}"
    )


def failure_lines(failures: Mapping[str, str], *, shown: int = 10) -> str:
    """One line per distinct message: `  seq: message`, or `  a, b, c (+N more): message` when shared."""
    by_message: dict[str, list[str]] = {}
    for seq_id, message in sorted(failures.items()):
        by_message.setdefault(message, []).append(seq_id)
    lines = []
    for message, ids in by_message.items():
        more = f" (+{len(ids) - shown} more)" if len(ids) > shown else ""
        lines.append(f"  {', '.join(ids[:shown])}{more}: {message}")
    return "\n".join(lines)


def _log_failure(stage: str, seq_id: str, failures: Mapping[str, str]) -> None:
    """Log a failure as it happens, each distinct message once (the final error lists every sequence)."""
    message = failures[seq_id]
    if list(failures.values()).count(message) == 1:
        log.error("%s: sequence %s failed: %s", stage, seq_id, message)
    else:
        log.debug("%s: sequence %s failed the same way", stage, seq_id)


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
        # spawn, not fork: the coordinator already runs threads (zarr's async I/O loop, tqdm's monitor), and a child
        # forked from a threaded process can deadlock on a lock some thread held at the fork
        pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                      initializer=exit_with_parent, initargs=(os.getpid(),))
    with pool:
        futures = {pool.submit(_call, fn, task): task for task in tasks}
        try:
            for fut in cf.as_completed(futures):
                yield futures[fut], fut.result()
        # Ctrl-C, or the consumer closing this generator: cancel the queued tasks, or the pool's shutdown on leaving
        # `with` would wait for all of them to run
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise


def _dispatch_dask(fn, tasks, address: str):
    from distributed import Client, as_completed

    with Client(address) as client:
        # an explicit key names the sequence on the dask dashboard; its fingerprint part keeps a task with other inputs
        # from being taken for one the scheduler still holds under that key
        futures = {client.submit(_call, fn, task, pure=False, key=f"{task.seq_id}-{task.fingerprint[:8]}"): task for task in tasks}
        for fut in as_completed(futures):
            yield futures[fut], fut.result()


def exit_with_parent(parent_pid: int) -> None:
    """Worker initialiser: a daemon thread ends this process as soon as the coordinator `parent_pid` is
    gone (killed with -9, say), instead of leaving orphans that hold the store and the CPUs. Whatever the
    worker was writing stays incomplete, which the next run recomputes."""

    def watch() -> None:
        # a process whose parent dies is re-parented (to init or a subreaper), so polling getppid needs no signal or
        # pipe
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_S)
        # os._exit: sys.exit raised in a thread ends only that thread
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _call(fn, task):
    """Run one task; return its exception instead of raising so one bad sequence does not stop the rest."""
    try:
        return fn(task)
    # Exception, not BaseException: Ctrl-C (KeyboardInterrupt) still stops the whole run
    except Exception as err:  # reported with the sequence id by run_incremental, then raised as StageError
        return err


def progress(**kwargs):
    from tqdm.auto import tqdm

    kwargs.setdefault("mininterval", 0.5)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(**kwargs)
