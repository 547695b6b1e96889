"""Backtests run for the server, in worker processes (``app/services/backtests.py``
queues them): what a worker does with one run, and what the server checks before it
queues one.

A worker is a process of a ``ProcessPoolExecutor`` started with the ``spawn`` context,
so it shares nothing with the server but what it is sent: a ``JobSpec`` of plain
values, and (through the pool's initializer, the one way a multiprocessing queue may
reach a pool worker) the queue it reports progress on. It runs ``run_backtest``, then
``write_report`` into the run's directory, and returns a ``JobSummary``; an exception
travels back through the future and the server records it as the run's error.

Progress messages on the queue are tuples: ``("started", run_id, pid, bars_total)``
once, then ``("progress", run_id, bars_done)``, at most every ``PROGRESS_EVERY_S``
(the last chunk's too: the bar count at the end equals the total).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from app.backtest.report import write_report
from app.backtest.runner import (
    BACKTEST_KINDS,
    DEFAULT_CHUNK,
    BacktestConfig,
    Fees,
    run_backtest,
    validated_params,
)
from app.defaults import VENUES, demo_instruments
from app.marketdata.bars import bar_file_layout
from app.marketdata.recorded_signals import check_signal_file
from app.strategies.base import InvalidParams
from app.strategies.registry import kinds

__all__ = ["BACKTEST_KINDS", "DATASET_SUFFIXES", "VENUES", "InvalidParams", "JobSpec",
           "JobSummary", "check_bar_file", "check_signal_file", "count_bars", "init_worker",
           "run_job", "symbols_on", "validated_params_of"]

DATASET_SUFFIXES = (".csv", ".csv.gz", ".zip", ".parquet", ".pq")  # (app/marketdata/bars.py)
PROGRESS_EVERY_S = 0.2
# About this many progress reports a run (a chunk of updates between two), but never
# chunks smaller than MIN_CHUNK updates: each chunk boundary costs the runner a little.
PROGRESS_STEPS = 50
MIN_CHUNK = 400
UPDATES_PER_BAR = 4  # a bar file replays as four updates a bar (open, high/low, close)

_progress_queue: Any = None  # set in each worker by init_worker


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One backtest as the server sends it to a worker: plain, picklable values (the
    files already resolved inside the data directory)."""

    run_id: str
    strategy: str | None
    data: Path
    symbol: str
    venue: str
    params: dict[str, Any]
    funding: Path | None
    maker_bps: Decimal | None
    taker_bps: Decimal | None
    out: Path
    signals: Path | None = None

    def config(self, chunk: int = DEFAULT_CHUNK) -> BacktestConfig:
        return BacktestConfig(strategy=self.strategy, data=self.data, symbol=self.symbol,
                              venue=self.venue, params=dict(self.params),
                              funding=self.funding, fees=Fees(self.maker_bps, self.taker_bps),
                              chunk=chunk, signals=self.signals)


@dataclass(frozen=True, slots=True)
class JobSummary:
    """What a finished run reports back (the rest is in its report directory)."""

    pid: int
    bars: int
    trades: int
    wall_s: float
    metrics: dict[str, str | None]  # key metrics as decimal text


def init_worker(queue: Any) -> None:
    """The pool's initializer: keep the progress queue for ``run_job``."""
    global _progress_queue
    _progress_queue = queue


def _report(message: tuple[Any, ...]) -> None:
    if _progress_queue is not None:
        _progress_queue.put(message)


def run_job(spec: JobSpec) -> JobSummary:
    """Run one backtest in this (worker) process and write its report."""
    total = count_bars(spec.data)
    _report(("started", spec.run_id, os.getpid(), total))
    chunk = DEFAULT_CHUNK
    if total:
        chunk = max(MIN_CHUNK, min(DEFAULT_CHUNK, total * UPDATES_PER_BAR // PROGRESS_STEPS))
    last_sent = 0.0

    def on_progress(done: int) -> None:
        nonlocal last_sent
        now = time.monotonic()
        if now - last_sent >= PROGRESS_EVERY_S or (total is not None and done >= total):
            last_sent = now
            _report(("progress", spec.run_id, done))

    result = run_backtest(spec.config(chunk), on_progress)
    write_report(result, spec.out)
    _report(("progress", spec.run_id, result.bars))
    p = result.performance
    return JobSummary(
        pid=os.getpid(), bars=result.bars, trades=p.trades.trades, wall_s=result.wall_s,
        metrics={"total_pnl": _text(p.total_pnl), "total_return": _text(p.total_return),
                 "sharpe": _text(p.sharpe), "max_drawdown_pct": _text(p.max_drawdown.pct),
                 "win_rate": _text(p.trades.win_rate)})


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def count_bars(path: Path) -> int | None:
    """Rows of a bar file (None when it cannot tell cheaply)."""
    from app.backtest.cli import count_bars as count

    return count(path)


def check_bar_file(path: Path) -> None:
    """Fail (``ValueError``, ``OSError``) unless ``path`` reads as a bar file: its header
    only, so it is cheap whatever the file's size."""
    bar_file_layout(path)


def symbols_on(venue: str) -> list[str]:
    """The symbols a backtest can trade on ``venue`` (the demo's instruments)."""
    if venue not in VENUES:
        return []
    return sorted({i.symbol for i in demo_instruments((venue,))})


def validated_params_of(strategy: str, symbol: str, params: dict[str, Any]
                        ) -> tuple[tuple[str, str], ...]:
    """The kind's validation of ``params`` (``InvalidParams`` names the field), as the
    run itself will validate them; a combination the strategy's code refuses when it is
    built is a ``ValueError`` too."""
    validated = validated_params(BacktestConfig(strategy=strategy, data=Path("-"),
                                                symbol=symbol, params=params))
    try:
        kinds()[strategy].build(validated)
    except Exception as exc:
        raise ValueError(str(exc)) from None
    return validated
