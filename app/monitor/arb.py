"""``perpdesk monitor --arb``: the funding-rate arbitrage as seed 001's monitor binary
shows it, refreshed every second from the REST API::

    ┌ Portfolio Summary ──────────────────────────────────────────┐
    │ Capital: $20,000 | Available: $15,000 | Utilization: 25%    │
    │ Trades: 5 | Win Rate: 80% | Cumulative P&L: +$250 (+1.25%)  │
    │ Realistic APR: 45.6% | Leg-Out Events: 1                    │
    └─────────────────────────────────────────────────────────────┘
    ┌ Active Trades (3 total) ────────────────────────────────────┐
    │ Ticker | Entry Spread | Current Spread | Unrealized P&L      │   green / red
    ┌ Recent Exits ───────────────────────────────────────────────┐
    │ Ticker | Closed | Profit | Reason                            │
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import httpx
from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from app.monitor.model import fmt_pct, fmt_usd, pnl_style

REFRESH_SECONDS = 1.0  # seed 001: "Update every 1 second"


def _dec(raw: Any) -> Decimal | None:
    return None if raw is None else Decimal(str(raw))


def render_arb(status: Mapping[str, Any], portfolio: Mapping[str, Any],
               trades: Sequence[Mapping[str, Any]], exits: int = 10) -> RenderableType:
    """The three panels from the API's answers (pure: no I/O)."""
    capital = _dec(portfolio["starting_capital"]) or Decimal(0)
    pnl = _dec(portfolio["cumulative_pnl"]) or Decimal(0)
    win_rate = _dec(portfolio.get("win_rate"))
    apr = _dec(portfolio.get("realistic_apr_pct"))
    state = "running" if status.get("running") else status.get("status", "?")
    lines = [
        Text.assemble(f"Capital: {fmt_usd(capital)} | Available: ",
                      fmt_usd(_dec(portfolio["available_capital"]) or Decimal(0)),
                      f" | Utilization: {fmt_pct(_dec(portfolio['utilization_pct']))}"),
        Text.assemble(f"Trades: {portfolio['total_trades']} | Win Rate: "
                      f"{fmt_pct(win_rate * 100 if win_rate is not None else None)}"
                      " | Cumulative P&L: ",
                      (f"{fmt_usd(pnl, signed=True)} "
                       f"({fmt_pct(_dec(portfolio['pnl_pct']), signed=True)})", pnl_style(pnl))),
        Text(f"Realistic APR: {fmt_pct(apr)} | Leg-Out Events: "
             f"{portfolio['leg_out_count']} | Arbitrage: {state}"),
    ]
    if status.get("unmanaged"):
        lines.append(Text("Open trades are unmanaged (stopped or halted)", style="bold yellow"))
    summary = Panel(Group(*lines), title="Portfolio Summary", title_align="left",
                    box=box.SQUARE)
    active = [t for t in trades if t["status"] not in ("closed", "legged_out", "cancelled")]
    table = Table(box=box.SIMPLE, expand=True)
    for column in ("Ticker", "Entry Spread", "Current Spread", "Unrealized P&L", "State"):
        table.add_column(column, justify="right" if "Spread" in column or "P&L" in column
                         else "left")
    for t in active:
        unrealized = _dec(t.get("unrealized_pnl"))
        table.add_row(t["symbol"], f"{t['entry_spread_bps']} bps",
                      f"{t['current_spread_bps']} bps" if t.get("current_spread_bps")
                      is not None else "—",
                      Text(fmt_usd(unrealized, signed=True), style=pnl_style(unrealized))
                      if unrealized is not None else Text("—"), t["status"])
    active_panel = Panel(table, title=f"Active Trades ({len(active)} total)",
                         title_align="left", box=box.SQUARE)
    closed = [t for t in trades if t["status"] in ("closed", "legged_out")][:exits]
    exit_table = Table(box=box.SIMPLE, expand=True)
    for column in ("Ticker", "Closed", "Profit", "Reason"):
        exit_table.add_column(column, justify="right" if column == "Profit" else "left")
    for t in closed:
        profit = _dec(t.get("actual_profit")) or Decimal(0)
        exit_table.add_row(t["symbol"], t["status"].replace("_", " ").title(),
                           Text(fmt_usd(profit, signed=True), style=pnl_style(profit)),
                           (t.get("exit_reason") or "").replace("_", " "))
    exits_panel = Panel(exit_table, title="Recent Exits", title_align="left", box=box.SQUARE)
    return Group(summary, active_panel, exits_panel)


async def fetch(http: httpx.AsyncClient) -> tuple[Any, Any, Any]:
    status, portfolio, trades = await asyncio.gather(
        http.get("/api/v1/arb"), http.get("/api/v1/arb/portfolio"),
        http.get("/api/v1/arb/trades", params={"limit": 50}))
    for response in (status, portfolio, trades):
        response.raise_for_status()
    return status.json(), portfolio.json(), trades.json()


async def run_arb_monitor(url: str, key: str, once: bool = False,
                          console: Console | None = None) -> int:
    console = console or Console()
    async with httpx.AsyncClient(base_url=url.rstrip("/"), timeout=5.0,
                                 headers={"Authorization": f"Bearer {key}"}) as http:
        if once:
            console.print(render_arb(*await fetch(http)))
            return 0
        with Live(console=console, refresh_per_second=4, screen=False) as live:
            while True:
                try:
                    live.update(render_arb(*await fetch(http)))
                except httpx.HTTPError as exc:
                    live.update(Text(f"REST: {exc}; retrying", style="bold red"))
                await asyncio.sleep(REFRESH_SECONDS)
