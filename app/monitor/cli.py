"""``perpdesk monitor``: a live terminal view of the book (seed 001's monitor binary).

Shows the portfolio summary (capital, available, utilization, trades, win
rate, cumulative P&L, realistic APR, leg-out events), open positions with
unrealized P&L at mark, recent exits and the connection status, refreshed
every second from the REST API and the WebSocket. Tables longer than --rows
page through automatically; keys: n/space next page, p previous, q quit.
"""

from __future__ import annotations

import argparse
import asyncio
import os

from app.monitor.arb import run_arb_monitor
from app.monitor.live import Monitor, MonitorOptions

KEY_ENV = "PERPDESK_API_KEY"


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default="http://127.0.0.1:8000", help="the server's base URL")
    p.add_argument("--key", default=None,
                   help=f"API key (viewer role is enough); default: ${KEY_ENV}")
    p.add_argument("--client", default=None, help="show one client only")
    p.add_argument("--rows", type=_positive_int, default=10,
                   help="rows per table before it pages (default 10)")
    p.add_argument("--exits", type=_positive_int, default=20,
                   help="recent exits to keep (default 20)")
    p.add_argument("--scroll-seconds", type=_positive_float, default=4.0,
                   help="seconds per page when a table is longer than --rows")
    p.add_argument("--no-screen", action="store_true",
                   help="draw in place instead of using the alternate screen")
    p.add_argument("--once", action="store_true",
                   help="print one snapshot and exit (no WebSocket)")
    p.add_argument("--arb", action="store_true",
                   help="the funding-rate arbitrage instead: portfolio summary, active "
                        "trades with spreads and unrealized P&L, recent exits")


def run(args: argparse.Namespace) -> int:
    key = args.key or os.environ.get(KEY_ENV, "")
    if not key:
        print(f"perpdesk monitor: an API key is needed (--key or ${KEY_ENV})")
        return 2
    if args.arb:
        try:
            return asyncio.run(run_arb_monitor(args.url, key, once=args.once))
        except KeyboardInterrupt:
            return 0
    options = MonitorOptions(url=args.url, key=key, client=args.client, rows=args.rows,
                             exits=args.exits, scroll_seconds=args.scroll_seconds,
                             screen=not args.no_screen)
    try:
        return asyncio.run(Monitor(options).run(once=args.once))
    except KeyboardInterrupt:
        return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("monitor", help="live terminal view of positions and P&L",
                            description=__doc__.replace("``", ""),
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(p)
    p.set_defaults(run=run)


def main(argv: list[str] | None = None) -> int:
    """Run the monitor as a program of its own (``perpdesk monitor`` without the CLI)."""
    parser = argparse.ArgumentParser(prog="perpdesk monitor", description=__doc__.replace("``", ""),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(parser)
    return run(parser.parse_args(argv))
