"""Names match across the four places a stage lives: `stages/<name>.py`, the `pipeline <name>` command (dashes
for underscores), the dvc.yaml stage and the params.yaml section. Where one is missing by design, the reason
is written here (and in the README's command table)."""

from __future__ import annotations

from pathlib import Path

import yaml

from pipeline.cli import main

REPO = Path(__file__).resolve().parents[2]

# Stages without a dvc.yaml stage, and why.
NOT_IN_DVC = {
    "export": "an on-demand format copy (HDF5) of a store for other tools; nothing downstream reads it",
    "embed": "on demand: any dataset with any trained model, chosen per call (as evaluate --trained-on)",
    "align": "on demand: any two video files a user names, cached by content in .cache/align, not a dataset",
}
# Stages without a params.yaml section, and why.
NO_PARAMS = {
    "report": "formats the metrics files; nothing in it changes a number",
    "export": "copies a store as it is; nothing to set",
    "embed": "the trained model's recorded config (its checkpoint) sets how; the command chooses what",
}
# params.yaml sections that are not a stage's: the methods' own sections (read by train), and DVC's DAG.
NOT_STAGES = {"dag"}


def stage_modules() -> list[str]:
    return sorted(p.stem for p in (REPO / "stages").glob("*.py") if p.stem != "__init__")


def test_every_stage_module_has_its_command_dvc_stage_and_params_section():
    from model.registry import method_names

    commands = set(main.commands)
    dvc_stages = set(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])
    sections = set(yaml.safe_load((REPO / "params.yaml").read_text()))
    problems = []
    for name in stage_modules():
        if name.replace("_", "-") not in commands:
            problems.append(f"stages/{name}.py has no `pipeline {name.replace('_', '-')}` command")
        if name not in dvc_stages and name not in NOT_IN_DVC:
            problems.append(f"stages/{name}.py has no dvc.yaml stage '{name}' (nor a reason in NOT_IN_DVC)")
        if name not in sections and name not in NO_PARAMS:
            problems.append(f"stages/{name}.py has no params.yaml section '{name}' (nor a reason in NO_PARAMS)")
    for command in commands:
        if command.replace("-", "_") not in stage_modules():
            problems.append(f"`pipeline {command}` has no stages/{command.replace('-', '_')}.py")
    for stage in dvc_stages:
        if stage not in stage_modules():
            problems.append(f"dvc.yaml stage '{stage}' has no stages/{stage}.py")
    for section in sections - set(stage_modules()) - set(method_names()) - NOT_STAGES:
        problems.append(f"params.yaml section '{section}' belongs to no stage and no method")
    assert not problems, "\n".join(problems)


def test_every_registered_method_has_its_params_section():
    from model.registry import method_names

    sections = set(yaml.safe_load((REPO / "params.yaml").read_text()))
    assert set(method_names()) <= sections
