"""Margin windows (seed 003): a venue's time-of-day requirements, followed on the
engine clock — transitions recorded with margin snapshots, warnings ahead of a window
beyond an account's headroom, and the window's requirements in pre-trade checks."""

from __future__ import annotations

from datetime import time, timedelta
from decimal import Decimal as D

from app.domain.events import FundsDeposited, PositionLiquidated
from app.domain.orders import OrderStatus
from app.domain.rejections import RejectCode
from app.domain.risk import MarginWindow, MarginWindowChanged, MarginWindowWarning

# T0 is 2024-01-01 00:00 UTC: overnight (from 21:00 to 09:00) asks twice the margin.
OVERNIGHT = MarginWindow("overnight", time(21, 0), time(9, 0), D(2), D("1.5"))
VENUE = "paper-binance"


def windowed(make_engine, market, at):
    engine = make_engine(margin_windows={VENUE: (OVERNIGHT,)})
    market.quote(engine, at(0))
    market.mark(engine, at(0), "60000.0")
    return engine


def hours(h: float) -> float:
    return h * 3600


def test_a_transition_is_recorded_with_margin_snapshots(make_engine, market, place,
                                                        at) -> None:
    engine = windowed(make_engine, market, at)
    # The first look at the clock: T0 is overnight.
    events = engine.advance(at(1))
    [start] = [e for e in events if isinstance(e, MarginWindowChanged)]
    assert (start.previous, start.current, start.initial_multiplier) == (
        None, "overnight", D(2))
    place(engine, at(2), type="market", qty="0.5")  # 30000 at 5x: 6000, doubled: 12000
    overnight = engine.summary("demo", VENUE)
    assert overnight.margin_used == D("0.5") * D("60000.0") / 5 * 2  # at the mark
    events = engine.advance(at(hours(9)))
    [end] = [e for e in events if isinstance(e, MarginWindowChanged)]
    assert (end.previous, end.current) == ("overnight", None)
    [snapshot] = end.snapshots
    assert snapshot.client == "demo"
    # Utilization halves (to the 4 places a snapshot keeps).
    assert abs(snapshot.utilization_after * 2 - snapshot.utilization_before) <= D("0.0001")
    assert snapshot.utilization_before == (overnight.margin_used / snapshot.equity).quantize(
        D("0.0001"))
    assert engine.summary("demo", VENUE).margin_used == overnight.margin_used / 2
    assert not [e for e in engine.advance(at(hours(9) + 5)) if
                isinstance(e, MarginWindowChanged)]  # once per transition


def test_pre_trade_checks_apply_the_window(make_engine, market, place, at) -> None:
    engine = windowed(make_engine, market, at)
    engine.advance(at(hours(10)))  # daytime: base requirements
    order, _ = place(engine, at(hours(10)), qty="1.2", price="59000.0")  # 14160 of 20000
    assert order.status is OrderStatus.ACCEPTED
    engine.advance(at(hours(21)))  # overnight: twice that no longer fits
    again, _ = place(engine, at(hours(21) + 1), qty="1.2", price="59000.0")
    assert again.reject_code == RejectCode.INSUFFICIENT_MARGIN


def test_a_warning_ahead_of_a_window_beyond_the_headroom(make_engine, market, place,
                                                         at) -> None:
    engine = windowed(make_engine, market, at)
    engine.advance(at(hours(10)))
    market.quote(engine, at(hours(10)))
    order, _ = place(engine, at(hours(10)), type="market", qty="1")
    assert order.status is OrderStatus.FILLED  # 12000 of 20000 now; 24000 then
    early = engine.advance(at(hours(20) + 40 * 60))  # 20 minutes ahead: not yet
    assert not [e for e in early if isinstance(e, MarginWindowWarning)]
    events = engine.advance(at(hours(20) + 46 * 60))  # 14 minutes ahead
    [warning] = [e for e in events if isinstance(e, MarginWindowWarning)]
    assert (warning.client, warning.window) == ("demo", "overnight")
    assert warning.starts_at == at(hours(21))
    assert warning.margin_then == warning.margin_now * 2 > warning.equity
    later = engine.advance(at(hours(20) + 50 * 60))
    assert not [e for e in later if isinstance(e, MarginWindowWarning)]  # once


def test_no_warning_for_an_account_with_headroom(make_engine, market, place, at) -> None:
    engine = windowed(make_engine, market, at)
    engine.advance(at(hours(10)))
    market.quote(engine, at(hours(10)))
    order, _ = place(engine, at(hours(10)), type="market", qty="0.1")
    assert order.status is OrderStatus.FILLED
    events = engine.advance(at(hours(20) + 50 * 60))
    assert not [e for e in events if isinstance(e, MarginWindowWarning)]


def test_the_window_in_force_survives_a_replay(make_engine, market, at) -> None:
    engine = windowed(make_engine, market, at)
    events = engine.advance(at(1))
    rebuilt = make_engine(margin_windows={VENUE: (OVERNIGHT,)}, deposits={})
    rebuilt.replay([FundsDeposited("demo", VENUE, D(20000), at(0)), *events])
    assert rebuilt.state.margin_windows == {VENUE: "overnight"}
    assert rebuilt.margin.multipliers(VENUE) == (D(2), D("1.5"))
    market.quote(rebuilt, at(2))
    assert not [e for e in rebuilt.advance(at(3)) if isinstance(e, MarginWindowChanged)]
    # Restarted after the window ended: the change it slept through is recorded.
    later = rebuilt.advance(at(hours(12)))
    assert [e.current for e in later if isinstance(e, MarginWindowChanged)] == [None]


def test_windows_wrap_midnight() -> None:
    from datetime import UTC, datetime
    day = datetime(2024, 1, 1, tzinfo=UTC)
    assert OVERNIGHT.covers(day + timedelta(hours=23))
    assert OVERNIGHT.covers(day + timedelta(hours=3))
    assert not OVERNIGHT.covers(day + timedelta(hours=9))
    assert not OVERNIGHT.covers(day + timedelta(hours=20, minutes=59))


def test_the_liquidation_price_follows_the_windows_maintenance(make_engine, market, place,
                                                               at) -> None:
    engine = windowed(make_engine, market, at)
    engine.advance(at(hours(10)))  # daytime: base requirements
    market.quote(engine, at(hours(10)))
    place(engine, at(hours(10)), type="market", qty="1")
    base = engine.liquidation_price("demo", VENUE, "BTC-PERP")  # crosses a tier, too
    engine.advance(at(hours(21)))  # overnight: 1.5x the maintenance margin
    overnight = engine.liquidation_price("demo", VENUE, "BTC-PERP")
    assert base is not None and overnight is not None and overnight > base  # closer
    # A tick above it the account stands; at it, equity meets the scaled maintenance
    # margin and the venue liquidates.
    market.quote(engine, at(hours(21) + 1))
    above = market.mark(engine, at(hours(21) + 1), str(overnight + D("0.1")))
    assert not [e for e in above if isinstance(e, PositionLiquidated)]
    at_price = market.mark(engine, at(hours(21) + 3), str(overnight))
    assert [e for e in at_price if isinstance(e, PositionLiquidated)]


def test_the_liquidation_price_is_solved_in_the_tier_it_falls_in(make_engine, market, place,
                                                                 at) -> None:
    """1 BTC at 60,000 sits in the 10x tier (5 %, 1,250); at its liquidation price
    (about 41,600) the notional is back in the 20x tier (2.5 %): the price must be
    solved there, or the account is liquidated above the price shown."""
    engine = make_engine()
    market.quote(engine, at(1))
    market.mark(engine, at(1), "60000.0")
    place(engine, at(1), type="market", qty="1")
    price = engine.liquidation_price("demo", VENUE, "BTC-PERP")
    assert price is not None
    market.quote(engine, at(2))
    above = market.mark(engine, at(2), str(price + D("0.1")))
    assert not [e for e in above if isinstance(e, PositionLiquidated)]
    at_price = market.mark(engine, at(4), str(price))
    assert [e for e in at_price if isinstance(e, PositionLiquidated)]
