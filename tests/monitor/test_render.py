"""The monitor's pure layers: REST JSON → values → metrics → rich renderables.

Frames are rendered with ``Console(record=True, width=100)``; text is asserted
on the exported text and colours on the rendered segments' styles.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from rich.console import Console, Group, RenderableType

from app.monitor.model import (
    ExitView,
    PortfolioTotals,
    PositionView,
    compute_metrics,
    first_deposit_at,
    fmt_pct,
    fmt_usd,
    realistic_apr_pct,
    scroll_window,
    trading_state_label,
)
from app.monitor.render import (
    Screen,
    Status,
    render_exits,
    render_positions,
    render_screen,
    render_status,
    render_summary,
)

NOW = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)
D = Decimal


def console() -> Console:
    return Console(record=True, width=100, force_terminal=True, color_system="truecolor")


def text_of(renderable: RenderableType) -> str:
    c = console()
    c.print(renderable)
    return c.export_text()


def styles_of(renderable: RenderableType, needle: str) -> list[str]:
    """The colours of every rendered segment that contains ``needle``."""
    c = console()
    found = []
    for segment in c.render(renderable, c.options):
        if needle in segment.text and segment.style is not None:
            color = segment.style.color
            found.append(color.name if color is not None else "")
    assert found, f"{needle!r} was not rendered"
    return found


def portfolio_json(**total: str) -> dict:
    base = {"name": "total", "equity": "20250.00000000", "wallet": "20250.00000000",
            "available": "15000.00000000", "margin_used": "5000.00000000",
            "utilization_pct": "25.00", "realized_pnl": "260.00000000",
            "unrealized_pnl": "0.00000000", "fees": "10.00000000", "funding": "0.00000000",
            "capital": "20000.00000000", "pnl": "250.00000000", "pnl_pct": "1.2500"}
    base.update(total)
    return {"clients": [], "total": base}


def position(symbol: str = "BTC-PERP", upnl: str = "45.20", side: str = "long",
             client: str = "demo", venue: str = "paper-binance") -> PositionView:
    return PositionView.from_api({
        "client": client, "venue": venue, "symbol": symbol, "side": side,
        "qty": "0.002" if side == "long" else "-0.002", "avg_entry_price": "60000.1",
        "mark_price": "60010.5", "notional": "120.02", "unrealized_pnl": upnl,
        "realized_pnl": "0", "fees": "0.06", "funding": "0", "margin": "24",
        "opened_at": "2024-03-01T11:00:00Z"})


def trade(symbol: str = "ADA-PERP", net: str = "28.50", reason: str = "profit_target",
          closed: str = "2024-03-01T11:59:00Z", n: int = 1) -> ExitView:
    return ExitView.from_api({
        "trade_id": f"demo:paper-binance:{symbol}:{n}", "client": "demo",
        "venue": "paper-binance", "symbol": symbol, "direction": "long", "qty": "1",
        "entry_price": "1.0", "exit_price": "1.1", "realized_pnl": net, "fees": "0",
        "funding": "0", "net_pnl": net, "pnl_pct": "1", "opened_at": "2024-03-01T10:00:00Z",
        "closed_at": closed, "exit_reason": reason})


def seed_trades() -> list[ExitView]:
    """Five trades, four wins (seed 001's example: win rate 80 %)."""
    nets = ["100", "80", "60", "22.30", "-12.30"]
    return [trade(f"S{i}-PERP", net, n=i) for i, net in enumerate(nets)]


# ---- parsing and metrics ---------------------------------------------------------------

def test_api_rows_parse_to_decimals_never_floats():
    p = position(upnl="-0.00180000")
    t = trade(net="-0.14198540")
    totals = PortfolioTotals.from_api(portfolio_json())
    for value in (p.qty, p.entry_price, p.mark_price, p.unrealized_pnl, t.net_pnl,
                  totals.capital, totals.available, totals.cumulative_pnl):
        assert type(value) is Decimal
    assert p.unrealized_pnl == D("-0.0018")
    assert t.closed_at == datetime(2024, 3, 1, 11, 59, tzinfo=UTC)
    assert totals.cumulative_pnl == D("250")  # realized 260 − fees 10 + funding 0


def test_metrics_follow_seed_001():
    totals = PortfolioTotals.from_api(portfolio_json())
    m = compute_metrics(totals, seed_trades(), NOW - timedelta(days=10), NOW, leg_outs=1)
    assert (m.trades, m.wins) == (5, 4)
    assert m.win_rate_pct == D(80)
    assert m.cumulative_pnl == D(250)
    assert m.pnl_pct == D("1.25")
    # (250 / 20000) / (10 / 365) = 0.45625 → 45.625 %
    assert m.apr_pct == D("45.625")
    assert m.leg_outs == 1


def test_realistic_apr_waits_for_an_hour_of_history():
    pnl, capital = D(10), D(20000)
    assert realistic_apr_pct(pnl, capital, None, NOW) is None
    assert realistic_apr_pct(pnl, capital, NOW - timedelta(minutes=59), NOW) is None
    assert realistic_apr_pct(pnl, D(0), NOW - timedelta(days=3), NOW) is None
    # exactly one hour: (10/20000) / (1/24/365) = 4.38 → 438 %
    assert realistic_apr_pct(pnl, capital, NOW - timedelta(hours=1), NOW) == D(438)
    # a loss annualizes to a negative APR
    assert realistic_apr_pct(-pnl, capital, NOW - timedelta(days=365), NOW) == D("-0.05")


def test_no_trades_means_no_win_rate():
    totals = PortfolioTotals.from_api(portfolio_json())
    m = compute_metrics(totals, [], None, NOW)
    assert m.trades == 0 and m.win_rate_pct is None and m.apr_pct is None


def test_first_deposit_is_the_apr_origin():
    events = [
        {"seq": 1, "type": "TradingStateChanged", "client": None,
         "created_at": "2024-01-01T00:00:00Z"},
        {"seq": 2, "type": "FundsDeposited", "client": "demo",
         "created_at": "2024-01-02T00:00:00Z"},
        {"seq": 3, "type": "FundsDeposited", "client": "demo-2",
         "created_at": "2024-01-03T00:00:00Z"},
    ]
    assert first_deposit_at(events) == datetime(2024, 1, 2, tzinfo=UTC)
    assert first_deposit_at(events, client="demo-2") == datetime(2024, 1, 3, tzinfo=UTC)
    assert first_deposit_at(events[:1]) == datetime(2024, 1, 1, tzinfo=UTC)  # fallback
    assert first_deposit_at([]) is None


def test_trading_state_label():
    rows = [{"client": None, "venue": None, "scope": "global", "state": "active"},
            {"client": "demo", "venue": None, "state": "halted"},
            {"client": "demo-2", "venue": "paper-bybit", "state": "reduce_only"}]
    assert trading_state_label(rows[:1]) == "active"
    assert trading_state_label(rows) == "demo halted, demo-2@paper-bybit reduce_only"
    assert trading_state_label(rows, client="demo-2") == "demo-2@paper-bybit reduce_only"
    rows[0]["state"] = "reduce_only"
    assert trading_state_label(rows, client="demo").startswith("global reduce_only")


@pytest.mark.parametrize(("value", "signed", "expected"), [
    ("20000", False, "$20,000.00"),
    ("15000.5", False, "$15,000.50"),
    ("250", True, "+$250.00"),
    ("-18.505", True, "-$18.51"),
    ("0", True, "$0.00"),
    ("-0.0018", True, "-$0.0018"),  # under a cent: shown, not rounded to "$0.00"
    ("1234567.891", True, "+$1,234,567.89"),
])
def test_fmt_usd(value, signed, expected):
    assert fmt_usd(D(value), signed=signed) == expected


def test_fmt_pct():
    assert fmt_pct(D("1.25"), signed=True) == "+1.25%"
    assert fmt_pct(D("-0.004"), signed=True) == "-0.0040%"
    assert fmt_pct(D("-0.00"), signed=True) == "0.00%"
    assert fmt_pct(None) == "—"


# ---- scrolling -------------------------------------------------------------------------

@pytest.mark.parametrize(("total", "rows", "step", "window", "label"), [
    (23, 10, 0, (0, 10), "showing 1–10 of 23"),
    (23, 10, 1, (10, 20), "showing 11–20 of 23"),
    (23, 10, 2, (20, 23), "showing 21–23 of 23"),
    (23, 10, 3, (0, 10), "showing 1–10 of 23"),  # pages cycle
    (23, 10, -1, (20, 23), "showing 21–23 of 23"),  # "previous page" from the first
    (5, 10, 7, (0, 5), "showing 1–5 of 5"),  # fits: never scrolls
    (0, 10, 3, (0, 0), "none"),
])
def test_scroll_window(total, rows, step, window, label):
    w = scroll_window(total, rows, step)
    assert (w.start, w.stop) == window
    assert w.label == label


# ---- rendering -------------------------------------------------------------------------

def test_summary_shows_the_seed_fields():
    totals = PortfolioTotals.from_api(portfolio_json(unrealized_pnl="58.80"))
    m = compute_metrics(totals, seed_trades(), NOW - timedelta(days=10), NOW, leg_outs=1)
    text = text_of(render_summary(m))
    assert "Portfolio Summary" in text
    assert "Capital: $20,000.00" in text
    assert "Available: $15,000.00" in text
    assert "Utilization: 25.00%" in text
    assert "Trades: 5" in text
    assert "Win Rate: 80.00%" in text
    assert "Cumulative P&L: +$250.00 (+1.25%)" in text
    assert "Realistic APR: 45.63%" in text
    assert "Leg-Out Events: 1" in text
    assert "Unrealized: +$58.80" in text
    assert styles_of(render_summary(m), "+$250.00 (+1.25%)") == ["green"]
    assert styles_of(render_summary(m), "+$58.80") == ["green"]


def test_summary_loss_is_red_and_young_book_has_no_apr():
    totals = PortfolioTotals.from_api(portfolio_json(realized_pnl="-90", fees="10"))
    m = compute_metrics(totals, [trade(net="-100")], NOW - timedelta(minutes=5), NOW)
    text = text_of(render_summary(m))
    assert "Cumulative P&L: -$100.00 (-0.50%)" in text
    assert "Win Rate: 0.00%" in text
    assert "Realistic APR: —" in text
    assert "Leg-Out Events: 0" in text
    assert styles_of(render_summary(m), "-$100.00 (-0.50%)") == ["red"]


def test_summary_before_the_first_load():
    assert "loading" in text_of(render_summary(None))


def test_capped_trade_count_says_at_least():
    totals = PortfolioTotals.from_api(portfolio_json())
    m = compute_metrics(totals, seed_trades(), None, NOW, trades_capped=True)
    assert "Trades: 5+" in text_of(render_summary(m))


def test_positions_table_rows_and_colours():
    rows = [position("BTC-PERP", "45.20"), position("ETH-PERP", "-18.50", side="short")]
    panel = render_positions(rows, rows=10, step=0)
    text = text_of(panel)
    assert "Active Positions (2 total)" in text
    assert "showing 1–2 of 2" in text
    btc = next(line for line in text.splitlines() if "BTC-PERP" in line)
    assert re.search(r"demo\s+BTC-PERP\s+paper-binance\s+long\s+0\.002\s+60,000\.1\s+"
                     r"60,010\.5\s+\+\$45\.20", btc), btc
    eth = next(line for line in text.splitlines() if "ETH-PERP" in line)
    assert "short" in eth and "0.002" in eth and "-0.002" not in eth  # side carries the sign
    assert styles_of(panel, "+$45.20") == ["green"]
    assert styles_of(panel, "-$18.50") == ["red"]


def test_positions_without_client_column_when_filtered():
    text = text_of(render_positions([position()], rows=10, step=0, show_client=False))
    assert "Client" not in text and "demo" not in text
    assert "BTC-PERP" in text


def test_positions_table_scrolls_through_windows():
    rows = [position(f"P{i:02d}-PERP", str(i)) for i in range(23)]
    first = text_of(render_positions(rows, rows=10, step=0))
    assert "Active Positions (23 total)" in first
    assert "showing 1–10 of 23" in first
    assert "P00-PERP" in first and "P09-PERP" in first and "P10-PERP" not in first
    second = text_of(render_positions(rows, rows=10, step=1))
    assert "showing 11–20 of 23" in second
    assert "P10-PERP" in second and "P19-PERP" in second
    assert "P09-PERP" not in second and "P20-PERP" not in second
    third = text_of(render_positions(rows, rows=10, step=2))
    assert "showing 21–23 of 23" in third
    assert sum("-PERP" in line for line in third.splitlines()) == 3


def test_empty_tables_say_so():
    assert "no open positions" in text_of(render_positions([], rows=10, step=0))
    assert "no closed trades yet" in text_of(render_exits([], rows=10, step=0, now=NOW))


def test_exits_table():
    exits = [trade("ADA-PERP", "28.50", "profit_target", "2024-03-01T11:59:00Z"),
             trade("DOGE-PERP", "-12.30", "loss_limit", "2024-02-28T09:30:00Z", n=2)]
    panel = render_exits(exits, rows=10, step=0, now=NOW)
    text = text_of(panel)
    assert "Recent Exits (2)" in text
    ada = next(line for line in text.splitlines() if "ADA-PERP" in line)
    assert "+$28.50" in ada and "profit_target" in ada and "11:59:00" in ada
    doge = next(line for line in text.splitlines() if "DOGE-PERP" in line)
    assert "-$12.30" in doge and "loss_limit" in doge and "02-28 09:30" in doge
    assert styles_of(panel, "+$28.50") == ["green"]
    assert styles_of(panel, "-$12.30") == ["red"]


def test_exits_table_scrolls():
    exits = [trade(f"X{i:02d}-PERP", "1", n=i) for i in range(12)]
    text = text_of(render_exits(exits, rows=5, step=2, now=NOW))
    assert "showing 11–12 of 12" in text
    assert "X10-PERP" in text and "X11-PERP" in text and "X09-PERP" not in text


def test_status_line():
    live = Status("live", 1234, NOW, trading="active")
    text = text_of(render_status(live))
    assert "● LIVE | seq 1234 | 2024-03-01 12:00:00 UTC | trading: active" in text
    assert styles_of(render_status(live), "LIVE") == ["green"]
    down = Status("reconnecting", 1234, NOW, trading="global reduce_only",
                  problems=("WebSocket: cannot connect to ws://127.0.0.1:8000/ws "
                            "(connection refused); retrying in 2 s",))
    text = text_of(render_status(down))
    assert "RECONNECTING" in text and "trading: global reduce_only" in text
    assert "(connection refused); retrying in 2 s" in text
    assert styles_of(render_status(down), "RECONNECTING") == ["yellow"]


def test_an_unknown_sequence_is_a_dash_not_zero():
    text = text_of(render_status(Status("connecting", None, NOW)))
    assert "seq —" in text and "seq 0" not in text
    assert "seq 0 |" in text_of(render_status(Status("live", 0, NOW)))  # a real 0 is 0


def test_the_status_line_stays_one_line_and_problems_wrap_whole():
    problem = ("REST and WebSocket: cannot connect to http://127.0.0.1:8000 "
               "(connection refused); retrying in 2 s")
    status = Status("reconnecting", 41, NOW, trading="global reduce_only",
                    problems=(problem, "x" * 150))
    c = Console(record=True, width=60)
    c.print(Group(render_status(status)))  # inside a Group, as on screen
    lines = c.export_text().rstrip("\n").splitlines()
    assert lines[0].startswith("◌ RECONNECTING | seq 41") and lines[0].endswith("…")
    assert len(lines[0]) <= 60
    # Every word of the problem is on screen, wrapped over lines of the width.
    assert " ".join(" ".join(lines[1:3]).split()) == problem
    assert "".join(lines[3:]) == "x" * 150  # a long word folds, nothing is cut
    assert max(len(line) for line in lines) <= 60


def test_whole_screen_fits_100_columns():
    totals = PortfolioTotals.from_api(portfolio_json())
    screen = Screen(metrics=compute_metrics(totals, seed_trades(), None, NOW),
                    positions=[position(f"P{i}-PERP", "-1") for i in range(4)],
                    exits=seed_trades(), status=Status("live", 7, NOW), rows=3, step=1)
    text = text_of(render_screen(screen))
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100
    titles = [t for t in ("Portfolio Summary", "Active Positions (4 total)",
                          "Recent Exits (5)", "● LIVE | seq 7") if t in text]
    assert len(titles) == 4
    assert "showing 4–4 of 4" in text  # positions, page 2 of 2
    assert "showing 4–5 of 5" in text  # exits, page 2 of 2
