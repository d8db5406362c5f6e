"""A dataset's arrays for a model: every sequence of the index, read from the artifact stores a method declares
(train and embed read through this, so a model sees the same arrays in both).

Heatmaps (`heatmaps.zarr {seq}/heatmap`) are not read up front but lazily, through a byte-bounded cache, and
come back as float32 maps whatever their stored dtype (`stages.shared.heatmap_store`). Before a trained model
embeds a dataset, `check_model_heatmaps(models_dir, ctx.artifact("heatmaps"))` (or `load_inputs(...,
trained_heatmaps=...)`) refuses heatmaps made with other geometry than the model's training heatmaps."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from model.method import InputSpec
from pipeline.context import StageContext
from pipeline.sequences import read_index
from pipeline.store import ArtifactStore, StoreError, fingerprint
from stages.shared.heatmap_store import (
    HEATMAP,
    ByteLRU,
    HeatmapMismatch,
    check_heatmaps,
    check_model_heatmaps,
    default_cache_bytes,
    log_memory,
    open_maps,
    read_array,
    store_params,
)

__all__ = ["HeatmapMismatch", "Inputs", "check_heatmaps", "check_model_heatmaps", "load_inputs", "read_array"]

log = logging.getLogger(__name__)

MAKES = {
    "keypoints": "pipeline keypoints --dataset {d}",
    "dino": "pipeline extract-dino --dataset {d}",
    "heatmaps": "pipeline heatmaps --dataset {d}",
}


@dataclass
class Inputs:
    """Every sequence's arrays read from the stores: ids (index order), arrays[i] = {name: (T, ...)} (heatmaps
    as lazy `StoredMaps`: `np.asarray(a, np.float32)` reads them); heatmaps: the params of the heatmaps store
    read (its provenance), None when no heatmaps were read."""

    ids: list[str]
    activities: list[str]
    splits: list[str]
    arrays: list[dict[str, np.ndarray]]
    spec: InputSpec
    source_fingerprints: list[str]
    heatmaps: dict | None = None


def load_inputs(
    ctx: StageContext,
    needed: tuple[tuple[str, str], ...],
    *,
    trained_heatmaps: dict | None = None,
    heatmap_cache_bytes: int | None = None,
) -> Inputs:
    """Read the arrays `needed` for every sequence of the index; loud errors name the store and the fix.

    trained_heatmaps: the heatmap params a trained model records (its config's "heatmaps"); a heatmaps store
    made with other geometry is refused (HeatmapMismatch) before anything is read. heatmap_cache_bytes:
    bound of the heatmap cache (default: a quarter of the available memory)."""
    index = read_index(ctx.index_path)
    ids = index.ids
    n_frames = dict(zip(ids, index.table["n_frames"]))
    arrays: list[dict[str, np.ndarray]] = [{} for _ in ids]
    shapes: dict[str, tuple[int, ...]] = {}
    layout, fps_parts, heatmaps = None, [[] for _ in ids], None
    cache = ByteLRU(default_cache_bytes() if heatmap_cache_bytes is None else heatmap_cache_bytes)
    # dict.fromkeys: each store once, in the order the model declares them
    for artifact in dict.fromkeys(a for a, _ in needed):
        store = _open_store(ctx, artifact)
        present = set(store.sequences())
        missing = [s for s in ids if s not in present]
        if missing:
            raise StoreError(
                f"{store.url} lacks {len(missing)} sequence(s) of the index (e.g. {missing[:5]}); "
                f"run `{MAKES.get(artifact, 'the stage that writes it').format(d=ctx.name)}`"
            )
        if artifact == "heatmaps":
            heatmaps = store_params(store)
            check_heatmaps(trained_heatmaps, heatmaps, model="the model", store=store.url)
        if artifact in ("keypoints", "heatmaps") and layout is None:
            layout = _layout_of(store, ids[0], ctx)
        for i, seq in enumerate(ids):
            # per sequence, the fingerprints of every store it is read from: train and embed redo a sequence when any of
            # its inputs was recomputed
            fps_parts[i].append(store.fingerprint_of(seq))
            for art, name in needed:
                if art == artifact:
                    arrays[i][name] = _read(store, seq, name, shapes, int(n_frames[seq]), cache)
        if artifact == "heatmaps":
            log_memory(store.url, [a[HEATMAP] for a in arrays if HEATMAP in a], cache)
    spec = InputSpec(dict(shapes), layout)
    table = index.table
    return Inputs(ids, list(table["activity"]), list(table["split"]), arrays, spec,
                  [fingerprint(*parts) for parts in fps_parts], heatmaps)


def _open_store(ctx: StageContext, artifact: str) -> ArtifactStore:
    url = ctx.artifact(artifact)
    try:
        return ArtifactStore(url, mode="r")
    except StoreError as err:
        make = MAKES.get(artifact, "the stage that writes it").format(d=ctx.name)
        raise StoreError(f"training needs the '{artifact}' artifact: no store at {url}; run `{make}`") from err


def _layout_of(store: ArtifactStore, first: str, ctx: StageContext) -> str:
    layout = store.provenance.get("layout") or store.attrs(first).get("layout")
    if layout:
        return str(layout)
    log.warning("%s records no skeleton layout; using the manifest's '%s'", store.url, ctx.dataset.layout)
    return ctx.dataset.layout


def _read(store: ArtifactStore, seq: str, name: str, shapes: dict, n_frames: int, cache: ByteLRU):
    """One sequence's array (heatmaps: lazy, through `cache`), its frame count and frame shape checked."""
    data = open_maps(store, seq, cache) if name == HEATMAP else store.read(seq, name)
    if data.shape[0] != n_frames:
        raise StoreError(f"{store.url}: {seq}/{name} has {data.shape[0]} frames, the index says {n_frames}")
    frame_shape = tuple(int(s) for s in data.shape[1:])
    # the first sequence fixes the per-frame shape: a model's input width is one for all sequences
    if shapes.setdefault(name, frame_shape) != frame_shape:
        raise StoreError(f"{store.url}: {seq}/{name} has frames of shape {frame_shape}, others {shapes[name]}")
    return data
