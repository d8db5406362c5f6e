"""The interface every alignment method implements (see `model.registry` for how methods are found).

A method is an `nn.Module` subclass of `AlignmentMethod` that declares:
- `params_cls`: the frozen dataclass of its `params.yaml` section (section name = registry name);
- `inputs(params)`: the (artifact, array) pairs it reads, e.g. (("keypoints", "joints_2d"),);
- `build(params, spec)`: a new model sized from the `InputSpec` (per-frame shapes of those arrays and the
  skeleton layout, read from the artifacts by the train stage: never hard-coded), keeping the params as
  `self.params` (stored embeddings are keyed by weights and params: `stages.shared.models.output_fingerprint`);
- `loss(batch, gen, progress)`: the training loss on a padded `Batch` (augmentation happens inside, on the
  batch's device, with random draws from the CPU generator `gen`), plus scalars to log;
- `embed(batch)`: (B, T, D) per-frame embeddings without augmentation, zero on padding;
- optionally `prepare(sequences)`: called by `Trainer.run` once, before its first step (also on resume), with
  every training sequence ({array name: (T, ...)}, in the order `Batch.index` refers to), e.g. to precompute
  label-free relations between them;
- optionally `segment(batch)`: (B, T) int64 per-frame segment labels, with `segments = True` (the train
  stage then also writes `{seq}/segment` into `embeddings_<method>.zarr`).
Input normalisation (e.g. keypoints -> centred, scaled coordinates) is part of the method, so `embed` takes
the arrays exactly as the artifact stores hold them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from model.batch import Batch


@dataclass(frozen=True)
class InputSpec:
    """arrays: array name -> per-frame shape (e.g. joints_2d: (13, 3), feature: (1536,)); layout: skeleton
    layout name of the keypoints (None without keypoints)."""

    arrays: dict[str, tuple[int, ...]]
    layout: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"arrays": {k: list(v) for k, v in self.arrays.items()}, "layout": self.layout}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputSpec:
        return cls({k: tuple(v) for k, v in data["arrays"].items()}, data.get("layout"))

    def shape(self, name: str, method: str) -> tuple[int, ...]:
        if name not in self.arrays:
            raise KeyError(f"{method} needs input array '{name}', the input spec has {sorted(self.arrays)}")
        return self.arrays[name]


@dataclass(frozen=True)
class Progress:
    """Where training stands when a loss is computed (methods with stages, e.g. late fusion, read it)."""

    epoch: int
    step: int
    epochs: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


class AlignmentMethod(nn.Module):
    """Base class of the registered methods; see the module docstring for the contract."""

    params_cls: ClassVar[type]
    segments: ClassVar[bool] = False
    # params that shape only `embed`'s output, never training (e.g. `clip_scale`): a change of them keeps the
    # trained weights (the train stage re-exports the embeddings instead of training again)
    export_params: ClassVar[frozenset[str]] = frozenset()
    params: Any  # the params_cls instance the model was built with

    @classmethod
    def inputs(cls, params: Any) -> tuple[tuple[str, str], ...]:
        raise NotImplementedError(f"{cls.__name__} does not declare its inputs")

    @classmethod
    def build(cls, params: Any, spec: InputSpec) -> AlignmentMethod:
        raise NotImplementedError(f"{cls.__name__} does not implement build")

    def prepare(self, sequences: Sequence[Mapping[str, np.ndarray]]) -> None:
        """Precompute from all training sequences before training (nothing by default)."""

    def loss(self, batch: Batch, gen: torch.Generator, progress: Progress) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError(f"{type(self).__name__} does not implement loss")

    def embed(self, batch: Batch) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not implement embed")

    def segment(self, batch: Batch) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not segment")
