"""Latency on the paper venue: 50 ms to reach the matching engine, 20 ms back.

An order sent at t reaches the venue at t + 50 ms and its reports become
visible (and are stamped) at t + 70 ms; a cancel sent at c acts at c + 50 ms.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from app.domain.commands import CancelOrder, ReplaceOrder
from app.domain.events import (
    OrderAccepted,
    OrderCanceled,
    OrderCancelRejected,
    OrderCancelRequested,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
)
from app.domain.orders import OrderStatus
from app.domain.rejections import CommandRefused, RejectCode
from app.venues.paper.venue import PaperVenueConfig

S = OrderStatus
LATENCY = PaperVenueConfig(submit_latency=timedelta(milliseconds=50),
                           response_latency=timedelta(milliseconds=20))


def ms(n: float) -> timedelta:
    return timedelta(milliseconds=n)


@pytest.fixture
def slow(make_engine, market, t0):
    """The standard engine behind a 50 ms / 20 ms venue, standard book at t0."""
    engine = make_engine(venue_config=LATENCY)
    market.quote(engine, t0)
    return engine


def test_order_stays_new_until_it_arrives_and_the_answer_comes_back(slow, place, t0) -> None:
    order, events = place(slow, t0, qty="0.1", price="59000.0")
    assert [type(e) for e in events] == [OrderSubmitted]
    assert order.status is S.NEW
    assert slow.advance(t0 + ms(49)) == []
    assert slow.advance(t0 + ms(50)) == []  # arrived and accepted, but not heard back yet
    assert order.status is S.NEW
    assert slow.advance(t0 + ms(69)) == []
    assert slow.advance(t0 + ms(70)) == [OrderAccepted(order.order_id, t0 + ms(70))]
    assert order.status is S.ACCEPTED
    assert slow.advance(t0 + ms(500)) == []


def test_a_market_order_fills_against_the_book_at_arrival(slow, market, place, t0) -> None:
    order, _ = place(slow, t0, type="market", qty="0.5")
    # the book moves while the order is on its way
    assert market.quote(slow, t0 + ms(30), bid="60100.0", ask="60100.1") == []
    assert order.status is S.NEW
    events = market.quote(slow, t0 + ms(60), bid="60200.0", ask="60200.1")
    assert events == [] and order.status is S.NEW  # filled at 50 ms, not visible yet
    events = slow.advance(t0 + ms(70))
    assert [type(e) for e in events] == [OrderAccepted, OrderFilled]
    assert all(e.at == t0 + ms(70) for e in events)
    assert events[1].price == Decimal("60100.1")  # the book as it was at 50 ms
    assert order.status is S.FILLED


def test_a_rejection_is_also_heard_after_the_round_trip(slow, place, t0) -> None:
    order, _ = place(slow, t0, qty="0.1", price="60000.1", post_only=True)
    assert slow.advance(t0 + ms(69)) == [] and order.status is S.NEW
    (event,) = slow.advance(t0 + ms(70))
    assert isinstance(event, OrderRejected) and event.at == t0 + ms(70)
    assert event.code == RejectCode.POST_ONLY_WOULD_CROSS
    assert order.status is S.REJECTED


def test_a_cancel_sent_in_flight_is_processed_after_the_order(slow, market, place, t0) -> None:
    order, _ = place(slow, t0, qty="0.1", price="59000.0")
    events = slow.handle(CancelOrder(order.order_id), t0 + ms(10))
    assert events == [OrderCancelRequested(order.order_id, t0 + ms(10))]
    assert order.status is S.PENDING_CANCEL
    assert slow.handle(CancelOrder(order.order_id), t0 + ms(11)) == []  # already on its way
    # The acknowledgement (sent at 50 ms) may be heard at 70 ms, but nothing more.
    early = slow.advance(t0 + ms(79))
    assert all(isinstance(e, OrderAccepted) for e in early)
    assert order.status is S.PENDING_CANCEL
    (event,) = slow.advance(t0 + ms(80))  # cancel acted at 60 ms, heard at 80 ms
    assert isinstance(event, OrderCanceled) and event.at == t0 + ms(80)
    assert order.status is S.CANCELED and order.filled_qty == 0
    # Had the cancel overtaken the order, the order would now be live at the venue.
    assert slow.venues["paper-binance"].working(order.order_id) is None
    assert market.quote(slow, t0 + ms(200), bid="58000.0", ask="58000.1") == []
    assert order.filled_qty == 0


def test_cancel_reason_survives_the_round_trip(slow, place, t0) -> None:
    order, _ = place(slow, t0, qty="0.1", price="59000.0")
    slow.advance(t0 + ms(70))
    slow.handle(CancelOrder(order.order_id, reason="user asked"), t0 + ms(100))
    slow.advance(t0 + ms(170))
    assert order.status is S.CANCELED
    assert order.cancel_reason == "user asked"


@pytest.fixture
def cancel_races_fill(slow, market, place, t0):
    """A resting buy at 59990.0; a cancel sent at 100 ms (acts at 150 ms); the ask
    drops onto the price at 120 ms and fills it (heard at 140 ms)."""
    order, _ = place(slow, t0, qty="0.5", price="59990.0")
    slow.advance(t0 + ms(70))
    assert order.status is S.ACCEPTED
    slow.handle(CancelOrder(order.order_id), t0 + ms(100))
    assert order.status is S.PENDING_CANCEL
    assert market.quote(slow, t0 + ms(120), bid="59989.9", ask="59990.0") == []
    fill = slow.advance(t0 + ms(140))
    assert [(type(e), e.at) for e in fill] == [(OrderFilled, t0 + ms(140))]
    assert order.status is S.FILLED
    return order, slow.advance(t0 + ms(170))


def test_a_cancel_that_races_a_fill_leaves_the_order_filled(cancel_races_fill) -> None:
    order, later = cancel_races_fill
    assert not any(isinstance(e, OrderCanceled) for e in later)
    assert (order.status, order.filled_qty, order.cancel_reason) == (
        S.FILLED, Decimal("0.5"), None)


def test_a_cancel_that_races_a_fill_is_answered_with_cancel_rejected(cancel_races_fill,
                                                                     t0) -> None:
    order, later = cancel_races_fill
    assert [type(e) for e in later] == [OrderCancelRejected]
    assert later[0].order_id == order.order_id and later[0].at == t0 + ms(170)
    assert order.status is S.FILLED


def test_a_cancel_that_races_a_partial_fill_cancels_the_rest(slow, place, t0) -> None:
    order, _ = place(slow, t0, qty="1.5", price="60000.1")  # 1 of 1.5 at the touch
    slow.handle(CancelOrder(order.order_id, reason="too slow"), t0 + ms(10))
    events = slow.advance(t0 + ms(70))  # arrival at 50: 1 filled, 0.5 rests
    assert [type(e) for e in events if not isinstance(e, OrderAccepted)] == [OrderFilled]
    assert order.status is S.PENDING_CANCEL and order.filled_qty == 1
    (event,) = slow.advance(t0 + ms(80))
    assert isinstance(event, OrderCanceled)
    assert (order.status, order.filled_qty) == (S.CANCELED, Decimal(1))


def test_replacing_an_order_still_in_flight_is_handled_cleanly(slow, place, t0) -> None:
    order, _ = place(slow, t0, qty="0.1", price="59000.0", coid="fly")
    try:
        slow.handle(ReplaceOrder(order.order_id, new_price=Decimal("59100.0")), t0 + ms(10))
    except CommandRefused as refused:  # acceptable: not acknowledged yet, try again later
        assert refused.code is RejectCode.ORDER_NOT_OPEN
        slow.advance(t0 + ms(70))
        assert order.status is S.ACCEPTED and order.spec.price == Decimal("59000.0")
        return
    slow.advance(t0 + ms(200))
    successor = slow.state.order_by_client_id("demo", "paper-binance", "fly.r1")
    assert order.status is S.CANCELED and successor is not None
    assert successor.status is S.ACCEPTED and successor.spec.price == Decimal("59100.0")


def test_gtd_expiry_is_heard_after_the_response_latency(slow, place, t0) -> None:
    order, _ = place(slow, t0, qty="0.1", price="59000.0", tif="gtd",
                     expire_at=t0 + timedelta(seconds=1))
    slow.advance(t0 + ms(70))
    assert slow.advance(t0 + timedelta(seconds=1)) == []
    assert order.status is S.ACCEPTED
    (event,) = slow.advance(t0 + ms(1020))
    assert event == OrderExpired(order.order_id, t0 + ms(1020))
    assert order.status is S.EXPIRED


def test_latency_is_deterministic(make_engine, market, place, t0) -> None:
    def run() -> list:
        engine = make_engine(venue_config=PaperVenueConfig(
            submit_latency=ms(50), response_latency=ms(20)))
        market.quote(engine, t0)
        out = []
        for i in range(5):
            _, events = place(engine, t0 + ms(i * 7), qty="0.3", price="60001.0")
            out += events
            out += market.quote(engine, t0 + ms(i * 7 + 3), ask=f"60000.{i + 1}")
        out += engine.advance(t0 + ms(500))
        return out

    first = run()
    assert first == run()
    assert sum(1 for e in first if isinstance(e, OrderFilled)) >= 5


def test_a_replace_without_qty_takes_what_is_left_when_the_cancel_lands(slow, market, place,
                                                                      t0) -> None:
    """A buy 0.5 @ 59990.0 is replaced (new price only) at 100 ms; 0.2 fills at 120 ms
    while the cancel is on its way (it acts at 150 ms). The successor is for the 0.3
    left, not the 0.5 that was left when the replace was sent."""
    order, _ = place(slow, t0, qty="0.5", price="59990.0", coid="amend")
    slow.advance(t0 + ms(70))
    slow.handle(ReplaceOrder(order.order_id, new_price=Decimal("59980.0")), t0 + ms(100))
    assert order.status is S.PENDING_REPLACE
    market.quote(slow, t0 + ms(120), bid="59989.9", ask="59990.0", ask_size="0.2")
    slow.advance(t0 + ms(140))
    assert order.filled_qty == Decimal("0.2")
    slow.advance(t0 + ms(300))
    successor = slow.state.order_by_client_id("demo", "paper-binance", "amend.r1")
    assert order.status is S.CANCELED and successor is not None
    assert successor.spec.qty == Decimal("0.3") and successor.spec.price == Decimal("59980.0")
    # An explicit new qty is kept as asked.
    other, _ = place(slow, t0 + ms(300), qty="0.5", price="59000.0", coid="sized")
    slow.advance(t0 + ms(400))
    slow.handle(ReplaceOrder(other.order_id, new_qty=Decimal("0.4")), t0 + ms(400))
    slow.advance(t0 + ms(600))
    assert slow.state.order_by_client_id("demo", "paper-binance",
                                         "sized.r1").spec.qty == Decimal("0.4")


def test_a_second_replace_or_a_cancel_racing_a_replace_is_refused_not_faked(slow, place,
                                                                           t0) -> None:
    """While a replace is on its way (and after it landed), the original is no longer
    the caller's order to change: a different replace or a cancel is ORDER_NOT_OPEN
    naming the successor, not a 200 for something that did not happen. A retry of the
    same replace is still idempotent."""
    order, _ = place(slow, t0, qty="0.1", price="59000.0", coid="race")
    slow.advance(t0 + ms(70))
    first = ReplaceOrder(order.order_id, new_price=Decimal("59100.0"))
    slow.handle(first, t0 + ms(100))
    assert order.status is S.PENDING_REPLACE
    successor_id = slow.state.pending_replaces[order.order_id].new_order_id
    for late in (ReplaceOrder(order.order_id, new_price=Decimal("59200.0")),
                 CancelOrder(order.order_id)):
        with pytest.raises(CommandRefused) as refused:
            slow.handle(late, t0 + ms(110))
        assert refused.value.code is RejectCode.ORDER_NOT_OPEN
        assert f"replaced by order {successor_id}" in refused.value.rejection.message
    assert slow.handle(first, t0 + ms(110)) == []  # the same replace again: a retry
    slow.advance(t0 + ms(400))
    successor = slow.state.orders[successor_id]
    assert successor.is_open and successor.spec.price == Decimal("59100.0")
    for late in (ReplaceOrder(order.order_id, new_price=Decimal("59200.0")),
                 CancelOrder(order.order_id)):
        with pytest.raises(CommandRefused):
            slow.handle(late, t0 + ms(410))
    assert successor.is_open and slow.handle(first, t0 + ms(420)) == []
