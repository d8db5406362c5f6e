"""Embedding one sequence with a trained model: the interface evaluation codes against.

`Embedder.inputs` names the (artifact, array) pairs the model reads, e.g. (("keypoints", "joints_2d"),) or
(("dino", "feature"), ("keypoints", "joints_2d")); `Embedder.embed(arrays)` takes one sequence's arrays keyed
by array name, exactly as the artifact stores hold them ({"joints_2d": (T, K, 3)}), and returns (T, D)
float32 embeddings computed without augmentation. Heatmap models (LA2DS, late fusion) read the cached maps
({"heatmap": (T, C, S, S)} in [0, 1], as `stages.shared.inputs` reads heatmaps.zarr), so perturbing their
inputs means re-rendering the maps. Models trained per activity need `activity`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from model.batch import collate
from model.host_memory import keep_freed_memory
from model.method import AlignmentMethod


class Embedder:
    """models: {None: model} for a multi-activity model, or {activity: model} for per-activity models."""

    def __init__(
        self,
        models: Mapping[str | None, AlignmentMethod],
        inputs: tuple[tuple[str, str], ...],
        device: torch.device | str = "cpu",
    ):
        if not models:
            raise ValueError("an Embedder needs at least one model")
        self.models = {k: m.to(device).eval() for k, m in models.items()}
        self.inputs = inputs
        self.device = torch.device(device)
        keep_freed_memory()  # each batch's large tensors reuse the last batch's memory (model/host_memory.py)

    @property
    def per_activity(self) -> bool:
        return None not in self.models

    def embed(self, arrays: Mapping[str, np.ndarray], activity: str | None = None) -> np.ndarray:
        """One sequence {array name: (T, ...)} -> (T, D) float32 embeddings."""
        return self.embed_many([arrays], [activity])[0]

    def embed_many(
        self, items: list[Mapping[str, np.ndarray]], activities: list[str | None] | None = None
    ) -> list[np.ndarray]:
        """Several sequences (padded into one batch per model) -> list of (T_i, D) float32 arrays."""
        return [e.astype(np.float32) for e in self._map("embed", items, activities)]

    def segment_many(
        self, items: list[Mapping[str, np.ndarray]], activities: list[str | None] | None = None
    ) -> list[np.ndarray]:
        """Per-frame segment labels (T_i,) int64 of several sequences, for methods that segment
        (`AlignmentMethod.segments`, e.g. VASOT's prototype assignment)."""
        return [s.astype(np.int64) for s in self._map("segment", items, activities)]

    @property
    def segments(self) -> bool:
        return all(m.segments for m in self.models.values())

    @torch.no_grad()
    def _map(self, fn: str, items: list[Mapping[str, np.ndarray]], activities: list[str | None] | None) -> list[np.ndarray]:
        """Run `model.<fn>(batch)` ((B, T, ...) per frame) over the sequences, routed to their models."""
        activities = activities or [None] * len(items)
        names = [array for _, array in self.inputs]
        out: list[np.ndarray | None] = [None] * len(items)
        for key in dict.fromkeys(self._model_key(a) for a in activities):
            rows = [i for i, a in enumerate(activities) if self._model_key(a) == key]
            selected = []
            for i in rows:
                missing = [n for n in names if n not in items[i]]
                if missing:
                    raise KeyError(f"embedding needs arrays {names}; missing {missing}")
                selected.append({n: items[i][n] for n in names})
            batch = collate(selected).to(self.device)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
                result = getattr(self.models[key], fn)(batch)
            result = (result.float() if result.is_floating_point() else result).cpu().numpy()
            for j, i in enumerate(rows):
                out[i] = result[j, : int(batch.mask[j].sum())]
        return out  # type: ignore[return-value]

    def _model_key(self, activity: str | None) -> str | None:
        if not self.per_activity:
            return None
        if activity not in self.models:
            raise KeyError(f"models were trained per activity ({sorted(self.models)}); got activity {activity!r}")
        return activity
