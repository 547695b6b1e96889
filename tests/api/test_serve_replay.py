"""``perpdesk serve --replay`` in the real app (``PERPDESK_REPLAY``): the feed is the
file, paced on the replay clock; the engine's clock is the data's, /readyz shows how
far it got, and the marks are the file's."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

T0 = datetime(2022, 1, 1, tzinfo=UTC)


def bar_file(path: Path, bars: int) -> Path:
    rows = ["timestamp,open,high,low,close,volume"]
    for i in range(bars):
        at = (T0 + timedelta(minutes=i)).strftime("%Y-%m-%d %H:%M:%S")
        close = 46000 + i
        rows.append(f"{at},46000.0,{max(46010, close)}.0,45990.0,{close}.0,1000000")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_the_server_replays_a_file_on_its_clock(make_api: Callable[..., Any],
                                                tmp_path: Path) -> None:
    path = bar_file(tmp_path / "bars.csv", 8)
    api = make_api(replay=path, replay_speed="6000", feed="synthetic")
    system = api.system
    assert system.replay is not None and system.now() >= T0
    api.wait_for(lambda: system.replay.state == "ended", "the replay to end", timeout=30)
    body = api.get("/readyz").json()
    assert (body["replay"]["state"], body["replay"]["speed"]) == ("ended", "6000")
    assert body["replay"]["updates"] == 8 * 12
    assert body["replay"]["last_at"] == (T0 + timedelta(minutes=7, seconds=45)).isoformat()
    # The clock stopped with the data (not on the wall clock of 2020s).
    assert T0 + timedelta(minutes=7, seconds=45) <= system.now() < T0 + timedelta(hours=1)
    markets = api.ok(api.get("/api/v1/markets", "viewer"))
    btc = next(m for m in markets if m["venue"] == "paper-binance" and m["symbol"] == "BTC-PERP")
    last_close = Decimal("46007.0")
    assert Decimal(btc["mark"]) == last_close
    others = [m for m in markets if m["venue"] == "paper-bybit"]
    assert all(m["mark"] is None for m in others)  # no synthetic feed alongside
    # The dashboard's mark panel says what is replayed, and ages marks on its clock.
    from app.auth.principal import Principal, Role
    from app.web.routes import render_fragment

    html = render_fragment(system, "marks", Principal("op", Role.OPERATOR, None, "key"), {})
    assert 'class="replay-status" data-state="ended"' in html
    assert "Replay of <strong>bars.csv</strong>" in html
    assert "data time 2022-01-01 00:0" in html  # where the data stopped (paced: just after)
    row = html[html.index('data-venue="paper-binance" data-symbol="BTC-PERP"'):]
    row = row[:row.index("</tr>")]
    assert "STALE" not in row and "never" not in row


def test_recorded_signals_trade_the_replayed_market(make_api: Callable[..., Any],
                                                    tmp_path: Path) -> None:
    """``--replay-signals``: each recorded signal is submitted at its time against the
    replayed market, as ``POST /api/v1/signals`` would, and is read back the same way."""
    # 40 minutes: the signal pipeline sizes its exits on 21 one-minute candles first.
    path = bar_file(tmp_path / "bars.csv", 40)
    signals = tmp_path / "model.csv"
    # (a fifth of the client's signal size: its position limit is 0.01 BTC here)
    signals.write_text("timestamp,signal,client,strength\n"
                       "2022-01-01 00:25:00,1,demo,0.2\n"
                       "2022-01-01 00:28:30,1,nobody,0.2\n"
                       "2022-01-01 00:30:00,0,demo,\n"
                       "2022-01-01 00:33:00,-1,demo,0.2\n")
    api = make_api(replay=path, replay_speed="max", replay_signals=signals, feed="synthetic")
    system = api.system
    api.wait_for(lambda: system.replay.state == "ended", "the replay to end", timeout=30)
    status = api.get("/readyz").json()["replay"]["signals"]
    assert status == {"file": "model.csv", "submitted": 3, "refused": 1,
                      "last_refusal": status["last_refusal"], "other_markets": 0,
                      "outside_data": 0}
    assert status["last_refusal"].startswith("line 3: ") and "nobody" in status["last_refusal"]

    long, flat, short = (api.ok(api.get(f"/api/v1/signals/model.csv:{line}", "viewer"))
                         for line in (2, 4, 5))
    assert (long["signal"], long["at"]) == (1, (T0 + timedelta(minutes=25)).isoformat())
    assert long["orders"] and long["orders"][0]["status"] == "filled", long
    assert long["orders"][0]["side"] == "buy" and long["orders"][0]["status"] == "filled"
    # Filled at the market it was made on: the 00:25 bar's open (46000 bid, a tick up).
    assert Decimal(long["orders"][0]["avg_fill_price"]) == Decimal("46000.1")
    # (the long's bracket may have closed it by then: flat then has nothing to close)
    assert flat["at"] == (T0 + timedelta(minutes=30)).isoformat() and flat["message"]
    assert short["orders"][0]["side"] == "sell" and short["orders"][0]["status"] == "filled"
    assert Decimal(short["orders"][0]["avg_fill_price"]) == Decimal("46000.0")
    # The dashboard's replay line says how the signals went.
    from app.auth.principal import Principal, Role
    from app.web.routes import render_fragment

    html = render_fragment(system, "marks", Principal("op", Role.OPERATOR, None, "key"), {})
    assert "signals from <strong>model.csv</strong>: 3 submitted" in html
    assert "1 refused</span>" in html and "line 3: " in html
