"""Projections: read-side tables kept in step with the event log.

Written in the same transaction as the events they come from. For each batch
we find what the events touched (orders, positions, accounts, scopes) and
write those entities' current state from the engine, which has just applied
exactly these events; fills and closed trades are appended as they come.

Each table is written with ONE ``executemany`` per batch — an upsert
(``INSERT ... ON CONFLICT DO UPDATE``, which SQLite and PostgreSQL share) for
the entity tables — as a ``StatementBatch``, which skips SQLAlchemy's per-row
work: on the order path that cost more than the database itself.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from app.domain.arbitrage import ArbTradeUpdated, LegOutDetected
from app.domain.events import (
    Event,
    FundingApplied,
    FundsDeposited,
    FundsWithdrawn,
    OrderFilled,
    OrderSubmitted,
    PositionLiquidated,
    TradeClosed,
    TradingStateChanged,
)
from app.domain.orders import Order
from app.engine.state import EngineState
from app.store.bulk import StatementBatch, text
from app.store.codec import encode

Row = tuple[Any, ...]

ORDER_COLUMNS = (
    "order_id", "client", "venue", "symbol", "client_order_id", "side", "type", "status",
    "qty", "price", "trigger_price", "time_in_force", "post_only", "reduce_only",
    "filled_qty", "avg_fill_price", "fees", "reject_code", "reject_message", "cancel_reason",
    "replaces", "replaced_by", "created_at", "updated_at", "trigger_source", "expire_at",
    "strategy", "callback_rate", "activation_price", "close_position")
# What an order's later events can change (everything else is fixed at submission;
# an amend changes qty and price, a close-position's trigger its qty).
ORDER_CHANGE_COLUMNS = ("status", "filled_qty", "avg_fill_price", "fees", "reject_code",
                        "reject_message", "cancel_reason", "replaced_by", "updated_at",
                        "qty", "price")
FILL_COLUMNS = ("fill_id", "order_id", "client", "venue", "symbol", "side", "qty", "price",
                "fee", "liquidity", "at")
POSITION_COLUMNS = ("client", "venue", "symbol", "qty", "avg_entry", "realized_pnl", "fees",
                    "funding", "opened_at")
TRADE_COLUMNS = ("trade_id", "client", "venue", "symbol", "direction", "qty", "entry_price",
                 "exit_price", "realized_pnl", "fees", "funding", "net_pnl", "pnl_pct",
                 "opened_at", "closed_at", "exit_reason", "entry_arrival", "exit_arrival")
BALANCE_COLUMNS = ("client", "venue", "deposits", "withdrawals", "realized_pnl", "fees",
                   "funding", "wallet")
STATE_COLUMNS = ("scope_client", "scope_venue", "state", "reason", "actor", "updated_at")
ARB_TRADE_COLUMNS = ("trade_id", "strategy_id", "client", "symbol", "long_venue",
                     "short_venue", "status", "created_at", "closed_at", "exit_reason",
                     "projected_profit", "actual_profit", "record")
ARB_LEG_OUT_COLUMNS = ("trade_id", "phase", "strategy_id", "client", "symbol", "at", "loss",
                       "record")


def project(out: StatementBatch, events: Sequence[Event], state: EngineState) -> None:
    ts = out.timestamp
    orders: set[int] = set()
    submitted: set[int] = set()
    positions: set[tuple[str, str, str]] = set()
    accounts: set[tuple[str, str]] = set()
    fills: list[Row] = []
    trades: list[Row] = []
    scopes: dict[tuple[str, str], Row] = {}
    arb_trades: dict[str, Row] = {}  # a trade's last state in the batch
    leg_outs: list[Row] = []
    for e in events:
        order_id = getattr(e, "order_id", None)
        if order_id is not None:
            orders.add(order_id)
        match e:
            case OrderSubmitted():
                submitted.add(e.order_id)
            case OrderFilled():
                fills.append((e.fill_id, e.order_id, e.client, e.venue, e.symbol,
                              e.side.value, text(e.qty), text(e.price), text(e.fee),
                              e.liquidity.value, ts(e.at)))
                positions.add((e.client, e.venue, e.symbol))
                accounts.add((e.client, e.venue))
            case FundingApplied() | PositionLiquidated():
                positions.add((e.client, e.venue, e.symbol))
                accounts.add((e.client, e.venue))
            case FundsDeposited() | FundsWithdrawn():
                accounts.add((e.client, e.venue))
            case TradeClosed():
                t = e.trade
                trades.append((t.trade_id, t.client, t.venue, t.symbol, t.direction,
                               text(t.qty), text(t.entry_price), text(t.exit_price),
                               text(t.realized_pnl), text(t.fees), text(t.funding),
                               text(t.net_pnl), text(t.pnl_pct), ts(t.opened_at),
                               ts(t.closed_at), t.exit_reason, text(t.entry_arrival),
                               text(t.exit_arrival)))
            case TradingStateChanged():
                key = (e.scope.client or "", e.scope.venue or "")
                scopes[key] = (key[0], key[1], e.state.value, e.reason, e.actor, ts(e.at))
            case ArbTradeUpdated():
                a = e.trade
                arb_trades[a.trade_id] = (
                    a.trade_id, a.strategy_id, a.client, a.symbol, a.long_venue,
                    a.short_venue, a.status.value, ts(a.created_at), ts(a.closed_at),
                    a.exit_reason, text(a.projected_profit), text(a.actual_profit),
                    json.dumps(encode(a), separators=(",", ":")))
            case LegOutDetected():
                lo = e.leg_out
                leg_outs.append((lo.trade_id, lo.phase, lo.strategy_id, lo.client, lo.symbol,
                                 ts(lo.at), text(lo.loss),
                                 json.dumps(encode(lo), separators=(",", ":"))))
    out.insert("fills", FILL_COLUMNS, fills)
    out.insert("closed_trades", TRADE_COLUMNS, trades)
    # An order's row is inserted by the batch that submits it; later batches update
    # only what can change (an upsert of all 24 columns cost twice as much).
    new_rows, changes = [], []
    for oid in sorted(orders):
        order = state.orders.get(oid)
        if order is None:
            continue  # a successor announced by a replace request, not placed yet
        if oid in submitted:
            new_rows.append(_order_row(order, ts))
        else:
            changes.append(_order_change(order, ts))
    out.insert("orders", ORDER_COLUMNS, new_rows)
    out.update("orders", ORDER_CHANGE_COLUMNS, ("order_id",), changes)
    out.upsert("positions", POSITION_COLUMNS, ("client", "venue", "symbol"),
               [_position_row(state, k, ts) for k in sorted(positions)])
    out.upsert("balances", BALANCE_COLUMNS, ("client", "venue"),
               [_balance_row(state, k) for k in sorted(accounts)])
    out.upsert("trading_states", STATE_COLUMNS, ("scope_client", "scope_venue"),
               list(scopes.values()))
    out.upsert("arb_trades", ARB_TRADE_COLUMNS, ("trade_id",), list(arb_trades.values()))
    out.upsert("arb_leg_outs", ARB_LEG_OUT_COLUMNS, ("trade_id", "phase"), leg_outs)


def _order_row(o: Order, ts: Any) -> Row:
    s = o.spec
    return (o.order_id, s.client, s.venue, s.symbol, o.client_order_id, s.side.value,
            s.type.value, o.status.value, text(s.qty), text(s.price), text(s.trigger_price),
            s.time_in_force.value, s.post_only, s.reduce_only, text(o.filled_qty),
            text(o.avg_fill_price), text(o.fees), o.reject_code, _fit(o.reject_message, 500),
            _fit(o.cancel_reason, 200), o.replaces, o.replaced_by, ts(o.created_at),
            ts(o.updated_at or o.created_at), s.trigger_source.value,
            None if s.expire_at is None else ts(s.expire_at), s.tags.strategy,
            text(s.callback_rate), text(s.activation_price), s.close_position)


def _order_change(o: Order, ts: Any) -> Row:
    return (o.status.value, text(o.filled_qty), text(o.avg_fill_price), text(o.fees),
            o.reject_code, _fit(o.reject_message, 500), _fit(o.cancel_reason, 200),
            o.replaced_by, ts(o.updated_at or o.created_at), text(o.spec.qty),
            text(o.spec.price), o.order_id)


def _fit(message: str | None, width: int) -> str | None:
    """A message cut to its column here, with a visible ellipsis: a database that
    refused an overlong value would fail the whole commit (every order in it)."""
    if message is None or len(message) <= width:
        return message
    return message[:width - 1] + "…"


def _position_row(state: EngineState, key: tuple[str, str, str], ts: Any) -> Row:
    p = state.positions[key]
    return (key[0], key[1], key[2], text(p.qty), text(p.avg_entry), text(p.realized_pnl),
            text(p.fees), text(p.funding), ts(p.opened_at))


def _balance_row(state: EngineState, key: tuple[str, str]) -> Row:
    a = state.accounts[key]
    return (a.client, a.venue, text(a.deposits), text(a.withdrawals), text(a.realized_pnl),
            text(a.fees), text(a.funding), text(a.wallet))
