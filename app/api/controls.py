"""/api/v1/controls: the kill switches (operator role), audited.

Seed 003's emergency commands map here: reduce-only, close all at market,
disable trading. The use cases are in app/services/controls.py: each call is
idempotent (setting a state that is already in force changes nothing) and
always writes an audit entry — who, when, scope, reason, previous state — in
the same transaction as its events.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from app.api.deps import Operator, Reads, System
from app.api.responses import json_response
from app.api.schemas import (
    CloseAllPublic,
    ControlRequest,
    TradingStateChange,
    TradingStatePublic,
)
from app.domain.events import CloseResult
from app.domain.trading_state import Scope, TradingState
from app.services import controls
from app.services.controls import StateChange

router = APIRouter(prefix="/controls", tags=["controls"])

# The switches answer with ``json_response``: FastAPI then does not hold the answer to
# its ``response_model`` (which documents it), as it would a returned dict. A response
# failing that check would be a 500 after the switch had taken effect, telling an
# operator it failed; the documented shapes are held by tests/api/test_openapi_fuzz.py.


def state_json(scope: Scope, state: TradingState) -> dict[str, Any]:
    return {"client": scope.client, "venue": scope.venue, "scope": scope.describe(),
            "state": state.value}


def change_json(change: StateChange) -> dict[str, Any]:
    return {**state_json(change.scope, change.state), "previous": change.previous.value,
            "changed": change.changed}


async def _set(system: Any, principal: Any, body: ControlRequest, new: TradingState
               ) -> Response:
    change = await controls.set_trading_state(system, principal, body.client, body.venue,
                                              new, body.reason)
    return json_response(change_json(change))


@router.post("/reduce-only", response_model=TradingStateChange,
             summary="Only position-reducing orders from now on")
async def reduce_only(body: ControlRequest, principal: Operator, system: System) -> Response:
    return await _set(system, principal, body, TradingState.REDUCE_ONLY)


@router.post("/disable-trading", response_model=TradingStateChange,
             summary="Halt: no new orders (cancels still work)")
async def disable_trading(body: ControlRequest, principal: Operator, system: System
                          ) -> Response:
    return await _set(system, principal, body, TradingState.HALTED)


@router.post("/enable-trading", response_model=TradingStateChange,
             summary="Back to normal trading")
async def enable_trading(body: ControlRequest, principal: Operator, system: System
                         ) -> Response:
    return await _set(system, principal, body, TradingState.ACTIVE)


def close_result_json(r: CloseResult) -> dict[str, Any]:
    """One position's close-all result, its decimals in plain notation like every API
    decimal (never "1E-8")."""
    return {"client": r.client, "venue": r.venue, "symbol": r.symbol,
            "qty_before": format(r.qty_before, "f"), "order_id": r.order_id,
            "filled_qty": format(r.filled_qty, "f"),
            "avg_price": None if r.avg_price is None else format(r.avg_price, "f"),
            "status": r.status, "message": r.message}


def close_all_json(change: StateChange) -> dict[str, Any]:
    return {**state_json(change.scope, change.state), "previous": change.previous.value,
            "results": [close_result_json(r) for r in change.results]}


@router.post("/close-all", response_model=CloseAllPublic,
             summary="Cancel all orders, flatten all positions, then reduce-only")
async def close_all(body: ControlRequest, principal: Operator, system: System) -> Response:
    change = await controls.close_all(system, principal, body.client, body.venue, body.reason)
    return json_response(close_all_json(change))


@router.get("", response_model=list[TradingStatePublic], summary="Every scope's trading state")
async def list_controls(reader: Reads) -> list[dict]:
    return [state_json(scope, reader.state_of(scope)) for scope in reader.visible_scopes()]
