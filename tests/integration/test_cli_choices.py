"""Closed choices on the command line (method, device, dataset) fail at once, before any heavy import, with one
error line that lists the valid values."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from model.registry import method_names

HEAVY = ("torch", "transformers", "zarr", "dask", "smplx", "cv2", "sklearn", "numba", "pandas")


def invoke(args: list[str], cwd) -> dict:
    """Run `pipeline <args>` in a fresh interpreter: exit code, output and the heavy modules it imported."""
    code = (
        "import json, sys; from click.testing import CliRunner; from pipeline.cli import main; "
        f"r = CliRunner().invoke(main, {args!r}); "
        f"print(json.dumps({{'code': r.exit_code, 'output': r.output, "
        f"'heavy': [m for m in {HEAVY!r} if m in sys.modules]}}))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("Error:")]


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_unknown_method_lists_the_registered_methods(command, tmp_path):
    from tests.conftest import REPO

    got = invoke([command, "--dataset", "sample", "--method", "masaa"], REPO)
    assert got["code"] == 2 and got["heavy"] == [], got
    (line,) = error_lines(got["output"])
    assert "'masaa' is not one of" in line
    assert all(f"'{name}'" in line for name in method_names())
    assert ("'raw'" in line) == (command == "evaluate")  # evaluate also takes the baselines alone
    assert "Traceback" not in got["output"] and "store" not in got["output"]


@pytest.mark.parametrize("command", ["train", "evaluate", "extract-dino"])
def test_unknown_device_lists_the_valid_devices(command):
    from tests.conftest import REPO

    extra = ["--method", "masa"] if command != "extract-dino" else []
    got = invoke([command, "--dataset", "sample", *extra, "--device", "cdua"], REPO)
    assert got["code"] == 2 and got["heavy"] == [], got
    (line,) = error_lines(got["output"])
    assert "unknown device 'cdua'" in line and "auto, cpu, cuda or cuda:N" in line


@pytest.mark.parametrize("command", ["train", "evaluate", "decode", "heatmaps"])
def test_unknown_dataset_lists_the_manifest_entries_before_heavy_imports(command):
    from tests.conftest import REPO

    extra = ["--method", "masa"] if command in ("train", "evaluate") else []
    got = invoke([command, "--dataset", "nosuch", *extra], REPO)
    assert got["code"] == 1 and got["heavy"] == [], got
    (line,) = error_lines(got["output"])
    assert "unknown dataset 'nosuch'" in line and "'sample'" in line
