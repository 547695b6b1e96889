"""The baseline of ``bench/backtest.py``: a vectorized numba backtester (vectorbt) on
the same bar file, cold — a new process, imports, numba compiling on the first call.

It runs in its own interpreter (``--baseline-python``: a virtualenv with vectorbt
and pyarrow; perpdesk does not depend on it). The MA crossover here is the closest
vectorbt has to ours: 10/30 simple averages of 5-minute closes, long and short,
a 2 % stop, 5 bps fees; no book walking, no funding, no margin or liquidation.

Prints: bars=... wall_s=... trades=...  (wall: process start to result)
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import sys  # noqa: E402

import pyarrow.parquet as pq  # noqa: E402
import vectorbt as vbt  # noqa: E402


def main(path: str) -> None:
    bars = pq.read_table(path).to_pandas().set_index("timestamp")
    close = bars["close"].resample("5min").last().dropna()
    fast = vbt.MA.run(close, 10).ma
    slow = vbt.MA.run(close, 30).ma
    up = (fast > slow) & (fast.shift(1) <= slow.shift(1))
    down = (fast < slow) & (fast.shift(1) >= slow.shift(1))
    portfolio = vbt.Portfolio.from_signals(close, up, down, short_entries=down,
                                           short_exits=up, sl_stop=0.02, fees=0.0005,
                                           freq="5min")
    trades = int(portfolio.trades.count())
    wall = time.perf_counter() - STARTED
    print(f"bars={len(bars)} wall_s={wall:.2f} trades={trades} "
          f"total_return={float(portfolio.total_return()):.4f}")


if __name__ == "__main__":
    main(sys.argv[1])
