"""`models/<D>/<method>/MODEL_CARD.md`: what a trained model is, what made it, and how to use it, written by the
train stage beside the checkpoint (a user who receives only the folder can tell what it is).

The card holds: the method and the dataset it was trained on (training split(s), sequences per activity, data
fingerprint), the inputs it reads and the skeleton layouts it can embed after conversion, every param of the
`train` and method sections (as the checkpoint recorded them), the code version (package version and a
SHA-256 of the code's Python files), and where the evaluation is: `metrics/<D>/<method>.json` (headline numbers,
in git) and `reports/runs/<D>/<method>.json` (the full report).

It is a pure function of the train stage's inputs, because the folder is that stage's DVC output and must hash
the same in every clone: no git commit (it would change at every commit), and no metric values (they exist only
once the model has been evaluated, so the card would differ between a clone that evaluated before re-running
train and one that did not). The evaluate stage does not write the card either: a file changed by another stage
would make DVC see `train` as modified.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import yaml

from pipeline.context import METRICS, REPORTS

log = logging.getLogger(__name__)
CARD = "MODEL_CARD.md"
CODE = Path(__file__).resolve().parents[2]  # the checkout whose code trains the model


def write_model_card(models_dir: Path, *, index_path: Path) -> Path:
    """Write `models_dir/MODEL_CARD.md` for the model(s) in `models_dir`; returns its path."""
    from pipeline.sequences import read_index
    from stages.shared.models import model_configs

    configs = model_configs(models_dir)
    first = next(iter(configs.values()))
    text = card_text(configs, read_index(index_path).table, code_digest(CODE))
    path = Path(models_dir) / CARD
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    log.info("%s/%s: model card -> %s", first["dataset"], first["method"], path)
    return path


def card_text(configs: dict[str | None, dict[str, Any]], table, code: str) -> str:
    """The card's markdown (pure: configs as recorded in config.json, the index table, the code digest)."""
    first = next(iter(configs.values()))
    method, dataset, layout = first["method"], first["dataset"], first["layout"]
    lines = [f"# {method} trained on {dataset}", ""]
    lines += _data_section(configs, table)
    lines += _inputs_section(first, layout)
    lines += _usage_section(method, dataset, layout)
    lines += _metrics_section(dataset, method)
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


def _metrics_section(dataset: str, method: str) -> list[str]:
    # The numbers are not copied into the card: it is part of the model folder DVC hashes, and a card that
    # changed once the model was evaluated would make every clone's `make demo` a change of dvc.lock.
    return ["## Evaluation", "", f"Headline metrics: `{METRICS}/{dataset}/{method}.json` (written by `pipeline evaluate --dataset "
            f"{dataset} --method {method}`, committed to git beside dvc.lock: `dvc metrics show`); the full report "
            f"(per activity, baselines, robustness, protocol): `{REPORTS}/runs/{dataset}/{method}.json` (paths relative "
            "to the project that evaluates it).", ""]


def code_digest(root: Path) -> str:
    """SHA-256 over the relative paths and bytes of every *.py file under root's model/, pipeline/ and stages/,
    in sorted order: the same code gives the same digest in any clone (bytecode caches are not read)."""
    digest = hashlib.sha256()
    for path in sorted(p for package in ("model", "pipeline", "stages") for p in (root / package).rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
