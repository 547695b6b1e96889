"""Cancel, replace (cancel + successor with a derived client id) and cancel-all."""

from __future__ import annotations

import copy
from dataclasses import replace
from decimal import Decimal

import pytest

from app.domain.commands import CancelAll, CancelOrder, ReplaceOrder
from app.domain.events import (
    OrderAccepted,
    OrderCanceled,
    OrderCancelRequested,
    OrderFilled,
    OrderReplaceRequested,
    OrderSubmitted,
)
from app.domain.orders import OrderStatus, OrderTags, Side
from app.domain.rejections import CommandRefused, RejectCode
from app.engine.engine import AccountSetup

S = OrderStatus
R = RejectCode


def names(events) -> list[str]:
    return [type(e).__name__ for e in events]


# ---- cancel ---------------------------------------------------------------------------


def test_cancel_moves_the_order_to_canceled_with_the_reason(quoted_engine, place, at) -> None:
    order, _ = place(quoted_engine, at(1), qty="0.5", price="59000.0")
    assert quoted_engine.summary("demo", "paper-binance").order_margin == Decimal("5900")
    events = quoted_engine.handle(
        CancelOrder(order.order_id, actor="alice", reason="changed my mind"), at(2))
    assert events == [
        OrderCancelRequested(order.order_id, at(2), "alice"),
        OrderCanceled(order.order_id, "changed my mind", at(2)),
    ]
    assert order.status is S.CANCELED and order.cancel_reason == "changed my mind"
    assert order.updated_at == at(2)
    assert quoted_engine.venues["paper-binance"].working(order.order_id) is None
    assert order.order_id not in quoted_engine.state.open_orders[("demo", "paper-binance")]
    assert quoted_engine.summary("demo", "paper-binance").order_margin == 0


def test_cancel_twice_is_idempotent(quoted_engine, place, at) -> None:
    order, _ = place(quoted_engine, at(1), qty="0.5", price="59000.0")
    quoted_engine.handle(CancelOrder(order.order_id, reason="first"), at(2))
    before = copy.deepcopy(quoted_engine.state.comparable())
    assert quoted_engine.handle(CancelOrder(order.order_id, reason="second"), at(3)) == []
    assert quoted_engine.state.comparable() == before
    assert order.cancel_reason == "first"


def test_cancel_of_a_filled_order_is_refused(quoted_engine, place, at) -> None:
    order, _ = place(quoted_engine, at(1), qty="0.5", price="60000.1")
    assert order.status is S.FILLED
    with pytest.raises(CommandRefused) as info:
        quoted_engine.handle(CancelOrder(order.order_id), at(2))
    assert info.value.code is R.ORDER_NOT_OPEN
    assert info.value.rejection.message == f"order {order.order_id} is filled; nothing to cancel"
    assert order.status is S.FILLED


def test_cancel_of_a_partially_filled_order_keeps_its_fills(quoted_engine, place, at) -> None:
    order, _ = place(quoted_engine, at(1), qty="1.5", price="60000.1")
    assert (order.status, order.filled_qty) == (S.PARTIALLY_FILLED, Decimal(1))
    quoted_engine.handle(CancelOrder(order.order_id), at(2))
    assert (order.status, order.filled_qty) == (S.CANCELED, Decimal(1))
    assert quoted_engine.state.positions[("demo", "paper-binance", "BTC-PERP")].qty == 1


# ---- replace --------------------------------------------------------------------------


@pytest.fixture
def long_half(quoted_engine, place, at):
    """demo is long 0.5 BTC-PERP (bought at 60000.1), book refreshed at t+1."""
    place(quoted_engine, at(0), type="market", qty="0.5")
    return quoted_engine


def test_replace_keeps_side_type_flags_and_tags(long_half, market, place, at) -> None:
    engine = long_half
    tags = OrderTags(strategy="s1", signal_id="sig-7", parent_trade_id="t-1",
                     exit_reason="take_profit")
    old, _ = place(engine, at(1), side="sell", qty="0.3", price="61000.0", tif="gtd",
                   expire_at=at(3600), post_only=True, reduce_only=True, coid="x", tags=tags)
    assert old.status is S.ACCEPTED

    events = engine.handle(ReplaceOrder(old.order_id, new_price=Decimal("61500.0"),
                                        actor="bob"), at(2))
    new_id = old.order_id + 1
    assert names(events) == ["OrderReplaceRequested", "OrderCanceled", "OrderSubmitted",
                             "OrderAccepted"]
    assert events[0].actor == "bob" and events[0].new_order_id == new_id
    assert events[1] == OrderCanceled(old.order_id, "replaced", at(2), replaced_by=new_id)
    new = engine.state.orders[new_id]
    assert new.spec == replace(old.spec, price=Decimal("61500.0"), client_order_id="x.r1")
    assert new.spec.tags == tags and new.spec.post_only and new.spec.reduce_only
    assert new.spec.side is Side.SELL and new.spec.expire_at == at(3600)
    assert (old.status, old.cancel_reason, old.replaced_by) == (S.CANCELED, "replaced", new_id)
    assert (new.status, new.replaces, new.client_order_id) == (S.ACCEPTED, old.order_id, "x.r1")
    venue = engine.venues["paper-binance"]
    assert venue.working(old.order_id) is None
    working = venue.working(new_id)
    assert working is not None and working.price == Decimal("61500.0") and working.reduce_only
    assert engine.state.order_by_client_id("demo", "paper-binance", "x.r1") is new


def test_replace_of_the_replacement_derives_r2(quoted_engine, place, at) -> None:
    first, _ = place(quoted_engine, at(1), qty="0.1", price="59000.0", coid="x")
    quoted_engine.handle(ReplaceOrder(first.order_id, new_price=Decimal("59100.0")), at(2))
    second = quoted_engine.state.orders[first.replaced_by]
    quoted_engine.handle(ReplaceOrder(second.order_id, new_price=Decimal("59200.0")), at(3))
    third = quoted_engine.state.orders[second.replaced_by]
    assert [o.client_order_id for o in (first, second, third)] == ["x", "x.r1", "x.r2"]
    assert third.replaces == second.order_id and second.replaces == first.order_id
    assert third.spec.price == Decimal("59200.0") and third.status is S.ACCEPTED


def test_replace_of_a_36_character_id_stays_within_36(quoted_engine, place, at) -> None:
    coid = "a" * 36
    first, _ = place(quoted_engine, at(1), qty="0.1", price="59000.0", coid=coid)
    quoted_engine.handle(ReplaceOrder(first.order_id, new_price=Decimal("59100.0")), at(2))
    second = quoted_engine.state.orders[first.replaced_by]
    quoted_engine.handle(ReplaceOrder(second.order_id, new_price=Decimal("59200.0")), at(3))
    third = quoted_engine.state.orders[second.replaced_by]
    assert second.client_order_id == "a" * 33 + ".r1"
    assert third.client_order_id == "a" * 33 + ".r2"
    assert len(second.client_order_id) == len(third.client_order_id) == 36
    assert second.status is S.CANCELED and third.status is S.ACCEPTED


def test_retrying_the_same_replace_returns_nothing(quoted_engine, place, at) -> None:
    order, _ = place(quoted_engine, at(1), qty="0.1", price="59000.0", coid="x")
    command = ReplaceOrder(order.order_id, new_price=Decimal("59100.0"))
    assert quoted_engine.handle(command, at(2))
    count = len(quoted_engine.state.orders)
    before = copy.deepcopy(quoted_engine.state.comparable())
    assert quoted_engine.handle(command, at(3)) == []
    assert len(quoted_engine.state.orders) == count == 2
    assert quoted_engine.state.comparable() == before
    open_ids = set(quoted_engine.state.open_orders[("demo", "paper-binance")])
    assert open_ids == {order.replaced_by}


def test_refused_replacement_leaves_the_original_untouched(quoted_engine, place, at) -> None:
    order, _ = place(quoted_engine, at(1), qty="0.1", price="59000.0", coid="x")
    before = copy.deepcopy(quoted_engine.state.comparable())
    with pytest.raises(CommandRefused) as info:
        quoted_engine.handle(ReplaceOrder(order.order_id, new_price=Decimal("59100.05")), at(2))
    assert info.value.code is R.PRICE_NOT_ON_TICK
    assert info.value.rejection.message == (
        "replacement refused: price 59100.05 is not a multiple of the tick size 0.1")
    assert quoted_engine.state.comparable() == before
    assert (order.status, order.spec.price, order.replaced_by) == (
        S.ACCEPTED, Decimal("59000.0"), None)
    working = quoted_engine.venues["paper-binance"].working(order.order_id)
    assert working is not None and working.price == Decimal("59000.0")
    # The derived id was not used up: a valid replace still gets x.r1.
    quoted_engine.handle(ReplaceOrder(order.order_id, new_price=Decimal("59100.0")), at(3))
    assert quoted_engine.state.orders[order.replaced_by].client_order_id == "x.r1"


def test_replacement_with_an_off_step_qty_is_refused(quoted_engine, place, at) -> None:
    order, _ = place(quoted_engine, at(1), qty="0.1", price="59000.0")
    with pytest.raises(CommandRefused) as info:
        quoted_engine.handle(ReplaceOrder(order.order_id, new_qty=Decimal("0.1005")), at(2))
    assert info.value.code is R.QTY_NOT_ON_STEP
    assert order.status is S.ACCEPTED and order.spec.qty == Decimal("0.1")


def test_replace_qty(quoted_engine, place, at) -> None:
    order, _ = place(quoted_engine, at(1), qty="0.1", price="59000.0", coid="q")
    quoted_engine.handle(ReplaceOrder(order.order_id, new_qty=Decimal("0.25")), at(2))
    new = quoted_engine.state.orders[order.replaced_by]
    assert (new.spec.qty, new.spec.price, new.status) == (
        Decimal("0.25"), Decimal("59000.0"), S.ACCEPTED)
    assert quoted_engine.summary("demo", "paper-binance").order_margin == Decimal("2950")


def test_replace_of_a_partially_filled_order_carries_the_remainder(quoted_engine, place,
                                                                   at) -> None:
    order, _ = place(quoted_engine, at(1), qty="1.5", price="60000.1")
    assert order.filled_qty == 1
    quoted_engine.handle(ReplaceOrder(order.order_id, new_price=Decimal("59000.0")), at(2))
    new = quoted_engine.state.orders[order.replaced_by]
    assert new.spec.qty == Decimal("0.5") and new.spec.price == Decimal("59000.0")
    assert (order.status, order.filled_qty) == (S.CANCELED, Decimal(1))


def test_replace_risk_check_does_not_count_the_order_being_replaced(quoted_engine, place,
                                                                    at) -> None:
    # 1.5 @ 59000 reserves 17700 of 20000; counted twice, a move to 59100 would not fit.
    order, _ = place(quoted_engine, at(1), qty="1.5", price="59000.0")
    quoted_engine.handle(ReplaceOrder(order.order_id, new_price=Decimal("59100.0")), at(2))
    new = quoted_engine.state.orders[order.replaced_by]
    assert new.status is S.ACCEPTED
    assert quoted_engine.summary("demo", "paper-binance").order_margin == Decimal("17730")


def test_replace_to_a_marketable_price_fills(quoted_engine, place, at) -> None:
    order, _ = place(quoted_engine, at(1), qty="0.5", price="59000.0")
    events = quoted_engine.handle(ReplaceOrder(order.order_id, new_price=Decimal("60000.1")),
                                  at(2))
    assert [type(e) for e in events] == [OrderReplaceRequested, OrderCanceled, OrderSubmitted,
                                         OrderAccepted, OrderFilled]
    new = quoted_engine.state.orders[order.replaced_by]
    assert new.status is S.FILLED and new.avg_fill_price == Decimal("60000.1")


def test_replace_stop_trigger(quoted_engine, place, at) -> None:
    order, _ = place(quoted_engine, at(1), type="stop", qty="0.1", trigger="61000.0")
    quoted_engine.handle(ReplaceOrder(order.order_id, new_trigger_price=Decimal("61500.0")),
                         at(2))
    new = quoted_engine.state.orders[order.replaced_by]
    assert (new.spec.trigger_price, new.spec.price, new.status) == (
        Decimal("61500.0"), None, S.ACCEPTED)


# ---- cancel all -------------------------------------------------------------------------


@pytest.fixture
def book_of_orders(make_engine, make_instrument, place, at):
    """Five resting orders across clients, venues, symbols and sides, by letter."""
    engine = make_engine(
        extra_instruments=[make_instrument("ETH-PERP"),
                           make_instrument("BTC-PERP", venue="paper-bybit")],
        extra_accounts=[AccountSetup("demo", "paper-bybit", Decimal(5)),
                        AccountSetup("other", "paper-binance", Decimal(5))])
    orders = {
        "a": place(engine, at(1), qty="0.1", price="59000.0")[0],
        "b": place(engine, at(1), side="sell", qty="0.1", price="61000.0")[0],
        "c": place(engine, at(1), symbol="ETH-PERP", qty="0.1", price="3000.0")[0],
        "d": place(engine, at(1), venue="paper-bybit", qty="0.1", price="59000.0")[0],
        "e": place(engine, at(1), client="other", qty="0.1", price="59000.0")[0],
    }
    assert all(o.status is S.ACCEPTED for o in orders.values())
    return engine, orders


@pytest.mark.parametrize(("filters", "canceled"), [
    ({}, "abcde"),
    ({"symbol": "ETH-PERP"}, "c"),
    ({"side": Side.SELL}, "b"),
    ({"client": "other"}, "e"),
    ({"venue": "paper-bybit"}, "d"),
    ({"client": "demo", "venue": "paper-binance"}, "abc"),
    ({"client": "demo", "symbol": "BTC-PERP", "side": Side.BUY}, "ad"),
    ({"client": "nobody"}, ""),
])
def test_cancel_all_with_filters(filters, canceled, book_of_orders, at) -> None:
    engine, orders = book_of_orders
    events = engine.handle(CancelAll(**filters, actor="ops", reason="end of day"), at(2))
    assert {e.order_id for e in events if isinstance(e, OrderCanceled)} == {
        orders[k].order_id for k in canceled}
    assert all(e.actor == "ops" for e in events if isinstance(e, OrderCancelRequested))
    for key, order in orders.items():
        if key in canceled:
            assert (order.status, order.cancel_reason) == (S.CANCELED, "end of day")
        else:
            assert order.status is S.ACCEPTED
    # nothing left to cancel in that scope: a second sweep is a no-op
    assert engine.handle(CancelAll(**filters), at(3)) == []


def test_cancel_all_skips_orders_that_are_already_done(book_of_orders, at) -> None:
    engine, orders = book_of_orders
    engine.handle(CancelOrder(orders["a"].order_id, reason="single"), at(2))
    events = engine.handle(CancelAll(client="demo", venue="paper-binance"), at(3))
    assert {e.order_id for e in events if isinstance(e, OrderCanceled)} == {
        orders["b"].order_id, orders["c"].order_id}
    assert orders["a"].cancel_reason == "single"
