"""History in the store, read a keyset page at a time: closed trades, orders, fills.

Pages follow a keyset cursor (newest first), so rows committed while a caller
pages are not mixed in, and a page costs the same however deep it is. Blocking:
run ``read_page`` on a worker thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement
from sqlmodel import Session, and_, col, or_, select

from app.domain.orders import (
    NO_TAGS,
    TERMINAL_STATUSES,
    Order,
    OrderSpec,
    OrderStatus,
    OrderTags,
    OrderType,
    Side,
    TimeInForce,
    TriggerSource,
)
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


# ---- orders that left the engine's memory --------------------------------------------------

def order_from_row(row: OrderRow) -> Order:
    """An order as the projection holds it (finished: the engine keeps open ones)."""
    tags = NO_TAGS if row.strategy is None else OrderTags(strategy=row.strategy)
    spec = OrderSpec(row.client, row.venue, row.symbol, Side(row.side), OrderType(row.type),
                     row.qty, price=row.price, trigger_price=row.trigger_price,
                     trigger_source=TriggerSource(row.trigger_source),
                     time_in_force=TimeInForce(row.time_in_force), expire_at=row.expire_at,
                     post_only=row.post_only, reduce_only=row.reduce_only,
                     client_order_id=row.client_order_id, tags=tags,
                     callback_rate=row.callback_rate, activation_price=row.activation_price,
                     close_position=row.close_position)
    avg = row.avg_fill_price
    return Order(order_id=row.order_id, spec=spec, client_order_id=row.client_order_id,
                 created_at=row.created_at, status=OrderStatus(row.status),
                 updated_at=row.updated_at, filled_qty=row.filled_qty,
                 filled_notional=row.filled_qty * avg if avg is not None else Decimal(0),
                 fees=row.fees, reject_code=row.reject_code, reject_message=row.reject_message,
                 cancel_reason=row.cancel_reason, replaces=row.replaces,
                 replaced_by=row.replaced_by)


def stored_order(system: TradingSystem, order_id: int) -> Order | None:
    """One order from the projection (blocking)."""
    with Session(system.db) as session:
        row = session.get(OrderRow, order_id)
    return None if row is None else order_from_row(row)


def stored_order_by_client_id(system: TradingSystem, client: str, venue: str, coid: str
                              ) -> Order | None:
    """The order of an account's client order id, from the projection (blocking)."""
    with Session(system.db) as session:
        row = session.exec(select(OrderRow).where(
            OrderRow.client == client, OrderRow.venue == venue,
            OrderRow.client_order_id == coid)).first()
    return None if row is None else order_from_row(row)


def stored_orders_page(system: TradingSystem, where: HistoryFilter, cursor: int | None,
                       limit: int) -> tuple[list[Order], int | None]:
    """A page of orders newest first from the projection, and the cursor of the next
    page (blocking). ``cursor``: the orders below this id."""
    clauses = where.clauses(ORDERS)
    if cursor is not None:
        clauses.append(col(OrderRow.order_id) < cursor)
    rows = read_page(system, ORDERS, clauses, None, limit + 1)
    orders = [order_from_row(r) for r in rows[:limit]]
    return orders, (orders[-1].order_id if len(rows) > limit else None)
