"""/api/v1/orders: place, list, read, cancel, replace, amend, cancel-all.

Thin: validate, call the use case (app/services/orders.py), render."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from fastapi import APIRouter, Query, Request, Response

from app.api.deps import Reads, System, Trader, authenticate, ensure_role
from app.api.errors import ApiError, error_response
from app.api.inputs import ClientQuery, CursorQuery, OrderIdPath, SymbolQuery, VenueQuery
from app.api.openapi import Responses
from app.api.responses import json_response
from app.api.schemas import (
    CancelAllResult,
    OrderAmend,
    OrderCreate,
    OrderPage,
    OrderPublic,
    OrderReplace,
    order_json,
    order_spec,
    sizing_request,
)
from app.auth.principal import Principal, Role
from app.domain.orders import OrderStatus, Side
from app.runtime.system import TradingSystem
from app.services import orders

router = APIRouter(prefix="/orders", tags=["orders"])
# A status, or "open"; spelled out for the type checker (sorted, as the OpenAPI enum).
StatusFilter = Literal["open", "accepted", "canceled", "expired", "filled", "new",
                       "partially_filled", "pending_cancel", "pending_replace", "rejected",
                       "triggered"]
if set(get_args(StatusFilter)) != {"open", *(s.value for s in OrderStatus)}:
    raise RuntimeError("StatusFilter is out of step with OrderStatus")

ERRORS: Responses = {400: {"description": "rejected (error.code is the reason)"},
                     401: {"description": "not authenticated"},
                     403: {"description": "not allowed"},
                     409: {"description": "client_order_id reused with other parameters"}}


@router.post("", status_code=201, response_model=OrderPublic,
             responses={**ERRORS, 200: {"model": OrderPublic,
                                        "description": "an idempotent retry: the first order"}},
             summary="Place an order")
async def place_order(body: OrderCreate, request: Request) -> Response:
    """Idempotent on ``client_order_id``: the same id with the same parameters returns
    the first order (200); with other parameters, 409 ``DUPLICATE_CLIENT_ORDER_ID``."""
    # API-key callers are served by app/api/order_lane.py before this route; this
    # one serves browser sessions (CSRF-checked in authenticate) and documents both.
    principal = ensure_role(await authenticate(request), Role.TRADER)
    return await place_response(request.app.state.system, principal, body)


async def place_response(system: TradingSystem, principal: Principal, body: OrderCreate
                         ) -> Response:
    """Place ``body`` and answer: 201 (new) or 200 (an idempotent retry), or a rejected
    order as its 400 with the reason code (returned, not raised: under a kill switch
    most orders are refused, and each raised error left a traceback cycle for the
    garbage collector)."""
    placed = await orders.place(system, principal, order_spec(body), body.clip_to_position,
                                sizing_request(body))
    if placed.rejected:
        return error_response(orders.rejection_error(placed.order))
    return json_response(order_json(placed.order), 201 if placed.created else 200)


@router.get("", response_model=OrderPage, summary="List orders, newest first")
async def list_orders(
    reader: Reads,
    status: Annotated[StatusFilter | None, Query(description="a status, or 'open'")] = None,
    client: ClientQuery = None, venue: VenueQuery = None, symbol: SymbolQuery = None,
    cursor: CursorQuery = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Response:
    """A page of orders, newest first. Follow ``next_cursor`` until it is null: a page
    examines at most a fixed number of orders, so with narrow filters it can hold fewer
    than ``limit`` items (even none) while older matches remain."""
    page = await reader.orders(status=status, client=client, venue=venue, symbol=symbol,
                         cursor=cursor, limit=limit)
    return json_response({"items": [order_json(o) for o in page.orders],
                          "next_cursor": page.next_cursor})


@router.get("/{order_id}", response_model=OrderPublic, summary="One order")
async def get_order(order_id: OrderIdPath, reader: Reads) -> Response:
    return json_response(order_json(await reader.find_order(order_id)))


@router.delete("/{order_id}", response_model=OrderPublic, responses=ERRORS,
               summary="Cancel an order (idempotent)")
async def cancel_order(order_id: OrderIdPath, principal: Trader, system: System) -> Response:
    return json_response(order_json(await orders.cancel(system, principal, order_id)))


@router.post("/{order_id}/replace", response_model=OrderPublic, responses=ERRORS,
             summary="Cancel/replace with a new price and/or qty")
async def replace_order(order_id: OrderIdPath, body: OrderReplace, principal: Trader,
                        system: System) -> Response:
    """Returns the successor order. Retrying returns the same successor."""
    successor = await orders.replace(system, principal, order_id, price=body.price,
                                     qty=body.qty, trigger_price=body.trigger_price)
    if successor.status is OrderStatus.REJECTED:
        raise orders.rejection_error(successor)
    return json_response(order_json(successor))


@router.patch("/{order_id}", response_model=OrderPublic, responses=ERRORS,
              summary="Amend an order in place (price and/or qty)")
async def amend_order(order_id: OrderIdPath, body: OrderAmend, principal: Trader,
                      system: System) -> Response:
    """Same order id and client order id. ``qty`` is the new total (what has filled
    included): a decrease keeps the order's queue place where the venue allows it (not
    on Binance, which requeues every amend); a price change or an increase goes to the
    back. A qty at or below what has filled cancels the rest, and a post-only order
    amended to a price that would cross is canceled: the answer shows the order as it
    ended. Use ``/replace`` for anything else."""
    order = await orders.amend(system, principal, order_id, price=body.price, qty=body.qty)
    return json_response(order_json(order))


@router.delete("", response_model=CancelAllResult,
               summary="Cancel all open orders matching the filters")
async def cancel_all(principal: Trader, system: System, client: ClientQuery = None,
                     venue: VenueQuery = None, symbol: SymbolQuery = None,
                     side: Side | None = None) -> Response:
    canceled = await orders.cancel_all(system, principal, client, venue, symbol, side)
    # Like every write here, answered as built: the model documents it (see controls.py).
    return json_response({"canceled": canceled, "count": len(canceled)})


__all__ = ["ApiError", "router"]
