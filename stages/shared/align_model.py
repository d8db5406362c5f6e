"""A trained model as `pipeline align` uses it: embeddings of estimated poses, cached, and the activity it
recognises in a video.

The model folder `models/<D>/<method>` (the train stage's) must hold one multi-activity model that reads 2D
keypoints only: a video gives poses, not DINO features, and a per-activity model would need the activity
before it could embed. The poses are converted to the model's skeleton layout first
(`stages.shared.align_sources.to_layout`). Embeddings of a video file are cached in its workspace
(`data/video/embeddings.zarr`, one group per model and orientation), keyed by the checkpoint's bytes and the
keypoints' fingerprint, so aligning a video with a third one embeds nothing again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from model.embedder import Embedder
from model.inputs.pose_features import mirror_joints
from pipeline.checkpoint import CHECKPOINT
from pipeline.sequences import file_fingerprint
from pipeline.skeletons.layouts import get_layout
from pipeline.store import ArtifactStore, StoreError, fingerprint
from stages.shared.align_sources import WORKSPACE_DATASET, AlignError, Source, to_layout

log = logging.getLogger(__name__)
KEYPOINT_INPUT = ("keypoints", "joints_2d")


@dataclass(frozen=True)
class AlignModel:
    """embedder: the loaded model; layout: the skeleton layout it was trained on; digest: of its checkpoint."""

    path: Path
    embedder: Embedder
    method: str
    dataset: str
    layout: str
    digest: str

    @property
    def multi_activity(self) -> bool:
        return not self.embedder.per_activity

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.path), "method": self.method, "trained_on": self.dataset, "layout": self.layout,
                "checkpoint_digest": self.digest}


def load_align_model(path: Path, device: str) -> AlignModel:
    """Load models/<D>/<method>; AlignError names the folder when it cannot serve align."""
    from pipeline.checkpoint import CheckpointError
    from stages.shared.models import load_embedder

    path = Path(path)
    checkpoint = path / CHECKPOINT
    if not checkpoint.is_file():
        raise AlignError(f"model {path}: no {CHECKPOINT} (a per-activity model, or not trained: align needs one "
                         f"multi-activity model, `train.multi_activity: true`)")
    try:
        embedder = load_embedder(path, device)
        config = json.loads((path / "config.json").read_text())
    except (CheckpointError, OSError, KeyError, ValueError) as err:
        raise AlignError(f"model {path}: cannot load it: {err}") from err
    unusable = [f"{a}/{n}" for a, n in embedder.inputs if (a, n) != KEYPOINT_INPUT]
    if unusable:
        raise AlignError(f"model {path} reads {', '.join(unusable)}; align gives a video's 2D poses only "
                         f"(keypoints/joints_2d): use a skeleton model")
    layout = config.get("spec", {}).get("layout")
    if not layout:
        raise AlignError(f"model {path}: its config.json records no skeleton layout")
    # the folder is models/<D>/<method>: its parent names the training dataset
    return AlignModel(path, embedder, str(config.get("method", path.name)), path.parent.name, str(layout),
                      file_fingerprint(checkpoint))


def embed_source(model: AlignModel, source: Source, *, mirrored: bool = False) -> np.ndarray:
    """(T, D) embeddings of the source's poses (of their mirror image), from the workspace cache when current."""
    key = fingerprint(model.digest, source.keypoints_fingerprint, model.layout, mirrored)
    # prefixes keep the group name short; a prefix collision cannot serve wrong vectors, as is_current compares the full
    # key
    seq = f"{source.content_id[:16]}-{model.digest[:12]}{'-mirror' if mirrored else ''}"
    store = _cache(source)
    if store is not None and store.is_current(seq, key):
        return store.read(seq, "embedding")
    joints = to_layout(source, model.layout, purpose=f"model {model.path}")
    if mirrored:
        joints = mirror_joints(joints, get_layout(model.layout), source.width)
    try:
        emb = model.embedder.embed({"joints_2d": joints.astype(np.float32)})
    except (KeyError, ValueError, RuntimeError) as err:
        raise AlignError(f"model {model.path} cannot embed video {source.label} ({source.name}): {err}") from err
    if store is not None:
        store.write_sequence(seq, {"embedding": (emb, ("time", "feature"))}, fingerprint=key,
                             attrs={"model": str(model.path), "mirrored": mirrored, "n_frames": len(emb)})
    return emb


def _cache(source: Source) -> ArtifactStore | None:
    if source.workspace is None:
        return None
    return ArtifactStore(source.workspace / "data" / WORKSPACE_DATASET / "embeddings.zarr", mode="a")


def predict_activity(model: AlignModel, store_root: str, emb_a: np.ndarray, emb_b: np.ndarray) -> dict[str, Any]:
    """The training activity nearest to each video by clip vector (the time-mean of the embeddings, cosine),
    from the train stage's embeddings `<store_root>/<D>/embeddings_<method>.zarr`; a warning when they differ."""
    url = f"{store_root.rstrip('/')}/{model.dataset}/embeddings_{model.path.name}.zarr"
    try:
        store = ArtifactStore(url, mode="r")
        refs = [(store.attrs(s).get("activity"), store.read(s, "embedding").mean(0)) for s in store.sequences()]
    except StoreError as err:
        return {"text": f"No activity predicted: the model's training embeddings are not at {url} ({err})."}
    refs = [(act, vec) for act, vec in refs if act is not None]
    activities = sorted({act for act, _ in refs})
    if len(activities) < 2:
        return {"text": f"No activity predicted: the training embeddings at {url} hold {len(activities)} activity."}
    bank = _unit(np.stack([vec for _, vec in refs]))
    labels = [act for act, _ in refs]
    found = {}
    for key, emb in (("a", emb_a), ("b", emb_b)):
        sims = bank @ _unit(emb.mean(0, keepdims=True))[0]
        k = int(np.argmax(sims))
        found[key] = {"activity": labels[k], "cosine": round(float(sims[k]), 4)}
    out = {**found, "from": url, "text": f"Activity: A looks like {found['a']['activity']}, B like {found['b']['activity']} "
           f"(nearest of {len(refs)} training videos of {len(activities)} activities)."}
    if found["a"]["activity"] != found["b"]["activity"]:
        out["warning"] = (f"A looks like {found['a']['activity']} but B like {found['b']['activity']}: the two videos "
                          "may not show the same activity, and their alignment may mean little.")
        log.warning(out["warning"])
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    # a zero vector stays zero instead of NaN
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
