"""The allocator settings apply on glibc and are harmless: big blocks still allocate and free."""

from __future__ import annotations

import platform

import numpy as np

from bids_facedecode.malloc import keep_large_blocks


def test_keep_large_blocks_applies_on_glibc_and_allocation_still_works():
    applied = keep_large_blocks()
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert applied
    for _ in range(3):  # ~130 MB blocks, as a run's read buffers
        a = np.ones(130 << 20, np.uint8)
        assert int(a[::4096].sum()) == a[::4096].size
        del a
