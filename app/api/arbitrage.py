"""/api/v1/arb: the funding-rate arbitrage (seed 001).

* ``GET /arb`` — whether it runs, its parameters, the kill-switch state of its
  client on each venue, and whether open trades are unmanaged (stopped or halted).
* ``POST /arb/start``, ``POST /arb/stop`` (operator; audited; idempotent): a JSON
  body, ``{}`` or ``{"reason": "..."}`` for the audit log.
* ``PUT /arb/config`` (operator; audited): change some parameters (thresholds,
  capital); the others are kept.
* ``GET /arb/opportunities``: each symbol's funding delta, spread, costs, projected
  profit and confidence, and why it is not a candidate when it is not.
* ``GET /arb/portfolio``: seed 001's metrics. ``GET /arb/trades``, ``GET /arb/leg-outs``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, create_model

from app.api.deps import Operator, Reads, System
from app.api.inputs import Instant, Reason
from app.api.openapi import Responses
from app.api.schemas import Strict
from app.api.strategies import ParamsIn
from app.domain.arbitrage import ArbTrade, LegOut
from app.domain.arbitrage_rules import PortfolioMetrics
from app.services import arbitrage
from app.services.arbitrage import ArbView, Opportunity
from app.services.strategies import params_dict

router = APIRouter(prefix="/arb", tags=["arbitrage"])

ERRORS: Responses = {403: {"description": "not the arbitrage's client, or not an operator"},
                     404: {"description": "the arbitrage was never started"},
                     422: {"description": "parameters the arbitrage refuses (INVALID_PARAMS)"}}
Limit = Annotated[int, Query(ge=1, le=200)]


class ArbAction(Strict):
    reason: Reason | None = None




class ArbConfigIn(Strict):
    params: ParamsIn
    reason: Reason | None = None


class ArbStatusPublic(BaseModel):
    strategy_id: str
    client: str
    running: bool
    status: str
    status_reason: str
    params: dict[str, Any]
    trading_states: dict[str, str]
    open_trades: int
    unmanaged: bool
    at: datetime


def public_model(cls: type, name: str, **extra: Any) -> type[BaseModel]:
    """The API's schema of a domain dataclass: decimals as strings (the money rule),
    enums as their values, nested records as objects; ``extra`` adds fields."""
    hints = typing.get_type_hints(cls)
    fields: dict[str, Any] = {f.name: (_public_type(hints[f.name]), ...)
                              for f in dataclasses.fields(cls)}
    fields.update(extra)
    model: type[BaseModel] = create_model(name, **fields)
    return model


def _public_type(hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _public_type(inner[0]) | None
    if origin is tuple:
        item = typing.get_args(hint)[0]
        return list[_public_type(item)]  # type: ignore[misc]
    if hint is Decimal:
        return str
    if isinstance(hint, type) and issubclass(hint, Enum):
        return str
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return public_model(hint, f"{hint.__name__}Public")
    return hint


def plain(value: Any) -> Any:
    """A domain value as JSON: decimals as strings, times as ISO 8601, enums as values."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value


Money = str | None  # a decimal as a string (None: not known yet)
OpportunityPublic = public_model(Opportunity, "ArbOpportunityPublic")
PortfolioPublic = public_model(
    PortfolioMetrics, "ArbPortfolioPublic", unrealized_pnl=(str, ...),
    exit_reasons=(dict[str, int], ...), at=(datetime, ...))
TradePublic = public_model(
    ArbTrade, "ArbTradePublic", long_qty=(str, ...), short_qty=(str, ...),
    long_entry_price=(Money, ...), short_entry_price=(Money, ...), fees=(str, ...),
    funding=(str, ...), unrealized_pnl=(Money, ...), booked_if_closed=(Money, ...),
    current_spread_bps=(Money, ...), funding_delta_now=(Money, ...))
LegOutPublic = public_model(LegOut, "ArbLegOutPublic")
# (Built at import: the checker cannot see them as types.)
OpportunityList: Any = list[OpportunityPublic]  # type: ignore[valid-type]
TradeList: Any = list[TradePublic]  # type: ignore[valid-type]
LegOutList: Any = list[LegOutPublic]  # type: ignore[valid-type]


def status_json(v: ArbView, system: Any) -> dict[str, Any]:
    config = system.trading.arbitrage
    rec = v.record
    return {"strategy_id": config.strategy_id, "client": config.client,
            "running": v.running, "status": rec.status.value if rec else "not_started",
            "status_reason": rec.status_reason if rec else "",
            "params": params_dict(rec.params) if rec else v.params.model_dump(mode="json"),
            "trading_states": {k: s.value for k, s in v.states.items()},
            "open_trades": len(v.book.open), "unmanaged": v.unmanaged, "at": v.at}


def trade_json(t: ArbTrade, v: ArbView | None = None) -> dict[str, Any]:
    """A trade as the API shows it: the record, its legs summed up, and for an open
    one its valuation now."""
    out = plain(t)
    out.update({
        "long_qty": plain(t.long_qty), "short_qty": plain(t.short_qty),
        "long_entry_price": plain(t.entry_price(t.long_venue)),
        "short_entry_price": plain(t.entry_price(t.short_venue)),
        "fees": plain(t.fees), "funding": plain(t.funding)})
    mark = v.marks.get(t.trade_id) if v is not None else None
    out["unrealized_pnl"] = plain(mark.unrealized) if mark is not None else None
    out["booked_if_closed"] = plain(mark.booked) if mark is not None else None
    out["current_spread_bps"] = plain(mark.current_spread_bps) if mark is not None else None
    out["funding_delta_now"] = plain(mark.funding_delta) if mark is not None else None
    return dict(out)


@router.get("", response_model=ArbStatusPublic, responses=ERRORS,
            summary="The arbitrage: running or not, its parameters, its venues' states")
async def get_status(reader: Reads) -> dict[str, Any]:
    return status_json(arbitrage.view(reader.system, reader.principal), reader.system)


@router.post("/start", response_model=ArbStatusPublic, responses=ERRORS,
             summary="Start the arbitrage (operator; idempotent)")
async def start(body: ArbAction, principal: Operator, system: System) -> dict[str, Any]:
    await arbitrage.start(system, principal, _reason(body))
    return status_json(arbitrage.view(system, principal), system)


@router.post("/stop", response_model=ArbStatusPublic, responses=ERRORS,
             summary="Stop the arbitrage (operator; idempotent): entries in flight are "
                     "legged out, trades that are on stay on, hedged")
async def stop(body: ArbAction, principal: Operator, system: System) -> dict[str, Any]:
    await arbitrage.stop(system, principal, _reason(body))
    return status_json(arbitrage.view(system, principal), system)


@router.put("/config", response_model=ArbStatusPublic, responses=ERRORS,
            summary="Change some of the arbitrage's parameters (operator)")
async def configure(body: ArbConfigIn, principal: Operator, system: System
                    ) -> dict[str, Any]:
    await arbitrage.configure(system, principal, body.params, body.reason or "")
    return status_json(arbitrage.view(system, principal), system)


@router.get("/opportunities", response_model=OpportunityList, responses=ERRORS,
            summary="Each symbol's opportunity now (candidates: confidence ≥ 70, profit > 0)")
async def opportunities(reader: Reads) -> list[dict[str, Any]]:
    found = arbitrage.opportunities(reader.system, reader.principal)
    return [plain(o) for o in sorted(found, key=lambda o: o.projected_profit, reverse=True)]


@router.get("/portfolio", response_model=PortfolioPublic, responses=ERRORS,
            summary="Seed 001's portfolio metrics")
async def portfolio(reader: Reads) -> dict[str, Any]:
    v = arbitrage.view(reader.system, reader.principal)
    out = dict(plain(v.metrics))
    out["unrealized_pnl"] = plain(sum((m.unrealized for m in v.marks.values()), Decimal(0)))
    out["exit_reasons"] = dict(v.book.exit_reasons)
    out["at"] = v.at.isoformat()
    return out


@router.get("/trades", response_model=TradeList, responses=ERRORS,
            summary="Trades: open ones first, then closed ones, newest first")
async def trades(reader: Reads, status: Literal["all", "open", "closed"] = "all",
                 limit: Limit = 100, before: Instant | None = None) -> list[dict[str, Any]]:
    """``before``: closed trades created before this instant (the next page after the
    oldest trade of a page)."""
    v = arbitrage.view(reader.system, reader.principal)
    found = await arbitrage.trades(reader.system, reader.principal, status, limit, before)
    return [trade_json(t, v) for t in found]


@router.get("/leg-outs", response_model=LegOutList, responses=ERRORS,
            summary="Leg-outs, newest first")
async def leg_outs(reader: Reads, limit: Limit = 100) -> list[dict[str, Any]]:
    return [plain(lo) for lo in arbitrage.leg_outs(reader.system, reader.principal, limit)]


def _reason(body: ArbAction) -> str:
    return body.reason or ""
