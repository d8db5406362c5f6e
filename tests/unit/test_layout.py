"""The layout's import rules (README "Repository layout"): every import of the project's own code, including
the lazy ones inside functions, runs the allowed way. A new import that runs the wrong way fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("pipeline", "model", "stages")
# model's own layers: a subpackage on the left may not import one on the right.
MODEL_FORBIDDEN = {
    "model.blocks": ("model.methods", "model.losses", "model.inputs", "model.metrics", "model.trainer",
                     "model.registry", "model.embedder"),
    "model.inputs": ("model.methods", "model.losses", "model.metrics", "model.trainer", "model.registry",
                     "model.embedder"),
    "model.losses": ("model.methods", "model.metrics", "model.trainer", "model.registry", "model.embedder"),
    "model.metrics": ("model.methods", "model.losses", "model.blocks", "model.trainer", "model.registry"),
    "model.methods": ("model.metrics", "model.trainer", "model.registry", "model.embedder"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports(path: Path) -> list[tuple[str, bool, int]]:
    """(imported module, lazy: inside a function, line) for every import of pipeline/model/stages in `path`."""
    tree = ast.parse(path.read_text(), str(path))
    found = []

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                found.extend((a.name, lazy, child.lineno) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                # `from model.blocks import ot` imports model.blocks.ot: name the submodule when it is one
                for alias in child.names:
                    sub = f"{child.module}.{alias.name}"
                    is_module = (REPO / Path(*sub.split("."))).with_suffix(".py").is_file() or (
                        REPO / Path(*sub.split("."))).is_dir()
                    found.append((sub if is_module else child.module, lazy, child.lineno))
            visit(child, inner)

    visit(tree, False)
    return [(m, lazy, line) for m, lazy, line in found if m.split(".")[0] in PACKAGES]


def violation(importer: str, imported: str, lazy: bool) -> str | None:
    """Why `importer` may not import `imported` (None when allowed)."""
    top, target = importer.split(".")[0], imported.split(".")[0]
    if top == "model" and target == "stages":
        return "model never imports stages"
    if top == "pipeline" and target in ("model", "stages"):
        if importer == "pipeline.cli" and lazy and (target == "stages" or imported == "model.registry"):
            return None  # the CLI's lazy dispatch (and the registry's method names for --method)
        return "pipeline never imports model or stages (but the CLI's lazy dispatch)"
    if top == "stages" and target == "stages" and importer != "stages":
        own = importer.split(".")[1]
        other = imported.split(".")[1] if "." in imported else None
        if other not in (None, "shared") and other != own:
            return "a stage module does not import another stage (shared code lives in stages.shared)"
        if own == "shared" and other != "shared":
            return "stages.shared does not import stage modules"
    for layer, forbidden in MODEL_FORBIDDEN.items():
        if importer == layer or importer.startswith(layer + "."):
            if any(imported == f or imported.startswith(f + ".") for f in forbidden):
                return f"{layer} does not import {imported} (model's layers: blocks < inputs < losses < methods)"
    return None


def test_every_project_import_runs_the_allowed_way():
    problems = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            importer = module_name(path)
            for imported, lazy, line in project_imports(path):
                why = violation(importer, imported, lazy)
                if why:
                    problems.append(f"{path.relative_to(REPO)}:{line}: imports {imported}: {why}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("importer, imported, lazy", [
    ("model.trainer", "stages.train", True),
    ("pipeline.dino.model", "model.batch", False),
    ("pipeline.cli", "stages.train", False),  # the dispatch must stay lazy, or `pipeline --help` pays for it
    ("stages.evaluate", "stages.train", True),
    ("model.blocks.ot", "model.methods.vasot", False),
    ("model.methods.masa", "model.metrics.alignment", False),
])
def test_the_rules_catch_imports_that_run_the_wrong_way(importer, imported, lazy):
    assert violation(importer, imported, lazy) is not None


@pytest.mark.parametrize("importer, imported, lazy", [
    ("stages.train", "model.trainer", False),
    ("pipeline.cli", "stages.train", True),
    ("pipeline.cli", "model.registry", True),
    ("model.methods.masa", "pipeline.skeletons.layouts", False),
    ("stages.evaluate", "stages.shared.models", True),
])
def test_the_rules_allow_the_designed_directions(importer, imported, lazy):
    assert violation(importer, imported, lazy) is None
