"""Padded batches of variable-length sequences, with masks, and frame gathering through index maps.

A `Batch` holds the arrays a method needs (keyed by their artifact array name, e.g. `joints_2d`,
`feature`), each padded along time to the longest sequence: (B, T, ...), plus `mask` (B, T) bool, True on
real frames, which always come first in a row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class Batch:
    """arrays: name -> (B, T, ...) float tensors (float32, or float16 heatmaps: `collate`); mask: (B, T) bool;
    activities: per-row activity names; index: (B,) long, each row's position among the training sequences
    (set by the trainer), or None."""

    arrays: dict[str, torch.Tensor]
    mask: torch.Tensor
    activities: tuple[str, ...] = field(default_factory=tuple)
    index: torch.Tensor | None = None

    @property
    def lengths(self) -> torch.Tensor:
        """(B,) number of real frames per row."""
        return self.mask.sum(dim=1)

    def to(self, device: torch.device | str) -> Batch:
        arrays = {k: v.to(device, non_blocking=True) for k, v in self.arrays.items()}
        return Batch(arrays, self.mask.to(device, non_blocking=True), self.activities, self.index)


def pad_sequences(seqs: Sequence[torch.Tensor], value: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (T_i, ...) tensors into (B, T_max, ...) padded with `value`, and the (B, T_max) mask."""
    if not seqs:
        raise ValueError("cannot pad an empty list of sequences")
    longest = max(s.shape[0] for s in seqs)
    out = seqs[0].new_full((len(seqs), longest, *seqs[0].shape[1:]), value)
    mask = torch.zeros(len(seqs), longest, dtype=torch.bool, device=seqs[0].device)
    for i, s in enumerate(seqs):
        out[i, : s.shape[0]] = s
        mask[i, : s.shape[0]] = True
    return out, mask


def collate(items: Sequence[Mapping[str, np.ndarray]], activities: Sequence[str] = (),
            index: Sequence[int] | None = None) -> Batch:
    """Pad per-sequence arrays {name: (T, ...)} (all of one sequence's arrays share T) into a Batch; `index`:
    the items' positions among the training sequences, kept as `Batch.index`.

    Arrays are padded in float32, except where every item's array names a `batch_dtype` (heatmaps read
    through `stages.shared.heatmap_store.StoredMaps`: float16, which holds them as well as their store does
    at half the bytes); a name mixing dtypes is padded in the widest. Models cast such inputs where they
    compute (`HeatmapEncoder.patches`)."""
    if not items:
        raise ValueError("cannot collate an empty list of sequences")
    names = list(items[0])
    arrays, mask = {}, None
    for name in names:
        dtype = np.result_type(*(getattr(item[name], "batch_dtype", np.float32) for item in items))
        # padded in NumPy, so that an array already in `dtype` (a read-only view of cached maps) is copied
        # once, straight into the batch
        values = [np.asarray(item[name], dtype=dtype) for item in items]
        lengths = torch.as_tensor([len(v) for v in values])
        padded = np.empty((len(values), int(lengths.max()), *values[0].shape[1:]), dtype)
        for row, v in zip(padded, values, strict=True):  # every value written once: the frames, then zeros
            row[: len(v)] = v
            row[len(v) :] = 0
        arrays[name] = torch.from_numpy(padded)
        mask_n = torch.arange(padded.shape[1])[None, :] < lengths[:, None]
        if mask is not None and not torch.equal(mask, mask_n):
            raise ValueError(f"array '{name}' has a different number of frames than '{names[0]}' in a sequence")
        mask = mask_n
    rows = torch.as_tensor(np.asarray(index, dtype=np.int64)) if index is not None else None
    return Batch(arrays, mask, tuple(activities), rows)


def pad_indices(maps: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Index maps (N_i,) long -> (B, N_max) padded with 0, and their (B, N_max) mask."""
    return pad_sequences([m.long() for m in maps], value=0)


def gather_frames(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Frames of a padded batch picked by per-row index maps.

    x: (B, T, ...); index: (B, N) long into each row's frames -> (B, N, ...), out[b, n] = x[b, index[b, n]].
    """
    B, N = index.shape
    flat = x.reshape(B, x.shape[1], -1)
    picked = torch.gather(flat, 1, index.to(x.device).unsqueeze(-1).expand(B, N, flat.shape[-1]))
    return picked.reshape(B, N, *x.shape[2:])
