"""Leverage tiers, the leverage cap at entry, maintenance margin and liquidation on
the mark (issue 11): a paper run can no longer survive where the same run live would
be liquidated, nor run equity deeply negative."""

from __future__ import annotations

from decimal import Decimal
from itertools import pairwise

import pytest

from app.domain.commands import SetLeverage
from app.domain.events import LeverageChanged, OrderFilled, PositionLiquidated
from app.domain.instruments import LeverageBracket, default_brackets
from app.domain.orders import OrderStatus
from app.domain.rejections import CommandRefused, RejectCode
from app.engine.engine import AccountSetup
from tests.engine.conftest import CLIENT, SYMBOL, VENUE, build_engine, instrument

D = Decimal
R = RejectCode
TIERS = (LeverageBracket(D(50_000), D(20), D("0.025")),
         LeverageBracket(D(250_000), D(10), D("0.05"), D(1250)))


def engine_with(leverage: str = "5", deposit: str = "20000", **inst):
    return build_engine(instruments=[instrument(brackets=TIERS, **inst)],
                        accounts=[AccountSetup(CLIENT, VENUE, D(leverage))],
                        deposits={(CLIENT, VENUE): D(deposit)})


def test_default_tiers_are_continuous_and_shaped_like_binance() -> None:
    tiers = default_brackets(D(125))
    assert [t.max_leverage for t in tiers] == [D(125), D(62), D(31), D(16), D(8)]
    assert tiers[0].maintenance_rate == D("0.004")  # BTCUSDT's first tier
    inst = instrument(max_leverage=D(125))
    for lower, upper in pairwise(tiers):
        at = lower.notional_cap
        assert at * lower.maintenance_rate - lower.maintenance_amount \
            == at * upper.maintenance_rate - upper.maintenance_amount
        assert inst.maintenance_margin(at) == at * lower.maintenance_rate \
            - lower.maintenance_amount


def test_the_instrument_cap_wins_over_the_account_leverage(market, place, at) -> None:
    """An account set to 60x on an instrument allowing 20x trades at 20x: the margin a
    60x position would need is refused."""
    engine = engine_with(leverage="60", deposit="1000")
    market.quote(engine, at(0))
    order, _ = place(engine, at(1), type="market", qty="0.5")  # 30,000 notional: 1,500 at 20x
    assert order.status is OrderStatus.REJECTED and order.reject_code == R.INSUFFICIENT_MARGIN
    assert "20x" in (order.reject_message or "")
    order, _ = place(engine, at(2), type="market", qty="0.3")  # 18,000: 900 at 20x
    assert order.status is OrderStatus.FILLED
    # valued at the mid (no mark yet), at 20x
    assert engine.summary(CLIENT, VENUE).margin_used == D("0.3") * D("60000.05") / 20


def test_a_position_beyond_the_tier_of_its_leverage_is_refused(market, place, at) -> None:
    engine = engine_with(leverage="20", deposit="100000")
    market.quote(engine, at(0), bid_size="10", ask_size="10")
    order, _ = place(engine, at(1), type="market", qty="1")  # 60,000 > 50,000 allowed at 20x
    assert order.reject_code == R.MAX_POSITION_AT_LEVERAGE
    assert "allowed at 20x" in (order.reject_message or "")
    engine.handle(SetLeverage(CLIENT, VENUE, SYMBOL, D(10)), at(2))
    order, _ = place(engine, at(3), type="market", qty="1")
    assert order.status is OrderStatus.FILLED


def test_set_leverage_is_bounded_recorded_and_idempotent(market, place, at) -> None:
    engine = engine_with()
    market.quote(engine, at(0))
    with pytest.raises(CommandRefused) as refused:
        engine.handle(SetLeverage(CLIENT, VENUE, SYMBOL, D(21)), at(1))
    assert refused.value.code is R.LEVERAGE_TOO_HIGH
    for bad in (D(0), D("2.5")):
        with pytest.raises(CommandRefused):
            engine.handle(SetLeverage(CLIENT, VENUE, SYMBOL, bad), at(1))
    with pytest.raises(CommandRefused) as refused:
        engine.handle(SetLeverage(CLIENT, VENUE, "NOPE-PERP", D(3)), at(1))
    assert refused.value.code is R.UNKNOWN_SYMBOL
    (changed,) = engine.handle(SetLeverage(CLIENT, VENUE, SYMBOL, D(10), "alice"), at(2))
    assert changed == LeverageChanged(CLIENT, VENUE, SYMBOL, D(10), D(5), "alice", at(2))
    assert engine.handle(SetLeverage(CLIENT, VENUE, SYMBOL, D(10)), at(3)) == []
    assert engine.state.accounts[(CLIENT, VENUE)].leverage_for(SYMBOL) == D(10)


def test_leverage_cannot_be_raised_past_the_tier_of_the_open_position(market, place,
                                                                       at) -> None:
    engine = engine_with(leverage="10", deposit="100000")
    market.quote(engine, at(0), bid_size="10", ask_size="10")
    place(engine, at(1), type="market", qty="1")  # 60,000: only 10x tiers allow it
    with pytest.raises(CommandRefused) as refused:
        engine.handle(SetLeverage(CLIENT, VENUE, SYMBOL, D(20)), at(2))
    assert refused.value.code is R.MAX_POSITION_AT_LEVERAGE


def long_at_5x(market, place, at):
    """2,000 wallet, long 0.15 BTC at 60,000.1 (9,000 notional, 4.5x)."""
    engine = engine_with(deposit="2000")
    market.quote(engine, at(0))
    market.mark(engine, at(0), "60000.0")
    order, _ = place(engine, at(1), type="market", qty="0.15")
    assert order.status is OrderStatus.FILLED
    return engine


def test_maintenance_margin_and_ratio_in_the_summary(market, place, at) -> None:
    engine = long_at_5x(market, place, at)
    s = engine.summary(CLIENT, VENUE)
    assert s.maintenance_margin == D("0.15") * D("60000.0") * D("0.025")
    assert s.maintenance_ratio == s.maintenance_margin / s.equity


def test_a_mark_at_the_liquidation_price_liquidates_the_account(market, place, at) -> None:
    engine = long_at_5x(market, place, at)
    resting, _ = place(engine, at(2), qty="0.01", price="40000.0")
    price = engine.liquidation_price(CLIENT, VENUE, SYMBOL)
    assert price is not None and D(40000) < price < D(60000)
    tick = D("0.1")
    # A tick above it: nothing happens (the book follows the mark down).
    market.quote(engine, at(3), bid=price, ask=price + tick, bid_size="5", ask_size="5")
    assert market.mark(engine, at(3), price + tick) == []
    events = market.mark(engine, at(4), price)
    liquidated = [e for e in events if isinstance(e, PositionLiquidated)]
    assert len(liquidated) == 1
    e = liquidated[0]
    assert (e.qty, e.filled_qty, e.mark) == (D("0.15"), D("0.15"), price)
    assert e.equity <= e.maintenance_margin
    assert e.fee == (D("0.15") * e.price * D("0.005")).quantize(D("0.00000001"))
    assert resting.status is OrderStatus.CANCELED  # open orders go first
    position = engine.state.positions[(CLIENT, VENUE, SYMBOL)]
    assert position.qty == 0
    account = engine.state.accounts[(CLIENT, VENUE)]
    assert account.wallet == account.expected_wallet  # the fee is in the books
    assert account.wallet > 0  # liquidated before the equity was gone
    fills = [f for f in events if isinstance(f, OrderFilled)]
    assert fills and all(f.order_id == e.order_id for f in fills)
    opening_fee = D("0.15") * D("60000.1") * D("0.0005")
    # lost against the entry: the closing P&L, the closing fee and the liquidation fee
    assert e.loss == -position.realized_pnl + (position.fees - opening_fee) > 0


def test_a_gap_through_the_liquidation_price_still_liquidates_once(market, place, at) -> None:
    engine = long_at_5x(market, place, at)
    market.quote(engine, at(3), bid="45000.0", ask="45000.1", bid_size="5", ask_size="5")
    events = market.mark(engine, at(3), "45000.0")
    assert sum(isinstance(e, PositionLiquidated) for e in events) == 1
    assert market.mark(engine, at(4), "44000.0") == []  # flat: nothing more to do
    account = engine.state.accounts[(CLIENT, VENUE)]
    assert account.wallet == account.expected_wallet


def test_a_short_is_liquidated_when_the_mark_rises(market, place, at) -> None:
    engine = engine_with(deposit="2000")
    market.quote(engine, at(0))
    market.mark(engine, at(0), "60000.0")
    place(engine, at(1), side="sell", type="market", qty="0.15")
    price = engine.liquidation_price(CLIENT, VENUE, SYMBOL)
    assert price is not None and price > D(60000)
    market.quote(engine, at(2), bid=price - D("0.1"), ask=price, bid_size="5", ask_size="5")
    events = market.mark(engine, at(2), price)
    assert any(isinstance(e, PositionLiquidated) for e in events)
    assert engine.state.positions[(CLIENT, VENUE, SYMBOL)].qty == 0


def test_liquidations_replay_into_the_same_state(market, place, at) -> None:
    from app.engine.state import EngineState

    engine = long_at_5x(market, place, at)
    log: list = []
    log += engine.handle(SetLeverage(CLIENT, VENUE, SYMBOL, D(4)), at(2))
    market.quote(engine, at(3), bid="45000.0", ask="45000.1", bid_size="5", ask_size="5")
    log += market.mark(engine, at(3), "45000.0")
    assert any(isinstance(e, PositionLiquidated) for e in log)
    fresh = build_engine(instruments=[instrument(brackets=TIERS)],
                         accounts=[AccountSetup(CLIENT, VENUE, D(5))],
                         deposits={(CLIENT, VENUE): D(2000)})
    replayed = EngineState(accounts=fresh.state.accounts)
    original = long_at_5x_events(market, place, at)
    for e in original + log:
        replayed.apply(e)
    assert replayed.comparable() == engine.state.comparable()


def long_at_5x_events(market, place, at) -> list:
    """The events ``long_at_5x`` produced, on an engine of its own."""
    engine = engine_with(deposit="2000")
    events: list = []
    market.quote(engine, at(0))
    market.mark(engine, at(0), "60000.0")
    _, placed = place(engine, at(1), type="market", qty="0.15")
    events += placed
    return events


def test_liquidation_risk_and_liquidations_are_alerted(market, place, at) -> None:
    from types import SimpleNamespace

    from app.runtime.alerts import AlertMonitor

    engine = long_at_5x(market, place, at)

    class Feed:
        def __init__(self) -> None:
            self.messages: list = []

        def publish(self, messages: list) -> None:
            self.messages += messages

    monitor = AlertMonitor(SimpleNamespace(engine=engine), Feed())  # type: ignore[arg-type]
    monitor.check_accounts()
    assert [a.title for a in monitor.recent(None)] == ["Margin utilization"]  # 4.5x
    price = engine.liquidation_price(CLIENT, VENUE, SYMBOL)
    assert price is not None
    near = price + D(500)  # maintenance margin well above half the equity by now
    market.quote(engine, at(3), bid=near, ask=near + D("0.1"), bid_size="5", ask_size="5")
    market.mark(engine, at(3), near)
    monitor.check_accounts()
    risk = monitor.recent(None)[0]
    assert risk.title == "Liquidation risk" and risk.client == CLIENT
    events = market.mark(engine, at(4), price)
    monitor.on_events(events)
    assert monitor.recent(None)[0].title == "Position liquidated"
    assert monitor.recent(None)[0].level == "critical"


def test_a_liquidation_without_a_book_waits_and_retries(market, place, at) -> None:
    """The closing order is refused when the book is stale: the position stays open,
    nothing is charged, and the engine tries again a second later, not on every mark."""
    from app.domain.events import OrderRejected

    engine = long_at_5x(market, place, at)
    late = at(60)  # the book is a minute old: stale
    events = market.mark(engine, late, "45000.0")
    assert [type(e) for e in events].count(OrderRejected) == 1
    assert not any(isinstance(e, PositionLiquidated) for e in events)
    assert market.mark(engine, late, "44990.0") == []  # within the second: no new attempt
    market.quote(engine, at(62), bid="44990.0", ask="44990.1", bid_size="5", ask_size="5")
    events = market.mark(engine, at(62), "44990.0")
    assert any(isinstance(e, PositionLiquidated) for e in events)
    assert engine.state.positions[(CLIENT, VENUE, SYMBOL)].qty == 0
