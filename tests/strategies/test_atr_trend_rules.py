"""Seed 004's rules on hand-built bars: each rule has a case that triggers it and
one that does not (the decision is a pure function of a snapshot of the bars and
indicators, so each case is one snapshot)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest

from app.defaults import VENUES, demo_instruments
from app.strategies.atr_trend import (
    ATR_TREND,
    AtrModel,
    AtrTrendParams,
    Snapshot,
    entry_decision,
    exit_decision,
    position_size,
    risk_scale,
    stop_and_targets,
)
from app.strategies.bars import Bar
from app.strategies.base import InvalidParams

T0 = datetime(2022, 1, 10, 12, 0, tzinfo=UTC)
FIVE = timedelta(minutes=5)


def params(**kw: Any) -> AtrTrendParams:
    return AtrTrendParams(**kw)


def bar(close: str = "100.5", low: str = "100.1", high: str = "100.8", open_: str = "100.2",
        volume: str = "12") -> Bar:
    return Bar(T0, FIVE, D(open_), D(high), D(low), D(close), D(volume))


def snap(**kw: Any) -> Snapshot:
    """A bar that passes every rule: up-trend (1 h close 105 > EMA200 100), EMA20 100
    > EMA50 99, ATR 1 (≈1 % of price), low 100.1 within 0.25 ATR of the EMA20,
    close 100.5 above it by 0.5 ATR, RSI 50, volume 12 over an average of 10."""
    b = kw.pop("bar", bar())
    base: dict[str, Any] = dict(ema_fast=D(100), ema_slow=D(99), atr=D(1), rsi=D(50),
                                volume_avg=D(10), htf_close=D(105), htf_ema=D(100))
    base.update(kw)
    return Snapshot(b, **base)


def rule(s: Snapshot, **kw: Any) -> str:
    return entry_decision(s, params(**kw)).rule


def test_the_baseline_bar_is_an_entry_with_atr_stop_and_r_targets() -> None:
    d = entry_decision(snap(), params())
    assert d.signal == 1 and d.rule == "entry"
    assert d.levels is not None
    # R = max(0.5 % of 100.5 = 0.5025, 1.5 × ATR 1) = 1.5
    assert (d.levels.risk, d.levels.stop, d.levels.tp1, d.levels.tp2) == (
        D("1.5"), D("99.0"), D("102.0"), D("103.5"))
    assert d.risk_scale == 1


def test_warm_up_gives_no_signal() -> None:
    assert rule(snap(atr=None)) == "warmup"
    assert rule(snap(htf_ema=None)) == "warmup"
    # Without the multi-timeframe gate the 1 h EMA is not needed.
    assert rule(snap(htf_ema=None), use_multi_tf_atr_strategy=False) == "entry"


def test_trend_filter() -> None:
    assert rule(snap(htf_close=D(99))) == "trend"
    assert rule(snap(htf_close=D(100))) == "trend"  # equal is not above
    assert rule(snap(htf_close=D("100.01"))) == "entry"
    assert rule(snap(htf_close=D(99)), use_multi_tf_atr_strategy=False) == "entry"


def test_ema_alignment() -> None:
    assert rule(snap(ema_slow=D(101))) == "alignment"
    assert rule(snap(ema_slow=D(100))) == "alignment"
    assert rule(snap(ema_slow=D("99.99"))) == "entry"


def test_min_atr_pct_and_usd() -> None:
    assert rule(snap(), min_atr_pct=D(2)) == "min_atr"  # ATR ≈ 0.995 % of the close
    assert rule(snap(), min_atr_pct=D("0.99")) == "entry"
    assert rule(snap(), min_atr_usd=D("1.01")) == "min_atr"
    assert rule(snap(), min_atr_usd=D(1)) == "entry"


def test_pullback_dip_into_or_near_the_ema_with_the_wick_buffer() -> None:
    assert rule(snap(bar=bar(low="100.3"))) == "pullback"  # 0.3 ATR away > 0.25
    assert rule(snap(bar=bar(low="100.25"))) == "entry"  # just near enough
    assert rule(snap(bar=bar(low="99.5"))) == "entry"  # into it
    assert rule(snap(bar=bar(low="100.3")), wick_atr_buffer=D("0.3")) == "entry"
    assert rule(snap(bar=bar(low="100.1")), wick_atr_buffer=D(0)) == "pullback"


def test_bounce_close_above_the_ema() -> None:
    assert rule(snap(bar=bar(close="100", low="99.8"))) == "bounce"
    assert rule(snap(bar=bar(close="100.01", low="99.8"))) == "entry"


def test_chasing_guard() -> None:
    assert rule(snap(bar=bar(close="101.2", high="101.3"))) == "chasing"  # 1.2 ATR above
    assert rule(snap(bar=bar(close="101.0", high="101.3"))) == "entry"  # exactly 1 ATR
    assert rule(snap(bar=bar(close="101.2", high="101.3")),
                max_ema_distance_atr=D("1.5")) == "entry"


def test_rsi_filter() -> None:
    assert rule(snap(rsi=D(75)), use_rsi_filter=True) == "rsi"
    assert rule(snap(rsi=D(35)), use_rsi_filter=True) == "rsi"
    assert rule(snap(rsi=None), use_rsi_filter=True) == "rsi"
    assert rule(snap(rsi=D(70)), use_rsi_filter=True) == "entry"
    assert rule(snap(rsi=D(75))) == "entry"  # off by default


def test_volume_filter() -> None:
    assert rule(snap(bar=bar(volume="9")), use_volume_filter=True) == "volume"
    assert rule(snap(bar=bar(volume="12")), use_volume_filter=True,
                volume_multiple=D("1.5")) == "volume"
    assert rule(snap(bar=bar(volume="10")), use_volume_filter=True) == "entry"
    assert rule(snap(bar=bar(volume="9"))) == "entry"  # off by default


def test_stop_is_the_larger_of_the_hard_minimum_and_the_atr_multiple() -> None:
    atr_based = stop_and_targets(D(100), D(1), params())
    assert atr_based.risk == D("1.5")
    hard = stop_and_targets(D(100), D(1), params(hard_stop_min_pct=D(2)))
    assert (hard.risk, hard.stop) == (D(2), D(98))
    assert (hard.tp1, hard.tp2) == (D(102), D(104))
    custom = stop_and_targets(D(100), D(1), params(atr_stop_multiple=D(3),
                                                   tp1_multiple=D("1.5"),
                                                   tp2_multiple=D(3)))
    assert (custom.stop, custom.tp1, custom.tp2) == (D(97), D("104.5"), D(109))


def test_atr_risk_scaling_above_the_threshold() -> None:
    p = params()
    assert risk_scale(D(1), D(100), p) == 1  # 1 % ATR
    assert risk_scale(D(2), D(100), p) == 1  # at the threshold: not above
    assert risk_scale(D("2.5"), D(100), p) == D("0.5")
    assert risk_scale(D("2.5"), D(100), params(atr_risk_scaling_threshold=D(3))) == 1
    # In the decision: a 3 % ATR bar is an entry at half the risk.
    s = snap(atr=D(3), bar=bar(close="101", low="100.2"))
    d = entry_decision(s, p)
    assert d.signal == 1 and d.risk_scale == D("0.5")


def test_position_size_is_risk_over_r_scaled_and_capped() -> None:
    inst = next(i for i in demo_instruments((VENUES[0],)) if i.symbol == "BTC-PERP")
    levels = stop_and_targets(D(40000), D(200), params())  # R = 300
    p = params(max_position_notional=D(100_000))
    # 10,000 × 0.5 % = 50 at risk / 300 = 0.1666.. BTC
    assert position_size(D(10_000), levels, D(1), p, inst) == inst.round_qty(D(50) / 300)
    assert position_size(D(10_000), levels, D("0.5"), p, inst) == inst.round_qty(D(25) / 300)
    capped = position_size(D(10_000), levels, D(1), params(max_position_notional=D(2000)),
                           inst)
    assert capped == inst.round_qty(D(2000) / D(40000))
    assert position_size(D(0), levels, D(1), p, inst) == 0


def test_exit_after_max_bars_in_trade() -> None:
    p = params(max_bars_in_trade=48)
    assert exit_decision(snap(), p, 48) == "max_bars"
    assert exit_decision(snap(), p, 47) is None
    assert exit_decision(snap(), params(max_bars_in_trade=0), 10_000) is None


def test_exit_on_trend_flip() -> None:
    flipped = snap(htf_close=D(99))
    assert exit_decision(flipped, params(), 1) == "trend_flip"
    assert exit_decision(flipped, params(exit_on_trend_flip=False), 1) is None
    assert exit_decision(snap(), params(), 1) is None
    assert exit_decision(snap(htf_ema=None), params(), 1) is None  # unknown: no flip


def test_the_model_feeds_the_volume_average_of_the_bars_before() -> None:
    model = AtrModel(params(volume_ma_period=2, fast_ema_period=2, slow_ema_period=3,
                            atr_period=2))
    snaps = [model.on_entry_bar(replace(bar(volume=v), start=T0 + i * FIVE))
             for i, v in enumerate(("10", "20", "30"))]
    assert snaps[1].volume_avg is None
    assert snaps[2].volume_avg == D(15)
    assert snaps[2].ema_slow is not None and snaps[2].atr is not None


def test_params_map_the_seed_knobs_to_snake_case_and_are_bounded() -> None:
    validated = dict(ATR_TREND.validate({}))
    for knob in ("use_multi_tf_atr_strategy", "htf_interval", "atr_period",
                 "atr_stop_multiple", "hard_stop_min_pct", "tp1_multiple", "tp2_multiple",
                 "min_atr_pct", "min_atr_usd", "max_ema_distance_atr", "wick_atr_buffer",
                 "exit_on_trend_flip", "max_bars_in_trade", "breakeven_after_tp1",
                 "use_rsi_filter", "use_volume_filter", "atr_risk_scaling_threshold",
                 "atr_risk_scaling_factor"):
        assert knob in validated
    for bad in ({"atrPeriod": 14}, {"atr_period": 0}, {"tp1_multiple": "3"},
                {"htf_interval": "1m"}, {"fast_ema_period": 60}, {"max_bars_in_trade": -1}):
        with pytest.raises(InvalidParams):
            ATR_TREND.validate(bad)
