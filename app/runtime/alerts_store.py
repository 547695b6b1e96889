"""Alert records and the bounded, in-memory book that keeps them.

An alert with a dedupe ``key`` is a *condition*: it is ``active`` while the
condition holds and ``resolved`` (with the time and why) once it clears; the
monitor never holds two active alerts with one key. An alert without a key is
a *notice* (a kill-switch change, a liquidation): something that happened,
with nothing to resolve.

Each change is an ``AlertEvent`` (raised, escalated, resolved) with its own
``event_id``: what sinks deliver and receivers de-duplicate on.

The book keeps at most ``capacity`` alerts, dropping the oldest that is not
active (active ones are bounded by their keys: accounts, instruments, rules).
Pages are newest first by id and examine at most ``SCAN_BUDGET`` alerts, so a
read costs the same from any cursor.
"""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

SEVERITIES = ("info", "warning", "error", "critical")
RANK = {name: rank for rank, name in enumerate(SEVERITIES)}
STATES = ("active", "resolved", "notice")
SCAN_BUDGET = 5_000


def check_severity(level: str) -> str:
    if level not in RANK:
        raise ValueError(f"unknown alert severity {level!r}; one of {', '.join(SEVERITIES)}")
    return level


@dataclass(frozen=True, slots=True)
class Alert:
    id: int
    at: datetime  # raised, or last escalated
    level: str  # info | warning | error | critical (an active alert keeps its highest)
    title: str
    message: str
    client: str | None = None  # None: about no client, shown to every reader
    key: str | None = None  # the dedupe key; None: a notice
    raised_at: datetime | None = None  # first raised (``at`` moves on escalation)
    resolved_at: datetime | None = None
    resolution: str = ""

    @property
    def state(self) -> str:
        if self.key is None:
            return "notice"
        return "active" if self.resolved_at is None else "resolved"

    @property
    def first_at(self) -> datetime:
        return self.raised_at or self.at

    def as_json(self) -> dict[str, Any]:
        """JSON-ready (the API, the webhook, the WebSocket share it)."""
        return {"id": self.id, "key": self.key, "state": self.state, "severity": self.level,
                "level": self.level, "title": self.title, "message": self.message,
                "client": self.client, "raised_at": self.first_at.isoformat(),
                "at": self.at.isoformat(),
                "resolved_at": None if self.resolved_at is None
                else self.resolved_at.isoformat(),
                "resolution": self.resolution}

    def as_message(self, event: AlertEvent | None = None) -> dict[str, Any]:
        """The ``alerts`` topic message (sockets, dashboards)."""
        kind = "raised" if event is None else event.kind
        data = {**self.as_json(), "event": kind,
                "event_id": None if event is None else event.event_id}
        return {"seq": 0, "derived": True, "topic": "alerts",
                "type": "AlertResolved" if kind == "resolved" else "Alert",
                "client": self.client, "data": data}


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One change of one alert, as every sink gets it."""

    kind: str  # raised | escalated | resolved
    alert: Alert  # as it is after the change
    at: datetime
    previous_level: str | None = None  # escalated: the severity it had
    # Unique across restarts (the alert id restarts at 1): receivers de-duplicate on it.
    event_id: str = ""

    @staticmethod
    def new(kind: str, alert: Alert, at: datetime, previous_level: str | None = None
            ) -> AlertEvent:
        return AlertEvent(kind, alert, at, previous_level, uuid.uuid4().hex)

    def payload(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "event": self.kind, "at": self.at.isoformat(),
                "previous_severity": self.previous_level, "alert": self.alert.as_json()}


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """Which alerts a page shows. ``clients`` None: any client (an unscoped reader)."""

    clients: frozenset[str] | None = None
    include_global: bool = True  # alerts about no client
    severities: frozenset[str] | None = None
    state: str | None = None
    key_prefix: str | None = None
    since: datetime | None = None  # first raised at or after
    until: datetime | None = None  # first raised before

    def matches(self, a: Alert) -> bool:
        if a.client is None:
            if not self.include_global:
                return False
        elif self.clients is not None and a.client not in self.clients:
            return False
        if self.severities is not None and a.level not in self.severities:
            return False
        if self.state is not None and a.state != self.state:
            return False
        if self.key_prefix is not None and not (a.key or "").startswith(self.key_prefix):
            return False
        if self.since is not None and a.first_at < self.since:
            return False
        return self.until is None or a.first_at < self.until


class AlertBook:
    """The alerts kept in memory: by id, and the active ones by key."""

    def __init__(self, capacity: int = 1000):
        self.capacity = capacity
        self._alerts: dict[int, Alert] = {}
        self._ids: list[int] = []  # ascending: ids only grow
        self._active: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._alerts)

    def active(self, key: str) -> Alert | None:
        alert_id = self._active.get(key)
        return None if alert_id is None else self._alerts[alert_id]

    def active_alerts(self) -> list[Alert]:
        return [self._alerts[i] for i in self._active.values()]

    def get(self, alert_id: int) -> Alert | None:
        return self._alerts.get(alert_id)

    def add(self, alert: Alert) -> None:
        self._alerts[alert.id] = alert
        self._ids.append(alert.id)
        if alert.state == "active":
            assert alert.key is not None
            self._active[alert.key] = alert.id
        if len(self._ids) > self.capacity:
            self._evict()

    def replace(self, alert: Alert) -> None:
        """A newer version of a kept alert (escalated or resolved)."""
        if alert.id not in self._alerts:
            return  # evicted meanwhile
        self._alerts[alert.id] = alert
        if alert.key is not None and alert.state != "active" \
                and self._active.get(alert.key) == alert.id:
            del self._active[alert.key]

    def _evict(self) -> None:
        # The oldest alert that is not active; if every one is (a rule keyed too finely),
        # the oldest of all: memory stays bounded either way.
        index = next((i for i, alert_id in enumerate(self._ids)
                      if self._alerts[alert_id].state != "active"), 0)
        alert = self._alerts.pop(self._ids.pop(index))
        if alert.key is not None and self._active.get(alert.key) == alert.id:
            del self._active[alert.key]

    def newest(self) -> Iterator[Alert]:
        for alert_id in reversed(self._ids):
            yield self._alerts[alert_id]

    def page(self, where: AlertFilter, cursor: int | None, limit: int,
             budget: int = SCAN_BUDGET) -> tuple[list[Alert], int | None]:
        """Matching alerts with ids below ``cursor``, newest first, and the cursor of the
        next page (None at the end). Examines at most ``budget`` alerts: with a narrow
        filter a page may be short, even empty, with a next cursor."""
        end = len(self._ids) if cursor is None else bisect.bisect_left(self._ids, cursor)
        items: list[Alert] = []
        examined = 0
        for index in range(end - 1, -1, -1):
            alert = self._alerts[self._ids[index]]
            if examined == budget:
                return items, alert.id + 1  # the next page starts at this alert
            examined += 1
            if not where.matches(alert):
                continue
            if len(items) == limit:
                return items, items[-1].id
            items.append(alert)
        return items, None
