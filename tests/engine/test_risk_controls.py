"""A client's risk controls in the engine: every pre-trade limit with its code and
message, impact-aware sizing and the liquidity filters, and each circuit breaker
tripping, holding across a replay, and being reset."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D

import pytest

from app.domain.commands import SubmitOrder
from app.domain.events import OrderRejected, TradingStateChanged
from app.domain.orders import OrderStatus, OrderTags
from app.domain.rejections import CommandRefused, RejectCode
from app.domain.risk import (
    UNLIMITED,
    Breaker,
    BreakerPolicy,
    BreakerReset,
    BreakerTripped,
    OrderSizedDown,
    ResetBreaker,
    RiskProfile,
    RiskStateRecorded,
    SetRiskProfile,
    SizingMode,
    SizingPolicy,
    SizingRequest,
    SymbolLimits,
)
from app.domain.trading_state import Scope, TradingState
from app.engine.sizing import Depth, impact_bps, largest_within

R = RejectCode
CLIENT_SCOPE = Scope("demo", None)
NO_BREAKERS = BreakerPolicy(None, None, None)


def profile(**fields) -> RiskProfile:
    """UNLIMITED with ``fields`` set (breakers off unless given)."""
    return replace(UNLIMITED, **fields)


@pytest.fixture
def risky(make_engine, market, at):
    """An engine whose demo client has ``profile``; the standard book and a mark."""
    def make(p: RiskProfile, **engine_args):
        engine = make_engine(risk_profile=p, **engine_args)
        market.quote(engine, at(0))
        market.mark(engine, at(0), "60000.0")
        return engine
    return make


def rejected(order, code: RejectCode, message: str) -> None:
    assert order.status is OrderStatus.REJECTED
    assert (order.reject_code, order.reject_message) == (code, message)


# ---- pre-trade limits -------------------------------------------------------------------------

def test_order_size_limit(risky, place, at) -> None:
    engine = risky(profile(max_order_qty=D("0.01")))
    order, _ = place(engine, at(1), qty="0.02", price="59000.0")
    rejected(order, R.MAX_ORDER_SIZE, "qty 0.02 is above the order size limit 0.01")
    ok, _ = place(engine, at(1), qty="0.01", price="59000.0")
    assert ok.status is OrderStatus.ACCEPTED


def test_a_symbols_own_order_limits(risky, place, at) -> None:
    engine = risky(profile(symbols=(SymbolLimits("BTC-PERP", max_order_qty=D("0.005"),
                                                 max_order_notional=D(200)),)))
    big, _ = place(engine, at(1), qty="0.006", price="30000.0")
    rejected(big, R.MAX_ORDER_SIZE, "qty 0.006 is above the order size limit 0.005")
    rich, _ = place(engine, at(1), qty="0.004", price="59000.0")
    rejected(rich, R.MAX_ORDER_NOTIONAL, "order notional 236.00 is above the limit 200")


def test_order_notional_limit(risky, place, at) -> None:
    engine = risky(profile(max_order_notional=D(100)))
    order, _ = place(engine, at(1), qty="0.002", price="59000.0")
    rejected(order, R.MAX_ORDER_NOTIONAL, "order notional 118.00 is above the limit 100")


def test_fat_finger_price_band_against_mark(risky, place, at) -> None:
    engine = risky(profile(price_band_pct=D(5)))
    far, _ = place(engine, at(1), qty="0.001", price="56000.0")
    rejected(far, R.PRICE_OUT_OF_BAND,
             "price 56000.0 is 6.67% from the mark 60000.0; the band is 5%")
    edge, _ = place(engine, at(1), qty="0.001", price="57000.0")  # exactly 5 %
    assert edge.status is OrderStatus.ACCEPTED
    # A protective stop's trigger is not a fat finger: it lies far away by design.
    stop, _ = place(engine, at(1), side="sell", type="stop", qty="0.001", trigger="50000.0")
    assert stop.status is OrderStatus.ACCEPTED


def test_max_open_orders(risky, place, at) -> None:
    engine = risky(profile(max_open_orders=2))
    for _ in range(2):
        place(engine, at(1), qty="0.001", price="59000.0")
    third, _ = place(engine, at(1), qty="0.001", price="59000.0")
    rejected(third, R.MAX_OPEN_ORDERS, "2 orders are open; the limit is 2")


def test_margin_ratio_cap_blocks_entries_not_exits(risky, place, at) -> None:
    engine = risky(profile(margin_ratio_cap=D("0.10")))
    small, _ = place(engine, at(1), type="market", qty="0.01")  # 600 / 5 = 120 of 20000
    assert small.status is OrderStatus.FILLED
    big, _ = place(engine, at(2), qty="0.2", price="59000.0")
    rejected(big, R.MARGIN_RATIO_CAP,
             "the entry would put 12.4% of equity in margin; entries are blocked above 10%")
    closing, _ = place(engine, at(3), side="sell", type="market", qty="0.01")
    assert closing.status is OrderStatus.FILLED


def test_client_max_leverage(risky, place, at) -> None:
    engine = risky(profile(max_leverage=D(3)))  # the account runs 5x
    order, _ = place(engine, at(1), qty="0.001", price="59000.0")
    rejected(order, R.LEVERAGE_TOO_HIGH,
             "the account's BTC-PERP leverage 5x is above the client's limit 3x; lower it "
             "first")


def test_strategies_are_rate_limited_on_the_engine_clock(risky, place, at) -> None:
    engine = risky(profile(orders_per_second=3, orders_per_minute=4))
    tags = OrderTags(strategy="s1")
    sent = [place(engine, at(1), qty="0.001", price="59000.0", tags=tags)[0]
            for _ in range(4)]
    assert [o.status for o in sent[:3]] == [OrderStatus.ACCEPTED] * 3
    rejected(sent[3], R.RATE_LIMITED,
             "more than 3 orders a second for demo; retry in 1.000 s")
    later, _ = place(engine, at(2), qty="0.001", price="59000.0", tags=tags)
    assert later.status is OrderStatus.ACCEPTED  # a new second, the 4th of the minute
    again, _ = place(engine, at(3), qty="0.001", price="59000.0", tags=tags)
    rejected(again, R.RATE_LIMITED,
             "more than 4 orders a minute for demo; retry in 58.000 s")
    api, _ = place(engine, at(3), qty="0.001", price="59000.0")  # not a strategy's
    assert api.status is OrderStatus.ACCEPTED


def test_strategy_default_rate_is_seed_004s(risky, place, at) -> None:
    engine = risky(profile())
    tags = OrderTags(strategy="s1")
    sent = [place(engine, at(1), qty="0.001", price="59000.0", tags=tags)[0]
            for _ in range(6)]
    assert [o.status for o in sent].count(OrderStatus.ACCEPTED) == 5
    assert sent[5].reject_code == R.RATE_LIMITED


def test_engine_orders_ignore_client_limits(risky, place, at, market) -> None:
    """Liquidation and close-all must get out whatever the limits on getting in."""
    engine = risky(profile(max_order_qty=D("0.001"), price_band_pct=D(1)))
    engine.handle(SetRiskProfile("demo", UNLIMITED, "open"), at(1))
    place(engine, at(1), type="market", qty="0.5")
    engine.handle(SetRiskProfile("demo", profile(max_order_qty=D("0.001")), "tight"), at(2))
    from app.domain.commands import CloseAll
    events = engine.handle(CloseAll(Scope("demo", "paper-binance"), "flatten"), at(3))
    assert engine.state.positions[("demo", "paper-binance", "BTC-PERP")].qty == 0, events


# ---- sizing ------------------------------------------------------------------------------------

ASKS = [("60000.1", "0.1"), ("60010.0", "0.1"), ("60100.0", "1"), ("61000.0", "5")]
BIDS = [("60000.0", "1"), ("59900.0", "5")]
MID = (D("60000.0") + D("60000.1")) / 2


def hand_impact(qty: D) -> D:
    """Walk ASKS by hand: |vwap - mid| / mid in bps."""
    left, cost = qty, D(0)
    for price, size in ASKS:
        take = min(left, D(size))
        cost += take * D(price)
        left -= take
    assert left == 0
    return abs(cost / qty - MID) / MID * 10_000


@pytest.fixture
def booked(risky, market, at):
    def make(p: RiskProfile):
        engine = risky(p)
        market.snapshot(engine, at(0), BIDS, ASKS)
        return engine
    return make


def test_strict_rejects_an_order_above_the_impact_limit(booked, place, at) -> None:
    engine = booked(profile(sizing=SizingPolicy(SizingMode.STRICT, max_impact_bps=D(5))))
    order, _ = place(engine, at(1), type="market", qty="1")
    rejected(order, R.IMPACT_TOO_HIGH,
             f"expected impact {hand_impact(D(1)):.1f} bps is above 5 bps")
    fits, _ = place(engine, at(1), type="market", qty="0.2")
    assert fits.status is OrderStatus.FILLED and hand_impact(D("0.2")) <= 5


def test_conservative_downsizes_to_the_largest_size_within_the_limit(booked, place,
                                                                     at) -> None:
    engine = booked(profile(sizing=SizingPolicy(SizingMode.CONSERVATIVE,
                                                max_impact_bps=D(5))))
    order, events = place(engine, at(1), type="market", qty="1")
    sized = next(e for e in events if isinstance(e, OrderSizedDown))
    assert (sized.requested_qty, sized.qty, sized.max_impact_bps) == (D(1), order.spec.qty,
                                                                      D(5))
    assert order.requested_qty == D(1) and order.status is OrderStatus.FILLED
    assert hand_impact(order.spec.qty) <= 5 < hand_impact(order.spec.qty + D("0.001") * 20)
    assert sized.impact_bps == hand_impact(order.spec.qty).quantize(D("0.01"))
    assert sized.requested_impact_bps == hand_impact(D(1))


def test_aggressive_allows_the_higher_cap(booked, place, at) -> None:
    engine = booked(profile(sizing=SizingPolicy(SizingMode.AGGRESSIVE, max_impact_bps=D(5),
                                                aggressive_max_impact_bps=D(50))))
    order, events = place(engine, at(1), type="market", qty="1")
    assert order.spec.qty == D(1) and not any(isinstance(e, OrderSizedDown) for e in events)


def test_an_order_may_ask_for_its_own_sizing(booked, at) -> None:
    engine = booked(profile())
    spec = _spec(type="market", qty="1")
    events = engine.handle(SubmitOrder(spec, sizing=SizingRequest(SizingMode.STRICT, D(5))),
                           at(1))
    assert [e.code for e in events if isinstance(e, OrderRejected)] == [R.IMPACT_TOO_HIGH]


def test_strategies_size_conservatively_by_default(booked, place, at) -> None:
    engine = booked(profile())  # the client's mode is NONE
    order, events = place(engine, at(1), type="market", qty="6",
                          tags=OrderTags(strategy="s1"))
    assert any(isinstance(e, OrderSizedDown) for e in events)
    assert hand_impact(order.spec.qty) <= 50 < hand_impact(D(6))  # seed 003's 50 bps


def test_limit_orders_are_sized_only_for_what_they_take(booked, place, at) -> None:
    engine = booked(profile(sizing=SizingPolicy(SizingMode.STRICT, max_impact_bps=D(5))))
    # Takes the first two levels (impact under 1 bp); the rest rests at 60010.0.
    order, _ = place(engine, at(1), qty="1", price="60010.0")
    assert order.status is OrderStatus.PARTIALLY_FILLED and order.filled_qty == D("0.2")


def test_sizing_math_equals_a_hand_walk() -> None:
    depth = Depth.of((D(p), D(s)) for p, s in ASKS)
    for qty in ("0.05", "0.1", "0.15", "0.2", "0.7", "1.2", "6.2"):
        assert impact_bps(depth, D(qty), MID) == hand_impact(D(qty))
    assert impact_bps(depth, D("6.3"), MID) is None  # more than the book
    best = largest_within(depth, MID, D(5), D(1), D("0.001"))
    # The largest multiple of the step within the limit: one step more breaks it.
    assert hand_impact(best) <= 5 < hand_impact(best + D("0.001"))
    assert largest_within(depth, MID, D(5), D("0.2"), D("0.001")) == D("0.2")  # fits whole


def _spec(**fields):
    from tests.engine.conftest import make_spec
    return make_spec(**fields)


# ---- liquidity filters ----------------------------------------------------------------------

def test_spread_filter(risky, place, at) -> None:
    engine = risky(profile(sizing=SizingPolicy(max_spread_bps=D("0.01"))))
    order, _ = place(engine, at(1), qty="0.001", price="59000.0")
    rejected(order, R.SPREAD_TOO_WIDE, "the BTC-PERP spread is 0.0 bps; the limit is 0.01 bps")


def test_l1_depth_filter(risky, place, at) -> None:
    engine = risky(profile(sizing=SizingPolicy(min_l1_depth_notional=D(100_000))))
    order, _ = place(engine, at(1), qty="0.001", price="59000.0")
    rejected(order, R.DEPTH_TOO_THIN,
             "the best BTC-PERP level holds 60000.10; at least 100000 is required")


def test_one_minute_volume_filter(risky, place, market, at) -> None:
    engine = risky(profile(sizing=SizingPolicy(min_volume_1m_notional=D(5000))))
    order, _ = place(engine, at(1), qty="0.001", price="59000.0")
    rejected(order, R.VOLUME_TOO_LOW,
             "0.00 of BTC-PERP traded in the last minute; at least 5000 is required")
    market.trade(engine, at(2), "60000.0", "0.1", "sell")  # 6000 traded
    ok, _ = place(engine, at(3), qty="0.001", price="59000.0")
    assert ok.status is OrderStatus.ACCEPTED
    stale, _ = place(engine, at(63), qty="0.001", price="59000.0")
    assert stale.reject_code == R.VOLUME_TOO_LOW


def test_filters_do_not_block_exits(risky, place, at) -> None:
    engine = risky(profile())
    place(engine, at(1), type="market", qty="0.01")
    engine.handle(SetRiskProfile("demo", profile(sizing=SizingPolicy(
        max_spread_bps=D("0.01"), min_volume_1m_notional=D(10**9))), "thin"), at(2))
    closing, _ = place(engine, at(3), side="sell", type="market", qty="0.01")
    assert closing.status is OrderStatus.FILLED


# ---- circuit breakers --------------------------------------------------------------------------

def losing_round_trip(engine, place, market, at, t: int) -> None:
    """Buy at the ask, sell at the bid: a small loss plus fees."""
    place(engine, at(t), type="market", qty="0.01")
    market.quote(engine, at(t))
    place(engine, at(t), side="sell", type="market", qty="0.01")
    market.quote(engine, at(t))


def test_consecutive_losses_trip_to_reduce_only_and_reset(risky, place, market, at) -> None:
    engine = risky(profile(breakers=BreakerPolicy(consecutive_losses=3, daily_loss_pct=None,
                                                  max_drawdown_pct=None)))
    events = []
    for t in (1, 2, 3):
        events = []
        place(engine, at(t), type="market", qty="0.01")
        market.quote(engine, at(t))
        _, events = place(engine, at(t), side="sell", type="market", qty="0.01")
        market.quote(engine, at(t))
    trip = next(e for e in events if isinstance(e, BreakerTripped))
    assert (trip.breaker, trip.state) == (Breaker.CONSECUTIVE_LOSSES, TradingState.REDUCE_ONLY)
    assert dict(trip.figures) == {"consecutive_losses": "3", "limit": "3"}
    change = next(e for e in events if isinstance(e, TradingStateChanged))
    assert (change.scope, change.state, change.actor) == (
        CLIENT_SCOPE, TradingState.REDUCE_ONLY, "breaker:consecutive_losses")
    assert change.reason.startswith("SAFETY_CONSECUTIVE_LOSSES: 3 losing trades in a row")
    entry, _ = place(engine, at(4), type="market", qty="0.01")
    assert entry.reject_code == R.TRADING_REDUCE_ONLY

    events = engine.handle(ResetBreaker("demo", Breaker.CONSECUTIVE_LOSSES, "reviewed",
                                        "ops"), at(5))
    assert [type(e) for e in events] == [BreakerReset, TradingStateChanged]
    assert engine.state.risk["demo"].consecutive_losses == 0
    assert engine.trading_state("demo", "paper-binance")[0] is TradingState.ACTIVE
    with pytest.raises(CommandRefused) as refused:
        engine.handle(ResetBreaker("demo", Breaker.CONSECUTIVE_LOSSES, "again"), at(6))
    assert refused.value.code == R.BREAKER_NOT_TRIPPED


def test_a_win_ends_the_losing_streak(risky, place, market, at) -> None:
    engine = risky(profile(breakers=BreakerPolicy(consecutive_losses=2, daily_loss_pct=None,
                                                  max_drawdown_pct=None)))
    losing_round_trip(engine, place, market, at, 1)
    place(engine, at(2), type="market", qty="0.01")
    market.quote(engine, at(3), bid="61000.0", ask="61000.1")
    place(engine, at(3), side="sell", type="market", qty="0.01")  # a win
    assert engine.state.risk["demo"].consecutive_losses == 0
    losing_round_trip(engine, place, market, at, 4)
    assert not engine.state.risk["demo"].tripped


def test_drawdown_from_peak_equity_trips_on_marks(risky, place, market, at) -> None:
    engine = risky(profile(breakers=BreakerPolicy(None, None, max_drawdown_pct=D(5))))
    place(engine, at(1), type="market", qty="0.5")  # 30000 notional on 20000 equity
    market.mark(engine, at(2), "61000.0")  # a new peak (~20500)
    peak = engine.state.risk["demo"].peak_equity
    assert peak is not None and peak > D(20400)
    events = market.mark(engine, at(3), "58000.0")  # equity ~19000: 7 % down
    trip = next(e for e in events if isinstance(e, BreakerTripped))
    assert trip.breaker is Breaker.DRAWDOWN
    assert dict(trip.figures)["peak_equity"] == f"{peak:.2f}"
    assert engine.trading_state("demo", "paper-binance")[0] is TradingState.REDUCE_ONLY


def test_marks_are_evaluated_at_most_once_a_second(risky, place, market, at) -> None:
    engine = risky(profile(breakers=BreakerPolicy(None, None, max_drawdown_pct=D(5))))
    place(engine, at(1), type="market", qty="0.5")
    market.mark(engine, at(2), "60000.0")
    events = market.mark(engine, at(2.5), "50000.0")  # within the second: not yet
    assert not any(isinstance(e, BreakerTripped) for e in events)
    events = market.mark(engine, at(3), "50000.0")
    assert any(isinstance(e, BreakerTripped) for e in events)


def test_daily_loss_halts_when_configured_and_a_new_day_starts_afresh(risky, place, market,
                                                                      at) -> None:
    policy = BreakerPolicy(None, daily_loss_pct=D(5), max_drawdown_pct=None,
                           halt_on=(Breaker.DAILY_LOSS,))
    engine = risky(profile(breakers=policy))
    place(engine, at(1), type="market", qty="0.5")
    market.mark(engine, at(2), "60000.0")
    day = engine.state.risk["demo"].day
    # Four percent down today: below the limit.
    events = market.mark(engine, at(3), "58400.0")
    assert not any(isinstance(e, BreakerTripped) for e in events)
    # The next UTC day opens at this equity: the same fall is measured from here.
    tomorrow = 24 * 3600
    events = market.mark(engine, at(tomorrow), "58400.0")
    assert next(e for e in events if isinstance(e, RiskStateRecorded)).day != day
    events = market.mark(engine, at(tomorrow + 2), "56000.0")  # 4 % more: 6 % of today's
    trip = next(e for e in events if isinstance(e, BreakerTripped))
    assert (trip.breaker, trip.state) == (Breaker.DAILY_LOSS, TradingState.HALTED)
    assert engine.trading_state("demo", "paper-binance")[0] is TradingState.HALTED


def test_deposits_and_withdrawals_are_not_losses(risky, place, market, at) -> None:
    from app.domain.commands import Withdraw
    engine = risky(profile(breakers=BreakerPolicy(None, D(5), D(5))))
    place(engine, at(1), type="market", qty="0.01")
    market.mark(engine, at(2), "60000.0")
    engine.handle(Withdraw("demo", "paper-binance", D(5000)), at(3))  # a quarter leaves
    events = market.mark(engine, at(4), "60000.0")
    assert not any(isinstance(e, BreakerTripped) for e in events)


def test_session_trades_and_runtime(risky, place, market, at) -> None:
    engine = risky(profile(breakers=BreakerPolicy(None, None, None, session_max_trades=2,
                                                  session_max_runtime_minutes=10)))
    losing_round_trip(engine, place, market, at, 1)
    assert not engine.state.risk["demo"].tripped
    losing_round_trip(engine, place, market, at, 2)
    assert set(engine.state.risk["demo"].tripped) == {Breaker.SESSION_TRADES}
    engine.handle(ResetBreaker("demo", Breaker.SESSION_TRADES, "new session"), at(3))
    assert engine.state.risk["demo"].session_trades == 0
    events = engine.advance(at(3 + 600))
    assert [e.breaker for e in events if isinstance(e, BreakerTripped)] == [
        Breaker.SESSION_RUNTIME]


def test_an_operators_halt_is_never_softened_by_a_trip(risky, place, market, at) -> None:
    from app.domain.commands import SetTradingState
    engine = risky(profile(breakers=BreakerPolicy(None, None, max_drawdown_pct=D(5))))
    place(engine, at(1), type="market", qty="0.5")
    market.mark(engine, at(2), "60000.0")
    engine.handle(SetTradingState(CLIENT_SCOPE, TradingState.HALTED, "ops", "ops"), at(3))
    events = market.mark(engine, at(4), "55000.0")
    assert any(isinstance(e, BreakerTripped) for e in events)  # recorded...
    assert engine.trading_state("demo", "paper-binance")[0] is TradingState.HALTED  # ...held


def test_trips_and_risk_state_survive_a_replay(risky, make_engine, place, market,
                                               at) -> None:
    p = profile(breakers=BreakerPolicy(consecutive_losses=2, daily_loss_pct=D(5),
                                       max_drawdown_pct=D(10)))
    engine = risky(p)
    log = []
    original_handle = engine.handle

    def handle(command, now):
        events = original_handle(command, now)
        log.extend(events)
        return events
    engine.handle = handle
    for t in (1, 2):
        log.extend(market.quote(engine, at(t)))
        place(engine, at(t), type="market", qty="0.01")
        place(engine, at(t), side="sell", type="market", qty="0.01")
    engine.handle(SetRiskProfile("demo", replace(p, max_order_qty=D(1)), "tighter"), at(3))
    assert Breaker.CONSECUTIVE_LOSSES in engine.state.risk["demo"].tripped

    rebuilt = make_engine(risk_profile=p, deposits={})
    from app.domain.events import FundsDeposited
    rebuilt.replay([FundsDeposited("demo", "paper-binance", D(20000), at(0)), *log])
    assert rebuilt.state.risk == engine.state.risk
    assert rebuilt.state.risk_profiles == engine.state.risk_profiles
    assert rebuilt.risk.profile("demo").max_order_qty == D(1)
    assert rebuilt.trading_state("demo", "paper-binance")[0] is TradingState.REDUCE_ONLY
    # Re-evaluated after the restart, it does not trip twice.
    market.quote(rebuilt, at(4))
    events = market.mark(rebuilt, at(5), "60000.0")
    assert not any(isinstance(e, BreakerTripped) for e in events)


def test_set_risk_profile_refuses_an_unknown_client(engine, at) -> None:
    with pytest.raises(CommandRefused) as refused:
        engine.handle(SetRiskProfile("nobody", UNLIMITED, "x"), at(1))
    assert refused.value.code == R.UNKNOWN_ACCOUNT
