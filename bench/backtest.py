"""The MA-crossover backtest through the full engine (issue 15).

1. The real month: the 45,031 BTC-PERP 1-minute bars of ``../shared/data``, run in
   this process (``run_backtest``: engine, paper venue, strategy host, strategy),
   timed from the first bar read to the metrics computed.
2. 1,000,000 synthetic 1-minute bars (a seeded random walk written to Parquet first,
   not timed), run end to end as a user would: ``perpdesk backtest`` in a new
   process, timed from process start to the report directory written.

"Engine events" are what the engine processes: the market-data updates it applies
(each bar is replayed as four price points, each a quote, a trade print and a mark)
plus the events it emits (orders, fills, trades, funding...). Points in which nothing
can happen are taken in without stepping (app/engine/quiet.py): their updates count,
as the state they leave is the one stepping them would; ``--every-point`` also runs
the month stepping every update, side by side, and checks the trades are the same.

Targets (issue 15): the real month in < 1 s; 1,000,000 bars end to end in under
half of a cold vectorized numba backtester's ~16 s; >= 250,000 engine events/s.

With ``--baseline-python`` (a virtualenv with ``vectorbt`` and ``pyarrow``; perpdesk
does not depend on them) the same synthetic file also goes through vectorbt's
``Portfolio.from_signals``, cold, and the ratio is printed (``_vectorbt_baseline.py``).

Usage:  python bench/backtest.py [--bars 1000000] [--skip-month] [--skip-synthetic]
                                 [--every-point] [--baseline-python /path/to/venv/bin/python]
Prints: bars=45031 wall_s=... bars_per_s=... events_per_s=... trades=...
        bars=1000000 wall_s=... bars_per_s=... events_per_s=... trades=...
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, note, perpdesk_cmd

REAL_BARS = ROOT.parent / "shared" / "data" / "btc-perp-2022-01_1m.csv"
SYNTHETIC_START = datetime(2022, 1, 1, tzinfo=UTC)


def figures(bars: int, wall: float, events: int, trades: int) -> str:
    return (f"bars={bars} wall_s={wall:.2f} bars_per_s={bars / wall:,.0f} "
            f"events_per_s={events / wall:,.0f} trades={trades}")


def real_month(every_point: bool) -> None:
    from dataclasses import replace

    from app.backtest.runner import BacktestConfig, run_backtest

    config = BacktestConfig(strategy="ma_crossover", data=REAL_BARS)
    gc.collect()
    result = run_backtest(config)
    engine_events = result.updates + result.events
    print(figures(result.bars, result.wall_s, engine_events, len(result.trades)), flush=True)
    stepped = result.stepped_updates
    note(f"  updates={result.updates} (stepped {stepped}, taken in without stepping "
         f"{result.updates - stepped}) emitted={result.events}")
    if every_point:  # the same run stepping every update, side by side
        gc.collect()
        slow = run_backtest(replace(config, fast=False))
        same = slow.trades == result.trades and slow.equity == result.equity
        print(f"every_point: wall_s={slow.wall_s:.2f} quiet_points_speedup="
              f"{slow.wall_s / result.wall_s:.2f}x same_trades_and_equity={same}", flush=True)


def write_synthetic_bars(path: Path, bars: int, seed: int = 20220101) -> None:
    """A random walk of 1-minute BTC-like bars (about 0.1 % a minute), whole dollars."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(seed)
    stamps, opens, highs, lows, closes, volumes = [], [], [], [], [], []
    price = 40_000.0
    for i in range(bars):
        o = price
        path_points = [o * math.exp(rng.gauss(0, 0.0006)) for _ in range(3)]
        c = path_points[-1]
        hi = max(o, c, *path_points) * (1 + abs(rng.gauss(0, 0.0002)))
        lo = min(o, c, *path_points) * (1 - abs(rng.gauss(0, 0.0002)))
        stamps.append(SYNTHETIC_START + timedelta(minutes=i))
        opens.append(round(o))
        highs.append(round(hi))
        lows.append(round(lo))
        closes.append(round(c))
        volumes.append(round(rng.uniform(0.5e6, 4e6), 2))
        price = max(c, 1_000.0)
    table = pa.table({
        "timestamp": pa.array(stamps, type=pa.timestamp("us", tz="UTC")),
        "open": pa.array(opens, type=pa.float64()),
        "high": pa.array(highs, type=pa.float64()),
        "low": pa.array(lows, type=pa.float64()),
        "close": pa.array(closes, type=pa.float64()),
        "volume": pa.array(volumes, type=pa.float64()),
    })
    pq.write_table(table, path)


def baseline(python: str, data: Path, tmp: Path) -> float:
    """The vectorized numba backtester on ``data``, cold (a new process, an empty numba
    cache): its wall time from process start to result."""
    cache = tmp / "numba-cache"
    cache.mkdir()
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    started = time.perf_counter()
    done = subprocess.run([python, str(Path(__file__).parent / "_vectorbt_baseline.py"),
                           str(data)], capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"the baseline failed:\n{done.stderr}")
    note(f"  baseline: {done.stdout.strip()} (its own clock, after interpreter start)")
    return wall


def synthetic(bars: int, baseline_python: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="perpdesk-bench-") as tmp:
        data = Path(tmp) / f"synthetic-{bars}.parquet"
        note(f"writing {bars:,} synthetic bars to {data} (not timed)")
        write_synthetic_bars(data, bars)
        out = Path(tmp) / "report"
        cmd = [*perpdesk_cmd(), "backtest", "--strategy", "ma_crossover",
               "--data", str(data), "--out", str(out)]
        started = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"perpdesk backtest failed:\n{done.stderr}")
        metrics = json.loads((out / "metrics.json").read_text())
        run = json.loads((out / "run.json").read_text())
        engine_events = metrics["updates"] + metrics["events"]
        print(figures(metrics["bars"], wall, engine_events, metrics["trades"]["trades"]),
              flush=True)
        note(f"  in-process run {run['wall_s']} s of {wall:.2f} s end to end "
             f"(the rest: interpreter start, imports, reading, report)")
        if baseline_python:
            base = baseline(baseline_python, data, Path(tmp))
            print(f"baseline=vectorbt-numba-cold bars={bars} wall_s={base:.2f} "
                  f"perpdesk_over_baseline={wall / base:.2f} (target < 0.5)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--skip-month", action="store_true")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--every-point", action="store_true",
                        help="also run the month stepping every update (no quiet points), "
                             "side by side")
    parser.add_argument("--baseline-python", metavar="PYTHON",
                        help="an interpreter with vectorbt and pyarrow: also run the "
                             "vectorized numba baseline on the synthetic bars, cold")
    args = parser.parse_args()
    if not args.skip_month:
        real_month(args.every_point)
    if not args.skip_synthetic:
        synthetic(args.bars, args.baseline_python)


if __name__ == "__main__":
    main()
