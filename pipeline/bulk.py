"""Bulk work without the cyclic garbage collector: ``paused_gc()``.

A replay batch decodes thousands of events into dicts and tuples, and a bulk append validates
thousands of envelopes; every 700 new containers CPython runs a collection, and the older
generations' collections walk every live object of the process. Measured on the replay benchmark,
decoding a page of the log took four times as long with the collector on as off. None of these
objects form cycles (JSON values, tuples, validated models), so reference counting frees them as the
batch goes; the collector only ever looks at them to find nothing.

``paused_gc`` switches the collector off for a bounded piece of work and back on afterwards (a
collection then finds whatever cycles the work made, as it would have). The switch is process-wide,
so the pause is counted: with threads, the collector comes back on when the last pause ends, and it
is never switched on by a pause if it was off before (someone else's choice).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_pauses = 0
_restore = False


@contextmanager
def paused_gc() -> Iterator[None]:
    global _pauses, _restore
    with _lock:
        if _pauses == 0:
            _restore = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _lock:
            _pauses -= 1
            if _pauses == 0 and _restore:
                gc.enable()
