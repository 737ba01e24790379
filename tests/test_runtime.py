"""The app's process-wide garbage-collector policy (bids_facedecode.runtime)."""

import gc

from bids_facedecode.runtime import settle


def test_settle_takes_live_objects_out_of_the_collector_for_good():
    gc.unfreeze()
    try:
        before = [[] for _ in range(100)]  # container objects: tracked by the collector
        n = settle()
        assert n == gc.get_freeze_count() >= len(before)
        after = [[] for _ in range(5)]
        gc.collect()  # a full collection neither walks nor unfreezes what settle froze
        tracked = {id(o) for o in gc.get_objects()}
        assert not any(id(o) in tracked for o in before)
        assert all(id(o) in tracked for o in after)
        assert gc.get_freeze_count() == n
        # reference counting still frees frozen objects
        import weakref

        class Box:
            pass

        gc.unfreeze()
        box = Box()
        ref = weakref.ref(box)
        settle()
        del box
        assert ref() is None
        # garbage cycles are collected before the freeze, not kept for good
        gc.unfreeze()
        cycle = Box()
        cycle.me = cycle
        ref = weakref.ref(cycle)
        del cycle
        assert ref() is not None  # only the cyclic collector can free it
        settle()
        assert ref() is None
    finally:
        gc.unfreeze()
