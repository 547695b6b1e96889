"""Projections: read-side tables kept in step with the event log.

Written in the same transaction as the events they come from. For each batch
we find what the events touched (orders, positions, accounts, scopes) and
write those entities' current state from the engine, which has just applied
exactly these events; fills and closed trades are appended as they come.

Each table is written with ONE bulk statement per batch — an upsert
(``INSERT ... ON CONFLICT DO UPDATE``, which SQLite and PostgreSQL share) for
the entity tables — because per-row ORM merges cost more than everything
else in the order path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.domain.events import (
    Event,
    FundingApplied,
    FundsDeposited,
    FundsWithdrawn,
    OrderFilled,
    TradeClosed,
    TradingStateChanged,
)
from app.engine.state import EngineState
from app.store.tables import (
    BalanceRow,
    ClosedTradeRow,
    FillRow,
    OrderRow,
    PositionRow,
    TradingStateRow,
)

Row = dict[str, Any]


def project(conn: sa.Connection, events: Sequence[Event], state: EngineState) -> None:
    orders: set[int] = set()
    positions: set[tuple[str, str, str]] = set()
    accounts: set[tuple[str, str]] = set()
    fills: list[Row] = []
    trades: list[Row] = []
    scopes: dict[tuple[str, str], Row] = {}
    for e in events:
        order_id = getattr(e, "order_id", None)
        if order_id is not None:
            orders.add(order_id)
        kind = type(e)
        if kind is OrderFilled:
            fills.append({"fill_id": e.fill_id, "order_id": e.order_id, "client": e.client,
                          "venue": e.venue, "symbol": e.symbol, "side": e.side.value,
                          "qty": e.qty, "price": e.price, "fee": e.fee,
                          "liquidity": e.liquidity.value, "at": e.at})
            positions.add((e.client, e.venue, e.symbol))
            accounts.add((e.client, e.venue))
        elif kind is FundingApplied:
            positions.add((e.client, e.venue, e.symbol))
            accounts.add((e.client, e.venue))
        elif kind in (FundsDeposited, FundsWithdrawn):
            accounts.add((e.client, e.venue))
        elif kind is TradeClosed:
            t = e.trade
            trades.append({"trade_id": t.trade_id, "client": t.client, "venue": t.venue,
                           "symbol": t.symbol, "direction": t.direction, "qty": t.qty,
                           "entry_price": t.entry_price, "exit_price": t.exit_price,
                           "realized_pnl": t.realized_pnl, "fees": t.fees,
                           "funding": t.funding, "net_pnl": t.net_pnl, "pnl_pct": t.pnl_pct,
                           "opened_at": t.opened_at, "closed_at": t.closed_at,
                           "exit_reason": t.exit_reason})
        elif kind is TradingStateChanged:
            key = (e.scope.client or "", e.scope.venue or "")
            scopes[key] = {"scope_client": key[0], "scope_venue": key[1],
                           "state": e.state.value, "reason": e.reason, "actor": e.actor,
                           "updated_at": e.at}
    if fills:
        conn.execute(sa.insert(FillRow.__table__), fills)
    if trades:
        conn.execute(sa.insert(ClosedTradeRow.__table__), trades)
    _upsert(conn, OrderRow.__table__, [r for oid in sorted(orders)
                                       if (r := _order_row(state, oid)) is not None])
    _upsert(conn, PositionRow.__table__, [_position_row(state, k) for k in sorted(positions)])
    _upsert(conn, BalanceRow.__table__, [_balance_row(state, k) for k in sorted(accounts)])
    _upsert(conn, TradingStateRow.__table__, list(scopes.values()))


def _upsert(conn: sa.Connection, table: sa.Table, rows: list[Row]) -> None:
    """Insert ``rows``, or update them where their primary key already exists."""
    if not rows:
        return
    insert = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
    stmt = insert(table)
    keys = [c.name for c in table.primary_key.columns]
    stmt = stmt.on_conflict_do_update(
        index_elements=keys,
        set_={name: stmt.excluded[name] for name in rows[0] if name not in keys})
    conn.execute(stmt, rows)


def _order_row(state: EngineState, order_id: int) -> Row | None:
    o = state.orders.get(order_id)
    if o is None:
        return None  # a successor announced by a replace request, not placed yet
    s = o.spec
    return {"order_id": o.order_id, "client": s.client, "venue": s.venue, "symbol": s.symbol,
            "client_order_id": o.client_order_id, "side": s.side.value, "type": s.type.value,
            "status": o.status.value, "qty": s.qty, "price": s.price,
            "trigger_price": s.trigger_price, "time_in_force": s.time_in_force.value,
            "post_only": s.post_only, "reduce_only": s.reduce_only,
            "filled_qty": o.filled_qty, "avg_fill_price": o.avg_fill_price, "fees": o.fees,
            "reject_code": o.reject_code, "reject_message": o.reject_message,
            "cancel_reason": o.cancel_reason, "replaces": o.replaces,
            "replaced_by": o.replaced_by, "created_at": o.created_at,
            "updated_at": o.updated_at or o.created_at}


def _position_row(state: EngineState, key: tuple[str, str, str]) -> Row:
    p = state.positions[key]
    return {"client": key[0], "venue": key[1], "symbol": key[2], "qty": p.qty,
            "avg_entry": p.avg_entry, "realized_pnl": p.realized_pnl, "fees": p.fees,
            "funding": p.funding, "opened_at": p.opened_at}


def _balance_row(state: EngineState, key: tuple[str, str]) -> Row:
    a = state.accounts[key]
    return {"client": a.client, "venue": a.venue, "deposits": a.deposits,
            "withdrawals": a.withdrawals, "realized_pnl": a.realized_pnl, "fees": a.fees,
            "funding": a.funding, "wallet": a.wallet}
