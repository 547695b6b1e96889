"""``perpdesk backtest``: run a strategy over a bar file through the server's engine,
paper venue and strategy host, and write a report directory (metrics.json,
trades.csv, equity.csv and their Parquet twins).

With ``--grid`` it runs every symbol × parameter set in parallel processes (one per
core by default), each into its own subdirectory, and writes a ``summary.csv``
ranked by ``--rank-by`` (best first).

With ``--signals`` a file of recorded signals is submitted at its times, as
``POST /api/v1/signals`` would (app/marketdata/recorded_signals.py): alone (no
``--strategy``) or beside a strategy.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from app.backtest.report import RATIO_PLACES, write_report
from app.backtest.runner import BACKTEST_KINDS, BacktestConfig, Fees, run_backtest
from app.defaults import VENUES
from app.domain.analytics import CRYPTO_DAYS_PER_YEAR
from app.marketdata.bars import parse_interval
from app.strategies.base import InvalidParams
from app.venues.mock import MockVenueConfig

RANK_KEYS = ("sharpe", "sortino", "calmar", "total_return", "profit_factor", "expectancy")
SUMMARY_COLUMNS = ["rank", "symbol", "params", "trades", "win_rate", "total_pnl",
                   "total_return", "sharpe", "sortino", "calmar", "max_drawdown_pct",
                   "profit_factor", "expectancy", "dir"]


def parse_value(text: str) -> Any:
    """A ``k=v`` value: JSON for lists, objects, true/false/null; anything else stays
    text (numbers too: the strategy's model parses them, so decimals stay exact)."""
    stripped = text.strip()
    if stripped[:1] in ("[", "{") or stripped in ("true", "false", "null"):
        return json.loads(stripped)
    return stripped


def parse_params(pairs: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--params takes k=v, got {pair!r}")
        out[key.strip()] = parse_value(value)
    return out


def read_params_file(path: Path) -> dict[str, Any]:
    """Parameters from a JSON or YAML mapping."""
    loaded = yaml.safe_load(path.read_text())
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: not a mapping of parameters")
    return {str(k): v for k, v in loaded.items()}


def parse_fees(text: str | None) -> Fees:
    """``MAKER,TAKER`` in basis points (e.g. ``2,5``), or one number for both."""
    if not text:
        return Fees()
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (1, 2):
        raise ValueError("--fees takes MAKER,TAKER in basis points, e.g. 2,5")
    try:
        values = [Decimal(p) for p in parts]
    except InvalidOperation:
        raise ValueError(f"--fees: not numbers: {text!r}") from None
    if any(not (-100 <= v <= 1000) for v in values):
        raise ValueError("--fees: each rate must be within -100..1000 bps")
    return Fees(values[0], values[-1])


def grid_sets(axes: Sequence[str]) -> list[dict[str, Any]]:
    """``k=v1,v2`` axes (a list in JSON for values with commas) → every combination."""
    keys, choices = [], []
    for axis in axes:
        key, sep, values = axis.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--grid takes k=v1,v2,..., got {axis!r}")
        parsed = (json.loads(values) if values.strip().startswith("[")
                  else [parse_value(v) for v in values.split(",")])
        keys.append(key.strip())
        choices.append(parsed)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*choices)]


@contextmanager
def progress_bar(label: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr when it is a terminal (silent otherwise)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    console = Console(stderr=True)
    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeRemainingColumn(), console=console,
                  transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task(label, total=total)
        yield lambda done: progress.update(task, completed=done)


def count_bars(path: Path) -> int | None:
    """Rows of a bar file, for the progress bar (None when it cannot tell cheaply)."""
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        if path.suffix.lower() in (".gz", ".zip"):
            return None  # compressed: its lines are not told without unpacking it
        with path.open("rb") as f:
            return max(sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
                       - 1, 0)
    except OSError:
        return None


def _summary_row(config: BacktestConfig, out: Path) -> dict[str, Any]:
    m = json.loads((out / "metrics.json").read_text())
    return {"symbol": config.symbol, "params": json.dumps(dict(config.params), sort_keys=True),
            "trades": m["trades"]["trades"], "win_rate": m["trades"]["win_rate"],
            "total_pnl": m["total_pnl"], "total_return": m["total_return"],
            "sharpe": m["sharpe"], "sortino": m["sortino"], "calmar": m["calmar"],
            "max_drawdown_pct": m["max_drawdown"]["pct"],
            "profit_factor": m["trades"]["profit_factor"],
            "expectancy": m["trades"]["expectancy"], "dir": out.name}


def run_one(config: BacktestConfig, out: Path) -> dict[str, Any]:
    """One grid cell in a worker process: run, write its report, return its summary."""
    write_report(run_backtest(config), out)
    return _summary_row(config, out)


def _rank_value(row: dict[str, Any], key: str) -> Decimal:
    value = row.get(key)
    if key not in ("max_drawdown_pct",) and value in (None, ""):
        return Decimal("-Infinity")
    return Decimal(str(value)) if value not in (None, "") else Decimal("Infinity")


def run_grid(base: BacktestConfig, data_template: str, symbols: Sequence[str],
             sets: Sequence[dict[str, Any]], out: Path, *, jobs: int, rank_by: str
             ) -> list[dict[str, Any]]:
    """Every symbol × parameter set of ``base`` in ``jobs`` processes; the ranked rows
    (also written to ``out/summary.csv``)."""
    cells = []
    for i, (symbol, extra) in enumerate(itertools.product(symbols, sets)):
        data = Path(data_template.format(symbol=symbol)).expanduser()
        config = replace(base, symbol=symbol, data=data, params={**base.params, **extra})
        cells.append((config, out / f"{i:04d}-{symbol}"))
    rows: list[dict[str, Any]] = []
    with progress_bar(f"grid: {len(cells)} runs", len(cells)) as advance, \
            ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(run_one, config, cell_out) for config, cell_out in cells]
        for future in as_completed(futures):
            rows.append(future.result())
            advance(len(rows))
    rows.sort(key=lambda r: (-_rank_value(r, rank_by), r["dir"]))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    out.mkdir(parents=True, exist_ok=True)
    with (out / "summary.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, SUMMARY_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _summary_text(k, row.get(k)) for k in SUMMARY_COLUMNS})
    return rows


def mock_config(args: argparse.Namespace) -> MockVenueConfig | None:
    """``--venue-kind mock``: the mock venue's latency and fill ratio (ValueError if out
    of range); None for the paper venue."""
    if args.venue_kind != "mock":
        return None
    if not 0 <= args.mock_latency_ms <= 60_000:
        raise ValueError("--mock-latency-ms must be between 0 and 60000")
    try:
        ratio = Decimal(args.mock_fill_ratio)
    except ArithmeticError:
        raise ValueError(f"--mock-fill-ratio is not a number: {args.mock_fill_ratio!r}"
                         ) from None
    if not ratio.is_finite():
        raise ValueError("--mock-fill-ratio must be a number above 0 and at most 1")
    return MockVenueConfig(latency=timedelta(milliseconds=args.mock_latency_ms),
                           fill_ratio=ratio)


# Ratios shown to 4 places in summary.csv (ranked on the exact values of metrics.json).
_SUMMARY_RATIOS = frozenset({"win_rate", "total_return", "sharpe", "sortino", "calmar",
                             "max_drawdown_pct", "profit_factor"})


def _summary_text(key: str, value: Any) -> Any:
    if value is None:
        return ""
    if key in _SUMMARY_RATIOS:
        return str(Decimal(str(value)).quantize(RATIO_PLACES))
    return value


def run(args: argparse.Namespace) -> int:
    if args.strategy is None and (args.signals is None or args.params or args.params_file
                                  or args.grid):
        print("perpdesk backtest: give --strategy (its --params, --grid), --signals, or both",
              file=sys.stderr)
        return 2
    try:
        params = read_params_file(Path(args.params_file)) if args.params_file else {}
        params.update(parse_params(args.params or []))
        base = BacktestConfig(
            strategy=args.strategy, data=Path(args.data).expanduser(),
            symbol=args.symbol, venue=args.venue, params=params,
            funding=Path(args.funding).expanduser() if args.funding else None,
            signals=Path(args.signals).expanduser() if args.signals else None,
            fees=parse_fees(args.fees),
            interval=parse_interval(args.interval) if args.interval else None,
            volume_unit=args.volume_unit, periods_per_year=args.periods_per_year,
            mock=mock_config(args), fast=not args.every_point)
        out = Path(args.out).expanduser()
        if args.grid or args.symbols:
            symbols = [s.strip() for s in (args.symbols or args.symbol).split(",") if s.strip()]
            sets = grid_sets(args.grid or [])
            rows = run_grid(base, args.data, symbols, sets, out,
                            jobs=args.jobs or os.cpu_count() or 1, rank_by=args.rank_by)
            print(f"{len(rows)} runs → {out / 'summary.csv'}")
            for row in rows[:5]:
                print(f"  #{row['rank']} {row['symbol']} {row['params']} "
                      f"{args.rank_by}={row[args.rank_by]} trades={row['trades']}")
            return 0
        total = count_bars(base.data)
        with progress_bar(f"{base.label} on {base.data.name}", total) as advance:
            result = run_backtest(base, advance)
        write_report(result, out)
    except InvalidParams as exc:
        print(f"perpdesk backtest: invalid parameters: {exc.problems}", file=sys.stderr)
        return 2
    except (OSError, ValueError, KeyError) as exc:
        print(f"perpdesk backtest: {exc}", file=sys.stderr)
        return 2
    p = result.performance
    print(f"source: {result.description}")
    print(f"bars={result.bars} trades={p.trades.trades} total_pnl={p.total_pnl:.2f} "
          f"return={_pct(p.total_return)} sharpe={_num(p.sharpe)} "
          f"max_dd={p.max_drawdown.pct:.2f}% wall_s={result.wall_s:.2f}")
    if result.signals:
        s = result.signals
        print(f"signals: {s['submitted']} submitted, {s['refused']} refused"
              f"{' (last: ' + s['last_refusal'] + ')' if s['last_refusal'] else ''}, "
              f"{s['outside_data']} outside the bars' time, {s['other_markets']} for "
              "another market")
    print(f"report: {out}")
    return 0


def _pct(value: Decimal | None) -> str:
    return "-" if value is None else f"{value * 100:.2f}%"


def _num(value: Decimal | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("backtest", help="backtest a strategy over a bar file",
                            description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--strategy", choices=BACKTEST_KINDS,
                   help="the strategy to run (needed unless --signals is given)")
    p.add_argument("--data", required=True, metavar="FILE",
                   help="OHLCV bars, CSV or Parquet, any interval; with --grid over "
                        "several symbols, '{symbol}' in it is replaced by each")
    p.add_argument("--symbol", default="BTC-PERP", help="the instrument (default %(default)s)")
    p.add_argument("--venue", default=VENUES[0], choices=VENUES)
    p.add_argument("--params", nargs="*", metavar="K=V", help="strategy parameters")
    p.add_argument("--params-file", metavar="F", help="strategy parameters, JSON or YAML")
    p.add_argument("--funding", metavar="FILE", help="funding rates (timestamp, funding_rate)")
    p.add_argument("--signals", metavar="FILE",
                   help="recorded signals (time, signal 1/0/-1, optional client, strategy, "
                        "strength, signal_id), each submitted at its time as POST "
                        "/api/v1/signals would: alone, or beside --strategy")
    p.add_argument("--fees", metavar="MAKER,TAKER",
                   help="fee rates in bps (default: the instrument's, 2,5)")
    p.add_argument("--interval", help="bar interval (default: detected)")
    p.add_argument("--venue-kind", choices=("paper", "mock"), default="paper",
                   help="paper: the exchange simulator (book walking, queues); mock: fills "
                        "at the mark after a latency, a fraction of each order")
    p.add_argument("--mock-latency-ms", type=int, default=50, metavar="MS",
                   help="with --venue-kind mock (default %(default)s)")
    p.add_argument("--mock-fill-ratio", default="1", metavar="R",
                   help="with --venue-kind mock: the fraction of each order that fills, "
                        "above 0 and at most 1 (default %(default)s)")
    p.add_argument("--volume-unit", choices=("quote", "base"), default="quote")
    p.add_argument("--periods-per-year", type=int, default=CRYPTO_DAYS_PER_YEAR,
                   help="annualization of the daily ratios (default %(default)s: crypto)")
    p.add_argument("--every-point", action="store_true",
                   help="step the engine and the strategy through every update of every "
                        "bar, even where nothing can happen (slower; the same results)")
    p.add_argument("--out", default="backtest-report", metavar="DIR")
    p.add_argument("--grid", nargs="*", metavar="K=V1,V2",
                   help="parameter axes: every combination is run")
    p.add_argument("--symbols", help="comma-separated symbols for the grid")
    p.add_argument("--jobs", type=int, default=None, help="grid processes (default: cores)")
    p.add_argument("--rank-by", choices=RANK_KEYS, default="sharpe")
    p.set_defaults(run=run)
