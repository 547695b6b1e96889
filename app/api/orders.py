"""/api/v1/orders: place, list, read, cancel, replace, cancel-all."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response

from app.api.deps import (
    System,
    Trader,
    Viewer,
    authenticate,
    check_client,
    ensure_role,
    execute,
    visible_clients,
)
from app.api.errors import ApiError, error_response, status_for
from app.api.inputs import ClientQuery, CursorQuery, OrderIdPath, SymbolQuery, VenueQuery
from app.api.responses import json_response
from app.api.schemas import (
    CancelAllResult,
    OrderCreate,
    OrderPage,
    OrderPublic,
    OrderReplace,
    order_json,
)
from app.auth.principal import Principal, Role
from app.domain.commands import CancelAll, CancelOrder, ReplaceOrder, SubmitOrder
from app.domain.events import OrderCanceled, OrderSubmitted
from app.domain.orders import NO_TAGS, Order, OrderSpec, OrderStatus, OrderTags, Side
from app.runtime.system import TradingSystem

router = APIRouter(prefix="/orders", tags=["orders"])
STATUSES = frozenset(s.value for s in OrderStatus)
StatusFilter = Literal["open", *sorted(STATUSES)]  # type: ignore[valid-type]

ERRORS = {400: {"description": "rejected (error.code is the reason)"},
          401: {"description": "not authenticated"}, 403: {"description": "not allowed"},
          409: {"description": "client_order_id reused with other parameters"}}


def _rejected(order: Order) -> ApiError:
    code = order.reject_code or "REJECTED"
    return ApiError(status_for(code), code, order.reject_message or "order rejected",
                    {"order": order_json(order)})


def _find(system: TradingSystem, order_id: int, principal) -> Order:
    order = system.engine.state.orders.get(order_id)
    if order is None or not principal.can_access(order.spec.client):
        raise ApiError(404, "UNKNOWN_ORDER", f"there is no order {order_id}")
    return order


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
    return placed_response(await submit_order(request.app.state.system, principal, body))


Placed = tuple[dict[str, Any], int]  # the order as order_json renders it, and 201 or 200


def placed_response(result: Placed | ApiError) -> Response:
    if isinstance(result, ApiError):
        return error_response(result)
    order, status = result
    return json_response(order, status)


async def submit_order(system: TradingSystem, principal: Principal,
                       body: OrderCreate) -> Placed | ApiError:
    """Place ``body`` for ``principal``; return once it is durable: the order as it was
    at the commit, with 201 (new) or 200 (an idempotent retry: the first order).

    A rejected order is *returned* as its ``ApiError`` (400 with the engine's reason
    code): under a kill switch most orders are refused, and each raised error left a
    traceback cycle for the garbage collector. Other failures (client scope, a
    refused command) raise ``ApiError``/``CommandRefused``."""
    check_client(principal, body.client)
    tags = OrderTags(**body.tags.model_dump()) if body.tags else NO_TAGS
    spec = OrderSpec(
        client=body.client, venue=body.venue, symbol=body.symbol, side=body.side,
        type=body.type, qty=body.qty, price=body.price, trigger_price=body.trigger_price,
        trigger_source=body.trigger_source, time_in_force=body.time_in_force,
        expire_at=body.expire_at, post_only=body.post_only, reduce_only=body.reduce_only,
        client_order_id=body.client_order_id, tags=tags)

    def respond(events: list) -> Placed | ApiError:
        # Rendered right at commit: later batches may change the live order.
        state = system.engine.state
        submitted = next((e for e in events if type(e) is OrderSubmitted), None)
        if submitted is not None:
            order, status = state.orders[submitted.order_id], 201
        else:
            # An idempotent retry: nothing new happened; answer with the first order.
            order = state.order_by_client_id(body.client, body.venue,
                                             body.client_order_id or "")
            if order is None:
                raise RuntimeError("an order with no events and no earlier order")
            status = 200
        if order.status is OrderStatus.REJECTED:
            return _rejected(order)
        return order_json(order), status

    committed = await execute(
        system, SubmitOrder(spec, clip_to_position=body.clip_to_position, actor=principal.actor),
        respond=respond)
    return committed.response


# Orders a page examines at most, matching or not: a page costs the same from any
# cursor, however sparse the matches (a page may then come back short, with a
# next_cursor to go on from).
SCAN_BUDGET = 5_000


@router.get("", response_model=OrderPage, summary="List orders, newest first")
async def list_orders(
    principal: Viewer, system: System,
    status: Annotated[StatusFilter | None, Query(description="a status, or 'open'")] = None,
    client: ClientQuery = None, venue: VenueQuery = None, symbol: SymbolQuery = None,
    cursor: CursorQuery = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Response:
    """A page of orders, newest first. Follow ``next_cursor`` until it is null: a page
    examines at most a fixed number of orders, so with narrow filters it can hold fewer
    than ``limit`` items (even none) while older matches remain."""
    clients = visible_clients(principal, system, client)
    state = system.engine.state
    orders = state.orders
    items: list[dict] = []
    start = state.last_order_id if cursor is None else min(cursor - 1, state.last_order_id)
    next_cursor = None
    candidates: Iterable[int]
    if status == "open":
        # The open-order index, not the whole history: "what is working now" stays
        # cheap however many orders the engine has seen.
        candidates = sorted((oid for (c, v), open_orders in state.open_orders.items()
                             if c in clients and venue in (None, v)
                             for oid in open_orders if oid <= start), reverse=True)
    else:
        candidates = state.order_ids_newest_first(clients, start)
    examined = 0
    for order_id in candidates:
        if examined == SCAN_BUDGET:
            next_cursor = order_id + 1  # the next page starts at this order
            break
        examined += 1
        o = orders.get(order_id)
        if o is None:
            continue
        if venue is not None and o.spec.venue != venue:
            continue
        if symbol is not None and o.spec.symbol != symbol:
            continue
        if status is not None and not (o.status.value == status
                                       or (status == "open" and o.is_open)):
            continue
        if len(items) == limit:
            next_cursor = items[-1]["id"]
            break
        items.append(order_json(o))
    return json_response({"items": items, "next_cursor": next_cursor})


@router.get("/{order_id}", response_model=OrderPublic, summary="One order")
async def get_order(order_id: OrderIdPath, principal: Viewer, system: System) -> Response:
    return json_response(order_json(_find(system, order_id, principal)))


@router.delete("/{order_id}", response_model=OrderPublic, responses=ERRORS,
               summary="Cancel an order (idempotent)")
async def cancel_order(order_id: OrderIdPath, principal: Trader, system: System) -> Response:
    return json_response(await cancel(system, principal, order_id))


async def cancel(system: TradingSystem, principal: Principal, order_id: int) -> dict[str, Any]:
    """Cancel an order (idempotent); the order as it was at the commit."""
    order = _find(system, order_id, principal)
    committed = await execute(
        system, CancelOrder(order.order_id, actor=principal.actor),
        respond=lambda events: order_json(order))
    return committed.response


@router.post("/{order_id}/replace", response_model=OrderPublic, responses=ERRORS,
             summary="Cancel/replace with a new price and/or qty")
async def replace_order(order_id: OrderIdPath, body: OrderReplace, principal: Trader,
                        system: System) -> Response:
    """Returns the successor order. Retrying returns the same successor."""
    return json_response(await replace(system, principal, order_id, body))


async def replace(system: TradingSystem, principal: Principal, order_id: int,
                  body: OrderReplace) -> dict[str, Any]:
    """Cancel/replace; the successor as it was at the commit (or the original while a
    venue has not confirmed the cancel yet). Raises ``ApiError``."""
    order = _find(system, order_id, principal)

    def respond(events: list) -> dict[str, Any] | ApiError:
        successor_id = order.replaced_by
        if successor_id is None:
            if order.order_id in system.engine.state.pending_replaces:
                return order_json(order)  # venue latency: the cancel is on its way
            return ApiError(409, "ORDER_NOT_OPEN",
                            f"order {order_id} was {order.status.value} before it could be "
                            "replaced", {"order": order_json(order)})
        successor = system.engine.state.orders[successor_id]
        if successor.status is OrderStatus.REJECTED:
            return _rejected(successor)
        return order_json(successor)

    committed = await execute(
        system, ReplaceOrder(order.order_id, body.price, body.qty, body.trigger_price,
                             actor=principal.actor), respond=respond)
    if isinstance(committed.response, ApiError):
        raise committed.response
    return committed.response


@router.delete("", response_model=CancelAllResult,
               summary="Cancel all open orders matching the filters")
async def cancel_all(principal: Trader, system: System, client: ClientQuery = None,
                     venue: VenueQuery = None, symbol: SymbolQuery = None,
                     side: Side | None = None) -> Response:
    canceled: list[int] = []
    for c in visible_clients(principal, system, client):
        committed = await execute(
            system, CancelAll(c, venue, symbol, side, actor=principal.actor))
        canceled.extend(e.order_id for e in committed.events
                        if type(e) is OrderCanceled)
    # Like every write here, answered as built: the model documents it (see controls.py).
    return json_response({"canceled": canceled, "count": len(canceled)})
