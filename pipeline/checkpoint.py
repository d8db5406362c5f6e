"""Model checkpoints on disk: one torch file per trained model, written atomically, carrying its config.

A checkpoint is a dict {"config": {...JSON-able...}, "state": {...tensors...}, "complete": bool}. `config`
holds everything needed to rebuild and judge the model without params.yaml (method, resolved params, input
spec, skeleton layout, data fingerprint), as nanoGPT's checkpoints carry `model_args`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"


class CheckpointError(RuntimeError):
    """A checkpoint is missing or unreadable."""


def save_checkpoint(folder: Path, config: dict[str, Any], state: dict[str, Any], *, complete: bool) -> Path:
    """Write `folder/checkpoint.pt` (temp file, then rename: a crash never leaves half a checkpoint) and a
    readable `folder/config.json` beside it."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CHECKPOINT
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"config": config, "state": state, "complete": complete}, tmp)
    tmp.replace(path)
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return path


def load_checkpoint(folder: Path, map_location: str = "cpu") -> dict[str, Any]:
    """The checkpoint dict of `folder/checkpoint.pt`; CheckpointError names the file when it cannot be read."""
    import torch

    path = Path(folder) / CHECKPOINT
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path} (run `pipeline train` for this dataset and method first)")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises RuntimeError/pickle errors/EOFError on damaged files
        raise CheckpointError(f"cannot read checkpoint {path}: {err}") from err
