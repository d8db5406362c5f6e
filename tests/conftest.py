"""Shared fixtures: the real annotation data (skipped when absent) and a tiny generated project."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
# numba's cache with the project's other caches, not in __pycache__ beside the code (before anything imports numba)
os.environ.setdefault("NUMBA_CACHE_DIR", str(REPO / ".cache" / "numba"))
TINY_SAMPLE = {"train_per_activity": 3, "val_per_activity": 2, "min_seconds": 2.0, "max_seconds": 3.0,
               "dino_hidden": 32, "dino_layers": 2}


def shared_data_dir() -> Path:
    return Path(os.environ.get("SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real annotation files of ../shared/data; tests needing them skip when the folder is absent."""
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real annotation data not found at {path} (set SHARED_DATA to run realdata tests)")
    return path


def make_project(dest: Path, *, sample: dict | None = None) -> Path:
    """A working directory with the repository's manifest and params (make_sample shrunk by `sample`)."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "data_manifest.yaml", dest / "data_manifest.yaml")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["make_sample"].update(sample or TINY_SAMPLE)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return dest


@pytest.fixture(scope="session")
def sample_project(tmp_path_factory) -> Path:
    """A tiny generated sample dataset (4 activities x (3 train + 2 val)), indexed; treat it as read-only
    (copy it with `copy_project` before running stages that write)."""
    from click.testing import CliRunner

    from pipeline.cli import main

    root = make_project(tmp_path_factory.mktemp("sample_project"))
    cwd = os.getcwd()
    os.chdir(root)
    try:
        for args in (["make-sample"], ["index", "--dataset", "sample"]):
            result = CliRunner().invoke(main, ["-q", *args], catch_exceptions=False)
            assert result.exit_code == 0, result.output
    finally:
        os.chdir(cwd)
    return root


@pytest.fixture
def project(sample_project, tmp_path, monkeypatch) -> Path:
    """A private, writable copy of the tiny sample project, made the working directory."""
    dest = tmp_path / "project"
    shutil.copytree(sample_project, dest, symlinks=True)
    monkeypatch.chdir(dest)
    return dest
