"""A dataset's arrays for a model: every sequence of the index, read from the artifact stores a method declares
(train and embed read through this, so a model sees the same arrays in both)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from model.method import InputSpec
from pipeline.context import StageContext
from pipeline.sequences import read_index
from pipeline.store import ArtifactStore, StoreError, fingerprint

log = logging.getLogger(__name__)

MAKES = {
    "keypoints": "pipeline keypoints --dataset {d}",
    "dino": "pipeline extract-dino --dataset {d}",
    "heatmaps": "pipeline heatmaps --dataset {d}",
}


@dataclass
class Inputs:
    """Every sequence's arrays read from the stores: ids (index order), arrays[i] = {name: (T, ...)}."""

    ids: list[str]
    activities: list[str]
    splits: list[str]
    arrays: list[dict[str, np.ndarray]]
    spec: InputSpec
    source_fingerprints: list[str]


def load_inputs(ctx: StageContext, needed: tuple[tuple[str, str], ...]) -> Inputs:
    """Read the arrays `needed` for every sequence of the index; loud errors name the store and the fix."""
    index = read_index(ctx.index_path)
    ids = index.ids
    n_frames = dict(zip(ids, index.table["n_frames"]))
    arrays: list[dict[str, np.ndarray]] = [{} for _ in ids]
    shapes: dict[str, tuple[int, ...]] = {}
    layout, fps_parts = None, [[] for _ in ids]
    for artifact in dict.fromkeys(a for a, _ in needed):
        store = _open_store(ctx, artifact)
        present = set(store.sequences())
        missing = [s for s in ids if s not in present]
        if missing:
            raise StoreError(
                f"{store.url} lacks {len(missing)} sequence(s) of the index (e.g. {missing[:5]}); "
                f"run `{MAKES.get(artifact, 'the stage that writes it').format(d=ctx.name)}`"
            )
        if artifact == "keypoints":
            layout = _layout_of(store, ids[0], ctx)
        for i, seq in enumerate(ids):
            fps_parts[i].append(store.fingerprint_of(seq))
            for art, name in needed:
                if art == artifact:
                    arrays[i][name] = _read(store, seq, name, shapes, int(n_frames[seq]))
    spec = InputSpec(dict(shapes), layout)
    table = index.table
    return Inputs(ids, list(table["activity"]), list(table["split"]), arrays, spec,
                  [fingerprint(*parts) for parts in fps_parts])


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


def _read(store: ArtifactStore, seq: str, name: str, shapes: dict, n_frames: int) -> np.ndarray:
    data = store.read(seq, name)
    if data.shape[0] != n_frames:
        raise StoreError(f"{store.url}: {seq}/{name} has {data.shape[0]} frames, the index says {n_frames}")
    frame_shape = tuple(int(s) for s in data.shape[1:])
    if shapes.setdefault(name, frame_shape) != frame_shape:
        raise StoreError(f"{store.url}: {seq}/{name} has frames of shape {frame_shape}, others {shapes[name]}")
    return data
