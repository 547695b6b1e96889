"""``perpdesk monitor --arb`` draws seed 001's three panels from the API's answers."""

from __future__ import annotations

from rich.console import Console

from app.monitor.arb import render_arb

STATUS = {"running": True, "status": "running", "unmanaged": False}
PORTFOLIO = {"starting_capital": "20000", "available_capital": "15000.00",
             "utilization_pct": "25", "total_trades": 5, "win_rate": "0.8",
             "cumulative_pnl": "250", "pnl_pct": "1.25", "realistic_apr_pct": "45.6",
             "leg_out_count": 1}
TRADES = [
    {"symbol": "BTC-PERP", "status": "active", "entry_spread_bps": "5.20",
     "current_spread_bps": "3.10", "unrealized_pnl": "45.20"},
    {"symbol": "SOL-PERP", "status": "active", "entry_spread_bps": "12.30",
     "current_spread_bps": "15.20", "unrealized_pnl": "-18.50"},
    {"symbol": "ETH-PERP", "status": "closed", "actual_profit": "28.50",
     "exit_reason": "profit_target"},
    {"symbol": "XRP-PERP", "status": "legged_out", "actual_profit": "-12.30",
     "exit_reason": "leg_out"},
]


def draw(status=STATUS) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    console = Console(record=True, width=100, color_system="truecolor")
    console.print(render_arb(status, PORTFOLIO, TRADES))
    return console.export_text(clear=False), console.export_html(inline_styles=True)


def test_the_seeds_panels_and_figures() -> None:
    text, _ = draw()
    for expected in ("Portfolio Summary", "Capital: $20,000.00", "Available: $15,000.00",
                     "Utilization: 25.00%", "Trades: 5", "Win Rate: 80.00%",
                     "Cumulative P&L: +$250.00 (+1.25%)", "Realistic APR: 45.60%",
                     "Leg-Out Events: 1", "Active Trades (2 total)", "5.20 bps",
                     "3.10 bps", "+$45.20", "-$18.50", "Recent Exits", "+$28.50",
                     "profit target", "-$12.30", "leg out"):
        assert expected in text, expected


def test_unrealized_pnl_is_green_or_red() -> None:
    _, html = draw()
    green = html.split("+$45.20")[0].rsplit("<span", 1)[-1]
    red = html.split("-$18.50")[0].rsplit("<span", 1)[-1]
    assert "#008000" in green or "color: #00" in green
    assert "#800000" in red or "color: #80" in red


def test_unmanaged_trades_are_said_so() -> None:
    text, _ = draw({**STATUS, "running": False, "status": "stopped", "unmanaged": True})
    assert "unmanaged" in text and "Arbitrage: stopped" in text
