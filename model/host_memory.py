"""Host memory for training and embedding steps: keep what glibc's malloc frees, instead of unmapping it.

glibc serves every allocation above its mmap threshold (32 MiB at most) with a fresh `mmap` and unmaps it on
free, so the large tensors of every step (an LA2DS batch of heatmaps is ~100 MB, its patches and resampling
grids as much again) are faulted in page by page on every step. On the 2-core machines this project is
measured on that was a quarter of an LA2DS step (bench/bench_la2ds_inputs.py). `keep_freed_memory` makes
large blocks come from the heap and keeps the heap's freed top for the next step: the effect PyTorch's CPU
tuning advice gets from preloading tcmalloc or jemalloc, without a preload. The cost: the process keeps its
peak memory until it exits. Elsewhere than glibc (macOS, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger(__name__)

# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
_done: bool | None = None


def keep_freed_memory() -> bool:
    """Ask glibc (once per process) to serve large blocks from the heap and not to trim it; True if it took."""
    global _done
    if _done is None:
        _done = _mallopt_heap_only()
        log.debug("large blocks from the heap, freed memory kept: %s", _done)
    return _done


def _mallopt_heap_only() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)  # the C library this process runs on
        libc.gnu_get_libc_version  # noqa: B018 (glibc only: musl also has a mallopt, which does nothing)
    except (OSError, AttributeError):
        return False
    # mallopt returns 1 on success; the trim threshold is a C int
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
