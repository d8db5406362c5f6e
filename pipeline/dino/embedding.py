"""Embedding many sequences' frames with frozen DINOv2: batches across sequences, model, per-sequence writes.

`embed_jobs` is the loop behind the `extract_dino` stage, used in-process and inside dask tasks. Three
things overlap: a reader thread packs the next batches from frames.zarr (`pipeline.dino.batches`), the
model runs on the current batch, and a writer thread stores every sequence whose frames are all embedded.
On CUDA the result of batch k is copied back while batch k + 1 is already queued, so the device does not
wait for Python between batches.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from pipeline.device import resolve_device
from pipeline.dino.batches import ReadFailure, prefetch_batches
from pipeline.dino.model import Embedder, ModelSource, load_model
from pipeline.runner import progress
from pipeline.store import ArtifactStore

log = logging.getLogger(__name__)
_MODELS: dict[tuple, Any] = {}


def resolve_dtype(dtype: str, device) -> str:
    """`auto` -> bfloat16 on CUDA, float32 elsewhere (bf16 is several times slower on common CPUs)."""
    if dtype == "auto":
        return "bfloat16" if device.type == "cuda" else "float32"
    return dtype


def embed_jobs(
    frames_url: str,
    dino_url: str,
    jobs: Sequence,
    settings: dict[str, Any],
    *,
    show_progress: bool = False,
    cache_model: bool = False,
    on_ready: Callable[[], None] | None = None,
) -> tuple[list[str], dict[str, str]]:
    """Embed `jobs` (stages.extract_dino.Job) and write each sequence; returns (written ids, {id: error}).

    `settings`: the extract_dino params plus `source` (ModelSource fields) and `device`. With
    `cache_model` the model stays loaded in this process for the next call (dask workers). `on_ready` is
    called once the model has loaded, before anything is written (the stage records provenance there)."""
    device = resolve_device(settings["device"])
    dtype = resolve_dtype(settings["dtype"], device)
    source = ModelSource(**settings["source"])
    model = cached_model(source, device) if cache_model else load_model(source, device)
    if on_ready is not None:
        on_ready()
    embedder = Embedder(
        model, pooling=settings["pooling"], image_size=settings["image_size"], autocast_bf16=dtype == "bfloat16"
    )
    attrs = {"compute_dtype": dtype, "device": device.type}
    sink = _Sink(ArtifactStore(dino_url, mode="a"), jobs, embedder.dim, attrs, writers=settings["num_workers"])
    batches = prefetch_batches(
        ArtifactStore(frames_url),
        [(j.seq_id, j.n_frames) for j in jobs],
        batch_size=settings["batch_size"],
        num_workers=settings["num_workers"],
        pin_memory=device.type == "cuda",
    )
    bar = progress(total=sum(j.n_frames for j in jobs), desc="extract_dino", unit="frame", disable=not show_progress)
    try:
        _pipeline(embedder, batches, sink, bar, device)
    finally:
        batches.close()
        sink.close()
        bar.close()
    return sink.done, sink.failures


def _pipeline(embedder: Embedder, batches, sink: _Sink, bar, device) -> None:
    """Run the model over `batches` and hand each result to `sink`: at once on the CPU, one batch late
    on CUDA (after the next batch is queued). A batch already computed is kept even if a later one fails."""
    import torch

    copy_stream = torch.cuda.Stream(device) if device.type == "cuda" else None
    pending = None
    try:
        for item in batches:
            if isinstance(item, ReadFailure):
                sink.fail(item.seq_id, item.error)
                continue
            features = embedder(to_device(item.frames, device, copy_stream))  # (B, D) float16 on the device
            if device.type != "cuda":
                bar.update(sink.collect(features, None, item))
                continue
            features = features.to("cpu", non_blocking=True)
            event = torch.cuda.Event()
            event.record()
            if pending is not None:
                bar.update(sink.collect(*pending))
            pending = (features, event, item)
    finally:
        if pending is not None:
            bar.update(sink.collect(*pending))


def to_device(frames, device, copy_stream=None):
    """(B, H, W, 3) uint8 host tensor -> the device. On CUDA the copy runs on `copy_stream` so that it
    overlaps with the model still working on the previous batch on the compute stream."""
    import torch

    if copy_stream is None:
        return frames.to(device)
    with torch.cuda.stream(copy_stream):
        on_device = frames.to(device, non_blocking=True)
    compute = torch.cuda.current_stream(device)
    compute.wait_stream(copy_stream)
    on_device.record_stream(compute)  # the caching allocator must not recycle it before compute is done
    return on_device


def cached_model(source: ModelSource, device):
    """The model of `source` on `device`, loaded once per process (dask workers keep it between tasks)."""
    key = (source.model, source.resolved, str(device))
    if key not in _MODELS:
        _MODELS.clear()  # one model per worker process
        _MODELS[key] = load_model(source, device)
        log.info("loaded %s (%s) on %s", source.model, source.resolved, device)
    return _MODELS[key]


class _Sink:
    """Collects per-frame features into per-sequence buffers and writes each full one in writer threads."""

    def __init__(self, store: ArtifactStore, jobs: Sequence, dim: int, attrs: dict[str, Any], *, writers: int = 1):
        self.store, self.dim, self.attrs = store, dim, attrs
        self.jobs = {j.seq_id: j for j in jobs}
        self.buffers: dict[str, np.ndarray] = {}
        self.filled: dict[str, int] = {}
        self.failures: dict[str, str] = {}
        self.done: list[str] = []
        # several writer threads: a zarr group write costs ~10-20 ms, mostly metadata, which at GPU
        # speed and ~100-frame sequences is more than one thread keeps up with
        self.writer = ThreadPoolExecutor(max(1, writers), thread_name_prefix="dino-write")
        self.writes: list = []

    def collect(self, features, event, batch) -> int:
        """Scatter one batch's (B, D) features to its sequences; returns the number of real frames."""
        if event is not None:
            event.synchronize()
        rows = features.numpy()
        for seg in batch.segments:
            if seg.seq_id in self.failures:
                continue
            job = self.jobs[seg.seq_id]
            buf = self.buffers.setdefault(seg.seq_id, np.empty((job.n_frames, self.dim), np.float16))
            buf[seg.start : seg.stop] = rows[seg.offset : seg.offset + seg.stop - seg.start]
            self.filled[seg.seq_id] = self.filled.get(seg.seq_id, 0) + seg.stop - seg.start
            if self.filled[seg.seq_id] == job.n_frames:
                self.writes.append((seg.seq_id, self.writer.submit(self._write, job, self.buffers.pop(seg.seq_id))))
        return batch.n_valid

    def fail(self, seq_id: str, error: str) -> None:
        self.failures.setdefault(seq_id, error)
        self.buffers.pop(seq_id, None)

    def close(self) -> None:
        """Wait for the queued writes; a sequence counts as done only once its write has finished."""
        for seq_id, future in self.writes:
            try:
                future.result()
                self.done.append(seq_id)
            except Exception as err:  # reported with the sequence id by the stage
                self.failures[seq_id] = f"cannot write features to {self.store.url}: {type(err).__name__}: {err}"
        self.writer.shutdown()

    def _write(self, job, features: np.ndarray) -> None:
        self.store.write_sequence(
            job.seq_id,
            {"feature": (features, ("time", "feature"))},
            fingerprint=job.fingerprint,
            source=job.source,
            attrs={**job.attrs, **self.attrs},
            compression=None,  # float16 features barely compress (1.1x): not worth the CPU
        )
