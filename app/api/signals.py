"""/api/v1/signals: strategies' signals to orders (seed 002).

* ``POST /signals`` (trader of the client): a signal ``1 | 0 | -1`` for a client,
  venue and symbol; idempotent on ``signal_id`` (201 new, 200 a retry, 409 the id
  with another signal). The answer is the signal with the orders it placed, or the
  reason it placed none.
* ``GET /signals/{signal_id}``: the same, later (orders' states move on).
* ``GET /signals/params/{client}`` (viewer of that client) and ``PUT`` (operator,
  with a reason; audited): the client's signal order parameters.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, BeforeValidator, Field

from app.api.deps import Operator, Reads, System, Trader
from app.api.inputs import (
    NAME_MAX,
    NAME_PATTERN,
    Instant,
    Name,
    Reason,
    SymbolName,
    parse_decimal,
)
from app.api.openapi import Responses
from app.api.responses import json_response
from app.api.schemas import OrderPublic, Strict, order_json
from app.config import SignalParamsConfig
from app.domain.orders import Order
from app.services import signals
from app.services.signals import ParamsView, SignalView

router = APIRouter(tags=["signals"])

PathName = Annotated[str, Path(min_length=1, max_length=NAME_MAX, pattern=NAME_PATTERN)]
ERRORS: Responses = {403: {"description": "not your client, or not allowed"},
                     404: {"description": "no such client, venue or signal"},
                     409: {"description": "signal_id reused for another signal"}}


class SignalCreate(Strict):
    """A strategy's signal. ``at`` is when the strategy produced it; ``strength``
    (0..1] scales the size when the client's parameters say so."""

    client: Name
    venue: Name
    symbol: SymbolName
    signal: Literal[1, 0, -1]
    at: Instant
    strategy: Name
    strength: Annotated[Decimal, BeforeValidator(parse_decimal), Field(gt=0, le=1)] | None = None
    signal_id: Name | None = None


class SignalOrderPublic(OrderPublic):
    """An order with the signal and strategy that placed it."""

    strategy: str | None
    signal_id: str | None
    exit_reason: str | None


class BracketPublic(BaseModel):
    bracket_id: int
    entry_side: str
    take_profit_frac: str | None
    stop_loss_frac: str | None
    entry_filled: str
    exit_filled: str
    protected_qty: str
    take_profit_order_id: int | None
    stop_loss_order_id: int | None
    closed: str | None
    legs: list[SignalOrderPublic]


class SignalPublic(BaseModel):
    signal_id: str
    client: str
    venue: str
    symbol: str
    signal: int
    strategy: str
    strength: str | None
    at: str
    received_at: str
    resolved: bool
    reason: str | None  # why no order went out (or the entry was refused)
    message: str
    reference_price: str | None
    take_profit_frac: str | None
    stop_loss_frac: str | None
    orders: list[SignalOrderPublic]
    bracket: BracketPublic | None


class SignalParamsPublic(BaseModel):
    client: str
    source: str  # "default" | "configured" | "set"
    params: SignalParamsConfig


class SignalParamsUpdate(Strict):
    params: SignalParamsConfig
    reason: Reason


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _order(o: Order) -> dict[str, Any]:
    return {**order_json(o), "strategy": o.spec.tags.strategy,
            "signal_id": o.spec.tags.signal_id, "exit_reason": o.spec.tags.exit_reason}


def signal_json(view: SignalView) -> dict[str, Any]:
    r = view.record
    resolved = r.resolved
    b = view.bracket
    return {
        "signal_id": r.signal_id, "client": r.client, "venue": r.venue, "symbol": r.symbol,
        "signal": r.signal, "strategy": r.strategy, "strength": _dec(r.strength),
        "at": r.signal_at.isoformat(), "received_at": r.received_at.isoformat(),
        "resolved": resolved is not None,
        "reason": resolved.reason.value if resolved and resolved.reason else None,
        "message": resolved.message if resolved else "",
        "reference_price": _dec(resolved.reference_price) if resolved else None,
        "take_profit_frac": _dec(resolved.take_profit_frac) if resolved else None,
        "stop_loss_frac": _dec(resolved.stop_loss_frac) if resolved else None,
        "orders": [_order(o) for o in view.orders],
        "bracket": None if b is None else {
            "bracket_id": b.bracket_id, "entry_side": b.entry_side.value,
            "take_profit_frac": _dec(b.take_profit_frac),
            "stop_loss_frac": _dec(b.stop_loss_frac), "entry_filled": _dec(b.entry_filled),
            "exit_filled": _dec(b.exit_filled), "protected_qty": _dec(b.qty),
            "take_profit_order_id": b.take_profit_order_id,
            "stop_loss_order_id": b.stop_loss_order_id, "closed": b.closed,
            "legs": [_order(o) for o in view.bracket_legs]},
    }


def params_json(view: ParamsView) -> dict[str, Any]:
    return {"client": view.client, "source": view.source,
            "params": signals.params_json(view.params)}


@router.post("/signals", status_code=201, response_model=SignalPublic,
             responses={**ERRORS, 200: {"model": SignalPublic,
                                        "description": "an idempotent retry: the first "
                                                       "signal"}},
             summary="Submit a signal (1 long, 0 flat, -1 short)")
async def post_signal(body: SignalCreate, principal: Trader, system: System) -> Any:
    """Turned into orders by the client's signal parameters, through the risk gate
    like any order. A signal that placed no order says why in ``reason``."""
    submitted = await signals.submit(
        system, principal, client=body.client, venue=body.venue, symbol=body.symbol,
        signal=body.signal, at=body.at, strategy=body.strategy, strength=body.strength,
        signal_id=body.signal_id)
    return json_response(signal_json(submitted.view), 201 if submitted.created else 200)


@router.get("/signals/params/{client}", response_model=SignalParamsPublic, responses=ERRORS,
            summary="A client's signal order parameters")
async def get_params(client: PathName, reader: Reads) -> Any:
    return json_response(params_json(signals.params_view(reader.system, reader.principal,
                                                         client)))


@router.put("/signals/params/{client}", response_model=SignalParamsPublic, responses=ERRORS,
            summary="Replace a client's signal order parameters (operator)")
async def put_params(client: PathName, body: SignalParamsUpdate, principal: Operator,
                     system: System) -> Any:
    view = await signals.set_params(system, principal, client, body.params.to_domain(),
                                    body.reason)
    return json_response(params_json(view))


# ``:path``: a signal id may hold "/" (the names' alphabet); the parameters' routes
# above are matched first.
@router.get("/signals/{signal_id:path}", response_model=SignalPublic, responses=ERRORS,
            summary="A signal: the orders it placed, or why none")
async def get_signal(signal_id: PathName, reader: Reads) -> Any:
    return json_response(signal_json(signals.signal_view(reader.system, reader.principal,
                                                         signal_id)))
