"""Length-bucketed batches: sequences of similar length share a batch, so little compute goes to padding.

Bucket b holds the sequences with edges[b-1] < length <= edges[b] (the last bucket everything longer than
the last edge). Each epoch shuffles within buckets and then the order of batches, from a seed and the
epoch number alone, so epoch e's batches are the same whether or not training was interrupted before it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def bucket_of(lengths: Sequence[int], edges: Sequence[int]) -> np.ndarray:
    """(N,) bucket number of each length: the first edge >= length, len(edges) past the last edge."""
    if list(edges) != sorted(edges):
        raise ValueError(f"bucket edges must be increasing, got {list(edges)}")
    return np.searchsorted(np.asarray(edges), np.asarray(lengths), side="left")


def epoch_batches(
    lengths: Sequence[int], edges: Sequence[int], batch_size: int, *, seed: int, epoch: int
) -> list[np.ndarray]:
    """The batches (arrays of sequence positions) of one epoch; every sequence appears exactly once.

    The number of batches is the same every epoch: sum over buckets of ceil(bucket size / batch_size).
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    rng = np.random.default_rng([seed, epoch])
    buckets = bucket_of(lengths, edges)
    batches = []
    for b in np.unique(buckets):
        members = np.flatnonzero(buckets == b)
        members = members[rng.permutation(len(members))]
        batches.extend(members[i : i + batch_size] for i in range(0, len(members), batch_size))
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]


def batches_per_epoch(lengths: Sequence[int], edges: Sequence[int], batch_size: int) -> int:
    buckets = bucket_of(lengths, edges)
    return int(sum(-(-np.sum(buckets == b) // batch_size) for b in np.unique(buckets)))
