"""Bars built from the feed, on the engine clock, for any number of intervals.

A ``BarBuilder`` turns price points (trade prints, quote mids or marks, each
with its exchange time) into OHLCV bars of one interval, aligned on a grid of
that interval from the Unix epoch (a 1 h bar starts on the hour, a 5 m bar at
:00, :05, ...). A bar closes when a point of a later bar arrives, or when the
clock passes its end (``close_due``) — never before its end, so a closed bar is
final and a replay closes the same bars. An interval in which nothing printed
makes no bar (indicators see only real bars).

``MultiBars`` feeds several builders at once and hands back what closed in order
of their ends, the longest interval first among bars that end together, so a
decision on the 5 m bar that closes at 10:00 already sees the 1 h bar that
closed with it.

Volume is quote notional (price × qty of trade prints); points without a qty
(mids, marks) move prices only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from app.domain.strategies import SavedBar

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FAR_FUTURE = datetime.max.replace(tzinfo=UTC)
ZERO = Decimal(0)
_INTERVAL = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_interval(text: str) -> timedelta:
    """``"5m"`` → 5 minutes; units s, m, h, d; at least one second, at most a week."""
    match = _INTERVAL.match(text)
    if match is None:
        raise ValueError(f"not an interval: {text!r} (e.g. 1m, 5m, 1h)")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if not 1 <= seconds <= 7 * 86400:
        raise ValueError(f"interval {text!r} is outside 1s..7d")
    return timedelta(seconds=seconds)


@dataclass(frozen=True, slots=True)
class Bar:
    start: datetime
    interval: timedelta
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal = ZERO  # quote notional traded
    points: int = 1

    @property
    def end(self) -> datetime:
        return self.start + self.interval


class BarBuilder:
    """OHLCV bars of one interval from timestamped price points."""

    __slots__ = (
        "_close",
        "_end",
        "_high",
        "_low",
        "_open",
        "_points",
        "_start",
        "_volume",
        "interval",
    )

    def __init__(self, interval: timedelta):
        if interval <= timedelta(0):
            raise ValueError("a bar interval must be positive")
        self.interval = interval
        self._start: datetime | None = None
        self._end = FAR_FUTURE  # the open bar's end (FAR_FUTURE: no bar open)
        self._open = self._high = self._low = self._close = self._volume = ZERO
        self._points = 0

    def bucket(self, ts: datetime) -> datetime:
        return EPOCH + ((ts - EPOCH) // self.interval) * self.interval

    def update(self, price: Decimal, ts: datetime, notional: Decimal = ZERO) -> Bar | None:
        """Add one point; the bar it closed, if any. Points older than the open bar
        (out of order) are dropped."""
        if self._start is None or not self._start <= ts < self._end:
            # Not the open bar's (most points are: they need no bucket worked out).
            closed: Bar | None = None
            start = self.bucket(ts)
            if self._start is not None:
                if start < self._start:
                    return None
                closed = self._bar()  # start > self._start: a later bar begins
                self._start = None
            self._start, self._end = start, start + self.interval
            self._open = self._high = self._low = self._close = price
            self._volume = notional
            self._points = 1
            return closed
        self.extend(price, notional)
        return None

    def extend(self, price: Decimal, notional: Decimal) -> None:
        """``update`` with a point known to fall inside the open bar."""
        if price > self._high:
            self._high = price
        if price < self._low:
            self._low = price
        self._close = price
        self._volume += notional
        self._points += 1

    def extend_many(self, prices: Sequence[Decimal], notionals: Sequence[Decimal]) -> None:
        """``extend`` with each point in turn (the same volume sum, in the same order)."""
        high, low = max(prices), min(prices)
        if high > self._high:
            self._high = high
        if low < self._low:
            self._low = low
        self._close = prices[-1]
        volume = self._volume
        for notional in notionals:
            volume += notional
        self._volume = volume
        self._points += len(prices)

    def close_due(self, now: datetime) -> Bar | None:
        """The open bar, closed, if the clock has reached its end."""
        if now < self._end:  # also when no bar is open (FAR_FUTURE)
            return None
        bar = self._bar()
        self._start, self._end = None, FAR_FUTURE
        return bar

    @property
    def end(self) -> datetime:
        """The open bar's end; FAR_FUTURE when none is open."""
        return self._end

    @property
    def forming(self) -> Bar | None:
        """The bar still forming (not final)."""
        return None if self._start is None else self._bar()

    def _bar(self) -> Bar:
        assert self._start is not None
        return Bar(self._start, self.interval, self._open, self._high, self._low,
                   self._close, self._volume, self._points)


class MultiBars:
    """Bars of several intervals from the same points."""

    def __init__(self, intervals: Iterable[timedelta]):
        self.builders = {i: BarBuilder(i) for i in sorted(set(intervals))}
        self._builders = list(self.builders.values())
        self._due = FAR_FUTURE  # the earliest end of an open bar: nothing closes before
        self._closed = bool(self._builders)  # whether some interval has no bar open

    def update(self, price: Decimal, ts: datetime, notional: Decimal = ZERO) -> list[Bar]:
        """Closed bars (by end, the longest first at the same end): the ones due
        by ``ts`` and any the point itself closed."""
        out = self.close_due(ts)
        for builder in self._builders:
            bar = builder.update(price, ts, notional)
            if bar is not None:
                out.append(bar)
        if len(out) > 1:
            out.sort(key=_order)
        self._settle()
        return out

    def quiet_until(self, seen_at: datetime) -> datetime:
        """Points from ``seen_at`` (the last one's time) on and before this time close
        no bar: they extend the open bars, and the first of them opens a bar in its
        bucket for an interval with none open (the bucket of ``seen_at``'s: points
        before its end fall in it)."""
        if not self._closed:
            return self._due
        until = self._due
        for builder in self._builders:
            if builder.end == FAR_FUTURE:
                until = min(until, builder.bucket(seen_at) + builder.interval)
        return until

    def extend(self, price: Decimal, ts: datetime, notional: Decimal = ZERO) -> None:
        """``update`` with a point before ``quiet_until``: it closes nothing."""
        if self._closed:
            for builder in self._builders:
                builder.update(price, ts, notional)
            self._settle()
            return
        for builder in self._builders:
            builder.extend(price, notional)

    def extend_trades(self, prices: Sequence[Decimal], notionals: Sequence[Decimal],
                      times: Sequence[datetime]) -> None:
        """``extend`` with prints before ``quiet_until``, each in turn."""
        if self._closed:  # the first opens the bars not open (the others extend them)
            self.extend(prices[0], times[0], notionals[0])
            prices, notionals = prices[1:], notionals[1:]
            if not prices:
                return
        for builder in self._builders:
            builder.extend_many(prices, notionals)

    def close_due(self, now: datetime) -> list[Bar]:
        if now < self._due:
            return []  # most updates: no open bar has reached its end
        out = [bar for b in self._builders if (bar := b.close_due(now)) is not None]
        if len(out) > 1:
            out.sort(key=_order)
        self._settle()
        return out

    def _settle(self) -> None:
        ends = [b.end for b in self._builders]
        self._due = min(ends, default=FAR_FUTURE)
        self._closed = FAR_FUTURE in ends  # some interval has no bar open


def _order(bar: Bar) -> tuple[datetime, timedelta]:
    return bar.end, -bar.interval


def aggregate(bars: Iterable[Bar], interval: timedelta) -> list[Bar]:
    """Bars of a longer ``interval`` from shorter ones (for warm-ups and tests)."""
    out: list[Bar] = []
    builder = BarBuilder(interval)
    current: Bar | None = None
    for bar in bars:
        start = builder.bucket(bar.start)
        if current is not None and start != current.start:
            out.append(current)
            current = None
        if current is None:
            current = Bar(start, interval, bar.open, bar.high, bar.low, bar.close,
                          bar.volume, bar.points)
        else:
            current = Bar(start, interval, current.open, max(current.high, bar.high),
                          min(current.low, bar.low), bar.close, current.volume + bar.volume,
                          current.points + bar.points)
    if current is not None:
        out.append(current)
    return out


# ---- kept for a restart (app/domain/strategies.py SavedBar) ----------------------------

def to_saved(symbol: str, bar: Bar) -> SavedBar:
    return SavedBar(symbol, int(bar.interval.total_seconds()), bar.start, bar.open, bar.high,
                    bar.low, bar.close, bar.volume, bar.points)


def from_saved(saved: SavedBar) -> Bar:
    return Bar(saved.start, timedelta(seconds=saved.interval_s), saved.open, saved.high,
               saved.low, saved.close, saved.volume, saved.points)


def saved_in_order(series: Iterable[Iterable[SavedBar]]) -> list[Bar]:
    """Every kept bar as the strategy first took them in: by end, the longest interval
    first at the same end (as ``MultiBars`` closes them)."""
    bars = [from_saved(s) for kept in series for s in kept]
    bars.sort(key=_order)
    return bars
