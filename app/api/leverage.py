"""/api/v1/leverage: an account's leverage per symbol (trader role), audited.

Bounded by the instrument: at most its ``max_leverage``, a whole number, and not
above what the tier of the open position allows. Setting what is already in
force changes nothing (and says so).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from fastapi import APIRouter

from app.api.deps import System, Trader, check_client, execute
from app.api.errors import ApiError
from app.api.schemas import LeveragePublic, LeverageRequest
from app.domain.commands import SetLeverage
from app.domain.events import Event
from app.store.tables import AuditRow

router = APIRouter(tags=["portfolio"])


@router.post("/leverage", response_model=LeveragePublic,
             summary="Set an account's leverage for one symbol")
async def set_leverage(body: LeverageRequest, principal: Trader, system: System) -> dict:
    check_client(principal, body.client)
    engine = system.engine
    if body.client not in system.clients:
        raise ApiError(404, "UNKNOWN_CLIENT", f"there is no client {body.client!r}")
    if body.venue not in system.venue_names:
        raise ApiError(404, "UNKNOWN_VENUE", f"there is no venue {body.venue!r}")
    inst = engine.instruments.get((body.venue, body.symbol))
    if inst is None:
        raise ApiError(404, "UNKNOWN_SYMBOL", f"{body.symbol} is not traded on {body.venue}")
    previous = engine.state.accounts[(body.client, body.venue)].leverage_for(body.symbol, inst)
    leverage = Decimal(body.leverage)

    def audit(events: list[Event]) -> list[AuditRow]:
        return [AuditRow(at=datetime.now(UTC), actor=principal.actor, action="leverage",
                         scope=f"client {body.client}, venue {body.venue}",
                         reason=f"{body.symbol} {previous}x -> {leverage}x",
                         previous=str(previous),
                         details={"symbol": body.symbol, "leverage": str(leverage),
                                  "changed": bool(events)})]

    committed = await execute(system, SetLeverage(body.client, body.venue, body.symbol,
                                                  leverage, principal.actor), audit=audit)
    return {"client": body.client, "venue": body.venue, "symbol": body.symbol,
            "leverage": body.leverage, "previous": int(previous),
            "changed": bool(committed.events),
            "max_notional": format(inst.max_notional_at(leverage), "f")}
