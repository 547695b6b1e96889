"""The report's column-at-a-time writers and chart buckets give, value for value, what
a row (or point) at a time gives: the reference below is how report.py and html.py
worked before the million-bar speed-up, and the files must not change by a byte."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from app.backtest.html import (
    _candles,
    _column_series,
    _drawdown_series,
    _secs,
    monthly_returns,
)
from app.backtest.report import (
    _DECIMAL,
    _TIME,
    RATIO_PLACES,
    decimal_column,
    decimal_text_column,
    drawdowns,
    iso_text_column,
    write_text_csv,
)
from app.backtest.runner import BacktestResult
from app.domain.analytics import EquityPoint

START = datetime(2022, 12, 31, 22, 0, tzinfo=UTC)


def point_by_point_buckets(points: list[tuple[datetime, Any]], width: int) -> dict[int, list[Any]]:
    """Each bucket's points in order, a point at a time (the reference)."""
    out: dict[int, list[Any]] = {}
    for at, value in points:
        out.setdefault(_secs(at) // width * width, []).append(value)
    return dict(sorted(out.items()))


def lowest(values: list[Decimal]) -> Decimal:
    best = values[0]
    for v in values[1:]:
        best = v if v < best else best
    return best


def highest(values: list[Decimal]) -> Decimal:
    best = values[0]
    for v in values[1:]:
        best = v if v > best else best
    return best


# Prices and equities that tie in value but not in text ("1.0" and "1.00"): a bucket
# shows the first of them, as before.
prices = st.sampled_from([Decimal(t) for t in
                          ("1.0", "1.00", "0.5", "0.50", "2", "2.000", "-1.5", "-1.50")])


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(st.integers(1, 400), min_size=1, max_size=60),
       values=st.lists(prices, min_size=60, max_size=60),
       width=st.sampled_from([1, 60, 300, 3600]))
def test_chart_series_match_a_point_by_point_reference(
        steps: list[int], values: list[Decimal], width: int) -> None:
    times = [START + timedelta(seconds=sum(steps[:i + 1])) for i in range(len(steps))]
    values = values[:len(times)]
    buckets = point_by_point_buckets(list(zip(times, values, strict=True)), width)
    assert _column_series(times, values, width) == [
        {"time": t, "value": str(vs[-1])} for t, vs in buckets.items()]
    negated = point_by_point_buckets([(at, -v) for at, v in zip(times, values, strict=True)],
                                     width)
    assert _drawdown_series(times, values, width) == [
        {"time": t, "value": str(lowest(vs))} for t, vs in negated.items()]

    bars = [(at, v, v + 1, v - 1, v * 2) for at, v in zip(times, values, strict=True)]
    result = cast(BacktestResult, SimpleNamespace(candles=bars))
    merged = point_by_point_buckets([(bar[0], bar) for bar in bars], width)
    assert _candles(result, width) == [
        {"time": t, "open": str(bs[0][1]), "high": str(highest([b[2] for b in bs])),
         "low": str(lowest([b[3] for b in bs])), "close": str(bs[-1][4])}
        for t, bs in merged.items()]


def test_monthly_returns_across_a_year_end() -> None:
    curve = [EquityPoint(START + timedelta(hours=h), Decimal(100 + h)) for h in range(0, 800, 7)]
    ends: dict[tuple[int, int], Decimal] = {}
    for p in curve:
        ends[(p.at.year, p.at.month)] = p.equity
    rows = monthly_returns(curve)
    assert [r["year"] for r in rows] == [2022, 2023]
    dec_2022 = ends[(2022, 12)]
    assert rows[0]["months"][11] == (dec_2022 / curve[0].equity - 1) * 100
    assert rows[1]["months"][0] == (ends[(2023, 1)] / dec_2022 - 1) * 100
    assert rows[1]["months"][1] == (ends[(2023, 2)] / ends[(2023, 1)] - 1) * 100


@given(st.lists(st.decimals(min_value=-10**6, max_value=10**6, places=8), min_size=1))
def test_drawdowns_match_the_row_at_a_time_formula(equity: list[Decimal]) -> None:
    expected, peak = [], None
    for value in equity:
        peak = value if peak is None or value > peak else peak
        dd = (peak - value) / peak * 100 if peak > 0 else Decimal(0)
        expected.append(dd.quantize(RATIO_PLACES))
    assert [str(d) for d in drawdowns(equity)] == [str(d) for d in expected]


@given(st.lists(st.decimals(allow_nan=False, allow_infinity=False)))
def test_decimal_text_is_format_f(values: list[Decimal]) -> None:
    values += [Decimal("1E-7"), Decimal("1E+3"), Decimal("-0"), Decimal("0E-8")]
    assert decimal_text_column(values).to_pylist() == [format(v, "f") for v in values]


def test_decimal_column_is_the_quantized_values() -> None:
    def quantized(values: list[Decimal]) -> Any:
        return pa.array([v.quantize(Decimal("1e-18")) for v in values], type=_DECIMAL)

    short = [Decimal("19353.96637155"), Decimal("-0.0001"), Decimal("-0"), Decimal("1E+3")]
    # More than 18 places: Arrow refuses to round, so these are quantized (half-even).
    long = [*short, Decimal("0.12345678901234567850"), Decimal("0.12345678901234567950")]
    for values in (short, long):
        assert decimal_column(values, decimal_text_column(values)).equals(quantized(values))


def test_iso_text_is_isoformat() -> None:
    whole = [START + timedelta(minutes=i) for i in range(3)]
    columns = [
        whole,  # Arrow prints these
        [*whole, START + timedelta(microseconds=5)],  # isoformat shows microseconds
        [t.astimezone(timezone(timedelta(hours=2))) for t in whole],  # "+02:00"
        [t.replace(tzinfo=None) for t in whole],  # naive
        [],
    ]
    for times in columns:
        stored = pa.array(times, type=_TIME)
        assert iso_text_column(times, stored).to_pylist() == [t.isoformat() for t in times]


def test_text_csv_is_what_csv_writer_writes(tmp_path: Path) -> None:
    for rows in ([("2022-01-01T00:00:00+00:00", "1.5", "0.0000"), ("b", "2", "-3")], []):
        expected = io.StringIO(newline="")
        writer = csv.writer(expected)
        writer.writerow(["at", "equity", "drawdown_pct"])
        writer.writerows(rows)
        columns = [list(c) for c in zip(*rows, strict=True)] or [[], [], []]
        write_text_csv(tmp_path / "t.csv", {
            name: pa.array(texts, type=pa.large_string())
            for name, texts in zip(["at", "equity", "drawdown_pct"], columns, strict=True)})
        assert (tmp_path / "t.csv").read_bytes() == expected.getvalue().encode()
