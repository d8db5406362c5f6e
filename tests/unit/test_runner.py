import numpy as np
import pytest

from pipeline.runner import StageError, Task, run_incremental
from pipeline.store import ArtifactStore

CALLS: list[str] = []


def work(store_url, task):
    CALLS.append(task.seq_id)
    if task.payload.get("fail"):
        raise RuntimeError(f"cannot decode {task.seq_id} ({task.payload['file']})")
    data = np.full((task.n_frames, 2), task.payload["value"], np.float32)
    ArtifactStore(store_url, mode="a").write_sequence(task.seq_id, {"x": (data, ("time", "feature"))},
                                                      fingerprint=task.fingerprint)
    return task.n_frames


def tasks(values, fail=()):
    return [Task(f"s{i}", f"fp{v}", 3, {"value": v, "fail": i in fail, "file": f"s{i}.mp4"}) for i, v in enumerate(values)]


def test_skips_current_recomputes_changed_and_prunes(tmp_path):
    url = str(tmp_path / "x.zarr")
    CALLS.clear()
    first = run_incremental(url, tasks([1, 2, 3]), work, stage="t", params={})
    assert sorted(first.computed) == ["s0", "s1", "s2"] and first.frames == 9
    CALLS.clear()
    second = run_incremental(url, tasks([1, 5]), work, stage="t", params={})
    assert CALLS == ["s1"]
    assert second.skipped == ["s0"] and second.removed == ["s2"]
    assert ArtifactStore(url).read("s1", "x")[0, 0] == 5


def test_failures_are_reported_after_others_are_written(tmp_path):
    url = str(tmp_path / "x.zarr")
    with pytest.raises(StageError) as err:
        run_incremental(url, tasks([1, 2, 3], fail={1}), work, stage="decode", params={})
    assert "s1: RuntimeError: cannot decode s1 (s1.mp4)" in str(err.value)
    assert ArtifactStore(url).sequences() == ["s0", "s2"]


def test_process_pool_gives_the_serial_result(tmp_path):
    serial, pooled = str(tmp_path / "a.zarr"), str(tmp_path / "b.zarr")
    run_incremental(serial, tasks([1, 2, 3, 4]), work, stage="t", params={})
    run_incremental(pooled, tasks([1, 2, 3, 4]), work, stage="t", params={}, workers=2)
    a, b = ArtifactStore(serial), ArtifactStore(pooled)
    assert a.sequences() == b.sequences()
    for s in a.sequences():
        assert np.array_equal(a.read(s, "x"), b.read(s, "x"))


def test_provenance_not_rewritten_when_unchanged(tmp_path):
    url = str(tmp_path / "x.zarr")
    run_incremental(url, tasks([1]), work, stage="t", params={"a": 1})
    meta = (tmp_path / "x.zarr" / "zarr.json").stat().st_mtime_ns
    run_incremental(url, tasks([1]), work, stage="t", params={"a": 1})
    assert (tmp_path / "x.zarr" / "zarr.json").stat().st_mtime_ns == meta
    run_incremental(url, tasks([1]), work, stage="t", params={"a": 2})
    assert ArtifactStore(url).provenance["params"] == {"a": 2}
