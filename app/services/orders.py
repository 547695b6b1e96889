"""Orders: place, cancel, replace, amend, cancel-all.

Each answer is the order *as it was at the commit* (a copy taken right then:
the live order may change in the next batch), so an acknowledgement never shows
anything that is not durable.
"""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass
from decimal import Decimal

from app.auth.principal import Principal
from app.domain.commands import AmendOrder, CancelAll, CancelOrder, ReplaceOrder, SubmitOrder
from app.domain.events import Event, OrderAmendRejected, OrderCanceled, OrderSubmitted
from app.domain.orders import Order, OrderSpec, OrderStatus, Side
from app.domain.risk import SizingRequest
from app.runtime.system import TradingSystem
from app.services import history
from app.services.commands import run
from app.services.errors import ServiceError, status_for
from app.services.queries import Reader
from app.services.risk import check_order_rate
from app.services.scope import check_client, visible_clients


@dataclass(frozen=True, slots=True)
class Placed:
    """The outcome of placing: the order (perhaps REJECTED: it exists all the same)
    and whether it is new (``False``: an idempotent retry answered with the first)."""

    order: Order
    created: bool

    @property
    def rejected(self) -> bool:
        return self.order.status is OrderStatus.REJECTED


def rejection_error(order: Order) -> ServiceError:
    """How a caller reports a rejected order: its reason code as the error code."""
    code = order.reject_code or "REJECTED"
    return ServiceError(status_for(code), code, order.reject_message or "order rejected",
                        order=order)


async def place(system: TradingSystem, principal: Principal, spec: OrderSpec,
                clip_to_position: bool = False, sizing: SizingRequest | None = None
                ) -> Placed:
    """Place ``spec`` for ``principal``; return once it is durable. Idempotent on the
    client order id: the same id with the same parameters answers the first order."""
    check_client(principal, spec.client)
    earlier = await _evicted_retry(system, spec)
    if earlier is not None:
        return earlier
    coid = spec.client_order_id
    if coid is None or system.engine.state.order_by_client_id(spec.client, spec.venue,
                                                              coid) is None:
        check_order_rate(system, spec)  # a retry of a known order is not a new order

    def respond(events: list[Event]) -> Placed:
        state = system.engine.state
        submitted = next((e for e in events if type(e) is OrderSubmitted), None)
        if submitted is not None:
            return Placed(copy.copy(state.orders[submitted.order_id]), True)
        # An idempotent retry: nothing new happened; answer with the first order.
        order = state.order_by_client_id(spec.client, spec.venue, spec.client_order_id or "")
        if order is None:
            raise RuntimeError("an order with no events and no earlier order")
        return Placed(copy.copy(order), False)

    committed = await run(system, SubmitOrder(spec, clip_to_position=clip_to_position,
                                              actor=principal.actor, sizing=sizing),
                          respond=respond)
    placed: Placed = committed.response
    return placed


async def _evicted_retry(system: TradingSystem, spec: OrderSpec) -> Placed | None:
    """A retry of an order that left the engine's memory, answered from the projection
    (the same parameters: the first order; others: 409), or None if it is new. Only
    looked up when the engine's filter of evicted ids says it might be one."""
    coid = spec.client_order_id
    state = system.engine.state
    if (coid is None or state.order_by_client_id(spec.client, spec.venue, coid) is not None
            or not state.may_have_evicted(spec.client, spec.venue, coid)):
        return None
    first = await asyncio.to_thread(history.stored_order_by_client_id, system, spec.client,
                                    spec.venue, coid)
    if first is None:
        return None
    if not _same_request(first.spec, spec):
        raise ServiceError(409, "DUPLICATE_CLIENT_ORDER_ID",
                           f"client_order_id {coid!r} was used for another order "
                           f"({first.order_id})", order=first)
    return Placed(first, False)


def _same_request(stored: OrderSpec, asked: OrderSpec) -> bool:
    """Would ``asked`` (a retry) have produced the stored order? (What the projection
    keeps of it: a clipped order's stored qty is the clipped one.)"""
    return (stored.symbol, stored.side, stored.type, stored.price, stored.trigger_price,
            stored.time_in_force, stored.post_only, stored.reduce_only) == (
        asked.symbol, asked.side, asked.type, asked.price, asked.trigger_price,
        asked.time_in_force, asked.post_only, asked.reduce_only) and (
        stored.qty == asked.qty or asked.reduce_only)


async def cancel(system: TradingSystem, principal: Principal, order_id: int) -> Order:
    """Cancel an order (idempotent); the order as it was at the commit. An order that
    finished long ago (and left memory) is answered as it is: there is nothing to do."""
    order = await Reader(system, principal).find_order(order_id)
    if order is not system.engine.state.orders.get(order_id):
        return order
    committed = await run(system, CancelOrder(order.order_id, actor=principal.actor),
                          respond=lambda events: copy.copy(order))
    canceled: Order = committed.response
    return canceled


async def replace(system: TradingSystem, principal: Principal, order_id: int, *,
                  price: Decimal | None = None, qty: Decimal | None = None,
                  trigger_price: Decimal | None = None) -> Order:
    """Cancel/replace with a new price, qty and/or trigger. Returns the successor as it
    was at the commit (perhaps REJECTED), or the original while the venue has not
    confirmed the cancel yet. Retrying returns the same successor. Raises
    ``ORDER_NOT_OPEN`` (409) if the order finished before it could be replaced."""
    order = await Reader(system, principal).find_order(order_id)
    if order is not system.engine.state.orders.get(order_id):
        raise ServiceError(409, "ORDER_NOT_OPEN",
                           f"order {order_id} is {order.status.value}; it cannot be replaced",
                           order=order)

    def respond(events: list[Event]) -> Order | ServiceError:
        successor_id = order.replaced_by
        state = system.engine.state
        if successor_id is None:
            if order.order_id in state.pending_replaces:
                return copy.copy(order)  # venue latency: the cancel is on its way
            return ServiceError(409, "ORDER_NOT_OPEN",
                                f"order {order_id} was {order.status.value} before it could "
                                "be replaced", order=copy.copy(order))
        return copy.copy(state.orders[successor_id])

    command = ReplaceOrder(order.order_id, price, qty, trigger_price, actor=principal.actor)
    committed = await run(system, command, respond=respond)
    answer = committed.response
    if isinstance(answer, ServiceError):
        raise answer
    successor: Order = answer
    return successor


async def amend(system: TradingSystem, principal: Principal, order_id: int, *,
                price: Decimal | None = None, qty: Decimal | None = None) -> Order:
    """Amend an order in place (same order id and client order id): a new price and/or
    total qty. Returns the order as it was at the commit: amended, canceled (a qty at or
    below its fills, or a post-only amend that would cross), or unchanged while the venue
    has not answered yet. Refused (nothing done) with the reason's code otherwise; a
    retry of an amend that took effect changes nothing and answers the order."""
    order = await Reader(system, principal).find_order(order_id)
    if order is not system.engine.state.orders.get(order_id):
        raise ServiceError(409, "ORDER_NOT_OPEN",
                           f"order {order_id} is {order.status.value}; it cannot be amended",
                           order=order)

    def respond(events: list[Event]) -> Order | ServiceError:
        refused = next((e for e in events if type(e) is OrderAmendRejected), None)
        if refused is not None:
            return ServiceError(409, "ORDER_NOT_OPEN",
                                f"order {order_id} could not be amended: {refused.reason}",
                                order=copy.copy(order))
        return copy.copy(order)

    committed = await run(system, AmendOrder(order.order_id, price, qty, actor=principal.actor),
                          respond=respond)
    answer = committed.response
    if isinstance(answer, ServiceError):
        raise answer
    amended: Order = answer
    return amended


async def cancel_all(system: TradingSystem, principal: Principal, client: str | None = None,
                     venue: str | None = None, symbol: str | None = None,
                     side: Side | None = None) -> list[int]:
    """Cancel every open order of the visible clients matching the filters; the ids."""
    canceled: list[int] = []
    for c in visible_clients(principal, system, client):
        committed = await run(system, CancelAll(c, venue, symbol, side, actor=principal.actor))
        canceled.extend(e.order_id for e in committed.events if type(e) is OrderCanceled)
    return canceled
