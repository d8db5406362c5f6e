"""The extraction DAG under real DVC: no-op re-runs, kill and resume, changed manifests, shared remotes."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from pipeline.store import ArtifactStore
from tests.integration.dvc_project import (
    complete_groups,
    kill_when,
    make_repo,
    repro,
    run,
)

pytestmark = pytest.mark.slow
EXTRACTION = ["extract_dino@sample", "heatmaps@sample"]


def arrays(store_path) -> dict[str, dict[str, np.ndarray]]:
    store = ArtifactStore(store_path)
    return {s: {n: store.read(s, n) for n in store.root[s].array_keys()} for s in store.sequences()}


def assert_same_stores(a, b) -> None:
    left, right = arrays(a), arrays(b)
    assert left.keys() == right.keys()
    for seq in left:
        assert left[seq].keys() == right[seq].keys()
        for name in left[seq]:
            np.testing.assert_array_equal(left[seq][name], right[seq][name], err_msg=f"{seq}/{name}")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted run of the extraction stages, to compare others against."""
    repo = make_repo(tmp_path_factory.mktemp("reference"))
    repro(repo, *EXTRACTION)
    return repo


def test_second_repro_does_nothing(reference):
    out = repro(reference, *EXTRACTION)
    assert "Running stage" not in out
    # the extraction stages and everything upstream of them (train/evaluate never ran here)
    assert run(["dvc", "status", "--with-deps", *EXTRACTION], reference).stdout.strip().endswith("up to date.")


def test_killed_stage_resumes_to_the_uninterrupted_result(reference, tmp_path):
    repo = make_repo(tmp_path / "killed")
    repro(repo, "index@sample")
    frames = repo / "data" / "sample" / "frames.zarr"
    kill_when(["dvc", "repro", "decode@sample"], repo, lambda: len(complete_groups(frames)) >= 2)
    n_total = len(complete_groups(reference / "data" / "sample" / "frames.zarr"))
    assert 2 <= len(complete_groups(frames)) < n_total, "the kill should land mid-stage"
    repro(repo, *EXTRACTION)
    for artifact in ("frames", "dino", "keypoints", "heatmaps"):
        assert_same_stores(repo / "data" / "sample" / f"{artifact}.zarr",
                           reference / "data" / "sample" / f"{artifact}.zarr")


def test_changed_manifest_touches_only_the_changed_sequences(reference, tmp_path):
    repo = tmp_path / "changed"
    shutil.copytree(reference, repo, symlinks=True)
    raw = repo / "data" / "sample" / "raw"
    videos = sorted((raw / "videos").glob("*.mp4"))
    gone, copied = videos[0].stem, videos[1].stem
    new = f"{copied}_copy"
    (raw / "videos" / f"{gone}.mp4").unlink()
    (raw / "poses" / f"{gone}.npz").unlink()
    shutil.copy(raw / "videos" / f"{copied}.mp4", raw / "videos" / f"{new}.mp4")
    shutil.copy(raw / "poses" / f"{copied}.npz", raw / "poses" / f"{new}.npz")
    for name in ("sequences.csv", "labels.csv"):
        lines = (raw / name).read_text().splitlines()
        kept = [line for line in lines if not line.startswith(f"{gone},")]
        added = [line.replace(f"{copied},", f"{new},", 1) for line in lines if line.startswith(f"{copied},")]
        (raw / name).write_text("\n".join(kept + added) + "\n")
    frames = repo / "data" / "sample" / "frames.zarr"
    before = {p.parent.name: p.stat().st_mtime_ns for p in frames.glob("*/zarr.json")}
    # from the index on (make_sample, upstream, would regenerate the raw data)
    out = run(["dvc", "repro", "--downstream", "index@sample"], repo)
    after = {p.parent.name: p.stat().st_mtime_ns for p in frames.glob("*/zarr.json")}
    assert gone not in after and new in after
    untouched = set(before) - {gone}
    assert all(after[s] == before[s] for s in untouched), "unchanged sequences were rewritten"
    for artifact in ("frames", "dino", "keypoints", "heatmaps"):
        store = ArtifactStore(repo / "data" / "sample" / f"{artifact}.zarr")
        assert gone not in store.sequences() and new in store.sequences(), (artifact, out.stdout)
    np.testing.assert_array_equal(ArtifactStore(repo / "data" / "sample" / "dino.zarr").read(new, "feature"),
                                  ArtifactStore(repo / "data" / "sample" / "dino.zarr").read(copied, "feature"))


def test_missing_remote_is_a_clear_dvc_error(reference, tmp_path):
    repo = tmp_path / "noremote"
    shutil.copytree(reference, repo, symlinks=True)
    run(["dvc", "remote", "add", "-d", "--local", "team", str(tmp_path / "does-not-exist")], repo)
    shutil.rmtree(repo / ".dvc" / "cache")  # so that a pull has to reach the remote
    before = arrays(repo / "data" / "sample" / "dino.zarr")
    result = run(["dvc", "pull"], repo, check=False)
    assert result.returncode != 0
    assert "does-not-exist" in result.stderr + result.stdout or "failed" in (result.stderr + result.stdout).lower()
    after = arrays(repo / "data" / "sample" / "dino.zarr")
    assert before.keys() == after.keys()
