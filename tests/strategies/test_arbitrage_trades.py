"""The funding-rate arbitrage's trades end to end on the engine, two paper venues and
the strategy host: entry with per-fill hedging, leg-outs, exits, kill switches,
restarts (seed 001)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

from app.domain.arbitrage import ArbStatus, ArbTradeUpdated, LegOutDetected, OrderRole
from app.domain.commands import SetTradingState
from app.domain.events import OrderFilled
from app.domain.orders import Liquidity, Side
from app.domain.strategies import StopStrategy
from app.domain.trading_state import Scope, TradingState
from app.simulate import ARB_CLIENT, ARB_STRATEGY
from app.strategies.host import StrategyHost
from app.venues.paper.venue import PaperVenueConfig
from tests.strategies.arb_support import A, B, TwoVenues, diverging


def pending(m: TwoVenues):
    (trade,) = m.book.open.values()
    assert trade.status is ArbStatus.PENDING
    return trade


def test_the_entry_rests_on_the_harder_venue_and_every_fill_is_hedged_at_once() -> None:
    m = TwoVenues.make()
    # B's book is thinner: it is the harder leg, so the short goes first, on B.
    diverging(m, b=("60000.0", "60000.1"), size="1")
    m.quote(A, "60000.0", "60000.1", size="5")
    m.step(11)
    trade = pending(m)
    assert (trade.long_venue, trade.short_venue, trade.harder_venue) == (A, B, B)
    (entry,) = trade.orders
    assert (entry.venue, entry.side, entry.role) == (B, Side.SELL, OrderRole.ENTRY)
    order = m.engine.state.order_by_client_id(ARB_CLIENT, B, entry.coid)
    assert order is not None and order.spec.post_only and order.spec.price == D("60000.1")
    # Buyers lift B's offer: the queue ahead (1 BTC) goes first, then the entry fills
    # in two parts; each part is hedged on A in the same step, for its amount.
    m.trade(B, "60000.1", "1.05", Side.BUY)
    fills = [e for e in m.of_type(OrderFilled) if e.client == ARB_CLIENT]
    assert [(f.venue, f.side, f.qty) for f in fills] == [
        (B, Side.SELL, D("0.05")), (A, Side.BUY, D("0.05"))]
    assert m.position(A) == -m.position(B) == D("0.05")
    m.trade(B, "60000.1", "1", Side.BUY)
    assert m.position(A) == -m.position(B) == trade.target_qty
    (trade,) = m.book.open.values()
    assert trade.status is ArbStatus.ACTIVE
    assert trade.position_size_usd == (trade.target_qty * D("60000.1")).quantize(D("0.01"))
    maker = [f for f in m.of_type(OrderFilled) if f.venue == B]
    assert all(f.liquidity is Liquidity.MAKER for f in maker)


def test_an_entry_that_does_not_fill_in_time_is_cancelled_and_is_no_trade() -> None:
    m = TwoVenues.make()
    diverging(m)
    m.step(11)
    pending(m)
    m.step(6)  # 600 ms: the harder leg's 500 ms are over
    assert not m.book.open
    (trade,) = m.book.closed
    assert trade.status is ArbStatus.CANCELLED and trade.exit_reason == "entry_not_filled"
    assert m.book.trades == 0 and m.position(A) == m.position(B) == 0


def test_a_hedge_venue_that_ran_away_is_a_leg_out_closed_at_market() -> None:
    m = TwoVenues.make()
    diverging(m, b=("60000.0", "60000.1"), size="1")
    m.quote(A, "60000.0", "60000.1", size="5")
    m.step(11)
    trade = pending(m)
    # A's offer runs away beyond the hedge's allowance before B's entry fills.
    m.quote(A, "60100.0", "60100.1", size="5")
    m.trade(B, "60000.1", "1.05", Side.BUY)
    assert m.position(B) == D("-0.05") and m.position(A) == 0  # the hedge found nothing
    start = m.now
    m.step(6)
    assert not m.book.open and m.position(A) == m.position(B) == 0
    (closed,) = m.book.closed
    assert closed.status is ArbStatus.LEGGED_OUT and closed.exit_reason == "leg_out"
    (leg_out,) = [e.leg_out for e in m.of_type(LegOutDetected)]
    assert (leg_out.phase, leg_out.filled_leg, leg_out.filled_venue) == ("entry", "short", B)
    assert leg_out.filled_qty == D("0.05") and leg_out.missing_qty == D("0.05")
    assert leg_out.hedge_executed and leg_out.hedge_qty == D("0.05")
    assert leg_out.detected_at - start <= timedelta(milliseconds=600)
    assert leg_out.loss == -closed.actual_profit > 0
    assert m.book.leg_out_count == 1 and m.book.leg_out_loss == leg_out.loss
    # Counted once: the cumulative P&L is the trade's profit, not less the loss again.
    assert m.book.cumulative_pnl == closed.actual_profit
    assert m.wallets() - D(40000) == m.book.cumulative_pnl
    assert trade.trade_id == closed.trade_id


def test_a_fill_that_arrives_while_the_cancel_is_in_flight_is_hedged() -> None:
    latency = PaperVenueConfig(submit_latency=timedelta(milliseconds=300))
    m = TwoVenues.make(configs={B: latency})
    diverging(m, b=("60000.0", "60000.1"), size="1")
    m.quote(A, "60000.0", "60000.1", size="5")
    m.step(11)
    pending(m)
    m.step(4)  # the entry reaches B's matching engine
    m.step(2)  # 500 ms since it was placed: its cancel goes out, 300 ms away
    (trade,) = m.book.open.values()
    assert trade.orders[0].cancel_requested
    m.trade(B, "60000.1", "1.2", Side.BUY)  # ... and it fills meanwhile
    assert m.position(B) < 0
    m.step(10)
    assert m.position(A) == -m.position(B) > 0, "the late fill was hedged"
    (trade,) = m.book.open.values()
    assert trade.status is ArbStatus.ACTIVE and not trade.working


def test_a_residual_below_the_other_venues_minimum_is_hedge_debt_settled() -> None:
    # A (the harder, thinner venue) trades BTC in 0.001 lots, B only in 0.01 lots.
    m = TwoVenues.make(steps={B: D("0.01")})
    diverging(m, a=("60000.0", "60000.1"), size="1")
    m.quote(B, "60000.0", "60000.1", size="5")
    m.step(11)
    trade = pending(m)
    assert trade.harder_venue == A and trade.target_qty % D("0.01") == 0
    m.trade(A, "60000.0", "1.015", Side.SELL)  # 0.015 of the entry fills
    assert m.position(A) == D("0.015") and m.position(B) == D("-0.01")  # 0.005 owed
    m.step(6)  # the entry's time is up: the 0.005 cannot be hedged on B, so it closes
    (trade,) = m.book.open.values()
    assert trade.status is ArbStatus.ACTIVE
    assert m.position(A) == -m.position(B) == trade.matched_qty == D("0.01")
    closes = [o for o in trade.orders if o.role is OrderRole.CLOSE]
    assert [(o.venue, o.side, o.filled) for o in closes] == [(A, Side.SELL, D("0.005"))]


def enter(m: TwoVenues) -> None:
    diverging(m, b=("60000.0", "60000.1"), size="1")
    m.quote(A, "60000.0", "60000.1", size="5")
    m.step(11)
    m.trade(B, "60000.1", "2", Side.BUY)
    (trade,) = m.book.open.values()
    assert trade.status is ArbStatus.ACTIVE


def test_a_loss_limit_exits_both_legs_and_returns_the_capital() -> None:
    m = TwoVenues.make()
    enter(m)
    (trade,) = m.book.open.values()
    assert m.book.allocated == trade.position_size_usd > 0
    # The long venue falls 20 bps: far beyond 30 % of the projected profit.
    m.quote(A, "59880.0", "59880.1", size="5")
    m.step(11)
    assert not m.book.open
    (closed,) = m.book.closed
    assert closed.status is ArbStatus.CLOSED and closed.exit_reason == "loss_limit"
    assert m.position(A) == m.position(B) == 0
    assert m.book.allocated == 0 and m.book.trades == 1 and m.book.losses == 1
    assert m.wallets() - D(40000) == m.book.cumulative_pnl == closed.actual_profit


def test_funding_convergence_exits_only_after_its_confirmations() -> None:
    m = TwoVenues.make({"convergence_checks": 3})
    enter(m)
    m.rate(B, "0.0001")  # the delta is gone
    m.step(10)
    (trade,) = m.book.open.values()
    assert trade.status is ArbStatus.ACTIVE, "one check is not enough"
    m.step(25)
    (closed,) = m.book.closed
    assert closed.exit_reason == "funding_convergence"


def test_funding_received_counts_in_the_trade_and_its_profit() -> None:
    m = TwoVenues.make({"profit_target": "10", "loss_limit": "10"})
    enter(m)
    m.now = m.now.replace(hour=8) - timedelta(seconds=1)
    m.quote(A, "60000.0", "60000.1", size="5")
    m.quote(B, "60000.0", "60000.1", size="1")
    m.step(20)  # across 08:00: B's short receives 0.1 %, A's long pays 0.01 %
    (trade,) = m.book.open.values()
    assert trade.funding_short > 0 > trade.funding_long
    assert trade.funding == trade.funding_long + trade.funding_short > 0


def test_reduce_only_blocks_entries_and_legs_out_an_entry_in_flight() -> None:
    m = TwoVenues.make()
    diverging(m, b=("60000.0", "60000.1"), size="1")
    m.quote(A, "60000.0", "60000.1", size="5")
    m.step(11)
    pending(m)
    m.trade(B, "60000.1", "1.05", Side.BUY)
    assert m.position(A) == D("0.05")
    m.run(SetTradingState(Scope(ARB_CLIENT, None), TradingState.REDUCE_ONLY, "test"))
    m.step(3)
    assert not m.book.open and m.position(A) == m.position(B) == 0
    (leg_out,) = [e.leg_out for e in m.of_type(LegOutDetected)]
    assert leg_out.reason == "kill_switch"
    m.step(30)
    assert not m.book.open, "no entry under REDUCE_ONLY"


def test_halted_leaves_trades_alone_and_they_are_managed_when_it_lifts() -> None:
    m = TwoVenues.make()
    enter(m)
    m.run(SetTradingState(Scope(ARB_CLIENT, None), TradingState.HALTED, "test"))
    m.quote(A, "59880.0", "59880.1", size="5")  # a loss-limit move
    m.step(20)
    (trade,) = m.book.open.values()
    assert trade.status is ArbStatus.ACTIVE, "halted: nothing but cancels go out"
    m.run(SetTradingState(Scope(ARB_CLIENT, None), TradingState.REDUCE_ONLY, "test"))
    m.step(20)
    (closed,) = m.book.closed
    assert closed.exit_reason == "loss_limit" and m.position(A) == m.position(B) == 0


def test_a_restarted_host_resumes_a_trade_where_the_log_left_it() -> None:
    m = TwoVenues.make()
    enter(m)
    # A new host (a server restart: the engine state comes from the log) picks the
    # trade up and manages it to its exit.
    m.host = StrategyHost()
    m.quote(A, "59880.0", "59880.1", size="5")
    m.step(20)
    (closed,) = m.book.closed
    assert closed.exit_reason == "loss_limit" and m.position(A) == m.position(B) == 0


def test_stopping_the_strategy_legs_out_an_entry_in_flight() -> None:
    m = TwoVenues.make()
    diverging(m, b=("60000.0", "60000.1"), size="1")
    m.quote(A, "60000.0", "60000.1", size="5")
    m.step(11)
    m.trade(B, "60000.1", "1.05", Side.BUY)
    m.run(StopStrategy(ARB_STRATEGY, "test"))
    assert m.position(A) == m.position(B) == 0, "nothing naked once stopped"
    (trade,) = m.book.open.values()
    assert trade.status is ArbStatus.LEGGING_OUT


def test_every_change_of_a_trade_is_an_event_and_replays_to_the_same_book() -> None:
    m = TwoVenues.make()
    enter(m)
    m.quote(A, "59880.0", "59880.1", size="5")
    m.step(20)
    updates = m.of_type(ArbTradeUpdated)
    assert updates[0].trade.status is ArbStatus.PENDING
    assert updates[-1].trade.status is ArbStatus.CLOSED
    replayed = TwoVenues.make(start=False)
    replayed.engine.replay([e for e in m.events])
    assert replayed.engine.state.arb == m.engine.state.arb
