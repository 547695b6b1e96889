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
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from decimal import Decimal
from operator import itemgetter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from app.backtest.html import render_html
from app.backtest.runner import BacktestResult, fewer_collections
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
        **({"signals": {"file": str(c.signals), **result.signals}}
           if c.signals is not None else {}),
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


@dataclass(frozen=True)
class EquityTable:
    """The equity table (``EQUITY_COLUMNS``) a column at a time. A run of a million
    bars has a million rows: equity.csv, equity.parquet and the page's charts are all
    made from these three lists, not from a dict a row."""

    at: list[datetime]
    equity: list[Decimal]
    drawdown_pct: list[Decimal]  # from the running peak, to RATIO_PLACES


def equity_table(curve: Sequence[EquityPoint]) -> EquityTable:
    equity = [p.equity for p in curve]
    return EquityTable([p.at for p in curve], equity, drawdowns(equity))


# Decimal operands: an int one is converted to a Decimal at every operation.
_ZERO, _HUNDRED = Decimal(0), Decimal(100)


def drawdowns(equity: Sequence[Decimal]) -> list[Decimal]:
    """Each point's drawdown (%) from the running peak, to RATIO_PLACES (half-even)."""
    out: list[Decimal] = []
    append = out.append  # a million appends: the bound method is looked up once
    peak: Decimal | None = None
    positive = False
    for value in equity:
        if peak is None or value > peak:
            peak = value
            positive = peak > _ZERO
        dd = (peak - value) / peak * _HUNDRED if positive else _ZERO
        append(dd.quantize(RATIO_PLACES))
    return out


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
              for v in map(itemgetter(c), rows)] for c in columns]
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


# The text columns of equity.csv: large_string, whose offsets cannot overflow.
_TEXT = pa.large_string()


def decimal_text_column(values: Sequence[Decimal]) -> Any:
    """``format(v, "f")`` of every value, as an Arrow text column. ``str`` is the same
    text, and several times faster, unless it chose an exponent ("1E-7", "1E+3"):
    only those are redone."""
    texts = list(map(str, values))
    if "E" in "".join(texts):  # one scan of a million texts, rarely true
        texts = [format(v, "f") if "E" in t else t for v, t in zip(values, texts, strict=True)]
    return pa.array(texts, type=_TEXT)


def iso_text_column(times: Sequence[datetime], stored: Any) -> Any:
    """``t.isoformat()`` of every time, as an Arrow text column; ``stored`` is their
    ``timestamp[us, UTC]`` column. isoformat a value at a time is the slowest part of
    a million-row CSV, so Arrow prints the stored times when that is the same text:
    every time in UTC and on a whole second (isoformat shows microseconds only when
    there are some, Arrow all or none). Other columns go a value at a time."""
    if {t.tzinfo for t in times} == {UTC}:
        try:
            # The UTC wall time; a safe cast refuses to drop a fraction of a second.
            seconds = stored.cast(pa.timestamp("s"))
        except pa.ArrowInvalid:
            pass
        else:
            text = pc.replace_substring(seconds.cast(_TEXT), " ", "T")  # "2022-01-01 00:00:00"
            return pc.binary_join_element_wise(text, pa.scalar("+00:00", _TEXT),
                                               pa.scalar("", _TEXT))
    return pa.array([t.isoformat() for t in times], type=_TEXT)


def write_text_csv(path: Path, columns: dict[str, Any]) -> None:
    """A CSV of Arrow text columns that need no quoting (numbers and times), as
    csv.writer writes it: CRLF after every row. Arrow joins the rows: a million
    rows of Python strings take longer than all the rest of the CSV."""
    rows = pc.binary_join_element_wise(*columns.values(), pa.scalar(",", _TEXT))
    rows = pc.binary_join_element_wise(rows, pa.scalar("\r\n", _TEXT), pa.scalar("", _TEXT))
    with path.open("wb") as f:
        f.write((",".join(columns) + "\r\n").encode())
        if len(rows):
            # The rows back to back: the data buffer of a text column Arrow has just
            # made (so its first row is at the buffer's start), up to the rows' length.
            f.write(rows.buffers()[2][:pc.sum(pc.binary_length(rows)).as_py()])


def decimal_column(values: Sequence[Decimal], text: Any) -> Any:
    """``values`` as ``decimal128(38, 18)``; ``text`` is their ``format(v, "f")``
    column. Arrow parses decimal text exactly, and far faster than it takes Decimal
    objects. It refuses a value of more than 18 places (ArrowInvalid) rather than
    round it: such a column is quantized a value at a time (half-even), as always."""
    try:
        return text.cast(_DECIMAL)
    except pa.ArrowInvalid:
        return _arrow_column(list(values))


def write_equity(out: Path, table: EquityTable) -> None:
    """equity.csv and equity.parquet, from one Arrow column of each: the times, and
    the text of the decimals (which Arrow parses for the Parquet file)."""
    at = pa.array(table.at, type=_TIME)
    equity = decimal_text_column(table.equity)
    drawdown = decimal_text_column(table.drawdown_pct)
    write_text_csv(out / "equity.csv", {"at": iso_text_column(table.at, at),
                                        "equity": equity, "drawdown_pct": drawdown})
    pq.write_table(pa.table({
        "at": at, "equity": decimal_column(table.equity, equity),
        "drawdown_pct": decimal_column(table.drawdown_pct, drawdown)}),
        out / "equity.parquet")


def write_report(result: BacktestResult, out: Path) -> Path:
    """Write ``result``'s report into ``out`` (created if missing); returns ``out``."""
    # Right after a run, millions of its objects are alive: a full collection would
    # walk them all for nothing (the collector runs less often, as during the run).
    with fewer_collections():
        return _write_report(result, out)


def _write_report(result: BacktestResult, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    metrics = metrics_document(result)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    trades, equity = trade_rows(result.trades), equity_table(result.equity)
    (out / "report.html").write_text(render_html(result, metrics, equity))
    write_csv(out / "trades.csv", TRADE_COLUMNS, trades)
    write_parquet(out / "trades.parquet", TRADE_COLUMNS, trades)
    write_equity(out, equity)
    wall = max(result.wall_s, 1e-9)
    (out / "run.json").write_text(json.dumps({
        "wall_s": round(result.wall_s, 3), "bars_per_s": round(result.bars / wall),
        # As bench/backtest.py counts them: market updates applied (quiet points' too)
        # plus the events emitted.
        "engine_events_per_s": round((result.updates + result.events) / wall),
        "events_per_s": round(result.events / wall), "trades": len(result.trades),
        "quiet_points": result.absorbed_points, "stepped_updates": result.stepped_updates,
    }, indent=2) + "\n")
    return out
