"""Bar files of any interval and column naming, funding files, and ``perpdesk simulate
--source FILE`` on bars made from the real BTC-PERP 1-minute data (1m, 5m, 1h), with
and without funding."""

from __future__ import annotations

import csv
import gzip
import re
import zipfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.cli import main
from app.domain.events import OrderRejected
from app.domain.market import FundingRate, MarkPrice, Quote, TradePrint
from app.domain.rejections import RejectCode
from app.marketdata import (
    detect_interval,
    parse_interval,
    read_bars,
    read_funding_rates,
)
from app.marketdata.bars import bar_file_layout, bar_layout, format_interval, parse_time
from app.simulate import Result, bar_source, simulate, with_funding

BARS = "btc-perp-2022-01_1m.csv"
FUNDING = "xrpusdt-perp-funding-8h.csv"
MARK = "xrpusdt-perp-mark-8h.csv"
MINUTE = timedelta(minutes=1)
T0 = datetime(2022, 1, 1, tzinfo=UTC)
TICK = Decimal("0.5")


@pytest.fixture(scope="module")
def minutes(data_dir: Path) -> list[dict[str, str]]:
    """The first 600 real 1-minute bars (10 hours), from 2021-12-31 23:01."""
    with open(data_dir / BARS, newline="") as f:
        rows = list(csv.DictReader(f))[:600]
    assert rows[0]["timestamp"] == "2021-12-31 23:01:00.000000"
    return rows


def aggregate(rows: list[dict[str, str]], n: int) -> list[dict[str, str]]:
    """Consecutive groups of ``n`` 1-minute bars as one bar each (volume summed)."""
    out = []
    for i in range(0, len(rows) - n + 1, n):
        group = rows[i:i + n]
        out.append({
            "timestamp": group[0]["timestamp"], "open": group[0]["open"],
            "high": str(max(Decimal(r["high"]) for r in group)),
            "low": str(min(Decimal(r["low"]) for r in group)), "close": group[-1]["close"],
            "volume": str(sum(Decimal(r["volume"]) for r in group)),
        })
    return out


def write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def epoch_ms(text: str) -> str:
    return str(int(parse_time(text).timestamp() * 1000))


@pytest.fixture
def bar_files(tmp_path: Path, minutes: list[dict[str, str]]) -> dict[str, Path]:
    """The same 10 real hours as 1m (the original layout), 5m (``open_time,o,h,l,c,
    quote_volume``, epoch ms) and 1h (``Date,Open,...``, ISO 8601 with Z) files."""
    one = write(tmp_path / "btc_1m.csv", list(minutes[0]),
                [list(r.values()) for r in minutes])
    five = write(tmp_path / "btc_5m.csv", ["open_time", "o", "h", "l", "c", "quote_volume"],
                 [[epoch_ms(b["timestamp"]), b["open"], b["high"], b["low"], b["close"],
                   b["volume"]] for b in aggregate(minutes, 5)])
    hour = write(tmp_path / "btc_1h.csv", ["Date", "Open", "High", "Low", "Close", "Volume"],
                 [[parse_time(b["timestamp"]).strftime("%Y-%m-%dT%H:%M:%SZ"), b["open"],
                   b["high"], b["low"], b["close"], b["volume"]]
                  for b in aggregate(minutes, 60)])
    return {"1m": one, "5m": five, "1h": hour}


# ---- timestamps, intervals, columns ----------------------------------------------------


@pytest.mark.parametrize("text", [
    "2022-01-01 00:00:00", "2022-01-01 00:00:00.000000", "2022-01-01T00:00:00Z",
    "2022-01-01T02:00:00+02:00", "1640995200", "1640995200000", "1640995200000000",
    "1640995200000000000", " 1640995200.0 ",
])
def test_parse_time_reads_iso_8601_and_epoch_in_any_unit(text: str) -> None:
    assert parse_time(text) == T0


@settings(max_examples=300, deadline=None)
@given(at=st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1)),
       sep=st.sampled_from([" ", "T"]),
       spec=st.sampled_from(["auto", "hours", "minutes", "seconds", "milliseconds"]),
       zone=st.sampled_from(["", "Z", "+00:00", "+05:30", "-08:00"]))
def test_parse_time_is_the_time_in_utc_whatever_the_iso_form(at: datetime, sep: str,
                                                              spec: str, zone: str) -> None:
    """A naive time is UTC, an offset is converted: the same instant, always in UTC
    (a naive text is read with a UTC suffix, faster: never a different time)."""
    text = at.isoformat(sep=sep, timespec=spec) + zone
    parsed = datetime.fromisoformat(text)
    expected = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    got = parse_time(text)
    assert got == expected and got.tzinfo is UTC and got.isoformat() == expected.isoformat()
    assert parse_time(at.date().isoformat()) == datetime.combine(at.date(), datetime.min.time(),
                                                                UTC)


def test_parse_time_keeps_sub_second_epoch_exactly() -> None:
    assert parse_time("1640995200.25") == T0 + timedelta(milliseconds=250)
    assert parse_time("1640995200123") == T0 + timedelta(milliseconds=123)
    with pytest.raises(ValueError, match="not an ISO 8601 time or epoch number"):
        parse_time("yesterday")


@pytest.mark.parametrize(("text", "interval"), [
    ("1m", MINUTE), ("5m", 5 * MINUTE), ("1h", timedelta(hours=1)),
    ("8H", timedelta(hours=8)), ("1d", timedelta(days=1)), ("30s", timedelta(seconds=30)),
    ("1w", timedelta(weeks=1)),
])
def test_parse_and_format_interval(text: str, interval: timedelta) -> None:
    assert parse_interval(text) == interval
    assert parse_interval(format_interval(interval)) == interval


@pytest.mark.parametrize("text", ["", "5", "0m", "m", "1y", "1.5h"])
def test_parse_interval_refuses_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="not a bar interval"):
        parse_interval(text)


def test_detect_interval_is_the_most_common_gap(tmp_path: Path) -> None:
    # 5-minute bars with two missing: gaps 5,5,10,5,15,5 -> 5 minutes.
    starts = [0, 5, 10, 20, 25, 40, 45]
    path = write(tmp_path / "b.csv", ["time", "open", "high", "low", "close", "volume"],
                 [[str(1640995200 + 60 * m), "1", "1", "1", "1", "1"] for m in starts])
    assert detect_interval(path) == 5 * MINUTE


def test_detect_interval_prefers_the_shorter_gap_on_a_tie_and_needs_two_bars(
        tmp_path: Path) -> None:
    header = ["timestamp", "open", "high", "low", "close", "volume"]
    tie = write(tmp_path / "tie.csv", header,
                [[str(1640995200 + 60 * m), "1", "1", "1", "1", "1"] for m in (0, 5, 7)])
    assert detect_interval(tie) == 2 * MINUTE
    one = write(tmp_path / "one.csv", header, [["1640995200", "1", "1", "1", "1", "1"]])
    with pytest.raises(ValueError, match="cannot detect the bar interval from 1 bar"):
        detect_interval(one)


def test_bar_layout_accepts_common_column_names() -> None:
    layout = bar_layout(["Open Time", "O", "H", "L", "C", "Volume", "Quote Asset Volume"])
    assert (layout.timestamp, layout.open, layout.close) == ("Open Time", "O", "C")
    assert (layout.volume, layout.volume_is_quote) == ("Quote Asset Volume", True)
    assert bar_layout(["date", "open", "high", "low", "close", "base_volume"]).volume_is_quote \
        is False
    plain = ["ts", "open", "high", "low", "close", "vol"]
    assert bar_layout(plain).volume_is_quote is True
    assert bar_layout(plain, "base").volume_is_quote is False
    assert bar_layout(["time", "open", "high", "low", "close"]).volume is None
    with pytest.raises(ValueError, match="bar file has no high, low columns"):
        bar_layout(["time", "open", "close", "volume"])


# ---- reading bars -------------------------------------------------------------------------


def test_five_minute_bars_become_points_a_quarter_interval_apart(bar_files) -> None:
    updates = list(read_bars(bar_files["5m"], venue="v", symbol="BTC-PERP", tick=TICK))
    assert len(updates) == 120 * 4 * 3
    quotes = [u for u in updates if isinstance(u, Quote)]
    trades = [u for u in updates if isinstance(u, TradePrint)]
    assert len(trades) == len(quotes) == len([u for u in updates if isinstance(u, MarkPrice)])
    start = datetime(2021, 12, 31, 23, 1, tzinfo=UTC)
    assert [q.ts - start for q in quotes[:5]] == [
        timedelta(seconds=s) for s in (0, 75, 150, 225, 300)]
    stamps = [u.ts for u in updates]
    assert stamps == sorted(stamps)
    assert quotes[0].bid == Decimal("46319.0") and quotes[0].ask == Decimal("46319.5")
    # A quarter of the bar's quote volume in BTC at each point, on the 0.001 grid.
    assert all(q.bid_size >= Decimal("0.001") and q.bid_size % Decimal("0.001") == 0
               for q in quotes)


def test_an_hour_bar_summarizes_its_minutes(bar_files, minutes) -> None:
    updates = list(read_bars(bar_files["1h"], venue="v", symbol="BTC-PERP", tick=TICK))
    quotes = [u for u in updates if isinstance(u, Quote)][:4]
    hour = minutes[:60]
    o, c = Decimal(hour[0]["open"]), Decimal(hour[-1]["close"])
    h = max(Decimal(r["high"]) for r in hour)
    low = min(Decimal(r["low"]) for r in hour)
    expected = (o, low, h, c) if c >= o else (o, h, low, c)
    assert tuple(q.bid for q in quotes) == expected
    assert [q.ts.minute for q in quotes] == [1, 16, 31, 46]
    volume = sum(Decimal(r["volume"]) for r in hour)
    assert quotes[0].bid_size == (volume / o / 4).quantize(Decimal("0.001"), "ROUND_DOWN")


def test_base_volume_and_a_file_without_volume(tmp_path: Path) -> None:
    base = write(tmp_path / "base.csv", ["time", "open", "high", "low", "close", "volume"],
                 [["1640995200", "100", "101", "99", "100", "8"],
                  ["1640995260", "100", "101", "99", "100", "8"]])
    (quote, *_) = read_bars(base, venue="v", symbol="S", tick=Decimal(1), volume_unit="base",
                            size_step=Decimal("0.1"))
    assert quote.bid_size == Decimal(2)
    bare = write(tmp_path / "bare.csv", ["time", "open", "high", "low", "close"],
                 [["1640995200", "100", "101", "99", "100"],
                  ["1640995260", "100", "101", "99", "100"]])
    with pytest.raises(ValueError, match="no volume column"):
        list(read_bars(bare, venue="v", symbol="S", tick=Decimal(1)))
    (quote, *_) = read_bars(bare, venue="v", symbol="S", tick=Decimal(1),
                            notional_without_volume=Decimal(4000))
    assert quote.bid_size == Decimal(10)


def test_bars_out_of_order_or_closer_than_the_interval_are_refused(tmp_path: Path) -> None:
    header = ["time", "open", "high", "low", "close", "volume"]
    back = write(tmp_path / "back.csv", header,
                 [[t, "1", "1", "1", "1", "1"] for t in ("1640995260", "1640995200")])
    with pytest.raises(ValueError, match=r"line 3: .* does not follow"):
        list(read_bars(back, venue="v", symbol="S", tick=Decimal(1), interval=MINUTE))
    minute = write(tmp_path / "minute.csv", header,
                   [[t, "1", "1", "1", "1", "1"] for t in ("1640995200", "1640995260")])
    with pytest.raises(ValueError, match="is the interval right"):
        list(read_bars(minute, venue="v", symbol="S", tick=Decimal(1), interval=5 * MINUTE))


# ---- files without a header; values no bar can hold -----------------------------------


def write_rows(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def test_binance_klines_without_a_header_read_as_the_same_bars_with_one(
        tmp_path: Path, minutes: list[dict[str, str]]) -> None:
    """Binance's public klines (data.binance.vision) have no header row: 12 columns, the
    open time in epoch ms, the base volume sixth and the quote volume eighth."""
    original = write(tmp_path / "btc_1m.csv", list(minutes[0]),
                     [list(r.values()) for r in minutes])
    klines = write_rows(tmp_path / "BTCUSDT-1m-2022-01.csv", [
        [epoch_ms(r["timestamp"]), r["open"], r["high"], r["low"], r["close"],
         str((Decimal(r["volume"]) / Decimal(r["close"])).quantize(Decimal("0.001"))),
         str(int(epoch_ms(r["timestamp"])) + 59_999), r["volume"], "1200", "1.5", "60000",
         "0"] for r in minutes])
    layout = bar_file_layout(klines)
    assert layout.volume == "quote_volume" and layout.volume_is_quote
    assert detect_interval(klines) == MINUTE
    expected = list(read_bars(original, venue="v", symbol="BTC-PERP", tick=TICK))
    assert list(read_bars(klines, venue="v", symbol="BTC-PERP", tick=TICK)) == expected
    # The first row is a bar, on line 1: the second is line 2.
    klines.write_text("1640995200000,1,1,1,1,1,1640995259999,1,1,1,1,0\n"
                      "1640995260000,1,1,1,x,1,1640995319999,1,1,1,1,0\n")
    with pytest.raises(ValueError, match="line 2: close is not a number: 'x'"):
        list(read_bars(klines, venue="v", symbol="S", tick=Decimal(1), interval=MINUTE))


def test_six_or_five_columns_without_a_header(tmp_path: Path,
                                              minutes: list[dict[str, str]]) -> None:
    original = write(tmp_path / "btc_1m.csv", list(minutes[0]),
                     [list(r.values()) for r in minutes])
    six = write_rows(tmp_path / "six.csv", [list(r.values()) for r in minutes])
    expected = list(read_bars(original, venue="v", symbol="BTC-PERP", tick=TICK))
    assert list(read_bars(six, venue="v", symbol="BTC-PERP", tick=TICK)) == expected
    five = write_rows(tmp_path / "five.csv", [list(r.values())[:5] for r in minutes])
    assert bar_file_layout(five).volume is None
    first = next(read_bars(five, venue="v", symbol="BTC-PERP", tick=TICK,
                           notional_without_volume=Decimal(4000)))
    assert isinstance(first, Quote) and isinstance(expected[0], Quote)
    assert (first.ts, first.bid, first.ask) == (expected[0].ts, expected[0].bid,
                                                expected[0].ask)
    assert first.bid_size == (Decimal(1000) / first.bid).quantize(Decimal("0.001"),
                                                                  "ROUND_DOWN")
    seven = write_rows(tmp_path / "seven.csv", [[*r.values(), "x"] for r in minutes])
    with pytest.raises(ValueError, match="no header row, and 7 columns is no layout"):
        bar_file_layout(seven)


def test_a_gzipped_or_zipped_csv_reads_as_the_csv(tmp_path: Path,
                                                   minutes: list[dict[str, str]]) -> None:
    """As data.binance.vision ships klines: a zip of one headerless CSV (or gzip)."""
    original = write(tmp_path / "btc_1m.csv", list(minutes[0]),
                     [list(r.values()) for r in minutes])
    expected = list(read_bars(original, venue="v", symbol="BTC-PERP", tick=TICK))
    text = original.read_text()
    gzipped = tmp_path / "btc_1m.csv.gz"
    gzipped.write_bytes(gzip.compress(text.encode()))
    zipped = tmp_path / "BTCUSDT-1m-2022-01.zip"
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("BTCUSDT-1m-2022-01.csv", text.split("\n", 1)[1])  # no header
    for path in (gzipped, zipped):
        assert list(read_bars(path, venue="v", symbol="BTC-PERP", tick=TICK)) == expected
        assert detect_interval(path) == MINUTE and bar_file_layout(path).volume_is_quote
    two = tmp_path / "two.zip"
    with zipfile.ZipFile(two, "w") as archive:
        archive.writestr("a.csv", text)
        archive.writestr("b.csv", text)
    with pytest.raises(ValueError, match="a zip file of bars holds one file, not 2"):
        bar_file_layout(two)
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK not really")
    with pytest.raises(ValueError, match="not a readable zip file"):
        list(read_bars(broken, venue="v", symbol="S", tick=Decimal(1)))


HEADER = ["time", "open", "high", "low", "close", "volume"]
GOOD = ["100", "101", "99", "100", "5000"]


@pytest.mark.parametrize(("row", "says"), [
    (["100", "101", "99", "nan", "5000"], "line 3: close must be a positive price"),
    (["inf", "101", "99", "100", "5000"], "line 3: open must be a positive price"),
    (["100", "101", "-99", "100", "5000"], "line 3: low must be a positive price"),
    (["100", "1e30", "99", "100", "5000"], "line 3: high must be a positive price"),
    (["100", "101", "99", "100", "sNaN"], "line 3: volume must be 0 or more"),
    (["100", "101", "99", "100", "-5"], "line 3: volume must be 0 or more"),
    (["100", "101", "99", "100", "1e400"], "line 3: volume must be 0 or more"),
    (["100", "101", "99", "100", ""], "line 3: volume is not a number: ''"),
    (["100", "101", "99", "1OO", "5000"], "line 3: close is not a number: '1OO'"),
    (["100", "98", "99", "100", "5000"], "line 3: the high 98 and low 99 do not hold"),
    (["100", "101", "99", "102", "5000"], "line 3: the high 101 and low 99 do not hold"),
    (["98", "101", "99", "100", "5000"], "line 3: the high 101 and low 99 do not hold"),
    (["0.2", "0.2", "0.2", "0.2", "5000"], "line 3: price 0.2 rounds to 0"),
])
def test_a_bar_no_market_can_have_is_refused_with_its_line(tmp_path: Path, row: list[str],
                                                          says: str) -> None:
    path = write(tmp_path / "bad.csv", HEADER, [["1640995200", *GOOD], ["1640995260", *row],
                                                ["1640995320", *GOOD]])
    with pytest.raises(ValueError, match=re.escape(says)):
        list(read_bars(path, venue="v", symbol="S", tick=Decimal(1), interval=MINUTE))


def test_a_time_no_clock_has_is_refused_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.csv", HEADER, [["1640995200", *GOOD], ["soon", *GOOD]])
    with pytest.raises(ValueError, match="line 3: time: not an ISO 8601 time"):
        list(read_bars(path, venue="v", symbol="S", tick=Decimal(1), interval=MINUTE))


def test_parquet_values_no_bar_can_hold_are_refused_with_their_line(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    good = [float(v) for v in GOOD]

    def parquet(name: str, times: list[object], second: list[float | None]) -> Path:
        columns = list(zip(good, second, good, strict=True))
        path = tmp_path / name
        pq.write_table(pa.table({"timestamp": times, **{
            key: pa.array(list(values), pa.float64())
            for key, values in zip(HEADER[1:], columns, strict=True)}}), path)
        return path

    stamps = [T0 + k * MINUTE for k in range(3)]
    cases = [
        (parquet("nan.parquet", stamps, [100.0, 101.0, 99.0, float("nan"), 5000.0]),
         "line 3: close must be a positive price"),
        (parquet("null.parquet", stamps, [100.0, None, 99.0, 100.0, 5000.0]),
         "line 3: high is not a number: ''"),
        (parquet("no-time.parquet", [stamps[0], None, stamps[2]], good),
         "line 3: timestamp is empty"),
        (parquet("text-time.parquet", ["2022-01-01", "later", "2022-01-03"], good),
         "line 3: timestamp: not an ISO 8601 time"),
    ]
    for path, says in cases:
        with pytest.raises(ValueError, match=re.escape(says)):
            list(read_bars(path, venue="v", symbol="S", tick=Decimal(1), interval=MINUTE))


@pytest.mark.parametrize(("unit", "zone"), [("ms", None), ("s", "UTC"),
                                            ("us", "Asia/Tokyo"), ("ns", "UTC")])
def test_a_parquet_file_reads_exactly_as_its_csv(tmp_path: Path, data_dir: Path, unit: str,
                                                  zone: str | None) -> None:
    """The real BTC 1-minute file, written to Parquet as a data shop would (a timestamp
    column in any unit, naive or in any time zone, doubles for prices and volume),
    gives the very same updates."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    with open(data_dir / BARS, newline="") as f:
        rows = list(csv.DictReader(f))[:3000]
    stamps = pa.array([datetime.fromisoformat(r["timestamp"]) for r in rows],
                      pa.timestamp(unit))
    table = pa.table({
        "open_time": stamps if zone is None else stamps.cast(pa.timestamp(unit, zone)),
        **{name: pa.array([float(r[name]) for r in rows], pa.float64())
           for name in ("open", "high", "low", "close", "volume")},
    })
    parquet = tmp_path / "btc.parquet"
    pq.write_table(table, parquet, row_group_size=1000)  # several row groups
    short_csv = write(tmp_path / "btc.csv", list(rows[0]), [list(r.values()) for r in rows])
    from_csv = list(read_bars(short_csv, venue="v", symbol="BTC-PERP", tick=Decimal("0.1")))
    from_parquet = list(read_bars(parquet, venue="v", symbol="BTC-PERP", tick=Decimal("0.1")))
    assert from_parquet == from_csv and len(from_csv) > 3000
    assert [u.ts for u in from_parquet[:4]] == [u.ts for u in from_csv[:4]]
    assert detect_interval(parquet) == MINUTE


def test_a_broken_parquet_file_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    broken = tmp_path / "bars.parquet"
    broken.write_bytes(b"PAR1 not really")
    with pytest.raises(ValueError, match="not a readable Parquet file"):
        list(read_bars(broken, venue="v", symbol="S", tick=Decimal(1)))


# ---- funding ----------------------------------------------------------------------------


def test_real_funding_file(data_dir: Path) -> None:
    rates = list(read_funding_rates(data_dir / FUNDING, venue="v", symbol="XRP-PERP"))
    assert len(rates) == 91
    first = rates[0]
    assert first.ts == first.funding_at == datetime(2021, 11, 18, 0, 0, 0, 17000, tzinfo=UTC)
    assert first.rate == Decimal("0.0001")


def test_funding_column_variants(tmp_path: Path) -> None:
    path = write(tmp_path / "f.csv", ["symbol", "fundingTime", "fundingRate"],
                 [["BTCUSDT", "1640995200000", "-0.00012"],
                  ["BTCUSDT", "1641024000000", "8.995e-05"]])
    rates = list(read_funding_rates(path, venue="v", symbol="BTC-PERP"))
    assert [(r.ts, r.rate) for r in rates] == [
        (T0, Decimal("-0.00012")), (T0 + timedelta(hours=8), Decimal("0.00008995"))]
    for rate in ("nan", "inf", "-Infinity", "1.5", "sNaN"):
        bad = write(tmp_path / "bad.csv", ["time", "funding_rate"],
                    [["1640995200", "0.0001"], ["1641024000", rate]])
        with pytest.raises(ValueError, match=rf"line 3: funding_rate must be a rate between "
                                             rf"-1 and 1 .*, not '{rate}'"):
            list(read_funding_rates(bad, venue="v", symbol="S"))
    with pytest.raises(ValueError, match="needs a time and a funding rate column"):
        list(read_funding_rates(write(tmp_path / "x.csv", ["a", "b"], [["1", "2"]]),
                                venue="v", symbol="S"))


def test_with_funding_keeps_rates_inside_the_bars_after_the_point_at_their_time() -> None:
    def mark(minute: int) -> MarkPrice:
        return MarkPrice("v", "S", Decimal(minute), T0 + minute * MINUTE)

    def rate(minute: int) -> FundingRate:
        at = T0 + minute * MINUTE
        return FundingRate("v", "S", Decimal(minute), funding_at=at, ts=at)

    merged = list(with_funding([mark(0), mark(1), mark(2)],
                               [rate(-1), rate(1), rate(2), rate(3)]))
    assert merged == [mark(0), mark(1), rate(1), mark(2)]


# ---- perpdesk simulate --source FILE -----------------------------------------------------


def run(path: Path, **kw) -> Result:
    return simulate(bar_source(path, **kw), seed=3, minutes=None, order_every=60)


def rejections(result: Result) -> set[str]:
    return {e.code for e in result.events if isinstance(e, OrderRejected)}


def total_funding(result: Result) -> Decimal:
    return sum((result.engine.summary(c, v).funding for c in ("demo", "demo-2")
                for v in result.venues), Decimal(0))


def assert_books_reconcile(result: Result) -> None:
    # Seed 003: wallet = deposits + realized - fees ± funding; drift above $0.01 is a bug
    # (average entries are divisions, so the last of Decimal's 28 digits may differ).
    for account in result.engine.state.accounts.values():
        assert abs(account.wallet - account.expected_wallet) <= Decimal("0.01")


@pytest.mark.parametrize(("interval", "bars"), [("1m", 600), ("5m", 120), ("1h", 10)])
def test_simulate_replays_bars_of_any_interval(bar_files, interval: str, bars: int) -> None:
    step = parse_interval(interval)
    result = run(bar_files[interval])
    assert result.updates == bars * 4 * 3
    start = datetime(2021, 12, 31, 23, 1, tzinfo=UTC)
    assert result.first_at == start
    assert result.last_at == start + (bars - 1) * step + step * 3 / 4
    fills = sum(1 for o in result.engine.state.orders.values() if o.filled_qty > 0)
    assert fills > 0
    # The book is quoted every quarter interval: never stale for a market order.
    assert RejectCode.BOOK_NOT_READY not in rejections(result)
    assert total_funding(result) == 0
    assert_books_reconcile(result)


@pytest.mark.parametrize("interval", ["1m", "5m", "1h"])
def test_simulate_settles_a_funding_file_against_the_bars(bar_files, tmp_path: Path,
                                                          interval: str) -> None:
    # Hourly rates over the 10 hours (and one before, one after: left out).
    hours = range(-1, 12)
    funding = write(tmp_path / "funding.csv", ["timestamp", "funding_rate"],
                    [[(datetime(2021, 12, 31, 23, 1, tzinfo=UTC) + timedelta(hours=h)
                       ).isoformat(), "0.0005"] for h in hours])
    plain = run(bar_files[interval])
    result = run(bar_files[interval], funding=funding)
    assert result.funding_rates == 10
    assert result.updates == plain.updates + 10
    assert total_funding(result) != 0
    assert_books_reconcile(result)


def test_simulate_real_xrp_mark_bars_with_real_funding(data_dir: Path) -> None:
    result = run(data_dir / MARK, symbol="XRP-PERP", venue="paper-bybit",
                 funding=data_dir / FUNDING)
    assert result.funding_rates == 91
    assert total_funding(result) != 0
    assert RejectCode.BOOK_NOT_READY not in rejections(result)
    assert_books_reconcile(result)


def test_cli_simulate_source_file(bar_files, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--source", str(bar_files["5m"]), "--order-every", "300"]) == 0
    out = capsys.readouterr().out
    assert "btc_5m.csv: BTC-PERP on paper-binance, 5m bars (detected)" in out
    # 30 bars by default: 150 market minutes (the next bar's first point is at the limit).
    assert "market: 363 updates, 2021-12-31 23:01 → 2022-01-01 01:31 UTC" in out

    assert main(["simulate", "--source", str(bar_files["1m"]), "--interval", "1m",
                 "--minutes", "0", "--symbol", "BTC-PERP"]) == 0
    out = capsys.readouterr().out
    assert "1m bars," not in out and "1m bars\n" in out  # given, not "(detected)"
    assert "market: 7200 updates" in out


@pytest.mark.parametrize(("args", "message"), [
    (["--symbol", "XRP-PERP"], "need a bar file --source"),
    (["--source", "{}", "--symbol", "DOGE-PERP"], "unknown symbol 'DOGE-PERP'"),
    (["--source", "{}", "--interval", "7x"], "not a bar interval"),
    (["--source", "{}", "--interval", "5m"], "is the interval right"),
])
def test_cli_simulate_errors(bar_files, capsys: pytest.CaptureFixture[str], args: list[str],
                             message: str) -> None:
    args = [a.format(bar_files["1m"]) for a in args]
    assert main(["simulate", *args]) == 2
    assert message in capsys.readouterr().err

