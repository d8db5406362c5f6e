"""Reading `heatmaps.zarr` for a model: lazy per-sequence maps behind a byte-bounded LRU, and the check that a
model embeds heatmaps made like the ones it was trained on.

Memory. A heatmap frame holds channels x size x size values: Penn Action's 27 channels (13 joints, 14 limbs) at
30 x 30 are 24,300 values, 47.5 KiB in float16 and 23.7 KiB in uint8. The 2,150 sequences of the official
split (155,993 frames) take 7.06 GiB in float16 (3.53 GiB in uint8, 14.1 GiB as float32); its train split
(1,172 sequences, 83,596 frames) 3.78 GiB (1.89 GiB). So sequences are not read up front: each is read on
first use and kept in its stored dtype in a cache bounded in bytes (by default a quarter of the memory
available when the inputs are loaded). When the training sequences fit, every epoch after the first reads
from memory; when they do not, the least recently used sequences are dropped and read again (zstd reads
run at ~280 MiB/s on one core), i.e. training streams from Zarr.

Stored dtype. `heatmaps.dtype` may be float16 or uint8; a sequence's attrs carry `scale` (1 or 1/255), and
`np.asarray(maps, dtype=np.float32)` returns stored values times that scale, so a model always sees the
same maps in [0, 1] (uint8 within 1/510 of float16).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.store import ArtifactStore, StoreError

log = logging.getLogger(__name__)

HEATMAP = "heatmap"
GEOMETRY = ("size", "sigma", "pad", "square")
"""The `heatmaps` params that say what a map means. `dtype` and `compression_level` only say how it is
stored (uint8 and float16 maps differ by at most 1/510), so a model may embed either."""
CACHE_FRACTION = 0.25
"""Share of the memory available at load time that the heatmap cache may hold by default."""


class HeatmapMismatch(ValueError):
    """A model meets heatmaps made with other geometry than the ones it was trained on."""


class ByteLRU:
    """Arrays keyed by name, the least recently used dropped once they hold more than `max_bytes`."""

    def __init__(self, max_bytes: int):
        self.max_bytes = int(max_bytes)
        self.items: OrderedDict[str, np.ndarray] = OrderedDict()
        self.bytes = 0
        self.hits = self.misses = 0

    def get(self, key: str, load: Callable[[], np.ndarray]) -> np.ndarray:
        if key in self.items:
            self.hits += 1
            self.items.move_to_end(key)
            return self.items[key]
        self.misses += 1
        value = load()
        # an array larger than the whole cache is returned but not kept: it would evict everything, itself included
        if value.nbytes <= self.max_bytes:
            self.items[key] = value
            self.bytes += value.nbytes
            while self.bytes > self.max_bytes:
                _, dropped = self.items.popitem(last=False)
                self.bytes -= dropped.nbytes
        return value

    def has_room(self, nbytes: int) -> bool:
        """Whether an array of `nbytes` would be kept without dropping another."""
        return self.bytes + nbytes <= self.max_bytes

    def peek(self, key: str) -> np.ndarray | None:
        """The array kept under `key`, or None; neither counts as a hit or miss nor changes the eviction order
        (a read of a few frames must not push a sequence ahead of those the epochs read whole)."""
        return self.items.get(key)


class StoredMaps:
    """One sequence's heatmaps (T, C, S, S) as an array-like read on demand through `cache`.

    `np.asarray(maps, dtype=np.float32)` reads the stored array (uint8 or float16) and returns it times `scale`
    (`model.batch.collate` asks for `batch_dtype`, float16: the cached array itself, read-only, for a float16
    store); `maps[frames]` (an integer index array) reads those frames from the cache; a sequence not yet
    there is read whole into it when it fits without dropping another (the store keeps a sequence in one
    chunk up to 64 MiB, so reading some frames decompresses all of it anyway, and training reads every frame
    next: LA2DS's DTW teacher reads 32 frames of each sequence just before the first epoch reads them all),
    else only those frames are read, leaving the cache as it was; `len` and `shape` need no read."""

    def __init__(self, array: Any, scale: float, cache: ByteLRU, key: str):
        self.array, self.scale, self.cache, self.key = array, float(scale), cache, key
        self.shape = tuple(int(s) for s in array.shape)
        self.stored_dtype = np.dtype(array.dtype)
        # what __array__ returns, not what is stored
        self.dtype = np.dtype(np.float32)
        # what `model.batch.collate` pads these maps in: float16 holds a float16 store exactly and a uint8 one
        # (k / 255) to 2^-11 of its value, and halves every copy, gather and transfer of a training batch
        self.batch_dtype = np.dtype(np.float16)

    @property
    def nbytes(self) -> int:
        """Bytes of the stored array (what the cache holds)."""
        return int(np.prod(self.shape)) * self.stored_dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def stored(self) -> np.ndarray:
        # cached as stored (2x-4x smaller)
        return self.cache.get(self.key, lambda: np.asarray(self.array[...]))

    def _scaled(self, stored: np.ndarray, dtype: Any = np.float32) -> np.ndarray:
        # a copy: the scaling never touches the cache; scaled in float32, then rounded once to `dtype`. Torch
        # casts float16 to float32 ~15x faster than NumPy here (vectorised; the DTW teacher reads 1,172 sequences)
        import torch

        maps = torch.from_numpy(np.ascontiguousarray(stored)).to(torch.float32, copy=True).numpy()
        if self.scale != 1.0:
            maps *= np.float32(self.scale)
        return maps if np.dtype(dtype) == np.float32 else maps.astype(dtype)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        # a float16 store read as float16 (the batch dtype) needs no change: unless a copy is asked for (NumPy 2
        # passes `copy`), that is a read-only view of the cached array (a batch copies it once,
        # `model.batch.collate`); anything else is a scaled copy
        if dtype is not None and np.dtype(dtype) == np.float16:
            stored = self.stored()
            if stored.dtype == np.float16 and self.scale == 1.0 and not copy:
                view = stored.view()
                view.flags.writeable = False
                return view
            return self._scaled(stored, np.float16)
        maps = self._scaled(self.stored())
        return maps if dtype is None else maps.astype(dtype, copy=False)

    def __getitem__(self, frames: Any) -> np.ndarray:
        """(F,) integer frame indices (repeats allowed) -> (F, C, S, S) float32 maps times `scale`."""
        frames = np.asarray(frames, dtype=np.int64)
        if frames.ndim != 1:
            raise IndexError(f"{self.key}: StoredMaps takes a 1-D array of frame indices, got shape {frames.shape}")
        cached = self.cache.peek(self.key)
        if cached is None and self.cache.has_room(self.nbytes):
            cached = self.stored()
        if cached is not None:
            return self._scaled(cached[frames])
        # an orthogonal selection reads only the chunks holding these frames; it wants them unique and sorted
        unique, inverse = np.unique(frames, return_inverse=True)
        oindex = getattr(self.array, "oindex", None)
        stored = np.asarray(oindex[unique] if oindex is not None else self.array[unique])
        return self._scaled(stored[inverse])


def default_cache_bytes() -> int:
    """CACHE_FRACTION of the memory available now (/proc/meminfo MemAvailable; of 16 GiB where unreadable)."""
    try:
        with open("/proc/meminfo") as fh:
            fields = dict(line.split(":", 1) for line in fh)
        available = int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        # no /proc (macOS, Windows)
        available = 16 * 2**30
    return int(available * CACHE_FRACTION)


def open_maps(store: ArtifactStore, seq: str, cache: ByteLRU) -> StoredMaps:
    """The lazy maps of `seq` in a heatmaps store (no data read)."""
    array = store.array(seq, HEATMAP)
    scale = store.attrs(seq).get("scale", 1.0)
    # uint8 levels read with scale 1 would be maps up to 255, not [0, 1]
    if np.dtype(array.dtype) == np.uint8 and scale == 1.0:
        raise StoreError(f"{store.url}: {seq}/{HEATMAP} is uint8 but records no scale (re-run the heatmaps stage)")
    # one cache may hold several stores
    return StoredMaps(array, scale, cache, f"{store.url}::{seq}")


def read_maps(store: ArtifactStore, seq: str) -> np.ndarray:
    """One sequence's heatmaps as float32 maps (stored values times the sequence's scale)."""
    # one-off read: nothing cached
    return np.asarray(open_maps(store, seq, ByteLRU(0)), dtype=np.float32)


def read_array(store: ArtifactStore, seq: str, name: str) -> np.ndarray:
    """`store.read(seq, name)`, except heatmaps come back as float32 maps whatever their stored dtype."""
    return read_maps(store, seq) if name == HEATMAP else store.read(seq, name)


def store_params(store: ArtifactStore) -> dict[str, Any]:
    """The params a heatmaps store was made with (its provenance), every geometry key present."""
    prov = store.provenance
    params = prov.get("params")
    if prov.get("stage") != "heatmaps" or not isinstance(params, Mapping):
        raise StoreError(f"{store.url} records no heatmaps params in its provenance (re-run the heatmaps stage)")
    missing = [k for k in GEOMETRY if k not in params]
    if missing:
        raise StoreError(f"{store.url}: its provenance params lack {missing} (re-run the heatmaps stage)")
    return dict(params)


def check_heatmaps(trained: Mapping[str, Any] | None, found: Mapping[str, Any], *, model: str, store: str) -> None:
    """Refuse heatmaps whose geometry (GEOMETRY) differs from what the model was trained on.

    trained: the heatmap params the model's checkpoint records (None: the model records none and reads no
    heatmaps; nothing to check); found: the store's params (`store_params`)."""
    if trained is None:
        return
    differ = [k for k in GEOMETRY if trained.get(k) != found.get(k)]
    if differ:
        def show(p: Mapping[str, Any]) -> str:
            return ", ".join(f"{k}={p.get(k)!r}" for k in GEOMETRY)

        raise HeatmapMismatch(
            f"{model} was trained on heatmaps made with {show(trained)}, but {store} holds heatmaps made with "
            f"{show(found)} (they differ in {', '.join(differ)}): re-run the heatmaps stage with the model's "
            f"params, or retrain the model on these heatmaps"
        )


def trained_heatmaps(models_dir: Path) -> dict[str, dict[str, Any] | None]:
    """{config.json path: the heatmap params it records (None if none)} of every model under `models_dir`
    (one multi-activity model, or one folder per activity)."""
    import json

    models_dir = Path(models_dir)
    single = models_dir / "config.json"
    configs = [single] if single.is_file() else sorted(models_dir.glob("*/config.json"))
    return {str(p): json.loads(p.read_text()).get("heatmaps") for p in configs}


def check_model_heatmaps(models_dir: Path, heatmaps_url: str) -> None:
    """Refuse to embed with the model(s) in `models_dir` (models/<D>/<method>) the heatmaps at `heatmaps_url`
    when they were made with other geometry than the model's training heatmaps (HeatmapMismatch names both).
    Models that read no heatmaps pass; a heatmaps store a heatmap model needs must exist."""
    recorded = {path: params for path, params in trained_heatmaps(models_dir).items() if params is not None}
    if not recorded:
        return
    found = store_params(ArtifactStore(heatmaps_url))
    for path, params in recorded.items():
        check_heatmaps(params, found, model=path, store=heatmaps_url)


def log_memory(url: str, maps: list[StoredMaps], cache: ByteLRU) -> None:
    """Say what the heatmaps need in memory and whether they fit the cache."""
    total = sum(m.nbytes for m in maps)
    frames = sum(len(m) for m in maps)
    dtype = maps[0].stored_dtype.name if maps else "-"
    fits = "they fit: read once, then from memory" if total <= cache.max_bytes else "streamed from Zarr (LRU)"
    log.info("%s: %d sequences, %d frames, %.2f GiB as stored (%s); cache %.2f GiB: %s",
             url, len(maps), frames, total / 2**30, dtype, cache.max_bytes / 2**30, fits)
