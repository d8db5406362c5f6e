"""Trained models on disk -> an `Embedder` (train, evaluate and embed serve models through this)."""

from __future__ import annotations

import json
from pathlib import Path

from model.embedder import Embedder
from model.method import InputSpec
from model.registry import get_method
from pipeline.checkpoint import CHECKPOINT, load_checkpoint
from pipeline.device import resolve_device
from pipeline.params import ParamsError, from_dict, to_dict


def model_folders(models_dir: Path) -> dict[str | None, Path]:
    """{None: models_dir} for one multi-activity model, else {activity: sub-folder} of per-activity models;
    CheckpointError naming the folder when it holds no checkpoint."""
    models_dir = Path(models_dir)
    if (models_dir / CHECKPOINT).is_file():
        return {None: models_dir}
    subs = sorted(p for p in models_dir.iterdir() if (p / CHECKPOINT).is_file()) if models_dir.is_dir() else []
    if not subs:
        load_checkpoint(models_dir)  # raises the clear "no checkpoint" error
    return {json.loads((p / "config.json").read_text())["activity"]: p for p in subs}


def model_configs(models_dir: Path) -> dict[str | None, dict]:
    """Each model's recorded config (`config.json`: method, dataset, params, train, spec, layout, data, ...)."""
    return {key: json.loads((folder / "config.json").read_text()) for key, folder in model_folders(models_dir).items()}


def output_fingerprint(embedder: Embedder) -> str:
    """Digest of every model's weights and params (with its activity key): what identifies a trained model's
    output. The params count, not only the weights: some shape the output and not the training
    (`masa.clip_scale`, `la2ds.clip_scale` weight the exported clip part), so a change of them must make stored
    embeddings stale although retraining gives the same weights."""
    import hashlib

    digests = {}
    for key, model in sorted(embedder.models.items(), key=lambda item: str(item[0])):
        h = hashlib.sha256()
        for name, tensor in sorted(model.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        h.update(json.dumps(to_dict(model.params), sort_keys=True).encode())
        digests[str(key)] = h.hexdigest()[:32]
    return hashlib.sha256(json.dumps(digests, sort_keys=True).encode()).hexdigest()[:32]


def load_embedder(models_dir: Path, device: str = "cpu") -> Embedder:
    """The trained model(s) in `models_dir` (models/<D>/<method>) as an Embedder (see model.embedder)."""
    folders = model_folders(models_dir)
    dev = resolve_device(device)
    models, inputs = {}, None
    for key, folder in folders.items():
        saved = load_checkpoint(folder)
        config = saved["config"]
        cls = get_method(config["method"])
        try:
            params = from_dict(cls.params_cls, config["params"], where=f"{folder / CHECKPOINT}: params")
        except ParamsError as err:
            # the params a checkpoint records are its architecture: a key this code lacks, or lacks a value for,
            # cannot be guessed (a later default need not be what the model was trained with)
            raise ParamsError(f"{err}. The model was trained by a version of this code with other "
                              f"{config['method']} params: retrain it (`dvc repro` or `pipeline train --dataset "
                              f"{config['dataset']} --method {config['method']}`)") from err
        model = cls.build(params, InputSpec.from_dict(config["spec"]))
        model.load_state_dict(saved["state"]["model"])
        models[key] = model
        inputs = cls.inputs(params)
    return Embedder(models, inputs, dev)
