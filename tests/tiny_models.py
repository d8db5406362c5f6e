"""Tiny configurations of every registered method, so model tests run in seconds on a CPU."""

from __future__ import annotations

from typing import Any

from model.registry import get_method
from tests.repo_params import repo_params

TINY: dict[str, dict[str, Any]] = {
    "masa": dict(mlp_hidden=16, d_model=16, heads=2, proj_hidden=16, proj_dim=16),
    "fusion_early": dict(mlp_hidden=16, d_model=16, heads=2, proj_hidden=16, proj_dim=16),
    "casa": dict(mlp_hidden=16, d_model=16, heads=2, layers=1, proj_hidden=16, proj_dim=16),
    "la2ds": dict(d_model=16, heads=2, proj_hidden=16, proj_dim=16, max_len=64),
    "fusion_late": dict(d_model=16, heads=2, rgb_hidden=16, proj_hidden=16, proj_dim=16, max_len=64, stage1_epochs=1),
    "vasot": dict(mlp_hidden=16, d_model=16, heads=2, layers=1, proj_hidden=16, proj_dim=16, n_prototypes=3),
}


def tiny_params(name: str, **changes: Any):
    """The method's params as params.yaml ships them, with small sizes (and `changes`) applied."""
    return repo_params(name, get_method(name).params_cls, **{**TINY[name], **changes})
