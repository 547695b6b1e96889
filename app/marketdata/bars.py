"""OHLCV bar files of any interval, and funding-rate files, as market updates.

What a file may look like (CSV with a header row, or Parquet — ``.parquet`` /
``.pq``, read with pyarrow into the same rows: app/marketdata/parquet_rows.py; a
CSV may come gzipped, ``.gz``, or as the one file of a ``.zip``):

* a header row names the columns; a file without one (Binance's public klines
  ship so) is read by position when its column count tells the layout: 12
  columns are Binance's kline layout (open time, open, high, low, close, base
  volume, close time, quote volume, ...), 6 are timestamp, open, high, low,
  close, volume and 5 the same without volume;
* columns are found by name, case and punctuation ignored: the bar's start
  ``timestamp`` / ``time`` / ``open_time`` / ``date`` / ``datetime`` / ``ts``;
  ``open``/``high``/``low``/``close`` (or ``o``/``h``/``l``/``c``); volume as
  ``quote_volume`` / ``quote_asset_volume`` / ``turnover`` / ``vol_ccy_quote``
  (quote units), ``base_volume`` / ``vol_ccy`` (base units) or plain ``volume`` /
  ``vol`` / ``v``, whose unit the caller says (``volume_unit``, default quote: the
  shared BTC file's ``volume`` is quote volume);
* timestamps in ISO 8601 (``2022-01-01 00:00:00``, ``2022-01-01T00:00:00Z``,
  with or without an offset; naive means UTC) or epoch numbers, whose unit is
  told by their size: seconds, milliseconds, microseconds or nanoseconds;
* any bar interval: given, or detected as the most common gap between
  consecutive bars (so a few missing bars do not fool it).

Numbers go from the file's text straight to ``Decimal``, never through float (a
Parquet double goes through its shortest round-trip text, as a CSV writer prints it).
A bar is refused, with its line, unless its prices are positive and finite, its
volume finite and not negative (both below ``MAX_VALUE``), and its high and low
hold its open and close: a backtest on bad data would look like a result.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal, InvalidOperation
from itertools import chain, islice, pairwise
from pathlib import Path
from typing import TextIO, cast

import pyarrow as pa
import pyarrow.parquet as pq

from app.domain.instruments import Rounding, round_to_increment
from app.domain.market import FundingRate, MarkPrice, PriceBar, Quote, TradePrint
from app.domain.orders import Side
from app.marketdata.parquet_rows import BATCH_ROWS, parquet_rows, parquet_text

StrPath = str | os.PathLike[str]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DEFAULT_SIZE_STEP = Decimal("0.001")
# How many leading bars interval detection looks at: enough for a clear majority.
_DETECT_SAMPLE = 1000

# Column names, normalized (lower case, letters and digits only), most specific first.
TIME_COLUMNS = ("timestamp", "opentime", "time", "datetime", "date", "ts", "starttime", "start",
                "t")
_OPEN, _HIGH, _LOW, _CLOSE = ("open", "o"), ("high", "h"), ("low", "l"), ("close", "c")
_QUOTE_VOLUME = ("quotevolume", "quoteassetvolume", "volumequote", "quotevol", "turnover",
                 "volccyquote", "volquote")
_BASE_VOLUME = ("basevolume", "volumebase", "basevol", "volccy")
_VOLUME = ("volume", "vol", "v")
_FUNDING_TIME = ("fundingtime", "calctime", "fundingratetimestamp", *TIME_COLUMNS)
_FUNDING_RATE = ("fundingrate", "lastfundingrate", "rate", "funding")

# A headerless CSV's layout, told by its column count (the names are ours).
_HEADERLESS = {
    12: ("open_time", "open", "high", "low", "close", "base_volume", "close_time",
         "quote_volume", "count", "taker_buy_base_volume", "taker_buy_quote_volume",
         "ignore"),  # Binance's klines (data.binance.vision, GET /api/v3/klines)
    6: ("timestamp", "open", "high", "low", "close", "volume"),
    5: ("timestamp", "open", "high", "low", "close"),
}
# Prices and volumes at or above this are refused: no market comes near (bitcoin in
# Indonesian rupiah is about 1e9), and sizes worked out from them stay exact.
MAX_VALUE = Decimal("1e15")
_ZERO = Decimal(0)

_INTERVAL = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def find_column(header: Sequence[str], names: Sequence[str]) -> str | None:
    """The header's column that one of ``names`` (normalized, most specific first) names."""
    by_key = {_key(column): column for column in header}
    for name in names:
        if name in by_key:
            return by_key[name]
    return None


def _csv_header(path: StrPath, first: list[str]) -> tuple[list[str], bool]:
    """A bar CSV's header from its first row, and whether that row is a bar already: a
    file without a header is read by position, its layout told by its column count."""
    if find_column(first, TIME_COLUMNS) is not None or not _is_bar_row(first):
        return first, False
    names = _HEADERLESS.get(len(first))
    if names is None:
        raise ValueError(f"{path}: no header row, and {len(first)} columns is no layout "
                         "read by position (Binance's 12-column klines, or timestamp, open, "
                         "high, low, close and an optional volume): give the file a header")
    return list(names), True


def _is_bar_row(row: Sequence[str]) -> bool:
    """Whether a CSV row reads as a bar (a time, then four numbers), not as a header."""
    if len(row) < 5:
        return False
    try:
        parse_time(row[0])
        for cell in row[1:5]:
            Decimal(cell.strip())
    except (ValueError, InvalidOperation):
        return False
    return True


@dataclass(frozen=True, slots=True)
class BarLayout:
    """Which column of a bar file holds what."""

    timestamp: str
    open: str
    high: str
    low: str
    close: str
    volume: str | None  # None: the file has no volume
    volume_is_quote: bool


def bar_layout(header: Sequence[str], volume_unit: str = "quote") -> BarLayout:
    """Map a bar file's header to its columns (see the module docstring for the names).

    ``volume_unit`` (``"quote"`` or ``"base"``) says what a plain ``volume`` column
    counts; ``quote_volume``-like and ``base_volume``-like names say it themselves.
    """
    if volume_unit not in ("quote", "base"):
        raise ValueError(f"volume_unit must be 'quote' or 'base', not {volume_unit!r}")
    found = {role: find_column(header, names) for role, names in (
        ("timestamp", TIME_COLUMNS), ("open", _OPEN), ("high", _HIGH), ("low", _LOW),
        ("close", _CLOSE))}
    columns = {role: column for role, column in found.items() if column is not None}
    missing = [role for role in found if role not in columns]
    if missing:
        raise ValueError(f"bar file has no {', '.join(missing)} "
                         f"column{'s' if len(missing) > 1 else ''} "
                         f"(columns: {', '.join(header)})")
    volume, is_quote = find_column(header, _QUOTE_VOLUME), True
    if volume is None:
        volume, is_quote = find_column(header, _BASE_VOLUME), False
    if volume is None:
        volume, is_quote = find_column(header, _VOLUME), volume_unit == "quote"
    return BarLayout(columns["timestamp"], columns["open"], columns["high"], columns["low"],
                     columns["close"], volume, is_quote)


def parse_time(text: str) -> datetime:
    """ISO 8601 (naive = UTC) or an epoch number in s, ms, µs or ns (told by its size)."""
    text = text.strip()
    # ``YYYY-MM-DD...`` (the common case) is no number: no need to try the pattern.
    if not (len(text) >= 10 and text[4] == "-") and _NUMBER.match(text):
        value = Decimal(text)
        magnitude = abs(value)
        # Epoch seconds stay below 1e11 until the year 5138; each finer unit is 1000x.
        scale = (1 if magnitude < Decimal("1e11") else 1000 if magnitude < Decimal("1e14")
                 else 1_000_000 if magnitude < Decimal("1e17") else 1_000_000_000)
        micros = (value * 1_000_000 / scale).to_integral_value()
        return _EPOCH + timedelta(microseconds=int(micros))
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO 8601 time or epoch number: {text!r}") from None
    if ts.tzinfo is not None:
        return ts.astimezone(UTC)
    # Naive: UTC. Read again with "+00:00" it is that time in UTC, several times faster
    # than replace(tzinfo=UTC) (a million bars); a text that does not take the suffix
    # as its zone (a date alone) is not.
    try:
        aware = datetime.fromisoformat(text + "+00:00")
    except ValueError:
        aware = None
    return aware if aware is not None and aware.tzinfo is UTC else ts.replace(tzinfo=UTC)


def parse_interval(text: str) -> timedelta:
    """``"30s"``, ``"1m"``, ``"5m"``, ``"1h"``, ``"8h"``, ``"1d"``, ``"1w"`` -> timedelta."""
    match = _INTERVAL.match(text)
    if not match or int(match.group(1)) <= 0:
        raise ValueError(f"not a bar interval: {text!r} (e.g. 1m, 5m, 1h, 1d)")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2).lower()])


def format_interval(interval: timedelta) -> str:
    """The shortest ``parse_interval`` spelling of a whole number of seconds (``5m``)."""
    seconds = int(interval.total_seconds())
    for unit in ("w", "d", "h", "m"):
        if seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s" if seconds == interval.total_seconds() else str(interval)


@contextmanager
def csv_text(path: StrPath) -> Iterator[TextIO]:
    """A CSV file's text, for the ``csv`` module: ``.gz`` is read through gzip and
    ``.zip`` as its one file (as data.binance.vision ships its klines), without
    unpacking either to disk."""
    name = str(path).lower()
    if name.endswith(".gz"):
        with gzip.open(path, "rt", newline="", encoding="utf-8-sig") as text:
            yield text
    elif name.endswith(".zip"):
        try:
            archive = zipfile.ZipFile(path)
        except zipfile.BadZipFile as exc:
            raise ValueError(f"{path}: not a readable zip file ({exc})") from None
        with archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
            if len(members) != 1:
                raise ValueError(f"{path}: a zip file of bars holds one file, not "
                                 f"{len(members)}")
            with archive.open(members[0]) as raw, \
                    io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as text:
                yield text
    else:
        with open(path, newline="", encoding="utf-8-sig") as text:
            yield text


def table_rows(path: StrPath) -> Iterator[tuple[int, dict[str, str], list[str]]]:
    """(line number, row, header) for each data row of a CSV file with a header (or of a
    Parquet file, each value as the CSV's text would be)."""
    if _is_parquet(path):
        yield from parquet_rows(path)
        return
    with csv_text(path) as f:
        reader = csv.DictReader(f)
        header = list(reader.fieldnames or [])
        if not header:
            raise ValueError(f"{path}: empty file or no header row")
        for row in reader:
            yield reader.line_num, row, header


def table_header(path: StrPath) -> list[str]:
    """A CSV's first row or a Parquet file's column names, read alone (a Parquet file's
    schema, not a batch of its rows): what a quick check of a file's kind needs. An
    empty CSV has none ([])."""
    if _is_parquet(path):
        return list(_parquet_file(path).schema_arrow.names)
    with csv_text(path) as f:
        return next(csv.reader(f), None) or []


def bar_file_layout(path: StrPath, volume_unit: str = "quote") -> BarLayout:
    """The column layout of a bar file, read from its header (fails fast on a file
    that is not a bar file)."""
    if _is_parquet(path):
        file = _parquet_file(path)
        layout = bar_layout(list(file.schema_arrow.names), volume_unit)
        if file.metadata.num_rows == 0:
            raise ValueError(f"{path}: no bars")
        return layout
    first = table_header(path)
    if not first:
        raise ValueError(f"{path}: no bars")
    return bar_layout(_csv_header(path, first)[0], volume_unit)


def detect_interval(path: StrPath, *, sample: int = _DETECT_SAMPLE) -> timedelta:
    """The bar interval of a file: the most common gap between consecutive bars among
    the first ``sample`` (the shorter gap wins a tie)."""
    _, rows = _bar_file(path, "quote", batch_rows=sample)
    stamps = [start for _, start, _ in islice(rows, sample)]
    gaps = Counter(b - a for a, b in pairwise(stamps) if b > a)
    if not gaps:
        raise ValueError(f"{path}: cannot detect the bar interval from {len(stamps)} bar(s); "
                         "give it (e.g. --interval 5m)")
    return max(gaps.items(), key=lambda item: (item[1], -item[0]))[0]


def _decimal(row: dict[str, str], column: str, line: int) -> Decimal:
    try:
        return Decimal(row[column].strip())
    except (InvalidOperation, AttributeError):
        raise ValueError(f"line {line}: {column} is not a number: {row[column]!r}") from None


def read_bars(
    path: StrPath, *, venue: str, symbol: str, tick: Decimal,
    interval: timedelta | None = None, size_step: Decimal = DEFAULT_SIZE_STEP,
    volume_unit: str = "quote", notional_without_volume: Decimal | None = None,
) -> Iterator[Quote | TradePrint | MarkPrice]:
    """OHLCV bars of any interval as a tick stream.

    Each bar becomes four price points a quarter of the interval apart (+0, +¼,
    +½, +¾; for 1-minute bars +0/15/30/45 s): O, then L, H for an up bar
    (close >= open) or H, L for a down bar, then C. Each point p yields
    ``Quote(bid=p, ask=p + tick)`` with both sizes a quarter of the bar's
    volume in base units (quote volume / p) rounded down to ``size_step`` (at
    least one step), a ``TradePrint`` of that size at p (aggressor BUY if p rose
    from the previous point, else SELL; the very first point counts as SELL)
    and a ``MarkPrice`` at p.

    Points are rounded to the nearest ``tick`` first (interpolated bars can be
    off the instrument's grid, and quotes off it would break tick checks
    downstream). ``interval`` defaults to ``detect_interval(path)``. A file
    without volume needs ``notional_without_volume`` (quote units per bar).
    Bars must be in increasing time order, at least ``interval`` apart (gaps are
    fine: the book just hears nothing for a while).
    """
    return bar_updates(read_price_bars(
        path, tick=tick, interval=interval, size_step=size_step, volume_unit=volume_unit,
        notional_without_volume=notional_without_volume), venue, symbol)


def bar_updates(bars: Iterable[PriceBar], venue: str, symbol: str
                ) -> Iterator[Quote | TradePrint | MarkPrice]:
    """Bars as the updates they are replayed as: each point's quote, print and mark."""
    for bar in bars:
        for k in range(4):
            yield from bar.point_updates(venue, symbol, k)


def read_price_bars(
    path: StrPath, *, tick: Decimal, interval: timedelta | None = None,
    size_step: Decimal = DEFAULT_SIZE_STEP, volume_unit: str = "quote",
    notional_without_volume: Decimal | None = None,
) -> Iterator[PriceBar]:
    """The bars of a file as ``PriceBar``s: what ``read_bars`` replays, a bar at a time
    (a backtest steps the engine a point at a time only where something can happen)."""
    if interval is None:
        interval = detect_interval(path)
    offsets = tuple(interval * k / 4 for k in range(4))
    previous: Decimal | None = None
    last_start: datetime | None = None
    buy, sell = Side.BUY, Side.SELL
    # On a power-of-ten tick, rounding to it is one quantize (the same result).
    decimal_tick = tick > 0 and tick == Decimal(1).scaleb(tick.adjusted())
    nearest = ROUND_HALF_EVEN
    layout, rows = _bar_file(path, volume_unit)
    if layout.volume is None and notional_without_volume is None:
        raise ValueError(f"{path}: no volume column (give notional_without_volume)")
    quote_volume = layout.volume is None or layout.volume_is_quote
    fixed_volume = notional_without_volume if layout.volume is None else None
    names = (layout.open, layout.high, layout.low, layout.close, layout.volume or "volume")
    prices: dict[str | float, tuple[Decimal, Decimal]] = {}
    new_bar = tuple.__new__  # PriceBar's own __new__ is Python: a million calls

    def price_of(value: str | float) -> tuple[Decimal, Decimal]:
        """A price as written and rounded to the tick (kept for the next time)."""
        raw = _decimal_of(value)
        if not raw.is_finite() or raw <= 0 or raw >= MAX_VALUE:
            raise _OutOfRange
        rounded = raw.quantize(tick, nearest) if decimal_tick \
            else round_to_increment(raw, tick, Rounding.NEAREST)
        if len(prices) >= _PRICES_KEPT:
            prices.clear()
        prices[value] = (raw, rounded)
        return raw, rounded

    for line, start, texts in rows:
        if last_start is not None and start <= last_start:
            raise ValueError(f"{path} line {line}: bar at {start} does not follow the bar "
                             f"at {last_start} (bars must be in increasing time order)")
        if last_start is not None and start < last_start + interval:
            # Its points would interleave with the previous bar's: time would go back.
            raise ValueError(f"{path} line {line}: bar at {start} starts before the bar at "
                             f"{last_start} ends ({format_interval(interval)} bars); "
                             "is the interval right?")
        last_start = start
        try:
            # Prices repeat from bar to bar: each value is parsed and rounded once.
            o, p0 = prices.get(texts[0]) or price_of(texts[0])
            h, ph = prices.get(texts[1]) or price_of(texts[1])
            lo, pl = prices.get(texts[2]) or price_of(texts[2])
            c, p3 = prices.get(texts[3]) or price_of(texts[3])
            if fixed_volume is None:
                volume = _decimal_of(texts[4])
                if not _ZERO <= volume < MAX_VALUE:  # (a NaN raises, as a bad text does)
                    raise _OutOfRange
            else:
                volume = fixed_volume
        except (InvalidOperation, TypeError, _OutOfRange):
            row = texts if fixed_volume is None else texts[:4]
            raise ValueError(f"{path} {_value_problem(line, names, row)}") from None
        # The usual OHLC path guess: an up bar probably dipped before rallying. The
        # path's own steps tell whether the high and low hold the open and close (on
        # the tick: rounding keeps their order), and each print's aggressor.
        if c >= o:
            r1, r2, p1, p2 = lo, h, pl, ph
            if p1 > p0 or p3 > p2:  # a low above the open, a close above the high
                raise ValueError(_not_held(path, line, o, h, lo, c))
            a1, a2, a3 = sell, buy if p2 > p1 else sell, sell
        else:
            r1, r2, p1, p2 = h, lo, ph, pl
            if p1 < p0 or p3 < p2:  # a high below the open, a close below the low
                raise ValueError(_not_held(path, line, o, h, lo, c))
            a1, a2, a3 = buy if p1 > p0 else sell, sell, buy if p3 > p2 else sell
        if p0 <= 0 or p1 <= 0 or p2 <= 0 or p3 <= 0:
            raw, rounded = (o, r1, r2, c), (p0, p1, p2, p3)
            bad = next(i for i in range(4) if rounded[i] <= 0)
            raise ValueError(f"{path} line {line}: price {raw[bad]} rounds to {rounded[bad]}")
        # A quarter of the bar's volume a point, in base units at the point's price,
        # rounded down to the step (at least one step). Written out: a million bars.
        # A bar's open or close is often its high or low: an equal price, equal size.
        # (Prices from a tick up and volumes below MAX_VALUE keep these exact.)
        if quote_volume:
            s0 = (volume / p0 / 4).quantize(size_step, ROUND_DOWN)
            s1 = s0 if p1 == p0 else (volume / p1 / 4).quantize(size_step, ROUND_DOWN)
            s2 = s0 if p2 == p0 else (volume / p2 / 4).quantize(size_step, ROUND_DOWN)
            s3 = s1 if p3 == p1 else s2 if p3 == p2 else \
                (volume / p3 / 4).quantize(size_step, ROUND_DOWN)
        else:
            s0 = s1 = s2 = s3 = (volume / 4).quantize(size_step, ROUND_DOWN)
        yield new_bar(PriceBar, (
            (start, start + offsets[1], start + offsets[2], start + offsets[3]),
            (p0, p1, p2, p3),
            (s0 if s0 >= size_step else size_step, s1 if s1 >= size_step else size_step,
             s2 if s2 >= size_step else size_step, s3 if s3 >= size_step else size_step),
            (buy if previous is not None and p0 > previous else sell, a1, a2, a3),
            tick))
        previous = p3


# A row's values: texts (CSV, most Parquet types) or floats (Parquet float columns,
# taken as their shortest round-trip text, as a CSV has them: ``_decimal_of``).
_BarRow = tuple[int, datetime, tuple[str | float, ...]]
_PRICES_KEPT = 100_000  # distinct prices kept parsed and rounded (a bound on memory)


def _not_held(path: StrPath, line: int, o: Decimal, h: Decimal, lo: Decimal, c: Decimal
              ) -> str:
    return f"{path} line {line}: the high {h} and low {lo} do not hold the open {o} and close {c}"


class _OutOfRange(Exception):
    """A number read, but not one a bar may hold (``_value_problem`` says which)."""


def _value_problem(line: int, names: Sequence[str], values: Sequence[str | float]) -> str:
    """What is wrong with a bar's row (its prices, then its volume), for the error."""
    for index, (name, value) in enumerate(zip(names, values, strict=False)):
        text = _text_of(value)
        try:
            number = Decimal(text.strip())
        except InvalidOperation:
            return f"line {line}: {name} is not a number: {text!r}"
        if index < 4 and not (number.is_finite() and 0 < number < MAX_VALUE):
            return (f"line {line}: {name} must be a positive price below "
                    f"{MAX_VALUE:,.0f}, not {text!r}")
        if index == 4 and not (number.is_finite() and 0 <= number < MAX_VALUE):
            return (f"line {line}: {name} must be 0 or more and below "
                    f"{MAX_VALUE:,.0f}, not {text!r}")
    return f"line {line}: a value out of range"


def _decimal_of(value: str | float) -> Decimal:
    return Decimal(value if type(value) is str else repr(value))


def _text_of(value: str | float) -> str:
    return value if isinstance(value, str) else repr(value)


def _bar_file(path: StrPath, volume_unit: str, batch_rows: int = BATCH_ROWS
              ) -> tuple[BarLayout, Iterator[_BarRow]]:
    """A bar file's layout (read at once: a file that is not one fails here) and its
    rows, read lazily (``_bar_rows``)."""
    rows = _bar_rows(path, volume_unit, batch_rows)
    layout = next(rows)
    assert isinstance(layout, BarLayout)
    return layout, cast(Iterator[_BarRow], rows)


def _bar_rows(path: StrPath, volume_unit: str, batch_rows: int = BATCH_ROWS
              ) -> Iterator[BarLayout | _BarRow]:
    """The file's layout first, then each bar as (line, start, the texts of open, high,
    low, close and volume — "" without a volume column). CSV rows are read by column
    position and Parquet columns a batch at a time: no dict a row."""
    if _is_parquet(path):
        yield from _parquet_bar_rows(path, volume_unit, batch_rows)
        return
    with csv_text(path) as f:
        reader = csv.reader(f)
        first = next(reader, None)
        if not first:
            raise ValueError(f"{path}: empty file or no header row")
        header, first_is_bar = _csv_header(path, first)
        layout = bar_layout(header, volume_unit)
        yield layout
        columns = [header.index(c) for c in (layout.timestamp, layout.open, layout.high,
                                               layout.low, layout.close)]
        t, o, h, lo, c = columns
        v = header.index(layout.volume) if layout.volume is not None else None
        width = len(header)
        for values in chain((first,), reader) if first_is_bar else reader:
            line = reader.line_num
            if len(values) < width:
                if not values:
                    continue  # a blank line, as DictReader skips it
                values += [""] * (width - len(values))
            try:
                start = parse_time(values[t])
            except ValueError as exc:
                raise ValueError(f"{path} line {line}: {layout.timestamp}: {exc}") from None
            yield line, start, (
                values[o], values[h], values[lo], values[c], values[v] if v is not None else "")


def _parquet_bar_rows(path: StrPath, volume_unit: str, batch_rows: int
                      ) -> Iterator[BarLayout | _BarRow]:
    """``_bar_rows`` of a Parquet file: its columns a batch at a time, each value as the
    text the CSV reader would have seen (``parquet_text``), a timestamp column's
    values taken as they are (UTC) rather than through text."""
    file = _parquet_file(path)
    header = list(file.schema_arrow.names)
    layout = bar_layout(header, volume_unit)
    yield layout
    names = [layout.timestamp, layout.open, layout.high, layout.low, layout.close]
    if layout.volume is not None:
        names.append(layout.volume)
    line = 1
    for batch in file.iter_batches(batch_size=batch_rows, columns=names):
        stamps = batch.column(0)
        if pa.types.is_timestamp(stamps.type) and stamps.type.unit != "ns" \
                and stamps.null_count == 0:
            # The stored integers are UTC (naive ones taken as UTC): no datetime (and
            # time zone) a value from pyarrow, one timedelta from the epoch instead.
            per_us = _US_PER_UNIT[stamps.type.unit]
            times = [_EPOCH + timedelta(0, 0, v * per_us)
                     for v in stamps.cast(pa.int64()).to_pylist()]
        elif pa.types.is_timestamp(stamps.type):
            values = stamps.to_pylist()
            if None in values:
                raise ValueError(f"{path} line {line + 1 + values.index(None)}: "
                                 f"{layout.timestamp} is empty")
            times = [_utc(v) for v in values]
        else:
            times = _parsed_times(path, layout.timestamp, line, stamps.to_pylist())
        texts = [_texts(batch.column(i)) for i in range(1, batch.num_columns)]
        if layout.volume is None:
            texts.append([""] * batch.num_rows)
        for start, row in zip(times, zip(*texts, strict=True), strict=True):
            line += 1
            yield line, start, row


_US_PER_UNIT = {"s": 1_000_000, "ms": 1000, "us": 1}


def _parsed_times(path: StrPath, column: str, line: int, values: list[object]
                  ) -> list[datetime]:
    """A batch's times from a column of texts or numbers (the row after ``line`` first),
    a value that is no time refused with its line."""
    try:
        return [parse_time(parquet_text(v)) for v in values]
    except ValueError:
        for offset, value in enumerate(values, 1):
            try:
                parse_time(parquet_text(value))
            except ValueError as exc:
                raise ValueError(f"{path} line {line + offset}: {column}: {exc}") from None
        raise


def _is_parquet(path: StrPath) -> bool:
    return Path(path).suffix.lower() in (".parquet", ".pq")


def _parquet_file(path: StrPath) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except Exception as exc:  # pyarrow's errors name neither the file nor the problem well
        raise ValueError(f"{path}: not a readable Parquet file ({exc})") from None


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _texts(column: pa.Array) -> list[str] | list[float]:
    values = column.to_pylist()
    if pa.types.is_floating(column.type) and column.null_count == 0:
        return values  # floats: read as their shortest round-trip text (_decimal_of)
    return [parquet_text(v) for v in values]


def read_funding_rates(path: StrPath, *, venue: str, symbol: str) -> Iterator[FundingRate]:
    """Funding settlements, one a row (``timestamp``/``funding_time``/..., ``funding_rate``/
    ``rate``/...): each a ``FundingRate`` with ``funding_at = ts`` = the row's time, i.e.
    a settlement print applied at once with the venue's mark at that moment. Rates are
    per funding interval (finite, between -1 and 1); positive means longs pay. Rows must
    be in time order."""
    columns: tuple[str, str] | None = None
    last: datetime | None = None
    for line, row, header in table_rows(path):
        if columns is None:
            time_column = find_column(header, _FUNDING_TIME)
            rate_column = find_column(header, _FUNDING_RATE)
            if time_column is None or rate_column is None:
                raise ValueError(f"{path}: needs a time and a funding rate column "
                                 f"(columns: {', '.join(header)})")
            columns = (time_column, rate_column)
        ts = parse_time(row[columns[0]])
        if last is not None and ts < last:
            raise ValueError(f"{path} line {line}: {ts} is before {last}")
        last = ts
        rate = _decimal(row, columns[1], line)
        if not (rate.is_finite() and -1 <= rate <= 1):
            raise ValueError(f"{path} line {line}: {columns[1]} must be a rate between -1 and 1 "
                             f"(a fraction of the position's value an interval), not "
                             f"{row[columns[1]]!r}")
        yield FundingRate(venue, symbol, rate, funding_at=ts, ts=ts)
