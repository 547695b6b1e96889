"""Plain monitor data → rich renderables. Pure: no I/O, no clock, no globals.

Layout (seed 001, "Monitor Binary")::

    ┌ Portfolio Summary ───────────────────────────────────────────┐
    │ Capital: $20,000.00 | Available: $15,000.00 | Utilization: 25% │
    │ Trades: 5 | Win Rate: 80.00% | Cumulative P&L: +$250.00 (+1.25%) │
    │ Realistic APR: 45.60% | Leg-Out Events: 1 | Unrealized: +$58.80 │
    └──────────────────────────────────────────────────────────────┘
    ┌ Active Positions (3 total) ─┐   a table, one window of --rows rows
    ┌ Recent Exits (20) ──────────┐   likewise
    ● LIVE | seq 1234 | 2024-01-01 12:00:00 UTC | trading: active
    REST: cannot connect to http://127.0.0.1:8000 (connection refused); retrying in 1 s

The status line is one line (cut with … on a narrow terminal); the failures
under it wrap, so a reason is never cut to "REST: Connect…".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from rich import box
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from app.monitor.model import (
    ExitView,
    Metrics,
    PositionView,
    fmt_pct,
    fmt_price,
    fmt_qty,
    fmt_time,
    fmt_usd,
    pnl_style,
    scroll_window,
)

SEPARATOR = " | "
CONNECTION_STYLES = {"live": ("● LIVE", "bold green"),
                     "reconnecting": ("◌ RECONNECTING", "bold yellow"),
                     "connecting": ("◌ CONNECTING", "bold yellow"),
                     "snapshot": ("■ SNAPSHOT", "bold"),
                     "stopped": ("■ STOPPED", "bold red")}


@dataclass(frozen=True)
class Status:
    connection: str  # "connecting" | "live" | "reconnecting" | "snapshot" | "stopped"
    last_seq: int | None  # None: the server has not said yet (shown as "—", not 0)
    now: datetime
    trading: str = "active"
    problems: tuple[str, ...] = ()  # what is failing now, one line each, in words


@dataclass(frozen=True)
class Screen:
    """Everything one frame shows."""

    metrics: Metrics | None  # None until the portfolio has loaded
    positions: Sequence[PositionView]
    exits: Sequence[ExitView]
    status: Status
    rows: int = 10
    step: int = 0  # scroll step: which window of each table to show
    show_client: bool = True


def _line(*parts: Text | str) -> Text:
    out = Text()
    for i, part in enumerate(parts):
        if i:
            out.append(SEPARATOR, style="dim")
        out.append_text(part if isinstance(part, Text) else Text(part))
    return out


def _field(label: str, value: str, style: str = "") -> Text:
    text = Text(f"{label}: ")
    text.append(value, style=style or "bold")
    return text


def render_summary(metrics: Metrics | None) -> Panel:
    if metrics is None:
        body: RenderableType = Text("loading…", style="dim")
    else:
        m = metrics
        trades = f"{m.trades}+" if m.trades_capped else str(m.trades)
        pnl = fmt_usd(m.cumulative_pnl, signed=True)
        pnl_text = f"{pnl} ({fmt_pct(m.pnl_pct, signed=True)})"
        body = Group(
            _line(_field("Capital", fmt_usd(m.capital)),
                  _field("Available", fmt_usd(m.available)),
                  _field("Utilization", fmt_pct(m.utilization_pct))),
            _line(_field("Trades", trades),
                  _field("Win Rate", fmt_pct(m.win_rate_pct)),
                  _field("Cumulative P&L", pnl_text, pnl_style(m.cumulative_pnl))),
            _line(_field("Realistic APR", fmt_pct(m.apr_pct),
                         pnl_style(m.apr_pct) if m.apr_pct is not None else "dim"),
                  _field("Leg-Out Events", str(m.leg_outs), "bold red" if m.leg_outs else ""),
                  _field("Unrealized", fmt_usd(m.unrealized_pnl, signed=True),
                         pnl_style(m.unrealized_pnl)),
                  _field("Equity", fmt_usd(m.equity))),
        )
    return Panel(body, title="Portfolio Summary", title_align="left", box=box.SQUARE)


def _table() -> Table:
    return Table(box=box.SIMPLE_HEAD, expand=True, pad_edge=False, show_edge=False)


def render_positions(positions: Sequence[PositionView], rows: int, step: int,
                     show_client: bool = True) -> Panel:
    window = scroll_window(len(positions), rows, step)
    table = _table()
    if show_client:
        table.add_column("Client")
    table.add_column("Symbol", style="bold")
    table.add_column("Venue")
    table.add_column("Side")
    table.add_column("Qty", justify="right")
    table.add_column("Entry", justify="right")
    table.add_column("Mark", justify="right")
    table.add_column("Unrealized P&L", justify="right")
    for p in positions[window.start:window.stop]:
        cells: list[Text | str] = [p.client] if show_client else []
        cells += [p.symbol, p.venue,
                  Text(p.side, style="green" if p.side == "long" else "red"),
                  fmt_qty(abs(p.qty)), fmt_price(p.entry_price), fmt_price(p.mark_price),
                  Text(fmt_usd(p.unrealized_pnl, signed=True), style=pnl_style(p.unrealized_pnl))]
        table.add_row(*cells)
    body: RenderableType = table if positions else Text("no open positions", style="dim")
    return Panel(body, title=f"Active Positions ({len(positions)} total)", title_align="left",
                 subtitle=window.label if positions else None, subtitle_align="right",
                 box=box.SQUARE)


def render_exits(exits: Sequence[ExitView], rows: int, step: int, now: datetime,
                 show_client: bool = True) -> Panel:
    window = scroll_window(len(exits), rows, step)
    table = _table()
    if show_client:
        table.add_column("Client")
    table.add_column("Symbol", style="bold")
    table.add_column("Venue")
    table.add_column("Side")
    table.add_column("Result", justify="right")
    table.add_column("Reason")
    table.add_column("Closed (UTC)", justify="right")
    for t in exits[window.start:window.stop]:
        cells: list[Text | str] = [t.client] if show_client else []
        cells += [t.symbol, t.venue, t.direction,
                  Text(fmt_usd(t.net_pnl, signed=True), style=pnl_style(t.net_pnl)),
                  t.exit_reason, fmt_time(t.closed_at, now)]
        table.add_row(*cells)
    body: RenderableType = table if exits else Text("no closed trades yet", style="dim")
    return Panel(body, title=f"Recent Exits ({len(exits)})", title_align="left",
                 subtitle=window.label if exits else None, subtitle_align="right",
                 box=box.SQUARE)


def render_status(status: Status) -> Group:
    """The status line, then one wrapped line per problem."""
    label, style = CONNECTION_STYLES.get(status.connection,
                                         (status.connection.upper(), "bold"))
    trading_style = "green" if status.trading == "active" else "bold yellow"
    seq = "—" if status.last_seq is None else str(status.last_seq)
    line = _line(
        Text(label, style=style),
        f"seq {seq}",
        status.now.strftime("%Y-%m-%d %H:%M:%S UTC"),
        Text(f"trading: {status.trading}", style=trading_style),
    )
    line.no_wrap, line.overflow = True, "ellipsis"
    # Problems wrap at spaces (a long URL folds) instead of being cut off.
    problems = [Text(p, style="yellow", overflow="fold") for p in status.problems]
    return Group(line, *problems)


def render_screen(screen: Screen) -> Group:
    """The whole frame."""
    now = screen.status.now
    return Group(
        render_summary(screen.metrics),
        render_positions(screen.positions, screen.rows, screen.step, screen.show_client),
        render_exits(screen.exits, screen.rows, screen.step, now, screen.show_client),
        render_status(screen.status),
    )
