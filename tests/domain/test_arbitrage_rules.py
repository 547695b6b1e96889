"""Seed 001's arithmetic: funding over a horizon, sizing, steps, confidence, exits and
portfolio metrics."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from app.domain.arbitrage import ArbBook, ArbStatus, ArbTrade
from app.domain.arbitrage_rules import (
    FUNDING_CONVERGENCE,
    LOSS_LIMIT,
    PROFIT_TARGET,
    ConfidenceInputs,
    coarser_step,
    confidence,
    exit_reason,
    per_eight_hours,
    portfolio_metrics,
    position_size,
    project_funding,
    settlements_within,
    slippage_bps,
    walk,
)

H = timedelta(hours=1)
T = datetime(2024, 1, 1, 1, 0, tzinfo=UTC)


# ---- funding over the horizon ----------------------------------------------------------------

def test_only_instants_the_position_straddles_count_each_on_its_own_interval() -> None:
    # From 01:00 for 24 h: 08:00, 16:00 and 00:00 on an 8 h venue...
    assert settlements_within(T, 24 * H, 8 * H) == 3
    # ... twice as many on a 4 h one (04:00 ... 00:00) ...
    assert settlements_within(T, 24 * H, 4 * H) == 6
    # ... and none within a 6 h hold on the 8 h one.
    assert settlements_within(T, 6 * H, 8 * H) == 0
    # An instant at the very start is not straddled; one at the very end is.
    assert settlements_within(T.replace(hour=8), 8 * H, 8 * H) == 1
    # The venue's own schedule wins over the midnight grid.
    assert settlements_within(T, 2 * H, 8 * H, next_at=T + H) == 1


def test_a_long_pays_its_rate_and_a_short_receives_its_own() -> None:
    p = project_funding(D("0.0001"), 3, D("0.0005"), 6)
    assert p.income_bps == D("30") and p.cost_bps == D("3") and p.net_bps == D("27")
    negative = project_funding(D("-0.0002"), 3, D("-0.0001"), 3)  # the long is paid
    assert negative.income_bps == D("6") and negative.cost_bps == D("3")


def test_rates_compare_per_eight_hours() -> None:
    assert per_eight_hours(D("0.0001"), 4 * H) == D("0.0002")
    assert per_eight_hours(D("0.0003"), 8 * H) == D("0.0003")


# ---- sizing --------------------------------------------------------------------------------------

def test_seed_sizing_caps_at_half_the_capital_and_floors_at_100() -> None:
    # base = (30 − 17 − 3) / 30 × 20,000 = 6,666.67
    assert position_size(D(30), D(17), D(3), D(20000)).quantize(D("0.01")) == D("6666.67")
    assert position_size(D(100), D(1), D(0), D(20000)) == D(10000)  # the 50 % cap
    assert position_size(D(30), D("29.9"), D(0), D(20000)) == D(100)  # the $100 floor
    assert position_size(D(30), D(31), D(0), D(20000)) == 0  # no edge: no trade
    assert position_size(D(30), D(1), D(0), D(99)) == 0  # the pool cannot pay $100


@given(st.decimals(min_value=D("0.1"), max_value=D(1000), places=2),
       st.decimals(min_value=0, max_value=D(1000), places=2),
       st.decimals(min_value=0, max_value=D(100_000), places=2))
def test_sizing_never_exceeds_half_of_available(spread: D, fees: D, available: D) -> None:
    size = position_size(spread, fees, D(0), available)
    assert size == 0 or D(100) <= size <= max(available / 2, D(100))
    assert size <= available


def test_the_coarser_step_is_a_multiple_of_both() -> None:
    assert coarser_step(D("0.001"), D("0.01")) == D("0.01")
    assert coarser_step(D("0.004"), D("0.006")) == D("0.012")
    assert coarser_step(D("0.1"), D("0.1")) == D("0.1")


def test_walking_a_book_gives_the_average_and_slippage_grows_with_size() -> None:
    levels = [(D(100), D(1)), (D("100.1"), D(2)), (D("100.3"), D(5))]
    found, avg = walk(levels, D(2))
    assert found == 2 and avg == D("100.05")
    small = slippage_bps(D(100), walk(levels, D("0.5"))[1])
    big = slippage_bps(D(100), walk(levels, D(6))[1])
    assert small == 0 < big


# ---- confidence -------------------------------------------------------------------------------

def inputs(**changes: object) -> ConfidenceInputs:
    base = ConfidenceInputs(net_bps=D(20), costs_bps=D(20), persisted=timedelta(minutes=5),
                            persistence_full=timedelta(minutes=5), depth_ratio=D(3),
                            age=timedelta(0), stale_after=timedelta(seconds=10))
    return replace(base, **changes)  # type: ignore[arg-type]


def test_confidence_is_100_at_best_and_each_part_takes_its_share() -> None:
    assert confidence(inputs()) == 100
    assert confidence(inputs(net_bps=D(0))) == 65  # no edge: 35 points gone
    assert confidence(inputs(persisted=timedelta(0))) == 75
    assert confidence(inputs(depth_ratio=D(1))) == 75  # only the trade's size in the book
    assert confidence(inputs(age=timedelta(seconds=10))) == 85  # stale
    assert confidence(inputs(net_bps=D(10))) == 82  # half its costs: half the edge points


@given(st.decimals(min_value=-100, max_value=100, places=2),
       st.decimals(min_value=0, max_value=100, places=2),
       st.integers(0, 10_000), st.decimals(min_value=0, max_value=10, places=2),
       st.integers(0, 100))
def test_confidence_stays_within_0_and_100(net: D, costs: D, persisted: int, depth: D,
                                           age: int) -> None:
    score = confidence(inputs(net_bps=net, costs_bps=costs,
                              persisted=timedelta(seconds=persisted), depth_ratio=depth,
                              age=timedelta(seconds=age)))
    assert 0 <= score <= 100


# ---- exits ------------------------------------------------------------------------------------

def test_the_exits_come_in_the_seeds_order() -> None:
    assert exit_reason(D(9), D(0), D(10), D(0)) == PROFIT_TARGET  # before convergence
    assert exit_reason(D("8.9"), D(0), D(10), D("0.001")) is None
    assert exit_reason(D(-5), D(-3), D(10), D(0)) == LOSS_LIMIT
    assert exit_reason(D(-5), D("-2.9"), D(10), D("0.001")) is None
    assert exit_reason(D(0), D(0), D(10), D("0.00004")) == FUNDING_CONVERGENCE
    assert exit_reason(D(0), D(0), D(10), D("0.00005")) is None  # not below 0.005 %


def test_convergence_waits_for_the_minimum_hold_and_its_confirmations() -> None:
    args = (D(0), D(0), D(10), D("0.00001"))
    assert exit_reason(*args, held_long_enough=False) is None
    assert exit_reason(*args, converged_checks=2, confirm_checks=3) is None
    assert exit_reason(*args, converged_checks=3, confirm_checks=3) == FUNDING_CONVERGENCE
    # The loss limit does not wait for anything.
    assert exit_reason(D(-9), D(-9), D(10), None, held_long_enough=False) == LOSS_LIMIT


@given(st.decimals(min_value=-100, max_value=100, places=2),
       st.decimals(min_value=-100, max_value=100, places=2),
       st.decimals(min_value=D("0.01"), max_value=100, places=2),
       st.decimals(min_value=D("-0.01"), max_value=D("0.01"), places=6))
def test_every_met_condition_exits(booked: D, unrealized: D, projected: D, delta: D) -> None:
    reason = exit_reason(booked, unrealized, projected, delta)
    met = (booked >= D("0.9") * projected or unrealized <= D("-0.3") * projected
           or delta < D("0.00005"))
    assert (reason is not None) == met


# ---- portfolio ----------------------------------------------------------------------------------

def trade(i: int, status: ArbStatus, profit: str | None = None, size: str = "0") -> ArbTrade:
    return ArbTrade(f"T-{i}", "arb", "arb", "BTC-PERP", "a", "b", "b", status, T, D("0.1"),
                    D(1), D("0.001"), D(10), 80, position_size_usd=D(size),
                    actual_profit=None if profit is None else D(profit))


def test_seed_metrics_from_the_book() -> None:
    book = ArbBook()
    for i, profit in enumerate(("30", "-10", "20")):
        book.apply_trade(trade(i, ArbStatus.PENDING))
        book.apply_trade(trade(i, ArbStatus.CLOSED, profit))
    book.apply_trade(trade(9, ArbStatus.PENDING))
    book.apply_trade(trade(9, ArbStatus.ACTIVE, size="5000"))
    m = portfolio_metrics(book, D(20000), T + timedelta(days=73))
    assert (m.total_trades, m.wins, m.losses) == (3, 2, 1)
    assert m.win_rate == D(2) / 3
    assert m.cumulative_pnl == D(40) and m.pnl_pct == D("0.2")
    assert m.total_open_positions == D(5000) and m.utilization_pct == D(25)
    # Capital conservation: available + open = starting + cumulative P&L.
    assert m.available_capital + m.total_open_positions == D(20000) + m.cumulative_pnl
    # (40 / 20,000) / (73 / 365) = 1 %
    assert m.realistic_apr_pct == D("1.00")
