"""/api/v1/leverage: an account's leverage per symbol (trader role), audited.

Bounded by the instrument: at most its ``max_leverage``, a whole number, and not
above what the tier of the open position allows. Setting what is already in
force changes nothing (and says so).
"""

from __future__ import annotations

from decimal import Decimal

from fastapi import APIRouter

from app.api.deps import System, Trader
from app.api.schemas import LeveragePublic, LeverageRequest
from app.services.accounts import set_leverage as set_account_leverage

router = APIRouter(tags=["portfolio"])


@router.post("/leverage", response_model=LeveragePublic,
             summary="Set an account's leverage for one symbol")
async def set_leverage(body: LeverageRequest, principal: Trader, system: System) -> dict:
    done = await set_account_leverage(system, principal, body.client, body.venue,
                                      body.symbol, Decimal(body.leverage))
    return {"client": done.client, "venue": done.venue, "symbol": done.symbol,
            "leverage": body.leverage, "previous": int(done.previous),
            "changed": done.changed, "max_notional": format(done.max_notional, "f")}
