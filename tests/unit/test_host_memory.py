"""model/host_memory.py: on glibc, a freed large block is reused by the next one without new page faults
(without the setting it is unmapped, and the next block faults its pages in again: ~500 faults for 64 MiB
with transparent huge pages, ~16k without)."""

from __future__ import annotations

import ctypes
import resource
import sys

import numpy as np
import pytest

from model.host_memory import keep_freed_memory


def _glibc() -> bool:
    try:
        ctypes.CDLL(None).gnu_get_libc_version  # noqa: B018
    except (OSError, AttributeError):
        return False
    return sys.platform.startswith("linux")


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


@pytest.mark.skipif(not _glibc(), reason="mallopt's heap-only setting is glibc's")
def test_a_freed_large_block_is_reused_without_page_faults():
    assert keep_freed_memory() and keep_freed_memory()  # once per process; asking again is harmless
    size = 64 * 2**20  # above glibc's largest mmap threshold (32 MiB)
    np.ones(size, np.uint8)  # faulted in once, then freed
    before = _faults()
    np.ones(size, np.uint8)
    assert _faults() - before < 8
