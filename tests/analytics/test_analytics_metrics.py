"""The analytics metrics (app/domain/analytics.py): each one against an independent,
well-kept implementation used only here as a test oracle — empyrical-reloaded for the
return-based ratios, plain pandas formulas for the trade statistics — on a known
equity curve and trade list, and against a hand computation on a tiny one."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from app.domain.analytics import (
    EquityPoint,
    TradeRecord,
    cagr,
    calmar,
    daily_equity,
    downside_deviation,
    max_drawdown,
    order_stats,
    performance,
    r_distribution,
    realized_curve,
    sharpe,
    simple_returns,
    sortino,
    to_json,
    total_return,
    trade_stats,
    volatility,
)

empyrical = pytest.importorskip("empyrical")

T0 = datetime(2022, 1, 1, tzinfo=UTC)
D = Decimal


def curve(values: list[str | float]) -> list[EquityPoint]:
    return [EquityPoint(T0 + timedelta(days=i), D(str(v))) for i, v in enumerate(values)]


def trade(net: str, *, direction: str = "long", risk: str | None = None, venue: str = "v1",
          strategy: str | None = "s1", days: int = 0, reason: str = "signal") -> TradeRecord:
    pnl = D(net)
    r = pnl / D(risk) if risk is not None else None
    return TradeRecord(
        f"t{net}{days}", "c", venue, "BTC-PERP", strategy, direction, D(1), D(100), D(100),
        T0 + timedelta(days=days), T0 + timedelta(days=days, hours=2), pnl + D("0.1"),
        D("0.1"), D(0), pnl, pnl, reason, None, D(risk) if risk else None, r)


def close(a: Decimal | None, b: float, rel: float = 1e-12) -> bool:
    assert a is not None
    return math.isclose(float(a), b, rel_tol=rel, abs_tol=1e-15)


# ---------------------------------------------------------------- hand computation


def test_tiny_curve_by_hand() -> None:
    points = curve([100, 110, 99, "108.9"])
    r = simple_returns([p.equity for p in points])
    assert r == [D("0.1"), D("-0.1"), D("0.1")]
    # mean 1/30, sample std √(1/75) = 1/(5√3): Sharpe (P = 1) = 5√3/30 = √3/6.
    assert close(sharpe(r, 1), math.sqrt(3) / 6)
    assert close(sharpe(r, 365), math.sqrt(3) / 6 * math.sqrt(365))
    assert close(volatility(r, 1), 1 / (5 * math.sqrt(3)))
    # Downside: shortfalls 0, 0.1, 0 → √(0.01 / 3); Sortino (P = 1) = (1/30)/√(1/300) = 1/√3.
    assert close(downside_deviation(r, 1), math.sqrt(0.01 / 3))
    assert close(sortino(r, 1), 1 / math.sqrt(3))
    # Three periods of a 3-period year: one year, CAGR = the total return.
    assert total_return(D(100), D("108.9")) == D("0.089")
    assert close(cagr(D(100), D("108.9"), 3, 3), 0.089)
    dd = max_drawdown(points)
    assert dd.amount == D(11) and dd.pct == D(10)
    assert dd.start == T0 + timedelta(days=1) and dd.trough == T0 + timedelta(days=2)
    assert dd.end is None and dd.duration == timedelta(days=2)  # not recovered
    assert close(calmar(cagr(D(100), D("108.9"), 3, 3), dd), 0.89)


def test_drawdown_recovery_ends_it() -> None:
    dd = max_drawdown(curve([100, 120, 90, 100, 121, 110]))
    assert dd.pct == D(25) and dd.amount == D(30)
    assert dd.start == T0 + timedelta(days=1) and dd.end == T0 + timedelta(days=4)
    assert dd.duration == timedelta(days=3)


def test_tiny_trade_list_by_hand() -> None:
    trades = [trade("10", risk="5"), trade("-5", direction="short", risk="5"),
              trade("20", direction="short", risk="10"), trade("0")]
    s = trade_stats(trades)
    assert (s.trades, s.wins, s.losses) == (4, 2, 1)
    assert s.win_rate == D("0.5")
    assert s.average_win == D(15) and s.average_loss == D(-5)
    assert s.profit_factor == D(6)
    assert s.expectancy == D("6.25")
    assert s.average_r == (D(2) + D(-1) + D(2)) / 3
    assert s.average_duration == timedelta(hours=2)
    assert r_distribution(trades) == {"<-2R": 0, "-2R..-1R": 0, "-1R..0R": 1, "0R..1R": 0,
                                      "1R..2R": 0, "2R..3R": 2, ">=3R": 0}
    p = performance(curve([100, 110, 99, "108.9"]), trades)
    assert p.long.trades == 2 and p.long.win_rate == D("0.5")
    assert p.short.trades == 2 and p.short.win_rate == D("0.5")
    assert set(p.by_strategy) == {"s1"} and p.by_venue["v1"].trades == 4


def test_undefined_metrics_are_none() -> None:
    s = trade_stats([])
    assert s.win_rate is s.profit_factor is s.expectancy is None
    assert trade_stats([trade("5")]).profit_factor is None  # no loss
    assert sharpe([D("0.01")], 365) is None  # one return: no standard deviation
    assert sharpe([D("0.01"), D("0.01")], 365) is None  # zero dispersion
    assert sortino([D("0.01"), D("0.02")], 365) is None  # no downside
    assert max_drawdown(curve([1, 2, 3])).pct == 0
    assert calmar(D(1), max_drawdown(curve([1, 2, 3]))) is None


def test_order_rates() -> None:
    o = order_stats(10, ["TRADING_HALTED", "RISK_LIMIT", "RISK_LIMIT"], 6)
    assert o.accepted == 7 and o.rejected == 3
    assert o.success_rate == D("0.7") and o.rejection_rate == D("0.3")
    assert o.fill_rate == D(6) / D(7)
    assert o.rejections == {"RISK_LIMIT": 2, "TRADING_HALTED": 1}


def test_daily_equity_keeps_the_start_and_each_days_last_point() -> None:
    points = [EquityPoint(T0 + timedelta(hours=h), D(100 + h)) for h in range(0, 72, 6)]
    daily = daily_equity(points)
    assert [p.equity for p in daily] == [D(100), D(118), D(142), D(166)]


def test_json_has_decimals_as_strings() -> None:
    p = performance(curve([100, 110, 99, "108.9"]), [trade("10")])
    doc = to_json(p)
    assert isinstance(doc, dict)
    assert doc["total_return"] == "0.089"
    assert D(doc["max_drawdown"]["pct"]) == 10
    assert doc["max_drawdown"]["start"] == (T0 + timedelta(days=1)).isoformat()


# ---------------------------------------------------------------- the oracle


@pytest.fixture(scope="module")
def known_curve() -> list[EquityPoint]:
    """Two years of daily equity: a seeded random walk with drift and fat days."""
    rng = np.random.default_rng(20220101)
    rets = rng.normal(0.0008, 0.025, 730) + rng.standard_t(3, 730) * 0.004
    equity = 10_000 * np.cumprod(1 + rets)
    values = [D("10000")] + [D(f"{v:.2f}") for v in equity]
    return curve(values)  # type: ignore[arg-type]


def _float_returns(points: list[EquityPoint]) -> pd.Series:
    eq = pd.Series([float(p.equity) for p in points])
    return eq.pct_change().dropna()


@pytest.mark.parametrize("ppy", [365, 252, 52])
def test_ratios_equal_empyrical(known_curve: list[EquityPoint], ppy: int) -> None:
    r = simple_returns([p.equity for p in known_curve])
    oracle = _float_returns(known_curve)
    assert close(sharpe(r, ppy), empyrical.sharpe_ratio(oracle, annualization=ppy), 1e-9)
    assert close(sortino(r, ppy), empyrical.sortino_ratio(oracle, annualization=ppy), 1e-9)
    assert close(volatility(r, ppy),
                 empyrical.annual_volatility(oracle, annualization=ppy), 1e-9)
    assert close(downside_deviation(r, ppy),
                 empyrical.downside_risk(oracle, annualization=ppy), 1e-9)
    start, end = known_curve[0].equity, known_curve[-1].equity
    growth = cagr(start, end, len(r), ppy)
    assert close(growth, empyrical.annual_return(oracle, annualization=ppy), 1e-9)
    dd = max_drawdown(known_curve)
    assert close(-dd.pct / 100, empyrical.max_drawdown(oracle), 1e-9)
    assert close(calmar(growth, dd), empyrical.calmar_ratio(oracle, annualization=ppy), 1e-9)


def test_total_return_equals_empyrical(known_curve: list[EquityPoint]) -> None:
    oracle = _float_returns(known_curve)
    assert close(total_return(known_curve[0].equity, known_curve[-1].equity),
                 empyrical.cum_returns_final(oracle), 1e-9)


def test_drawdown_dates_and_amount_equal_pandas(known_curve: list[EquityPoint]) -> None:
    eq = pd.Series([float(p.equity) for p in known_curve],
                   index=[p.at for p in known_curve])
    peak = eq.cummax()
    trough_at = (eq / peak - 1).idxmin()
    peak_at = eq[:trough_at].idxmax()
    after = eq[trough_at:]
    recovered = after[after >= eq[peak_at]]
    dd = max_drawdown(known_curve)
    assert dd.trough == trough_at and dd.start == peak_at
    assert dd.end == (recovered.index[0] if len(recovered) else None)
    assert close(dd.amount, eq[peak_at] - eq[trough_at], 1e-12)


@pytest.fixture(scope="module")
def known_trades() -> list[TradeRecord]:
    rng = np.random.default_rng(7)
    out = []
    for i in range(300):
        net = D(f"{rng.normal(3, 40):.4f}")
        risk = D(f"{rng.uniform(5, 50):.2f}")
        out.append(trade(str(net), direction="long" if rng.random() < 0.6 else "short",
                         risk=str(risk), venue=f"v{i % 3}", strategy=f"s{i % 2}", days=i))
    return out


def _pandas_stats(frame: pd.DataFrame) -> dict[str, float]:
    pnl = frame["net"]
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    return {
        "win_rate": (pnl > 0).mean(),
        "average_win": wins.mean(),
        "average_loss": losses.mean(),
        "profit_factor": wins.sum() / abs(losses.sum()),
        "expectancy": pnl.mean(),
        "average_r": frame["r"].mean(),
        "total_pnl": pnl.sum(),
    }


def test_trade_statistics_equal_pandas(known_trades: list[TradeRecord]) -> None:
    frame = pd.DataFrame({
        "net": [float(t.net_pnl) for t in known_trades],
        "r": [float(t.r_multiple or 0) for t in known_trades],
        "direction": [t.direction for t in known_trades],
        "venue": [t.venue for t in known_trades],
        "strategy": [t.strategy for t in known_trades],
    })
    p = performance(curve([100, 101]), known_trades)
    groups = [(p.trades, frame), (p.long, frame[frame.direction == "long"]),
              (p.short, frame[frame.direction == "short"])]
    groups += [(p.by_venue[k], g) for k, g in frame.groupby("venue")]
    groups += [(p.by_strategy[k], g) for k, g in frame.groupby("strategy")]
    for ours, theirs in groups:
        expected = _pandas_stats(theirs)
        assert ours.trades == len(theirs)
        for name, value in expected.items():
            assert close(getattr(ours, name), value, 1e-9), name
    # R distribution against numpy's histogram with the same edges.
    edges = [-np.inf, -2, -1, 0, 1, 2, 3, np.inf]
    counts, _ = np.histogram(frame["r"], bins=edges)
    assert list(r_distribution(known_trades).values()) == list(counts)


def test_realized_curve_fills_quiet_periods() -> None:
    trades = [trade("10", days=0), trade("-4", days=2)]  # closed at day 0 and 2, 02:00
    points = realized_curve(D(100), trades, T0, T0 + timedelta(days=4), timedelta(days=1))
    assert [p.equity for p in points] == [D(100), D(110), D(110), D(106), D(106)]
    assert points[-1].at == T0 + timedelta(days=4)
    r = simple_returns([p.equity for p in points])
    assert len(r) == 4 and r[1] == 0 and r[3] == 0  # quiet days are zero returns


def test_order_stats_take_counts_by_code() -> None:
    assert order_stats(4, {"A": 2}, 1) == order_stats(4, ["A", "A"], 1)
