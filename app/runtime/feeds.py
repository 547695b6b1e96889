"""Market-data tasks: pace a feed on the wall clock and hand updates to the bus."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

from app.domain.instruments import Instrument
from app.domain.market import MarketUpdate
from app.marketdata.synthetic import SyntheticMarket

log = logging.getLogger(__name__)


async def cancel_task(task: asyncio.Task | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class FeedTask:
    """Runs a timestamped feed in real time: each update is released when the
    wall clock reaches its ``ts`` (the synthetic feed is generated starting now)."""

    def __init__(self, name: str, updates: Iterator[MarketUpdate],
                 sink: Callable[[MarketUpdate], None],
                 clock: Callable[[], datetime] | None = None, speed: float = 1.0):
        self.name = name
        self._clock = clock or (lambda: datetime.now(UTC))
        self._speed = speed
        self._updates = updates
        self._sink = sink
        self._task: asyncio.Task | None = None
        self.last_update_at: datetime | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"feed-{self.name}")

    async def stop(self) -> None:
        await cancel_task(self._task)
        self._task = None

    async def _run(self) -> None:
        for update in self._updates:
            delay = (update.ts - self._clock()).total_seconds() / self._speed
            if delay > 0:
                await asyncio.sleep(delay)
            self._sink(update)
            self.last_update_at = update.ts
        log.info("feed %s ended", self.name)


def synthetic_feed(instruments: list[Instrument], sink: Callable[[MarketUpdate], None], *,
                   seed: int, step_ms: int, clock: Callable[[], datetime] | None = None,
                   speed: float = 1.0) -> FeedTask:
    clock = clock or (lambda: datetime.now(UTC))
    start = clock() + timedelta(milliseconds=50)
    market = SyntheticMarket(instruments, seed=seed, start=start,
                             step=timedelta(milliseconds=step_ms))
    return FeedTask("synthetic", iter(market), sink, clock, speed)


class DemoClock:
    """Time for a demo: from its start it runs ``speed`` times as fast as the wall
    clock, so the engine, its strategies and the synthetic feed live hours in minutes."""

    def __init__(self, speed: float, wall: Callable[[], datetime] | None = None):
        self.speed = speed
        self._wall = wall or (lambda: datetime.now(UTC))
        self._origin = self._wall()

    def __call__(self) -> datetime:
        return self._origin + (self._wall() - self._origin) * self.speed


class ClockTask:
    """Calls ``tick`` every ``every`` seconds: the bus's clock tick (so time passes
    for the engine when no data arrives) and housekeeping such as alert checks."""

    def __init__(self, tick: Callable[[], None], every: float = 0.1):
        self._tick = tick
        self._every = every
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="clock")

    async def stop(self) -> None:
        await cancel_task(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            self._tick()
