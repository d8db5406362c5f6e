"""pipeline.dino.batches: fixed-size batches spanning sequences, in order, with per-sequence read failures."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.dino.batches import ReadFailure, prefetch_batches
from pipeline.store import ArtifactStore


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setattr("pipeline.store.MAX_CHUNK_BYTES", 3 * 4 * 4 * 3)  # 3 frames per chunk
    store = ArtifactStore(str(tmp_path / "frames.zarr"), mode="a")
    for seq_id, n in [("a", 5), ("b", 2), ("c", 6)]:
        frames = np.full((n, 4, 4, 3), 0, np.uint8) + np.arange(n, dtype=np.uint8)[:, None, None, None]
        frames[..., 0] = ord(seq_id)
        store.write_sequence(seq_id, {"rgb": (frames, ("time", "y", "x", "channel"))}, fingerprint=seq_id)
    return store


def unpack(batches):
    """[(seq_id, frame number)] in batch order, from the frames' encoded channels."""
    out = []
    for batch in batches:
        frames = batch.frames.numpy()
        assert frames.shape == (4, 4, 4, 3)
        assert not frames[batch.n_valid :].any()  # padding is zero
        for seg in batch.segments:
            rows = frames[seg.offset : seg.offset + seg.stop - seg.start]
            assert (rows[:, 0, 0, 0] == ord(seg.seq_id)).all()
            assert rows[:, 0, 0, 1].tolist() == list(range(seg.start, seg.stop))
            out += [(seg.seq_id, i) for i in range(seg.start, seg.stop)]
    return out


@pytest.mark.parametrize("num_workers", [1, 3])
def test_batches_span_sequences_in_order_and_pad_the_last(store, num_workers):
    batches = list(prefetch_batches(store, [("a", 5), ("b", 2), ("c", 6)], batch_size=4, num_workers=num_workers))
    assert [b.n_valid for b in batches] == [4, 4, 4, 1]
    assert unpack(batches) == [("a", i) for i in range(5)] + [("b", i) for i in range(2)] + [("c", i) for i in range(6)]


def test_an_unreadable_sequence_is_reported_and_the_others_continue(store):
    items = list(prefetch_batches(store, [("a", 5), ("missing", 3), ("c", 6)], batch_size=4))
    failures = [i for i in items if isinstance(i, ReadFailure)]
    assert [f.seq_id for f in failures] == ["missing"] and "missing" in failures[0].error
    batches = [i for i in items if not isinstance(i, ReadFailure)]
    assert unpack(batches) == [("a", i) for i in range(5)] + [("c", i) for i in range(6)]


def test_closing_early_stops_the_reader(store):
    batches = prefetch_batches(store, [("a", 5), ("b", 2), ("c", 6)] * 20, batch_size=2, num_workers=2)
    next(batches)
    batches.close()  # must not hang on the reader thread blocked on a full queue
