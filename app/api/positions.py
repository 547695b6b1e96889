"""/api/v1/positions/close: flatten one position with a reduce-only market order.

The close is an ordinary order placed through ``app.api.orders.submit_order`` (the
same checks, events and rejections as ``POST /api/v1/orders``): a market order on
the opposite side for the whole position, ``reduce_only`` with ``clip_to_position``
so that it can shrink the position but never flip it, whatever filled in between.

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

import asyncio
import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel

from app.api.deps import System, Trader, check_client
from app.api.errors import ApiError
from app.api.inputs import Name, Reason, SymbolName
from app.api.orders import submit_order
from app.api.responses import json_response
from app.api.schemas import OrderCreate, OrderPublic, OrderTagsIn, Strict
from app.auth.audit import write_rows
from app.auth.principal import Principal
from app.domain.orders import OrderType, Side
from app.domain.trading_state import Scope
from app.runtime.system import TradingSystem
from app.store.tables import AuditRow

log = logging.getLogger(__name__)
router = APIRouter(prefix="/positions", tags=["positions"])

# The tag a close's order carries (its strategy), so fills and the blotter say why.
CLOSE_TAG = "position-close"


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


ERRORS = {400: {"description": "the close order was rejected (error.code is the reason)"},
          404: {"description": "no such client or venue, or the account never held "
                               "the symbol (NO_POSITION)"}}


@router.post("/close", status_code=201, response_model=PositionClosed,
             responses={**ERRORS, 200: {"model": PositionClosed,
                                        "description": "already flat: nothing was placed"}},
             summary="Close one position at market (reduce-only)")
async def close(body: PositionClose, principal: Trader, system: System) -> Response:
    """Flatten one position with a reduce-only market order; 201 with the order, or
    200 with ``order: null`` when the position is already flat (a safe retry)."""
    result, status = await close_position(system, principal, body)
    return json_response(result, status)


async def close_position(system: TradingSystem, principal: Principal, body: PositionClose
                         ) -> tuple[dict[str, Any], int]:
    """Close ``body``'s position for ``principal``; ``(answer, 201 or 200)``. Raises
    ``ApiError`` (403 scope, 404 unknown, 400 rejected). The web page calls it too."""
    check_client(principal, body.client)  # before anything else: a scoped caller learns nothing
    if body.client not in system.clients:
        raise ApiError(404, "UNKNOWN_CLIENT", f"there is no client {body.client!r}")
    if body.venue not in system.venue_names:
        raise ApiError(404, "UNKNOWN_VENUE", f"there is no venue {body.venue!r}")
    before = _qty(system, body)
    if before is None:
        raise ApiError(404, "NO_POSITION", f"client {body.client} holds no {body.symbol} "
                                           f"position on {body.venue}")
    if not before:
        return _answer(body, before, before, None), 200
    order = OrderCreate(
        client=body.client, venue=body.venue, symbol=body.symbol,
        side=Side.SELL if before > 0 else Side.BUY, type=OrderType.MARKET, qty=abs(before),
        reduce_only=True, clip_to_position=True, tags=OrderTagsIn(strategy=CLOSE_TAG))
    placed = await submit_order(system, principal, order)
    after = _qty(system, body) or Decimal(0)
    if isinstance(placed, ApiError):
        if not after and placed.code in ("REDUCE_ONLY_WOULD_INCREASE", "TRADING_REDUCE_ONLY"):
            # Another close (or a fill) got there first: the position is flat, which is
            # what was asked.
            return _answer(body, before, after, None), 200
        raise placed
    placed_order, _ = placed
    await _audit(system, principal, body, before, after, placed_order)
    return _answer(body, before, after, placed_order), 201


def _qty(system: TradingSystem, body: PositionClose) -> Decimal | None:
    """The position's signed qty now, or None if the account never held the symbol."""
    position = system.engine.state.positions.get((body.client, body.venue, body.symbol))
    return None if position is None else position.qty


def _answer(body: PositionClose, before: Decimal, after: Decimal,
            order: dict[str, Any] | None) -> dict[str, Any]:
    return {"client": body.client, "venue": body.venue, "symbol": body.symbol,
            "qty_before": _text(before), "qty": _text(after), "flat": not after,
            "order": order}


def _text(qty: Decimal) -> str:
    """A signed qty as GET /positions writes it, flat as "0" (not "0.000")."""
    return format(qty, "f") if qty else "0"


async def _audit(system: TradingSystem, principal: Principal, body: PositionClose,
                 before: Decimal, after: Decimal, order: dict[str, Any]) -> None:
    """Who closed what and why. Written after the order's commit (the order and its
    actor are in the event log already); a failed write is logged, not raised: the
    close happened, and a retry would find the position flat anyway."""
    row = AuditRow(at=datetime.now(UTC), actor=principal.actor, action="position-close",
                   scope=Scope(body.client, body.venue).describe(), reason=body.reason or "",
                   previous=None,
                   details={"symbol": body.symbol, "qty_before": _text(before),
                            "qty_after": _text(after), "order_id": order["id"],
                            "status": order["status"], "filled_qty": order["filled_qty"],
                            "avg_price": order["avg_fill_price"]})
    try:
        await asyncio.to_thread(write_rows, system.db, [row])
    except Exception:
        log.exception("position close of %s %s %s by %s: audit entry not written",
                      body.client, body.venue, body.symbol, principal.actor)
