"""The artifact store: one Zarr v3 store per dataset and artifact, one group per sequence.

Contract (DESIGN.md Sec. 3):
- root attrs record the producing stage, its resolved params and the code version (plus stage extras,
  e.g. the DINOv2 model id and revision);
- each sequence group carries `fingerprint`, `complete` and stage attrs (fps, n_frames, ...);
- a sequence is written completely or not at all: its group is created with `complete = False`, the
  arrays are written, and only then is `complete` set. Readers ignore incomplete groups, so a crash mid
  write leaves nothing that is mistaken for a result;
- arrays carry `dimension_names` and are chunked per sequence (time-chunked only past `max_chunk_bytes`),
  never per frame, because DVC and object stores pay per file;
- the URL may be any fsspec URL (`memory://`, `s3://`, ...); a local directory is the default.

Writers of different sequences never touch the same file, so processes and dask workers can write one
store concurrently; only the coordinator writes the root attrs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

SEQ_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
MAX_CHUNK_BYTES = 64 * 2**20

ArraySpec = tuple[np.ndarray, tuple[str, ...]]
"""An array to store and its dimension names, e.g. (features, ("time", "feature"))."""


class StoreError(RuntimeError):
    """A store cannot be opened, read or written."""


def fingerprint(*parts: Any) -> str:
    """A stable hex digest of JSON-able parts (source fingerprints, params, upstream fingerprints)."""
    blob = json.dumps(parts, sort_keys=True, default=_json_default).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def code_version() -> str:
    from pipeline import __version__

    return __version__


def check_sequence_id(seq_id: str) -> str:
    if not SEQ_ID.match(seq_id):
        raise StoreError(f"invalid sequence id {seq_id!r}: use letters, digits, '_', '-', '.'")
    return seq_id


class ArtifactStore:
    """A Zarr v3 store holding one artifact (`frames`, `dino`, `keypoints`, `heatmaps`, ...) of one dataset."""

    def __init__(self, url: str | Path, *, mode: str = "r", storage_options: dict | None = None):
        import zarr

        self.url = str(url)
        if mode not in ("r", "a"):
            raise ValueError(f"mode must be 'r' or 'a', got {mode!r}")
        try:
            self.root = zarr.open_group(self.url, mode=mode, storage_options=storage_options)
        except (FileNotFoundError, zarr.errors.GroupNotFoundError) as err:
            raise StoreError(f"no artifact store at {self.url} (has its stage run?)") from err

    # ----------------------------------------------------------------- provenance (root attrs)
    def set_provenance(self, *, stage: str, params: Mapping[str, Any], **extra: Any) -> None:
        """Record what produced this store, replacing what an earlier run recorded (no stale keys). Called
        once per run by the coordinator, never by workers. No wall-clock time or machine path goes in: the
        same inputs give the same bytes on any clone."""
        attrs = {
            "stage": stage,
            "params": _jsonable(params),
            "code_version": code_version(),
            **_jsonable(extra),
        }
        self.root.attrs.put(attrs)

    @property
    def provenance(self) -> dict[str, Any]:
        return dict(self.root.attrs)

    # ----------------------------------------------------------------- listing
    def all_groups(self) -> list[str]:
        return sorted(self.root.group_keys())

    def sequences(self) -> list[str]:
        """Ids of the sequences written completely (incomplete ones are invisible to readers)."""
        return [s for s in self.all_groups() if self.root[s].attrs.get("complete") is True]

    def __contains__(self, seq_id: str) -> bool:
        return seq_id in self.root and self.root[seq_id].attrs.get("complete") is True

    def fingerprint_of(self, seq_id: str) -> str | None:
        if seq_id not in self:
            return None
        return self.root[seq_id].attrs.get("fingerprint")

    def is_current(self, seq_id: str, fp: str) -> bool:
        """True when `seq_id` is complete and was made from exactly the inputs fingerprinted as `fp`."""
        return self.fingerprint_of(seq_id) == fp

    # ----------------------------------------------------------------- reading
    def attrs(self, seq_id: str) -> dict[str, Any]:
        return dict(self._group(seq_id).attrs)

    def read(self, seq_id: str, name: str) -> np.ndarray:
        group = self._group(seq_id)
        if name not in group:
            raise StoreError(f"{self.url}: sequence {seq_id} has no array '{name}' (has {sorted(group.array_keys())})")
        return group[name][...]

    def array(self, seq_id: str, name: str):
        """The lazy zarr array (slice it to read part of a sequence)."""
        return self._group(seq_id)[name]

    def _group(self, seq_id: str):
        if seq_id not in self:
            raise StoreError(f"{self.url}: no complete sequence '{seq_id}'")
        return self.root[seq_id]

    # ----------------------------------------------------------------- writing
    def write_sequence(
        self,
        seq_id: str,
        arrays: Mapping[str, ArraySpec],
        *,
        fingerprint: str,
        attrs: Mapping[str, Any] | None = None,
        compression: str | None = "zstd",
        level: int = 3,
    ) -> None:
        """Write one sequence completely, replacing any earlier version, and mark it complete last.

        `arrays` maps a name to (data, dimension names); `compression` is "zstd" or None.
        """
        from zarr.codecs import ZstdCodec

        check_sequence_id(seq_id)
        for name, (data, dims) in arrays.items():
            if data.ndim != len(dims):
                raise StoreError(f"{seq_id}/{name}: {data.ndim}-d array but dims {dims}")
        if seq_id in self.root:
            del self.root[seq_id]
        group = self.root.create_group(seq_id, attributes={"complete": False})
        compressors = [ZstdCodec(level=level)] if compression == "zstd" else None
        for name, (data, dims) in arrays.items():
            arr = group.create_array(
                name,
                shape=data.shape,
                chunks=_chunks(data),
                dtype=data.dtype,
                compressors=compressors,
                dimension_names=tuple(dims),
                fill_value=0,
                # a sequence's chunks are never worth skipping as "empty", and checking costs ~4x the write
                config={"write_empty_chunks": True},
            )
            if data.size:
                arr[...] = data
        meta = {**_jsonable(dict(attrs or {})), "fingerprint": fingerprint}
        group.update_attributes(meta)  # one metadata write (attrs.update writes once per key)
        group.update_attributes({"complete": True})

    def delete(self, seq_id: str) -> None:
        if seq_id in self.root:
            del self.root[seq_id]

    def prune(self, keep: Iterable[str]) -> list[str]:
        """Delete every group (complete or not) whose id is not in `keep`; returns the deleted ids."""
        keep = set(keep)
        gone = [s for s in self.all_groups() if s not in keep]
        for seq_id in gone:
            self.delete(seq_id)
        if gone:
            log.info("%s: removed %d sequence(s) no longer in the index", self.url, len(gone))
        return gone


def absolute_url(url: str | Path) -> str:
    """`url` with a local path made absolute (fsspec URLs unchanged), so that workers started in another
    directory (dask.distributed) find the same store."""
    url = str(url)
    return url if "://" in url else str(Path(url).resolve())


def _chunks(data: np.ndarray) -> tuple[int, ...]:
    """One chunk per sequence, split along the first (time) axis only when it would exceed MAX_CHUNK_BYTES."""
    if data.ndim == 0 or data.size == 0:
        return tuple(max(1, s) for s in data.shape)
    per_row = max(1, data.nbytes // max(1, data.shape[0]))
    rows = max(1, min(data.shape[0], MAX_CHUNK_BYTES // per_row))
    return (rows, *data.shape[1:])


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=_json_default))
