"""Margin windows (seed 003): venues whose margin requirements change by time of
day. The engine follows its own clock through each venue's windows:

* at every transition it records ``MarginWindowChanged`` with a margin snapshot
  per account (utilization under the old and the new requirements);
* ahead of a window that raises requirements (``lead``, default 15 minutes) it
  warns each account whose margin in use would then exceed its equity
  (``MarginWindowWarning``, once per account and transition);
* the window in force scales initial and maintenance margin in every valuation,
  so pre-trade checks and liquidation apply its requirements.

Checked at most once a second of engine time; the window in force is recorded
by its events, so a restart resumes in the same one (or records the change it
slept through).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from app.domain.events import Event
from app.domain.risk import (
    MarginSnapshot,
    MarginWindow,
    MarginWindowChanged,
    MarginWindowWarning,
    next_boundary,
    window_at,
)

if TYPE_CHECKING:
    from app.engine.engine import Engine

ONE = Decimal(1)
ZERO = Decimal(0)
CHECK_EVERY = timedelta(seconds=1)
DEFAULT_LEAD = timedelta(minutes=15)


class MarginWindows:
    def __init__(self, engine: Engine, windows: Mapping[str, tuple[MarginWindow, ...]],
                 lead: timedelta = DEFAULT_LEAD):
        self.engine = engine
        self.windows = {v: tuple(w) for v, w in windows.items() if w}
        self.lead = lead
        self._next_check: datetime | None = None
        self._warned: set[tuple[str, datetime, str]] = set()

    def multipliers(self, venue: str) -> tuple[Decimal, Decimal]:
        """(initial, maintenance) multipliers in force on ``venue``."""
        window = self.current(venue)
        if window is None:
            return ONE, ONE
        return window.initial_multiplier, window.maintenance_multiplier

    def current(self, venue: str) -> MarginWindow | None:
        name = self.engine.state.margin_windows.get(venue)
        if name is None:
            return None
        return next((w for w in self.windows.get(venue, ()) if w.name == name), None)

    def upcoming(self, venue: str, now: datetime) -> tuple[datetime | None, MarginWindow | None]:
        """The next transition on ``venue`` and the window it leads into."""
        windows = self.windows.get(venue, ())
        at = next_boundary(windows, now)
        return at, (window_at(windows, at) if at is not None else None)

    def step(self, now: datetime, out: list[Event]) -> None:
        if not self.windows or (self._next_check is not None and now < self._next_check):
            return
        self._next_check = now + CHECK_EVERY
        for venue, windows in self.windows.items():
            due = window_at(windows, now)
            if (due.name if due else None) != self.engine.state.margin_windows.get(venue):
                self._transition(venue, due, now, out)
            self._warn_ahead(venue, windows, now, out)

    def _transition(self, venue: str, window: MarginWindow | None, now: datetime,
                    out: list[Event]) -> None:
        engine = self.engine
        before = self.current(venue)
        old_init = before.initial_multiplier if before else ONE
        new_init = window.initial_multiplier if window else ONE
        snapshots = []
        for client, v in sorted(engine.state.accounts):
            if v != venue:
                continue
            s = engine.summary(client, venue)
            used = s.margin_used + s.order_margin
            after = used * new_init / old_init
            snapshots.append(MarginSnapshot(client, s.equity, _ratio(used, s.equity),
                                            _ratio(after, s.equity)))
        engine._emit(MarginWindowChanged(
            venue, before.name if before else None, window.name if window else None,
            new_init, window.maintenance_multiplier if window else ONE, tuple(snapshots),
            now), out)

    def _warn_ahead(self, venue: str, windows: tuple[MarginWindow, ...], now: datetime,
                    out: list[Event]) -> None:
        at = next_boundary(windows, now)
        if at is None or now < at - self.lead:
            return
        coming = window_at(windows, at)
        init_now, _ = self.multipliers(venue)
        init_then = coming.initial_multiplier if coming else ONE
        if init_then <= init_now:
            return
        engine = self.engine
        for client, v in sorted(engine.state.accounts):
            key = (venue, at, client)
            if v != venue or key in self._warned:
                continue
            s = engine.summary(client, venue)
            used = s.margin_used + s.order_margin
            then = used * init_then / init_now
            if used and then > s.equity:
                self._warned.add(key)
                engine._emit(MarginWindowWarning(venue, client, coming.name if coming else None,
                                                 at, s.equity, used, then, now), out)


def _ratio(used: Decimal, equity: Decimal) -> Decimal:
    if equity <= 0:
        return ZERO if not used else Decimal("Infinity")
    return (used / equity).quantize(Decimal("0.0001"))
