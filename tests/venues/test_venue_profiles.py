"""Venue profiles: binance-usdm and bybit-v5 order-entry rules on the paper venue
(app/domain/venue_profiles.py), each against the generic behaviour it changes."""

from __future__ import annotations

import copy
from datetime import timedelta
from decimal import Decimal

import pytest

from app.config import default_trading_config
from app.domain.commands import ReplaceOrder, SubmitOrder
from app.domain.instruments import VenueCapabilities
from app.domain.orders import OrderStatus
from app.domain.rejections import CommandRefused, RejectCode
from app.domain.venue_profiles import BINANCE_USDM, BYBIT_V5, GENERIC, VenueProfile
from app.venues.paper.venue import PaperVenueConfig
from tests.engine.conftest import T0, MarketPusher, build_engine, instrument, make_spec, place_order

D = Decimal
S = OrderStatus
R = RejectCode
POSITION = ("demo", "paper-binance", "BTC-PERP")
market = MarketPusher()


def at(seconds: float):
    return T0 + timedelta(seconds=seconds)


def engine_for(profile: VenueProfile, **kwargs):
    caps = VenueCapabilities(order_types=profile.order_types,
                             time_in_force=profile.time_in_force, profile=profile)
    engine = build_engine(venue_config=PaperVenueConfig(capabilities=caps), **kwargs)
    market.quote(engine, at(0))
    market.mark(engine, at(0), "60000.0")
    market.trade(engine, at(0), "60000.0", "0.01", "sell")
    return engine


def refused(engine, spec, now) -> CommandRefused:
    before = copy.deepcopy(engine.state.comparable())
    with pytest.raises(CommandRefused) as info:
        engine.handle(SubmitOrder(spec), now)
    assert engine.state.comparable() == before  # nothing recorded
    return info.value


# ---- post-only and FOK: refused, rejected or canceled ---------------------------------------


def test_binance_refuses_a_crossing_post_only_unrecorded_and_the_id_stays_free() -> None:
    engine = engine_for(BINANCE_USDM)
    crossing = make_spec(side="buy", qty="0.1", price="60000.1", post_only=True, coid="po-1")
    error = refused(engine, crossing, at(1))
    assert error.code is R.POST_ONLY_WOULD_CROSS
    assert error.rejection.message == ("post-only buy at 60000.1 would take liquidity; "
                                       "no order was placed")
    order, _ = place_order(engine, at(2), side="buy", qty="0.1", price="59990.0",
                           post_only=True, coid="po-1")
    assert order.status is S.ACCEPTED and order.client_order_id == "po-1"


def test_binance_refuses_an_unfillable_fok_unrecorded() -> None:
    engine = engine_for(BINANCE_USDM)
    error = refused(engine, make_spec(side="buy", qty="1.5", price="60000.1", tif="fok"),
                    at(1))
    assert error.code is R.FOK_NOT_FILLABLE
    order, _ = place_order(engine, at(1), side="buy", qty="1", price="60000.1", tif="fok")
    assert order.status is S.FILLED


def test_generic_records_the_rejection_and_burns_the_id() -> None:
    engine = engine_for(GENERIC)
    order, _ = place_order(engine, at(1), side="buy", qty="0.1", price="60000.1",
                           post_only=True, coid="po-1")
    assert order.status is S.REJECTED and order.reject_code == R.POST_ONLY_WOULD_CROSS
    error = refused(engine, make_spec(side="buy", qty="0.1", price="59990.0", post_only=True,
                                      coid="po-1"), at(2))
    assert error.code is R.DUPLICATE_CLIENT_ORDER_ID


def test_bybit_accepts_a_crossing_post_only_then_cancels_it() -> None:
    engine = engine_for(BYBIT_V5)
    order, events = place_order(engine, at(1), side="buy", qty="0.1", price="60000.1",
                                post_only=True)
    assert [type(e).__name__ for e in events] == ["OrderSubmitted", "OrderAccepted",
                                                  "OrderCanceled"]
    assert order.status is S.CANCELED and order.filled_qty == 0
    assert order.cancel_reason == ("POST_ONLY_WOULD_CROSS: post-only buy at 60000.1 would "
                                   "take liquidity")


def test_binance_replace_into_a_crossing_post_only_is_refused_and_the_original_stays() -> None:
    engine = engine_for(BINANCE_USDM)
    order, _ = place_order(engine, at(1), side="buy", qty="0.1", price="59990.0",
                           post_only=True)
    with pytest.raises(CommandRefused) as info:
        engine.handle(ReplaceOrder(order.order_id, new_price=D("60000.1")), at(2))
    assert info.value.code is R.POST_ONLY_WOULD_CROSS
    assert order.status is S.ACCEPTED


# ---- client order ids ----------------------------------------------------------------------


def test_bybit_client_order_ids_have_no_dot_colon_or_slash_and_successors_fit() -> None:
    engine = engine_for(BYBIT_V5)
    for coid in ("a.b", "a:b", "a/b"):
        error = refused(engine, make_spec(qty="0.1", price="59990.0", coid=coid), at(1))
        assert error.code is R.INVALID_CLIENT_ORDER_ID
        assert error.rejection.message == ("client_order_id must be 1-36 characters of "
                                           "A-Za-z0-9_- on paper-binance (bybit-v5)")
    order, _ = place_order(engine, at(1), qty="0.1", price="59990.0", coid="x" * 36)
    engine.handle(ReplaceOrder(order.order_id, new_price=D("59980.0")), at(2))
    successor = engine.state.orders[order.replaced_by]
    assert successor.client_order_id == "x" * 33 + "-r1"
    assert BYBIT_V5.valid_client_order_id(successor.client_order_id)
    engine.handle(ReplaceOrder(successor.order_id, new_price=D("59970.0")), at(3))
    assert engine.state.orders[successor.replaced_by].client_order_id == "x" * 33 + "-r2"


def test_binance_successors_keep_the_dot_suffix() -> None:
    engine = engine_for(BINANCE_USDM)
    order, _ = place_order(engine, at(1), qty="0.1", price="59990.0", coid="a:b/c")
    engine.handle(ReplaceOrder(order.order_id, new_price=D("59980.0")), at(2))
    assert engine.state.orders[order.replaced_by].client_order_id == "a:b/c.r1"


# ---- binance: stops, margin, reduce-only, min notional ----------------------------------------


def test_binance_takes_an_untriggered_stop_without_a_margin_check() -> None:
    generic, binance = engine_for(GENERIC), engine_for(BINANCE_USDM)
    big = dict(side="buy", type="stop", qty="2", trigger="61000.0")  # 122,000 at 5x: 24,400
    order, _ = place_order(generic, at(1), **big)
    assert order.reject_code == R.INSUFFICIENT_MARGIN
    order, _ = place_order(binance, at(1), **big)
    assert order.status is S.ACCEPTED


def test_binance_take_profit_already_reached_would_immediately_trigger() -> None:
    engine = engine_for(BINANCE_USDM)
    order, _ = place_order(engine, at(1), side="sell", type="take_profit", qty="0.1",
                           trigger="59990.0", trigger_source="mark")
    assert order.reject_code == R.WOULD_IMMEDIATELY_TRIGGER
    generic = engine_for(GENERIC)
    order, events = place_order(generic, at(1), side="sell", type="take_profit", qty="0.1",
                                trigger="59990.0", trigger_source="mark")
    assert "OrderTriggered" in [type(e).__name__ for e in events]  # triggers at once


def test_binance_expires_reduce_only_orders_once_nothing_is_left_to_reduce() -> None:
    engine = engine_for(BINANCE_USDM)
    place_order(engine, at(1), side="buy", type="market", qty="0.5")
    take, _ = place_order(engine, at(2), side="sell", qty="0.5", price="60500.0",
                          reduce_only=True)
    stop, _ = place_order(engine, at(2), side="sell", type="stop", qty="0.5",
                          trigger="59000.0", reduce_only=True)
    _, events = place_order(engine, at(3), side="sell", type="market", qty="0.5")
    assert engine.state.positions[POSITION].qty == 0
    assert {type(e).__name__ for e in events if getattr(e, "order_id", None)
            in (take.order_id, stop.order_id)} == {"OrderExpired"}
    assert (take.status, stop.status) == (S.EXPIRED, S.EXPIRED)


def test_generic_leaves_reduce_only_orders_until_they_would_fill() -> None:
    engine = engine_for(GENERIC)
    place_order(engine, at(1), side="buy", type="market", qty="0.5")
    take, _ = place_order(engine, at(2), side="sell", qty="0.5", price="60500.0",
                          reduce_only=True)
    place_order(engine, at(3), side="sell", type="market", qty="0.5")
    assert take.status is S.ACCEPTED
    market.quote(engine, at(4), bid="60500.0", ask="60500.1")
    assert take.status is S.CANCELED
    assert take.cancel_reason == "reduce-only: nothing left to reduce"


def test_binance_min_notional_applies_to_closing_orders_without_reduce_only() -> None:
    inst = [instrument(min_notional=100)]
    binance = engine_for(BINANCE_USDM, instruments=inst)
    generic = engine_for(GENERIC, instruments=inst)
    for engine in (binance, generic):
        place_order(engine, at(1), side="buy", type="market", qty="0.002")  # 120 USDT
    small_close = dict(side="sell", type="market", qty="0.001")  # 60 USDT
    order, _ = place_order(binance, at(2), **small_close)
    assert order.reject_code == R.MIN_NOTIONAL
    order, _ = place_order(binance, at(2), reduce_only=True, **small_close)
    assert order.status is S.FILLED
    order, _ = place_order(generic, at(2), **small_close)
    assert order.status is S.FILLED


# ---- bybit: what it does not offer -----------------------------------------------------------


@pytest.mark.parametrize(("fields", "message"), [
    (dict(tif="gtd", expire_at=at(3600)), "paper-binance does not support time in force GTD"),
    (dict(type="trailing_stop", price=None), "paper-binance does not support trailing_stop "
                                             "orders"),
])
def test_bybit_has_no_gtd_and_no_trailing_stop_orders(fields, message) -> None:
    engine = engine_for(BYBIT_V5)
    order, _ = place_order(engine, at(1), **{"qty": "0.1", "price": "59990.0", **fields})
    assert (order.reject_code, order.reject_message) == (R.UNSUPPORTED_BY_VENUE, message)


# ---- configuration ---------------------------------------------------------------------------


def test_the_demo_venues_follow_their_exchanges() -> None:
    venues = {v.name: v.capabilities for v in default_trading_config().venues}
    assert venues["paper-binance"].profile is BINANCE_USDM
    assert venues["paper-bybit"].profile is BYBIT_V5
    assert "gtd" not in venues["paper-bybit"].time_in_force
    assert "trailing_stop" in venues["paper-binance"].order_types


def test_a_yaml_venue_chooses_its_profile_and_may_narrow_it(tmp_path) -> None:
    from app.config import load_trading_config

    path = tmp_path / "perpdesk.yaml"
    path.write_text("venues:\n  - name: paper-x\n    profile: bybit-v5\n"
                    "    time_in_force: [gtc]\n  - name: paper-y\n")
    venues = {v.name: v.capabilities for v in load_trading_config(path).venues}
    assert venues["paper-x"].profile is BYBIT_V5
    assert venues["paper-x"].time_in_force == {"gtc"}
    assert venues["paper-y"].profile is GENERIC
    assert venues["paper-y"].order_types == GENERIC.order_types
