import subprocess
import sys

import pytest
from click.testing import CliRunner

from pipeline.cli import main

COMMANDS = ["make-sample", "index", "decode", "extract-dino", "estimate-pose", "keypoints", "heatmaps", "train",
            "evaluate", "embed", "report", "export"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and "pipeline, version" in result.output


def test_help_imports_no_heavy_library():
    code = ("import sys; from click.testing import CliRunner; from pipeline.cli import main; "
            "CliRunner().invoke(main, ['--help']); "
            "heavy = [m for m in ('torch', 'transformers', 'zarr', 'dask', 'smplx', 'cv2', 'dvc', 'pandas') if m in sys.modules]; "
            "print(heavy); sys.exit(1 if heavy else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_unknown_dataset_is_one_clear_error(project):
    result = CliRunner().invoke(main, ["index", "--dataset", "nosuch"])
    assert result.exit_code == 1
    assert "unknown dataset 'nosuch'" in result.output and "Traceback" not in result.output


def test_manifest_option_selects_another_manifest(project):
    (project / "other.yaml").write_text("datasets:\n  mine: {kind: videos, root: data/sample/raw, sequences: sequences.csv}\n")
    result = CliRunner().invoke(main, ["--manifest", "other.yaml", "index", "--dataset", "mine"])
    assert result.exit_code == 0, result.output
    assert (project / "data" / "mine" / "index.parquet").is_file()


def test_bad_params_are_reported_with_the_key(project):
    text = (project / "params.yaml").read_text().replace("min_frames: 2", "min_frame: 2")
    (project / "params.yaml").write_text(text)
    result = CliRunner().invoke(main, ["index", "--dataset", "sample"])
    assert result.exit_code == 1 and "unknown key(s) ['min_frame']" in result.output


def test_failed_index_keeps_the_previous_index(project):
    index = project / "data" / "sample" / "index.parquet"
    before = index.read_bytes()
    (project / "data" / "sample" / "raw" / "labels.csv").write_text("sequence,frame\n")
    result = CliRunner().invoke(main, ["index", "--dataset", "sample"])
    assert result.exit_code == 1 and "labels.csv lacks column(s) ['label']" in result.output
    assert index.read_bytes() == before


def test_make_sample_writes_identical_bytes_in_any_environment(tmp_path):
    """Deterministic from the seed down to the video bytes, whatever the process environment."""
    import hashlib
    import os

    from tests.conftest import make_project

    digests = []
    for name, extra in (("a", {}), ("b", {"SOME_UNRELATED_VARIABLE": "x" * 300, "LANG": "C.UTF-8"})):
        project = make_project(tmp_path / name, sample={"train_per_activity": 1, "val_per_activity": 1,
                                                        "dino_hidden": 32, "dino_layers": 1})
        env = {**os.environ, "HF_HUB_OFFLINE": "1", **extra}
        subprocess.run([sys.executable, "-m", "pipeline.cli", "-q", "make-sample"], cwd=project, env=env, check=True,
                       capture_output=True)
        files = sorted((project / "data" / "sample" / "raw").rglob("*.*"))
        digests.append({f.relative_to(project).as_posix(): hashlib.md5(f.read_bytes()).hexdigest() for f in files
                        if f.suffix in (".mp4", ".npz", ".csv")})
    assert digests[0] == digests[1]
