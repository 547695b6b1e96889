"""The dashboard's daily recap panel: seed 000 §3.2's recap of one UTC day (the same
``analytics.daily_recap`` that answers ``GET /api/v1/reports/daily``, so the same
numbers and the same scope: every client the caller may see).

The dashboard renders its fragments synchronously on the event loop, and a recap is
a query over a day of trades and orders: it must not run there. So the panel shows
the last recap computed for its (visible clients, day), and a stale one is
recomputed in the background (on a worker thread, as the API does). A recap is stale
once anything was committed since it was computed; it is recomputed at most every
``REFRESH_SECONDS`` per (clients, day), however busy the bus, and the live hub's
once-a-second refresh of the panel then shows the new one. At most ``MAX_ENTRIES``
recaps are kept (the least recently shown go first).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, timedelta

from app.auth.principal import Principal
from app.runtime.bus import utc_now
from app.runtime.system import TradingSystem
from app.services.analytics import DailyRecap, daily_recap
from app.services.errors import ServiceError
from app.services.queries import Reader

log = logging.getLogger(__name__)

REFRESH_SECONDS = 2.0
MAX_ENTRIES = 64
# The panel's day choices, besides an ISO date (YYYY-MM-DD).
TODAY, YESTERDAY = "today", "yesterday"
_MIN_YEAR, _MAX_YEAR = 2000, 2999  # as the API's ``date``


def recap_choice(raw: str | None) -> str:
    """The panel's day choice from a query parameter: "today", "yesterday" or an ISO
    date in 2000..2999; anything else (missing, malformed, too long) is "today"."""
    if raw in (TODAY, YESTERDAY):
        return raw
    if raw is None or len(raw) != 10:
        return TODAY
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        return TODAY
    return day.isoformat() if _MIN_YEAR <= day.year <= _MAX_YEAR else TODAY


def recap_day(choice: str, today: date | None = None) -> date:
    """The UTC day a (valid) choice means now."""
    today = today or utc_now().date()
    if choice == TODAY:
        return today
    if choice == YESTERDAY:
        return today - timedelta(days=1)
    return date.fromisoformat(choice)


@dataclass(frozen=True, slots=True)
class RecapShown:
    day: date
    recap: DailyRecap | None  # None: not computed yet (or it failed)
    error: str | None = None  # why it could not be computed (e.g. too many trades)


@dataclass(slots=True)
class _Entry:
    recap: DailyRecap | None = None
    error: str | None = None
    seq: int = -1  # the bus's last committed sequence when it was computed
    computed_at: float = float("-inf")  # time.monotonic()
    task: asyncio.Task[None] | None = None


class RecapBoard:
    """Recaps per (visible clients, day) for the dashboard of one system."""

    def __init__(self, system: TradingSystem):
        self.system = system
        self._entries: OrderedDict[tuple[tuple[str, ...], date], _Entry] = OrderedDict()

    def _entry(self, principal: Principal, day: date) -> _Entry:
        key = (tuple(Reader(self.system, principal).clients()), day)
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
            while len(self._entries) > MAX_ENTRIES:
                self._entries.popitem(last=False)  # a running recompute just finishes
        else:
            self._entries.move_to_end(key)
        return entry

    def _stale(self, entry: _Entry) -> bool:
        return entry.seq != self.system.bus.last_committed_seq

    def shown(self, principal: Principal, day: date) -> RecapShown:
        """What the panel shows now (never waits); starts a recompute in the background
        when the recap is stale, none is running and the last was long enough ago."""
        entry = self._entry(principal, day)
        if (self._stale(entry) and entry.task is None
                and time.monotonic() - entry.computed_at >= REFRESH_SECONDS):
            # Rendered outside the server's loop (no loop running): show what is known.
            with contextlib.suppress(RuntimeError):
                self._start(entry, principal, day)
        return RecapShown(day, entry.recap, entry.error)

    async def ensure(self, principal: Principal, day: date) -> RecapShown:
        """The recap, computed now if stale (a page's first render shows numbers)."""
        entry = self._entry(principal, day)
        if entry.task is None and self._stale(entry):
            self._start(entry, principal, day)
        if entry.task is not None:
            await asyncio.shield(entry.task)
        return RecapShown(day, entry.recap, entry.error)

    def _start(self, entry: _Entry, principal: Principal, day: date) -> None:
        entry.task = asyncio.get_running_loop().create_task(
            self._compute(entry, principal, day), name="daily-recap")

    async def _compute(self, entry: _Entry, principal: Principal, day: date) -> None:
        seq = self.system.bus.last_committed_seq
        try:
            entry.recap = await daily_recap(self.system, principal, day=day)
            entry.error = None
        except ServiceError as exc:
            entry.recap, entry.error = None, exc.message
        except Exception:  # the store is down, say: the dashboard still renders
            log.exception("the daily recap of %s could not be computed", day)
            entry.recap, entry.error = None, "The recap cannot be read now."
        finally:
            entry.seq = seq
            entry.computed_at = time.monotonic()
            entry.task = None


_boards: weakref.WeakKeyDictionary[TradingSystem, RecapBoard] = weakref.WeakKeyDictionary()


def recap_board(system: TradingSystem) -> RecapBoard:
    """The system's board (made on first use)."""
    board = _boards.get(system)
    if board is None:
        board = _boards[system] = RecapBoard(system)
    return board
