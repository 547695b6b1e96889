"""Quiet points (app/engine/quiet.py): a backtest that takes in the bar points where
nothing can happen, without stepping the engine and the strategy host through them,
gives exactly what stepping every update gives — the same trades to the last digit,
the same equity curve, candles, event count and metrics — for every strategy, price
source, order style and market we can think of making hard: real minutes, stops
that trigger, a funding file, bars whose points cross the signal desk's candles,
and accounts near liquidation.
"""

from __future__ import annotations

import random
import tempfile
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.backtest.runner import BacktestConfig, BacktestResult, run_backtest
from app.defaults import VENUES, demo_instruments
from app.domain.commands import Deposit, SetLeverage, SubmitOrder
from app.domain.market import PriceBar
from app.domain.orders import OrderSpec, OrderType, Side, TriggerSource
from app.engine import Engine, EngineConfig
from app.engine.engine import AccountSetup
from app.engine.quiet import absorb_points, quiet_span
from app.marketdata.bars import format_interval
from app.strategies.bars import MultiBars
from app.strategies.common import PriceSource, SymbolFeed
from app.venues.paper.venue import PaperVenue
from tests.backtest.test_backtest_runs import MA, head

ATR = {"trend_ema_period": 20, "fast_ema_period": 5, "slow_ema_period": 10,
       "atr_period": 5, "max_position_notional": "300", "max_bars_in_trade": 12}


def volatile_bars(path: Path, bars: int, interval_s: int, seed: int,
                  gaps: float = 0.0) -> Path:
    """A random walk with jumps (stops trigger, brackets fire) at ``interval_s``;
    ``gaps``: the share of bars missing (the file jumps ahead)."""
    rng = random.Random(seed)
    start = datetime(2022, 1, 1, tzinfo=UTC)
    price = 40_000.0
    lines = ["timestamp,open,high,low,close,volume"]
    slot = 0
    for _ in range(bars):
        while rng.random() < gaps:
            slot += 1
        i, slot = slot, slot + 1
        o = price
        c = o * (1 + rng.gauss(0, 0.002) + (rng.choice((-1, 1)) * 0.02
                                          if rng.random() < 0.01 else 0))
        hi = max(o, c) * (1 + abs(rng.gauss(0, 0.001)))
        lo = min(o, c) * (1 - abs(rng.gauss(0, 0.001)))
        ts = start + timedelta(seconds=interval_s * i)
        lines.append(f"{ts.isoformat()},{o:.1f},{hi:.1f},{lo:.1f},{c:.1f},"
                     f"{rng.uniform(2e5, 3e6):.2f}")
        price = c
    path.write_text("\n".join(lines) + "\n")
    return path


def every(seconds: int) -> str:
    return format_interval(timedelta(seconds=seconds))


def funding_file(path: Path, days: int, offset: timedelta = timedelta(0)) -> Path:
    """A settlement every 8 h, ``offset`` after the hour (a venue's stamps can be a few
    milliseconds late: then a rate falls between a bar's points)."""
    path.write_text("timestamp,funding_rate\n" + "".join(
        f"{(datetime(2022, 1, 1, tzinfo=UTC) + timedelta(hours=h) + offset).isoformat()},"
        f"{'0.0005' if h % 16 else '-0.0003'}\n" for h in range(0, 24 * days, 8)))
    return path


def both_ways(config: BacktestConfig) -> tuple[BacktestResult, BacktestResult]:
    fast = run_backtest(config)
    slow = run_backtest(replace(config, fast=False))
    assert slow.absorbed_points == 0 and slow.stepped_updates == slow.updates
    assert fast.stepped_updates + 3 * fast.absorbed_points <= fast.updates
    assert fast.trades == slow.trades
    assert fast.equity == slow.equity
    assert fast.candles == slow.candles
    assert (fast.bars, fast.updates, fast.events) == (slow.bars, slow.updates, slow.events)
    assert fast.performance == slow.performance
    return fast, slow


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return head(tmp_path_factory.mktemp("quiet"), 3000)


@pytest.mark.parametrize(("strategy", "params"), [
    ("ma_crossover", MA),
    ("ma_crossover", {**MA, "use_limit_orders": True}),
    ("ma_crossover", {**MA, "interval": "1m", "price_source": "mid"}),
    ("ma_crossover", {**MA, "interval": "15m", "price_source": "mark", "stop_pct": "0.3"}),
    ("ma_crossover", {**MA, "use_signals": True}),
    ("atr_trend", ATR),
    ("atr_trend", {**ATR, "price_source": "mid"}),
    ("demo", {}),
])
def test_real_minutes_give_the_same_backtest_either_way(
        real: Path, tmp_path: Path, strategy: str, params: dict[str, Any]) -> None:
    config = BacktestConfig(strategy, real, params=params,
                            funding=funding_file(tmp_path / "funding.csv", 3))
    fast, _ = both_ways(config)
    if strategy == "ma_crossover" and not params.get("use_limit_orders"):
        # Most points are quiet for a bar-close strategy with a far stop.
        assert fast.absorbed_points > fast.updates // 3 // 2
    if strategy == "demo":
        assert fast.absorbed_points == 0  # it may act on any update: never skipped


@pytest.mark.parametrize("interval_s", [20, 80, 3600])
def test_volatile_bars_of_any_interval_give_the_same_backtest_either_way(
        tmp_path: Path, interval_s: int) -> None:
    # 80-second bars put a minute boundary (the signal desk's candle) inside a bar.
    data = volatile_bars(tmp_path / "volatile.csv", 1500, interval_s, seed=interval_s)
    funding = funding_file(tmp_path / "funding.csv", 1 + 1500 * interval_s // 86_400,
                           timedelta(seconds=7, milliseconds=10))
    for strategy, params in (
            ("ma_crossover", {**MA, "interval": every(3 * interval_s), "stop_pct": "0.5"}),
            ("ma_crossover", {**MA, "interval": every(3 * interval_s),
                              "use_limit_orders": True, "stop_pct": "0.4"}),
            ("atr_trend", {**ATR, "entry_interval": every(interval_s),
                           "htf_interval": every(4 * interval_s)})):
        fast, _ = both_ways(BacktestConfig(strategy, data, params=params, funding=funding))
        assert fast.trades, f"{strategy} traded nothing on volatile bars: a weak test"
        if interval_s >= 80:  # long enough to hold positions over a settlement
            assert any(t.funding for t in fast.trades), "no funding reached a trade"


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), interval_s=st.sampled_from([15, 60, 300]),
       gaps=st.sampled_from([0.0, 0.05]), multiple=st.sampled_from([1, 2, 3]),
       source=st.sampled_from(["trade", "mid", "mark"]), limit=st.booleans(),
       stop_pct=st.sampled_from(["0.2", "1"]))
def test_random_bar_files_give_the_same_backtest_either_way(
        seed: int, interval_s: int, gaps: float, multiple: int, source: str, limit: bool,
        stop_pct: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = volatile_bars(Path(tmp) / "bars.csv", 300, interval_s, seed, gaps)
        funding = funding_file(Path(tmp) / "funding.csv", 1 + 300 * interval_s // 86_400,
                               timedelta(seconds=seed % 50))
        both_ways(BacktestConfig("ma_crossover", data, funding=funding, params={
            **MA, "interval": every(multiple * interval_s), "price_source": source,
            "use_limit_orders": limit, "stop_pct": stop_pct}))


def signal_file(path: Path, start: datetime, every_s: int, count: int, offset_s: int = 0
                ) -> Path:
    """Recorded signals long, short, flat in turn (a fifth of the size: the demo's
    0.01 BTC limit), some stamped between bar points (``offset_s``)."""
    rows = ["timestamp,signal,strength"]
    for k in range(count):
        at = start + timedelta(seconds=k * every_s + (offset_s if k % 2 else 0))
        rows.append(f"{at.isoformat()},{(1, -1, 0, -1, 1)[k % 5]},0.2")
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("strategy", [None, "ma_crossover"])
def test_recorded_signals_give_the_same_backtest_either_way(real: Path, tmp_path: Path,
                                                            strategy: str | None) -> None:
    """Signals (alone, or beside a strategy) break quiet runs at their times as funding
    rates do; stamped on a point or between points, with a funding file."""
    first = datetime(2021, 12, 31, 23, 31, tzinfo=UTC)
    signals = signal_file(tmp_path / "signals.csv", first, 2_400, 60, offset_s=7)
    fast, _ = both_ways(BacktestConfig(strategy, real, params=MA if strategy else {},
                                       funding=funding_file(tmp_path / "funding.csv", 3),
                                       signals=signals))
    assert fast.signals["submitted"] + fast.signals["outside_data"] == 60
    assert fast.absorbed_points > fast.updates // 3 // 2  # still mostly quiet
    assert sum(t.exit_reason in ("take_profit", "stop_loss") for t in fast.trades) >= 3


def test_a_funding_rate_in_a_gap_moves_the_equity_samples_the_same_way(
        tmp_path: Path) -> None:
    """A rate settled where a bar is missing takes that bar's equity sample; the next
    sample then falls on a later point of a bar, not its open — absorbed or stepped.
    (Found by the random files above.)"""
    full = volatile_bars(tmp_path / "full.csv", 400, 300, seed=3)
    lines = full.read_text().splitlines()
    missing = f"{datetime(2022, 1, 1, 8, tzinfo=UTC).isoformat()},"
    kept = [line for line in lines if not line.startswith(missing)]
    assert len(kept) == len(lines) - 1
    data = tmp_path / "gap.csv"
    data.write_text("\n".join(kept) + "\n")
    funding = funding_file(tmp_path / "funding.csv", 2, timedelta(seconds=11))
    fast, _ = both_ways(BacktestConfig("ma_crossover", data, funding=funding,
                                       params={**MA, "interval": "15m"}))
    assert any(p.at.second == 15 for p in fast.equity), "no sample off a bar's open"


def test_the_fast_path_can_be_turned_off_from_the_cli(real: Path, tmp_path: Path) -> None:
    from app.cli import main

    for flag, out in (([], tmp_path / "fast"), (["--every-point"], tmp_path / "slow")):
        assert main(["backtest", "--strategy", "ma_crossover", "--data", str(real),
                     "--out", str(out), *flag]) == 0
    assert (tmp_path / "fast" / "trades.csv").read_text() == \
        (tmp_path / "slow" / "trades.csv").read_text()
    assert (tmp_path / "fast" / "equity.csv").read_text() == \
        (tmp_path / "slow" / "equity.csv").read_text()


# ---- the engine alone: near liquidation, stops on both sides ------------------------------

VENUE = VENUES[0]
SYMBOL = "BTC-PERP"
T0 = datetime(2022, 1, 1, tzinfo=UTC)


def leveraged_engine(side: Side, leverage: int, stop_gap: Decimal) -> Any:
    instruments = [i for i in demo_instruments((VENUE,)) if i.symbol == SYMBOL]
    engine = Engine(EngineConfig(instruments=instruments,
                                 accounts=[AccountSetup("demo", VENUE, Decimal(5))]),
                    {VENUE: PaperVenue(VENUE)})
    engine.handle(Deposit("demo", VENUE, Decimal(20_000)), T0)
    bar = point_bar(T0, [Decimal(40_000)] * 4)
    for k in range(4):
        for update in bar.point_updates(VENUE, SYMBOL, k):
            engine.on_market(update, update.ts)
    now = bar.times[3]
    engine.handle(SetLeverage("demo", VENUE, SYMBOL, Decimal(leverage), "test"), now)
    # Most of the account at this leverage: a few percent against it liquidates.
    engine.handle(SubmitOrder(OrderSpec("demo", VENUE, SYMBOL, side, OrderType.MARKET,
                                        Decimal("0.4") * leverage)), now)
    assert engine.state.positions[("demo", VENUE, SYMBOL)].qty
    stop_side = side.opposite
    trigger = Decimal(40_000) * (1 - stop_gap if side is Side.BUY else 1 + stop_gap)
    engine.handle(SubmitOrder(OrderSpec("demo", VENUE, SYMBOL, stop_side,
                                        OrderType.STOP, Decimal("0.01"),
                                        trigger_price=trigger.quantize(Decimal("0.1")),
                                        trigger_source=TriggerSource.MARK,
                                        reduce_only=True)), now)
    return engine


def point_bar(start: datetime, prices: list[Decimal]) -> PriceBar:
    tick = Decimal("0.1")
    q = [p.quantize(tick) for p in prices]
    return PriceBar(tuple(start + timedelta(seconds=15 * k) for k in range(4)),  # type: ignore[arg-type]
                    tuple(q), (Decimal("0.5"),) * 4,  # type: ignore[arg-type]
                    tuple(Side.BUY if k and q[k] > q[k - 1] else Side.SELL
                          for k in range(4)), tick)  # type: ignore[arg-type]


def state_of(engine: Any) -> Any:
    venue = engine.venues[VENUE]
    book = venue.books[SYMBOL]
    return (engine.summary("demo", VENUE), dict(engine.state.positions),
            {k: dict(v) for k, v in engine.state.open_orders.items()},
            venue.last.get(SYMBOL), venue.marks.get(SYMBOL), book.bid, book.ask, book.updated_at,
            dict(engine.risk._evaluated_at), engine.signals.idle_until)


def compare(side: Side, leverage: int, stop_gap: Decimal, moves: list[int]) -> Counter[str]:
    """Bars of ``moves`` (per mille of the price, four a bar) through two engines, one
    stepping every update, the other absorbing the bars its quiet span holds; their
    states must stay equal. What happened, counted."""
    stepped = leveraged_engine(side, leverage, stop_gap)
    taken = leveraged_engine(side, leverage, stop_gap)
    seen: Counter[str] = Counter()
    price, at = Decimal(40_000), T0 + timedelta(minutes=1)
    for i in range(0, len(moves) - 3, 4):
        prices = []
        for m in moves[i:i + 4]:
            price = price * (1 + Decimal(m) / 2000)  # up to 3 % a point
            prices.append(price)
        bar = point_bar(at, prices)
        span = quiet_span(taken, VENUE, SYMBOL)
        quiet = span is not None and all(span.holds(p, t) for p, t in
                                         zip(bar.prices, bar.times, strict=True))
        events = []
        for k in range(4):
            for update in bar.point_updates(VENUE, SYMBOL, k):
                events += stepped.on_market(update, update.ts)
        seen.update(type(e).__name__ for e in events)
        if quiet:
            assert span is not None
            assert events == [], "a quiet span let through a point that did something"
            absorb_points(taken, span, bar, 0)
            seen["quiet bars"] += 1
        else:
            for k in range(4):
                for update in bar.point_updates(VENUE, SYMBOL, k):
                    taken.on_market(update, update.ts)
        assert state_of(taken) == state_of(stepped)
        at += timedelta(minutes=1)
    return seen


@settings(max_examples=60, deadline=None)
@given(side=st.sampled_from([Side.BUY, Side.SELL]), leverage=st.sampled_from([2, 10, 20]),
       stop_gap=st.sampled_from([Decimal("0.002"), Decimal("0.01"), Decimal("0.05")]),
       moves=st.lists(st.integers(-60, 60), min_size=4, max_size=40))
def test_absorbing_a_quiet_point_leaves_the_engine_as_stepping_it(
        side: Side, leverage: int, stop_gap: Decimal, moves: list[int]) -> None:
    compare(side, leverage, stop_gap, moves)


def test_the_engine_comparison_meets_quiet_bars_stops_and_liquidations() -> None:
    """The comparison above is not vacuous: on seeded paths it absorbs bars, and the
    engines it compares trigger stops and liquidate."""
    rng = random.Random(7)
    seen: Counter[str] = Counter()
    for side in (Side.BUY, Side.SELL):
        for leverage in (2, 10, 20):
            for _ in range(6):
                seen += compare(side, leverage, Decimal("0.01"),
                                [rng.randint(-60, 60) for _ in range(40)])
    assert seen["quiet bars"] > 50
    assert seen["OrderTriggered"] > 0 and seen["PositionLiquidated"] > 0


def test_a_span_stops_short_of_liquidation_and_of_stops() -> None:
    engine = leveraged_engine(Side.BUY, 20, Decimal("0.002"))
    span = quiet_span(engine, VENUE, SYMBOL)
    assert span is not None and span.holders == ("demo",)
    trigger = Decimal(40_000) * Decimal("0.998")
    assert span.low >= trigger.quantize(Decimal("0.1"))  # the stop bounds it below
    # A position this leveraged is liquidated a couple of percent down: the span must
    # not reach there, whatever the stop.
    liquidation = engine.liquidation_price("demo", VENUE, SYMBOL)
    assert liquidation is not None and span.low > liquidation


@settings(max_examples=80, deadline=None)
@given(source=st.sampled_from(list(PriceSource)),
       moves=st.lists(st.integers(-30, 30), min_size=8, max_size=40))
def test_a_feed_takes_quiet_points_as_it_takes_their_updates(
        source: PriceSource, moves: list[int]) -> None:
    one = SymbolFeed(SYMBOL, MultiBars([timedelta(hours=1)]), source)
    other = SymbolFeed(SYMBOL, MultiBars([timedelta(hours=1)]), source)
    price, at = Decimal(40_000), T0
    for i in range(0, len(moves) - 3, 4):
        bar = point_bar(at, [price := price + m for m in moves[i:i + 4]])
        for k in range(4):
            for update in bar.point_updates(VENUE, SYMBOL, k):
                one.on_update(update)
        until = other.quiet_until()
        if until is None or bar.times[3] >= until:
            for k in range(4):
                for update in bar.point_updates(VENUE, SYMBOL, k):
                    other.on_update(update)
        else:
            other.absorb_points(bar, 0)
        assert (one.bid, one.ask, one.bid_size, one.ask_size, one.mark) == \
            (other.bid, other.ask, other.bid_size, other.ask_size, other.mark)
        assert one.volume_1m(bar.times[3]) == other.volume_1m(bar.times[3])
        assert one.bars.builders[timedelta(hours=1)].forming == \
            other.bars.builders[timedelta(hours=1)].forming
        at += timedelta(minutes=1)


@settings(max_examples=80, deadline=None)
@given(source=st.sampled_from(list(PriceSource)),
       moves=st.lists(st.integers(-30, 30), min_size=8, max_size=80),
       gaps=st.lists(st.integers(0, 3), min_size=20, max_size=20))
def test_a_feed_takes_the_rest_of_a_point_after_its_quote_and_opens_bars_in_quiet_points(
        source: PriceSource, moves: list[int], gaps: list[int]) -> None:
    """Where a quote closes a bar, a backtest steps the quote alone and takes the
    point's print and mark in quietly (the next bar opens there, or in the next quiet
    point); whole bars are taken in a row. Each way closes the same bars, with the
    same state after."""
    intervals = [timedelta(minutes=1), timedelta(minutes=2)]
    one = SymbolFeed(SYMBOL, MultiBars(intervals), source)
    other = SymbolFeed(SYMBOL, MultiBars(intervals), source)
    closed_one: list[Any] = []
    closed_other: list[Any] = []
    price, at = Decimal(40_000), T0
    whole: list[PriceBar] = []
    until = other.quiet_until()  # as the runner: asked again after a step only
    for n, i in enumerate(range(0, len(moves) - 3, 4)):
        at += timedelta(minutes=1 + gaps[n % len(gaps)] // 3)
        bar = point_bar(at, [price := price + m for m in moves[i:i + 4]])
        for k in range(4):
            for update in bar.point_updates(VENUE, SYMBOL, k):
                closed_one += one.on_update(update)
        if until is not None and bar.times[3] < until and n % 2:
            whole.append(bar)  # taken in a row with the next ones
            continue
        if whole:
            other.absorb_bars(whole)
            whole.clear()
        for k in range(4):
            if until is not None and bar.times[k] < until:
                other.absorb_points(bar, k, k + 1)
                continue
            quote, *rest = bar.point_updates(VENUE, SYMBOL, k)
            closed_other += other.on_update(quote)
            until = other.quiet_until()
            if until is not None and bar.times[k] < until:
                other.absorb_points(bar, k, k + 1, quoted=True)
            else:
                for update in rest:
                    closed_other += other.on_update(update)
                until = other.quiet_until()
        assert closed_one == closed_other
        assert (one.bid, one.ask, one.mark, one.volume_1m(bar.times[3])) == \
            (other.bid, other.ask, other.mark, other.volume_1m(bar.times[3]))
        for interval in intervals:
            assert one.bars.builders[interval].forming == \
                other.bars.builders[interval].forming
    if whole:
        other.absorb_bars(whole)
        assert one.bars.builders[intervals[0]].forming == \
            other.bars.builders[intervals[0]].forming
