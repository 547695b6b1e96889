"""Garbage-collector pacing for a long-running, latency-sensitive process.

CPython's cycle collector stops the world: a pass over a generation walks every
tracked object in it and in the younger ones. Left to itself it pauses the server
for tens of milliseconds, for two reasons ``bench/long_run.py`` shows:

* **Its trigger miscounts.** A young pass starts when allocations *minus
  deallocations* pass a threshold, and the deallocations counted include old
  objects. A server that keeps a bounded window of recent orders frees an old
  order for each new one, so the count stays flat while the young generation
  fills with the new orders: young passes walked 38,000 objects (27-66 ms) where
  the threshold said 2,000.
* **A full pass walks every long-lived object** (the recent orders and trades the
  engine keeps, the sessions, the configuration): 89 ms and more.

So ``tuned_gc`` (the server's lifespan runs inside it; so does the soak benchmark)
turns the automatic collector off and paces it by the clock instead
(``GcPacer``, on a thread of its own):

* every ``young_every_s`` (25 ms) a pass over generation 0: it walks only what was
  allocated since the last pass and is still alive, a few hundred to a few thousand
  objects under load, well under a millisecond to a few milliseconds;
* every ``middle_every``-th pass (each 200 ms) also walks generation 1 (what
  survived the young passes since), then *freezes* what survived it: those objects
  move to the permanent generation, which no pass walks. Reference counting still
  frees them when they are dropped (orders, trades and their values hold no
  cycles; the command bus takes care not to leave refusal tracebacks in cycles);
* what freezing costs: a reference *cycle* among objects that lived through a
  generation-1 pass is not reclaimed until the next sweep. ``sweep_every_s``
  (``PERPDESK_GC_SWEEP_HOURS``, default 24; 0 never) unfreezes everything and runs
  one full pass, the one pause of this scheme that is not short (it walks the whole
  heap: ~100-200 ms), and the only one over 10 ms.

The pacer's figures (passes, longest pause per generation, frozen objects, sweeps)
are on ``/metrics``. On exit the collector is set back as it was.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

log = logging.getLogger("perpdesk.gc")

YOUNG_EVERY_S = 0.010
MIDDLE_EVERY = 10
DEFAULT_SWEEP_HOURS = 24.0
SLOW_PASS_S = 0.010  # a young pass longer than this is logged (a warning)


@dataclass(slots=True)
class GcStats:
    """What the pacer did: passes per generation (2: sweeps), their total and longest
    wall-clock pause in seconds."""

    passes: list[int] = field(default_factory=lambda: [0, 0, 0])
    total_s: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    max_s: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    # The longest pass's CPU time on the pacer's thread: a pause much longer than its
    # CPU time waited for a core (a busy machine), not for the collector's work.
    max_cpu_s: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    collected: list[int] = field(default_factory=lambda: [0, 0, 0])

    @property
    def max_pause_s(self) -> float:
        return max(self.max_s)


class GcPacer:
    """Runs the collector's passes on a clock (see the module docstring).

    ``step`` is one pacing step; the thread ``start`` launches calls it every
    ``young_every_s`` until ``stop``. ``sweep_every_s`` None: never sweep."""

    def __init__(self, young_every_s: float = YOUNG_EVERY_S, middle_every: int = MIDDLE_EVERY,
                 sweep_every_s: float | None = DEFAULT_SWEEP_HOURS * 3600):
        if young_every_s <= 0 or middle_every < 1:
            raise ValueError("young_every_s must be > 0 and middle_every >= 1")
        if sweep_every_s is not None and sweep_every_s <= 0:
            raise ValueError("sweep_every_s must be > 0 (None: never)")
        self.young_every_s = young_every_s
        self.middle_every = middle_every
        self.sweep_every_s = sweep_every_s
        self.stats = GcStats()
        self._steps = 0
        self._next_sweep: float | None = None
        self._lock = threading.Lock()  # step() on the thread, sweep() from anywhere
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def step(self, now: float | None = None) -> int:
        """One pass; returns the generation it walked (2: a sweep)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._steps += 1
            if self.sweep_every_s is not None and self._next_sweep is None:
                self._next_sweep = now + self.sweep_every_s
            if self._next_sweep is not None and now >= self._next_sweep:
                generation = 2
                self._next_sweep = now + (self.sweep_every_s or 0)
            else:
                generation = 1 if self._steps % self.middle_every == 0 else 0
            self._collect(generation)
        return generation

    def sweep(self) -> float:
        """A sweep now, whatever the schedule; returns its pause in seconds."""
        with self._lock:
            return self._collect(2)

    def _collect(self, generation: int) -> float:
        started, started_cpu = time.perf_counter(), time.thread_time()
        if generation == 2:
            gc.unfreeze()
        collected = gc.collect(generation)
        if generation:
            gc.freeze()  # what lived through this pass is long-lived: no pass walks it
        pause = time.perf_counter() - started
        cpu = time.thread_time() - started_cpu
        stats = self.stats
        stats.passes[generation] += 1
        stats.total_s[generation] += pause
        stats.collected[generation] += collected
        if pause > stats.max_s[generation]:
            stats.max_s[generation] = pause
            stats.max_cpu_s[generation] = cpu
        if generation == 2:
            log.info("gc sweep: %.1f ms, %d objects collected, %d frozen", pause * 1000,
                     collected, gc.get_freeze_count())
        elif pause > SLOW_PASS_S:
            log.warning("gc pass over generation %d took %.1f ms (%.1f ms of CPU)",
                        generation, pause * 1000, cpu * 1000)
        return pause

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the pacer is running")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="gc-pacer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.young_every_s):
            try:
                self.step()
            except Exception:  # a finalizer's bug must not end the pacing
                log.exception("gc pass failed")


# The pacer of the ``tuned_gc`` block in force (for /metrics), None outside one.
current: GcPacer | None = None


@contextmanager
def tuned_gc(sweep_hours: float = DEFAULT_SWEEP_HOURS,
             young_every_s: float = YOUNG_EVERY_S) -> Iterator[GcPacer]:
    """Collect and freeze what exists now (modules, configuration, the recovered
    state), then pace the collector until the block ends. ``sweep_hours`` 0: never
    sweep. Nested (two servers in one process, as tests run them): the outer block's
    pacer serves both."""
    global current
    if current is not None:
        yield current
        return
    was_enabled = gc.isenabled()
    gc.disable()
    gc.collect()
    gc.freeze()
    pacer = GcPacer(young_every_s, sweep_every_s=sweep_hours * 3600 if sweep_hours else None)
    pacer.start()
    current = pacer
    try:
        yield pacer
    finally:
        current = None
        pacer.stop()
        gc.unfreeze()
        if was_enabled:
            gc.enable()
