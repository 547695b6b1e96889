"""The read side: what one caller may see, and the venue-neutral market view.

api and web read only through here. Every read is scoped by the principal
(a client outside its scope is 403 whether it exists or not, an unknown one
404), and costs O(page): in-memory indexes for live state, indexed queries
(run on a worker thread) for history in the store.

Live reads run on the event loop between two batches of the bus, so what they
see is one committed state; they hand out the engine's own objects, which the
caller must not change and must render before it next awaits.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from app.auth.principal import Principal
from app.domain.accounts import AccountSummary
from app.domain.instruments import Instrument
from app.domain.orders import Order
from app.domain.positions import ClosedTrade, Position
from app.domain.trading_state import GLOBAL, Scope, TradingState, effective_state
from app.runtime.bus import utc_now
from app.runtime.system import TradingSystem
from app.runtime.topics import topic_of, visible_to
from app.services import history
from app.services.errors import ServiceError
from app.services.scope import visible_clients
from app.store.event_log import Recorded
from app.store.tables import ClosedTradeRow, FillRow
from app.venues.base import MarketView as VenueMarket

# Orders a page examines at most, matching or not: a page costs the same from any
# cursor, however sparse the matches (a page may then come back short, with a
# next_cursor to go on from).
SCAN_BUDGET = 5_000

__all__ = ["SCAN_BUDGET", "MarketView", "OrderPage", "PositionView", "Reader", "Recorded",
           "equity_by_client", "markets", "trading_states", "utc_now"]


@dataclass(frozen=True, slots=True)
class PositionView:
    """A position with what it is worth now: mark, margin, liquidation price."""

    client: str
    venue: str
    symbol: str
    position: Position
    mark: Decimal
    leverage: Decimal
    notional: Decimal
    margin: Decimal
    maintenance_margin: Decimal
    liquidation_price: Decimal | None


@dataclass(frozen=True, slots=True)
class MarketView:
    """One instrument's market as any venue reports it."""

    instrument: Instrument
    bid: Decimal | None
    ask: Decimal | None
    last: Decimal | None
    mark: Decimal | None
    funding_rate: Decimal | None
    next_funding_at: datetime | None
    mark_updated_at: datetime | None
    max_position_size: Decimal | None
    max_position_notional: Decimal | None

    def mark_age(self, now: datetime) -> float | None:
        """Seconds since the mark last moved, or None if it never came."""
        at = self.mark_updated_at
        return None if at is None else (now - at).total_seconds()


@dataclass(frozen=True, slots=True)
class OrderPage:
    orders: list[Order]
    next_cursor: int | None


def markets(system: TradingSystem) -> list[MarketView]:
    """Every configured instrument's market (public to every authenticated caller)."""
    engine = system.engine
    out = []
    for inst in system.instruments:
        bid, ask, last, mark = _top_of_book(engine.venues[inst.venue], inst.symbol)
        rate, next_at = engine.funding_schedule(inst.venue, inst.symbol)
        limits = engine.config.limits_for("", inst.symbol)
        out.append(MarketView(inst, bid, ask, last, mark, rate, next_at,
                              system.marks_at.get((inst.venue, inst.symbol)),
                              limits.max_position_size, limits.max_position_notional))
    return out


def _top_of_book(venue: VenueMarket, symbol: str
                 ) -> tuple[Decimal | None, Decimal | None, Decimal | None, Decimal | None]:
    """Bid, ask, last trade and mark of ``symbol`` on ``venue``."""
    book = venue.book(symbol)
    return book.bid, book.ask, venue.last.get(symbol), venue.marks.get(symbol)


def trading_states(system: TradingSystem) -> dict[Scope, TradingState]:
    """Every scope's own setting (read-only), for operators' tools and metrics."""
    return system.engine.state.trading_states


def equity_by_client(system: TradingSystem) -> dict[str, Decimal]:
    """Every client's equity over its venues (for the dashboard's equity history)."""
    engine = system.engine
    return {c: sum((engine.summary(c, v).equity for v in system.venue_names), Decimal(0))
            for c in system.clients}


class Reader:
    """Every read one principal may make."""

    def __init__(self, system: TradingSystem, principal: Principal):
        self.system = system
        self.principal = principal

    # ---- scope ------------------------------------------------------------------------

    def clients(self, requested: str | None = None) -> list[str]:
        """The clients a listing may show (``requested`` checked: 403/404)."""
        return visible_clients(self.principal, self.system, requested)

    def venues(self, requested: str | None = None) -> list[str]:
        names = self.system.venue_names
        return names if requested is None else [v for v in names if v == requested]

    # ---- orders -----------------------------------------------------------------------

    def order(self, order_id: int) -> Order:
        """One order, 404 ``UNKNOWN_ORDER`` if it is not there or not this caller's."""
        order = self.system.engine.state.orders.get(order_id)
        if order is None or not self.principal.can_access(order.spec.client):
            raise ServiceError(404, "UNKNOWN_ORDER", f"there is no order {order_id}")
        return order

    def order_or_none(self, order_id: int) -> Order | None:
        """One order in memory, or None (the web's live rows: recent orders only)."""
        try:
            return self.order(order_id)
        except ServiceError:
            return None

    async def find_order(self, order_id: int) -> Order:
        """One order, in memory or (finished long ago) in the projection; 404
        ``UNKNOWN_ORDER`` if it is not there or not this caller's."""
        order = self.system.engine.state.orders.get(order_id)
        if order is None and order_id < self.system.engine.state.oldest_retained_id:
            order = await asyncio.to_thread(history.stored_order, self.system, order_id)
        if order is None or not self.principal.can_access(order.spec.client):
            raise ServiceError(404, "UNKNOWN_ORDER", f"there is no order {order_id}")
        return order

    async def orders(self, *, status: str | None = None, client: str | None = None,
                     venue: str | None = None, symbol: str | None = None,
                     cursor: int | None = None, limit: int = 100) -> OrderPage:
        """A page of orders, newest first; follow ``next_cursor`` until it is None.

        From memory while the engine still holds every order (and always for open
        ones): a page examines at most ``SCAN_BUDGET`` orders, so with narrow filters
        it may hold fewer than ``limit`` (even none) while older matches remain. Once
        finished orders have left memory, from the projection (indexed, full pages)."""
        clients = self.clients(client)
        if status == "open" or not self.system.engine.state.evicted_orders:
            return self.recent_orders(status=status, client=client, venue=venue,
                                      symbol=symbol, cursor=cursor, limit=limit)
        where = history.HistoryFilter(clients, venue, symbol, status=status)
        found, next_cursor = await asyncio.to_thread(
            history.stored_orders_page, self.system, where, cursor, limit)
        return OrderPage(found, next_cursor)

    def recent_orders(self, *, status: str | None = None, client: str | None = None,
                      venue: str | None = None, symbol: str | None = None,
                      cursor: int | None = None, limit: int = 100) -> OrderPage:
        """A page of the orders in memory (every open one and the recent finished
        ones), newest first, examining at most ``SCAN_BUDGET`` orders: with narrow
        filters it may hold fewer than ``limit`` (even none) while older matches
        remain; follow ``next_cursor`` until it is None."""
        clients = self.clients(client)
        state = self.system.engine.state
        orders = state.orders
        start = state.last_order_id if cursor is None else min(cursor - 1, state.last_order_id)
        candidates: Iterable[int]
        if status == "open":
            # The open-order index, not the whole history: "what is working now" stays
            # cheap however many orders the engine has seen.
            candidates = sorted((oid for (c, v), open_orders in state.open_orders.items()
                                 if c in clients and venue in (None, v)
                                 for oid in open_orders if oid <= start), reverse=True)
        else:
            candidates = state.order_ids_newest_first(clients, start)
        items: list[Order] = []
        examined = 0
        for order_id in candidates:
            if examined == SCAN_BUDGET:
                return OrderPage(items, order_id + 1)  # the next page starts at this order
            examined += 1
            o = orders.get(order_id)
            if o is None:
                continue
            if venue is not None and o.spec.venue != venue:
                continue
            if symbol is not None and o.spec.symbol != symbol:
                continue
            if status is not None and not (o.status.value == status
                                           or (status == "open" and o.is_open)):
                continue
            if len(items) == limit:
                return OrderPage(items, items[-1].order_id)
            items.append(o)
        return OrderPage(items, None)

    def open_orders(self, clients: list[str], limit: int = 50) -> list[Order]:
        """The newest ``limit`` open orders of ``clients`` (already scoped)."""
        state = self.system.engine.state
        found = [o for c in clients for v in self.system.venue_names
                 for o in state.open_orders.get((c, v), {}).values()]
        found.sort(key=lambda o: -o.order_id)
        return found[:limit]

    # ---- positions and accounts -------------------------------------------------------

    def position_qty(self, client: str, venue: str, symbol: str) -> Decimal | None:
        """A position's signed qty, or None if the account never held the symbol."""
        self.clients(client)
        position = self.system.engine.state.positions.get((client, venue, symbol))
        return None if position is None else position.qty

    def positions(self, clients: list[str], venue: str | None = None,
                  include_flat: bool = False) -> list[PositionView]:
        engine = self.system.engine
        out = []
        for c in clients:
            for v in self.venues(venue):
                prices = engine.prices(v)
                account = engine.state.accounts[(c, v)]
                summary = None  # the account's, once, for every position's liquidation
                for symbol, p in engine.positions_of(c, v).items():
                    if not p.qty and not include_flat:
                        continue
                    mark = prices.get(symbol) or p.avg_entry
                    inst = engine.instruments[(v, symbol)]
                    leverage = account.leverage_for(symbol, inst)
                    notional = p.notional(mark)
                    if p.qty:
                        summary = summary or engine.summary(c, v)
                    out.append(PositionView(
                        c, v, symbol, p, mark, leverage, notional, notional / leverage,
                        inst.maintenance_margin(notional),
                        engine.liquidation_price(c, v, symbol, summary)))
        return out

    def summaries(self, clients: list[str], venue: str | None = None
                  ) -> list[AccountSummary]:
        engine = self.system.engine
        return [engine.summary(c, v) for c in clients for v in self.venues(venue)]

    def leverage(self, client: str, venue: str, symbol: str) -> tuple[Decimal, Instrument]:
        """The account's leverage for ``symbol`` and the instrument (404 if unknown)."""
        engine = self.system.engine
        inst = engine.instruments.get((venue, symbol))
        if inst is None:
            raise ServiceError(404, "UNKNOWN_SYMBOL", f"{symbol} is not traded on {venue}")
        return engine.state.accounts[(client, venue)].leverage_for(symbol, inst), inst

    def trade_counts(self, clients: list[str]) -> tuple[int, int]:
        """Closed trades and winners of ``clients``."""
        counts = self.system.engine.state.trade_counts
        pairs = [counts.get(c, (0, 0)) for c in clients]
        return sum(n for n, _ in pairs), sum(w for _, w in pairs)

    def recent_trades(self, clients: list[str], limit: int = 20) -> list[ClosedTrade]:
        """The newest ``limit`` closed trades of ``clients`` (each client's own list)."""
        by_client = self.system.engine.state.closed_trades_by_client
        newest: Iterator[ClosedTrade] = heapq.merge(
            *(reversed(by_client.get(c, [])) for c in clients),
            key=lambda t: t.closed_at, reverse=True)
        return list(itertools.islice(newest, max(0, limit)))

    # ---- kill switches ----------------------------------------------------------------

    def trading_states(self) -> dict[Scope, TradingState]:
        """Every scope's own setting (read-only)."""
        return self.system.engine.state.trading_states

    def state_of(self, scope: Scope) -> TradingState:
        return self.trading_states().get(scope, TradingState.ACTIVE)

    def state_in_force(self, client: str, venue: str) -> tuple[TradingState, Scope]:
        return effective_state(self.trading_states(), client, venue)

    def visible_scopes(self) -> list[Scope]:
        """Global, then every scope with a setting that this caller may see."""
        out = [GLOBAL]
        for scope in sorted(self.trading_states(),
                            key=lambda s: (s.client or "", s.venue or "")):
            if scope.is_global:
                continue
            if scope.client is not None and not self.principal.can_access(scope.client):
                continue
            out.append(scope)
        return out

    # ---- history (the store, off the event loop) --------------------------------------

    async def closed_trades(self, clients: list[str], *, venue: str | None = None,
                            symbol: str | None = None, limit: int = 100
                            ) -> list[ClosedTradeRow]:
        return await asyncio.to_thread(
            _rows, self.system, ClosedTradeRow, ClosedTradeRow.closed_at, clients, None,
            limit, venue=venue, symbol=symbol)

    async def fills(self, clients: list[str], *, venue: str | None = None,
                    symbol: str | None = None, order_id: int | None = None,
                    cursor: int | None = None, limit: int = 100) -> list[FillRow]:
        return await asyncio.to_thread(
            _rows, self.system, FillRow, FillRow.fill_id, clients, cursor, limit,
            venue=venue, symbol=symbol, order_id=order_id)

    async def events(self, after: int, limit: int) -> tuple[list[dict[str, Any]], int, bool]:
        """One page of committed events after ``after`` that this caller may see, the
        last sequence read (``after`` if there was nothing) and whether more follow."""
        rows = await asyncio.to_thread(self.system.log.read, after, limit)
        items = []
        for r in rows:
            message = visible_to({"seq": r.seq, "type": r.type, "client": r.client,
                                  "venue": r.venue, "created_at": r.created_at,
                                  "data": r.payload}, self.principal.clients)
            if message is not None:
                items.append(message)
        return items, (_seq(rows[-1]) if rows else after), len(rows) == limit

    def socket_backlog(self, after: int, limit: int, topics: Iterable[str] | None
                       ) -> tuple[list[dict[str, Any]], int]:
        """Committed events after ``after`` as a socket pushes them (on ``topics``, or
        all), and the last sequence read. Blocking: call it on a worker thread."""
        wanted = None if topics is None else set(topics)
        out = []
        rows = self.system.log.read(after, limit)
        for row in rows:
            topic = topic_of(row.type)
            if wanted is not None and topic not in wanted:
                continue
            message = visible_to({"seq": row.seq, "topic": topic, "type": row.type,
                                  "client": row.client, "data": row.payload},
                                 self.principal.clients)
            if message is not None:
                out.append(message)
        return out, (_seq(rows[-1]) if rows else after)


def _rows(system: TradingSystem, model: Any, key: Any, clients: list[str], cursor: Any,
          limit: int, **filters: Any) -> list[Any]:
    with Session(system.db) as session:
        query = select(model).where(model.client.in_(clients))
        for name, value in filters.items():
            if value is not None:
                query = query.where(getattr(model, name) == value)
        if cursor is not None:
            query = query.where(key < cursor)
        return list(session.exec(query.order_by(key.desc()).limit(limit)))


def _seq(row: sa.Row[Any]) -> int:
    seq: int = row.seq  # a stored row always has its number
    return seq
