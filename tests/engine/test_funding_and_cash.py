"""Funding settlement, deposits and withdrawals, and the wallet reconciliation.

Funding: amount = -(qty × mark × rate) per open perp position when the clock
reaches funding_at (positive rate: longs pay, shorts receive).
Wallet = deposits - withdrawals + realized - fees + funding, exactly.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from app.domain.commands import Deposit, Withdraw
from app.domain.events import FundingApplied, FundingSettled, FundsDeposited, FundsWithdrawn
from app.domain.rejections import CommandRefused, RejectCode
from app.engine.engine import AccountSetup

R = RejectCode
HOUR = timedelta(hours=1)


def funding_by_client(events) -> dict[str, Decimal]:
    return {e.client: e.amount for e in events if isinstance(e, FundingApplied)}


def payments(events):
    """The funding payments among ``events`` (a settlement also records FundingSettled)."""
    return [e for e in events if isinstance(e, FundingApplied)]


@pytest.fixture
def long_and_short(make_engine, market, place, t0, at):
    """demo long 0.5 (bought 60000.1, fee 15.000025), other short 0.5 (sold 60000.0,
    fee 15.0), both on BTC-PERP; mark 60000.0."""
    engine = make_engine(extra_accounts=[AccountSetup("other", "paper-binance", Decimal(5))])
    market.quote(engine, t0)
    market.mark(engine, t0, "60000.0")
    place(engine, at(1), type="market", qty="0.5")
    place(engine, at(1), client="other", side="sell", type="market", qty="0.5")
    market.quote(engine, at(2))
    return engine


def test_announced_funding_settles_when_a_later_quote_reaches_funding_at(long_and_short,
                                                                         market, t0,
                                                                         at) -> None:
    engine = long_and_short
    assert market.funding(engine, at(3), "0.0001", t0 + HOUR) == []
    assert market.quote(engine, t0 + HOUR - timedelta(seconds=1)) == []
    events = market.quote(engine, t0 + HOUR)
    assert [e for e in events if isinstance(e, FundingSettled)] == [
        FundingSettled("paper-binance", "BTC-PERP", Decimal("0.0001"), Decimal("60000.0"),
                       t0 + HOUR, t0 + HOUR)]
    assert sorted(payments(events), key=lambda e: e.client) == [
        FundingApplied("demo", "paper-binance", "BTC-PERP", Decimal("0.5"), Decimal("60000.0"),
                       Decimal("0.0001"), Decimal(-3), t0 + HOUR),
        FundingApplied("other", "paper-binance", "BTC-PERP", Decimal("-0.5"),
                       Decimal("60000.0"), Decimal("0.0001"), Decimal(3), t0 + HOUR),
    ]
    demo = engine.state.accounts[("demo", "paper-binance")]
    other = engine.state.accounts[("other", "paper-binance")]
    assert (demo.funding, demo.wallet) == (Decimal(-3), Decimal("19981.999975"))
    assert (other.funding, other.wallet) == (Decimal(3), Decimal("19988.0"))
    assert engine.state.positions[("demo", "paper-binance", "BTC-PERP")].funding == -3


def test_announced_funding_settles_on_advance(long_and_short, market, t0, at) -> None:
    engine = long_and_short
    market.funding(engine, at(3), "0.0001", t0 + HOUR)
    assert engine.advance(t0 + HOUR - timedelta(microseconds=1)) == []
    assert funding_by_client(engine.advance(t0 + HOUR)) == {
        "demo": Decimal(-3), "other": Decimal(3)}
    assert engine.advance(t0 + 2 * HOUR) == []  # settled once


def test_negative_rate_shorts_pay_longs_receive(long_and_short, market, t0, at) -> None:
    engine = long_and_short
    market.funding(engine, at(3), "-0.0002", t0 + HOUR)
    assert funding_by_client(engine.advance(t0 + HOUR)) == {
        "demo": Decimal(6), "other": Decimal(-6)}


def test_mark_falls_back_to_the_book_mid(make_engine, market, place, t0, at) -> None:
    engine = make_engine()
    market.quote(engine, t0)
    place(engine, at(1), type="market", qty="0.5")
    market.quote(engine, at(2))
    market.funding(engine, at(3), "0.0001", t0 + HOUR)
    (event,) = payments(engine.advance(t0 + HOUR))
    assert event.mark == Decimal("60000.05")
    assert event.amount == Decimal("-3.0000025")  # 0.5 × 60000.05 × 0.0001


def test_a_settlement_print_in_the_past_applies_at_once(long_and_short, market, t0,
                                                        at) -> None:
    engine = long_and_short
    events = market.funding(engine, at(10), "0.0001", at(5))
    assert funding_by_client(events) == {"demo": Decimal(-3), "other": Decimal(3)}
    assert all(e.at == at(10) for e in events)


def test_no_funding_for_flat_positions(long_and_short, make_engine, market, place, t0,
                                       at) -> None:
    engine = long_and_short
    place(engine, at(3), client="other", side="buy", type="market", qty="0.5")  # other flat
    market.funding(engine, at(4), "0.0001", t0 + HOUR)
    assert funding_by_client(engine.advance(t0 + HOUR)) == {"demo": Decimal(-3)}
    assert engine.state.accounts[("other", "paper-binance")].funding == 0

    untouched = make_engine()  # an account that never traded
    market.quote(untouched, t0)
    market.funding(untouched, at(1), "0.0001", t0 + HOUR)
    settled = untouched.advance(t0 + HOUR)
    assert payments(settled) == []
    assert [type(e) for e in settled] == [FundingSettled]  # recorded, nobody charged


def test_the_position_at_funding_time_is_what_pays(make_engine, market, place, t0,
                                                   at) -> None:
    engine = make_engine()
    market.quote(engine, t0)
    market.mark(engine, t0, "60000.0")
    market.funding(engine, at(1), "0.0001", t0 + HOUR)
    market.quote(engine, t0 + HOUR / 2)  # a live book (an hour-old one is stale)
    place(engine, t0 + HOUR / 2, type="market", qty="0.2")  # opened after the announcement
    (event,) = payments(engine.advance(t0 + HOUR))
    assert (event.position_qty, event.amount) == (Decimal("0.2"), Decimal("-1.2"))


def test_no_funding_for_spot(make_engine, make_instrument, market, place, t0, at) -> None:
    spot = make_instrument("BTC-USD", kind="spot")
    engine = make_engine(instruments=[spot])
    market.quote(engine, t0, symbol="BTC-USD")
    bought, _ = place(engine, at(1), symbol="BTC-USD", type="market", qty="0.1")
    assert bought.filled_qty == Decimal("0.1")
    assert market.funding(engine, at(2), "0.0001", t0 + HOUR, symbol="BTC-USD") == []
    assert engine.advance(t0 + HOUR) == []
    assert market.quote(engine, t0 + 2 * HOUR, symbol="BTC-USD") == []
    assert market.funding(engine, t0 + 2 * HOUR, "0.0001", t0 + HOUR, symbol="BTC-USD") == []
    assert engine.state.accounts[("demo", "paper-binance")].funding == 0


def test_a_duplicated_announcement_settles_once(long_and_short, market, t0, at) -> None:
    engine = long_and_short
    market.funding(engine, at(3), "0.0001", t0 + HOUR)
    market.funding(engine, at(4), "0.0001", t0 + HOUR)  # the feed repeats itself
    events = market.quote(engine, t0 + HOUR)
    assert len(payments(events)) == 2 and funding_by_client(events) == {
        "demo": Decimal(-3), "other": Decimal(3)}
    assert sum(isinstance(e, FundingSettled) for e in events) == 1
    # ... and again after it settled, now as a settlement print for a past time
    assert market.funding(engine, t0 + HOUR + timedelta(seconds=1), "0.0001", t0 + HOUR) == []
    assert engine.advance(t0 + 3 * HOUR) == []
    assert engine.state.accounts[("demo", "paper-binance")].funding == -3


def test_successive_periods_each_settle(long_and_short, market, t0, at) -> None:
    engine = long_and_short
    market.funding(engine, at(3), "0.0001", t0 + HOUR)
    engine.advance(t0 + HOUR)
    market.funding(engine, t0 + HOUR, "0.0002", t0 + 9 * HOUR)
    assert engine.advance(t0 + 8 * HOUR) == []
    assert funding_by_client(engine.advance(t0 + 9 * HOUR)) == {
        "demo": Decimal(-6), "other": Decimal(6)}
    assert engine.state.accounts[("demo", "paper-binance")].funding == -9


# ---- cash -------------------------------------------------------------------------------


def test_deposit_and_withdraw_events(engine, at) -> None:
    events = engine.handle(Deposit("demo", "paper-binance", Decimal("1000.5"), actor="treasury"),
                           at(1))
    assert events == [FundsDeposited("demo", "paper-binance", Decimal("1000.5"), at(1),
                                     "treasury")]
    events = engine.handle(Withdraw("demo", "paper-binance", Decimal("250.25")), at(2))
    assert events == [FundsWithdrawn("demo", "paper-binance", Decimal("250.25"), at(2))]
    account = engine.state.accounts[("demo", "paper-binance")]
    assert (account.deposits, account.withdrawals, account.wallet) == (
        Decimal("21000.5"), Decimal("250.25"), Decimal("20750.25"))


@pytest.mark.parametrize("command", [
    Deposit("demo", "paper-binance", Decimal(0)),
    Deposit("demo", "paper-binance", Decimal("-1")),
    Withdraw("demo", "paper-binance", Decimal(0)),
    Withdraw("demo", "paper-binance", Decimal("-1")),
])
def test_non_positive_amounts_are_refused(command, engine, at) -> None:
    with pytest.raises(CommandRefused) as info:
        engine.handle(command, at(1))
    assert info.value.code is R.INVALID_AMOUNT
    assert "must be positive" in info.value.rejection.message
    assert engine.state.accounts[("demo", "paper-binance")].wallet == 20000


def test_withdrawal_is_limited_to_available_capital(quoted_engine, market, place, t0,
                                                    at) -> None:
    engine = quoted_engine
    market.mark(engine, t0, "60000.0")
    place(engine, at(1), type="market", qty="0.5")
    # wallet 20000 - 15.000025 fee; unrealized 0.5 × (60000.0 - 60000.1) = -0.05;
    # margin 0.5 × 60000 / 5 = 6000  ->  available 13984.949975
    assert engine.summary("demo", "paper-binance").available == Decimal("13984.949975")
    with pytest.raises(CommandRefused) as info:
        engine.handle(Withdraw("demo", "paper-binance", Decimal("13984.95")), at(2))
    assert info.value.code is R.INSUFFICIENT_BALANCE
    assert info.value.rejection.message == "only 13984.95 is available to withdraw"
    # A resting order's margin is not available either: 0.1 × 59000 / 5 = 1180.
    place(engine, at(3), qty="0.1", price="59000.0")
    with pytest.raises(CommandRefused):
        engine.handle(Withdraw("demo", "paper-binance", Decimal("12805")), at(4))
    events = engine.handle(Withdraw("demo", "paper-binance", Decimal("12804.94")), at(5))
    assert [type(e) for e in events] == [FundsWithdrawn]


def test_wallet_reconciles_exactly_after_trades_and_funding(engine, market, place, t0,
                                                            at) -> None:
    market.quote(engine, t0)
    market.mark(engine, t0, "60000.0")
    engine.handle(Deposit("demo", "paper-binance", Decimal(1000)), at(1))
    engine.handle(Withdraw("demo", "paper-binance", Decimal(500)), at(2))
    place(engine, at(3), type="market", qty="0.5")  # 0.5 @ 60000.1, fee 15.000025
    market.funding(engine, at(4), "0.0001", t0 + HOUR)
    market.quote(engine, t0 + HOUR)  # long pays 3
    later = t0 + 2 * HOUR
    market.quote(engine, later, bid="61000.0", ask="61000.1")
    market.mark(engine, later, "61000.0")
    # sell 0.2 @ 61000.0: realized 0.2 × 999.9 = 199.98, fee 6.1
    place(engine, later + timedelta(seconds=1), side="sell", type="market", qty="0.2")

    account = engine.state.accounts[("demo", "paper-binance")]
    summary = engine.summary("demo", "paper-binance")
    assert account.wallet == Decimal("20675.879975")
    assert account.wallet == account.expected_wallet
    assert summary.unrealized_pnl == Decimal("299.97")  # 0.3 × (61000.0 - 60000.1)
    assert summary.equity == summary.wallet + summary.unrealized_pnl == Decimal("20975.849975")

    market.funding(engine, later + timedelta(seconds=2), "-0.0002", t0 + 9 * HOUR)
    assert funding_by_client(engine.advance(t0 + 9 * HOUR)) == {"demo": Decimal("3.66")}
    market.quote(engine, t0 + 9 * HOUR, bid="61000.0", ask="61000.1")
    # sell 0.3 @ 61000.0: realized 299.97, fee 9.15
    place(engine, t0 + 9 * HOUR + timedelta(seconds=1), side="sell", type="market", qty="0.3")

    assert (account.deposits, account.withdrawals, account.realized_pnl, account.fees,
            account.funding) == (Decimal(21000), Decimal(500), Decimal("499.95"),
                                 Decimal("30.250025"), Decimal("0.66"))
    assert account.wallet == Decimal("20970.359975")
    assert account.wallet == (account.deposits - account.withdrawals + account.realized_pnl
                              - account.fees + account.funding)
    summary = engine.summary("demo", "paper-binance")
    assert summary.equity == summary.wallet == Decimal("20970.359975")
    (trade,) = engine.state.closed_trades
    assert (trade.realized_pnl, trade.fees, trade.funding, trade.net_pnl) == (
        Decimal("499.95"), Decimal("30.250025"), Decimal("0.66"), Decimal("470.359975"))


def test_a_revised_rate_for_the_same_time_settles_once_at_the_latest_rate(long_and_short,
                                                                          market, t0,
                                                                          at) -> None:
    engine = long_and_short
    market.funding(engine, at(3), "0.0001", t0 + HOUR)
    market.funding(engine, at(4), "0.0002", t0 + HOUR)  # predicted rate moved
    assert funding_by_client(engine.advance(t0 + HOUR)) == {
        "demo": Decimal(-6), "other": Decimal(6)}
    later = engine.advance(t0 + 9 * HOUR)
    assert payments(later) == []  # settled once; the 08:00 instant had no rate at all:
    assert [(type(e).__name__, e.funding_at) for e in later] == [
        ("FundingRateMissing", t0 + 8 * HOUR)]


def test_two_periods_announced_ahead_both_settle(long_and_short, market, t0, at) -> None:
    engine = long_and_short
    market.funding(engine, at(3), "0.0001", t0 + HOUR)
    market.funding(engine, at(4), "0.0002", t0 + 9 * HOUR)  # the next period, already known
    assert funding_by_client(engine.advance(t0 + HOUR)) == {
        "demo": Decimal(-3), "other": Decimal(3)}
    assert funding_by_client(engine.advance(t0 + 9 * HOUR)) == {
        "demo": Decimal(-6), "other": Decimal(6)}


# ---- funding on the schedule ------------------------------------------------------------


def test_a_late_rate_charges_the_positions_of_its_instant_not_of_now(
        make_engine, market, place, t0, at) -> None:
    """The 08:00 rate arrives 30 s late. demo was long at 08:00 and pays at the 08:00
    mark; other opened after 08:00 and pays nothing for it."""
    engine = make_engine(extra_accounts=[AccountSetup("other", "paper-binance", Decimal(5))])
    market.quote(engine, t0)
    market.mark(engine, t0, "60000.0")
    place(engine, at(1), type="market", qty="0.5")
    eight = t0 + 8 * HOUR
    market.mark(engine, eight, "61000.0")  # the instant passes: demo long 0.5 at 61000.0
    market.quote(engine, eight)
    market.quote(engine, eight + timedelta(seconds=10))
    market.mark(engine, eight + timedelta(seconds=10), "62000.0")
    place(engine, eight + timedelta(seconds=10), client="other", type="market", qty="0.5")
    events = market.funding(engine, eight + timedelta(seconds=30), "0.0001",
                            eight + timedelta(milliseconds=17))
    assert funding_by_client(events) == {"demo": -(Decimal("0.5") * Decimal("61000.0")
                                                   * Decimal("0.0001"))}
    settled = [e for e in events if type(e).__name__ == "FundingSettled"]
    assert [(e.funding_at, e.mark) for e in settled] == [(eight, Decimal("61000.0"))]
    # nothing is reported missing, and nothing settles twice
    assert engine.advance(eight + 2 * timedelta(minutes=1)) == []


def test_a_missing_rate_is_reported_and_a_later_rate_still_charges_its_instant(
        make_engine, market, place, t0, at) -> None:
    from app.domain.events import FundingPosition, FundingRateMissing
    from app.engine.state import EngineState

    engine = make_engine()
    log: list = []
    log += market.quote(engine, t0)
    log += market.mark(engine, t0, "60000.0")
    _, placed = place(engine, at(1), type="market", qty="0.5")
    log += placed
    eight = t0 + 8 * HOUR
    log += market.mark(engine, eight, "61000.0")
    late = engine.advance(eight + 2 * timedelta(minutes=1))
    assert late == [FundingRateMissing("paper-binance", "BTC-PERP", eight, Decimal("61000.0"),
                                       (FundingPosition("demo", Decimal("0.5")),),
                                       eight + 2 * timedelta(minutes=1))]
    log += late
    place(engine, eight + timedelta(minutes=3), side="sell", type="market", qty="0.5")
    events = market.funding(engine, eight + timedelta(minutes=5), "0.0002", eight)
    assert funding_by_client(events) == {"demo": -(Decimal("0.5") * Decimal("61000.0")
                                                   * Decimal("0.0002"))}
    assert engine.state.funding_unpriced == {}
    # the report is in the log: a replayed state knows the instant's positions too
    replayed = EngineState()
    for e in log:
        if isinstance(e, FundingRateMissing):
            replayed.apply(e)
    assert ("paper-binance", "BTC-PERP", eight) in replayed.funding_unpriced


def test_the_schedule_shows_the_next_instant_and_the_predicted_rate(
        make_engine, market, t0, at) -> None:
    engine = make_engine()
    market.quote(engine, at(1))
    assert engine.funding_schedule("paper-binance", "BTC-PERP") == (None, t0 + 8 * HOUR)
    market.funding(engine, at(2), "0.0003", t0 + 8 * HOUR)
    assert engine.funding_schedule("paper-binance", "BTC-PERP") == (
        Decimal("0.0003"), t0 + 8 * HOUR)


@pytest.mark.parametrize("hours", [1, 4, 8])
def test_instants_fall_on_the_hour_every_interval(hours: int, t0) -> None:
    from app.engine.engine import _next_instant

    interval = timedelta(hours=hours)
    start = t0 + timedelta(minutes=7)
    first = _next_instant(start, interval)
    assert first > start and first - start <= interval
    assert first.minute == first.second == first.microsecond == 0
    assert first.hour % hours == 0
