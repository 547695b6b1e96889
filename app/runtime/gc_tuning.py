"""Garbage-collector settings for a long-running, latency-sensitive process.

CPython's cycle collector stops the world: a pass over a generation walks every
tracked object in it and in the younger ones. Left to itself it paused the server
for tens of milliseconds, for two reasons ``bench/long_run.py`` shows:

* **Its trigger miscounts.** A young pass starts when allocations *minus
  deallocations* pass a threshold, and the deallocations counted include old
  objects. A server that keeps a bounded window of recent orders frees an old
  order for each new one, so the count stays flat while the young generation
  fills with the new orders: young passes walked 38,000 objects (27-66 ms) where
  the threshold said 2,000.
* **A full pass walks every long-lived object** (the recent orders and trades the
  engine keeps, the sessions, the configuration): 89 ms and more.

``tuned_gc`` (the server's lifespan runs inside it; so does the soak benchmark):

* keeps the automatic young passes (generation 0 after 2,000 net allocations,
  generation 1 after ``middle_every`` of those): they cost nothing while objects
  die young, as a request's do;
* adds a **backstop** (``GcPacer``, on a thread of its own): when no pass has run
  for ``young_every_s`` (50 ms), it runs one, so the young generation never holds
  more than 50 ms of survivors however the count drifts. Every ``middle_every``-th
  young pass walks generation 1 too;
* **freezes** what survived each generation-1 pass: those objects move to the
  permanent generation, which no pass walks, so there is never a long full pass.
  Reference counting still frees them when they are dropped (orders, trades and
  their values hold no cycles; the command bus leaves no refusal traceback in one);
* what freezing costs: a reference *cycle* among objects that lived through a
  generation-1 pass is not reclaimed until the next **sweep**: every
  ``sweep_every_s`` (``PERPDESK_GC_SWEEP_HOURS``, default 24; 0 never) everything
  is unfrozen and one full pass runs, the one long pause of this scheme (it walks
  the whole heap: ~100-200 ms).

Every pass is timed (wall clock and this thread's CPU: on a machine with more busy
threads than cores a pass can be descheduled while it holds the interpreter lock,
and the CPU time says how much of the pause was the collector's own work); the
figures are on ``/metrics`` and a pass over 10 ms is logged. On exit the collector
is set back as it was.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("perpdesk.gc")

YOUNG_EVERY_S = 0.050
MIDDLE_EVERY = 4
YOUNG_THRESHOLD = 2_000
# Full passes only by the sweep (generation 2 is kept empty by the freezes anyway).
NO_AUTOMATIC_FULL_PASS = 1_000_000_000
DEFAULT_SWEEP_HOURS = 24.0
SLOW_PASS_S = 0.010  # a pass longer than this is logged (a warning)


@dataclass(slots=True)
class GcStats:
    """Every pass while the pacer is attached: passes per generation (2: sweeps), their
    total and longest wall-clock pause, the longest one's CPU time, what they freed."""

    passes: list[int] = field(default_factory=lambda: [0, 0, 0])
    total_s: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    max_s: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    max_cpu_s: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    collected: list[int] = field(default_factory=lambda: [0, 0, 0])
    backstops: int = 0  # passes the pacer ran because none had run for young_every_s

    @property
    def max_pause_s(self) -> float:
        return max(self.max_s)


class GcPacer:
    """Times every pass, freezes after each generation-1 pass, and runs a young pass
    when none has run for ``young_every_s`` (see the module docstring).

    ``attach``/``detach`` install and remove its ``gc.callbacks`` hook; ``step`` is one
    backstop check (the thread ``start`` launches calls it every ``young_every_s``);
    ``sweep`` unfreezes and runs a full pass now. ``sweep_every_s`` None: never."""

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
        self._passes = 0  # every pass seen by the hook
        self._seen = 0  # ... as of the last step
        self._started = 0.0
        self._started_cpu = 0.0
        self._slow: deque[tuple[int, float, float]] = deque(maxlen=100)
        self._next_sweep: float | None = None
        self._lock = threading.Lock()  # step() on the thread, sweep() from anywhere
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- the hook ---------------------------------------------------------------------

    def attach(self) -> None:
        gc.callbacks.append(self._hook)

    def detach(self) -> None:
        if self._hook in gc.callbacks:
            gc.callbacks.remove(self._hook)

    def _hook(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started_cpu = time.thread_time()
            self._started = time.perf_counter()
            return
        generation = info["generation"]
        if generation >= 1:
            gc.freeze()  # what lived through this pass is long-lived: no pass walks it
        pause = time.perf_counter() - self._started
        cpu = time.thread_time() - self._started_cpu
        self._passes += 1
        stats = self.stats
        stats.passes[generation] += 1
        stats.total_s[generation] += pause
        stats.collected[generation] += info.get("collected", 0)
        if pause > stats.max_s[generation]:
            stats.max_s[generation] = pause
            stats.max_cpu_s[generation] = cpu
        if pause > SLOW_PASS_S and generation < 2:
            self._slow.append((generation, pause, cpu))  # logged by the thread, not here

    # ---- the backstop -----------------------------------------------------------------

    def step(self, now: float | None = None) -> int | None:
        """Run a young pass if none ran since the last step (the generation it walked),
        or the sweep if it is due (2); None when passes ran on their own."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if self.sweep_every_s is not None and self._next_sweep is None:
                self._next_sweep = now + self.sweep_every_s
            if self._next_sweep is not None and now >= self._next_sweep:
                self._next_sweep = now + (self.sweep_every_s or 0)
                self._sweep()
                return 2
            if self._passes != self._seen:
                self._seen = self._passes
                return None
            generation = 1 if gc.get_count()[1] + 1 >= self.middle_every else 0
            gc.collect(generation)
            self.stats.backstops += 1
            self._seen = self._passes
            return generation

    def sweep(self) -> float:
        """A sweep now, whatever the schedule; returns its pause in seconds."""
        with self._lock:
            return self._sweep()

    def _sweep(self) -> float:
        started = time.perf_counter()
        gc.unfreeze()
        collected = gc.collect(2)
        gc.freeze()  # (the hook froze already when attached; a no-op then)
        pause = time.perf_counter() - started
        self._seen = self._passes
        log.info("gc sweep: %.1f ms, %d objects collected, %d frozen", pause * 1000,
                 collected, gc.get_freeze_count())
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
                while self._slow:
                    generation, pause, cpu = self._slow.popleft()
                    log.warning("gc pass over generation %d took %.1f ms (%.1f ms of CPU)",
                                generation, pause * 1000, cpu * 1000)
            except Exception:  # a finalizer's bug must not end the pacing
                log.exception("gc pass failed")


# The pacer of the ``tuned_gc`` block in force (for /metrics), None outside one.
current: GcPacer | None = None


@contextmanager
def tuned_gc(sweep_hours: float = DEFAULT_SWEEP_HOURS,
             young_every_s: float = YOUNG_EVERY_S) -> Iterator[GcPacer]:
    """Collect and freeze what exists now (modules, configuration, the recovered
    state), then run the collector as the module docstring says until the block
    ends. ``sweep_hours`` 0: never sweep. Nested (two servers in one process, as tests
    run them): the outer block's pacer serves both."""
    global current
    if current is not None:
        yield current
        return
    was_enabled, thresholds = gc.isenabled(), gc.get_threshold()
    gc.collect()
    gc.freeze()
    pacer = GcPacer(young_every_s, sweep_every_s=sweep_hours * 3600 if sweep_hours else None)
    gc.set_threshold(YOUNG_THRESHOLD, pacer.middle_every, NO_AUTOMATIC_FULL_PASS)
    gc.enable()
    pacer.attach()
    pacer.start()
    current = pacer
    try:
        yield pacer
    finally:
        current = None
        pacer.stop()
        pacer.detach()
        gc.set_threshold(*thresholds)
        gc.unfreeze()
        if not was_enabled:
            gc.disable()
