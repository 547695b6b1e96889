"""Amend in place: a working order's price and/or qty, same order id and client id.

The engine checks what it can know (the order is working and acknowledged, the
venue amends this type, a larger or repriced order passes the pre-trade checks
like a new one would), records the request and hands it to the venue, whose own
view decides what happens (app/venues/paper/venue.py ``_amend_now``): fills may
have reached it first. A qty at or below what has filled cancels the rest, as
Binance's Modify Order does, so an amend never leaves an order filled beyond its
qty. Cancel/replace (a new order with a derived client id) stays available.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from app.domain.commands import AmendOrder
from app.domain.events import Event, OrderAmendRequested
from app.domain.orders import OrderStatus
from app.domain.rejections import CommandRefused, RejectCode
from app.engine.risk import check_order

if TYPE_CHECKING:
    from app.engine.engine import Engine

R = RejectCode
_PENDING = (OrderStatus.PENDING_CANCEL, OrderStatus.PENDING_REPLACE)


def amend_order(engine: Engine, cmd: AmendOrder, now: datetime, out: list[Event]) -> None:
    order = engine._order(cmd.order_id)
    if engine._successor_spec(order) is not None:
        raise CommandRefused(R.ORDER_NOT_OPEN,
                             f"order {order.order_id} was replaced by order "
                             f"{order.replaced_by or '(pending)'}; amend that one instead")
    if not order.is_open or order.status in _PENDING:
        raise CommandRefused(R.ORDER_NOT_OPEN, f"order {order.order_id} is "
                             f"{order.status.value}; it cannot be amended")
    if order.status is OrderStatus.NEW:
        raise CommandRefused(R.ORDER_NOT_OPEN, f"order {order.order_id} is not acknowledged "
                             "by the venue yet; retry the amend")
    if cmd.new_price is None and cmd.new_qty is None:
        raise CommandRefused(R.INVALID_ORDER, "an amend needs a new price or qty")
    spec = order.spec
    venue = engine.venues[spec.venue]
    profile = venue.capabilities.profile
    if spec.type.value not in profile.amend_types:
        raise CommandRefused(R.UNSUPPORTED_BY_VENUE,
                             f"{spec.venue} ({profile.name}) cannot amend {spec.type.value} "
                             "orders in place; cancel/replace it instead")
    if cmd.new_price is not None and not spec.type.has_limit_price:
        raise CommandRefused(R.INVALID_ORDER,
                             f"a {spec.type.value} order has no price to amend")
    if cmd.new_qty is not None and spec.close_position:
        raise CommandRefused(R.INVALID_ORDER,
                             "a close-position order's qty is the position's; it has none "
                             "to amend")
    qty = spec.qty if cmd.new_qty is None else cmd.new_qty
    price = spec.price if cmd.new_price is None else cmd.new_price
    if qty == spec.qty and price == spec.price:
        return  # nothing to change (or a retry of an amend that took effect)
    inst = engine.instruments[(spec.venue, spec.symbol)]
    if qty > order.filled_qty and (qty > spec.qty or price != spec.price):
        # More to fill, or a new price: judged like a new order for what is left.
        ctx = engine._context(spec, inst, now, False, False, exclude=order.order_id)
        rest = replace(spec, qty=qty - order.filled_qty, price=price)
        rejection, _ = check_order(rest, ctx)
        if rejection is not None:
            raise CommandRefused(rejection.code, f"amend refused: {rejection.message}")
    elif qty > order.filled_qty and not inst.qty_on_step(qty):
        raise CommandRefused(R.QTY_NOT_ON_STEP,
                             f"qty {qty} is not a multiple of the step size {inst.step_size}")
    engine._emit(OrderAmendRequested(order.order_id, cmd.new_qty, cmd.new_price, now,
                                     cmd.actor), out)
    engine._on_reports(venue.amend(order.order_id, qty, price, now), out)
