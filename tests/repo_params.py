"""The repository's own params.yaml, loaded strictly: tests start from the settings that ship, not from code
defaults (there are none), and change only what they are about."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

from pipeline.params import load_section

T = TypeVar("T")
PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def repo_params(section: str, cls: type[T], **changes: Any) -> T:
    """params.yaml's `section` (a dotted path reaches nested blocks: "masa.augment") as `cls`, with `changes`."""
    return dataclasses.replace(load_section(section, cls, PARAMS), **changes)
