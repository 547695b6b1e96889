"""``perpdesk backtest`` on real BTC-PERP minutes (the first few thousand of the
shared month, to stay fast): trades and metrics come out, the run is deterministic,
CSV and Parquet inputs give the same trades, fees and funding reach the trades, the
report directory holds what it says, and a grid ranks its runs."""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from app.backtest.cli import grid_sets, parse_fees, parse_params
from app.backtest.report import write_report
from app.backtest.runner import BacktestConfig, Fees, run_backtest
from app.cli import main
from app.domain.analytics import max_drawdown, trade_stats

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "btc-perp-2022-01_1m.csv"
MA = {"fast_period": "5", "slow_period": "15", "order_notional": "300"}


def head(tmp: Path, rows: int) -> Path:
    if not DATA.exists():
        pytest.skip(f"{DATA} is not there")
    path = tmp / f"btc-{rows}.csv"
    with DATA.open() as src, path.open("w") as dst:
        for i, line in enumerate(src):
            if i > rows:
                break
            dst.write(line)
    return path


@pytest.fixture(scope="module")
def bars(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return head(tmp_path_factory.mktemp("bars"), 3000)


def test_ma_crossover_on_real_bars_gives_trades_and_metrics_deterministically(
        bars: Path, tmp_path: Path) -> None:
    config = BacktestConfig("ma_crossover", bars, params=MA)
    first = run_backtest(config)
    second = run_backtest(config)
    assert first.bars == 3000
    assert len(first.trades) >= 10
    p = first.performance
    assert p.trades.trades == len(first.trades)
    assert p.sharpe is not None and p.trades.win_rate is not None
    assert p.orders is not None and p.orders.submitted > 0 and p.orders.fill_rate is not None
    assert p.long.trades + p.short.trades == p.trades.trades
    assert all(t.r_multiple is not None for t in first.trades)  # every trade had its stop
    # Equity reconciles with the trades: the curve's P&L is the closed trades' net P&L
    # plus what the position still open holds (unrealized, and fees of its entry).
    assert abs(p.total_pnl - p.trades.total_pnl) < 5
    # Deterministic: the same report, byte for byte (run.json alone has wall times).
    a, b = write_report(first, tmp_path / "a"), write_report(second, tmp_path / "b")
    for name in ("metrics.json", "trades.csv", "equity.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert [t.trade_id for t in first.trades] == [t.trade_id for t in second.trades]


def test_report_directory(bars: Path, tmp_path: Path) -> None:
    result = run_backtest(BacktestConfig("ma_crossover", bars, params=MA))
    out = write_report(result, tmp_path / "report")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["strategy"] == "ma_crossover" and metrics["bars"] == 3000
    assert metrics["params"]["fast_period"] == 5 and metrics["periods_per_year"] == 365
    for key in ("total_pnl", "total_return", "cagr", "volatility", "sharpe", "sortino",
                "calmar", "max_drawdown", "trades", "long", "short", "r_distribution",
                "orders", "by_venue", "by_strategy"):
        assert key in metrics, key
    assert Decimal(metrics["trades"]["total_pnl"]) == result.performance.trades.total_pnl
    with (out / "trades.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(result.trades)
    assert sum(Decimal(r["net_pnl"]) for r in rows) == result.performance.trades.total_pnl
    trades = pq.read_table(out / "trades.parquet")
    assert trades.num_rows == len(rows)
    assert trades.schema.field("net_pnl").type == pa.decimal128(38, 18)
    equity = pq.read_table(out / "equity.parquet")
    assert equity.num_rows == len(result.equity)
    with (out / "equity.csv").open() as f:
        eq_rows = list(csv.DictReader(f))
    worst = max(Decimal(r["drawdown_pct"]) for r in eq_rows)
    # Percentages are shown to 4 places (metrics.json keeps them exact).
    assert worst == max_drawdown(result.equity).pct.quantize(Decimal("0.0001"))
    assert metrics["max_drawdown"]["pct"] == str(result.performance.max_drawdown.pct)
    for row in rows:
        for column in ("pnl_pct", "r_multiple", "slippage_bps", "entry_slippage_bps"):
            assert len(row[column].partition(".")[2]) == 4, (column, row[column])
        assert Decimal(row["pnl_pct"]) == Decimal(row["pnl_pct"]).quantize(Decimal("0.0001"))
    assert Decimal(metrics["trades"]["average_slippage_bps"]) == \
        result.performance.trades.average_slippage_bps
    assert json.loads((out / "run.json").read_text())["trades"] == len(result.trades)


def test_the_trades_carry_their_slippage_against_arrival(bars: Path, tmp_path: Path) -> None:
    result = run_backtest(BacktestConfig("ma_crossover", bars, params=MA))
    assert result.trades
    for t in result.trades:
        # Every order went in with a two-sided (bar-synthesized) book: arrivals known.
        assert t.entry_arrival is not None and t.exit_arrival is not None
        sign = 1 if t.direction == "long" else -1
        assert t.entry_slippage == sign * (t.entry_price - t.entry_arrival) * t.qty
        assert t.exit_slippage == sign * (t.exit_arrival - t.exit_price) * t.qty
        assert t.slippage == t.entry_slippage + t.exit_slippage
        # The entries are market orders: they pay at least the half spread.
        assert t.entry_slippage > 0 and t.entry_slippage_bps is not None
        assert t.entry_slippage_bps > 0
    stats = result.performance.trades
    assert stats.slippage == sum(t.slippage for t in result.trades if t.slippage is not None)
    assert stats.average_slippage_bps is not None and stats.average_slippage_bps > 0
    out = write_report(result, tmp_path / "report")
    with (out / "trades.csv").open() as f:
        rows = list(csv.DictReader(f))
    for column in ("entry_arrival", "exit_arrival", "entry_slippage", "exit_slippage",
                   "entry_slippage_bps", "exit_slippage_bps", "slippage", "slippage_bps"):
        assert all(r[column] for r in rows), column
    first = result.trades[0]
    assert Decimal(rows[0]["entry_slippage_bps"]) == first.entry_slippage_bps.quantize(
        Decimal("0.0001"))
    table = pq.read_table(out / "trades.parquet")
    assert table.schema.field("slippage_bps").type == pa.decimal128(38, 18)
    html = (out / "report.html").read_text()
    assert "entry slip bps" in html and str(first.entry_slippage_bps.quantize(
        Decimal("0.01"))) in html


def test_parquet_input_gives_the_same_trades(bars: Path, tmp_path: Path) -> None:
    parquet = tmp_path / "bars.parquet"
    table = pacsv.read_csv(bars, convert_options=pacsv.ConvertOptions(
        column_types={"timestamp": pa.string()}))
    pq.write_table(table, parquet)
    from_csv = run_backtest(BacktestConfig("ma_crossover", bars, params=MA))
    from_parquet = run_backtest(BacktestConfig("ma_crossover", parquet, params=MA))
    assert [(t.opened_at, t.net_pnl) for t in from_parquet.trades] == \
        [(t.opened_at, t.net_pnl) for t in from_csv.trades]


def test_fees_and_funding_reach_the_trades(bars: Path, tmp_path: Path) -> None:
    free = run_backtest(BacktestConfig("ma_crossover", bars, params=MA, fees=Fees(
        Decimal(0), Decimal(0))))
    assert trade_stats(free.trades).fees == 0
    funding = tmp_path / "funding.csv"
    funding.write_text("timestamp,funding_rate\n" + "".join(
        f"2022-01-0{1 + h // 24} {h % 24:02d}:00:00,0.001\n" for h in range(0, 48, 8)))
    funded = run_backtest(BacktestConfig("ma_crossover", bars, params=MA, funding=funding))
    assert any(t.funding != 0 for t in funded.trades)
    assert funded.performance.trades.funding == sum(t.funding for t in funded.trades)


def test_other_strategies_run(bars: Path) -> None:
    atr = run_backtest(BacktestConfig("atr_trend", bars, params={
        "trend_ema_period": 20, "fast_ema_period": 5, "slow_ema_period": 10,
        "atr_period": 5, "max_position_notional": "300", "max_bars_in_trade": 12}))
    assert atr.bars == 3000 and atr.performance.orders is not None
    with pytest.raises(ValueError, match="cannot be backtested"):
        run_backtest(BacktestConfig("funding_arb", bars))


def test_cli_writes_the_report_and_refuses_bad_input(bars: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    code = main(["backtest", "--strategy", "ma_crossover", "--data", str(bars),
                 "--params", *[f"{k}={v}" for k, v in MA.items()], "--fees", "2,5",
                 "--out", str(out)])
    assert code == 0
    assert "trades=" in capsys.readouterr().out
    assert {"metrics.json", "trades.csv", "equity.csv", "trades.parquet",
            "equity.parquet"} <= {p.name for p in out.iterdir()}
    bad = main(["backtest", "--strategy", "ma_crossover", "--data", str(bars),
                "--params", "fast_period=50", "slow_period=15", "--out", str(tmp_path / "x")])
    assert bad == 2 and "fast_period" in capsys.readouterr().err
    missing = main(["backtest", "--strategy", "ma_crossover", "--data",
                    str(tmp_path / "nope.csv"), "--out", str(tmp_path / "y")])
    assert missing == 2


def test_cli_backtests_recorded_signals_alone(bars: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Seed 002's historical mode: a file of signals, no strategy; the report says how
    the signals went and counts their orders (and their brackets')."""
    signals = tmp_path / "model.csv"
    signals.write_text("timestamp,signal,client,strength\n"
                       "2021-12-31 22:00:00,1,demo,0.2\n"  # before the bars: left out
                       "2022-01-01 01:00:00,1,demo,0.2\n"
                       "2022-01-01 03:00:00,-1,demo,0.2\n"
                       "2022-01-01 04:00:00,1,ghost,0.2\n"  # no such client: refused
                       "2022-01-01 05:00:00,0,demo,\n")
    out = tmp_path / "signals"
    assert main(["backtest", "--signals", str(signals), "--data", str(bars),
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "signals from model.csv" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["strategy"] is None and metrics["params"] == {}
    assert metrics["signals"] == {
        "file": str(signals), "submitted": 3, "refused": 1, "outside_data": 1,
        "other_markets": 0, "last_refusal": "line 5: client 'ghost' has no account on "
                                            "'paper-binance'"}
    assert "signals: 3 submitted, 1 refused (last: line 5: " in printed
    assert metrics["trades"]["trades"] >= 1 and metrics["orders"]["submitted"] >= 3
    with (out / "trades.csv").open() as f:
        assert {row["strategy"] for row in csv.DictReader(f)} == {"signals"}
    assert "Backtest: signals model.csv on BTC-PERP" in (out / "report.html").read_text()
    # Neither a strategy nor signals, or a strategy's parameters without one: refused.
    for args in ([], ["--signals", str(signals), "--params", "fast_period=5"]):
        assert main(["backtest", "--data", str(bars), *args,
                     "--out", str(tmp_path / "none")]) == 2
        assert "give --strategy" in capsys.readouterr().err


def test_params_file(bars: Path, tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("fast_period: 5\nslow_period: 15\norder_notional: '300'\n")
    out = tmp_path / "pf"
    assert main(["backtest", "--strategy", "ma_crossover", "--data", str(bars),
                 "--params-file", str(params), "--params", "slow_period=20",
                 "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["params"]["slow_period"] == 20 and metrics["params"]["fast_period"] == 5


def test_argument_parsing() -> None:
    assert parse_params(["a=1", "b=[1, 2]", "c=true", "d=0.1"]) == \
        {"a": "1", "b": [1, 2], "c": True, "d": "0.1"}
    assert parse_fees("2,5") == Fees(Decimal(2), Decimal(5))
    assert parse_fees("3") == Fees(Decimal(3), Decimal(3))
    with pytest.raises(ValueError):
        parse_fees("x")
    assert grid_sets(["a=1,2", "b=x"]) == [{"a": "1", "b": "x"}, {"a": "2", "b": "x"}]


def test_grid_runs_in_processes_and_ranks(tmp_path: Path) -> None:
    data = head(tmp_path, 1500)
    out = tmp_path / "grid"
    assert main(["backtest", "--strategy", "ma_crossover", "--data", str(data),
                 "--params", "order_notional=300", "--grid", "fast_period=3,5",
                 "slow_period=15", "--jobs", "2", "--out", str(out)]) == 0
    with (out / "summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["rank"] for r in rows] == ["1", "2"]
    sharpes = [Decimal(r["sharpe"]) for r in rows if r["sharpe"]]
    assert sharpes == sorted(sharpes, reverse=True)
    for r in rows:
        assert (out / r["dir"] / "metrics.json").exists()
