"""``perpdesk serve --replay FILE``: a bar file replayed live through the server.

The file (CSV or Parquet OHLCV, any interval) becomes the same tick stream as in
``perpdesk backtest`` (``app/marketdata/bars.py read_bars``: each bar four points,
each a quote, a trade print and a mark), optionally merged with a funding-rate
file (``app/simulate.py with_funding``), and goes through the command bus like
any live feed: the engine, the paper venue, the strategy host, the event log and
the dashboard all run as in production. With a file of recorded signals
(``--replay-signals``, app/marketdata/recorded_signals.py) each signal goes in at
its time, after the market data at or before it, as ``POST /api/v1/signals`` would
submit it (seed 002's simulation mode: signals replayed against the market).

Time is the data's (``ReplayClock``): the engine starts at the file's first
timestamp and the bus processes every update at its own timestamp
(``CommandBus(market_time=...)``). At a speed factor the feed releases updates
``speed`` times faster than real time and the clock runs on between them; at
``max`` speed (0) the feed goes as fast as the bus takes it, never more than
``HIGH_WATER`` updates ahead of it, and the clock is exactly the time of the
last update processed — so a replay at max speed steps the engine exactly as a
backtest does, which ``tests/runtime/test_replay_equals_backtest.py`` proves.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.config import Settings
from app.domain.instruments import Instrument
from app.domain.market import FundingRate, MarketUpdate
from app.domain.rejections import CommandRefused
from app.domain.signals import SubmitSignal
from app.marketdata.bars import (
    bar_file_layout,
    detect_interval,
    format_interval,
    parse_interval,
    read_bars,
    read_funding_rates,
)
from app.marketdata.recorded_signals import RecordedSignal, SignalFile
from app.runtime.bus import StorageUnavailable
from app.runtime.feeds import cancel_task
from app.simulate import NOTIONAL_WITHOUT_VOLUME, merged_in, with_funding

log = logging.getLogger(__name__)

# At max speed: updates queued on the bus before the feed waits for it to drain
# (bounded memory, and a command from the API never waits behind more than this).
HIGH_WATER = 2_000
# Updates handed over between yields to the event loop (requests keep being served).
YIELD_EVERY = 256
DRAIN_POLL_S = 0.002
# A recorded signal the log could not take (it refuses writes): tried again after this.
STORAGE_RETRY_S = 0.2


class ReplayClock:
    """The engine's clock in a replay: the market data's time.

    It starts at the file's first timestamp. At max speed (``speed`` None) it is
    the time of the last update the engine processed (the bus tells it:
    ``advance_to``), so nothing happens between two updates, as in a backtest. At
    a speed factor it also runs on ``speed`` times faster than the wall clock from
    when the feed starts, so latency, expiries and timers fall due between updates
    as they would live; it never goes back. When the data ends, it stops.
    """

    def __init__(self, start: datetime, speed: float | None,
                 wall: Callable[[], datetime] | None = None):
        self.speed = speed
        self._data_at = start
        self._wall = wall or (lambda: datetime.now(UTC))
        self._paced_from: tuple[datetime, datetime] | None = None  # (data time, wall time)
        # The time of the next update the feed holds: a paced clock waits there for it
        # (a slow start or a busy bus must not run time ahead of the data, whose marks
        # would then look stale and whose orders would expire early).
        self._horizon: datetime | None = None

    def start(self) -> None:
        """The feed starts: a paced clock runs from now on."""
        self._paced_from = (self._data_at, self._wall())

    def stop(self) -> None:
        """The data has ended: time stops with it (at the last update processed, or
        wherever a paced clock had got), so its marks do not turn stale."""
        self._data_at = self()
        self._paced_from = None
        self._horizon = None

    def hold_at(self, at: datetime) -> None:
        """The feed's next update is at ``at``: a paced clock goes no further until it
        is fed (then the feed moves the horizon on)."""
        self._horizon = at

    def advance_to(self, at: datetime) -> None:
        """The engine has processed the data up to ``at``."""
        if at > self._data_at:
            self._data_at = at

    def __call__(self) -> datetime:
        if self.speed is None or self._paced_from is None:
            return self._data_at
        data_from, wall_from = self._paced_from
        wall = self._wall()
        paced = data_from + (wall - wall_from) * self.speed
        horizon = self._horizon
        if horizon is not None and paced > horizon:
            # The data is late: time waits at it, and paces on from there once it comes.
            paced = horizon
            self._paced_from = (horizon, wall)
        return paced if paced > self._data_at else self._data_at


@dataclass(frozen=True, slots=True)
class ReplaySpec:
    """What to replay (the server's settings, checked)."""

    path: Path
    symbol: str
    venue: str
    speed: float | None  # None: as fast as the bus takes it
    funding: Path | None = None
    interval: timedelta | None = None  # None: detected from the file
    signals: Path | None = None  # recorded signals submitted at their times
    client: str | None = None  # whose signals a file without a client column holds


def parse_speed(text: str | float) -> float | None:
    """``"60"`` -> 60.0; ``"max"`` or 0 -> None (as fast as possible)."""
    if isinstance(text, str) and text.strip().lower() == "max":
        return None
    try:
        speed = float(text)
    except ValueError:
        raise ValueError(f"replay speed must be a number or 'max', not {text!r}") from None
    if speed != speed or speed < 0 or speed > 1_000_000:
        raise ValueError(f"replay speed must be between 0 (max) and 1000000, not {text!r}")
    return None if speed == 0 else speed


def replay_updates(spec: ReplaySpec, instrument: Instrument
                   ) -> tuple[Iterator[MarketUpdate], timedelta, str]:
    """The file's tick stream (lazy), its bar interval and a one-line description."""
    layout = bar_file_layout(spec.path)  # fails fast on a file that is not a bar file
    interval = spec.interval or detect_interval(spec.path)
    feed: Iterable[MarketUpdate] = read_bars(
        spec.path, venue=spec.venue, symbol=spec.symbol, tick=instrument.tick_size,
        interval=interval, size_step=instrument.step_size,
        notional_without_volume=NOTIONAL_WITHOUT_VOLUME if layout.volume is None else None)
    description = (f"{spec.path.name}: {spec.symbol} on {spec.venue}, "
                   f"{format_interval(interval)} bars")
    if spec.funding is not None:
        feed = with_funding(feed, read_funding_rates(spec.funding, venue=spec.venue,
                                                     symbol=spec.symbol))
        description += f", funding from {spec.funding.name}"
    return iter(feed), interval, description


def open_replay(settings: Settings, instruments: list[Instrument], venues: list[str],
                clients: list[str]) -> Replay:
    """The replay ``settings`` ask for, checked against the configured instruments
    (raises ValueError or OSError with a message for a person)."""
    if settings.replay is None:
        raise ValueError("no replay file given")
    venue = settings.replay_venue or venues[0]
    symbol = settings.replay_symbol
    found = [i for i in instruments if i.venue == venue and i.symbol == symbol]
    if not found:
        known = sorted({f"{i.symbol} on {i.venue}" for i in instruments})
        raise ValueError(f"replay symbol {symbol} on {venue} is not configured "
                         f"(configured: {', '.join(known)})")
    interval = parse_interval(settings.replay_interval) if settings.replay_interval else None
    funding, signals = settings.replay_funding, settings.replay_signals
    if signals is not None and not clients:
        raise ValueError("recorded signals need a configured client to trade for")
    spec = ReplaySpec(Path(settings.replay).expanduser(), symbol, venue,
                      parse_speed(settings.replay_speed),
                      Path(funding).expanduser() if funding is not None else None, interval,
                      Path(signals).expanduser() if signals is not None else None,
                      clients[0] if clients else None)
    return Replay(spec, found[0])


class Replay:
    """One replay: its clock, its feed task and what it has done (for /readyz)."""

    def __init__(self, spec: ReplaySpec, instrument: Instrument):
        self.spec = spec
        updates, self.interval, self.description = replay_updates(spec, instrument)
        first = next(updates, None)
        if first is None:
            raise ValueError(f"{spec.path}: no bars to replay")
        self.first_at: datetime = first.ts
        self.clock = ReplayClock(first.ts, spec.speed)
        market: Iterator[MarketUpdate] = itertools.chain((first,), updates)
        self._updates: Iterator[MarketUpdate | RecordedSignal] = market
        self.state = "pending"  # running, ended, failed
        self.error: str | None = None
        self.updates = 0
        self.funding_rates = 0
        self.last_at: datetime | None = None
        self._task: asyncio.Task | None = None
        self.signal_file: SignalFile | None = None  # its ``counts``: what came of them
        if spec.signals is not None:
            assert spec.client is not None
            self.signal_file = SignalFile(spec.signals, venue=spec.venue, symbol=spec.symbol,
                                          client=spec.client)
            self.signal_file.check()
            self.description += f", signals from {spec.signals.name}"
            # Each after the updates at or before its time (the market it was made on);
            # those before the first update or after the last have no market: counted.
            counts = self.signal_file.counts

            def left_out(_: RecordedSignal) -> None:
                counts.outside_data += 1

            with_signals = merged_in(market, self.signal_file, left_out)
            self._updates = with_signals

    @property
    def key(self) -> tuple[str, str]:
        return self.spec.venue, self.spec.symbol

    def start(self, sink: Callable[[MarketUpdate], None], backlog: Callable[[], int],
              drained: Callable[[], Awaitable[None]] | None = None,
              submit: Callable[[SubmitSignal], Awaitable[object]] | None = None) -> None:
        """Feed ``sink`` (the bus); ``backlog`` is how much it has queued, ``drained``
        waits until what it has queued is committed (the replay has ended only then),
        ``submit`` runs a recorded signal's command through the bus behind what was
        queued before it and returns once it is committed."""
        if self.signal_file is not None and submit is None:
            raise ValueError("a replay with recorded signals needs a way to submit them")
        self._task = asyncio.create_task(self._run(sink, backlog, drained, submit),
                                         name="feed-replay")

    async def stop(self) -> None:
        await cancel_task(self._task)
        self._task = None

    async def wait(self) -> None:
        """Until the feed has ended (tests)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def _submit(self, recorded: RecordedSignal,
                      submit: Callable[[SubmitSignal], Awaitable[object]]) -> None:
        """One recorded signal through the bus, behind the updates queued before it.
        A refusal is counted and the replay goes on (as a live sender's would); while
        the log refuses writes it waits, as the market data does."""
        assert self.signal_file is not None
        counts = self.signal_file.counts
        while True:
            try:
                await submit(recorded.command)
            except CommandRefused as exc:
                counts.refuse(recorded, exc.rejection.message)
                log.warning("replayed signal refused (%s line %d): %s",
                            self.spec.signals, recorded.line, exc)
            except StorageUnavailable:
                await asyncio.sleep(STORAGE_RETRY_S)
                continue
            else:
                counts.submitted += 1
            return

    def status(self) -> dict[str, object]:
        speed = self.spec.speed
        body: dict[str, object] = {
            "file": self.spec.path.name, "symbol": self.spec.symbol,
            "venue": self.spec.venue, "speed": "max" if speed is None else f"{speed:g}",
            "state": self.state, "updates": self.updates,
            "first_at": self.first_at.isoformat(),
            "last_at": self.last_at.isoformat() if self.last_at else None,
            "error": self.error}
        if self.signal_file is not None:
            body["signals"] = {"file": self.signal_file.path.name,
                               **self.signal_file.counts.as_json()}
        return body

    async def _run(self, sink: Callable[[MarketUpdate], None], backlog: Callable[[], int],
                   drained: Callable[[], Awaitable[None]] | None,
                   submit: Callable[[SubmitSignal], Awaitable[object]] | None) -> None:
        clock, speed = self.clock, self.spec.speed
        self.state = "running"
        clock.start()
        log.info("replay started: %s at %s", self.description,
                 "max speed" if speed is None else f"{speed:g}x")
        try:
            for update in self._updates:
                if speed is not None:
                    clock.hold_at(update.ts)
                    delay = (update.ts - clock()).total_seconds() / speed
                    if delay > 0:
                        await asyncio.sleep(delay)
                # Backpressure: never more than HIGH_WATER updates ahead of the bus.
                while backlog() >= HIGH_WATER:
                    await asyncio.sleep(DRAIN_POLL_S)
                if isinstance(update, RecordedSignal):
                    assert submit is not None
                    await self._submit(update, submit)
                    continue
                sink(update)
                self.updates += 1
                self.funding_rates += type(update) is FundingRate
                self.last_at = update.ts
                if self.updates % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
        except (OSError, ValueError) as exc:  # a bad row halfway: the data stops there
            self.state, self.error = "failed", str(exc)[:500]
            clock.stop()
            log.error("replay of %s stopped at update %d: %s", self.spec.path.name,
                      self.updates, exc)
            return
        # The data has ended: time stops now, not once the bus has committed the rest
        # (at max speed the bus still moves it to each update it processes).
        clock.stop()
        if drained is not None:
            try:
                await drained()
            except Exception as exc:  # the log refuses writes: the bus holds the data
                log.warning("replay ended, its last updates not committed yet: %s", exc)
        self.state = "ended"
        log.info("replay ended: %s, %d updates%s, %s -> %s (the server stays up)",
                 self.description, self.updates,
                 f" ({self.funding_rates} funding rates)" if self.funding_rates else "",
                 self.first_at, self.last_at)
