"""The audit log as one caller may see it: filtered, paged, scoped.

Users over every client see everything. A user scoped to clients sees entries on
their own clients' scopes whole, global entries (a global kill switch concerns
everyone, and explains their own state) cut down to what concerns their clients,
and nothing on other clients, on venues alone (a venue close-all's results name
every client there) or about authentication (``scope="auth"``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from app.auth.principal import Principal
from app.runtime.system import TradingSystem
from app.store.tables import AuditRow

# Actions the audit log holds (kill switches, position closes, accounts, strategies,
# authentication), for the page's filter.
AUDIT_ACTIONS = ("reduce-only", "disable-trading", "enable-trading", "close-all",
                 "position-close", "leverage", "deposit", "withdraw", "strategy-create",
                 "strategy-start", "strategy-stop", "strategy-config", "login",
                 "login-failed", "user-add", "user-remove", "key-create", "key-revoke",
                 "risk-profile", "breaker-trip", "breaker-reset", "backtest-start")


# The audit page: at most AUDIT_PAGE entries, found among at most AUDIT_SCAN consecutive
# entries (by id, newest first), so a page costs the same however large the table and
# however rare the match; a short page links on to the older entries.
AUDIT_PAGE = 100
AUDIT_SCAN = 5_000
@dataclass(frozen=True, slots=True)
class AuditFilters:
    """What the audit page is narrowed to (empty: no filter)."""

    actor: str = ""  # part of the actor, any case
    action: str = ""
    scope: str = ""  # a scope exactly ("global", "auth", "client demo, venue ...")
    client: str = ""  # entries on that client's scopes
    since: datetime | None = None  # UTC
    until: datetime | None = None
    before: int | None = None  # entries older than this id (the "older" link)




def _client_scopes(column: Any, client: str) -> Any:
    """SQL: the scope is that client's, or one of its accounts' (Scope.describe())."""
    return sa.or_(column == f"client {client}",
                  column.startswith(f"client {client}, ", autoescape=True))


def read_audit(db: Any, f: AuditFilters, clients: frozenset[str] | None
               ) -> tuple[list[AuditRow], int | None]:
    """A page of audit entries matching ``f`` that a user scoped to ``clients`` (None:
    every client) may see, newest first, and the id to continue below (or None).

    Blocking (call it in a thread). Reads at most ``AUDIT_SCAN`` consecutive ids, found
    by the primary key; a time range is turned into ids through the index on ``at``
    (ids follow time), so no filter reads the whole table."""
    col = AuditRow.__table__.c  # type: ignore[attr-defined]
    with Session(db) as session:
        top = f.before - 1 if f.before else session.execute(
            sa.select(sa.func.max(col.id))).scalar()
        if f.until is not None and top:
            newest = session.execute(sa.select(col.id).where(col.at <= f.until)
                                     .order_by(col.at.desc()).limit(1)).scalar()
            top = min(top, newest) if newest else 0
        floor = 1
        if f.since is not None and top:
            oldest = session.execute(sa.select(col.id).where(col.at >= f.since)
                                     .order_by(col.at.asc()).limit(1)).scalar()
            floor = oldest if oldest else top + 1
        if not top or floor > top:
            return [], None
        low = max(floor, top - AUDIT_SCAN + 1)
        query = select(AuditRow).where(col.id >= low, col.id <= top)
        if f.actor:
            query = query.where(sa.func.lower(col.actor).contains(f.actor.lower(),
                                                                 autoescape=True))
        if f.action:
            query = query.where(col.action == f.action)
        if f.scope:
            query = query.where(col.scope == f.scope)
        if f.client:
            query = query.where(_client_scopes(col.scope, f.client))
        if f.since is not None:
            query = query.where(col.at >= f.since)
        if f.until is not None:
            query = query.where(col.at <= f.until)
        if clients is not None:  # what _audit_for lets through, so pages come back full
            query = query.where(sa.or_(col.scope == "global",
                                       *(_client_scopes(col.scope, c) for c in sorted(clients))))
        rows = list(session.exec(query.order_by(col.id.desc()).limit(AUDIT_PAGE + 1)))
    if len(rows) > AUDIT_PAGE:
        return rows[:AUDIT_PAGE], rows[AUDIT_PAGE - 1].id
    return rows, (low if low > floor else None)




# Details of a global entry that say nothing about any one client. Anything else (the
# number of orders a global switch cancelled, over every client) is left out for a user
# scoped to clients; close-all ``results`` are cut down to their own positions.
_CLIENT_NEUTRAL_DETAILS = frozenset({"state", "changed"})


def audit_for(row: AuditRow, clients: frozenset[str]) -> AuditRow | None:
    """The entry as a user scoped to ``clients`` may see it, or None.

    Entries on their own clients' scopes are shown whole. Global entries are shown (a
    global kill switch concerns everyone, and explains their own state) with details
    cut down to what concerns their clients. Entries on other clients' scopes, on
    venues alone (a venue close-all's results name every client there) and about
    authentication (``scope="auth"``) are hidden.
    """
    if row.scope != "global":
        return row if audit_visible(row.scope, clients) else None
    details = {k: v for k, v in row.details.items() if k in _CLIENT_NEUTRAL_DETAILS}
    if "results" in row.details:
        details["results"] = [r for r in row.details["results"]
                              if isinstance(r, dict) and r.get("client") in clients]
    return AuditRow(**{**row.model_dump(), "details": details})


def audit_visible(scope: str, clients: frozenset[str]) -> bool:
    """Scoped users see global entries and their own clients' (scope = Scope.describe())."""
    first = scope.split(", ")[0]
    return scope == "global" or (first.startswith("client ") and first[7:] in clients)


async def audit_page(system: TradingSystem, principal: Principal, filters: AuditFilters
                     ) -> tuple[list[AuditRow], int | None]:
    """A page of the audit log as ``principal`` may see it, and the id to go on below."""
    rows, older = await asyncio.to_thread(read_audit, system.db, filters, principal.clients)
    if principal.clients is not None:
        rows = [seen for r in rows if (seen := audit_for(r, principal.clients)) is not None]
    return rows, older
