"""``perpdesk scenario [stage3|sandbox-btc|sandbox-eth|sandbox-multi|all]``.

Runs seed 003's stage-3 stop-limit protocol and seed 000's three sandbox
scenarios against the paper venues, printing each one's report and checklist.
Exits 1 when a checklist line fails, 2 when a scenario cannot run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from app.defaults import VENUES
from app.scenarios import sandbox_btc, sandbox_eth, sandbox_multi, stage3
from app.scenarios.report import Report

SCENARIOS: dict[str, tuple[float | None, str]] = {  # default minutes (None: the file)
    stage3.NAME: (stage3.DEFAULT_MINUTES, "synthetic market, BTC/ETH/SOL/XRP"),
    sandbox_btc.NAME: (sandbox_btc.DEFAULT_MINUTES, "real BTC-PERP 1-minute bars"),
    sandbox_eth.NAME: (sandbox_eth.DEFAULT_MINUTES, "real BTC-PERP 1-minute bars as ETH-PERP"),
    sandbox_multi.NAME: (sandbox_multi.DEFAULT_MINUTES, "synthetic market, BTC + ETH"),
}


def run_one(name: str, args: argparse.Namespace) -> Report:
    default, _ = SCENARIOS[name]
    minutes: float | None = default if args.minutes is None else args.minutes
    data = Path(args.data).expanduser() if args.data else None
    if minutes is not None and minutes <= 0:
        if data is None and name in (stage3.NAME, sandbox_multi.NAME):
            raise ValueError(f"{name} runs on the endless synthetic market: give --minutes")
        minutes = None  # until the file ends
    if name == stage3.NAME:
        artifacts = Path(args.artifacts).expanduser() if args.artifacts else None
        return stage3.run(minutes, args.seed, data, venue=args.venue or stage3.DEFAULT_VENUE,
                          artifacts=artifacts)
    runner: Callable[..., Report] = {sandbox_btc.NAME: sandbox_btc.run,
                                     sandbox_eth.NAME: sandbox_eth.run,
                                     sandbox_multi.NAME: sandbox_multi.run}[name]
    return runner(minutes, args.seed, data)


def run(args: argparse.Namespace) -> int:
    names = list(SCENARIOS) if args.name == "all" else [args.name]
    if args.data and args.name == "all":
        print("perpdesk scenario: --data needs one scenario (it is replayed as its symbol)",
              file=sys.stderr)
        return 2
    failed = []
    for name in names:
        try:
            report = run_one(name, args)
        except (OSError, ValueError) as exc:
            print(f"perpdesk scenario {name}: {exc}", file=sys.stderr)
            return 2
        print(report.render())
        print()
        if not report.ok:
            failed.append(name)
    if len(names) > 1:
        print(f"scenarios: {len(names) - len(failed)} passed, {len(failed)} failed"
              + (f" ({', '.join(failed)})" if failed else ""))
    return 1 if failed else 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    described = "; ".join(f"{k}: {v[1]}, " + (f"{v[0]:g} min" if v[0] else "the whole file")
                          for k, v in SCENARIOS.items())
    p = commands.add_parser("scenario", help="run seed 003's stage 3 and seed 000's sandbox "
                                             "scenarios on the paper venues",
                            description=f"{__doc__}\nDefaults — {described}.")
    p.add_argument("name", nargs="?", default="all", choices=[*SCENARIOS, "all"])
    p.add_argument("--minutes", type=float, default=None,
                   help="market minutes to run (default: each scenario's full length; "
                        "0: until a --data file ends)")
    p.add_argument("--seed", type=int, default=7, help="the synthetic market's seed")
    p.add_argument("--data", metavar="FILE",
                   help="an OHLCV bar file replayed as the scenario's (first) symbol "
                        "instead of its default market")
    p.add_argument("--venue", choices=VENUES, default=None,
                   help=f"stage3's paper venue (default {stage3.DEFAULT_VENUE})")
    p.add_argument("--artifacts", metavar="DIR",
                   help="stage3: write seed 003's five JSON artifacts there")
    p.set_defaults(run=run)
