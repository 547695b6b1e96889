"""Issue 15: a backtest of the MA crossover on the real BTC-PERP bars gives the same
trades as the same strategy in ``perpdesk serve --replay`` on the same data — one
engine, one paper venue, one strategy host, one strategy code.

The backtest is ``run_backtest`` (app/backtest/runner.py); the replay is the real
server, started as a subprocess with the CLI (``serve --replay FILE --speed max``)
on a temporary SQLite database, the strategy configured in its YAML; its trades
are read through the REST API once ``/readyz`` says the replay has ended. Both
are compared field by field, with Decimal equality: same count, ids, directions,
quantities, entry and exit prices and times, fees, funding, P&L and exit reasons,
and the account's final equity.

The server is configured as the backtest's engine is (app/simulate.py
build_demo_engine): a generic-profile paper venue and no risk profile beyond the
instruments' rules (the backtest's ``UNLIMITED``). Nothing here reaches into the
runner's internals: whatever the runner does to go fast, its trades must stay
these.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from app.backtest.runner import BacktestConfig, BacktestResult, run_backtest
from app.domain.analytics import TradeRecord
from app.marketdata.replay import default_data_dir

BARS = default_data_dir() / "btc-perp-2022-01_1m.csv"
SLICE_BARS = 1440  # one day of 1-minute bars: 17 trades with these parameters
PARAMS = {"interval": "5m", "fast_period": 5, "slow_period": 20}
CLIENT, VENUE = "demo", "paper-binance"
STARTUP_TIMEOUT_S = 60.0
REPLAY_TIMEOUT_S = 300.0  # bounded; the replay takes seconds

ENGINE_YAML = """\
# As the backtest's engine (app/simulate.py build_demo_engine): a generic paper venue
# and no risk profile beyond the instruments' rules.
venues:
  - {name: paper-binance, profile: generic}
  - {name: paper-bybit, profile: bybit-v5}
risk:
  default:
    price_band_pct: null
    max_open_orders: null
    max_margin_ratio: null
    breakers: {consecutive_losses: null, daily_loss_pct: null, max_drawdown_pct: null}
"""
CONFIG_YAML = ENGINE_YAML + f"""\
strategies:
  - id: replay-ma
    kind: ma_crossover
    client: {CLIENT}
    venue: {VENUE}
    params: {json.dumps(PARAMS)}
"""


def _slice(path: Path) -> Path:
    with BARS.open() as source:
        lines = [next(source) for _ in range(SLICE_BARS + 1)]  # the header and the bars
    path.write_text("".join(lines))
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, key: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _cli(*args: str, cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"perpdesk {args[0]} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _replayed_trades(tmp_path: Path, data: Path, config_yaml: str = CONFIG_YAML,
                     *extra: str) -> tuple[list[dict], dict]:
    """Run ``perpdesk serve --replay data --speed max`` (and ``extra`` arguments); its
    trades and balance of the strategy's account once the replay has ended."""
    config = tmp_path / "perpdesk.yaml"
    config.write_text(config_yaml)
    url = f"sqlite:///{tmp_path / 'replay.db'}"
    key = _cli("keys", "create", "--role", "operator", "--name", "replay-test",
               "--database-url", url, cwd=tmp_path).strip().splitlines()[0]
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port),
             "--database-url", url, "--config", str(config), "--log-level", "info",
             "--replay", str(data), "--speed", "max", *extra],
            cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S + REPLAY_TIMEOUT_S
        replay: dict = {}
        while time.monotonic() < deadline:
            assert server.poll() is None, f"server exited:\n{log_path.read_text()[-4000:]}"
            try:
                _, body = _get(f"{base}/readyz")
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                body = None
            replay = (body or {}).get("replay") or {}
            if replay.get("state") in ("ended", "failed"):
                break
            time.sleep(0.2)
        assert replay.get("state") == "ended", \
            f"replay did not end: {replay}\n{log_path.read_text()[-4000:]}"
        status, trades = _get(f"{base}/api/v1/trades?client={CLIENT}&venue={VENUE}"
                              f"&limit=1000", key)
        assert status == 200, trades
        status, balances = _get(f"{base}/api/v1/balances?client={CLIENT}&venue={VENUE}", key)
        assert status == 200, balances
        return trades, balances[0]
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)


def _backtest_row(t: TradeRecord) -> tuple:
    return (t.trade_id, t.direction, t.qty, t.entry_price, t.exit_price, t.gross_pnl,
            t.fees, t.funding, t.net_pnl, t.pnl_pct, t.opened_at, t.closed_at, t.exit_reason)


def _api_row(t: dict) -> tuple:
    return (t["trade_id"], t["direction"], Decimal(t["qty"]), Decimal(t["entry_price"]),
            Decimal(t["exit_price"]), Decimal(t["realized_pnl"]), Decimal(t["fees"]),
            Decimal(t["funding"]), Decimal(t["net_pnl"]), Decimal(t["pnl_pct"]),
            datetime.fromisoformat(t["opened_at"]), datetime.fromisoformat(t["closed_at"]),
            t["exit_reason"])


def test_serve_replay_gives_the_backtests_trades(tmp_path: Path) -> None:
    data = _slice(tmp_path / "btc-perp-one-day.csv")
    backtest: BacktestResult = run_backtest(BacktestConfig(
        "ma_crossover", data, symbol="BTC-PERP", venue=VENUE, params=PARAMS))
    assert len(backtest.trades) > 3, "the slice must give several trades to compare"
    assert {t.exit_reason for t in backtest.trades} >= {"signal reversed"}

    api_trades, balance = _replayed_trades(tmp_path, data)

    expected = [_backtest_row(t) for t in backtest.trades]
    replayed = sorted((_api_row(t) for t in api_trades), key=lambda row: row[10])
    assert len(replayed) == len(expected)
    for mine, theirs in zip(replayed, expected, strict=True):
        assert mine == theirs
    # The account ends where the backtest's did (the API shows money to 8 places).
    final = backtest.equity[-1].equity
    assert Decimal(balance["equity"]) == final.quantize(Decimal("0.00000001"))


def test_recorded_signals_trade_alike_in_a_backtest_and_a_replay(tmp_path: Path) -> None:
    """Seed 002's historical and simulation modes on one file of signals:
    ``perpdesk backtest --signals`` and ``serve --replay-signals`` give the same trades,
    bracket exits included."""
    data = _slice(tmp_path / "btc-perp-one-day.csv")
    signals = tmp_path / "signals.csv"
    rows = ["timestamp,signal,strength"]
    for k in range(15):  # every 90 minutes from 00:30 (after the exits' 21 candles)
        at = datetime(2022, 1, 1, 0, 30) + k * timedelta(minutes=90)
        rows.append(f"{at:%Y-%m-%d %H:%M:%S},{(1, -1, 0)[k % 3]},0.2")  # (0.01 BTC limit)
    signals.write_text("\n".join(rows) + "\n")
    backtest = run_backtest(BacktestConfig(None, data, symbol="BTC-PERP", venue=VENUE,
                                           signals=signals))
    assert backtest.signals["submitted"] == 15 and backtest.signals["refused"] == 0
    assert len(backtest.trades) > 5, "the signals must give several trades to compare"
    assert {t.exit_reason for t in backtest.trades} >= {"stop_loss", "take_profit"}

    api_trades, balance = _replayed_trades(tmp_path, data, ENGINE_YAML,
                                           "--replay-signals", str(signals))

    expected = [_backtest_row(t) for t in backtest.trades]
    replayed = sorted((_api_row(t) for t in api_trades), key=lambda row: row[10])
    assert replayed == expected
    final = backtest.equity[-1].equity
    assert Decimal(balance["equity"]) == final.quantize(Decimal("0.00000001"))
