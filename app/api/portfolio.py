"""/api/v1 read side: positions, balances, portfolio, trades, fills, events, markets."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlmodel import Session, select

from app.api.deps import System, Viewer, visible_clients
from app.api.inputs import ClientQuery, CursorQuery, IdQuery, SeqQuery, SymbolQuery, VenueQuery
from app.api.schemas import (
    BalancePublic,
    EventPage,
    FillPage,
    MarketPublic,
    PortfolioPublic,
    PositionPublic,
    TradePublic,
)
from app.domain.accounts import AccountSummary
from app.runtime.system import TradingSystem
from app.runtime.topics import visible_to
from app.store.tables import ClosedTradeRow, EventRow, FillRow

router = APIRouter(tags=["portfolio"])
ZERO = Decimal(0)


def _s(d: Decimal | None) -> str | None:
    return None if d is None else format(d, "f")


def _money(d: Decimal) -> str:
    q = d.quantize(Decimal("0.00000001"))
    return format(q if q else abs(q), "f")  # never "-0.00000000"


@router.get("/positions", response_model=list[PositionPublic],
            summary="Open positions with unrealized P&L at mark")
async def positions(principal: Viewer, system: System, client: ClientQuery = None,
                    venue: VenueQuery = None, include_flat: bool = False) -> list[dict]:
    engine = system.engine
    out = []
    for c in visible_clients(principal, system, client):
        for v in system.venue_names:
            if venue is not None and v != venue:
                continue
            prices = engine.prices(v)
            account = engine.state.accounts[(c, v)]
            summary = None  # the account's, once, for every position's liquidation price
            for symbol, p in engine.positions_of(c, v).items():
                if not p.qty and not include_flat:
                    continue
                mark = prices.get(symbol) or p.avg_entry
                inst = engine.instruments[(v, symbol)]
                leverage = account.leverage_for(symbol, inst)
                notional = p.notional(mark)
                if p.qty:
                    summary = summary or engine.summary(c, v)
                liquidation = engine.liquidation_price(c, v, symbol, summary)
                out.append({
                    "client": c, "venue": v, "symbol": symbol, "side": p.direction,
                    "qty": _s(p.qty), "avg_entry_price": _s(p.avg_entry), "mark_price": _s(mark),
                    "notional": _money(notional),
                    "unrealized_pnl": _money(p.unrealized_pnl(mark)),
                    "realized_pnl": _money(p.realized_pnl), "fees": _money(p.fees),
                    "funding": _money(p.funding), "margin": _money(notional / leverage),
                    "leverage": _s(leverage),
                    "maintenance_margin": _money(inst.maintenance_margin(notional)),
                    "liquidation_price": _s(liquidation),
                    "opened_at": p.opened_at,
                })
    return out


def _summary_json(s: AccountSummary) -> dict[str, Any]:
    return {
        "client": s.client, "venue": s.venue, "wallet": _money(s.wallet),
        "equity": _money(s.equity), "available": _money(s.available),
        "margin_used": _money(s.margin_used), "order_margin": _money(s.order_margin),
        "margin_ratio": _s(s.margin_ratio.quantize(Decimal("0.0001")))
        if s.margin_ratio.is_finite() else "inf",
        "maintenance_margin": _money(s.maintenance_margin),
        "maintenance_ratio": _s(s.maintenance_ratio.quantize(Decimal("0.0001")))
        if s.maintenance_ratio.is_finite() else "inf",
        "unrealized_pnl": _money(s.unrealized_pnl), "realized_pnl": _money(s.realized_pnl),
        "fees": _money(s.fees), "funding": _money(s.funding), "deposits": _money(s.deposits),
        "withdrawals": _money(s.withdrawals),
    }


def _summaries(system: TradingSystem, clients: list[str], venue: str | None
               ) -> list[AccountSummary]:
    return [system.engine.summary(c, v) for c in clients for v in system.venue_names
            if venue is None or v == venue]


@router.get("/balances", response_model=list[BalancePublic],
            summary="Balances per account (client + venue)")
async def balances(principal: Viewer, system: System, client: ClientQuery = None,
                   venue: VenueQuery = None) -> list[dict]:
    clients = visible_clients(principal, system, client)
    return [_summary_json(s) for s in _summaries(system, clients, venue)]


def _rollup(name: str, summaries: list[AccountSummary]) -> dict[str, Any]:
    def total(field: str) -> Decimal:
        return sum((getattr(s, field) for s in summaries), ZERO)

    equity, margin = total("equity"), total("margin_used")
    capital = total("deposits") - total("withdrawals")
    pnl = total("realized_pnl") - total("fees") + total("funding") + total("unrealized_pnl")
    return {
        "name": name, "equity": _money(equity), "wallet": _money(total("wallet")),
        "available": _money(total("available")), "margin_used": _money(margin),
        "utilization_pct": _s((margin / equity * 100).quantize(Decimal("0.01")))
        if equity > 0 else "0",
        "realized_pnl": _money(total("realized_pnl")),
        "unrealized_pnl": _money(total("unrealized_pnl")), "fees": _money(total("fees")),
        "funding": _money(total("funding")), "capital": _money(capital),
        "pnl": _money(pnl),
        "pnl_pct": _s((pnl / capital * 100).quantize(Decimal("0.0001"))) if capital else "0",
    }


@router.get("/portfolio", response_model=PortfolioPublic,
            summary="Equity, P&L and utilization per client and in total")
async def portfolio(principal: Viewer, system: System, client: ClientQuery = None) -> dict:
    clients = visible_clients(principal, system, client)
    per_client = [_rollup(c, _summaries(system, [c], None)) for c in clients]
    return {"clients": per_client, "total": _rollup("total", _summaries(system, clients, None))}


def _rows(system: TradingSystem, model: Any, key: Any, clients: list[str], cursor: Any,
          limit: int, **filters: Any) -> list[Any]:
    with Session(system.db) as session:
        query = select(model).where(model.client.in_(clients))  # type: ignore[attr-defined]
        for name, value in filters.items():
            if value is not None:
                query = query.where(getattr(model, name) == value)
        if cursor is not None:
            query = query.where(key < cursor)
        return list(session.exec(query.order_by(key.desc()).limit(limit)))


@router.get("/trades", response_model=list[TradePublic],
            summary="Closed trades, newest first")
async def trades(principal: Viewer, system: System, client: ClientQuery = None,
                 venue: VenueQuery = None, symbol: SymbolQuery = None,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict]:
    clients = visible_clients(principal, system, client)
    rows = await asyncio.to_thread(_rows, system, ClosedTradeRow, ClosedTradeRow.closed_at,
                                   clients, None, limit, venue=venue, symbol=symbol)
    return [_jsonable(r) for r in rows]


@router.get("/fills", response_model=FillPage,
            summary="Fills, newest first (cursor = fill_id)")
async def fills(principal: Viewer, system: System, client: ClientQuery = None,
                venue: VenueQuery = None, symbol: SymbolQuery = None,
                order_id: IdQuery = None, cursor: CursorQuery = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict:
    clients = visible_clients(principal, system, client)
    rows = await asyncio.to_thread(_rows, system, FillRow, FillRow.fill_id, clients, cursor,
                                   limit, venue=venue, symbol=symbol, order_id=order_id)
    items = [_jsonable(r) for r in rows]
    return {"items": items, "next_cursor": rows[-1].fill_id if len(rows) == limit else None}


@router.get("/events", response_model=EventPage,
            summary="The event log after a sequence number (for scripts that tail)")
async def events(principal: Viewer, system: System,
                 after: SeqQuery = 0,
                 limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> dict:
    def read() -> list[EventRow]:
        with Session(system.db) as session:
            query = (select(EventRow).where(EventRow.seq > after)
                     .order_by(EventRow.seq).limit(limit))
            return list(session.exec(query))

    rows = await asyncio.to_thread(read)
    items = []
    for r in rows:
        message = visible_to({"seq": r.seq, "type": r.type, "client": r.client,
                              "venue": r.venue, "created_at": r.created_at, "data": r.payload},
                             principal.clients)
        if message is not None:
            items.append(message)
    last = rows[-1].seq if rows else after
    return {"items": items, "last_seq": last, "more": len(rows) == limit}


@router.get("/markets", response_model=list[MarketPublic],
            summary="Instruments with precision, limits and live prices")
async def markets(principal: Viewer, system: System) -> list[dict]:
    engine = system.engine
    out = []
    for inst in system.instruments:
        venue = engine.venues[inst.venue]
        book = venue.book(inst.symbol)
        rate, next_at = engine.funding_schedule(inst.venue, inst.symbol)
        limits = engine.config.limits_for("", inst.symbol)
        out.append({
            "venue": inst.venue, "symbol": inst.symbol, "kind": inst.kind.value,
            "base": inst.base, "quote": inst.quote, "tick_size": _s(inst.tick_size),
            "step_size": _s(inst.step_size), "min_qty": _s(inst.min_qty),
            "min_notional": _s(inst.min_notional), "max_leverage": _s(inst.max_leverage),
            "maker_fee_rate": _s(inst.maker_fee_rate), "taker_fee_rate": _s(inst.taker_fee_rate),
            "max_position_size": _s(limits.max_position_size),
            "max_position_notional": _s(limits.max_position_notional),
            "bid": _s(book.bid), "ask": _s(book.ask), "last": _s(venue.last.get(inst.symbol)),
            "mark": _s(venue.marks.get(inst.symbol)), "funding_rate": _s(rate),
            "next_funding_at": next_at,
            "mark_updated_at": system.marks_at.get((inst.venue, inst.symbol)),
        })
    return out


def _jsonable(row: Any) -> dict[str, Any]:
    out = {}
    for name, value in row.model_dump().items():
        out[name] = format(value, "f") if isinstance(value, Decimal) else value
    return out
