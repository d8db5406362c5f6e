"""Dataset adapters: each turns one manifest entry into index rows (see `pipeline.sequences`).

An adapter is a module with `index_rows(spec: DatasetSpec) -> (rows, label_names)`; `ADAPTERS` maps the
manifest `kind` to it. Adapters read only metadata and labels; frames and poses are read by the stages.
"""

from __future__ import annotations

import importlib
from typing import Any

from pipeline.manifest import DatasetSpec

ADAPTERS = {
    "penn_action": "pipeline.datasets.penn_action",
    "h2o": "pipeline.datasets.h2o",
    "ikea_asm": "pipeline.datasets.ikea_asm",
    "videos": "pipeline.datasets.videos",
}


class DatasetError(ValueError):
    """Raw data that cannot be indexed; the message names the dataset, the sequence and the file."""


def index_rows(spec: DatasetSpec) -> tuple[list[dict[str, Any]], dict[int, str]]:
    """All index rows of the dataset `spec` and its label names (index -> name)."""
    module = importlib.import_module(ADAPTERS[spec.kind])
    return module.index_rows(spec)
