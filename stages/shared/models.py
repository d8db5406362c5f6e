"""Trained models on disk -> an `Embedder` (train, evaluate and embed serve models through this)."""

from __future__ import annotations

import json
from pathlib import Path

from model.embedder import Embedder
from model.method import InputSpec
from model.registry import get_method
from pipeline.checkpoint import CHECKPOINT, load_checkpoint
from pipeline.device import resolve_device
from pipeline.params import from_dict


def load_embedder(models_dir: Path, device: str = "cpu") -> Embedder:
    """The trained model(s) in `models_dir` (models/<D>/<method>) as an Embedder (see model.embedder)."""
    models_dir = Path(models_dir)
    if (models_dir / CHECKPOINT).is_file():
        folders: dict[str | None, Path] = {None: models_dir}
    else:
        subs = sorted(p for p in models_dir.iterdir() if (p / CHECKPOINT).is_file()) if models_dir.is_dir() else []
        if not subs:
            load_checkpoint(models_dir)  # raises the clear "no checkpoint" error
        folders = {json.loads((p / "config.json").read_text())["activity"]: p for p in subs}
    dev = resolve_device(device)
    models, inputs = {}, None
    for key, folder in folders.items():
        saved = load_checkpoint(folder)
        config = saved["config"]
        cls = get_method(config["method"])
        params = from_dict(cls.params_cls, config["params"], where=f"{folder / CHECKPOINT}: params")
        model = cls.build(params, InputSpec.from_dict(config["spec"]))
        model.load_state_dict(saved["state"]["model"])
        models[key] = model
        inputs = cls.inputs(params)
    return Embedder(models, inputs, dev)
