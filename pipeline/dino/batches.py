"""Fixed-size batches of frames that span sequences, read from a frames store ahead of the model.

A background thread reads each sequence chunk by chunk (reads run in a small thread pool, a few chunks
ahead), packs the frames into (batch_size, H, W, 3) uint8 tensors (pinned for a fast host-to-device
copy when asked) and queues them, so reading and decompression overlap with the model. Every batch has
the same shape, the last one zero-padded: same shapes run the same kernels, so a frame's features do not
depend on which other frames share its batch (a resumed run gives the bytes of an uninterrupted one).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Segment:
    """Frames start..stop of sequence `seq_id` sit in rows offset..offset + (stop - start) of a batch."""

    seq_id: str
    start: int
    stop: int
    offset: int


@dataclass
class Batch:
    """frames: (batch_size, H, W, 3) uint8 tensor; the first `n_valid` rows are real frames."""

    frames: object
    n_valid: int = 0
    segments: list[Segment] = field(default_factory=list)


@dataclass(frozen=True)
class ReadFailure:
    """Sequence `seq_id` could not be read; its frames already batched must be discarded."""

    seq_id: str
    error: str


_DONE = object()


def prefetch_batches(
    store,
    sequences: Sequence[tuple[str, int]],
    *,
    batch_size: int,
    num_workers: int = 2,
    pin_memory: bool = False,
    array: str = "rgb",
    depth: int = 3,
) -> Iterator[Batch | ReadFailure]:
    """Yield batches over `sequences` [(seq_id, n_frames)] of `store` (an ArtifactStore), in order."""
    out: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    producer = threading.Thread(
        target=_produce,
        args=(store, list(sequences), batch_size, max(1, num_workers), pin_memory, array, out, stop),
        name="frame-batches",
        daemon=True,
    )
    producer.start()
    try:
        while (item := out.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while producer.is_alive():  # unblock a producer waiting on a full queue
            try:
                out.get(timeout=0.05)
            except queue.Empty:
                pass
        producer.join()


def _produce(store, sequences, batch_size, num_workers, pin_memory, array, out, stop):
    try:
        with ThreadPoolExecutor(num_workers, thread_name_prefix="frame-read") as pool:
            packer = _Packer(batch_size, pin_memory, out, stop)
            for seq_id, start, frames in _blocks(store, sequences, array, pool, lookahead=2 * num_workers):
                if stop.is_set():
                    return
                if isinstance(frames, ReadFailure):
                    packer.put(frames)
                else:
                    packer.add(seq_id, start, frames)
            packer.flush()
        _put(out, _DONE, stop)
    except BaseException as err:  # handed to the consumer, which raises it
        _put(out, err, stop)


def _blocks(store, sequences, array, pool, lookahead):
    """(seq_id, first frame, (n, H, W, 3) frames | ReadFailure) per chunk, in order, read ahead in `pool`."""
    pending: deque = deque()
    failed: set[str] = set()
    for job in _chunk_jobs(store, sequences, array):
        pending.append((job, pool.submit(_read, store, array, job)))
        while len(pending) > lookahead:
            yield from _resolve(pending.popleft(), failed)
    while pending:
        yield from _resolve(pending.popleft(), failed)


def _chunk_jobs(store, sequences, array):
    for seq_id, n_frames in sequences:
        try:
            step = store.array(seq_id, array).chunks[0]
        except Exception as err:  # a missing or unreadable group fails this sequence only
            yield (seq_id, 0, 0, f"{type(err).__name__}: {err}")
            continue
        for start in range(0, n_frames, step):
            yield (seq_id, start, min(start + step, n_frames), None)


def _read(store, array, job):
    seq_id, start, stop, error = job
    if error is not None:
        raise RuntimeError(error)
    return store.array(seq_id, array)[start:stop]


def _resolve(item, failed):
    (seq_id, start, _, _), future = item
    if seq_id in failed:
        return
    try:
        frames = future.result()
    except Exception as err:  # reported per sequence by the consumer
        failed.add(seq_id)
        yield seq_id, start, ReadFailure(seq_id, f"cannot read frames: {type(err).__name__}: {err}")
        return
    yield seq_id, start, frames


class _Packer:
    """Fills fixed-size batch tensors with frame blocks and queues each full one."""

    def __init__(self, batch_size, pin_memory, out, stop):
        self.batch_size, self.pin_memory, self.out, self.stop = batch_size, pin_memory, out, stop
        self.batch: Batch | None = None
        self.shape: tuple[int, ...] | None = None

    def add(self, seq_id: str, start: int, frames: np.ndarray) -> None:
        if self.shape is None:
            self.shape = frames.shape[1:]
        if frames.shape[1:] != self.shape:
            self.put(ReadFailure(seq_id, f"frames are {frames.shape[1:]}, the others {self.shape}: re-run decode"))
            return
        done = 0
        while done < len(frames):
            batch = self.batch or self._new_batch()
            n = min(len(frames) - done, self.batch_size - batch.n_valid)
            batch.frames[batch.n_valid : batch.n_valid + n].copy_(_tensor(frames[done : done + n]))
            batch.segments.append(Segment(seq_id, start + done, start + done + n, batch.n_valid))
            batch.n_valid += n
            done += n
            if batch.n_valid == self.batch_size:
                self.put(batch)
                self.batch = None

    def put(self, item) -> None:
        _put(self.out, item, self.stop)

    def flush(self) -> None:
        if self.batch is not None and self.batch.n_valid:
            self.batch.frames[self.batch.n_valid :].zero_()
            self.put(self.batch)
        self.batch = None

    def _new_batch(self) -> Batch:
        import torch

        frames = torch.empty((self.batch_size, *self.shape), dtype=torch.uint8, pin_memory=self.pin_memory)
        self.batch = Batch(frames)
        return self.batch


def _tensor(frames: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(frames))


def _put(out: queue.Queue, item, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            out.put(item, timeout=0.1)
            return
        except queue.Full:
            continue
