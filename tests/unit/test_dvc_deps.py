"""dvc.yaml lists, for every stage, the project code that stage runs: the files reached from
`stages/<name>.py` by following imports (the lazy ones inside functions too) through pipeline/, model/
and stages/, with the packages' `__init__.py` files they execute. A change to any of them must make DVC
re-run the stage; a file missing from the deps would leave a stale artifact reported as up to date.

Not required: `pipeline/cli.py` and what only it imports (`pipeline.device`'s flag check, `model.registry`'s
method names for `--method`). The CLI parses flags and dispatches to `stages.<name>.run`; the flags it
passes are in the stage's `cmd`, and everything that computes an output is reached from the stage module.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.unit.test_layout import REPO, module_name, project_imports

DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def dynamic_imports(module: str) -> list[str]:
    """Modules `module` imports by name at run time: the registry's methods (importlib, by string)."""
    if module == "model.registry":
        from model.registry import METHODS

        return [target.split(":")[0] for target in METHODS.values()]
    return []


def module_file(module: str) -> Path | None:
    """The file that defines `module` (a module or a package's __init__.py), None for a namespace folder."""
    base = REPO / Path(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def executed_files(module: str) -> set[Path]:
    """`module`'s file and the __init__.py of every package above it (importing it runs them all)."""
    parts = module.split(".")
    files = {module_file(".".join(parts[:i])) for i in range(1, len(parts) + 1)}
    return {f for f in files if f is not None}


def stage_code(stage_module: str) -> set[str]:
    """Every project file (repository-relative posix path) that importing `stage_module` can run."""
    seen: set[Path] = set()
    todo = list(executed_files(stage_module))
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        imports = [m for m, _lazy, _line in project_imports(path)]
        for imported in imports + dynamic_imports(module_name(path)):
            todo.extend(executed_files(imported) - seen)
    return {p.relative_to(REPO).as_posix() for p in seen}


def stage_of(name: str) -> tuple[str, list[str]]:
    """(stage module, literal deps) of the dvc stage `name` (templated deps like ${item.root} left out)."""
    spec = DVC[name].get("do", DVC[name])
    command = spec["cmd"].split()
    assert command[0] == "pipeline", f"dvc stage {name} does not run `pipeline <command>`"
    deps = [d for d in spec.get("deps", []) if "${" not in d]
    return "stages." + command[1].replace("-", "_"), deps


def covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


@pytest.mark.parametrize("name", sorted(DVC))
def test_every_dvc_stage_lists_the_code_it_runs(name):
    module, deps = stage_of(name)
    missing = sorted(p for p in stage_code(module) if not covered(p, deps))
    assert not missing, f"dvc.yaml stage {name} runs {module} but its deps miss: {missing}"


def test_the_derivation_follows_lazy_imports_package_inits_and_the_method_registry():
    assert "model/methods/la2ds.py" in stage_code("stages.train")
    code = stage_code("stages.keypoints")
    assert "pipeline/skeletons/body_models.py" in code  # imported inside extract_sequence
    assert "pipeline/__init__.py" in code  # its __version__ goes into every store's provenance
    assert "pipeline/cli.py" not in code
