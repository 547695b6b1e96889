"""Seed 000 §5.2's crossover on hand-built series: the epsilon band, confirmation
bars, RSI confirmation, and seed 000's liquidity filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest

from app.domain.market import TradePrint
from app.domain.orders import Side
from app.strategies.bars import Bar, MultiBars
from app.strategies.base import InvalidParams
from app.strategies.common import LiquidityFilters, SymbolFeed, liquidity_problem
from app.strategies.ma_crossover import (
    MA_CROSSOVER,
    CrossDetector,
    MaCrossover,
    MaCrossoverParams,
    MaModel,
    relation,
    rsi_allows,
)

T0 = datetime(2022, 1, 10, tzinfo=UTC)


def run(detector: CrossDetector, pairs: list[tuple[str, str]]) -> list[int]:
    return [detector.update(D(f), D(s)) for f, s in pairs]


def test_relation_with_and_without_epsilon() -> None:
    assert relation(D("100.02"), D(100), D(1)) == 1  # 2 bps above
    assert relation(D("100.01"), D(100), D(1)) == 0  # exactly 1 bp: inside the band
    assert relation(D("99.98"), D(100), D(1)) == -1
    assert relation(D("100.0001"), D(100), D(0)) == 1  # 0: the raw comparison
    assert relation(D(100), D(100), D(0)) == 0


def test_raw_crossovers_with_epsilon_zero() -> None:
    d = CrossDetector(D(0), 0)
    # The first side only sets the state; then each change of side is a cross.
    assert run(d, [("99", "100"), ("99.5", "100"), ("100.5", "100"), ("101", "100"),
                   ("99", "100")]) == [0, 0, 1, 0, -1]


def test_epsilon_suppresses_a_cross_within_the_band() -> None:
    wiggle = [("99", "100"), ("100.005", "100"), ("99.995", "100"), ("100.005", "100")]
    assert run(CrossDetector(D(1), 0), wiggle) == [0, 0, 0, 0]  # ±0.5 bp: never a cross
    assert run(CrossDetector(D(0), 0), wiggle) == [0, 1, -1, 1]  # raw: three crosses
    # Leaving the band on the other side is a cross.
    assert run(CrossDetector(D(1), 0), [("99", "100"), ("100.005", "100"),
                                        ("100.02", "100")]) == [0, 0, 1]


def test_confirmation_bars() -> None:
    d = CrossDetector(D(1), 2)
    # Cross on bar 2, held on bars 3 and 4: fires on bar 4.
    assert run(d, [("99", "100"), ("101", "100"), ("101", "100"), ("101", "100"),
                   ("101", "100")]) == [0, 0, 0, 1, 0]
    d = CrossDetector(D(1), 2)
    # Falls back before it is confirmed: dropped, no signal.
    assert run(d, [("99", "100"), ("101", "100"), ("101", "100"), ("99", "100"),
                   ("99", "100")]) == [0, 0, 0, 0, 0]
    d = CrossDetector(D(1), 1)
    # A bar inside the band does not confirm.
    assert run(d, [("99", "100"), ("101", "100"), ("100", "100"), ("101", "100"),
                   ("101", "100")]) == [0, 0, 0, 0, 1]


def params(**kw: Any) -> MaCrossoverParams:
    return MaCrossoverParams(**kw)


def test_rsi_confirmation() -> None:
    p = params(rsi_confirm=True)
    assert rsi_allows(1, D(55), p) and not rsi_allows(1, D(45), p)
    assert not rsi_allows(1, D(75), p)  # overbought
    assert rsi_allows(-1, D(45), p) and not rsi_allows(-1, D(55), p)
    assert not rsi_allows(-1, D(25), p)  # oversold
    assert not rsi_allows(1, None, p)
    assert rsi_allows(1, D(10), params())  # off


def bars(closes: list[str]) -> list[Bar]:
    return [Bar(T0 + timedelta(minutes=5 * i), timedelta(minutes=5), D(c), D(c), D(c), D(c))
            for i, c in enumerate(closes)]


def signals(model: MaModel, closes: list[str]) -> list[int]:
    return [model.on_bar(b).signal for b in bars(closes)]


def test_model_signals_a_cross_of_the_moving_averages() -> None:
    closes = ["100", "99", "98", "97", "96", "97", "99", "101", "103", "100", "96", "93"]
    out = signals(MaModel(params(fast_period=2, slow_period=4, ma_cross_epsilon_bps=D(0))),
                  closes)
    # SMA2 vs SMA4: below from bar 3 (97.5 < 98.5), above at bar 6 (98 > 97.25),
    # below again at bar 10 (98 < 100).
    assert out == [0, 0, 0, 0, 0, 0, 1, 0, 0, 0, -1, 0]
    # With a one-bar confirmation each fires a bar later.
    late = signals(MaModel(params(fast_period=2, slow_period=4, ma_cross_epsilon_bps=D(0),
                                  ma_cross_confirm_bars=1)), closes)
    assert late == [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, -1]


def test_model_rsi_confirmation_blocks_a_cross() -> None:
    closes = ["100", "99", "98", "97", "96", "97", "99", "101", "103"]
    p = dict(fast_period=2, slow_period=4, ma_cross_epsilon_bps=D(0), rsi_confirm=True,
             rsi_period=3)
    # Wilder RSI(3) at the cross (bar 6) is 66.7: above 50 and below 70, confirmed.
    assert signals(MaModel(params(**p)), closes)[6] == 1
    # Above a 60 overbought line, or below a 70 minimum, it is refused.
    assert 1 not in signals(MaModel(params(**p, rsi_overbought=D(60))), closes)
    assert 1 not in signals(MaModel(params(**p, rsi_long_min=D(70),
                                           rsi_overbought=D(80))), closes)


def test_liquidity_filters() -> None:
    f = LiquidityFilters(max_spread_bps=D(10), min_l1_depth=D(50_000),
                         min_volume_1m=D(100_000))
    ok = dict(bid=D(100), ask=D("100.05"), bid_size=D(600), ask_size=D(600),
              volume_1m=D(200_000))
    assert liquidity_problem(f, Side.BUY, **ok) is None
    assert "spread" in (liquidity_problem(f, Side.BUY, **{**ok, "ask": D("100.2")}) or "")
    assert "depth" in (liquidity_problem(f, Side.BUY, **{**ok, "ask_size": D(400)}) or "")
    assert liquidity_problem(f, Side.SELL, **{**ok, "ask_size": D(400)}) is None
    assert "volume" in (liquidity_problem(f, Side.BUY, **{**ok, "volume_1m": D(10)}) or "")
    assert liquidity_problem(LiquidityFilters(), Side.BUY, None, None, D(0), D(0),
                             D(0)) is None


def test_a_feed_keeps_its_volume_only_for_a_volume_filter() -> None:
    """The last minute's volume costs a deque a print: a strategy keeps it only with a
    minimum volume filter, and then the filter reads it."""
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    prints = [TradePrint("v", "S", D(100), D(5), Side.BUY, t0 + timedelta(seconds=20 * i))
              for i in range(5)]
    kept = SymbolFeed("S", MultiBars([timedelta(minutes=5)]))
    bare = SymbolFeed("S", MultiBars([timedelta(minutes=5)]), track_volume=False)
    for update in prints:
        kept.on_update(update)
        bare.on_update(update)
    assert kept.volume_1m(prints[-1].ts) == D(1500)  # the prints of the last minute
    with pytest.raises(RuntimeError, match="does not keep its volume"):
        bare.volume_1m(prints[-1].ts)
    assert kept.bars.builders[timedelta(minutes=5)].forming == \
        bare.bars.builders[timedelta(minutes=5)].forming
    spread_only = LiquidityFilters(max_spread_bps=D(10))
    assert bare.liquidity_problem(spread_only, Side.BUY, prints[-1].ts) == "no two-sided quote"
    wants_volume = LiquidityFilters(min_volume_1m=D(2000))
    assert "1m volume 1500" in (kept.liquidity_problem(wants_volume, Side.BUY,
                                                      prints[-1].ts) or "")
    strategy = MaCrossover(params(min_volume_1m=D(2000)))
    assert strategy.feed.track_volume
    assert not MaCrossover(params()).feed.track_volume


def test_params_defaults_and_bounds() -> None:
    v = dict(MA_CROSSOVER.validate({}))
    assert v["ma_cross_epsilon_bps"] == '"1"' and v["ma_cross_confirm_bars"] == "0"
    assert v["stop_pct"] == '"2"' and v["limit_offset_bps"] == '"5"'
    for bad in ({"fast_period": 30, "slow_period": 10}, {"ma_cross_confirm_bars": -1},
                {"stop_pct": 0}, {"interval": "5x"}, {"sizing_mode": "wild"}):
        with pytest.raises(InvalidParams):
            MA_CROSSOVER.validate(bad)
