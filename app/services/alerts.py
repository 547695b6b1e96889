"""Reading alerts and the reconciliation history, scoped like every other read.

An alert about a client is visible only to callers who may see that client; an
alert about no client (a stale mark, a global or venue kill switch) to every
caller. Asking for a client outside the caller's scope is 403, an unknown one
404 (``Reader.clients``). Both are in memory and bounded; a page examines at
most ``SCAN_BUDGET`` records, so it costs the same from any cursor.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from app.runtime.alerts import Alert, AlertFilter
from app.runtime.alerts_reconcile import Reconciliation
from app.runtime.alerts_store import SCAN_BUDGET, SEVERITIES, STATES
from app.services.errors import ServiceError
from app.services.queries import Reader

__all__ = ["SCAN_BUDGET", "SEVERITIES", "STATES", "AlertPage", "ReconciliationPage",
           "alerts_page", "dashboard_alerts", "reconciliation_page"]


@dataclass(frozen=True, slots=True)
class AlertPage:
    items: list[Alert]
    next_cursor: int | None


@dataclass(frozen=True, slots=True)
class ReconciliationPage:
    items: list[Reconciliation]
    next_cursor: int | None


def _scope(reader: Reader, client: str | None) -> tuple[frozenset[str] | None, bool]:
    """The clients whose alerts this caller may see (None: any) and whether alerts about
    no client are shown (not when one client is asked for)."""
    if client is not None:
        return frozenset(reader.clients(client)), False
    if reader.principal.clients is None:
        return None, True
    return frozenset(reader.clients()), True


def alerts_page(reader: Reader, *, client: str | None = None,
                severities: Iterable[str] | None = None, state: str | None = None,
                key_prefix: str | None = None, since: datetime | None = None,
                until: datetime | None = None, cursor: int | None = None,
                limit: int = 100) -> AlertPage:
    """A page of alerts, newest first; follow ``next_cursor`` until it is None."""
    wanted = None if not severities else frozenset(severities)
    if wanted is not None and not wanted <= set(SEVERITIES):
        raise ServiceError(422, "VALIDATION_ERROR", "severity: unknown severity",
                           {"field": "severity"})
    if state is not None and state not in STATES:
        raise ServiceError(422, "VALIDATION_ERROR", f"state: one of {', '.join(STATES)}",
                           {"field": "state"})
    if since is not None and until is not None and since >= until:
        raise ServiceError(422, "VALIDATION_ERROR", "to: must be after from",
                           {"field": "to"})
    clients, include_global = _scope(reader, client)
    where = AlertFilter(clients, include_global, wanted, state, key_prefix, since, until)
    items, next_cursor = reader.system.alerts.page(where, cursor, limit)
    return AlertPage(items, next_cursor)


def dashboard_alerts(reader: Reader, limit: int = 30) -> list[Alert]:
    """The dashboard's feed for this caller: active alerts first, then recent ones."""
    clients = None if reader.principal.clients is None else reader.clients()
    return reader.system.alerts.dashboard(clients, limit)


def reconciliation_page(reader: Reader, *, client: str | None = None,
                        venue: str | None = None, drifting: bool = False,
                        cursor: int | None = None, limit: int = 100) -> ReconciliationPage:
    """A page of reconciliation records (one per account per check), newest first."""
    clients, _ = _scope(reader, client)
    if venue is not None and venue not in reader.system.venue_names:
        raise ServiceError(404, "UNKNOWN_VENUE", f"there is no venue {venue!r}")
    items, next_cursor = reader.system.alerts.reconciliations.page(
        clients, venue, drifting, cursor, limit)
    return ReconciliationPage(items, next_cursor)
