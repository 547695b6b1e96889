"""The funding-rate arbitrage's whole cycle, simulated: detection → entry → monitoring
→ exit, over 4 symbols × 2 paper venues on the synthetic market, for 24 hours of
market time (issue 13). Target: at least 2,000× real time.

The market is the embedded default's synthetic feed with one-second steps and quotes
only (each paper venue synthesizes its depth around the quote), so the figure
measures the engine, the venues and the strategy host rather than book
maintenance. The feed is generated as the run goes (its cost is included).

Usage:  python bench/arb_cycle.py [--hours 24] [--seed 7] [--step-ms 1000] [--books]
Prints: simulated_hours=24 wall_s=... trades=... leg_outs=... speedup=...
"""

from __future__ import annotations

import argparse
import gc
import time
from datetime import timedelta

from app.defaults import VENUES, demo_instruments
from app.marketdata.synthetic import SyntheticMarket
from app.simulate import ARB_STRATEGY, START, build_arb_engine, run_arbitrage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--step-ms", type=int, default=1000)
    parser.add_argument("--books", action="store_true",
                        help="full 20-level L2 books in the feed (slower)")
    args = parser.parse_args()
    instruments = demo_instruments(VENUES)
    engine = build_arb_engine(instruments, VENUES)
    feed = SyntheticMarket(instruments, seed=args.seed, start=START,
                           step=timedelta(milliseconds=args.step_ms), books=args.books,
                           levels=20 if args.books else 2)
    gc.collect()
    started = time.perf_counter()
    run = run_arbitrage(feed, engine, hours=args.hours, keep_events=False)
    wall = time.perf_counter() - started
    book = engine.state.arb.get(ARB_STRATEGY)
    trades = book.trades if book is not None else 0
    leg_outs = book.leg_out_count if book is not None else 0
    pnl = book.cumulative_pnl if book is not None else 0
    print(f"simulated_hours={args.hours:g} wall_s={wall:.1f} trades={trades} "
          f"leg_outs={leg_outs} speedup={args.hours * 3600 / wall:.0f} "
          f"updates={run.updates} cumulative_pnl={pnl:.2f}")


if __name__ == "__main__":
    main()
