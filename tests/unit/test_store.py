import json
import multiprocessing
import subprocess
import sys

import numpy as np
import pytest

from pipeline.store import ArtifactStore, StoreError, fingerprint, sequence_id_problem


def features(n=5, d=4, value=1.0):
    return (np.full((n, d), value, np.float16), ("time", "feature"))


def test_write_read_with_dims_attrs_and_fingerprint(tmp_path):
    store = ArtifactStore(tmp_path / "a.zarr", mode="a")
    store.set_provenance(stage="extract_dino", params={"pooling": "cls"}, model="m")
    store.write_sequence("s1", {"feature": features()}, fingerprint="fp1", attrs={"fps": 10.0})
    again = ArtifactStore(tmp_path / "a.zarr")
    assert again.sequences() == ["s1"]
    assert again.read("s1", "feature").dtype == np.float16
    assert again.array("s1", "feature").metadata.dimension_names == ("time", "feature")
    assert again.attrs("s1")["fps"] == 10.0
    assert again.is_current("s1", "fp1") and not again.is_current("s1", "fp2")
    assert again.provenance["params"] == {"pooling": "cls"} and again.provenance["model"] == "m"


def test_provenance_is_replaced_by_the_next_run(tmp_path):
    store = ArtifactStore(tmp_path / "a.zarr", mode="a")
    store.set_provenance(stage="extract_dino", params={"pooling": "cls"}, model="m")
    store.root.attrs.update({"updated": "2026-01-01T00:00:00+00:00"})  # what stores written before carry
    store.set_provenance(stage="extract_dino", params={"pooling": "mean"})
    again = ArtifactStore(tmp_path / "a.zarr").provenance
    assert again["params"] == {"pooling": "mean"}
    assert "model" not in again and "updated" not in again


def test_one_chunk_per_sequence(tmp_path):
    store = ArtifactStore(tmp_path / "a.zarr", mode="a")
    store.write_sequence("s1", {"feature": features(n=300)}, fingerprint="f")
    assert store.array("s1", "feature").chunks == (300, 4)
    chunk_files = [p for p in (tmp_path / "a.zarr" / "s1" / "feature").rglob("*") if p.is_file() and p.name != "zarr.json"]
    assert len(chunk_files) == 1


class Boom(Exception):
    pass


def test_failure_mid_write_leaves_nothing_readers_accept(tmp_path, monkeypatch):
    store = ArtifactStore(tmp_path / "a.zarr", mode="a")
    store.write_sequence("s1", {"feature": features(value=1)}, fingerprint="old")
    import zarr

    real = zarr.Array.__setitem__
    calls = {"n": 0}

    def failing(self, key, value):
        calls["n"] += 1
        if calls["n"] == 2:
            raise Boom("disk full")
        return real(self, key, value)

    monkeypatch.setattr(zarr.Array, "__setitem__", failing)
    with pytest.raises(Boom):
        store.write_sequence("s1", {"feature": features(value=2), "extra": features(value=3)}, fingerprint="new")
    monkeypatch.undo()
    reader = ArtifactStore(tmp_path / "a.zarr")
    assert "s1" not in reader.sequences()
    assert reader.fingerprint_of("s1") is None
    with pytest.raises(StoreError, match="no complete sequence 's1'"):
        reader.read("s1", "feature")


def test_prune_deletes_sequences_that_left(tmp_path):
    store = ArtifactStore(tmp_path / "a.zarr", mode="a")
    for s in ("a", "b", "c"):
        store.write_sequence(s, {"feature": features()}, fingerprint=s)
    assert store.prune(["a", "c"]) == ["b"]
    assert store.sequences() == ["a", "c"]


def _writer(url, seq_id, value):
    ArtifactStore(url, mode="a").write_sequence(seq_id, {"feature": features(n=50, value=value)}, fingerprint=seq_id)


def test_two_processes_write_different_sequences(tmp_path):
    url = str(tmp_path / "a.zarr")
    ArtifactStore(url, mode="a").set_provenance(stage="t", params={})
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(url, f"s{i}", i)) for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = ArtifactStore(url)
    assert store.sequences() == ["s0", "s1"]
    assert np.all(store.read("s1", "feature") == 1) and np.all(store.read("s0", "feature") == 0)


def test_fsspec_memory_url():
    store = ArtifactStore("memory://test-store/a.zarr", mode="a")
    store.write_sequence("s1", {"feature": features()}, fingerprint="f")
    assert ArtifactStore("memory://test-store/a.zarr").sequences() == ["s1"]


def test_rejects_bad_ids_and_dims(tmp_path):
    store = ArtifactStore(tmp_path / "a.zarr", mode="a")
    with pytest.raises(StoreError, match="invalid sequence id"):
        store.write_sequence("a/b", {"feature": features()}, fingerprint="f")
    with pytest.raises(StoreError, match="2-d array but dims"):
        store.write_sequence("a", {"feature": (np.zeros((2, 2)), ("time",))}, fingerprint="f")


def test_missing_store_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="no artifact store"):
        ArtifactStore(tmp_path / "none.zarr")


def test_fingerprint_is_stable_and_sensitive():
    assert fingerprint("a", {"x": 1, "y": 2}) == fingerprint("a", {"y": 2, "x": 1})
    assert fingerprint("a", {"x": 1}) != fingerprint("a", {"x": 2})


@pytest.mark.parametrize("compression", ["zstd", None])
def test_every_chunk_carries_a_crc32c_checksum_last(tmp_path, compression):
    store = ArtifactStore(tmp_path / "a.zarr", mode="a")
    store.write_sequence("s1", {"feature": features()}, fingerprint="f", compression=compression)
    codecs = [c["name"] for c in json.loads((tmp_path / "a.zarr" / "s1" / "feature" / "zarr.json").read_text())["codecs"]]
    assert codecs[-1] == "crc32c" and ("zstd" in codecs) == (compression == "zstd")


@pytest.mark.parametrize("compression", ["zstd", None])
def test_a_corrupted_chunk_is_an_error_naming_store_sequence_array_and_chunk(tmp_path, compression):
    """Same-size random bytes over an uncompressed chunk used to read back as garbage numbers."""
    store = ArtifactStore(tmp_path / "a.zarr", mode="a")
    store.write_sequence("s1", {"feature": features(n=50)}, fingerprint="f", compression=compression)
    chunk = tmp_path / "a.zarr" / "s1" / "feature" / "c" / "0" / "0"
    chunk.write_bytes(np.random.default_rng(0).integers(0, 256, chunk.stat().st_size, dtype=np.uint8).tobytes())
    reader = ArtifactStore(tmp_path / "a.zarr")
    for read in (lambda: reader.read("s1", "feature"), lambda: reader.array("s1", "feature")[10:20]):
        with pytest.raises(StoreError) as err:
            read()
        message = str(err.value)
        assert str(tmp_path / "a.zarr") in message and "sequence s1" in message and "'feature'" in message
        assert "c/0/0" in message and "corrupt" in message


def test_a_group_with_corrupt_metadata_counts_as_incomplete_and_can_be_rewritten(tmp_path):
    store = ArtifactStore(tmp_path / "a.zarr", mode="a")
    for s in ("s1", "s2"):
        store.write_sequence(s, {"feature": features()}, fingerprint=s)
    (tmp_path / "a.zarr" / "s2" / "zarr.json").write_text("{not json")
    reader = ArtifactStore(tmp_path / "a.zarr")
    assert reader.all_groups() == ["s1", "s2"] and reader.sequences() == ["s1"]
    assert reader.status("s2") == "unreadable" and not reader.is_current("s2", "s2")
    assert "metadata is unreadable" in reader.unusable("s2")
    with pytest.raises(StoreError, match=r"no complete sequence 's2' \(its metadata is unreadable"):
        reader.read("s2", "feature")
    store.write_sequence("s2", {"feature": features(value=7)}, fingerprint="s2")
    assert ArtifactStore(tmp_path / "a.zarr").read("s2", "feature")[0, 0] == 7


def test_stale_sequences_are_hidden_and_revived_with_their_content(tmp_path):
    store = ArtifactStore(tmp_path / "a.zarr", mode="a")
    store.write_sequence("s1", {"feature": features(value=3)}, fingerprint="f", source="video-v1")
    store.invalidate("s1", "its video changed")
    assert store.sequences() == [] and store.status("s1") == "stale"
    assert store.unusable("s1") == "stale: its video changed"
    assert store.revivable("s1", "f", "video-v1") and not store.revivable("s1", "f", "video-v2")
    store.revive("s1")
    assert store.sequences() == ["s1"] and "stale" not in store.attrs("s1")
    assert store.read("s1", "feature")[0, 0] == 3


def test_a_sequence_made_from_another_source_is_not_usable_downstream(tmp_path):
    store = ArtifactStore(tmp_path / "a.zarr", mode="a")
    store.write_sequence("s1", {"feature": features()}, fingerprint="f", source="video-v1")
    assert store.unusable("s1", source="video-v1") is None
    assert "another version of its source" in store.unusable("s1", source="video-v2")
    assert not store.is_current("s1", "f", source="video-v2")


@pytest.mark.parametrize("seq_id", ["", ".", "..", "a/b"])
def test_delete_never_reaches_beyond_one_group(tmp_path, seq_id):
    store = ArtifactStore(tmp_path / "a.zarr", mode="a")
    store.write_sequence("s1", {"feature": features()}, fingerprint="f")
    with pytest.raises(StoreError, match="refusing to delete"):
        store.delete(seq_id)
    assert store.sequences() == ["s1"]


@pytest.mark.parametrize("seq_id", ["my video", "-x", ".", "..", ".hidden", "zarr.json", "a/b", ""])
def test_ids_that_are_paths_options_or_hidden_are_refused(seq_id):
    assert sequence_id_problem(seq_id) is not None
    assert sequence_id_problem("squat_val_000") is None and sequence_id_problem("0001.v2") is None


def test_a_killed_writers_scratch_is_cleaned_and_a_failed_write_leaves_none(tmp_path, monkeypatch):
    import socket

    store = ArtifactStore(tmp_path / "a.zarr", mode="a")
    store.write_sequence("s1", {"feature": features()}, fingerprint="f")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    leftover = tmp_path / "a.zarr" / f".writing@s2@{socket.gethostname()}@{int(dead.stdout)}@0000"
    (leftover / "feature").mkdir(parents=True)
    assert store.all_groups() == ["s1"]  # scratch is never a sequence
    store.prune(["s1", "s2"])
    assert not leftover.exists() and store.sequences() == ["s1"]

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ArtifactStore, "_write_group", broken)
    with pytest.raises(OSError, match="disk full"):
        store.write_sequence("s2", {"feature": features()}, fingerprint="f")
    assert sorted(p.name for p in (tmp_path / "a.zarr").iterdir()) == ["s1", "zarr.json"]
