"""/api/v1/positions/close: flatten one position with a reduce-only market order.

The use case is app/services/positions.py: an ordinary order (the same checks,
events and rejections as ``POST /api/v1/orders``), a market order on the opposite
side for the whole position, ``reduce_only`` with ``clip_to_position`` so that it
can shrink the position but never flip it, whatever filled in between.

Retrying is safe. A close whose answer was lost finds the position flat and answers
200 with the flat position and no order (nothing is placed); a close racing another
one is clipped to what is left, and if nothing is left it answers the same 200.
404 ``NO_POSITION`` means the account never held the symbol. Under a kill switch a
close is an order like any other: allowed in reduce-only, refused (400
``TRADING_HALTED``) when trading is disabled, where close-all is the tool.

The optional reason goes to the audit log (action ``position-close``, on the
account's scope) with what the close did.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel

from app.api.deps import System, Trader
from app.api.inputs import Name, Reason, SymbolName
from app.api.openapi import Responses
from app.api.responses import json_response
from app.api.schemas import OrderPublic, Strict, order_json
from app.services import positions as position_service
from app.services.positions import qty_text

router = APIRouter(prefix="/positions", tags=["positions"])


class PositionClose(Strict):
    """Which position to close, and why (for the audit log)."""

    client: Name
    venue: Name
    symbol: SymbolName
    reason: Reason | None = None


class PositionClosed(BaseModel):
    client: str
    venue: str
    symbol: str
    qty_before: str
    qty: str
    flat: bool
    order: OrderPublic | None


ERRORS: Responses = {
    400: {"description": "the close order was rejected (error.code is the reason)"},
    404: {"description": "no such client or venue, or the account never held "
                         "the symbol (NO_POSITION)"}}


def closed_json(closed: position_service.PositionClosed) -> dict[str, Any]:
    return {"client": closed.client, "venue": closed.venue, "symbol": closed.symbol,
            "qty_before": qty_text(closed.qty_before), "qty": qty_text(closed.qty),
            "flat": closed.flat,
            "order": None if closed.order is None else order_json(closed.order)}


@router.post("/close", status_code=201, response_model=PositionClosed,
             responses={**ERRORS, 200: {"model": PositionClosed,
                                        "description": "already flat: nothing was placed"}},
             summary="Close one position at market (reduce-only)")
async def close(body: PositionClose, principal: Trader, system: System) -> Response:
    """Flatten one position with a reduce-only market order; 201 with the order, or
    200 with ``order: null`` when the position is already flat (a safe retry)."""
    closed = await position_service.close_position(system, principal, body.client,
                                                   body.venue, body.symbol, body.reason)
    return json_response(closed_json(closed), 200 if closed.order is None else 201)
