"""/api/v1 read side: positions, balances, portfolio, trades, fills, events, markets."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query

from app.api.deps import Reads
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
from app.services.queries import MarketView, PositionView
from app.services.queries import markets as markets_view

router = APIRouter(tags=["portfolio"])
ZERO = Decimal(0)


def _s(d: Decimal | None) -> str | None:
    return None if d is None else format(d, "f")


def _money(d: Decimal) -> str:
    q = d.quantize(Decimal("0.00000001"))
    return format(q if q else abs(q), "f")  # never "-0.00000000"


@router.get("/positions", response_model=list[PositionPublic],
            summary="Open positions with unrealized P&L at mark")
async def positions(reader: Reads, client: ClientQuery = None, venue: VenueQuery = None,
                    include_flat: bool = False) -> list[dict]:
    return [_position_json(v) for v in reader.positions(reader.clients(client), venue,
                                                        include_flat)]


def _position_json(v: PositionView) -> dict[str, Any]:
    p = v.position
    return {
        "client": v.client, "venue": v.venue, "symbol": v.symbol, "side": p.direction,
        "qty": _s(p.qty), "avg_entry_price": _s(p.avg_entry), "mark_price": _s(v.mark),
        "notional": _money(v.notional), "unrealized_pnl": _money(p.unrealized_pnl(v.mark)),
        "realized_pnl": _money(p.realized_pnl), "fees": _money(p.fees),
        "funding": _money(p.funding), "margin": _money(v.margin), "leverage": _s(v.leverage),
        "maintenance_margin": _money(v.maintenance_margin),
        "liquidation_price": _s(v.liquidation_price), "opened_at": p.opened_at,
    }


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


@router.get("/balances", response_model=list[BalancePublic],
            summary="Balances per account (client + venue)")
async def balances(reader: Reads, client: ClientQuery = None, venue: VenueQuery = None
                   ) -> list[dict]:
    return [_summary_json(s) for s in reader.summaries(reader.clients(client), venue)]


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
async def portfolio(reader: Reads, client: ClientQuery = None) -> dict:
    clients = reader.clients(client)
    per_client = [_rollup(c, reader.summaries([c])) for c in clients]
    return {"clients": per_client, "total": _rollup("total", reader.summaries(clients))}


@router.get("/trades", response_model=list[TradePublic],
            summary="Closed trades, newest first")
async def trades(reader: Reads, client: ClientQuery = None, venue: VenueQuery = None,
                 symbol: SymbolQuery = None,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict]:
    rows = await reader.closed_trades(reader.clients(client), venue=venue, symbol=symbol,
                                      limit=limit)
    return [_jsonable(r) for r in rows]


@router.get("/fills", response_model=FillPage,
            summary="Fills, newest first (cursor = fill_id)")
async def fills(reader: Reads, client: ClientQuery = None, venue: VenueQuery = None,
                symbol: SymbolQuery = None, order_id: IdQuery = None,
                cursor: CursorQuery = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict:
    rows = await reader.fills(reader.clients(client), venue=venue, symbol=symbol,
                              order_id=order_id, cursor=cursor, limit=limit)
    items = [_jsonable(r) for r in rows]
    return {"items": items, "next_cursor": rows[-1].fill_id if len(rows) == limit else None}


@router.get("/events", response_model=EventPage,
            summary="The event log after a sequence number (for scripts that tail)")
async def events(reader: Reads, after: SeqQuery = 0,
                 limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> dict:
    items, last, more = await reader.events(after, limit)
    return {"items": items, "last_seq": last, "more": more}


@router.get("/markets", response_model=list[MarketPublic],
            summary="Instruments with precision, limits and live prices")
async def markets(reader: Reads) -> list[dict]:
    return [_market_json(m) for m in markets_view(reader.system)]


def _market_json(m: MarketView) -> dict[str, Any]:
    inst = m.instrument
    return {
        "venue": inst.venue, "symbol": inst.symbol, "kind": inst.kind.value,
        "base": inst.base, "quote": inst.quote, "tick_size": _s(inst.tick_size),
        "step_size": _s(inst.step_size), "min_qty": _s(inst.min_qty),
        "min_notional": _s(inst.min_notional), "max_leverage": _s(inst.max_leverage),
        "maker_fee_rate": _s(inst.maker_fee_rate), "taker_fee_rate": _s(inst.taker_fee_rate),
        "max_position_size": _s(m.max_position_size),
        "max_position_notional": _s(m.max_position_notional),
        "bid": _s(m.bid), "ask": _s(m.ask), "last": _s(m.last), "mark": _s(m.mark),
        "funding_rate": _s(m.funding_rate), "next_funding_at": m.next_funding_at,
        "mark_updated_at": m.mark_updated_at,
    }


def _jsonable(row: Any) -> dict[str, Any]:
    out = {}
    for name, value in row.model_dump().items():
        out[name] = format(value, "f") if isinstance(value, Decimal) else value
    return out
