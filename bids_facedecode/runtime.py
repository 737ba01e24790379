"""Process-wide settings of a run of the app (not of the library).

The app builds a few large, long-lived object graphs (imported modules, the pybids index, the
participants' inputs) and then allocates many short-lived objects (SQL rows, matplotlib
artists). CPython's cyclic garbage collector walks every tracked object on each full
collection, so the long-lived graphs would be walked again and again, on the critical path
(``benchmarks/README.md`` measures it). :func:`settle` moves the objects alive at that point
out of the collector's reach for the rest of the process (``gc.freeze``). Reference counting
still frees them as soon as they are dropped; only garbage *cycles* among them would outlive
their use, and the app's long-lived structures hold none of the large arrays in cycles.
"""

from __future__ import annotations

import gc


def settle() -> int:
    """Exempt every object alive now from the cyclic garbage collector, for good.

    Called by the app once its long-lived state exists (after imports, after indexing the
    dataset, after collecting a participant's inputs). Garbage cycles are collected first, so
    that only live objects are frozen; repeated calls are cheap (the frozen objects are not
    walked again).

    Returns
    -------
    int
        Objects now frozen (``gc.get_freeze_count()``).
    """
    gc.collect()  # garbage cycles alive now would otherwise be frozen, i.e. kept, for good
    gc.freeze()
    return gc.get_freeze_count()
