"""Team sharing through a DVC remote: clone A extracts and pushes, clone B pulls and trains with zero
extraction work; a corrupted remote file is refused, not silently checked out."""

from __future__ import annotations

import pytest

from tests.integration.dvc_project import make_repo, repro, run
from tests.integration.test_dvc_pipeline import EXTRACTION, assert_same_stores

pytestmark = pytest.mark.slow
ARTIFACTS = ("frames", "dino", "keypoints", "heatmaps")


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """Clone A ran the extraction DAG and pushed it to a directory remote standing for the team's server."""
    root = tmp_path_factory.mktemp("team")
    remote = root / "remote"
    a = make_repo(root / "a")
    run(["dvc", "remote", "add", "-d", "team", str(remote)], a)
    run(["dvc", "remote", "modify", "team", "verify", "true"], a)
    repro(a, *EXTRACTION)
    run(["git", "add", "-A"], a)
    run(["git", "commit", "-qm", "extracted features"], a)
    run(["dvc", "push"], a)
    return root, a, remote


def test_clone_pulls_features_and_trains_without_extracting(team):
    root, a, _ = team
    b = root / "b"
    run(["git", "clone", "-q", str(a), str(b)], root)
    run(["dvc", "pull", "--with-deps", *EXTRACTION], b)  # A pushed its extraction; nothing was trained there
    assert run(["dvc", "status", "--with-deps", *EXTRACTION], b).stdout.strip().endswith("up to date.")
    for artifact in ARTIFACTS:
        assert_same_stores(b / "data" / "sample" / f"{artifact}.zarr", a / "data" / "sample" / f"{artifact}.zarr")
    stamps = {p: p.stat().st_mtime_ns for art in ARTIFACTS for p in (b / "data" / "sample" / f"{art}.zarr").rglob("*")}
    out = repro(b, *EXTRACTION)
    assert "Running stage" not in out
    run(["pipeline", "-q", "train", "--dataset", "sample", "--method", "casa"], b)
    assert (b / "data" / "sample" / "embeddings_casa.zarr").is_dir()
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items()), "extraction artifacts were rewritten"


def test_corrupted_remote_file_is_refused(team):
    root, a, remote = team
    victim = max((p for p in (remote / "files").rglob("*") if p.is_file() and not p.name.endswith(".dir")),
                 key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    c = root / "c"
    run(["git", "clone", "-q", str(a), str(c)], root)
    result = run(["dvc", "pull", "--with-deps", *EXTRACTION], c, check=False)
    assert result.returncode != 0
    assert "Checkout failed" in result.stderr + result.stdout
    for artifact in ARTIFACTS:
        store = c / "data" / "sample" / f"{artifact}.zarr"
        if store.exists():  # what was checked out is intact; the corrupted artifact is absent, not wrong
            assert_same_stores(store, a / "data" / "sample" / f"{artifact}.zarr")
