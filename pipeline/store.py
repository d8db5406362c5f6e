"""The artifact store: one Zarr v3 store per dataset and artifact, one group per sequence.

Contract (DESIGN.md Sec. 3):
- root attrs record the producing stage, its resolved params and the code version (plus stage extras,
  e.g. the DINOv2 model id and revision);
- each sequence group carries `fingerprint` (everything that determines its content), `source_fingerprint` (the
  index's fingerprint of the raw data it derives from, so that the next stage can tell a sequence made
  from an older version of its video or pose file), `complete` and stage attrs (fps, n_frames, ...);
- a sequence is written completely or not at all: its group is created with `complete = False`, the
  arrays are written, and only then is `complete` set. Readers ignore incomplete groups, so a crash mid
  write leaves nothing that is mistaken for a result. In a local store the group is written under a
  hidden scratch name (`.writing@<seq>@<host>@<pid>@...`) and renamed into place, so that two runs of a
  stage at once leave one whole version of each sequence; a killed run's scratch is removed by the next;
- a sequence whose inputs or settings changed is marked stale (`complete = False`, `stale` = why) before
  it is recomputed, so that a failed recompute never leaves the old content looking current. Its arrays
  are kept: when its fingerprint matches again (the old video is back), it is revived, not recomputed;
- a group whose metadata cannot be read (a corrupt `zarr.json`) counts as incomplete and is named in the
  log, never an error that blocks the stage which would rewrite it;
- every chunk carries a CRC32C checksum (Zarr v3 `crc32c` codec), so a corrupted chunk is a StoreError
  naming the store, the sequence, the array and the chunk, never silently wrong numbers;
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
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np

log = logging.getLogger(__name__)

SEQ_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
RESERVED_IDS = ("zarr.json",)  # the store's own metadata file sits beside the sequence groups
MAX_CHUNK_BYTES = 64 * 2**20
OPEN_ATTEMPTS = 5
SOURCE = "source_fingerprint"  # sequence attr: the index's fingerprint of the raw data it derives from
SCRATCH_SEP = "@"
Status = Literal["absent", "complete", "incomplete", "stale", "unreadable"]

ArraySpec = tuple[np.ndarray, tuple[str, ...]]
"""An array to store and its dimension names, e.g. (features, ("time", "feature"))."""


class StoreError(RuntimeError):
    """A store cannot be opened, read or written."""


def fingerprint(*parts: Any) -> str:
    """A stable hex digest of JSON-able parts (source fingerprints, params, upstream fingerprints)."""
    # sort_keys: the digest must not depend on the order in which a mapping (params read from YAML, say) was built
    blob = json.dumps(parts, sort_keys=True, default=_json_default).encode()
    # 128 bits: no collision in practice, short enough for attrs and logs
    return hashlib.sha256(blob).hexdigest()[:32]


def code_version() -> str:
    from pipeline import __version__

    return __version__


def sequence_id_problem(seq_id: str) -> str | None:
    """Why `seq_id` cannot name a sequence group (None when it can): ids start with a letter or digit and
    use letters, digits, '_', '-', '.', so that no id is a path ('..', 'a/b'), an option ('-x') or hidden."""
    if not SEQ_ID.match(seq_id):
        return "use letters, digits, '_', '-' and '.', starting with a letter or digit"
    if seq_id in RESERVED_IDS:
        return f"{seq_id!r} is the name of the store's own metadata file"
    return None


def check_sequence_id(seq_id: str) -> str:
    problem = sequence_id_problem(seq_id)
    if problem:
        raise StoreError(f"invalid sequence id {seq_id!r}: {problem}")
    return seq_id


class ArtifactStore:
    """A Zarr v3 store holding one artifact (`frames`, `dino`, `keypoints`, `heatmaps`, ...) of one dataset."""

    def __init__(self, url: str | Path, *, mode: str = "r", storage_options: dict | None = None):
        import zarr

        self.url = str(url)
        if mode not in ("r", "a"):
            raise ValueError(f"mode must be 'r' or 'a', got {mode!r}")
        for attempt in range(OPEN_ATTEMPTS):
            try:
                self.root = zarr.open_group(self.url, mode=mode, storage_options=storage_options)
                break
            except (FileNotFoundError, zarr.errors.GroupNotFoundError) as err:
                raise StoreError(f"no artifact store at {self.url} (has its stage run?)") from err
            except ValueError as err:  # json.JSONDecodeError and zarr's metadata errors
                if attempt + 1 < OPEN_ATTEMPTS:  # another run may be writing it this very moment
                    time.sleep(0.05 * (attempt + 1))
                    continue
                raise StoreError(f"{self.url}: the store's own metadata (zarr.json) is unreadable: {err}; "
                                 f"delete the store to rebuild it") from err

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
        """Every sequence group, complete or not, including those whose metadata cannot be read (listed
        from the store's keys, without parsing any group's zarr.json)."""
        from zarr.core.sync import sync

        async def names() -> list[str]:
            return [key async for key in self.root.store.list_dir(self.root.path)]

        # a leading '.' marks scratch groups (`.writing@...`, `.trash@...`), which are no sequences
        return sorted(name for name in sync(names()) if name != "zarr.json" and not name.startswith("."))

    def sequences(self) -> list[str]:
        """Ids of the sequences written completely (incomplete, stale and unreadable ones are invisible)."""
        return [s for s in self.all_groups() if self.status(s) == "complete"]

    def status(self, seq_id: str) -> Status:
        """absent | complete | incomplete (being written, or a write was cut short) | stale (see
        `invalidate`) | unreadable (its metadata is corrupt: treated as incomplete, and logged)."""
        return self._state(seq_id)[0]

    def _state(self, seq_id: str) -> tuple[Status, dict[str, Any]]:
        """(status, the group's attrs) from one read of its metadata ({} when absent or unreadable)."""
        group = self._try_group(seq_id)
        if group is None:
            return "absent", {}
        if isinstance(group, Exception):
            return "unreadable", {"error": str(group)}
        attrs = dict(group.attrs)
        if attrs.get("complete") is True:
            return "complete", attrs
        return ("stale" if attrs.get("stale") else "incomplete"), attrs

    def __contains__(self, seq_id: str) -> bool:
        return self.status(seq_id) == "complete"

    def fingerprint_of(self, seq_id: str) -> str | None:
        status, attrs = self._state(seq_id)
        return attrs.get("fingerprint") if status == "complete" else None

    def is_current(self, seq_id: str, fp: str, source: str | None = None) -> bool:
        """True when `seq_id` is complete and was made from exactly the inputs fingerprinted as `fp` (and,
        when `source` is given, from that version of its raw data)."""
        status, attrs = self._state(seq_id)
        return status == "complete" and _made_from(attrs, fp, source)

    def revivable(self, seq_id: str, fp: str, source: str | None = None) -> bool:
        """True when `seq_id` is stale but its content was made from exactly `fp` (and `source`)."""
        status, attrs = self._state(seq_id)
        return status == "stale" and _made_from(attrs, fp, source)

    def unusable(self, seq_id: str, *, source: str | None = None) -> str | None:
        """Why `seq_id` cannot serve as the input of a later stage (None when it can): absent, unreadable,
        stale (with the recorded reason), incomplete, or made from another version of its raw data than
        `source`, the index's current fingerprint of it. The reason is short; callers name the store."""
        status, attrs = self._state(seq_id)
        if status == "complete":
            if source is None or attrs.get(SOURCE) == source:
                return None
            return (f"made from another version of its source than the index describes now "
                    f"(source fingerprint {attrs.get(SOURCE)}, index {source})")
        return {
            "stale": f"stale: {attrs.get('stale')}",
            "unreadable": f"its metadata is unreadable ({attrs.get('error')})",
            "incomplete": "incomplete (its write was cut short, or is still running)",
        }.get(status, "absent")

    # ----------------------------------------------------------------- reading
    def attrs(self, seq_id: str) -> dict[str, Any]:
        return dict(self._group(seq_id).attrs)

    def array_names(self, seq_id: str) -> list[str]:
        return sorted(self._group(seq_id).array_keys())

    def read(self, seq_id: str, name: str) -> np.ndarray:
        return self.array(seq_id, name)[...]

    def array(self, seq_id: str, name: str) -> CheckedArray:
        """The lazy array (slice it to read part of a sequence); a corrupt chunk raises StoreError naming it."""
        group = self._group(seq_id)
        try:
            arr = group[name]
        except KeyError:
            raise StoreError(
                f"{self.url}: sequence {seq_id} has no array '{name}' (has {sorted(group.array_keys())})"
            ) from None
        except ValueError as err:  # a corrupt array zarr.json
            raise StoreError(f"{self.url}: sequence {seq_id}: the metadata of array '{name}' is unreadable "
                             f"({err}); delete {self.url}/{seq_id} and re-run the stage that writes it") from err
        return CheckedArray(arr, f"{self.url}: sequence {seq_id}, array '{name}'", f"{self.url}/{seq_id}")

    def _group(self, seq_id: str):
        if seq_id not in self:
            raise StoreError(f"{self.url}: no complete sequence '{seq_id}' ({self.unusable(seq_id)})")
        return self.root[seq_id]

    def _try_group(self, seq_id: str):
        """The group, None when absent, or the exception that reading its metadata raised."""
        try:
            return self.root[seq_id]
        except KeyError:
            return None
        except Exception as err:  # json.JSONDecodeError, zarr metadata errors: the group is unreadable
            return err

    # ----------------------------------------------------------------- writing
    def write_sequence(
        self,
        seq_id: str,
        arrays: Mapping[str, ArraySpec],
        *,
        fingerprint: str,
        source: str | None = None,
        attrs: Mapping[str, Any] | None = None,
        compression: str | None = "zstd",
        level: int = 3,
    ) -> None:
        """Write one sequence completely, replacing any earlier version, and mark it complete last.

        `arrays` maps a name to (data, dimension names); `source` is the index's fingerprint of the raw
        data the sequence derives from; `compression` is "zstd" or None. Every chunk gets a CRC32C.
        In a local store the group is written under a hidden scratch name and renamed into place once
        complete, so that readers never see half of it and two runs writing the same sequence at once
        (the same stage started twice) leave one whole version, never a mix.
        """
        check_sequence_id(seq_id)
        for name, (data, dims) in arrays.items():
            if data.ndim != len(dims):
                raise StoreError(f"{seq_id}/{name}: {data.ndim}-d array but dims {dims}")
        self.delete(seq_id)  # the old version goes first: nothing of it can pass for the new one
        local = self._local_dir()
        # a local store gets the group under a hidden scratch name, moved into place once complete
        name = seq_id if local is None else _scratch_name("writing", seq_id)
        try:
            self._write_group(name, arrays, compression, level)
            meta = {**_jsonable(dict(attrs or {})), "fingerprint": fingerprint}
            if source is not None:
                meta[SOURCE] = source
            self.root[name].attrs.put({"complete": True, **meta})  # one metadata write
        except BaseException:
            if local is not None:  # a failed write leaves no scratch behind (the sequence stays absent)
                shutil.rmtree(local / name, ignore_errors=True)
            raise
        if local is not None:
            self._move_into_place(local, name, seq_id)

    def _write_group(self, name: str, arrays: Mapping[str, ArraySpec], compression: str | None, level: int) -> None:
        """Create group `name` (marked incomplete) holding `arrays`, one chunk per sequence, checksummed."""
        from zarr.codecs import Crc32cCodec, ZstdCodec

        group = self.root.create_group(name, attributes={"complete": False})
        # the checksum is the last bytes-to-bytes codec, so it covers exactly the bytes on disk
        compressors = ([ZstdCodec(level=level)] if compression == "zstd" else []) + [Crc32cCodec()]
        for array_name, (data, dims) in arrays.items():
            arr = group.create_array(
                array_name,
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

    def _local_dir(self) -> Path | None:
        """The store's folder when it is a local directory (where renames are atomic), else None."""
        from zarr.storage import LocalStore

        store = self.root.store
        return Path(store.root) / self.root.path if isinstance(store, LocalStore) else None

    def _move_into_place(self, local: Path, scratch: str, seq_id: str) -> None:
        """Rename the finished scratch group to `seq_id` (atomic: readers see all of it or none). When
        another run put its own version there first (the same stage started twice), keep that one."""
        try:
            os.rename(local / scratch, local / seq_id)
        # renaming onto a directory that is not empty fails (ENOTEMPTY/EEXIST): another run got there first
        except OSError as err:
            if not (local / seq_id).exists():
                raise
            log.info("%s: sequence %s was written meanwhile by another run; keeping that one (%s)", self.url, seq_id, err)
            shutil.rmtree(local / scratch, ignore_errors=True)

    def invalidate(self, seq_id: str, reason: str) -> None:
        """Mark a sequence stale: readers stop seeing it, its arrays stay (see `revive`). An unreadable
        group is deleted (nothing in it can be trusted)."""
        status, attrs = self._state(seq_id)
        if status == "unreadable":
            log.warning("%s: sequence %s has unreadable metadata (%s); deleting it so that it is recomputed",
                        self.url, seq_id, attrs["error"])
            self.delete(seq_id)
        elif status in ("complete", "stale"):
            try:
                self.root[seq_id].update_attributes({"complete": False, "stale": reason})
            except (FileNotFoundError, KeyError):  # replaced by another run of the stage meanwhile
                log.debug("%s: sequence %s vanished while being marked stale", self.url, seq_id)

    def revive(self, seq_id: str) -> None:
        """Mark a stale sequence complete again: its fingerprint matches the current inputs once more."""
        group = self.root[seq_id]
        attrs = {k: v for k, v in group.attrs.items() if k != "stale"}
        group.attrs.put({**attrs, "complete": True})

    def delete(self, seq_id: str) -> None:
        """Remove everything under the sequence's prefix (also what a cut-short write or delete left). In a
        local store the group is first renamed away, so that it vanishes at once, never half deleted."""
        from zarr.core.sync import sync

        if not seq_id or "/" in seq_id or seq_id in (".", ".."):  # a prefix that would reach the whole store
            raise StoreError(f"{self.url}: refusing to delete {seq_id!r}: not one sequence group")
        local = self._local_dir()
        if local is None:
            sync(self.root.store.delete_dir(f"{self.root.path}/{seq_id}".lstrip("/")))
            return
        trash = local / _scratch_name("trash", seq_id)
        try:
            os.rename(local / seq_id, trash)
        except FileNotFoundError:
            return
        shutil.rmtree(trash, ignore_errors=True)

    def clean_scratch(self) -> list[str]:
        """Delete the scratch groups that runs killed on this machine left behind (their process is gone)."""
        local = self._local_dir()
        if local is None or not local.is_dir():
            return []
        gone = []
        for path in local.iterdir():
            parts = path.name.split(SCRATCH_SEP)
            # only this host's scratch: a pid says nothing about a process on another machine sharing the store
            if len(parts) == 5 and parts[0] in (".writing", ".trash") and parts[2] == socket.gethostname() \
                    and not _process_alive(int(parts[3])):
                shutil.rmtree(path, ignore_errors=True)
                gone.append(path.name)
        return gone

    def prune(self, keep: Iterable[str]) -> list[str]:
        """Delete every group (complete or not) whose id is not in `keep`; returns the deleted ids."""
        keep = set(keep)
        self.clean_scratch()
        gone = [s for s in self.all_groups() if s not in keep]
        for seq_id in gone:
            self.delete(seq_id)
        if gone:
            log.info("%s: removed %d sequence(s) no longer in the index", self.url, len(gone))
        return gone


class CheckedArray:
    """A zarr array whose reads turn a corrupt chunk (checksum mismatch, undecodable bytes) into a
    StoreError naming the store, sequence, array and chunk. Everything else is the zarr array's."""

    def __init__(self, array, where: str, group_path: str):
        self._array, self._where, self._group_path = array, where, group_path

    def __getattr__(self, name: str) -> Any:
        return getattr(self._array, name)

    def __getitem__(self, selection) -> np.ndarray:
        try:
            return self._array[selection]
        except Exception as err:
            # the chunk-by-chunk scan runs only after a failed read; when every chunk reads on its own, the error was
            # not corruption and is re-raised as it is
            bad = self.corrupt_chunks()
            if not bad:
                raise
            raise StoreError(
                f"{self._where}: chunk(s) {', '.join(bad)} are corrupt ({type(err).__name__}: {err}); delete "
                f"{self._group_path} and re-run the stage that writes it"
            ) from err

    def corrupt_chunks(self) -> list[str]:
        """Keys (`c/0/0/...`, relative to the array) of the chunks that cannot be read back."""
        bad = []
        for coords in np.ndindex(*self._array.cdata_shape):
            try:
                self._array.blocks[coords]
            except Exception:  # any failure to read one chunk marks that chunk
                bad.append(self._array.metadata.encode_chunk_key(coords))
        return bad


def _made_from(attrs: Mapping[str, Any], fp: str, source: str | None) -> bool:
    return attrs.get("fingerprint") == fp and (source is None or attrs.get(SOURCE) == source)


def _scratch_name(kind: str, seq_id: str) -> str:
    """`.writing@<seq>@<host>@<pid>@<random>`: hidden from `all_groups`, and tells whose it was."""
    return SCRATCH_SEP.join((f".{kind}", seq_id, socket.gethostname(), str(os.getpid()), uuid.uuid4().hex[:8]))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


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
