"""History in the store, read a keyset page at a time: closed trades, orders, fills.

Pages follow a keyset cursor (newest first), so rows committed while a caller
pages are not mixed in, and a page costs the same however deep it is. Blocking:
run ``read_page`` on a worker thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement
from sqlmodel import Session, and_, col, or_, select

from app.domain.orders import TERMINAL_STATUSES, OrderStatus
from app.runtime.system import TradingSystem
from app.services.errors import ServiceError
from app.store.tables import ClosedTradeRow, FillRow, OrderRow

OPEN_STATUSES = tuple(s.value for s in OrderStatus if s not in TERMINAL_STATUSES)


@dataclass(frozen=True)
class Table:
    """One kind of history: its rows, the time they are about, their newest-first order."""

    model: Any
    time_column: Any  # what a time window filters on
    order_by: tuple[Any, ...]  # newest first; the last column is unique (the keyset)

    def cursor_of(self, row: Any) -> tuple[Any, ...]:
        """Where the page after ``row`` starts (its ``order_by`` values)."""
        return tuple(getattr(row, c.key) for c in self.order_by)


TRADES = Table(ClosedTradeRow, ClosedTradeRow.closed_at,
               (ClosedTradeRow.closed_at, ClosedTradeRow.trade_id))
ORDERS = Table(OrderRow, OrderRow.created_at, (OrderRow.order_id,))
FILLS = Table(FillRow, FillRow.at, (FillRow.fill_id,))


@dataclass(frozen=True)
class HistoryFilter:
    """What a caller asks for; ``clients`` already scoped to what it may see."""

    clients: Sequence[str]
    venue: str | None = None
    symbol: str | None = None
    start: datetime | None = None  # inclusive (UTC if naive)
    end: datetime | None = None  # exclusive
    status: str | None = None  # orders: a status, or "open"
    order_id: int | None = None  # fills: of one order

    def clauses(self, table: Table) -> list[ColumnElement[bool]]:
        start, end = _utc(self.start), _utc(self.end)
        if start is not None and end is not None and end <= start:
            raise ServiceError(422, "VALIDATION_ERROR", "to: must be later than from",
                               {"field": "to"})
        model = table.model
        where: list[ColumnElement[bool]] = [col(model.client).in_(list(self.clients))]
        if self.venue is not None:
            where.append(model.venue == self.venue)
        if self.symbol is not None:
            where.append(model.symbol == self.symbol)
        if start is not None:
            where.append(table.time_column >= start)
        if end is not None:
            where.append(table.time_column < end)
        if self.status == "open":
            where.append(col(OrderRow.status).in_(OPEN_STATUSES))
        elif self.status is not None:
            where.append(col(OrderRow.status) == self.status)
        if self.order_id is not None:
            where.append(col(FillRow.order_id) == self.order_id)
        return where


def read_page(system: TradingSystem, table: Table, where: list[Any],
              cursor: tuple[Any, ...] | None, limit: int) -> list[Any]:
    """One page of rows, newest first, after ``cursor`` (blocking: run it in a thread)."""
    query = select(table.model)
    for clause in where:
        query = query.where(clause)
    if cursor is not None:
        query = query.where(_after(table.order_by, cursor))
    query = query.order_by(*(c.desc() for c in table.order_by)).limit(limit)
    with Session(system.db) as session:
        return list(session.exec(query))


def _after(order_by: Sequence[Any], cursor: tuple[Any, ...]) -> Any:
    """Rows after ``cursor`` in newest-first order: (a, b) < (ca, cb), spelled out
    (not a row-value comparison, which not every database plans well)."""
    first, *rest = order_by
    if not rest:
        return first < cursor[0]
    return or_(first < cursor[0], and_(first == cursor[0], _after(rest, cursor[1:])))


def _utc(t: datetime | None) -> datetime | None:
    if t is None:
        return None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
