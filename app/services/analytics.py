"""Live performance analytics from the store (``GET /api/v1/analytics``) and seed
000 §3.2's daily recap (``GET /api/v1/reports/daily``), scoped to the clients the
caller may see.

What is measured:

* trades: the ``closed_trades`` projection, closed in [from, to), with their
  slippage against the arrival prices the projection holds (``trade_record``); a trade's
  strategy is that of the orders whose fills fall inside it (same account and
  symbol, between its open and close; a correlated subquery), so ``strategy=``
  keeps the trades a strategy traded;
* orders: the ``orders`` projection created in the window (success, rejection and
  fill rates, rejections by code), by their own ``strategy`` column;
* the equity curve is the realized one: the clients' net deposits (now) plus the
  cumulative net P&L of the window's trades, sampled daily (analytics, 365 periods a
  year) or hourly (daily recap, 8,760) — open positions' unrealized P&L is not in it.

Cost is bounded: the window spans at most ``MAX_WINDOW`` and at most
``MAX_TRADES`` trades are read (more: 422, narrow the window); the queries and the
arithmetic run on a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, case, func
from sqlalchemy import select as sql_select
from sqlmodel import Session, col

from app.auth.principal import Principal
from app.domain.analytics import (
    CRYPTO_DAYS_PER_YEAR,
    Performance,
    TradeRecord,
    order_stats,
    performance,
    realized_curve,
    trade_record,
)
from app.domain.positions import ClosedTrade
from app.runtime.bus import utc_now
from app.runtime.system import TradingSystem
from app.services.errors import ServiceError
from app.services.queries import Reader
from app.store.tables import ClosedTradeRow, FillRow, OrderRow

DEFAULT_WINDOW = timedelta(days=30)
MAX_WINDOW = timedelta(days=366)
MAX_TRADES = 50_000
HOURS_PER_YEAR = CRYPTO_DAYS_PER_YEAR * 24


@dataclass(frozen=True, slots=True)
class Analytics:
    clients: list[str]
    strategy: str | None
    start: datetime
    end: datetime
    capital: Decimal  # the base of the realized equity curve
    performance: Performance


@dataclass(frozen=True, slots=True)
class DailyRecap:
    """Seed 000 §3.2: one UTC day's total P&L, win rate, max drawdown, Sharpe, trades
    and rejections."""

    day: date
    clients: list[str]
    total_pnl: Decimal
    win_rate: Decimal | None
    max_drawdown: Decimal
    max_drawdown_pct: Decimal
    sharpe: Decimal | None
    trades: int
    rejections: int
    rejections_by_code: dict[str, int]


async def analytics(system: TradingSystem, principal: Principal, *, client: str | None = None,
                    strategy: str | None = None, start: datetime | None = None,
                    end: datetime | None = None) -> Analytics:
    reader = Reader(system, principal)
    clients = reader.clients(client)
    end = end or utc_now()
    start = start or end - DEFAULT_WINDOW
    if start >= end:
        raise ServiceError(422, "VALIDATION_ERROR", "'from' must be before 'to'",
                           {"field": "to"})
    if end - start > MAX_WINDOW:
        raise ServiceError(422, "VALIDATION_ERROR",
                           f"the window may span at most {MAX_WINDOW.days} days",
                           {"field": "from"})
    capital = _capital(reader, clients)
    perf = await asyncio.to_thread(_measure, system, clients, strategy, start, end, capital,
                                   timedelta(days=1), CRYPTO_DAYS_PER_YEAR)
    return Analytics(clients, strategy, start, end, capital, perf)


async def daily_recap(system: TradingSystem, principal: Principal, *,
                      client: str | None = None, day: date | None = None) -> DailyRecap:
    reader = Reader(system, principal)
    clients = reader.clients(client)
    day = day or utc_now().date()
    start = datetime.combine(day, time(0), UTC)
    end = start + timedelta(days=1)
    perf = await asyncio.to_thread(_measure, system, clients, None, start, end,
                                   _capital(reader, clients), timedelta(hours=1),
                                   HOURS_PER_YEAR)
    orders = perf.orders
    return DailyRecap(
        day, clients, perf.trades.total_pnl, perf.trades.win_rate, perf.max_drawdown.amount,
        perf.max_drawdown.pct, perf.sharpe, perf.trades.trades,
        orders.rejected if orders else 0, orders.rejections if orders else {})


def _capital(reader: Reader, clients: list[str]) -> Decimal:
    """Net deposits of the clients' accounts (deposits − withdrawals)."""
    return sum((s.deposits - s.withdrawals for s in reader.summaries(clients)), Decimal(0))


def _strategy_of_trade() -> Any:
    """The strategy of the orders whose fills fall inside a trade (its account and
    symbol, between open and close): a scalar subquery correlated to the trade row."""
    return (sql_select(func.max(OrderRow.strategy))
            .select_from(FillRow)
            .join(OrderRow, col(OrderRow.order_id) == col(FillRow.order_id))
            .where(col(FillRow.client) == col(ClosedTradeRow.client),
                   col(FillRow.venue) == col(ClosedTradeRow.venue),
                   col(FillRow.symbol) == col(ClosedTradeRow.symbol),
                   col(FillRow.at) >= col(ClosedTradeRow.opened_at),
                   col(FillRow.at) <= col(ClosedTradeRow.closed_at))
            .correlate(ClosedTradeRow)
            .scalar_subquery())


def _measure(system: TradingSystem, clients: list[str], strategy: str | None,
             start: datetime, end: datetime, capital: Decimal, period: timedelta,
             periods_per_year: int) -> Performance:
    trades = _trades(system, clients, strategy, start, end)
    submitted, rejections, filled = _orders(system, clients, strategy, start, end)
    curve = realized_curve(capital, trades, start, end, period)
    return performance(curve, trades, orders=order_stats(submitted, rejections, filled),
                       periods_per_year=periods_per_year)


def _trades(system: TradingSystem, clients: list[str], strategy: str | None,
            start: datetime, end: datetime) -> list[TradeRecord]:
    if not clients:
        return []
    label = _strategy_of_trade().label("strategy")
    query = (sql_select(ClosedTradeRow, label)
             .where(col(ClosedTradeRow.client).in_(clients),
                    col(ClosedTradeRow.closed_at) >= start,
                    col(ClosedTradeRow.closed_at) < end)
             .order_by(col(ClosedTradeRow.closed_at), col(ClosedTradeRow.trade_id))
             .limit(MAX_TRADES + 1))
    if strategy is not None:
        query = query.where(_strategy_of_trade() == strategy)
    with Session(system.db) as session:
        rows = session.execute(query).all()
    if len(rows) > MAX_TRADES:
        raise ServiceError(422, "TOO_MANY_TRADES",
                           f"more than {MAX_TRADES} trades in the window: narrow it",
                           {"field": "from"})
    return [_record(row, label) for row, label in rows]


def _record(row: ClosedTradeRow, strategy: str | None) -> TradeRecord:
    return trade_record(ClosedTrade(
        row.trade_id, row.client, row.venue, row.symbol, row.direction, row.qty,
        row.entry_price, row.exit_price, row.realized_pnl, row.fees, row.funding,
        row.net_pnl, row.pnl_pct, _utc(row.opened_at), _utc(row.closed_at), row.exit_reason,
        row.entry_arrival, row.exit_arrival), strategy=strategy)


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


def _orders(system: TradingSystem, clients: list[str], strategy: str | None,
            start: datetime, end: datetime) -> tuple[int, dict[str, int], int]:
    """Orders created in the window: how many, each rejection's code, how many filled."""
    if not clients:
        return 0, {}, 0
    where = [col(OrderRow.client).in_(clients), col(OrderRow.created_at) >= start,
             col(OrderRow.created_at) < end]
    if strategy is not None:
        where.append(col(OrderRow.strategy) == strategy)
    filled = func.sum(case((col(OrderRow.filled_qty) > 0, 1), else_=0))
    totals = sql_select(func.count(), filled).where(and_(*where))
    rejected = (sql_select(col(OrderRow.reject_code), func.count())
                .where(and_(*where), col(OrderRow.status) == "rejected")
                .group_by(col(OrderRow.reject_code)))
    with Session(system.db) as session:
        count, filled_count = session.execute(totals).one()
        codes: dict[str, int] = {}
        for code, n in session.execute(rejected).all():
            codes[code or "REJECTED"] = codes.get(code or "REJECTED", 0) + int(n)
    return int(count or 0), codes, int(filled_count or 0)
