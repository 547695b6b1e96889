"""Operational alerts (seed 003's thresholds), kept in a bounded feed and pushed
on the ``alerts`` topic.

* margin utilization above 20 % WARNING, above 50 % CRITICAL (per account,
  raised when it crosses upward);
* mark staleness above 30 s WARNING (per instrument, once until it recovers);
* reconciliation drift above $1 ERROR (wallet vs. the sum of its parts);
* liquidation risk: maintenance margin above 50 % of equity WARNING, above 80 %
  CRITICAL (the venue liquidates at 100 %), and every liquidation CRITICAL;
* kill-switch changes, and close-all results that did not flatten.

An alert about one client carries that client and is shown only to readers who
may see it (the feed, ``/ws`` and the dashboards filter on it); an alert with
no client (a global or venue kill switch, a stale mark) is shown to everyone, so
it says nothing about any client: a close-all that left positions open raises
one alert per client, with that client's positions only.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from itertools import count
from typing import Any

from app.domain.events import (
    CloseAllCompleted,
    CloseResult,
    Event,
    FundingRateMissing,
    PositionLiquidated,
    TradingStateChanged,
)
from app.domain.strategies import StrategyStopped
from app.domain.trading_state import TradingState
from app.runtime.broadcast import Broadcaster
from app.runtime.bus import utc_now
from app.store.event_log import Recorded

WARN_UTILIZATION = Decimal("0.20")
CRITICAL_UTILIZATION = Decimal("0.50")
MAX_DRIFT = Decimal(1)
# Maintenance margin as a share of equity (the venue liquidates at 100 %).
WARN_LIQUIDATION = Decimal("0.50")
CRITICAL_LIQUIDATION = Decimal("0.80")


@dataclass(frozen=True, slots=True)
class Alert:
    id: int
    at: datetime
    level: str  # info | warning | error | critical
    title: str
    message: str
    client: str | None = None

    def as_message(self) -> dict[str, Any]:
        return {"seq": 0, "derived": True, "topic": "alerts", "type": "Alert",
                "client": self.client,
                "data": {"id": self.id, "at": self.at.isoformat(), "level": self.level,
                         "title": self.title, "message": self.message}}


class AlertMonitor:
    def __init__(self, system: Any, broadcaster: Broadcaster, size: int = 200):
        self.system = system
        self.broadcaster = broadcaster
        self.feed: deque[Alert] = deque(maxlen=size)
        self._ids = count(1)
        self._utilization_level: dict[tuple[str, str], int] = {}
        self._liquidation_level: dict[tuple[str, str], int] = {}
        self._stale: set[str] = set()
        self._drifting: set[tuple[str, str]] = set()

    def raise_alert(self, level: str, title: str, message: str, client: str | None = None
                    ) -> Alert:
        alert = Alert(next(self._ids), utc_now(), level, title, message, client)
        self.feed.appendleft(alert)
        self.broadcaster.publish([alert.as_message()])
        return alert

    def recent(self, clients: list[str] | None, limit: int = 30) -> list[Alert]:
        return [a for a in self.feed
                if clients is None or a.client is None or a.client in clients][:limit]

    # ---- rules ---------------------------------------------------------------------

    def on_records(self, records: list[Recorded]) -> None:
        """The alert rules, after each commit (a post-commit handler)."""
        self.on_events([r.event for r in records])

    def on_events(self, events: list[Event]) -> None:
        touched: set[tuple[str, str]] = set()
        for e in events:
            client, venue = getattr(e, "client", None), getattr(e, "venue", None)
            if client is not None and venue is not None:
                touched.add((client, venue))
            if type(e) is TradingStateChanged:
                level = "info" if e.state is TradingState.ACTIVE else "warning"
                self.raise_alert(level, f"Trading {e.state.value.replace('_', '-')}",
                                 f"{e.scope.describe()}: {e.previous.value} → {e.state.value} "
                                 f"by {e.actor} ({e.reason})", e.scope.client)
            elif type(e) is FundingRateMissing:
                self.raise_alert("warning", "Funding rate missing",
                                 f"{e.venue} {e.symbol}: no funding rate for "
                                 f"{e.funding_at:%Y-%m-%d %H:%M} UTC; the positions of that "
                                 "instant are kept for a late rate")
            elif type(e) is PositionLiquidated:
                self.raise_alert("critical", "Position liquidated",
                                 f"{e.client} {e.venue} {e.symbol}: {e.qty} liquidated at mark "
                                 f"{e.mark} (equity {e.equity:.2f} ≤ maintenance "
                                 f"{e.maintenance_margin:.2f}); fee {e.fee:.2f}, "
                                 f"loss {e.loss:.2f}", e.client)
            elif type(e) is StrategyStopped and e.failed:
                self.raise_alert("critical", "Strategy stopped",
                                 f"strategy {e.strategy_id} ({e.client} on {e.venue}) raised "
                                 f"and was stopped: {e.reason}", e.client)
            elif type(e) is CloseAllCompleted:
                # One alert per client, with only that client's positions: a global
                # close-all's results name every client, and an alert reaches every
                # reader its client allows (all of them when it has none).
                bad: dict[str, list[CloseResult]] = {}
                for r in e.results:
                    if r.status != "closed":
                        bad.setdefault(r.client, []).append(r)
                for client in sorted(bad):
                    detail = "; ".join(f"{r.client} {r.venue} {r.symbol}: {r.status} "
                                       f"{r.message}".rstrip() for r in bad[client])
                    self.raise_alert("critical", "Close-all incomplete",
                                     f"{e.scope.describe()} close-all left open: {detail}",
                                     client)
        if touched:
            self.check_accounts(touched)

    def check_accounts(self, keys: set[tuple[str, str]] | None = None) -> None:
        """Margin and reconciliation checks: after a commit for the accounts it touched;
        once a second for all (prices move margin without any event)."""
        engine = self.system.engine
        for (client, venue), account in engine.state.accounts.items():
            if keys is not None and (client, venue) not in keys:
                continue
            s = engine.summary(client, venue)
            ratio = s.margin_ratio if s.margin_ratio.is_finite() else Decimal(1)
            level = 2 if ratio > CRITICAL_UTILIZATION else 1 if ratio > WARN_UTILIZATION else 0
            previous = self._utilization_level.get((client, venue), 0)
            self._utilization_level[(client, venue)] = level
            if level > previous:
                self.raise_alert("critical" if level == 2 else "warning", "Margin utilization",
                                 f"{client} on {venue}: {ratio * 100:.1f}% of equity in use",
                                 client)
            near = s.maintenance_ratio if s.maintenance_ratio.is_finite() else Decimal(1)
            risk = 2 if near > CRITICAL_LIQUIDATION else 1 if near > WARN_LIQUIDATION else 0
            before = self._liquidation_level.get((client, venue), 0)
            self._liquidation_level[(client, venue)] = risk
            if risk > before:
                self.raise_alert("critical" if risk == 2 else "warning", "Liquidation risk",
                                 f"{client} on {venue}: maintenance margin is "
                                 f"{near * 100:.1f}% of equity (liquidation at 100%)", client)
            drift = abs(account.wallet - account.expected_wallet)
            if drift > MAX_DRIFT and (client, venue) not in self._drifting:
                self._drifting.add((client, venue))
                self.raise_alert("error", "Reconciliation drift",
                                 f"{client} on {venue}: wallet differs from its parts by "
                                 f"{drift:.2f}", client)

    def check_marks(self) -> None:
        now = utc_now()
        stale = set(self.system.stale_marks(now))
        for name in sorted(stale - self._stale):
            self.raise_alert("warning", "Stale mark",
                             f"{name}: no mark for more than "
                             f"{self.system.settings.stale_mark_seconds:g} s")
        self._stale = stale
