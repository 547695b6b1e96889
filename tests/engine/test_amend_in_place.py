"""Amend in place: the same order id and client order id, a new price and/or qty.

The standard book: bid 60000.0 × 1, ask 60000.1 × 1 (synthesized depth behind). A
buy resting at 60000.0 has the displayed 1 ahead of it.
"""

from __future__ import annotations

import copy
from datetime import timedelta
from decimal import Decimal

import pytest

from app.domain.commands import AmendOrder, ReplaceOrder
from app.domain.events import (
    OrderAmended,
    OrderAmendRequested,
    OrderCanceled,
    OrderFilled,
)
from app.domain.instruments import VenueCapabilities
from app.domain.orders import OrderStatus
from app.domain.rejections import CommandRefused, RejectCode
from app.domain.venue_profiles import BINANCE_USDM, BYBIT_V5
from app.venues.paper.venue import PaperVenueConfig

D = Decimal
S = OrderStatus
R = RejectCode


def names(events) -> list[str]:
    return [type(e).__name__ for e in events]


def working(engine, order):
    return engine.venues["paper-binance"].working(order.order_id)


def profiled(make_engine, market, at, profile, **config):
    engine = make_engine(venue_config=PaperVenueConfig(
        capabilities=VenueCapabilities(profile=profile), **config))
    market.quote(engine, at(0))
    return engine


def test_a_qty_decrease_keeps_the_order_its_ids_and_its_queue_place(quoted_engine, market,
                                                                    place, at) -> None:
    order, _ = place(quoted_engine, at(1), side="buy", qty="0.5", price="60000.0", coid="q-1")
    market.trade(quoted_engine, at(2), "60000.0", "0.4", "sell")  # eats 0.4 of the 1 ahead
    assert working(quoted_engine, order).queue_ahead == D("0.6")
    events = quoted_engine.handle(AmendOrder(order.order_id, new_qty=D("0.3"), actor="alice"),
                                  at(3))
    assert events == [
        OrderAmendRequested(order.order_id, D("0.3"), None, at(3), "alice"),
        OrderAmended(order.order_id, D("0.3"), D("60000.0"), True, at(3)),
    ]
    assert (order.order_id, order.client_order_id, order.spec.qty) == (
        order.order_id, "q-1", D("0.3"))
    assert working(quoted_engine, order).queue_ahead == D("0.6")  # kept its place
    assert working(quoted_engine, order).remaining == D("0.3")
    assert quoted_engine.summary("demo", "paper-binance").order_margin == \
        D("0.3") * D("60000.0") / 5
    # The next print of 0.9 at the price: 0.6 ahead, then 0.3 for us.
    events = market.trade(quoted_engine, at(4), "60000.0", "0.9", "sell")
    assert [(e.qty, e.price) for e in events if isinstance(e, OrderFilled)] == [
        (D("0.3"), D("60000.0"))]
    assert order.status is S.FILLED


def test_a_price_change_goes_to_the_back_of_the_queue(quoted_engine, market, place,
                                                      at) -> None:
    order, _ = place(quoted_engine, at(1), side="buy", qty="0.5", price="59999.9")
    market.trade(quoted_engine, at(2), "59999.9", "0.5", "sell")
    assert working(quoted_engine, order).queue_ahead == D("1.0")  # 1.5 displayed - 0.5
    events = quoted_engine.handle(AmendOrder(order.order_id, new_price=D("60000.0")), at(3))
    assert events[-1] == OrderAmended(order.order_id, D("0.5"), D("60000.0"), False, at(3))
    assert working(quoted_engine, order).queue_ahead == D(1)  # all of the new level
    assert order.spec.price == D("60000.0") and order.status is S.ACCEPTED


def test_a_qty_increase_goes_to_the_back_of_the_queue(quoted_engine, market, place,
                                                      at) -> None:
    order, _ = place(quoted_engine, at(1), side="buy", qty="0.5", price="60000.0")
    market.trade(quoted_engine, at(2), "60000.0", "0.4", "sell")
    events = quoted_engine.handle(AmendOrder(order.order_id, new_qty=D("0.8")), at(3))
    assert events[-1].kept_priority is False
    assert working(quoted_engine, order).queue_ahead == D(1)
    assert order.remaining_qty == D("0.8")


def test_an_amend_through_the_touch_trades_at_once(quoted_engine, place, at) -> None:
    order, _ = place(quoted_engine, at(1), side="buy", qty="0.5", price="59990.0")
    events = quoted_engine.handle(AmendOrder(order.order_id, new_price=D("60000.1")), at(2))
    assert names(events) == ["OrderAmendRequested", "OrderAmended", "OrderFilled"]
    assert events[-1].liquidity.value == "taker" and order.status is S.FILLED


def test_a_post_only_amend_that_would_cross_cancels_the_order(quoted_engine, place,
                                                              at) -> None:
    order, _ = place(quoted_engine, at(1), side="buy", qty="0.5", price="59990.0",
                     post_only=True)
    events = quoted_engine.handle(AmendOrder(order.order_id, new_price=D("60000.1")), at(2))
    assert names(events) == ["OrderAmendRequested", "OrderCanceled"]
    assert order.status is S.CANCELED and order.cancel_reason == "post-only amend would cross"
    assert order.spec.price == D("59990.0")  # the amend never took effect
    assert quoted_engine.venues["paper-binance"].working(order.order_id) is None


def test_an_amend_to_no_more_than_the_filled_qty_cancels_the_rest(quoted_engine, place,
                                                                  at) -> None:
    order, _ = place(quoted_engine, at(1), side="buy", qty="1.5", price="60000.1")
    assert order.filled_qty == 1 and order.status is S.PARTIALLY_FILLED
    events = quoted_engine.handle(AmendOrder(order.order_id, new_qty=D("0.8")), at(2))
    assert names(events) == ["OrderAmendRequested", "OrderCanceled"]
    assert isinstance(events[-1], OrderCanceled)
    assert (order.status, order.filled_qty, order.spec.qty) == (S.CANCELED, 1, D("1.5"))
    assert order.filled_qty <= order.spec.qty


def test_an_amend_that_changes_nothing_records_nothing(quoted_engine, place, at) -> None:
    order, _ = place(quoted_engine, at(1), side="buy", qty="0.5", price="59990.0")
    quoted_engine.handle(AmendOrder(order.order_id, new_qty=D("0.4")), at(2))
    before = copy.deepcopy(quoted_engine.state.comparable())
    assert quoted_engine.handle(AmendOrder(order.order_id, new_qty=D("0.4")), at(3)) == []
    assert quoted_engine.state.comparable() == before


@pytest.mark.parametrize(("command", "code", "message"), [
    (lambda oid: AmendOrder(oid), R.INVALID_ORDER, "an amend needs a new price or qty"),
    (lambda oid: AmendOrder(oid, new_qty=D("2")), R.INSUFFICIENT_MARGIN,
     "amend refused: needs 24055.99 margin at 5x leverage, 20000.00 available"),
    (lambda oid: AmendOrder(oid, new_price=D("59990.05")), R.PRICE_NOT_ON_TICK,
     "amend refused: price 59990.05 is not a multiple of the tick size 0.1"),
    (lambda oid: AmendOrder(oid, new_qty=D("0.4005")), R.QTY_NOT_ON_STEP,
     "qty 0.4005 is not a multiple of the step size 0.001"),
    (lambda oid: AmendOrder(oid + 1, new_qty=D("0.4")), R.UNKNOWN_ORDER,
     None),
])
def test_an_amend_that_cannot_be_done_is_refused_and_nothing_changes(
        command, code, message, quoted_engine, place, at) -> None:
    order, _ = place(quoted_engine, at(1), side="buy", qty="0.5", price="59990.0")
    before = copy.deepcopy(quoted_engine.state.comparable())
    with pytest.raises(CommandRefused) as info:
        quoted_engine.handle(command(order.order_id), at(2))
    assert info.value.code is code
    if message is not None:
        assert info.value.rejection.message == message
    assert quoted_engine.state.comparable() == before
    assert working(quoted_engine, order).remaining == D("0.5")


def test_finished_or_replaced_orders_cannot_be_amended(quoted_engine, place, at) -> None:
    filled, _ = place(quoted_engine, at(1), side="buy", qty="0.1", price="60000.1")
    with pytest.raises(CommandRefused) as info:
        quoted_engine.handle(AmendOrder(filled.order_id, new_qty=D("0.2")), at(2))
    assert info.value.code is R.ORDER_NOT_OPEN
    resting, _ = place(quoted_engine, at(1), side="buy", qty="0.1", price="59990.0")
    quoted_engine.handle(ReplaceOrder(resting.order_id, new_price=D("59980.0")), at(2))
    with pytest.raises(CommandRefused) as info:
        quoted_engine.handle(AmendOrder(resting.order_id, new_qty=D("0.2")), at(3))
    assert info.value.code is R.ORDER_NOT_OPEN
    assert "was replaced by order" in info.value.rejection.message


def test_binance_requeues_every_amend_and_amends_only_limit_orders(make_engine, market,
                                                                   place, at) -> None:
    """Binance Modify Order: "only LIMIT order modification is supported, modified orders
    will be reordered in the match queue"."""
    engine = profiled(make_engine, market, at, BINANCE_USDM)
    order, _ = place(engine, at(1), side="buy", qty="0.5", price="60000.0")
    market.trade(engine, at(2), "60000.0", "0.4", "sell")
    events = engine.handle(AmendOrder(order.order_id, new_qty=D("0.3")), at(3))
    assert events[-1].kept_priority is False
    assert working(engine, order).queue_ahead == D(1)
    stop, _ = place(engine, at(4), side="sell", type="stop", qty="0.1", trigger="59000.0")
    with pytest.raises(CommandRefused) as info:
        engine.handle(AmendOrder(stop.order_id, new_qty=D("0.2")), at(5))
    assert info.value.code is R.UNSUPPORTED_BY_VENUE


def test_bybit_amends_a_waiting_stop_and_keeps_priority_on_a_decrease(make_engine, market,
                                                                      place, at) -> None:
    engine = profiled(make_engine, market, at, BYBIT_V5)
    stop, _ = place(engine, at(1), side="sell", type="stop_limit", qty="0.3",
                    price="58900.0", trigger="59000.0")
    events = engine.handle(AmendOrder(stop.order_id, new_qty=D("0.2"),
                                      new_price=D("58800.0")), at(2))
    assert events[-1] == OrderAmended(stop.order_id, D("0.2"), D("58800.0"), True, at(2))
    assert working(engine, stop).price == D("58800.0")


def test_with_latency_the_venue_decides_on_arrival_and_fills_count_first(
        make_engine, market, place, at) -> None:
    engine = profiled(make_engine, market, at, BYBIT_V5,
                      submit_latency=timedelta(milliseconds=50))
    order, _ = place(engine, at(1), side="buy", qty="0.5", price="60000.0")
    engine.advance(at(1.05))
    assert order.status is S.ACCEPTED
    events = engine.handle(AmendOrder(order.order_id, new_qty=D("0.2")), at(2))
    assert names(events) == ["OrderAmendRequested"]
    # Before the amend arrives, the whole queue ahead and 0.3 of ours trade.
    market.trade(engine, at(2.01), "60000.0", "1.3", "sell")
    assert order.filled_qty == D("0.3")
    events = engine.advance(at(2.05))
    # 0.2 is not above the 0.3 filled: the rest is canceled, never over-filled.
    assert names(events) == ["OrderCanceled"]
    assert (order.status, order.filled_qty, order.spec.qty) == (S.CANCELED, D("0.3"),
                                                                D("0.5"))


def test_replay_rebuilds_amended_orders(quoted_engine, market, place, at) -> None:
    from tests.engine.conftest import build_engine

    events: list = []
    order, placed = place(quoted_engine, at(1), side="buy", qty="0.5", price="60000.0")
    events += placed
    events += quoted_engine.handle(AmendOrder(order.order_id, new_qty=D("0.4")), at(2))
    events += market.trade(quoted_engine, at(3), "60000.0", "1.1", "sell")
    events += quoted_engine.handle(AmendOrder(order.order_id, new_price=D("59999.0"),
                                              new_qty=D("0.6")), at(4))
    state = build_engine().state
    for e in events:
        state.apply(e)
    assert state.comparable() == quoted_engine.state.comparable()
    assert order.spec.qty == D("0.6") and order.filled_qty == D("0.1")
