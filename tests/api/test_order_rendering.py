"""``order_json`` (the hand-built rendering the order endpoints send) must be exactly
what the documented ``OrderPublic`` model renders, for every kind of order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from app.api.schemas import OrderPublic, order_json
from app.domain.orders import (
    Order,
    OrderSpec,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    TriggerSource,
)

D = Decimal
T0 = datetime(2026, 11, 21, 7, 30, 0, tzinfo=UTC)


def _order(**spec_fields) -> Order:
    spec = OrderSpec(**{"client": "demo", "venue": "paper-binance", "symbol": "BTC-PERP",
                        "side": Side.BUY, "type": OrderType.LIMIT, "qty": D("0.003"),
                        "price": D("57000.5"), "client_order_id": "c-1", **spec_fields})
    return Order(order_id=42, spec=spec, client_order_id="c-1", created_at=T0)


def _filled_thirds() -> Order:
    o = _order(type=OrderType.MARKET, price=None, time_in_force=TimeInForce.IOC)
    o.transition(OrderStatus.ACCEPTED, T0)
    for price in ("57000.1", "57000.2", "57000.4"):  # average 57000.2333...
        o.record_fill(D("0.001"), D(price), D("0.0228"), T0 + timedelta(microseconds=1))
    return o


def _rejected() -> Order:
    o = _order(qty=D("5E+1"), price=D("1.000"))
    o.transition(OrderStatus.REJECTED, T0 + timedelta(seconds=1))
    o.reject_code, o.reject_message = "MIN_NOTIONAL", "order notional 50 is below 100"
    return o


def _gtd_stop() -> Order:
    return _order(type=OrderType.STOP_LIMIT, trigger_price=D("56000"),
                  trigger_source=TriggerSource.MARK, time_in_force=TimeInForce.GTD,
                  expire_at=T0 + timedelta(hours=1), post_only=False, reduce_only=True,
                  side=Side.SELL)


def _replaced() -> Order:
    o = _order()
    o.transition(OrderStatus.ACCEPTED, T0)
    o.transition(OrderStatus.PENDING_REPLACE, T0)
    o.transition(OrderStatus.CANCELED, T0 + timedelta(milliseconds=3))
    o.cancel_reason, o.replaced_by, o.replaces = "replaced", 43, 41
    return o


@pytest.mark.parametrize("order", [_order(), _filled_thirds(), _rejected(), _gtd_stop(),
                                   _replaced()],
                         ids=["new", "filled-avg", "rejected", "gtd-stop", "replaced"])
def test_order_json_is_what_order_public_renders(order: Order) -> None:
    mine = order_json(order)
    documented = OrderPublic.model_validate(mine).model_dump(mode="json")
    assert mine == documented
    assert set(mine) == set(OrderPublic.model_fields)


def test_decimals_are_plain_strings_and_the_average_is_rounded_to_ten_places() -> None:
    rendered = order_json(_filled_thirds())
    assert rendered["avg_fill_price"] == "57000.2333333333"
    assert rendered["filled_qty"] == "0.003" and rendered["remaining_qty"] == "0.000"
    assert order_json(_rejected())["qty"] == "50"  # never "5E+1"
    assert rendered["created_at"] == "2026-11-21T07:30:00Z"
