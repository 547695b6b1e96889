"""The report directory of a backtest.

* ``metrics.json`` — the configuration (strategy, validated parameters, data, fees,
  periods per year) and every metric of ``app/domain/analytics.Performance``;
  decimals as strings, times ISO 8601, durations in seconds. Deterministic: nothing
  of the wall clock is in it (that goes to ``run.json``).
* ``trades.csv`` / ``trades.parquet`` — one row per closed trade.
* ``equity.csv`` / ``equity.parquet`` — equity at every bar, with its drawdown (%)
  from the running peak.
* ``report.html`` — one self-contained page (no network): equity, drawdown, price with
  the trades marked, monthly returns, metrics and parameters (``app/backtest/html.py``).
* ``run.json`` — wall time, bars and events per second.

Parquet columns of money are ``decimal128(38, 18)`` (exact to 18 places), times
``timestamp[us, UTC]``.

Presentation rounding: in the trade and equity tables (CSV and Parquet alike)
percentages, R multiples and basis points have 4 decimal places (``RATIO_PLACES``)
and slippage amounts 8 (``MONEY_PLACES``), rounded half-even; prices, quantities,
P&L and fees are the engine's exact values. ``metrics.json`` keeps every metric
unrounded (28 significant digits).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from app.backtest.html import render_html
from app.backtest.runner import BacktestResult
from app.domain.analytics import EquityPoint, TradeRecord, to_json

TRADE_COLUMNS = [f.name for f in fields(TradeRecord)] + ["duration_s"]
EQUITY_COLUMNS = ["at", "equity", "drawdown_pct"]
_PLACES = Decimal("1e-18")
RATIO_PLACES = Decimal("0.0001")
MONEY_PLACES = Decimal("0.00000001")
# Trade columns shown rounded (see the module's docstring), and to how many places.
ROUNDED: dict[str, Decimal] = {
    "pnl_pct": RATIO_PLACES, "r_multiple": RATIO_PLACES,
    "entry_slippage_bps": RATIO_PLACES, "exit_slippage_bps": RATIO_PLACES,
    "slippage_bps": RATIO_PLACES, "entry_slippage": MONEY_PLACES,
    "exit_slippage": MONEY_PLACES, "slippage": MONEY_PLACES,
}
_DECIMAL = pa.decimal128(38, 18)
_TIME = pa.timestamp("us", tz="UTC")


def metrics_document(result: BacktestResult) -> dict[str, Any]:
    c = result.config
    doc: dict[str, Any] = {
        "strategy": c.strategy,
        "params": result.params,
        "data": str(c.data),
        "source": result.description,
        "symbol": c.symbol,
        "venue": c.venue,
        "funding": str(c.funding) if c.funding else None,
        "fees_bps": {"maker": to_json(c.fees.maker_bps), "taker": to_json(c.fees.taker_bps)},
        "from": to_json(result.first_at),
        "to": to_json(result.last_at),
        "bars": result.bars,
        "updates": result.updates,
        "events": result.events,
    }
    perf = to_json(result.performance)
    assert isinstance(perf, dict)
    doc.update(perf)
    return doc


def rounded(value: Decimal | None, places: Decimal) -> Decimal | None:
    """``value`` to ``places`` for a table (half-even); None stays None."""
    return None if value is None else value.quantize(places)


def trade_rows(trades: Sequence[TradeRecord]) -> list[dict[str, Any]]:
    rows = []
    for t in trades:
        row = {name: getattr(t, name) for name in TRADE_COLUMNS[:-1]}
        for name, places in ROUNDED.items():
            row[name] = rounded(row[name], places)
        row["duration_s"] = int(t.duration.total_seconds())
        rows.append(row)
    return rows


def equity_rows(curve: Sequence[EquityPoint]) -> list[dict[str, Any]]:
    rows = []
    peak: Decimal | None = None
    for p in curve:
        peak = p.equity if peak is None or p.equity > peak else peak
        dd = (peak - p.equity) / peak * 100 if peak > 0 else Decimal(0)
        rows.append({"at": p.at, "equity": p.equity,
                     "drawdown_pct": dd.quantize(RATIO_PLACES)})
    return rows


def _csv_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")  # never an exponent ("0E-8"), which CSV readers misread
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


def write_csv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    # A column at a time, the common types first: an equity curve has a million rows.
    texts = [[format(v, "f") if (kind := type(v)) is Decimal else
              v.isoformat() if kind is datetime else _csv_text(v)
              for v in (row[c] for row in rows)] for c in columns]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(zip(*texts, strict=True))


def _arrow_column(values: list[Any]) -> Any:
    sample = next((v for v in values if v is not None), None)
    if isinstance(sample, Decimal):
        return pa.array([None if v is None else v.quantize(_PLACES) for v in values],
                        type=_DECIMAL)
    if sample is not None and hasattr(sample, "isoformat"):
        return pa.array(values, type=_TIME)
    return pa.array(values)


def write_parquet(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    table = pa.table({c: _arrow_column([r[c] for r in rows]) for c in columns})
    pq.write_table(table, path)


def write_report(result: BacktestResult, out: Path) -> Path:
    """Write ``result``'s report into ``out`` (created if missing); returns ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    metrics = metrics_document(result)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    trades, equity = trade_rows(result.trades), equity_rows(result.equity)
    (out / "report.html").write_text(render_html(result, metrics, equity))
    write_csv(out / "trades.csv", TRADE_COLUMNS, trades)
    write_csv(out / "equity.csv", EQUITY_COLUMNS, equity)
    write_parquet(out / "trades.parquet", TRADE_COLUMNS, trades)
    write_parquet(out / "equity.parquet", EQUITY_COLUMNS, equity)
    wall = max(result.wall_s, 1e-9)
    (out / "run.json").write_text(json.dumps({
        "wall_s": round(result.wall_s, 3), "bars_per_s": round(result.bars / wall),
        # As bench/backtest.py counts them: market updates applied (quiet points' too)
        # plus the events emitted.
        "engine_events_per_s": round((result.updates + result.events) / wall),
        "events_per_s": round(result.events / wall), "trades": len(result.trades),
        "quiet_points": result.absorbed_points,
    }, indent=2) + "\n")
    return out
