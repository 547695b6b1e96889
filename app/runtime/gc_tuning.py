"""Garbage-collector settings for a long-running, latency-sensitive process.

CPython's cycle collector stops the world: a pass over a generation walks every
tracked object in it (and the younger ones). What the server holds is bounded
(the engine keeps open and recent orders only, app/engine/retention.py), but
with CPython's default settings a young pass still walked up to 100,000 new
objects and a full pass everything created since start-up: pauses of 50 to
1,500 ms in ``bench/long_run.py``.

``tuned_gc`` (the server's lifespan runs inside it):

* collects once and then *freezes* what exists after start-up (modules,
  configuration, the recovered state): those objects move to a permanent
  generation that later passes skip. They are still freed by reference
  counting when dropped (orders, trades and their values hold no cycles).
* keeps young passes short: generation 0 after 2,000 net allocations, 1 after
  5 of those, so a young pass walks a few thousand objects at most.
* freezes again after every full pass: what survived it is live, and the next
  full pass walks only what was promoted since. The price: an object frozen
  while live that later becomes part of a garbage *cycle* is not reclaimed
  (acyclic garbage, nearly all of it, is freed by reference counting anyway).

On exit it unfreezes and restores the previous thresholds.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

THRESHOLDS = (2_000, 5, 10)


def _freeze_after_full_pass(phase: str, info: dict[str, int]) -> None:
    if phase == "stop" and info.get("generation") == 2:
        gc.freeze()


@contextmanager
def tuned_gc() -> Iterator[None]:
    previous = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    gc.callbacks.append(_freeze_after_full_pass)
    try:
        yield
    finally:
        gc.callbacks.remove(_freeze_after_full_pass)
        gc.set_threshold(*previous)
        gc.unfreeze()
