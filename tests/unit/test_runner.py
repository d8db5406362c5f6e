from pathlib import Path

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


def test_a_failed_recompute_leaves_the_sequence_stale_never_complete_with_old_content(tmp_path):
    url = str(tmp_path / "x.zarr")
    run_incremental(url, tasks([1, 2]), work, stage="decode", params={})
    with pytest.raises(StageError, match=r"(?s)decode \(toy, .*x.zarr\): 1 of 1 sequence\(s\) failed.*s1: RuntimeError"):
        run_incremental(url, tasks([1, 5], fail={1}), work, stage="decode", params={}, dataset="toy")
    store = ArtifactStore(url)
    assert store.sequences() == ["s0"] and store.status("s1") == "stale"
    assert "decode failed: RuntimeError: cannot decode s1 (s1.mp4)" in store.unusable("s1")


def test_a_stale_sequence_whose_inputs_are_back_is_revived_without_recomputing(tmp_path):
    url = str(tmp_path / "x.zarr")
    run_incremental(url, tasks([1, 2]), work, stage="t", params={})
    with pytest.raises(StageError):
        run_incremental(url, tasks([1, 5], fail={1}), work, stage="t", params={})
    CALLS.clear()
    again = run_incremental(url, tasks([1, 2]), work, stage="t", params={})
    assert CALLS == [] and again.revived == ["s1"] and again.skipped == ["s0"]
    assert ArtifactStore(url).read("s1", "x")[0, 0] == 2


def test_a_blocked_task_fails_unrun_and_marks_its_old_output_stale(tmp_path):
    url = str(tmp_path / "x.zarr")
    run_incremental(url, tasks([1, 2]), work, stage="t", params={})
    CALLS.clear()
    blocked = [tasks([1])[0], Task("s1", "fp2", 3, {"value": 2}, blocked="no frames in f.zarr (stale)")]
    with pytest.raises(StageError, match=r"s1: no frames in f.zarr \(stale\)"):
        run_incremental(url, blocked, work, stage="t", params={})
    assert CALLS == [] and ArtifactStore(url).sequences() == ["s0"]


def test_one_error_shared_by_many_sequences_is_reported_once(tmp_path):
    many = [Task(f"s{i}", f"fp{i}", 3, {"same": True}) for i in range(12)]
    with pytest.raises(StageError) as err:
        run_incremental(str(tmp_path / "x.zarr"), many, shared_failure, stage="keypoints", params={})
    message = str(err.value)
    assert message.count("MANO model file MANO_RIGHT.pkl not found") == 1
    assert "s0, s1, s10, s11, s2, s3, s4, s5, s6, s7 (+2 more)" in message


def shared_failure(store_url, task):
    raise FileNotFoundError("MANO model file MANO_RIGHT.pkl not found")


def test_provenance_changes_only_once_the_stage_begins_writing(tmp_path):
    url = str(tmp_path / "x.zarr")
    run_incremental(url, tasks([1]), work, stage="t", params={"a": 1})
    with pytest.raises(StageError):  # nothing written: every sequence failed, and none was made with a=1
        run_incremental(url, tasks([2], fail={0}), work, stage="t", params={"a": 2})
    store = ArtifactStore(url)
    assert store.sequences() == []  # the a=1 content is stale, not passed off as made with a=2


def sleeping_work(store_url, task):
    import os
    import time
    from pathlib import Path

    (Path(task.payload["pids"]) / str(os.getpid())).touch()
    time.sleep(120)
    return 0


def test_workers_exit_when_the_coordinator_is_killed(tmp_path):
    """kill -9 of the parent used to leave both workers (and the resource tracker) running."""
    import os
    import signal
    import subprocess
    import sys
    import time

    pids = tmp_path / "pids"
    pids.mkdir()
    code = ("from pipeline.runner import Task, run_incremental; from tests.unit.test_runner import sleeping_work; "
            f"run_incremental({str(tmp_path / 'x.zarr')!r}, [Task(f's{{i}}', 'f', 1, {{'pids': {str(pids)!r}}}) "
            "for i in range(2)], sleeping_work, stage='t', params={}, workers=2)")
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2])
    try:
        deadline = time.monotonic() + 120
        while len(list(pids.iterdir())) < 2:
            assert parent.poll() is None and time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.2)
        workers = [int(p.name) for p in pids.iterdir()]
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 60
        while any(_alive(pid) for pid in workers):
            assert time.monotonic() < deadline, f"workers {workers} outlived their parent"
            time.sleep(0.2)
    finally:
        parent.kill()


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie (exited, not yet reaped by init) is not running
        return fh.read().split(")")[-1].split()[0] != "Z"
