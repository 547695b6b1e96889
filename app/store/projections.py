"""Projections: read-side tables kept in step with the event log.

Written in the same transaction as the events they come from. For each batch
we find what the events touched (orders, positions, accounts, scopes) and
write those entities' current state from the engine, which has just applied
exactly these events; fills and closed trades are appended as they come.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session

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


def project(session: Session, events: Sequence[Event], state: EngineState) -> None:
    orders: set[int] = set()
    positions: set[tuple[str, str, str]] = set()
    accounts: set[tuple[str, str]] = set()
    for e in events:
        order_id = getattr(e, "order_id", None)
        if order_id is not None:
            orders.add(order_id)
        kind = type(e)
        if kind is OrderFilled:
            session.add(FillRow(fill_id=e.fill_id, order_id=e.order_id, client=e.client,
                                venue=e.venue, symbol=e.symbol, side=e.side.value, qty=e.qty,
                                price=e.price, fee=e.fee, liquidity=e.liquidity.value, at=e.at))
            positions.add((e.client, e.venue, e.symbol))
            accounts.add((e.client, e.venue))
        elif kind is FundingApplied:
            positions.add((e.client, e.venue, e.symbol))
            accounts.add((e.client, e.venue))
        elif kind in (FundsDeposited, FundsWithdrawn):
            accounts.add((e.client, e.venue))
        elif kind is TradeClosed:
            t = e.trade
            session.add(ClosedTradeRow(
                trade_id=t.trade_id, client=t.client, venue=t.venue, symbol=t.symbol,
                direction=t.direction, qty=t.qty, entry_price=t.entry_price,
                exit_price=t.exit_price, realized_pnl=t.realized_pnl, fees=t.fees,
                funding=t.funding, net_pnl=t.net_pnl, pnl_pct=t.pnl_pct, opened_at=t.opened_at,
                closed_at=t.closed_at, exit_reason=t.exit_reason))
        elif kind is TradingStateChanged:
            _project_trading_state(session, e)
    for order_id in orders:
        _project_order(session, state, order_id)
    for key in positions:
        p = state.positions[key]
        session.merge(PositionRow(client=key[0], venue=key[1], symbol=key[2], qty=p.qty,
                                  avg_entry=p.avg_entry, realized_pnl=p.realized_pnl,
                                  fees=p.fees, funding=p.funding, opened_at=p.opened_at))
    for key in accounts:
        a = state.accounts[key]
        session.merge(BalanceRow(client=a.client, venue=a.venue, deposits=a.deposits,
                                 withdrawals=a.withdrawals, realized_pnl=a.realized_pnl,
                                 fees=a.fees, funding=a.funding, wallet=a.wallet))


def _project_order(session: Session, state: EngineState, order_id: int) -> None:
    o = state.orders.get(order_id)
    if o is None:
        return  # a successor announced by a replace request, not placed yet
    s = o.spec
    session.merge(OrderRow(
        order_id=o.order_id, client=s.client, venue=s.venue, symbol=s.symbol,
        client_order_id=o.client_order_id, side=s.side.value, type=s.type.value,
        status=o.status.value, qty=s.qty, price=s.price, trigger_price=s.trigger_price,
        time_in_force=s.time_in_force.value, post_only=s.post_only, reduce_only=s.reduce_only,
        filled_qty=o.filled_qty, avg_fill_price=o.avg_fill_price, fees=o.fees,
        reject_code=o.reject_code, reject_message=o.reject_message,
        cancel_reason=o.cancel_reason, replaces=o.replaces, replaced_by=o.replaced_by,
        created_at=o.created_at, updated_at=o.updated_at or o.created_at))


def _project_trading_state(session: Session, e: TradingStateChanged) -> None:
    key = (e.scope.client or "", e.scope.venue or "")
    row = session.get(TradingStateRow, key)
    if row is None:
        row = TradingStateRow(scope_client=key[0], scope_venue=key[1], state=e.state.value,
                              reason=e.reason, actor=e.actor, updated_at=e.at)
    else:
        row.state, row.reason, row.actor, row.updated_at = (
            e.state.value, e.reason, e.actor, e.at)
    session.add(row)
