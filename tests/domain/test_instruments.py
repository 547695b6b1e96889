"""Instruments and the rounding that keeps prices and quantities on the grid."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.instruments import (
    Instrument,
    InstrumentKind,
    Rounding,
    VenueCapabilities,
    is_multiple,
    round_to_increment,
)

D = Decimal
INCREMENTS = [D("0.1"), D("0.5"), D("0.001"), D("0.0001"), D("25"), D("0.01"), D("1"),
              D("0.00001")]


def btc() -> Instrument:
    return Instrument(symbol="BTCUSDT", venue="paper", kind=InstrumentKind.PERP, base="BTC",
                      quote="USDT", tick_size=D("0.1"), step_size=D("0.001"),
                      min_qty=D("0.001"), min_notional=D("5"))


values = st.decimals(min_value=D("-1000000"), max_value=D("1000000"), places=8,
                     allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(value=values, increment=st.sampled_from(INCREMENTS), mode=st.sampled_from(Rounding))
def test_round_to_increment_is_always_on_grid_and_goes_the_right_way(value, increment, mode):
    result = round_to_increment(value, increment, mode)
    assert result % increment == 0
    assert is_multiple(result, increment)
    # expressed with the increment's exponent
    assert result.as_tuple().exponent == increment.as_tuple().exponent
    assert abs(result - value) < increment
    if mode is Rounding.DOWN:
        assert result <= value
    elif mode is Rounding.UP:
        assert result >= value
    else:
        assert abs(result - value) * 2 <= increment
    # values already on the grid are left alone
    assert round_to_increment(result, increment, mode) == result


@settings(max_examples=100, deadline=None)
@given(units=st.integers(min_value=-10**9, max_value=10**9),
       increment=st.sampled_from(INCREMENTS), mode=st.sampled_from(Rounding))
def test_exact_multiples_are_unchanged(units, increment, mode):
    value = units * increment
    assert round_to_increment(value, increment, mode) == value


@pytest.mark.parametrize(
    ("value", "increment", "mode", "expected"),
    [
        ("1.23", "0.1", Rounding.DOWN, "1.2"),
        ("1.23", "0.1", Rounding.UP, "1.3"),
        ("1.23", "0.1", Rounding.NEAREST, "1.2"),
        ("1.27", "0.1", Rounding.NEAREST, "1.3"),
        ("-1.23", "0.1", Rounding.DOWN, "-1.3"),  # toward −∞
        ("-1.23", "0.1", Rounding.UP, "-1.2"),  # toward +∞
        ("-1.27", "0.1", Rounding.NEAREST, "-1.3"),
        ("0.25", "0.1", Rounding.NEAREST, "0.2"),  # half to even
        ("0.35", "0.1", Rounding.NEAREST, "0.4"),
        ("60", "25", Rounding.DOWN, "50"),
        ("60", "25", Rounding.UP, "75"),
        ("60", "25", Rounding.NEAREST, "50"),
        ("62.5", "25", Rounding.NEAREST, "50"),  # 2.5 units → 2
        ("87.5", "25", Rounding.NEAREST, "100"),  # 3.5 units → 4
        ("0.7", "0.5", Rounding.DOWN, "0.5"),
        ("0.7", "0.5", Rounding.UP, "1.0"),
        ("0.0019", "0.001", Rounding.DOWN, "0.001"),
        ("0.0011", "0.001", Rounding.UP, "0.002"),
        ("0.00005", "0.0001", Rounding.DOWN, "0.0000"),
        ("0.00005", "0.0001", Rounding.UP, "0.0001"),
        ("42000.05", "0.1", Rounding.NEAREST, "42000.0"),
        ("42000.15", "0.1", Rounding.NEAREST, "42000.2"),
    ],
)
def test_rounding_examples(value, increment, mode, expected):
    result = round_to_increment(D(value), D(increment), mode)
    assert result == D(expected)
    assert str(result) == expected  # same digits, same exponent


def test_rounding_keeps_the_increment_exponent():
    assert str(round_to_increment(D("0.1"), D("0.01"), Rounding.NEAREST)) == "0.10"
    assert str(round_to_increment(D("7"), D("0.001"), Rounding.DOWN)) == "7.000"


@pytest.mark.parametrize("increment", ["0", "-0.1"])
def test_non_positive_increment_is_refused(increment):
    with pytest.raises(ValueError):
        round_to_increment(D("1"), D(increment), Rounding.DOWN)


def test_round_qty_defaults_down():
    inst = btc()
    assert inst.round_qty(D("0.0019")) == D("0.001")
    assert inst.round_qty(D("1.2349")) == D("1.234")
    assert inst.round_qty(D("0.0011"), Rounding.UP) == D("0.002")
    assert inst.round_qty(D("0.0005")) == 0


def test_round_price_defaults_nearest():
    inst = btc()
    assert inst.round_price(D("42000.04")) == D("42000.0")
    assert inst.round_price(D("42000.06")) == D("42000.1")
    assert inst.round_price(D("42000.01"), Rounding.UP) == D("42000.1")
    assert inst.round_price(D("42000.09"), Rounding.DOWN) == D("42000.0")


@pytest.mark.parametrize(
    ("price", "on_tick"),
    [("42000.1", True), ("42000.10", True), ("42000", True), ("42000.15", False),
     ("0.05", False), ("-0.3", True)],
)
def test_price_on_tick(price, on_tick):
    assert btc().price_on_tick(D(price)) is on_tick


@pytest.mark.parametrize(
    ("qty", "on_step"),
    [("0.001", True), ("1.234", True), ("1.2340", True), ("1.2345", False), ("0.0001", False),
     ("5", True)],
)
def test_qty_on_step(qty, on_step):
    assert btc().qty_on_step(D(qty)) is on_step


@settings(max_examples=100, deadline=None)
@given(value=values)
def test_instrument_rounding_always_passes_its_own_grid_checks(value):
    inst = btc()
    for mode in Rounding:
        assert inst.price_on_tick(inst.round_price(value, mode))
        assert inst.qty_on_step(inst.round_qty(value, mode))


def test_instrument_defaults():
    inst = btc()
    assert inst.is_perp
    assert inst.maker_fee_rate == D("0.0002")
    assert inst.taker_fee_rate == D("0.0005")
    spot = Instrument(symbol="BTCUSDT", venue="paper", kind=InstrumentKind.SPOT, base="BTC",
                      quote="USDT", tick_size=D("0.01"), step_size=D("0.0001"),
                      min_qty=D("0.0001"), min_notional=D("10"))
    assert not spot.is_perp


def test_venue_capabilities_default_to_everything():
    caps = VenueCapabilities()
    assert caps.order_types == {"market", "limit", "stop", "stop_limit", "take_profit",
                                "take_profit_limit", "trailing_stop"}
    assert caps.profile.name == "generic"
    assert caps.time_in_force == {"gtc", "ioc", "fok", "gtd"}
    assert caps.trigger_sources == {"last", "mark"}
    assert caps.post_only and caps.reduce_only
