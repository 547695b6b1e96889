"""``report.html``: one self-contained page of a backtest (no network: the chart
library and the data are inlined), rendered with Jinja2 from
``templates/report.html.j2``.

It shows the equity curve, the drawdown from the running peak, the symbol's price
(one candle a bar) with every trade's entry and exit marked, the monthly returns,
every metric of ``metrics.json`` and the parameters of the run. Deterministic like
``metrics.json``: nothing of the wall clock is in it.
"""

from __future__ import annotations

import json
from bisect import bisect_left
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from jinja2 import Environment, FileSystemLoader, select_autoescape

from app.backtest.runner import BacktestResult
from app.domain.analytics import EquityPoint, TradeRecord

if TYPE_CHECKING:  # report.py imports this module
    from app.backtest.report import EquityTable

_HERE = Path(__file__).resolve().parent
CHART_JS = (_HERE.parent / "web" / "static" / "vendor" / "lightweight-charts"
            / "lightweight-charts.standalone.production.js")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
          "Dec")

_env = Environment(loader=FileSystemLoader(_HERE / "templates"),
                   autoescape=select_autoescape(["html", "j2"]), keep_trailing_newline=True)
# The page shows ratios and amounts to DISPLAY_PLACES (metrics.json keeps them exact).
DISPLAY_PLACES = 4


def dec(value: Decimal | None, places: int = 2) -> str:
    """``value`` rounded to ``places`` (half-even, no float on the way); "-" for None."""
    if value is None:
        return "-"
    return format(value.quantize(Decimal(1).scaleb(-places)), "f")


def price(value: Decimal) -> str:
    """A price as it is, to 8 places at most (an average of fills has 28 digits)."""
    exponent = value.as_tuple().exponent
    long = isinstance(exponent, int) and exponent < -8
    return format(value.quantize(Decimal("1e-8")) if long else value, "f")


def display(text: str) -> str:
    """A metric's JSON text for the page: a decimal with more than DISPLAY_PLACES
    places is rounded to them; anything else (integers, times, names) stays."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        return text
    exponent = value.as_tuple().exponent
    if not value.is_finite() or not isinstance(exponent, int) or exponent >= -DISPLAY_PLACES:
        return text
    return dec(value, DISPLAY_PLACES)


_env.filters["dec"] = dec
_env.filters["price"] = price


def _secs(at: datetime) -> int:
    return int(at.timestamp())


# A chart draws at most about this many points a series: a long run's curves are
# bucketed (the report's CSV and Parquet keep every bar). A browser would otherwise
# take a page of a million points, and a screen shows a few thousand at most.
MAX_CHART_POINTS = 5_000


def bucket_seconds(first: datetime | None, last: datetime | None) -> int:
    """The width of a chart bucket: one second, or more when the run is longer than
    ``MAX_CHART_POINTS`` seconds (the chart wants strictly increasing times)."""
    if first is None or last is None:
        return 1
    needed = -(-int((last - first).total_seconds()) // MAX_CHART_POINTS)
    return next((w for w in _NICE_WIDTHS if w >= needed), needed)


# Bucket widths a reader recognizes as candles: 1 s, 1/5/15/30 min, 1/4/12 h, 1 day.
_NICE_WIDTHS = (1, 60, 300, 900, 1800, 3600, 14_400, 43_200, 86_400)


def _column_series(times: Sequence[datetime], values: Sequence[Decimal], width: int = 1
                   ) -> list[dict[str, Any]]:
    """Chart points, one a bucket of ``width`` seconds: its last value. Values travel
    as decimal text, as everywhere else; the page turns them into chart numbers
    (``num`` in the template). Times come in order."""
    return [{"time": t, "value": str(values[end - 1])}
            for t, _, end in _buckets(times, width, _itself)]


def _drawdown_series(times: Sequence[datetime], drawdowns: Sequence[Decimal],
                     width: int = 1) -> list[dict[str, Any]]:
    """The drawdown chart: each bucket's deepest drawdown, negated (the chart goes
    down from 0). The lowest of the negated drawdowns is the negated highest (max()
    keeps the first of equals, as min() does), so a million drawdowns need not each be
    negated for a few thousand points."""
    return [{"time": t, "value": str(-max(drawdowns[first:end]))}
            for t, first, end in _buckets(times, width, _itself)]


_Point = TypeVar("_Point")


def _buckets(points: Sequence[_Point], width: int,
             time: Callable[[_Point], datetime]) -> list[tuple[int, int, int]]:
    """The buckets of ``width`` seconds that hold points: (the bucket's start in Unix
    seconds, the index of its first point, the index after its last); ``time`` is a
    point's time. Points come in time order (the runner's bars and equity curve do),
    so a bucket's points are the run of them before its end, found by bisection: a
    few thousand steps, not a million."""
    out = []
    first, count = 0, len(points)
    while first < count:
        start = _secs(time(points[first])) // width * width
        end = bisect_left(points, _UNIX + timedelta(seconds=start + width), first + 1,
                          key=time)
        out.append((start, first, end))
        first = end
    return out


def _itself(at: datetime) -> datetime:
    return at


_UNIX = datetime(1970, 1, 1, tzinfo=UTC)


def monthly_returns(curve: Sequence[EquityPoint]) -> list[dict[str, Any]]:
    """Rows of (year, 12 monthly returns in %, the year's return in %): each month's
    last equity against the previous month's last (the first against the start)."""
    if not curve:
        return []
    ends = _month_ends(curve)
    prev = curve[0].equity
    years: dict[int, dict[str, Any]] = {}
    for (year, month), equity in sorted(ends.items()):
        row = years.setdefault(year, {"year": year, "months": [None] * 12, "start": prev})
        row["months"][month - 1] = (equity / prev - 1) * 100 if prev > 0 else None
        row["end"] = equity
        prev = equity
    rows = []
    for year in sorted(years):
        row = years[year]
        start = row.pop("start")
        end = row.pop("end")
        row["total"] = (end / start - 1) * 100 if start > 0 else None
        rows.append(row)
    return rows


def _month_ends(curve: Sequence[EquityPoint]) -> dict[tuple[int, int], Decimal]:
    """The last equity of each (year, month). The curve is in time order, with its
    times in one zone (the runner's are UTC): a month's points are a run, whose end is
    found by bisection rather than by looking at each of a million points."""
    ends: dict[tuple[int, int], Decimal] = {}
    first = 0
    while first < len(curve):
        at = curve[first].at
        next_month = datetime(at.year + at.month // 12, at.month % 12 + 1, 1, tzinfo=at.tzinfo)
        end = bisect_left(curve, next_month, first + 1, key=_POINT_AT)
        ends[(at.year, at.month)] = curve[end - 1].equity
        first = end
    return ends


_POINT_AT = attrgetter("at")


def _flatten(prefix: str, value: Any, out: list[tuple[str, str]]) -> None:
    if isinstance(value, dict):
        if not value and prefix:
            out.append((prefix, "-"))
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, list):
        out.append((prefix, json.dumps(value)))
    else:
        out.append((prefix, "-" if value is None else display(str(value))))


MARKER_TEXT_MAX = 30  # more trades than this: markers without labels (they would overlap)


def _markers(trades: Sequence[TradeRecord], width: int = 1) -> list[dict[str, Any]]:
    marks = []
    labels = len(trades) <= MARKER_TEXT_MAX
    for t in trades:
        long = t.direction == "long"
        opened, closed = (_secs(x) // width * width for x in (t.opened_at, t.closed_at))
        marks.append({"time": opened, "position": "belowBar" if long else "aboveBar",
                      "color": "#2e7d32" if long else "#c62828",
                      "shape": "arrowUp" if long else "arrowDown",
                      "text": f"{'L' if long else 'S'} {t.entry_price}" if labels else ""})
        marks.append({"time": closed, "position": "aboveBar" if long else "belowBar",
                      "color": "#455a64", "shape": "circle",
                      "text": f"x {t.exit_price} ({t.net_pnl:+.2f})" if labels else ""})
    return sorted(marks, key=lambda m: m["time"])


_BAR_AT, _HIGH, _LOW = itemgetter(0), itemgetter(2), itemgetter(3)


def _candles(result: BacktestResult, width: int = 1) -> list[dict[str, Any]]:
    """One candle a bucket of ``width`` seconds: the bars in it merge (the first open,
    the highest high, the lowest low, the last close; max() and min() keep the first
    of equal prices). Prices travel as decimal text (the page turns them into chart
    numbers)."""
    bars = result.candles
    out = []
    for t, first, end in _buckets(bars, width, _BAR_AT):
        bucket = bars[first:end]
        out.append({"time": t, "open": str(bucket[0][1]), "high": str(max(map(_HIGH, bucket))),
                    "low": str(min(map(_LOW, bucket))), "close": str(bucket[-1][4])})
    return out


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element."""
    return json.dumps(value, separators=(",", ":")).replace("</", "<\\/")


def render_html(result: BacktestResult, metrics: dict[str, Any],
                equity: EquityTable) -> str:
    """The page of ``result``; ``metrics`` is the metrics.json document, ``equity``
    the table (with drawdown) of equity.csv."""
    c = result.config
    params = [("strategy", c.strategy or "-"), ("symbol", c.symbol), ("venue", c.venue),
              ("data", str(c.data)), ("source", result.description)]
    params += [(f"params.{k}", json.dumps(v) if not isinstance(v, str) else v)
               for k, v in sorted(result.params.items())]
    params += [("fees_bps.maker", str(metrics["fees_bps"]["maker"] or "instrument's")),
               ("fees_bps.taker", str(metrics["fees_bps"]["taker"] or "instrument's")),
               ("funding", str(c.funding or "-")),
               *((("signals", str(c.signals)),) if c.signals is not None else ()),
               ("periods_per_year", str(c.periods_per_year))]
    skip = {"strategy", "params", "data", "source", "symbol", "venue", "funding", "fees_bps",
            "signals"}
    rows: list[tuple[str, str]] = []
    _flatten("", {k: v for k, v in metrics.items() if k not in skip}, rows)
    width = bucket_seconds(result.first_at, result.last_at)
    data = {
        "equity": _column_series(equity.at, equity.equity, width),
        "drawdown": _drawdown_series(equity.at, equity.drawdown_pct, width),
        "candles": _candles(result, width),
        "markers": _markers(result.trades, width),
    }
    template = _env.get_template("report.html.j2")
    return template.render(
        title=f"Backtest: {c.label} on {c.symbol}", params=params, metrics=rows,
        months=MONTHS, monthly=monthly_returns(result.equity), trades=result.trades,
        first_at=result.first_at, last_at=result.last_at, bars=result.bars,
        perf=result.performance, chart_js=CHART_JS.read_text(), data=_script_json(data))
