"""Operational alerts: the rules, keyed alerts that raise once and resolve, and the
sinks they go to.

The rules (thresholds from YAML ``alerts``, defaults from seed 003 and issue 11):

* margin utilization (margin used / equity) above 20 % WARNING, above 50 %
  CRITICAL, per account: key ``margin_utilization:<client>:<venue>``;
* liquidation risk (maintenance margin / equity; the venue liquidates at 100 %)
  above 50 % WARNING, above 80 % CRITICAL: ``liquidation_risk:<client>:<venue>``;
* mark staleness, no mark for more than ``PERPDESK_STALE_MARK_SECONDS`` (30 s)
  WARNING, per instrument: ``stale_mark:<venue>:<symbol>``;
* reconciliation drift, |equity - (deposits - withdrawals + realized + unrealized
  - fees + funding)| above $1 ERROR, checked every minute and kept in a bounded
  history (``reconciliations``): ``reconciliation_drift:<client>:<venue>``;
* notices (no key, nothing to resolve): kill-switch changes, close-alls that did
  not flatten, liquidations (CRITICAL), strategies stopped by a failure,
  missing funding rates.

Each keyed alert is raised once while its condition holds: raising it again
does nothing unless the severity goes up (WARNING -> CRITICAL), which escalates
the same alert; it keeps the highest severity it reached until the condition
clears entirely, when it is resolved (a resolve event, its time and why). Every
change is an ``AlertEvent`` with its own ``event_id``, published on the
``alerts`` topic (sockets, dashboards) and handed to each sink (log, webhook:
app/runtime/alerts_sinks.py), which never blocks the caller.

An alert about one client carries that client and is shown only to readers who
may see it (the feed, ``/ws``, the dashboards, ``GET /api/v1/alerts``); an alert
with no client (a global or venue kill switch, a stale mark) is shown to
everyone, so it says nothing about any client: a close-all that left positions
open raises one alert per client, with that client's positions only.

Raising from new code (e.g. a circuit breaker's events), one line each::

    monitor.raise_alert("critical", "Breaker tripped", "demo: daily loss 5.2 %",
                        client="demo", key="breaker:daily_loss:demo")
    monitor.resolve("breaker:daily_loss:demo", "reset by alice: reviewed")

or as a rule run after every commit that holds such an event::

    monitor.rule(BreakerTripped, lambda m, e: m.raise_alert(
        "critical", "Breaker tripped", e.describe(), client=e.client,
        key=f"breaker:{e.breaker}:{e.client}"))
    monitor.rule(BreakerReset, lambda m, e: m.resolve(f"breaker:{e.breaker}:{e.client}"))

``raise_alert(level, title, message, client=None, *, key=None) -> Alert``
    level is info | warning | error | critical; no key: a notice.
``resolve(key, message="") -> Alert | None``
    the resolved alert, or None if nothing was active under that key.
``active(key) -> Alert | None``; ``rule(event_type, handler)``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from itertools import count
from typing import Any

from app.config import AlertsConfig
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
from app.runtime.alerts_reconcile import ReconciliationHistory
from app.runtime.alerts_sinks import Sink, SinkStats, build_sinks
from app.runtime.alerts_store import (
    RANK,
    Alert,
    AlertBook,
    AlertEvent,
    AlertFilter,
    check_severity,
)
from app.runtime.broadcast import Broadcaster
from app.runtime.bus import utc_now
from app.store.event_log import Recorded

__all__ = ["Alert", "AlertEvent", "AlertFilter", "AlertMonitor"]

log = logging.getLogger(__name__)
MAX_KEY = 200

Rule = Callable[["AlertMonitor", Any], None]


class AlertMonitor:
    def __init__(self, system: Any, broadcaster: Broadcaster, size: int | None = None,
                 config: AlertsConfig | None = None, sinks: list[Sink] | None = None,
                 clock: Callable[[], datetime] = utc_now):
        self.system = system
        self.broadcaster = broadcaster
        self.config = config or AlertsConfig()
        self.book = AlertBook(size or self.config.history)
        self.reconciliations = ReconciliationHistory(self.config.reconciliation_history)
        self.sinks: list[Sink] = build_sinks(self.config.sinks) if sinks is None else sinks
        self.clock = clock
        self.events_total: Counter[str] = Counter()  # raised | escalated | resolved
        self._ids = count(1)
        self._rules: dict[type, list[Rule]] = {}
        self._stale: set[str] = set()
        self._next_reconcile = 0.0  # time.monotonic(): the first housekeeping reconciles

    # ---- raising and resolving ---------------------------------------------------------

    def raise_alert(self, level: str, title: str, message: str, client: str | None = None,
                    *, key: str | None = None) -> Alert:
        """Raise an alert; with a ``key``, only if none is active under it or this one is
        more severe (then the active one escalates). Returns the alert in force."""
        check_severity(level)
        if key is not None and not 0 < len(key) <= MAX_KEY:
            raise ValueError(f"an alert key has 1 to {MAX_KEY} characters")
        now = self.clock()
        if key is not None:
            current = self.book.active(key)
            if current is not None:
                if RANK[level] <= RANK[current.level]:
                    return current  # the condition still holds: raised once
                escalated = replace(current, level=level, title=title, message=message,
                                    at=now)
                self.book.replace(escalated)
                self._emit(AlertEvent.new("escalated", escalated, now, current.level))
                return escalated
        alert = Alert(next(self._ids), now, level, title, message, client, key,
                      raised_at=now)
        self.book.add(alert)
        self._emit(AlertEvent.new("raised", alert, now))
        return alert

    def resolve(self, key: str, message: str = "") -> Alert | None:
        """Resolve the active alert under ``key`` (idempotent: None if there is none)."""
        current = self.book.active(key)
        if current is None:
            return None
        now = self.clock()
        resolved = replace(current, resolved_at=now, resolution=message or "cleared")
        self.book.replace(resolved)
        self._emit(AlertEvent.new("resolved", resolved, now))
        return resolved

    def active(self, key: str) -> Alert | None:
        return self.book.active(key)

    def rule(self, event_type: type, handler: Rule) -> None:
        """Run ``handler(monitor, event)`` for each committed event of ``event_type``."""
        self._rules.setdefault(event_type, []).append(handler)

    def _emit(self, event: AlertEvent) -> None:
        self.events_total[event.kind] += 1
        self.broadcaster.publish([event.alert.as_message(event)])
        for sink in self.sinks:
            try:
                sink.deliver(event)
            except Exception:  # one sink's bug must not stop the rules or other sinks
                log.exception("alert sink %s failed", sink.name)

    # ---- reading -----------------------------------------------------------------------

    @property
    def feed(self) -> list[Alert]:
        """Every alert kept, newest first."""
        return list(self.book.newest())

    def recent(self, clients: list[str] | None, limit: int = 30) -> list[Alert]:
        """The newest ``limit`` alerts a reader of ``clients`` (None: all) may see."""
        out: list[Alert] = []
        for a in self.book.newest():
            if len(out) == limit:
                break
            if clients is None or a.client is None or a.client in clients:
                out.append(a)
        return out

    def dashboard(self, clients: list[str] | None, limit: int = 30) -> list[Alert]:
        """The dashboard's feed: active alerts first (most severe, then newest), then the
        newest resolved alerts and notices, ``limit`` in all."""
        active = sorted((a for a in self.book.active_alerts()
                         if clients is None or a.client is None or a.client in clients),
                        key=lambda a: (-RANK[a.level], -a.id))[:limit]
        rest = [a for a in self.recent(clients, limit + len(active)) if a.state != "active"]
        return active + rest[:limit - len(active)]

    def page(self, where: AlertFilter, cursor: int | None, limit: int
             ) -> tuple[list[Alert], int | None]:
        return self.book.page(where, cursor, limit)

    def sink_stats(self) -> list[SinkStats]:
        return [sink.stats() for sink in self.sinks]

    # ---- lifecycle (the webhook sinks' tasks) ------------------------------------------

    async def start(self) -> None:
        for sink in self.sinks:
            await sink.start()

    async def stop(self) -> None:
        for sink in self.sinks:
            try:
                await sink.stop()
            except Exception:  # never a reason not to stop the rest
                log.exception("alert sink %s failed to stop", sink.name)

    # ---- rules after each commit -------------------------------------------------------

    def on_records(self, records: list[Recorded]) -> None:
        """The alert rules, after each commit (a post-commit handler)."""
        self.on_events([r.event for r in records])

    def on_events(self, events: list[Event]) -> None:
        touched: set[tuple[str, str]] = set()
        for e in events:
            client, venue = getattr(e, "client", None), getattr(e, "venue", None)
            if client is not None and venue is not None:
                touched.add((client, venue))
            for handler in self._rules.get(type(e), ()):
                try:
                    handler(self, e)
                except Exception:  # a rule's bug must not hide the other alerts
                    log.exception("alert rule for %s failed", type(e).__name__)
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
                self._close_all_incomplete(e)
        if touched:
            self.check_accounts(touched)

    def _close_all_incomplete(self, e: CloseAllCompleted) -> None:
        # One alert per client, with only that client's positions: a global close-all's
        # results name every client, and an alert reaches every reader its client allows
        # (all of them when it has none).
        bad: dict[str, list[CloseResult]] = {}
        for r in e.results:
            if r.status != "closed":
                bad.setdefault(r.client, []).append(r)
        for client in sorted(bad):
            detail = "; ".join(f"{r.client} {r.venue} {r.symbol}: {r.status} "
                               f"{r.message}".rstrip() for r in bad[client])
            self.raise_alert("critical", "Close-all incomplete",
                             f"{e.scope.describe()} close-all left open: {detail}", client)

    # ---- periodic checks ---------------------------------------------------------------

    def housekeep(self) -> None:
        """Once a second: marks, margins, and the reconciliation when it is due. Never
        raises (it runs on the housekeeping clock, which a failure would stop)."""
        for check in (self.check_marks, self.check_accounts, self._reconcile_if_due):
            try:
                check()
            except Exception:
                log.exception("alert check %s failed", check.__name__)

    def check_accounts(self, keys: set[tuple[str, str]] | None = None) -> None:
        """Margin utilization and liquidation risk: after a commit for the accounts it
        touched; once a second for all (prices move margin without any event)."""
        engine = self.system.engine
        c = self.config
        for client, venue in list(engine.state.accounts):
            if keys is not None and (client, venue) not in keys:
                continue
            s = engine.summary(client, venue)
            ratio = s.margin_ratio if s.margin_ratio.is_finite() else Decimal(1)
            self._threshold(f"margin_utilization:{client}:{venue}", "Margin utilization",
                            ratio, c.margin_warning, c.margin_critical, client, venue,
                            "{where}: {pct}% of equity in use")
            near = s.maintenance_ratio if s.maintenance_ratio.is_finite() else Decimal(1)
            self._threshold(f"liquidation_risk:{client}:{venue}", "Liquidation risk", near,
                            c.liquidation_warning, c.liquidation_critical, client, venue,
                            "{where}: maintenance margin is {pct}% of equity "
                            "(liquidation at 100%)")

    def _threshold(self, key: str, title: str, value: Decimal, warning: Decimal,
                   critical: Decimal, client: str, venue: str, template: str) -> None:
        # This runs after every commit for the accounts it touched: the message is only
        # written when something is raised, escalated or resolved.
        level = "critical" if value > critical else "warning" if value > warning else None
        current = self.book.active(key)
        if level is None and current is None:
            return
        if level is not None and current is not None and RANK[level] <= RANK[current.level]:
            return
        message = template.format(where=f"{client} on {venue}", pct=f"{value * 100:.1f}")
        if level is None:
            self.resolve(key, f"{message} (at or below {_percent(warning)}%)")
        else:
            self.raise_alert(level, title, message, client, key=key)

    def check_marks(self, now: datetime | None = None) -> None:
        """Instruments without a fresh mark: one alert each while stale."""
        stale = set(self.system.stale_marks(now or self.clock()))
        limit = self.system.settings.stale_mark_seconds
        for name in sorted(stale):
            self.raise_alert("warning", "Stale mark",
                             f"{name}: no mark for more than {limit:g} s",
                             key=f"stale_mark:{name}")
        for name in sorted(self._stale - stale):
            self.resolve(f"stale_mark:{name}", f"{name}: marks flow again")
        self._stale = stale

    def _reconcile_if_due(self) -> None:
        if time.monotonic() >= self._next_reconcile:
            self._next_reconcile = time.monotonic() + self.config.reconcile_every_s
            self.reconcile()

    def reconcile(self, now: datetime | None = None) -> None:
        """Every account's equity against the sum of its parts, into the history; drift
        above the threshold raises (and, once back within it, resolves) an ERROR."""
        now = now or self.clock()
        engine = self.system.engine
        for client, venue in list(engine.state.accounts):
            entry = self.reconciliations.record(now, engine.summary(client, venue),
                                                self.config.max_drift)
            key = f"reconciliation_drift:{client}:{venue}"
            text = (f"{client} on {venue}: equity {entry.equity:.2f} vs. "
                    f"{entry.expected_equity:.2f} from its parts (drift {entry.drift:.2f})")
            if not entry.ok:
                self.raise_alert("error", "Reconciliation drift", text, client, key=key)
            elif self.book.active(key) is not None:
                self.resolve(key, text)


def _percent(share: Decimal) -> str:
    """0.20 -> "20", 0.125 -> "12.5"."""
    return format((share * 100).normalize(), "f")
