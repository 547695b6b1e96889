"""Take-profit, trailing stop and close-position orders on the paper venue, through the
engine (issue 11): when each triggers, what it then does, and that replaying the
events rebuilds the same state."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from app.domain.commands import SubmitOrder
from app.domain.events import (
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    OrderTriggered,
    TradeClosed,
)
from app.domain.orders import OrderStatus, OrderType, Side, triggers_on_rise
from app.domain.rejections import RejectCode
from tests.engine.conftest import (
    T0,
    MarketPusher,
    build_engine,
    make_spec,
    place_order,
)

D = Decimal
S = OrderStatus
R = RejectCode
POSITION = ("demo", "paper-binance", "BTC-PERP")
market = MarketPusher()


def at(seconds: float):
    return T0 + timedelta(seconds=seconds)


def quoted(price: str = "60000.0"):
    """The standard engine with a book around ``price`` and a last trade there."""
    engine = build_engine()
    move(engine, 0, price)
    return engine


def move(engine, seconds: float, price: str, events: list | None = None) -> list:
    """The market moves to ``price``: book (bid there, ask a tick above, deep) and a print."""
    p = D(price)
    out = market.quote(engine, at(seconds), bid=p, ask=p + D("0.1"), bid_size=50, ask_size=50)
    out += market.trade(engine, at(seconds), p, "0.001", "sell")
    if events is not None:
        events.extend(out)
    return out


def names(events) -> list[str]:
    return [type(e).__name__ for e in events]


def replay(events) -> dict:
    state = build_engine().state
    for e in events:
        state.apply(e)
    return state.comparable()


# ---- trigger directions -------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "side", "rises"), [
    (OrderType.STOP, Side.BUY, True), (OrderType.STOP, Side.SELL, False),
    (OrderType.TAKE_PROFIT, Side.BUY, False), (OrderType.TAKE_PROFIT, Side.SELL, True),
    (OrderType.TAKE_PROFIT_LIMIT, Side.SELL, True),
])
def test_take_profit_triggers_the_other_way_from_a_stop(kind, side, rises) -> None:
    assert triggers_on_rise(kind, side) is rises


def test_take_profit_sell_waits_for_a_rise_then_sells_at_market() -> None:
    engine = quoted()
    place_order(engine, at(1), side="buy", type="market", qty="0.5")
    tp, _ = place_order(engine, at(2), side="sell", type="take_profit", qty="0.5",
                        trigger="60500.0")
    assert tp.status is S.ACCEPTED
    move(engine, 3, "59000.0")  # a fall would set off a stop-loss, not a take-profit
    assert tp.status is S.ACCEPTED
    out = move(engine, 4, "60500.0")
    assert names(out)[:2] == ["OrderTriggered", "OrderFilled"]
    assert tp.status is S.FILLED and tp.avg_fill_price == D("60500.0")
    assert engine.state.positions[POSITION].qty == 0
    trade = engine.state.closed_trades[-1]
    assert trade.exit_reason == "take_profit"


def test_take_profit_buy_limit_triggers_on_a_fall_and_rests_at_its_limit() -> None:
    engine = quoted()
    tp, _ = place_order(engine, at(1), side="buy", type="take_profit_limit", qty="0.1",
                        price="58900.0", trigger="59000.0")
    move(engine, 2, "59500.0")
    assert tp.status is S.ACCEPTED and tp.triggered_at is None
    move(engine, 3, "59000.0")  # triggers; its limit is below the book: it rests
    assert tp.status is S.TRIGGERED and tp.triggered_at == at(3)
    assert engine.venues["paper-binance"].working(tp.order_id).price == D("58900.0")
    move(engine, 4, "58800.0")  # the asks come down through its limit
    assert tp.status is S.FILLED and tp.avg_fill_price == D("58900.0")


def test_take_profit_needs_a_trigger_and_a_limit_type_needs_a_price() -> None:
    engine = quoted()
    order, _ = place_order(engine, at(1), side="sell", type="take_profit", qty="0.1")
    assert (order.reject_code, order.reject_message) == (
        R.INVALID_ORDER, "a take_profit order needs a positive trigger_price")
    order, _ = place_order(engine, at(1), side="sell", type="take_profit_limit", qty="0.1",
                           trigger="61000.0")
    assert order.reject_message == "a take_profit_limit order needs a positive price"


# ---- trailing stops -------------------------------------------------------------------------


def test_trailing_sell_follows_the_high_and_triggers_a_callback_below_it() -> None:
    engine = quoted()
    place_order(engine, at(1), side="buy", type="market", qty="0.2")
    spec = make_spec(side="sell", type="trailing_stop", qty="0.2")
    spec = spec.__class__(**{**_fields(spec), "callback_rate": D(1)})
    events = engine.handle(SubmitOrder(spec), at(2))
    trail = engine.state.orders[events[0].order_id]
    assert trail.status is S.ACCEPTED  # armed at once, at 60000.0
    move(engine, 3, "61000.0")  # new high: triggers at 61000 × 0.99 = 60390
    move(engine, 4, "60400.0")
    assert trail.status is S.ACCEPTED
    out = move(engine, 5, "60390.0")
    assert names(out)[:2] == ["OrderTriggered", "OrderFilled"]
    assert out[0].trigger_price == D("60390.0")
    assert trail.status is S.FILLED and engine.state.positions[POSITION].qty == 0
    assert engine.state.closed_trades[-1].exit_reason == "trailing_stop"


def test_trailing_buy_with_an_activation_price_arms_only_once_reached() -> None:
    engine = quoted()
    spec = make_spec(side="buy", type="trailing_stop", qty="0.1")
    spec = spec.__class__(**{**_fields(spec), "callback_rate": D("0.5"),
                             "activation_price": D("59000.0")})
    events = engine.handle(SubmitOrder(spec), at(1))
    trail = engine.state.orders[events[0].order_id]
    move(engine, 2, "59500.0")
    move(engine, 3, "60500.0")  # +1.7 % from the low, but it was not armed yet
    assert trail.status is S.ACCEPTED
    move(engine, 4, "59000.0")  # armed; the low is 59000
    move(engine, 5, "58000.0")  # a lower low: triggers at 58000 × 1.005 = 58290
    move(engine, 6, "58280.0")
    assert trail.status is S.ACCEPTED
    out = move(engine, 7, "58290.0")
    assert isinstance(out[0], OrderTriggered) and trail.status is S.FILLED


@pytest.mark.parametrize(("extra", "message"), [
    ({"callback_rate": D("0.09")}, "a trailing stop needs a callback_rate from 0.1 to 10 "
                                   "(percent)"),
    ({"callback_rate": D("10.01")}, "a trailing stop needs a callback_rate from 0.1 to 10 "
                                    "(percent)"),
    ({}, "a trailing stop needs a callback_rate from 0.1 to 10 (percent)"),
    ({"callback_rate": D(1), "trigger_price": D("59000.0")},
     "a trailing stop takes no trigger_price: it trails the price (activation_price arms "
     "it)"),
    ({"callback_rate": D(1), "activation_price": D("59000.05")},
     "activation_price 59000.05 is not a multiple of the tick size 0.1"),
])
def test_trailing_stop_shape(extra, message) -> None:
    engine = quoted()
    spec = make_spec(side="sell", type="trailing_stop", qty="0.1")
    spec = spec.__class__(**{**_fields(spec), **extra})
    events = engine.handle(SubmitOrder(spec), at(1))
    assert isinstance(events[-1], OrderRejected) and events[-1].message == message


def test_callback_rate_is_only_for_trailing_stops() -> None:
    engine = quoted()
    spec = make_spec(side="sell", type="stop", qty="0.1", trigger="59000.0")
    spec = spec.__class__(**{**_fields(spec), "callback_rate": D(1)})
    events = engine.handle(SubmitOrder(spec), at(1))
    assert events[-1].message == "callback_rate and activation_price are for trailing stops"


# ---- close-position -------------------------------------------------------------------------


def close_position(side: str, kind: str, trigger: str, coid: str | None = None):
    spec = make_spec(side=side, type=kind, qty=0, trigger=trigger, coid=coid)
    return spec.__class__(**{**_fields(spec), "close_position": True})


def test_close_position_closes_what_is_there_at_the_trigger() -> None:
    engine = quoted()
    events: list = []
    events += place_order(engine, at(1), side="buy", type="market", qty="0.3")[1]
    spec = close_position("sell", "stop", "59000.0", coid="sl-all")
    events += engine.handle(SubmitOrder(spec), at(2))
    stop = engine.state.orders[events[-2].order_id]  # OrderSubmitted, OrderAccepted
    assert (stop.status, stop.spec.qty, stop.remaining_qty) == (S.ACCEPTED, 0, 0)
    assert engine.summary("demo", "paper-binance").order_margin == 0  # it only reduces
    events += place_order(engine, at(3), side="buy", type="market", qty="0.2")[1]  # now 0.5
    out = move(engine, 4, "59000.0", events)
    triggered = next(e for e in out if isinstance(e, OrderTriggered))
    assert triggered.qty == D("0.5")
    assert sum(e.qty for e in out if isinstance(e, OrderFilled)) == D("0.5")
    assert stop.status is S.FILLED and stop.spec.qty == D("0.5")
    assert engine.state.positions[POSITION].qty == 0
    assert any(isinstance(e, TradeClosed) for e in out)
    # A retry of the submission is still the same request: the first order answers.
    assert engine.handle(SubmitOrder(spec), at(5)) == []
    assert replay(events) == engine.state.comparable()


def test_close_position_with_no_position_at_the_trigger_expires() -> None:
    engine = quoted()
    spec = close_position("buy", "take_profit", "59000.0")
    events = engine.handle(SubmitOrder(spec), at(1))
    order = engine.state.orders[events[0].order_id]
    out = move(engine, 2, "59000.0")
    assert names(out) == ["OrderExpired"] and isinstance(out[0], OrderExpired)
    assert order.status is S.EXPIRED and order.filled_qty == 0


def test_close_position_can_be_canceled_before_it_triggers() -> None:
    from app.domain.commands import CancelOrder

    engine = quoted()
    place_order(engine, at(1), side="buy", type="market", qty="0.3")
    events = engine.handle(SubmitOrder(close_position("sell", "stop", "59000.0")), at(2))
    order_id = events[0].order_id
    out = engine.handle(CancelOrder(order_id), at(3))
    assert names(out) == ["OrderCancelRequested", "OrderCanceled"]


@pytest.mark.parametrize(("overrides", "message"), [
    ({"qty": D("0.1")}, "a close-position order takes no qty: it closes the position"),
    ({"type": OrderType.STOP_LIMIT, "price": D("58000.0")},
     "close_position is for stop and take_profit (market) orders"),
    ({"reduce_only": True},
     "a close-position order is reduce-only already; leave reduce_only unset"),
])
def test_close_position_shape(overrides, message) -> None:
    engine = quoted()
    spec = close_position("sell", "stop", "59000.0")
    spec = spec.__class__(**{**_fields(spec), **overrides})
    events = engine.handle(SubmitOrder(spec), at(1))
    assert isinstance(events[0], OrderSubmitted)
    assert events[-1].message == message


def _fields(spec) -> dict:
    return {f: getattr(spec, f) for f in spec.__dataclass_fields__}


def test_replay_rebuilds_conditional_orders_mid_flight() -> None:
    engine = quoted()
    events: list = []
    events += place_order(engine, at(1), side="buy", type="market", qty="0.4")[1]
    events += place_order(engine, at(2), side="sell", type="take_profit", qty="0.1",
                          trigger="60500.0")[1]
    spec = make_spec(side="sell", type="trailing_stop", qty="0.1")
    events += engine.handle(SubmitOrder(spec.__class__(**{**_fields(spec),
                                                          "callback_rate": D(2)})), at(3))
    events += engine.handle(SubmitOrder(close_position("sell", "stop", "58000.0")), at(4))
    for i, price in enumerate(("60200.0", "60500.0", "61000.0", "59700.0", "58000.0")):
        move(engine, 5 + i, price, events)
    assert engine.state.positions[POSITION].qty == 0
    assert replay(events) == engine.state.comparable()
