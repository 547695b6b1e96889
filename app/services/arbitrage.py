"""The funding-rate arbitrage (seed 001) as use cases: start it, stop it, change its
thresholds and capital, and read its opportunities, portfolio, trades and leg-outs.

The arbitrage is a ``funding_arb`` strategy on the host (app/strategies/arbitrage):
``arbitrage:`` in the YAML names its strategy id, client and parameters; starting
it creates it from there the first time. Changes are operator actions, audited,
through the strategies service; reads are scoped to callers who may see its client.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from app.auth.principal import Principal
from app.domain.arbitrage import ArbBook, ArbStatus, ArbTrade, LegOut
from app.domain.arbitrage_rules import PortfolioMetrics, portfolio_metrics
from app.domain.strategies import StrategyRecord
from app.domain.trading_state import TradingState
from app.runtime.bus import utc_now
from app.runtime.system import TradingSystem
from app.services import strategies
from app.services.errors import ServiceError
from app.services.scope import check_client
from app.store.codec import decode_value
from app.store.tables import ArbTradeRow
from app.strategies.arbitrage import FUNDING_ARB, ArbParams, FundingArbTrader
from app.strategies.arbitrage.opportunities import Opportunity, scan_symbol, symbols_of
from app.strategies.arbitrage.trader import TradeMark, mark_trade
from app.strategies.base import StrategyContext, params_dict


def strategy_id(system: TradingSystem) -> str:
    return system.trading.arbitrage.strategy_id


def record(system: TradingSystem, principal: Principal) -> StrategyRecord | None:
    """The arbitrage's strategy (None: never started); 403 outside its client."""
    config = system.trading.arbitrage
    check_client(principal, config.client)
    return system.engine.state.strategies.get(config.strategy_id)


async def start(system: TradingSystem, principal: Principal, reason: str = ""
                ) -> StrategyRecord:
    """Start the arbitrage (created from the YAML's ``arbitrage:`` the first time)."""
    config = system.trading.arbitrage
    existing = record(system, principal)
    if existing is None:
        entry = config.strategy(_default_venues(system))
        return await strategies.create(system, principal, FUNDING_ARB.name, entry.client,
                                       entry.venue, entry.params, entry.id, start=True,
                                       reason=reason)
    if existing.kind != FUNDING_ARB.name:
        raise ServiceError(409, "NOT_AN_ARBITRAGE",
                           f"strategy {existing.strategy_id!r} is a {existing.kind}")
    return await strategies.start(system, principal, existing.strategy_id, reason)


async def stop(system: TradingSystem, principal: Principal, reason: str = ""
               ) -> StrategyRecord:
    """Stop the arbitrage: entries in flight are legged out, exits completed at market;
    trades that are on stay on, hedged, until it starts again."""
    return await strategies.stop(system, principal, _existing(system, principal).strategy_id,
                                 reason)


async def configure(system: TradingSystem, principal: Principal, changes: Mapping[str, Any],
                    reason: str = "") -> StrategyRecord:
    """Change some of its parameters (the rest are kept); a running arbitrage carries on
    with its trades under the new ones."""
    current = _existing(system, principal)
    merged = {**params_dict(current.params), **changes}
    return await strategies.configure(system, principal, current.strategy_id, merged, reason)


# ---- reads ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ArbView:
    """Everything the views show of the arbitrage at one instant."""

    record: StrategyRecord | None
    params: ArbParams
    book: ArbBook
    metrics: PortfolioMetrics
    marks: dict[str, TradeMark]  # open trade id -> its valuation now
    states: dict[str, TradingState]  # venue -> the client's kill-switch state there
    at: datetime

    @property
    def running(self) -> bool:
        return self.record is not None and self.record.running

    @property
    def unmanaged(self) -> bool:
        """Open trades nobody manages: the arbitrage stopped, or a venue halted."""
        return bool(self.book.open) and (
            not self.running or TradingState.HALTED in self.states.values())


def view(system: TradingSystem, principal: Principal) -> ArbView:
    rec = record(system, principal)
    engine = system.engine
    params = _params(system, rec)
    book = engine.state.arb.get(strategy_id(system)) or ArbBook()
    now = _now(system)
    ctx = _context(system, rec, params, now)
    running = _running(system)
    marks: dict[str, TradeMark] = {}
    for trade in book.open.values():
        mark = running.marks.get(trade.trade_id) if running is not None else None
        mark = mark or mark_trade(ctx, trade)
        if mark is not None:
            marks[trade.trade_id] = mark
    client = system.trading.arbitrage.client
    states = {v: engine.trading_state(client, v)[0] for v in params.venues
              if v in engine.venues}
    return ArbView(rec, params, book, portfolio_metrics(book, params.starting_capital, now),
                   marks, states, now)


def opportunities(system: TradingSystem, principal: Principal) -> list[Opportunity]:
    """Every symbol's opportunity now: the running arbitrage's last scan, or a fresh
    one (without its persistence history) when it does not run."""
    rec = record(system, principal)
    running = _running(system)
    if running is not None and running.last_scan:
        return list(running.last_scan)
    params = _params(system, rec)
    now = _now(system)
    ctx = _context(system, rec, params, now)
    book = system.engine.state.arb.get(strategy_id(system)) or ArbBook()
    available = params.starting_capital + book.cumulative_pnl - book.allocated
    listed = ctx.instruments(params.venues[0])
    found = []
    for symbol in symbols_of(ctx, params, listed):
        opp = scan_symbol(ctx, params, symbol, available, persisted=now - now)
        if opp is not None:
            found.append(opp)
    return found


async def trades(system: TradingSystem, principal: Principal, status: str = "all",
                 limit: int = 100, before: datetime | None = None) -> list[ArbTrade]:
    """Open trades first (newest first), then closed ones, newest first (``before``:
    created before that instant, to page back). Closed trades come from the store's
    projection a page at a time, however long the history; entries that never filled
    (cancelled) are listed only when closed trades are asked for by name."""
    record(system, principal)
    book = system.engine.state.arb.get(strategy_id(system)) or ArbBook()
    out: list[ArbTrade] = []
    if status in ("all", "open") and before is None:
        out += sorted(book.open.values(), key=lambda t: t.created_at, reverse=True)[:limit]
    if status in ("all", "closed") and len(out) < limit:
        out += await asyncio.to_thread(
            closed_trades_page, system, strategy_id(system), limit - len(out), before,
            status == "closed")
    return out


def leg_outs(system: TradingSystem, principal: Principal, limit: int = 100) -> list[LegOut]:
    """The latest leg-outs, newest first (what the engine keeps; all are in the store)."""
    record(system, principal)
    book = system.engine.state.arb.get(strategy_id(system)) or ArbBook()
    return list(reversed(book.leg_outs))[:limit]


def closed_trades_page(system: TradingSystem, strategy: str, limit: int,
                       before: datetime | None, cancelled: bool) -> list[ArbTrade]:
    """Closed trades from the projection, newest first (blocking: run it in a thread)."""
    query = select(ArbTradeRow).where(ArbTradeRow.strategy_id == strategy,
                                      col(ArbTradeRow.status).in_(_closed_statuses(cancelled)))
    if before is not None:
        query = query.where(ArbTradeRow.created_at < before)
    query = query.order_by(col(ArbTradeRow.created_at).desc(),
                           col(ArbTradeRow.trade_id).desc()).limit(limit)
    with Session(system.db) as session:
        rows = list(session.exec(query))
    return [decode_value(ArbTrade, json.loads(r.record)) for r in rows]


def _closed_statuses(cancelled: bool) -> list[str]:
    terminal = [s.value for s in ArbStatus if s.terminal]
    return terminal if cancelled else [s for s in terminal if s != ArbStatus.CANCELLED.value]


# ---- helpers ----------------------------------------------------------------------------------

def _existing(system: TradingSystem, principal: Principal) -> StrategyRecord:
    rec = record(system, principal)
    if rec is None:
        raise ServiceError(404, "ARBITRAGE_NOT_STARTED",
                           "the arbitrage has never been started (POST /api/v1/arb/start)")
    return rec


def _default_venues(system: TradingSystem) -> list[str]:
    venues = list(system.engine.venues)
    return venues[:2]


def _params(system: TradingSystem, rec: StrategyRecord | None) -> ArbParams:
    if rec is not None:
        parsed = FUNDING_ARB.parse(rec.params)
        assert isinstance(parsed, ArbParams)
        return parsed
    config = system.trading.arbitrage
    try:
        return ArbParams.model_validate({"venues": _default_venues(system), **config.params})
    except ValueError as exc:
        raise ServiceError(422, "INVALID_PARAMS", f"arbitrage.params: {exc}",
                           {"field": "params"}) from None


def _running(system: TradingSystem) -> FundingArbTrader | None:
    instance = system.strategy_host.instance(strategy_id(system))
    return instance if isinstance(instance, FundingArbTrader) else None


def _context(system: TradingSystem, rec: StrategyRecord | None, params: ArbParams,
             now: datetime) -> StrategyContext:
    config = system.trading.arbitrage
    rec = rec or StrategyRecord(config.strategy_id, FUNDING_ARB.name, config.client,
                                params.venues[0], (), now)
    return StrategyContext(rec, system.engine, now, frozenset(params.venues))


def _now(system: TradingSystem) -> datetime:
    """The engine's clock: its last step, or now."""
    return system.bus.last_processed_at or utc_now()


__all__ = ["ArbView", "Opportunity", "configure", "leg_outs", "opportunities", "start", "stop",
           "trades", "view"]
