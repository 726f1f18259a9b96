"""Pausing Python's cyclic garbage collector while a large plan or run is built.

Building a plan of 100,000 steps allocates millions of containers, none of them
garbage; each allocation threshold crossed starts a collection that walks them all
again, which made reading and checking such a plan several times slower than the
work itself. The collector is paused for the duration only (and resumed as it was):
reference counting still frees everything, and no cycle lives long in that time.
Only the outermost block resumes the collector.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["paused_gc"]


@contextmanager
def paused_gc() -> Iterator[None]:
    """Disable the cyclic collector inside the block; restore its state after."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            # What was built here is still young to the collector: its next
            # collections would walk all of it (3 walks of millions of objects).
            # freeze + unfreeze moves every tracked object to the oldest generation
            # in O(1), without a walk; it stays collectable (unlike a freeze alone).
            # Not when the process froze objects of its own (a service that embeds
            # planrun, e.g. before forking workers): unfreeze would thaw them too.
            if gc.get_freeze_count() == 0:
                gc.freeze()
                gc.unfreeze()
            gc.enable()
