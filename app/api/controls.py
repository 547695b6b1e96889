"""/api/v1/controls: the kill switches (operator role), audited.

Seed 003's emergency commands map here: reduce-only, close all at market,
disable trading. Each call is idempotent (setting a state that is already in
force changes nothing) and always writes an audit entry — who, when, scope,
reason, previous state — in the same transaction as its events.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Response

from app.api.deps import Operator, System, Viewer, check_client, execute
from app.api.errors import ApiError
from app.api.responses import json_response
from app.api.schemas import (
    CloseAllPublic,
    ControlRequest,
    TradingStateChange,
    TradingStatePublic,
)
from app.auth.principal import Principal
from app.domain.commands import CloseAll, SetTradingState
from app.domain.events import CloseAllCompleted, CloseResult, Event, OrderCanceled
from app.domain.trading_state import Scope, TradingState
from app.runtime.system import TradingSystem
from app.store.codec import encode
from app.store.tables import AuditRow

router = APIRouter(prefix="/controls", tags=["controls"])

# The switches answer with ``json_response``: FastAPI then does not hold the answer to
# its ``response_model`` (which documents it), as it would a returned dict. A response
# failing that check would be a 500 after the switch had taken effect, telling an
# operator it failed; the documented shapes are held by tests/api/test_openapi_fuzz.py.


def _scope(body: ControlRequest, principal: Principal, system: TradingSystem) -> Scope:
    if body.client is not None and body.client not in system.clients:
        raise ApiError(404, "UNKNOWN_CLIENT", f"there is no client {body.client!r}")
    if body.venue is not None and body.venue not in system.venue_names:
        raise ApiError(404, "UNKNOWN_VENUE", f"there is no venue {body.venue!r}")
    if body.client is None:
        if principal.clients is not None:
            raise ApiError(403, "CLIENT_FORBIDDEN",
                           "a client-scoped operator must name one of its clients")
    else:
        check_client(principal, body.client)
    return Scope(body.client, body.venue)


def _state_json(system: TradingSystem, scope: Scope) -> dict:
    states = system.engine.state.trading_states
    return {"client": scope.client, "venue": scope.venue, "scope": scope.describe(),
            "state": states.get(scope, TradingState.ACTIVE).value}


async def _set(system: TradingSystem, principal: Principal, body: ControlRequest,
               new: TradingState, action: str) -> dict:
    scope = _scope(body, principal, system)
    previous = system.engine.state.trading_states.get(scope, TradingState.ACTIVE)

    def audit(events: list[Event]) -> list[AuditRow]:
        return [AuditRow(at=datetime.now(UTC), actor=principal.actor, action=action,
                         scope=scope.describe(), reason=body.reason, previous=previous.value,
                         details={"state": new.value, "changed": bool(events),
                                  "canceled_orders": sum(1 for e in events
                                                         if type(e) is OrderCanceled)})]

    committed = await execute(
        system, SetTradingState(scope, new, body.reason, principal.actor), audit=audit,
        respond=lambda events: _state_json(system, scope))
    return {**committed.response, "previous": previous.value,
            "changed": bool(committed.events)}


@router.post("/reduce-only", response_model=TradingStateChange,
             summary="Only position-reducing orders from now on")
async def reduce_only(body: ControlRequest, principal: Operator, system: System) -> Response:
    return json_response(
        await _set(system, principal, body, TradingState.REDUCE_ONLY, "reduce-only"))


@router.post("/disable-trading", response_model=TradingStateChange,
             summary="Halt: no new orders (cancels still work)")
async def disable_trading(body: ControlRequest, principal: Operator, system: System
                          ) -> Response:
    return json_response(
        await _set(system, principal, body, TradingState.HALTED, "disable-trading"))


@router.post("/enable-trading", response_model=TradingStateChange,
             summary="Back to normal trading")
async def enable_trading(body: ControlRequest, principal: Operator, system: System
                         ) -> Response:
    return json_response(
        await _set(system, principal, body, TradingState.ACTIVE, "enable-trading"))


def close_result_json(result: CloseResult) -> dict[str, Any]:
    """One position's close-all result, its decimals in plain notation like every API
    decimal (``encode`` writes ``str(Decimal)``: "1E-8" for a small value)."""
    out = encode(result)
    for name in ("qty_before", "filled_qty", "avg_price"):
        value = getattr(result, name)
        out[name] = None if value is None else format(value, "f")
    return out


@router.post("/close-all", response_model=CloseAllPublic,
             summary="Cancel all orders, flatten all positions, then reduce-only")
async def close_all(body: ControlRequest, principal: Operator, system: System) -> Response:
    scope = _scope(body, principal, system)
    previous = system.engine.state.trading_states.get(scope, TradingState.ACTIVE)
    results: list[dict] = []

    def audit(events: list[Event]) -> list[AuditRow]:
        done = next((e for e in events if type(e) is CloseAllCompleted), None)
        summary = [encode(r) for r in done.results] if done else []
        return [AuditRow(at=datetime.now(UTC), actor=principal.actor, action="close-all",
                         scope=scope.describe(), reason=body.reason, previous=previous.value,
                         details={"results": summary})]

    committed = await execute(system, CloseAll(scope, body.reason, principal.actor),
                                         audit=audit,
                                         respond=lambda events: _state_json(system, scope))
    done = next((e for e in committed.events if type(e) is CloseAllCompleted), None)
    if done is not None:
        results = [close_result_json(r) for r in done.results]
    return json_response({**committed.response, "previous": previous.value,
                          "results": results})


@router.get("", response_model=list[TradingStatePublic], summary="Every scope's trading state")
async def list_controls(principal: Viewer, system: System) -> list[dict]:
    states = system.engine.state.trading_states
    out = [_state_json(system, Scope())]
    for scope in sorted(states, key=lambda s: (s.client or "", s.venue or "")):
        if scope.is_global:
            continue
        if scope.client is not None and not principal.can_access(scope.client):
            continue
        out.append(_state_json(system, scope))
    return out
