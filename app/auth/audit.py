"""Audit entries for authentication: logins, users and API keys.

They go to the same ``audit_log`` table as the kill switches, with ``scope`` set to
``"auth"`` (so client-scoped users, who see only ``global`` and their own clients'
entries, do not see who logged in from where). They are written with a plain
SQLModel session, not through the command bus: they are not engine events, and a
login must not wait behind a queue of orders. Server code calls the writers here
through ``asyncio.to_thread``; the CLI calls them directly.

Actions: ``login``, ``login-failed``, ``user-add``, ``user-remove``, ``key-create``,
``key-revoke``. No entry ever holds a password, an API key or a session id.

Failed logins are coalesced (``FailedLoginAudit``) so a login flood cannot grow the
table without bound or load the database: one row per (attempted name, address)
per minute whose counts are updated in place, at most ``max_rows_per_window``
such rows a minute (the rest are folded into one ``*`` row), and at most one
write in flight at a time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import Session, col

from app.store.tables import AuditRow

SCOPE = "auth"
_MAX_ACTOR = 64  # AuditRow.actor
_MAX_REASON = 500  # AuditRow.reason


def auth_row(actor: str, action: str, reason: str, details: dict,
             at: datetime | None = None) -> AuditRow:
    """One audit entry about authentication (``scope="auth"``), lengths clipped to
    the columns (an attempted user name is attacker-chosen text)."""
    return AuditRow(at=at or datetime.now(UTC), actor=actor[:_MAX_ACTOR], action=action,
                    scope=SCOPE, reason=reason[:_MAX_REASON], previous=None, details=details)


def login_row(name: str, address: str, via: str) -> AuditRow:
    """A successful login."""
    return auth_row(name, "login", f"logged in from {address} ({via})",
                    {"name": name, "address": address, "via": via})


def write_rows(db: sa.Engine, rows: list[AuditRow]) -> None:
    """Insert audit rows in one transaction (blocking: call it off the event loop)."""
    with Session(db) as session:
        session.add_all(rows)
        session.commit()


# ---- failed logins, coalesced --------------------------------------------------------------

OVERFLOW = "*"  # the name and address of the row that takes what the row budget cannot


@dataclass(eq=False)
class _Tally:
    """Failed and refused attempts of one (name, address) in one window."""

    name: str
    address: str
    window: int
    first_at: datetime
    failures: int = 0
    refused: int = 0
    via: set[str] = field(default_factory=set)
    row_id: int | None = None  # None: not inserted yet
    version: int = 0  # bumped on every change
    written_version: int = -1
    written_at: float = 0.0  # monotonic

    @property
    def dirty(self) -> bool:
        return self.version != self.written_version

    def snapshot(self, window_s: float) -> tuple[str, str, dict]:
        """(actor, reason, details) as they should be stored now."""
        start = datetime.fromtimestamp(self.window * window_s, UTC)
        if self.name == OVERFLOW:
            reason = (f"{self.failures} failed and {self.refused} throttled login attempts "
                      f"for other names and addresses (over the per-minute row budget)")
        else:
            reason = (f"{self.failures} wrong user name or password, {self.refused} refused "
                      f"by the login throttle, from {self.address}")
        details = {"name": self.name, "address": self.address,
                   "window_start": start.isoformat(), "window_s": window_s,
                   "failures": self.failures, "refused": self.refused,
                   "via": sorted(self.via)}
        return self.name, reason, details


@dataclass(frozen=True, slots=True)
class _Write:
    row_id: int | None
    actor: str
    reason: str
    details: dict
    first_at: datetime


class FailedLoginAudit:
    """Failed (wrong password) and refused (throttled) login attempts, coalesced into
    one audit row per (attempted name, address) per window.

    The first attempt of a (name, address) in a window inserts its row at once; later
    ones update its counts at most every ``flush_s`` (and once more after the window
    ends). At most ``max_rows_per_window`` rows a window: beyond that, attempts are
    counted in one ``*`` row for the window. ``drain()`` is single-flight, so there is
    never more than one audit write in flight however many attempts arrive. All
    methods but the blocking writer run on the event loop; no locks are needed.
    Counts not yet written when the process stops are lost (at most ``flush_s``).
    """

    def __init__(self, db: sa.Engine, *, window_s: float = 60.0, flush_s: float = 5.0,
                 max_rows_per_window: int = 100,
                 wall: Callable[[], float] = time.time,
                 clock: Callable[[], float] = time.monotonic):
        self.db = db
        self.window_s, self.flush_s = window_s, flush_s
        self.max_rows = max_rows_per_window
        self.wall, self.clock = wall, clock
        self._tallies: dict[tuple[str, str, int], _Tally] = {}
        self._rows_in_window: dict[int, int] = {}
        self._next_due = float("inf")
        self._draining = False

    # ---- counting (event loop, O(1)) ----

    def failed(self, name: str, address: str, via: str) -> None:
        """A password check said no."""
        tally = self._tally(name, address)
        tally.failures += 1
        self._touch(tally, via)

    def refused(self, name: str, address: str, via: str) -> None:
        """The throttle refused an attempt before any password check."""
        tally = self._tally(name, address)
        tally.refused += 1
        self._touch(tally, via)

    def due(self) -> bool:
        """Is some row waiting to be inserted or updated?"""
        return not self._draining and self.clock() >= self._next_due

    @property
    def pending(self) -> int:
        """Rows held in memory (bounded by two windows' row budgets)."""
        return len(self._tallies)

    def _tally(self, name: str, address: str) -> _Tally:
        window = int(self.wall() // self.window_s)
        tally = self._tallies.get((name, address, window))
        if tally is not None:
            return tally
        if self._rows_in_window.get(window, 0) >= self.max_rows:
            name = address = OVERFLOW
            tally = self._tallies.get((name, address, window))
            if tally is not None:
                return tally
        else:
            self._rows_in_window[window] = self._rows_in_window.get(window, 0) + 1
        tally = _Tally(name, address, window, datetime.now(UTC))
        self._tallies[(name, address, window)] = tally
        self._next_due = self.clock()  # a new row is written at once
        return tally

    def _touch(self, tally: _Tally, via: str) -> None:
        tally.version += 1
        tally.via.add(via)
        if tally.row_id is not None:
            self._next_due = min(self._next_due, tally.written_at + self.flush_s)

    # ---- writing ----

    async def drain(self, force: bool = False) -> None:
        """Write what is due (everything dirty when ``force``), one batch at a time;
        returns at once if another drain is running (it picks up new counts too)."""
        if self._draining:
            return
        self._draining = True
        try:
            while True:
                batch = self._take(force)
                if not batch:
                    break
                ids = await asyncio.to_thread(self._write, [w for _, _, w in batch])
                now = self.clock()
                for (tally, version, _), row_id in zip(batch, ids, strict=True):
                    tally.row_id, tally.written_version, tally.written_at = row_id, version, now
                self._forget_old()
        finally:
            self._draining = False
            self._reschedule()

    async def flush(self) -> None:
        """Write every count now (tests; a last write before shutdown)."""
        await self.drain(force=True)

    def _take(self, force: bool) -> list[tuple[_Tally, int, _Write]]:
        """The due rows, with their values as of now (taken on the loop, so the writer
        thread never reads a tally the loop is changing)."""
        now, current = self.clock(), int(self.wall() // self.window_s)
        batch = []
        for tally in self._tallies.values():
            if not tally.dirty:
                continue
            if (force or tally.row_id is None or tally.window < current
                    or now >= tally.written_at + self.flush_s):
                actor, reason, details = tally.snapshot(self.window_s)
                batch.append((tally, tally.version,
                              _Write(tally.row_id, actor, reason, details, tally.first_at)))
        return batch

    def _write(self, writes: list[_Write]) -> list[int | None]:
        """Insert new rows and update existing ones in one transaction (blocking);
        returns every row's id."""
        ids: list[int | None] = []
        with Session(self.db) as session:
            for w in writes:
                if w.row_id is None:
                    row = auth_row(w.actor, "login-failed", w.reason, w.details, at=w.first_at)
                    session.add(row)
                    session.flush()  # assigns row.id
                    ids.append(row.id)
                else:
                    session.execute(sa.update(AuditRow)
                                    .where(col(AuditRow.id) == w.row_id)
                                    .values(reason=w.reason[:_MAX_REASON], details=w.details))
                    ids.append(w.row_id)
            session.commit()
        return ids

    def _forget_old(self) -> None:
        current = int(self.wall() // self.window_s)
        for key, tally in list(self._tallies.items()):
            if tally.window < current and not tally.dirty:
                del self._tallies[key]
        for window in [w for w in self._rows_in_window if w < current]:
            del self._rows_in_window[window]

    def _reschedule(self) -> None:
        self._forget_old()
        next_due = float("inf")
        current = int(self.wall() // self.window_s)
        for tally in self._tallies.values():
            if not tally.dirty:
                continue
            if tally.row_id is None or tally.window < current:
                next_due = self.clock()
                break
            next_due = min(next_due, tally.written_at + self.flush_s)
        self._next_due = next_due
