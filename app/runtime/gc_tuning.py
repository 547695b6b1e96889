"""Garbage-collector settings for a long-running, latency-sensitive process.

CPython's cycle collector stops the world, and a full (generation 2) pass walks
every tracked object. After recovery the heap holds everything imported plus
the whole rebuilt engine state, so with the default settings the server
paused for tens of milliseconds every so often in the middle of an order storm
(``bench/api_orders.py``, orders_limit: p99 ~100 ms with the defaults, ~25 ms
with these settings, before the other order-path work brought it to ~14 ms).

What is left: the engine keeps every order in memory, so a full pass still
grows with the order history (tens of milliseconds after ~100,000 orders),
though it comes more rarely as the heap grows. Keeping only open and recent
orders in memory is the fix; it is not done yet.

``tuned_gc`` (the server's lifespan runs inside it):

* collects once and then *freezes* what exists after start-up (modules,
  configuration, the recovered state): those objects move to a permanent
  generation that later passes skip. They are still freed by reference
  counting when dropped; only a cycle among them would outlive its use.
* raises the generation-0 threshold (700 -> 10,000 allocations), so the
  frequent young passes run an order of magnitude less often and find most
  short-lived objects (a request's) already freed.

On exit it unfreezes and restores the previous thresholds.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

THRESHOLDS = (10_000, 10, 10)


@contextmanager
def tuned_gc() -> Iterator[None]:
    previous = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()
