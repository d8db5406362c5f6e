"""Length-bucketed batches: every sequence once per epoch, similar lengths together, repeatable."""

from __future__ import annotations

import numpy as np

from model.buckets import batches_per_epoch, bucket_of, epoch_batches


def test_every_sequence_once_and_buckets_stay_homogeneous():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 300, 103)
    edges = [32, 64, 128]
    batches = epoch_batches(lengths, edges, 8, seed=0, epoch=3)
    seen = np.concatenate(batches)
    assert sorted(seen.tolist()) == list(range(103))
    buckets = bucket_of(lengths, edges)
    assert all(len(set(buckets[b])) == 1 for b in batches)
    assert len(batches) == batches_per_epoch(lengths, edges, 8)


def test_batches_are_repeatable_per_epoch_and_differ_between_epochs():
    lengths = list(range(10, 110))
    a = epoch_batches(lengths, [50], 16, seed=1, epoch=0)
    b = epoch_batches(lengths, [50], 16, seed=1, epoch=0)
    c = epoch_batches(lengths, [50], 16, seed=1, epoch=1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
