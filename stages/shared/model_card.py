"""`models/<D>/<method>/MODEL_CARD.md`: what a trained model is, what made it, and how to use it, written by the
train stage beside the checkpoint (a user who receives only the folder can tell what it is).

The card holds: the method and the dataset it was trained on (training split(s), sequences per activity, data
fingerprint), the inputs it reads and the skeleton layouts it can embed after conversion, every param of the
`train` and method sections (as the checkpoint recorded them), the code version (package version and a
SHA-256 of the code's Python files: a git commit would change the card, and so the DVC hash of the model
folder, at every commit, and a clean clone's `make demo` would leave dvc.lock modified), and the evaluation: a link to `metrics/<D>/<method>.json`, with its headline numbers when that file
is newer than the checkpoint (i.e. measured on this model; the evaluate stage runs after train, so re-running
`pipeline train` on a finished model rewrites the card with them). The evaluate stage does not write the card
itself: the folder is the train stage's DVC output, and a file changed by another stage would make DVC see
`train` as modified.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)
CARD = "MODEL_CARD.md"
CODE = Path(__file__).resolve().parents[2]  # the checkout whose code trains the model


def write_model_card(models_dir: Path, *, index_path: Path, metrics_path: Path) -> Path:
    """Write `models_dir/MODEL_CARD.md` for the model(s) in `models_dir`; returns its path."""
    from pipeline.checkpoint import CHECKPOINT
    from pipeline.sequences import read_index
    from stages.shared.models import model_configs, model_folders

    configs = model_configs(models_dir)
    first = next(iter(configs.values()))
    checkpoints = [folder / CHECKPOINT for folder in model_folders(models_dir).values()]
    metrics = headline_metrics(metrics_path) if _newer(metrics_path, checkpoints) else None
    text = card_text(configs, read_index(index_path).table, metrics_path, metrics, code_digest(CODE))
    path = Path(models_dir) / CARD
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    log.info("%s/%s: model card -> %s", first["dataset"], first["method"], path)
    return path


def card_text(configs: dict[str | None, dict[str, Any]], table, metrics_path: Path, metrics: dict[str, float] | None,
              code: str) -> str:
    """The card's markdown (pure: configs as recorded in config.json, the index table, metrics or None)."""
    first = next(iter(configs.values()))
    method, dataset, layout = first["method"], first["dataset"], first["layout"]
    lines = [f"# {method} trained on {dataset}", ""]
    lines += _data_section(configs, table)
    lines += _inputs_section(first, layout)
    lines += _usage_section(method, dataset, layout)
    lines += _metrics_section(metrics_path, metrics, dataset, method)
    lines += ["## Params", "", "As recorded in the checkpoint (`config.json`): the `train` section and the "
              f"`{method}` section of params.yaml.", "", "```yaml",
              yaml.safe_dump({"train": first["train"], method: first["params"]}, sort_keys=False).rstrip(), "```", ""]
    lines += ["## Code", "", f"- package version: {first.get('code_version', 'unknown')}",
              f"- code digest (SHA-256 of model/, pipeline/ and stages/ *.py): {code}", ""]
    return "\n".join(lines)


def _data_section(configs, table) -> list[str]:
    first = next(iter(configs.values()))
    splits = list(first["train"]["train_splits"])
    rows = table[table["split"].isin(splits)]
    per_activity = rows.groupby("activity").size().to_dict()
    scope = ("one model for all activities" if None in configs
             else f"one model per activity ({', '.join(sorted(str(k) for k in configs))})")
    lines = ["## Data", "", f"- dataset: `{first['dataset']}`, split(s) {', '.join(splits)}: {len(rows)} sequences, "
             f"{int(rows['n_frames'].sum())} frames at {float(rows['fps'].iloc[0]) if len(rows) else 0:g} fps; {scope}",
             f"- data fingerprint: `{first['data']}`" if None in configs
             else "- data fingerprints: " + ", ".join(f"{k} `{c['data']}`" for k, c in sorted(configs.items())),
             "", "| activity | training sequences |", "|---|---|"]
    lines += [f"| {activity} | {n} |" for activity, n in sorted(per_activity.items())]
    return lines + [""]


def _inputs_section(config: dict[str, Any], layout: str | None) -> list[str]:
    from pipeline.skeletons.convert import can_convert
    from pipeline.skeletons.layouts import LAYOUTS

    arrays = ", ".join(f"`{name}` {tuple(shape)}" for name, shape in config["spec"]["arrays"].items())
    lines = ["## Inputs", "", f"- per-frame arrays: {arrays}"]
    if layout:
        others = [name for name in sorted(LAYOUTS) if name != layout and can_convert(name, layout)]
        lines += [f"- skeleton layout: `{layout}`; keypoints in {', '.join(f'`{o}`' for o in others) or 'no other layout'}"
                  " are converted to it (`pipeline.skeletons.convert`)"]
    return lines + [""]


def _usage_section(method: str, dataset: str, layout: str | None) -> list[str]:
    folder = f"models/{dataset}/{method}"
    lines = ["## Use it", "", "```", f"pipeline embed --dataset <D> --model {folder}",
             f"pipeline align A.mp4 B.mp4 --out <DIR> --model {folder}", "```", ""]
    if layout:
        lines += ["A folder of videos without pose files gets poses from `pipeline estimate-pose` (MediaPipe, "
                  f"blazepose33), converted to {layout} by `pipeline keypoints` (see docs/pose-estimation.md).", ""]
    return lines


def _metrics_section(metrics_path: Path, metrics: dict[str, float] | None, dataset: str, method: str) -> list[str]:
    lines = ["## Evaluation", "", f"Full report: `{metrics_path}` (`pipeline evaluate --dataset {dataset} "
             f"--method {method}`)."]
    if metrics is None:
        return lines + ["Not evaluated since this checkpoint was written.", ""]
    lines += ["", "| metric | value |", "|---|---|"]
    lines += [f"| {name} | {value:.3f} |" for name, value in metrics.items()]
    return lines + [""]


def headline_metrics(path: Path) -> dict[str, float] | None:
    """{metric: overall value} of the learned embeddings from an evaluate report (each metric's `overall`),
    or the numbers of a flat metrics file; None when the file is missing or unreadable."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        log.warning("%s: no headline metrics for the model card (%s)", path, err)
        return None
    learned = data.get("features", {}).get("learned") if isinstance(data.get("features"), dict) else None
    source = learned if isinstance(learned, dict) else data
    out = {}
    for name, value in source.items():
        if isinstance(value, dict):
            value = value.get("overall")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[name] = float(value)
    return out or None


def _newer(metrics_path: Path, checkpoints: list[Path]) -> bool:
    metrics_path = Path(metrics_path)
    if not metrics_path.is_file():
        return False
    return all(metrics_path.stat().st_mtime > c.stat().st_mtime for c in checkpoints if c.is_file())


def code_digest(root: Path) -> str:
    """SHA-256 over the relative paths and bytes of every *.py file under root's model/, pipeline/ and stages/,
    in sorted order: the same code gives the same digest in any clone (bytecode caches are not read)."""
    digest = hashlib.sha256()
    for path in sorted(p for package in ("model", "pipeline", "stages") for p in (root / package).rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
