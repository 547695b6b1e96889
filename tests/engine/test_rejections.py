"""One focused test per rejection code, with the exact code and its message.

Order-level rejections are recorded (OrderSubmitted then OrderRejected, the
order REJECTED with its code); commands the engine will not take at all
raise ``CommandRefused`` and record nothing.
"""

from __future__ import annotations

import copy
from datetime import timedelta
from decimal import Decimal

import pytest

from app.domain.commands import (
    CancelOrder,
    Deposit,
    ReplaceOrder,
    SetTradingState,
    SubmitOrder,
    Withdraw,
)
from app.domain.events import OrderRejected, OrderSubmitted
from app.domain.instruments import VenueCapabilities
from app.domain.orders import OrderStatus
from app.domain.rejections import CommandRefused, RejectCode
from app.domain.strategies import (
    ConfigureStrategy,
    CreateStrategy,
    StartStrategy,
    StopStrategy,
)
from app.domain.trading_state import Scope, TradingState
from app.engine.risk import RiskLimits
from app.venues.paper.venue import PaperVenueConfig

R = RejectCode
ACCOUNT = Scope("demo", "paper-binance")
# Seed 003's limits, applied to BTC-PERP.
SEED_003_BTC = RiskLimits(max_position_size=Decimal("0.01"), max_position_notional=Decimal(500))

# Every code has at least one test below that asserts it (kept in step by hand;
# test_every_code_is_covered fails when a code is added without a test).
COVERED = {
    R.POST_ONLY_WOULD_CROSS, R.REDUCE_ONLY_WOULD_INCREASE, R.INSUFFICIENT_MARGIN,
    R.MIN_NOTIONAL, R.MIN_QTY, R.PRICE_NOT_ON_TICK, R.QTY_NOT_ON_STEP, R.FOK_NOT_FILLABLE,
    R.DUPLICATE_CLIENT_ORDER_ID, R.UNKNOWN_SYMBOL, R.UNSUPPORTED_BY_VENUE, R.GTD_IN_PAST,
    R.TRADING_HALTED, R.TRADING_REDUCE_ONLY, R.MAX_POSITION_SIZE, R.MAX_POSITION_NOTIONAL,
    R.UNKNOWN_ACCOUNT, R.INVALID_CLIENT_ORDER_ID, R.UNKNOWN_ORDER, R.ORDER_NOT_OPEN,
    R.NO_MARKET_DATA, R.INSUFFICIENT_BALANCE, R.INVALID_AMOUNT, R.INVALID_ORDER,
    R.MAX_POSITION_AT_LEVERAGE, R.LEVERAGE_TOO_HIGH, R.BOOK_NOT_READY,
    R.UNKNOWN_STRATEGY, R.DUPLICATE_STRATEGY,
    # Arbitrage records out of their state machine: tests/strategies/test_arbitrage_records.py.
    R.INVALID_TRANSITION,
    # A client's risk controls: their tests are in test_risk_controls.py.
    R.MAX_ORDER_SIZE, R.MAX_ORDER_NOTIONAL, R.MAX_OPEN_ORDERS, R.PRICE_OUT_OF_BAND,
    R.MARGIN_RATIO_CAP, R.RATE_LIMITED, R.IMPACT_TOO_HIGH, R.SPREAD_TOO_WIDE,
    R.DEPTH_TOO_THIN, R.VOLUME_TOO_LOW, R.BREAKER_NOT_TRIPPED,
    R.WOULD_IMMEDIATELY_TRIGGER, R.GTD_TOO_SOON,
    # Signals: their tests are in test_signals.py.
    R.DUPLICATE_SIGNAL_ID, R.INVALID_SIGNAL,
}


def test_every_code_is_covered() -> None:
    assert set(RejectCode) == COVERED


def assert_rejected(order, events, code: RejectCode, message: str) -> None:
    """Recorded and rejected with ``code``; ``message`` is the exact human text."""
    assert [type(e) for e in events] == [OrderSubmitted, OrderRejected]
    assert events[1].code == code and events[1].message == message
    assert order.status is OrderStatus.REJECTED
    assert (order.reject_code, order.reject_message) == (code, message)
    assert not order.is_open


def refused(engine, command, now) -> CommandRefused:
    """Run ``command`` expecting CommandRefused and that nothing was recorded."""
    before = copy.deepcopy(engine.state.comparable())
    with pytest.raises(CommandRefused) as info:
        engine.handle(command, now)
    assert engine.state.comparable() == before
    return info.value


# ---- recorded order rejections ---------------------------------------------------


def test_post_only_would_cross(quoted_engine, place, at) -> None:
    order, events = place(quoted_engine, at(1), side="buy", qty="0.1", price="60000.1",
                          post_only=True)
    assert_rejected(order, events, R.POST_ONLY_WOULD_CROSS,
                    "post-only buy at 60000.1 would take liquidity")


def test_post_only_sell_at_the_bid_would_cross(quoted_engine, place, at) -> None:
    order, events = place(quoted_engine, at(1), side="sell", qty="0.1", price="60000.0",
                          post_only=True)
    assert order.reject_code == R.POST_ONLY_WOULD_CROSS
    assert "post-only sell at 60000.0" in events[1].message


def test_reduce_only_would_increase_without_position(quoted_engine, place, at) -> None:
    order, events = place(quoted_engine, at(1), side="sell", qty="0.1", price="61000.0",
                          reduce_only=True)
    assert_rejected(order, events, R.REDUCE_ONLY_WOULD_INCREASE,
                    "the order is reduce-only, and there is no position to reduce")


def test_reduce_only_would_increase_by_flipping(quoted_engine, place, at) -> None:
    place(quoted_engine, at(1), side="buy", type="market", qty="0.1")
    order, events = place(quoted_engine, at(2), side="sell", qty="0.2", price="61000.0",
                          reduce_only=True)
    assert_rejected(order, events, R.REDUCE_ONLY_WOULD_INCREASE,
                    "the order is reduce-only: sell 0.2 would flip the long 0.1")
    _, events = place(quoted_engine, at(3), side="buy", qty="0.1", price="59000.0",
                      reduce_only=True)
    assert events[1].message == ("the order is reduce-only: buy would increase the long "
                                 "position")


def test_insufficient_margin(quoted_engine, place, at) -> None:
    # 2 × 59000 / 5 = 23600 margin + 2 × 59000 × 0.0005 = 59 fee allowance
    order, events = place(quoted_engine, at(1), side="buy", qty="2", price="59000.0")
    assert_rejected(order, events, R.INSUFFICIENT_MARGIN,
                    "needs 23659.00 margin at 5x leverage, 20000.00 available")


def test_insufficient_margin_counts_margin_reserved_by_open_orders(quoted_engine, place,
                                                                   at) -> None:
    first, _ = place(quoted_engine, at(1), side="buy", qty="1.5", price="59000.0")
    assert first.status is OrderStatus.ACCEPTED  # reserves 1.5 × 59000 / 5 = 17700
    order, events = place(quoted_engine, at(2), side="buy", qty="0.5", price="59000.0")
    # 0.5 × 59000 / 5 = 5900 + 14.75 fee allowance > 20000 - 17700
    assert_rejected(order, events, R.INSUFFICIENT_MARGIN,
                    "needs 5914.75 margin at 5x leverage, 2300.00 available")


def test_min_notional(quoted_engine, place, at) -> None:
    order, events = place(quoted_engine, at(1), side="buy", qty="0.001", price="4000.0")
    assert_rejected(order, events, R.MIN_NOTIONAL,
                    "order notional 4.0000 is below the minimum 5")


def test_min_notional_does_not_apply_to_closing_orders(quoted_engine, place, at) -> None:
    place(quoted_engine, at(1), side="buy", type="market", qty="0.001")
    # a 4.0-notional sell that only closes the position is allowed (and fills at the bid)
    order, _ = place(quoted_engine, at(2), side="sell", qty="0.001", price="4000.0")
    assert order.status is OrderStatus.FILLED


def test_min_qty(make_engine, make_instrument, place, at) -> None:
    eth = make_instrument("ETH-PERP", min_qty="0.01")
    engine = make_engine(extra_instruments=[eth])
    order, events = place(engine, at(1), symbol="ETH-PERP", side="buy", qty="0.005",
                          price="3000.0")
    assert_rejected(order, events, R.MIN_QTY, "qty 0.005 is below the minimum 0.01")


def test_price_not_on_tick(quoted_engine, place, at) -> None:
    order, events = place(quoted_engine, at(1), qty="0.1", price="59000.05")
    assert_rejected(order, events, R.PRICE_NOT_ON_TICK,
                    "price 59000.05 is not a multiple of the tick size 0.1")


def test_trigger_price_not_on_tick(quoted_engine, place, at) -> None:
    order, events = place(quoted_engine, at(1), type="stop", qty="0.1", trigger="61000.01")
    assert_rejected(order, events, R.PRICE_NOT_ON_TICK,
                    "trigger_price 61000.01 is not a multiple of the tick size 0.1")


def test_qty_not_on_step(quoted_engine, place, at) -> None:
    order, events = place(quoted_engine, at(1), qty="0.0015", price="59000.0")
    assert_rejected(order, events, R.QTY_NOT_ON_STEP,
                    "qty 0.0015 is not a multiple of the step size 0.001")


def test_fok_not_fillable(quoted_engine, place, at) -> None:
    order, events = place(quoted_engine, at(1), qty="1.5", price="60000.1", tif="fok")
    assert_rejected(order, events, R.FOK_NOT_FILLABLE, "only 1.0 of 1.5 fillable now")
    assert order.filled_qty == 0
    # nothing was taken: the full touch is still there for the next order
    again, _ = place(quoted_engine, at(2), qty="1", price="60000.1", tif="fok")
    assert again.status is OrderStatus.FILLED and again.avg_fill_price == Decimal("60000.1")


def test_unknown_symbol(quoted_engine, place, at) -> None:
    order, events = place(quoted_engine, at(1), symbol="DOGE-PERP", qty="1", price="0.1")
    assert_rejected(order, events, R.UNKNOWN_SYMBOL, "DOGE-PERP is not traded on paper-binance")


GATED = VenueCapabilities(time_in_force=frozenset({"gtc", "ioc"}))  # seeds 000/003: no FOK/GTD


@pytest.mark.parametrize(("tif", "message"), [
    ("fok", "paper-binance does not support time in force FOK"),
    ("gtd", "paper-binance does not support time in force GTD"),
])
def test_unsupported_by_venue_time_in_force(tif, message, make_engine, market, place,
                                            at) -> None:
    engine = make_engine(venue_config=PaperVenueConfig(capabilities=GATED))
    market.quote(engine, at(0))
    order, events = place(engine, at(1), qty="0.1", price="59000.0", tif=tif,
                          expire_at=at(60) if tif == "gtd" else None)
    assert_rejected(order, events, R.UNSUPPORTED_BY_VENUE, message)
    for allowed in ("gtc", "ioc"):
        ok, _ = place(engine, at(2), qty="0.1", price="59000.0", tif=allowed)
        assert ok.reject_code is None


@pytest.mark.parametrize(("caps", "fields", "message"), [
    (VenueCapabilities(order_types=frozenset({"market", "limit"})),
     {"type": "stop_limit", "price": "61000.0", "trigger": "61000.0"},
     "paper-binance does not support stop_limit orders"),
    (VenueCapabilities(post_only=False), {"post_only": True},
     "paper-binance does not support post-only"),
    (VenueCapabilities(trigger_sources=frozenset({"last"})),
     {"type": "stop", "trigger": "59000.0", "trigger_source": "mark", "side": "sell"},
     "paper-binance cannot trigger on mark price"),
])
def test_unsupported_by_venue_other_features(caps, fields, message, make_engine, market, place,
                                             at) -> None:
    engine = make_engine(venue_config=PaperVenueConfig(capabilities=caps))
    market.quote(engine, at(0))
    spec = {"qty": "0.1", "price": "59000.0", **fields}
    order, events = place(engine, at(1), **spec)
    assert_rejected(order, events, R.UNSUPPORTED_BY_VENUE, message)


def test_gtd_in_past(quoted_engine, place, at) -> None:
    order, events = place(quoted_engine, at(10), qty="0.1", price="59000.0", tif="gtd",
                          expire_at=at(10))
    assert_rejected(order, events, R.GTD_IN_PAST,
                    "expire_at 2024-01-01T00:00:10+00:00 is not in the future")
    earlier, _ = place(quoted_engine, at(10), qty="0.1", price="59000.0", tif="gtd",
                       expire_at=at(5))
    assert earlier.reject_code == R.GTD_IN_PAST


def test_trading_halted(quoted_engine, place, at) -> None:
    quoted_engine.handle(SetTradingState(ACCOUNT, TradingState.HALTED, "ops"), at(1))
    order, events = place(quoted_engine, at(2), qty="0.1", price="59000.0")
    assert_rejected(order, events, R.TRADING_HALTED,
                    "trading is halted; only cancels are accepted")


def test_trading_reduce_only(quoted_engine, place, at) -> None:
    quoted_engine.handle(SetTradingState(ACCOUNT, TradingState.REDUCE_ONLY, "ops"), at(1))
    order, events = place(quoted_engine, at(2), qty="0.1", price="59000.0")
    assert_rejected(order, events, R.TRADING_REDUCE_ONLY,
                    "the account is in reduce-only mode, and there is no position to reduce")


def test_max_position_size(make_engine, market, place, at) -> None:
    engine = make_engine(limits={"BTC-PERP": SEED_003_BTC})
    market.quote(engine, at(0))
    order, events = place(engine, at(1), qty="0.011", price="40000.0")
    assert_rejected(order, events, R.MAX_POSITION_SIZE,
                    "position would reach 0.011, above the limit 0.01 BTC")


def test_max_position_size_counts_open_orders_on_the_same_side(make_engine, market, place,
                                                                at) -> None:
    engine = make_engine(limits={"BTC-PERP": SEED_003_BTC})
    market.quote(engine, at(0))
    first, _ = place(engine, at(1), qty="0.006", price="40000.0")
    assert first.status is OrderStatus.ACCEPTED
    order, events = place(engine, at(2), qty="0.005", price="40000.0")
    assert_rejected(order, events, R.MAX_POSITION_SIZE,
                    "position would reach 0.011, above the limit 0.01 BTC")
    # open buys do not count against a sell: 0.008 short is within the limit
    other, _ = place(engine, at(3), side="sell", qty="0.008", price="61000.0")
    assert other.status is OrderStatus.ACCEPTED


def test_max_position_notional(make_engine, market, place, at) -> None:
    engine = make_engine(limits={"BTC-PERP": SEED_003_BTC})
    market.quote(engine, at(0))
    order, events = place(engine, at(1), qty="0.009", price="60000.0")
    assert_rejected(order, events, R.MAX_POSITION_NOTIONAL,
                    "position notional would reach 540.00, above the limit 500")
    within, _ = place(engine, at(2), qty="0.008", price="60000.0")  # 480
    assert within.status is OrderStatus.ACCEPTED


def test_max_position_limits_do_not_block_reducing_orders(make_engine, market, place,
                                                          at) -> None:
    engine = make_engine(limits={"BTC-PERP": SEED_003_BTC})
    market.quote(engine, at(0))
    place(engine, at(1), type="market", qty="0.008")  # 480 notional
    market.quote(engine, at(2), bid="70000.0", ask="70000.1")  # now 560 notional
    order, _ = place(engine, at(3), side="sell", type="market", qty="0.008")
    assert order.status is OrderStatus.FILLED


def test_no_market_data(engine, place, at) -> None:
    order, events = place(engine, at(1), type="market", qty="0.1")
    assert_rejected(order, events, R.NO_MARKET_DATA,
                    "no market data for BTC-PERP yet; cannot value a market order")


def test_insufficient_balance_spot_sell(make_engine, make_instrument, place, at) -> None:
    spot = make_instrument("BTC-USD", kind="spot")
    engine = make_engine(instruments=[spot])
    order, events = place(engine, at(1), symbol="BTC-USD", side="sell", qty="0.1",
                          price="70000.0")
    assert_rejected(order, events, R.INSUFFICIENT_BALANCE, "cannot sell 0.1 BTC: only 0 held")


@pytest.mark.parametrize(("fields", "message"), [
    ({"qty": "0"}, "qty must be positive"),
    ({"qty": "-0.1"}, "qty must be positive"),
    ({"price": None}, "a limit order needs a positive price"),
    ({"price": "-1"}, "a limit order needs a positive price"),
    ({"type": "market", "price": "60000.0"}, "a market order takes no price"),
    ({"type": "stop", "price": None}, "a stop order needs a positive trigger_price"),
    ({"type": "stop_limit", "trigger": None}, "a stop_limit order needs a positive trigger_price"),
    ({"trigger": "61000.0"}, "a limit order takes no trigger_price"),
    ({"type": "market", "price": None, "post_only": True},
     "post-only needs a resting limit order (not market, IOC or FOK)"),
    ({"tif": "ioc", "post_only": True},
     "post-only needs a resting limit order (not market, IOC or FOK)"),
    ({"tif": "fok", "post_only": True},
     "post-only needs a resting limit order (not market, IOC or FOK)"),
    ({"type": "market", "price": None, "tif": "gtd", "expire_at": "+60"},
     "market orders cannot be GTD"),
    ({"tif": "gtd"}, "a GTD order needs expire_at"),
    ({"tif": "gtc", "expire_at": "+60"}, "expire_at is only for GTD orders"),
])
def test_invalid_order(fields, message, quoted_engine, place, at) -> None:
    spec = {"qty": "0.1", "price": "59000.0", **fields}
    if spec.get("expire_at") == "+60":
        spec["expire_at"] = at(61)
    order, events = place(quoted_engine, at(1), **spec)
    assert_rejected(order, events, R.INVALID_ORDER, message)


# ---- commands refused outright (nothing recorded) ------------------------------------


def test_duplicate_client_order_id(quoted_engine, place, order_spec, at) -> None:
    first, _ = place(quoted_engine, at(1), qty="0.1", price="59000.0", coid="abc")
    err = refused(quoted_engine, SubmitOrder(order_spec(qty="0.2", price="59000.0", coid="abc")),
                  at(2))
    assert err.code is R.DUPLICATE_CLIENT_ORDER_ID
    assert err.rejection.message == (
        f"client_order_id 'abc' is already used by order {first.order_id} with different "
        "parameters")
    assert err.rejection.details == {"order_id": str(first.order_id)}


def test_client_order_id_is_per_account(make_engine, place, at) -> None:
    from app.engine.engine import AccountSetup

    engine = make_engine(extra_accounts=[AccountSetup("other", "paper-binance", Decimal(5))])
    a, _ = place(engine, at(1), qty="0.1", price="59000.0", coid="same")
    b, _ = place(engine, at(1), client="other", qty="0.2", price="59000.0", coid="same")
    assert a.order_id != b.order_id and b.status is OrderStatus.ACCEPTED


def test_unknown_account(quoted_engine, order_spec, at) -> None:
    err = refused(quoted_engine, SubmitOrder(order_spec(client="ghost", price="59000.0")), at(1))
    assert err.code is R.UNKNOWN_ACCOUNT
    assert err.rejection.message == "client 'ghost' has no account on 'paper-binance'"
    err = refused(quoted_engine, SubmitOrder(order_spec(venue="paper-nowhere",
                                                        price="59000.0")), at(1))
    assert err.code is R.UNKNOWN_ACCOUNT
    for command in (Deposit("ghost", "paper-binance", Decimal(1)),
                    Withdraw("ghost", "paper-binance", Decimal(1))):
        assert refused(quoted_engine, command, at(1)).code is R.UNKNOWN_ACCOUNT


def test_strategy_lifecycle_refusals(quoted_engine, at) -> None:
    params = (("seed", "1"),)
    create = CreateStrategy("s", "demo", "demo", "paper-binance", params, "op")
    quoted_engine.handle(create, at(1))
    assert quoted_engine.handle(create, at(2)) == []  # a retry of the same creation
    for other in (CreateStrategy("s", "demo", "demo", "paper-binance", (("seed", "2"),)),
                  CreateStrategy("s", "other-kind", "demo", "paper-binance", params)):
        assert refused(quoted_engine, other, at(3)).code is R.DUPLICATE_STRATEGY
    assert refused(quoted_engine, CreateStrategy("g", "demo", "ghost", "paper-binance",
                                                 params), at(3)).code is R.UNKNOWN_ACCOUNT
    for command in (StartStrategy("nope"), StopStrategy("nope"),
                    ConfigureStrategy("nope", params)):
        assert refused(quoted_engine, command, at(4)).code is R.UNKNOWN_STRATEGY


@pytest.mark.parametrize("coid", ["", "x" * 37, "has space", "semi;colon", "ünicode"])
def test_invalid_client_order_id(coid, quoted_engine, order_spec, at) -> None:
    err = refused(quoted_engine, SubmitOrder(order_spec(price="59000.0", coid=coid)), at(1))
    assert err.code is R.INVALID_CLIENT_ORDER_ID
    assert err.rejection.message == (
        "client_order_id must be 1-36 characters of A-Z a-z 0-9 . _ : / -")


def test_a_36_character_client_order_id_is_valid(quoted_engine, place, at) -> None:
    order, _ = place(quoted_engine, at(1), price="59000.0", coid="A.b_c:d/e-" + "9" * 26)
    assert order.status is OrderStatus.ACCEPTED and len(order.client_order_id) == 36


def test_unknown_order(quoted_engine, at) -> None:
    for command in (CancelOrder(999), ReplaceOrder(999, new_price=Decimal("59000.0"))):
        err = refused(quoted_engine, command, at(1))
        assert err.code is R.UNKNOWN_ORDER
        assert err.rejection.message == "there is no order 999"


def test_order_not_open(quoted_engine, place, at) -> None:
    filled, _ = place(quoted_engine, at(1), type="market", qty="0.1")
    assert filled.status is OrderStatus.FILLED
    err = refused(quoted_engine, CancelOrder(filled.order_id), at(2))
    assert err.code is R.ORDER_NOT_OPEN
    assert err.rejection.message == f"order {filled.order_id} is filled; nothing to cancel"
    err = refused(quoted_engine, ReplaceOrder(filled.order_id, new_qty=Decimal("0.2")), at(2))
    assert err.code is R.ORDER_NOT_OPEN
    assert err.rejection.message == f"order {filled.order_id} is filled; it cannot be replaced"


def test_order_not_open_for_a_rejected_order(quoted_engine, place, at) -> None:
    rejected, _ = place(quoted_engine, at(1), qty="0.1", price="59000.05")
    err = refused(quoted_engine, CancelOrder(rejected.order_id), at(2))
    assert err.code is R.ORDER_NOT_OPEN
    assert "is rejected" in err.rejection.message


def test_insufficient_balance_withdraw(quoted_engine, at) -> None:
    err = refused(quoted_engine, Withdraw("demo", "paper-binance", Decimal("20000.01")), at(1))
    assert err.code is R.INSUFFICIENT_BALANCE
    assert err.rejection.message == "only 20000.00 is available to withdraw"


@pytest.mark.parametrize(("command", "message"), [
    (Deposit("demo", "paper-binance", Decimal(0)), "a deposit must be positive"),
    (Deposit("demo", "paper-binance", Decimal(-5)), "a deposit must be positive"),
    (Withdraw("demo", "paper-binance", Decimal(0)), "a withdrawal must be positive"),
    (Withdraw("demo", "paper-binance", Decimal("-0.01")), "a withdrawal must be positive"),
])
def test_invalid_amount(command, message, quoted_engine, at) -> None:
    err = refused(quoted_engine, command, at(1))
    assert err.code is R.INVALID_AMOUNT
    assert err.rejection.message == message


def test_replace_without_changes_is_invalid(quoted_engine, place, at) -> None:
    order, _ = place(quoted_engine, at(1), qty="0.1", price="59000.0")
    err = refused(quoted_engine, ReplaceOrder(order.order_id), at(2))
    assert err.code is R.INVALID_ORDER
    assert err.rejection.message == "a replace needs a new price, qty or trigger"
    market, _ = place(quoted_engine, at(3), type="stop", qty="0.1", trigger="61000.0")
    err = refused(quoted_engine, ReplaceOrder(market.order_id, new_price=Decimal(1)), at(4))
    assert err.code is R.INVALID_ORDER
    assert err.rejection.message == "a stop order has no price to replace"


# ---- what a rejection leaves behind ------------------------------------------------


def test_rejected_order_is_recorded_and_consumes_its_client_order_id(quoted_engine, place,
                                                                     order_spec, at) -> None:
    order, _ = place(quoted_engine, at(1), qty="0.1", price="59000.05", coid="try-1")
    assert order.reject_code == R.PRICE_NOT_ON_TICK
    assert order.client_order_id == "try-1"
    assert quoted_engine.state.order_by_client_id("demo", "paper-binance", "try-1") is order
    assert quoted_engine.state.orders[order.order_id] is order
    assert order.order_id not in quoted_engine.state.open_orders.get(
        ("demo", "paper-binance"), {})

    # Retrying the same request: nothing new, the rejected order stands.
    retried, again = place(quoted_engine, at(2), qty="0.1", price="59000.05", coid="try-1")
    assert again == [] and retried is order
    # Fixing the price under the same id is a different request: refused.
    err = refused(quoted_engine, SubmitOrder(order_spec(qty="0.1", price="59000.0",
                                                        coid="try-1")), at(3))
    assert err.code is R.DUPLICATE_CLIENT_ORDER_ID


def test_idempotent_resubmission_returns_nothing_and_the_first_order(quoted_engine, place,
                                                                     at) -> None:
    first, events = place(quoted_engine, at(1), qty="0.1", price="59000.0", coid="once")
    assert first.status is OrderStatus.ACCEPTED and events
    count = len(quoted_engine.state.orders)
    second, again = place(quoted_engine, at(2), qty="0.1", price="59000.0", coid="once")
    assert again == [] and second is first
    assert len(quoted_engine.state.orders) == count
    venue = quoted_engine.venues["paper-binance"]
    assert venue.working(first.order_id) is not None


def test_generated_client_order_ids_do_not_collide(quoted_engine, place, at) -> None:
    a, _ = place(quoted_engine, at(1), qty="0.1", price="59000.0")
    b, _ = place(quoted_engine, at(1), qty="0.1", price="59000.0")
    assert a.client_order_id == f"pd-{a.order_id}"
    assert a.client_order_id != b.client_order_id
    assert a.status is b.status is OrderStatus.ACCEPTED


def test_gtd_expire_at_within_the_future_is_accepted(quoted_engine, place, at) -> None:
    order, _ = place(quoted_engine, at(1), qty="0.1", price="59000.0", tif="gtd",
                     expire_at=at(1) + timedelta(microseconds=1))
    assert order.status is OrderStatus.ACCEPTED


def test_max_position_at_leverage(make_engine, make_instrument, market, place, at) -> None:
    engine = make_engine(instruments=[make_instrument(max_leverage=Decimal(5))],
                         deposits={("demo", "paper-binance"): 100_000})
    market.quote(engine, at(0), bid_size=10, ask_size=10)
    # 5x is allowed up to 50,000 by the default tiers; 1 BTC is 60,000
    order, events = place(engine, at(1), type="market", qty="1")
    assert_rejected(order, events, R.MAX_POSITION_AT_LEVERAGE,
                    "a position of 60000.05 is above the 50000 allowed at 5x; lower the "
                    "leverage or the size")


def test_leverage_too_high(quoted_engine, at) -> None:
    from app.domain.commands import SetLeverage

    with pytest.raises(CommandRefused) as refused:
        quoted_engine.handle(SetLeverage("demo", "paper-binance", "BTC-PERP", Decimal(21)),
                             at(1))
    assert refused.value.code is R.LEVERAGE_TOO_HIGH
    assert refused.value.rejection.message == \
        "leverage must be a whole number from 1 to 20 for BTC-PERP"


def test_book_not_ready(quoted_engine, place, at) -> None:
    """A market order against a book with no update for over 30 s (the default)."""
    order, events = place(quoted_engine, at(31), type="market", qty="0.1")
    assert [type(e) for e in events] == [OrderSubmitted, OrderRejected]
    assert order.status is OrderStatus.REJECTED and order.reject_code == R.BOOK_NOT_READY
    assert order.reject_message == (
        "the BTC-PERP order book is stale (last update 31 s ago, limit 30 s)")


# ---- venue profiles' own codes (binance-usdm; more in tests/venues/test_venue_profiles.py)


def _binance(make_engine, market, at):
    from app.domain.venue_profiles import BINANCE_USDM

    engine = make_engine(venue_config=PaperVenueConfig(
        capabilities=VenueCapabilities(profile=BINANCE_USDM)))
    market.quote(engine, at(0))
    market.mark(engine, at(0), "60000.0")
    market.trade(engine, at(0), "60000.0", "0.1", "sell")
    return engine


def test_would_immediately_trigger(make_engine, market, place, at) -> None:
    engine = _binance(make_engine, market, at)
    order, events = place(engine, at(1), side="buy", type="stop", qty="0.1",
                          trigger="59990.0")
    assert_rejected(order, events, R.WOULD_IMMEDIATELY_TRIGGER,
                    "the last price 60000.0 has already reached the trigger 59990.0")


def test_price_out_of_band(make_engine, market, place, at) -> None:
    engine = _binance(make_engine, market, at)
    order, events = place(engine, at(1), side="buy", qty="0.1", price="56999.9")
    assert_rejected(order, events, R.PRICE_OUT_OF_BAND,
                    "price 56999.9 is more than 5.00% from the mark 60000.0 "
                    "(allowed 57000.000 to 63000.000)")


def test_gtd_too_soon(make_engine, market, place, at) -> None:
    engine = _binance(make_engine, market, at)
    order, events = place(engine, at(1), price="59990.0", tif="gtd", expire_at=at(600))
    assert_rejected(order, events, R.GTD_TOO_SOON,
                    "paper-binance needs expire_at at least 600 s ahead (binance-usdm)")
    order, _ = place(engine, at(1), price="59990.0", tif="gtd", expire_at=at(601))
    assert order.status is OrderStatus.ACCEPTED
