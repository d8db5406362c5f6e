"""Registry of alignment methods: name -> the class implementing it (imported only when asked for).

To add a method (VASOT, say):
1. write `model/methods/vasot.py` with a class subclassing `model.method.AlignmentMethod` that defines
   `params_cls` (a frozen dataclass), `inputs(params)`, `build(params, spec)`, `loss(batch, gen, progress)`
   and `embed(batch)` (contract in `model.method`);
2. add its `params.yaml` section, named like the method (`vasot:`);
3. register it here with one line: `"vasot": "model.methods.vasot:Vasot",`.
`pipeline train --method vasot` then trains it, checkpoints it, writes `embeddings_vasot.zarr`, and
`stages.shared.models.load_embedder` serves it to evaluation, with no other change.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the names alone must not import torch: the CLI checks --method before heavy imports
    from model.method import AlignmentMethod

METHODS: dict[str, str] = {
    "masa": "model.methods.masa:Masa",
    "la2ds": "model.methods.la2ds:La2ds",
    "casa": "model.methods.casa:Casa",
    "fusion_early": "model.methods.fusion_early:FusionEarly",
    "fusion_late": "model.methods.fusion_late:FusionLate",
    "vasot": "model.methods.vasot:Vasot",
}


def method_names() -> list[str]:
    return sorted(METHODS)


def get_method(name: str) -> type[AlignmentMethod]:
    """The class registered as `name`; a clear error for unknown names."""
    from model.method import AlignmentMethod

    if name not in METHODS:
        raise KeyError(f"unknown method '{name}'; registered: {method_names()}")
    module_name, class_name = METHODS[name].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, AlignmentMethod)):
        raise TypeError(f"{METHODS[name]} is not an AlignmentMethod subclass")
    return cls
