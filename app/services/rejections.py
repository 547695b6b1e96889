"""Why orders were refused: rejected orders counted by reason code, client,
symbol and strategy over a time window (``GET /api/v1/rejections``), scoped to
the clients the caller may see, plus the API orders refused by a rate limit
before they became orders (counted in memory since the server started).

One aggregate query on the ``orders`` projection, run on a worker thread; the
window is bounded (at most ``MAX_WINDOW``) so its cost is too.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlalchemy import select as sql_select
from sqlmodel import Session, col

from app.auth.principal import Principal
from app.runtime.bus import utc_now
from app.runtime.system import TradingSystem
from app.services.errors import ServiceError
from app.services.scope import visible_clients
from app.store.tables import OrderRow

DEFAULT_WINDOW = timedelta(hours=24)
MAX_WINDOW = timedelta(days=31)


@dataclass(frozen=True, slots=True)
class RejectionCount:
    code: str
    client: str
    symbol: str
    strategy: str | None
    count: int


@dataclass(frozen=True, slots=True)
class Breakdown:
    start: datetime
    end: datetime
    total: int
    rows: list[RejectionCount]  # most frequent first
    by_code: dict[str, int]
    rate_limited_api: dict[str, int]  # per client, since the server started


async def breakdown(system: TradingSystem, principal: Principal, *, client: str | None = None,
                    symbol: str | None = None, strategy: str | None = None,
                    code: str | None = None, start: datetime | None = None,
                    end: datetime | None = None) -> Breakdown:
    clients = visible_clients(principal, system, client)
    end = end or utc_now()
    start = start or end - DEFAULT_WINDOW
    if start >= end:
        raise ServiceError(422, "VALIDATION_ERROR", "'from' must be before 'to'")
    if end - start > MAX_WINDOW:
        raise ServiceError(422, "VALIDATION_ERROR",
                           f"the window may span at most {MAX_WINDOW.days} days")
    rows = await asyncio.to_thread(_count, system, clients, symbol, strategy, code, start, end)
    by_code: dict[str, int] = {}
    for row in rows:
        by_code[row.code] = by_code.get(row.code, 0) + row.count
    refused = system.order_rates.refused
    return Breakdown(start, end, sum(r.count for r in rows), rows,
                     dict(sorted(by_code.items(), key=lambda kv: (-kv[1], kv[0]))),
                     {c: refused[c] for c in clients if refused.get(c)})


def _count(system: TradingSystem, clients: list[str], symbol: str | None,
           strategy: str | None, code: str | None, start: datetime, end: datetime
           ) -> list[RejectionCount]:
    if not clients:
        return []
    n = func.count().label("n")
    columns: list[Any] = [OrderRow.reject_code, OrderRow.client, OrderRow.symbol,
                          OrderRow.strategy, n]
    query = (sql_select(*columns)
             .where(col(OrderRow.status) == "rejected", col(OrderRow.client).in_(clients),
                    col(OrderRow.created_at) >= start, col(OrderRow.created_at) < end)
             .group_by(*columns[:4]))
    if symbol is not None:
        query = query.where(col(OrderRow.symbol) == symbol)
    if strategy is not None:
        query = query.where(col(OrderRow.strategy) == strategy)
    if code is not None:
        query = query.where(col(OrderRow.reject_code) == code)
    with Session(system.db) as session:
        found = [RejectionCount(c or "REJECTED", cl, s, st, int(k))
                 for c, cl, s, st, k in session.execute(query).all()]
    return sorted(found, key=lambda r: (-r.count, r.code, r.client, r.symbol,
                                        r.strategy or ""))
