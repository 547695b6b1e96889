"""The event codec: every domain event survives encode -> JSON text -> decode unchanged.

Decimals must travel as strings (a float anywhere would silently round money),
datetimes must keep their UTC offset, enums travel as their values and nested
values (OrderSpec, OrderTags, Scope, ClosedTrade, CloseResult) come back as the
same frozen dataclasses.
"""

from __future__ import annotations

import json
import typing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain import arbitrage as arb
from app.domain import events as ev
from app.domain import risk
from app.domain import signals as sig
from app.domain.orders import (
    Liquidity,
    OrderSpec,
    OrderTags,
    OrderType,
    Side,
    TimeInForce,
    TriggerSource,
)
from app.domain.positions import ClosedTrade
from app.domain.strategies import SavedBar
from app.domain.trading_state import Scope, TradingState
from app.store.codec import EVENT_TYPES, decode_event, encode, encode_event

D = Decimal
T = datetime(2024, 3, 5, 7, 8, 9, 123456, tzinfo=UTC)
ALL_EVENT_TYPES = set(typing.get_args(ev.Event))


def full_spec() -> OrderSpec:
    """Every optional field set, including the nested tags."""
    return OrderSpec(
        client="demo", venue="paper-binance", symbol="BTC-PERP", side=Side.SELL,
        type=OrderType.STOP_LIMIT, qty=D("0.125"), price=D("59990.1"),
        trigger_price=D("60000.0"), trigger_source=TriggerSource.MARK,
        time_in_force=TimeInForce.GTD, expire_at=T + timedelta(hours=1), post_only=True,
        reduce_only=True, client_order_id="abc-1.r2",
        tags=OrderTags(strategy="mm", signal_id="sig:7", parent_trade_id="t/1",
                       exit_reason="take_profit"))


def bare_spec() -> OrderSpec:
    """Every optional field left at its default (None / False / empty tags)."""
    return OrderSpec(client="demo-2", venue="paper-bybit", symbol="XRP-PERP", side=Side.BUY,
                     type=OrderType.MARKET, qty=D("200.0"), client_order_id="pd-1")


def trailing_spec() -> OrderSpec:
    return OrderSpec(client="demo", venue="paper-binance", symbol="BTC-PERP", side=Side.SELL,
                     type=OrderType.TRAILING_STOP, qty=D("0.010"), client_order_id="tr-1",
                     callback_rate=D("0.5"), activation_price=D("61000.0"))


def close_position_spec() -> OrderSpec:
    return OrderSpec(client="demo", venue="paper-binance", symbol="BTC-PERP", side=Side.SELL,
                     type=OrderType.TAKE_PROFIT, qty=D(0), trigger_price=D("62000.0"),
                     close_position=True, client_order_id="tp-all")


def closed_trade() -> ClosedTrade:
    return ClosedTrade(
        trade_id="demo:paper-binance:BTC-PERP:3", client="demo", venue="paper-binance",
        symbol="BTC-PERP", direction="short", qty=D("1.500"), entry_price=D("60000.05"),
        exit_price=D("59000.0"), realized_pnl=D("1575.075"), fees=D("-0.000001"),
        funding=D("-12.34"), net_pnl=D("1562.735001"),
        pnl_pct=D("1.736372222222222222222222222"), opened_at=T,
        closed_at=T + timedelta(days=2, microseconds=1), exit_reason="close_all")


def sample_events() -> list[Any]:
    """At least one instance of every event type; None-able fields both set and unset."""
    return [
        ev.FundsDeposited("demo", "paper-binance", D("20000"), T),
        ev.FundsDeposited("demo", "paper-binance", D("0.10"), T, actor="alice"),
        ev.FundsWithdrawn("demo", "paper-bybit", D("1E-8"), T, actor="ops"),
        ev.OrderSubmitted(1, bare_spec(), T),
        ev.OrderSubmitted(2, full_spec(), T, replaces=1, actor="key:ab12",
                          requested_qty=D("0.500"), arrival_mid=D("60000.05")),
        ev.OrderAccepted(2, T),
        ev.OrderRejected(3, "POST_ONLY_WOULD_CROSS", "post-only buy at 1 would take", T),
        ev.OrderTriggered(2, D("60000.0"), T),
        ev.OrderTriggered(12, D("59000.0"), T, qty=D("0.750")),
        ev.OrderTriggered(14, D("59000.0"), T, arrival_mid=D("59010.05")),
        ev.OrderSubmitted(12, trailing_spec(), T),
        ev.OrderSubmitted(13, close_position_spec(), T),
        ev.OrderAmendRequested(2, D("0.200"), None, T, actor="key:ab12"),
        ev.OrderAmendRequested(2, None, D("59980.0"), T),
        ev.OrderAmended(2, D("0.200"), D("59980.0"), False, T),
        ev.OrderAmended(14, D("3"), None, True, T),
        ev.OrderAmendRejected(2, "order is not open at the venue", T),
        ev.OrderFilled(2, 7, "demo", "paper-binance", "BTC-PERP", Side.SELL, D("0.025"),
                       D("59990.1"), D("0.2999505"), Liquidity.MAKER, T),
        ev.OrderFilled(4, 8, "demo", "paper-binance", "BTC-PERP", Side.BUY, D("3"),
                       D("60000.10"), D("90.00015"), Liquidity.TAKER, T),
        ev.OrderCancelRequested(2, T),
        ev.OrderCancelRequested(2, T, actor="operator"),
        ev.OrderReplaceRequested(2, 9, full_spec(), T, actor="script"),
        ev.OrderReplaceRequested(5, 10, bare_spec(), T),
        ev.OrderCanceled(2, "replaced", T, replaced_by=9),
        ev.OrderCanceled(6, "requested", T),
        ev.OrderCancelRejected(6, "order is not open at the venue", T),
        ev.OrderExpired(11, T),
        ev.FundingApplied("demo", "paper-binance", "BTC-PERP", D("-1.5"), D("60000.5"),
                          D("0.0001"), D("9.000075"), T),
        ev.FundingSettled("paper-binance", "BTC-PERP", D("0.0001"), D("60000.5"), T, T),
        ev.FundingSettled("paper-bybit", "XRP-PERP", D("-0.00219334"), None, T, T),
        ev.TradeClosed(closed_trade(), T),
        ev.TradeClosed(replace(closed_trade(), entry_arrival=D("60000.00"),
                               exit_arrival=D("59010.5")), T),
        ev.TradingStateChanged(Scope(), TradingState.HALTED, TradingState.ACTIVE,
                               "market chaos", "admin", T),
        ev.TradingStateChanged(Scope("demo", None), TradingState.REDUCE_ONLY,
                               TradingState.HALTED, "why", "op", T),
        ev.TradingStateChanged(Scope(None, "paper-bybit"), TradingState.ACTIVE,
                               TradingState.REDUCE_ONLY, "back", "op", T),
        ev.TradingStateChanged(Scope("demo", "paper-bybit"), TradingState.REDUCE_ONLY,
                               TradingState.ACTIVE, "acct", "op", T),
        ev.CloseAllCompleted(
            Scope("demo", "paper-binance"),
            (ev.CloseResult("demo", "paper-binance", "BTC-PERP", D("1.5"), 12, D("1.5"),
                            D("59999.95"), "closed"),
             ev.CloseResult("demo", "paper-binance", "ETH-PERP", D("-0.2"), None, D("0"),
                            None, "failed", "NO_MARKET_DATA: no book")),
            "flatten", "op", T),
        ev.CloseAllCompleted(Scope(), (), "nothing open", "op", T),
        ev.LeverageChanged("demo", "paper-binance", "BTC-PERP", D(10), D(5), "alice", T),
        ev.PositionLiquidated("demo", "paper-binance", "BTC-PERP", D("-0.5"), D("61000.0"),
                              D("61012.3"), D("0.5"), D("15.25307500"), D("540.1"),
                              D("140.5"), D("152.5"), 7, T),
        ev.PositionLiquidated("demo", "paper-bybit", "ETH-PERP", D("2"), D("1900.00"), None,
                              D(0), D(0), D(0), D("-1"), D("19"), 8, T),
        ev.FundingRateMissing("paper-binance", "BTC-PERP", T, D("60000.0"),
                              (ev.FundingPosition("demo", D("0.5")),
                               ev.FundingPosition("other", D("-0.5"))), T),
        ev.FundingRateMissing("paper-bybit", "XRP-PERP", T, None, (), T),
        ev.StrategyCreated("demo-1", "demo", "demo", "paper-binance",
                           (("order_every_s", '"5"'), ("seed", "7"), ("symbols", '["BTC-PERP"]')),
                           T, "key:ab12"),
        ev.StrategyCreated("empty", "demo", "demo", "paper-bybit", (), T),
        ev.StrategyStarted("demo-1", "demo", "paper-binance", T, "op"),
        ev.StrategyStopped("demo-1", "demo", "paper-binance", "failed: ZeroDivisionError", True,
                           T, "host"),
        ev.StrategyConfigured("demo-1", "demo", "paper-binance", (("seed", "8"),),
                              (("seed", "7"),), T, "op"),
        risk.RiskProfileChanged("demo", risk.RiskProfile(
            max_order_qty=D("0.5"), orders_per_second=5,
            symbols=(risk.SymbolLimits("BTC-PERP", max_position_notional=D(500)),),
            sizing=risk.SizingPolicy(risk.SizingMode.STRICT, D(25)),
            breakers=risk.BreakerPolicy(3, None, D(10), halt_on=(risk.Breaker.DRAWDOWN,))),
            "desk limits", "op", T),
        risk.RiskProfileChanged("demo-2", risk.UNLIMITED, "open", "op", T),
        risk.BreakerTripped("demo", risk.Breaker.DRAWDOWN, TradingState.HALTED,
                            "equity 900.00 is 10.00% below its peak 1000.00 (limit 10%)",
                            (("peak_equity", "1000.00"), ("equity", "900.00")), T),
        risk.BreakerReset("demo", risk.Breaker.DRAWDOWN, "reviewed", "op", D("900.5"), T),
        risk.RiskStateRecorded("demo", D("1000.25"), "2024-03-01", D("990"), T),
        risk.OrderSizedDown(7, "demo", "paper-binance", "BTC-PERP", D(1), D("0.271"),
                            D("5.16"), D("4.98"), D(5), risk.SizingMode.CONSERVATIVE, T),
        risk.OrderSizedDown(8, "demo", "paper-binance", "BTC-PERP", D(9), D(2), None,
                            D("49.1"), D(50), risk.SizingMode.AGGRESSIVE, T),
        risk.MarginWindowChanged("paper-binance", None, "overnight", D(2), D("1.5"),
                                 (risk.MarginSnapshot("demo", D(20000), D("0.3"), D("0.6")),),
                                 T),
        risk.MarginWindowWarning("paper-binance", "demo", "overnight", T, D(20000),
                                 D(12000), D(24000), T),
        ev.StrategyBarsRecorded("ma-1", "demo", "paper-binance", (
            SavedBar("BTC-PERP", 300, T, D("60000.1"), D("60100"), D("59950.5"), D("60050"),
                     D("1234567.89"), 20),), T),
        arb.ArbTradeUpdated("arb", "paper-binance", ARB_TRADE, "hedged 0.05", T),
        arb.LegOutDetected("arb", "paper-binance", arb.LegOut(
            "BTC-1", "funding-arb", "arb", "BTC-PERP", "entry", "short", "paper-bybit",
            "long", "paper-binance", T, T, D("0.05"), D("60000.1"), D("0.05"), True,
            D("0.05"), D("60000.0"), D("0.61"), "timeout", T), T),
        sig.SignalReceived("sig:7", "demo", "paper-binance", "BTC-PERP", -1, "ma-1",
                           D("0.5"), T - timedelta(seconds=1), T, "key:ab12"),
        sig.SignalReceived("sig-2", "demo", "paper-bybit", "XRP-PERP", 0, "s", None, T, T),
        sig.SignalResolved("sig:7", "demo", "paper-binance", "BTC-PERP", (12, 13), None,
                           "sell 0.1 BTC-PERP", D("60000.05"), D("0.0123456789"),
                           D("0.0246913578"), T),
        sig.SignalResolved("sig-2", "demo", "paper-bybit", "XRP-PERP", (),
                           sig.NoOrderReason.NOTHING_TO_CLOSE, "no position", None, None,
                           None, T),
        sig.SignalParamsChanged("demo", sig.SignalParams(), "defaults", "op", T),
        sig.SignalParamsChanged("demo", sig.SignalParams(
            mode=sig.PositionMode.LONG_ONLY, entry_at=sig.EntryPoint.PREVIOUS_CLOSE,
            order_type=sig.EntryOrder.LIMIT, limit_price_offset_bps=D("2.5"),
            time_in_force=TimeInForce.IOC, max_slippage_bps=None,
            size_mode=sig.SizeMode.FIXED, fixed_qty=D("0.010"), exit_mode=sig.ExitMode.NONE,
            take_profit_sd=None, stop_loss_sd=None, take_profit_pct=D(3),
            stop_loss_pct=D("1.5"), volatility_window=50, scale_by_strength=False),
            "desk", "op", T),
        sig.BracketOpened(13, "sig:7", "ma-1", "demo", "paper-binance", "BTC-PERP", Side.SELL,
                          D("0.0123"), None, T),
        sig.BracketLegsPlaced(13, "demo", "paper-binance", 14, 15, D("0.100"), T),
        sig.BracketLegsPlaced(13, "demo", "paper-binance", None, None, D(0), T),
        sig.BracketClosed(13, "demo", "paper-binance", "the position is closed", T),
    ]


ARB_TRADE = arb.ArbTrade(
    "BTC-1", "funding-arb", "arb", "BTC-PERP", "paper-binance", "paper-bybit", "paper-bybit",
    arb.ArbStatus.ACTIVE, T, D("0.111"), D("1.25"), D("0.0009"), D("16.40"), 74,
    planned_long_price=D("60000.1"), planned_short_price=D("60000.1"),
    position_size_usd=D("6660.01"),
    orders=(arb.ArbOrder("BTC-1-0", 7, "paper-bybit", Side.SELL, arb.OrderRole.ENTRY,
                         D("0.111"), T, D("0.111"), D("6660.011"), D("1.33"), True),
            arb.ArbOrder("BTC-1-1", None, "paper-binance", Side.BUY, arb.OrderRole.HEDGE,
                         D("0.111"), T)),
    funding_short=D("6.6"), first_fill_at=T, entered_at=T)


def roundtrip(event: Any) -> tuple[Any, Any, str]:
    """Encode, go through JSON text (as the database does), decode."""
    type_name, payload = encode_event(event)
    text = json.dumps(payload)
    return decode_event(type_name, json.loads(text)), json.loads(text), text


def walk(value: Any) -> list[Any]:
    """Every leaf of a JSON value."""
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in walk(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in walk(v)]
    return [value]


def test_samples_cover_every_event_type() -> None:
    assert {type(e) for e in sample_events()} == ALL_EVENT_TYPES
    assert set(EVENT_TYPES) == {cls.__name__ for cls in ALL_EVENT_TYPES}


@pytest.mark.parametrize("event", sample_events(), ids=lambda e: type(e).__name__)
def test_every_event_roundtrips_to_an_equal_value(event: Any) -> None:
    decoded, _, _ = roundtrip(event)
    assert type(decoded) is type(event)
    assert decoded == event
    # And re-encoding the decoded value gives the same JSON (nothing drifted).
    assert encode_event(decoded) == encode_event(event)


def assert_no_float_literals(text: str) -> None:
    def no_float(token: str) -> Any:
        raise AssertionError(f"float literal {token!r} in {text}")

    json.loads(text, parse_float=no_float)


@pytest.mark.parametrize("event", sample_events(), ids=lambda e: type(e).__name__)
def test_no_floats_anywhere_in_the_json(event: Any) -> None:
    _, _, text = roundtrip(event)
    assert_no_float_literals(text)
    assert not any(isinstance(leaf, float) for leaf in walk(json.loads(text)))


def test_decimals_are_exact_strings() -> None:
    filled = ev.OrderFilled(4, 8, "demo", "paper-binance", "BTC-PERP", Side.BUY, D("3"),
                            D("60000.10"), D("90.00015"), Liquidity.TAKER, T)
    _, payload, _ = roundtrip(filled)
    assert payload["qty"] == "3"
    assert payload["price"] == "60000.10"
    assert payload["fee"] == "90.00015"
    assert payload["side"] == "buy" and payload["liquidity"] == "taker"

    withdrawn, payload, _ = roundtrip(ev.FundsWithdrawn("demo", "v", D("1E-8"), T))
    assert payload["amount"] == "1E-8"
    assert withdrawn.amount == D("0.00000001")

    submitted, payload, _ = roundtrip(ev.OrderSubmitted(2, full_spec(), T, replaces=1,
                                                        requested_qty=D("0.500")))
    assert payload["spec"]["qty"] == "0.125"
    assert payload["spec"]["price"] == "59990.1"
    assert payload["requested_qty"] == "0.500"
    # Trailing zeros (the exponent) survive, not only the numeric value.
    assert str(submitted.requested_qty) == "0.500"
    assert str(submitted.spec.trigger_price) == "60000.0"


def test_unset_optionals_are_null_and_come_back_as_none() -> None:
    decoded, payload, _ = roundtrip(ev.OrderSubmitted(1, bare_spec(), T))
    spec = payload["spec"]
    assert spec["price"] is None and spec["trigger_price"] is None
    assert spec["expire_at"] is None
    assert spec["tags"] == {"strategy": None, "signal_id": None, "parent_trade_id": None,
                            "exit_reason": None}
    assert payload["replaces"] is None and payload["requested_qty"] is None
    assert decoded.spec.price is None and decoded.replaces is None
    assert decoded.spec.tags == OrderTags()
    assert decoded.spec.post_only is False and decoded.spec.reduce_only is False


def test_logs_written_before_arrival_prices_still_decode() -> None:
    # Events encoded before OrderSubmitted.arrival_mid and ClosedTrade's arrivals
    # existed lack those keys: they come back as None (slippage unknown).
    _, payload, _ = roundtrip(ev.OrderSubmitted(1, bare_spec(), T, arrival_mid=D("1.5")))
    del payload["arrival_mid"]
    old = decode_event("OrderSubmitted", payload)
    assert isinstance(old, ev.OrderSubmitted) and old.arrival_mid is None
    _, payload, _ = roundtrip(ev.TradeClosed(closed_trade(), T))
    del payload["trade"]["entry_arrival"], payload["trade"]["exit_arrival"]
    closed = decode_event("TradeClosed", payload)
    assert isinstance(closed, ev.TradeClosed)
    assert closed.trade == closed_trade()


def test_nested_values_come_back_as_their_types() -> None:
    replace_req, _, _ = roundtrip(ev.OrderReplaceRequested(2, 9, full_spec(), T))
    assert isinstance(replace_req.new_spec, OrderSpec)
    assert isinstance(replace_req.new_spec.tags, OrderTags)
    assert replace_req.new_spec.type is OrderType.STOP_LIMIT
    assert replace_req.new_spec.trigger_source is TriggerSource.MARK
    assert replace_req.new_spec.time_in_force is TimeInForce.GTD

    closed, _, _ = roundtrip(ev.TradeClosed(closed_trade(), T))
    assert isinstance(closed.trade, ClosedTrade)
    assert closed.trade.pnl_pct == D("1.736372222222222222222222222")

    state, payload, _ = roundtrip(ev.TradingStateChanged(
        Scope("demo", None), TradingState.REDUCE_ONLY, TradingState.HALTED, "r", "a", T))
    assert payload["scope"] == {"client": "demo", "venue": None}
    assert state.scope == Scope("demo", None) and isinstance(state.scope, Scope)
    assert state.state is TradingState.REDUCE_ONLY and state.previous is TradingState.HALTED

    done, _, _ = roundtrip(next(e for e in sample_events()
                                if isinstance(e, ev.CloseAllCompleted) and e.results))
    assert isinstance(done.results, tuple) and len(done.results) == 2
    assert all(isinstance(r, ev.CloseResult) for r in done.results)
    assert done.results[1].order_id is None and done.results[1].avg_price is None
    assert done.results[0].avg_price == D("59999.95")


def test_datetimes_keep_utc_and_microseconds() -> None:
    event = ev.OrderExpired(11, T)
    decoded, payload, _ = roundtrip(event)
    assert isinstance(payload["at"], str)
    assert payload["at"].endswith("+00:00")
    assert decoded.at == T
    assert decoded.at.utcoffset() == timedelta(0)
    assert decoded.at.microsecond == 123456

    submitted, _, _ = roundtrip(ev.OrderSubmitted(2, full_spec(), T))
    assert submitted.spec.expire_at == T + timedelta(hours=1)
    assert submitted.spec.expire_at.utcoffset() == timedelta(0)

    closed, _, _ = roundtrip(ev.TradeClosed(closed_trade(), T))
    assert closed.trade.closed_at.utcoffset() == timedelta(0)
    assert closed.trade.closed_at - closed.trade.opened_at == timedelta(days=2, microseconds=1)


def test_unknown_event_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown event type"):
        decode_event("OrderTeleported", {"order_id": 1})


_decimals = st.decimals(allow_nan=False, allow_infinity=False, places=None,
                        min_value=D("-1e12"), max_value=D("1e12"))


@settings(max_examples=150, deadline=None)
@given(qty=_decimals, price=st.one_of(st.none(), _decimals), fee=_decimals,
       micros=st.integers(min_value=0, max_value=10**12))
def test_arbitrary_decimals_and_instants_roundtrip_exactly(
        qty: Decimal, price: Decimal | None, fee: Decimal, micros: int) -> None:
    at = datetime(2020, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    spec = OrderSpec("demo", "paper-binance", "BTC-PERP", Side.BUY, OrderType.LIMIT, qty,
                     price=price, client_order_id="x")
    for event in (ev.OrderSubmitted(1, spec, at),
                  ev.OrderFilled(1, 1, "demo", "paper-binance", "BTC-PERP", Side.BUY, qty,
                                 price or fee, fee, Liquidity.MAKER, at)):
        decoded, _, text = roundtrip(event)
        assert decoded == event
        assert decoded.at.utcoffset() == timedelta(0)
        assert_no_float_literals(text)
    assert str(roundtrip(ev.OrderSubmitted(1, spec, at))[0].spec.qty) == str(qty)


@pytest.mark.parametrize("event", sample_events(), ids=lambda e: type(e).__name__)
def test_the_compiled_encoder_renders_what_the_generic_one_does(event: Any) -> None:
    # encode_event uses a per-class encoder built from the type hints; the generic,
    # reflective ``encode`` is the reference it must agree with, field for field.
    assert encode_event(event) == (type(event).__name__, encode(event))
