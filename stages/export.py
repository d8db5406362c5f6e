"""`export` stage: an HDF5 copy of an artifact store (h5py), for tools that read HDF5.

The file mirrors the store: one group per complete sequence, datasets with the same names, shapes and
dtypes; each dataset carries `dims` (its dimension names); group attrs are the sequence attrs and file
attrs the store's provenance (stage, params, model and revision for dino...) plus `source_store`.
Attribute values that HDF5 cannot hold natively (mappings, nested lists, None) are stored as JSON
strings. Arrays are copied chunk by chunk, never whole datasets in memory, into a temporary file that
replaces the output only when complete.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pipeline.context import StageContext
from pipeline.runner import progress
from pipeline.store import ArtifactStore, StoreError

log = logging.getLogger(__name__)
ARTIFACT_NAME = re.compile(r"[a-z][a-z0-9_]*")


def run(ctx: StageContext, artifact: str, fmt: Literal["h5"] = "h5", out: Path | None = None) -> Path:
    """Export `data/<dataset>/<artifact>.zarr` to `out` (default data/<dataset>/<artifact>.h5)."""
    if fmt != "h5":
        raise ValueError(f"export: unknown format {fmt!r} (supported: h5)")
    if not ARTIFACT_NAME.fullmatch(artifact):  # a name, never a path: `-a ../../x` would leave data/<dataset>/
        raise StoreError(f"export: {artifact!r} is not an artifact name (a store data/{ctx.name}/<name>.zarr, "
                         f"e.g. frames, dino, keypoints, heatmaps, embeddings_masa)")
    store = ArtifactStore(ctx.artifact(artifact))
    out = Path(out) if out is not None else ctx.data_dir / f"{artifact}.h5"
    export_h5(store, out)
    log.info("%s: exported %d sequence(s) of %s to %s", ctx.name, len(store.sequences()), store.url, out)
    return out


def export_h5(store: ArtifactStore, out: Path) -> Path:
    """Write every complete sequence of `store` to the HDF5 file `out` (replaced atomically)."""
    import h5py

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    sequences = store.sequences()
    try:
        with h5py.File(tmp, "w") as h5:
            set_attrs(h5.attrs, {**store.provenance, "source_store": store.url})
            for seq_id in progress(iterable=sequences, desc="export", unit="seq", disable=len(sequences) < 50):
                group = h5.create_group(seq_id)
                set_attrs(group.attrs, store.attrs(seq_id))
                for name in store.array_names(seq_id):
                    _copy_array(store.array(seq_id, name), group, name)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _copy_array(array, group, name: str) -> None:
    """Copy one zarr array into `group[name]`, block by block along the first axis."""
    # no modification times in the file: the same store exports to the same bytes
    dataset = group.create_dataset(name, shape=array.shape, dtype=array.dtype, track_times=False)
    dataset.attrs["dims"] = [str(d) for d in (array.metadata.dimension_names or ())]
    if array.ndim == 0:
        dataset[()] = array[()]
        return
    step = max(1, array.chunks[0])
    for start in range(0, array.shape[0], step):
        dataset[start : start + step] = array[start : start + step]


def set_attrs(attrs, values: dict[str, Any]) -> None:
    """Store `values` as HDF5 attributes: strings, numbers, booleans and flat numeric lists as themselves,
    anything else as a JSON string."""
    for key, value in values.items():
        attrs[key] = value if _native(value) else json.dumps(value)


def _native(value: Any) -> bool:
    if isinstance(value, (str, bool, int, float, np.integer, np.floating)):
        return True
    return (
        isinstance(value, list)
        and len(value) > 0
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    )
