"""The incremental indicators and the bar builder against a reference: pandas
computations of the same definitions (pandas is a dev dependency, used here as a
test oracle only) on real BTC-PERP 1-minute bars, and on the 5 m and 1 h bars
built from them."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from app.strategies.bars import Bar, BarBuilder, MultiBars, aggregate, parse_interval
from app.strategies.indicators import ATR, EMA, RSI, SMA, ReturnsStdev

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "btc-perp-2022-01_1m.csv"
ROWS = 4000  # ~2.8 days of minutes: enough for 1 h EMAs and quick in Decimal
REL = 1e-9


def btc_bars(rows: int = ROWS) -> list[Bar]:
    if not DATA.exists():
        pytest.skip(f"{DATA} is not there")
    out: list[Bar] = []
    with DATA.open() as f:
        for i, row in enumerate(csv.DictReader(f)):
            if i == rows:
                break
            start = datetime.fromisoformat(row["timestamp"]).replace(tzinfo=UTC)
            out.append(Bar(start, timedelta(minutes=1), Decimal(row["open"]),
                           Decimal(row["high"]), Decimal(row["low"]), Decimal(row["close"]),
                           Decimal(row["volume"])))
    return out


def frame(bars: list[Bar]) -> pd.DataFrame:
    return pd.DataFrame({"open": [float(b.open) for b in bars],
                         "high": [float(b.high) for b in bars],
                         "low": [float(b.low) for b in bars],
                         "close": [float(b.close) for b in bars],
                         "volume": [float(b.volume) for b in bars]},
                        index=pd.DatetimeIndex([b.start for b in bars]))


def seeded(values: pd.Series, n: int, alpha: float) -> pd.Series:
    """An exponential average seeded with the mean of the first n values (positions
    before n − 1 are NaN), as TA-Lib and Wilder define it."""
    seed = values.iloc[:n].mean()
    tail = pd.concat([pd.Series([seed]), values.iloc[n:].reset_index(drop=True)])
    smoothed = tail.ewm(alpha=alpha, adjust=False).mean().to_numpy()
    out = pd.Series([float("nan")] * len(values))
    out.iloc[n - 1:] = smoothed
    return out


def reference(df: pd.DataFrame, n: int) -> dict[str, pd.Series]:
    close = df["close"].reset_index(drop=True)
    high = df["high"].reset_index(drop=True)
    low = df["low"].reset_index(drop=True)
    delta = close.diff()
    gain = seeded(delta.clip(lower=0).iloc[1:].reset_index(drop=True), n, 1 / n)
    loss = seeded((-delta.clip(upper=0)).iloc[1:].reset_index(drop=True), n, 1 / n)
    rsi = 100 - 100 / (1 + gain / loss)
    previous = close.shift(1)
    tr = pd.concat([high - low, (high - previous).abs(), (low - previous).abs()],
                   axis=1).max(axis=1)
    tr.iloc[0] = high.iloc[0] - low.iloc[0]
    return {
        "sma": close.rolling(n).mean(),
        "ema": seeded(close, n, 2 / (n + 1)),
        "rsi": pd.concat([pd.Series([float("nan")]), rsi]).reset_index(drop=True),
        "atr": seeded(tr, n, 1 / n),
        "stdev": close.pct_change().rolling(n).std(ddof=1),
    }


def ours(bars: list[Bar], n: int) -> dict[str, list[Decimal | None]]:
    sma, ema, rsi, atr, sd = SMA(n), EMA(n), RSI(n), ATR(n), ReturnsStdev(n)
    out: dict[str, list[Decimal | None]] = {k: [] for k in ("sma", "ema", "rsi", "atr",
                                                             "stdev")}
    for b in bars:
        out["sma"].append(sma.update(b.close))
        out["ema"].append(ema.update(b.close))
        out["rsi"].append(rsi.update(b.close))
        out["atr"].append(atr.update(b.high, b.low, b.close))
        out["stdev"].append(sd.update(b.close))
    return out


def assert_matches(mine: list[Decimal | None], ref: pd.Series, name: str) -> None:
    assert len(mine) == len(ref)
    compared = 0
    for i, (a, b) in enumerate(zip(mine, ref.tolist(), strict=True)):
        if b != b:  # NaN: the reference is not ready either
            assert a is None, f"{name}[{i}]: {a} where the reference has none"
            continue
        assert a is not None, f"{name}[{i}]: none where the reference has {b}"
        assert float(a) == pytest.approx(b, rel=REL, abs=1e-12), f"{name}[{i}]"
        compared += 1
    assert compared > len(mine) // 2


@pytest.mark.parametrize("n", [14, 20])
def test_indicators_equal_pandas_on_btc_minutes(n: int) -> None:
    bars = btc_bars()
    mine, ref = ours(bars, n), reference(frame(bars), n)
    for name in mine:
        assert_matches(mine[name], ref[name], name)


def test_indicators_equal_pandas_on_5m_and_1h_bars_built_from_the_minutes() -> None:
    minutes = btc_bars()
    df = frame(minutes)
    for interval, rule, n in ((timedelta(minutes=5), "5min", 20), (timedelta(hours=1), "1h",
                                                                   14)):
        built = aggregate(minutes, interval)
        resampled = df.resample(rule, label="left", closed="left").agg(
            {"open": "first", "high": "max", "low": "min", "close": "last",
             "volume": "sum"}).dropna()
        assert [b.start for b in built] == list(resampled.index.to_pydatetime())
        assert [float(b.close) for b in built] == resampled["close"].tolist()
        assert [float(b.high) for b in built] == resampled["high"].tolist()
        assert [float(b.low) for b in built] == resampled["low"].tolist()
        mine, ref = ours(built, n), reference(resampled, n)
        for name in mine:
            assert_matches(mine[name], ref[name], f"{rule} {name}")


def test_ema200_on_1h_bars_equals_pandas() -> None:
    minutes = btc_bars(rows=45_031)  # the whole month: ~750 hours
    hours = aggregate(minutes, timedelta(hours=1))
    ema = EMA(200)
    mine = [ema.update(b.close) for b in hours]
    ref = seeded(frame(hours)["close"].reset_index(drop=True), 200, 2 / 201)
    assert_matches(mine, ref, "ema200")


def test_bar_builder_from_ticks_equals_aggregation_and_closes_on_time() -> None:
    """Ticks (the four points of each minute) through MultiBars give the same 5 m and
    1 h bars as aggregating the minutes; a bar closes only once its end has passed."""
    minutes = btc_bars(rows=200)
    multi = MultiBars([timedelta(minutes=5), timedelta(hours=1)])
    closed: list[Bar] = []
    for m in minutes:
        for k, price in enumerate((m.open, m.high, m.low, m.close)):
            ts = m.start + timedelta(seconds=15 * k)
            for bar in multi.update(price, ts, m.volume / 4 if k == 0 else Decimal(0)):
                assert bar.end <= ts
                closed.append(bar)
    closed += multi.close_due(minutes[-1].start + timedelta(days=1))
    for interval in (timedelta(minutes=5), timedelta(hours=1)):
        mine = [b for b in closed if b.interval == interval]
        ref = aggregate(minutes, interval)
        assert [(b.start, b.open, b.high, b.low, b.close) for b in mine] == \
            [(b.start, b.open, b.high, b.low, b.close) for b in ref]
        # Volume: the quarter of each minute's volume given at the minute's open.
        assert [b.volume for b in mine] == [b.volume / 4 for b in ref]


def test_bars_at_the_same_end_come_longest_first_and_gaps_make_no_bar() -> None:
    t0 = datetime(2022, 1, 1, 9, 0, tzinfo=UTC)
    multi = MultiBars([timedelta(minutes=5), timedelta(hours=1)])
    multi.update(Decimal(100), t0 + timedelta(minutes=57))
    closed = multi.update(Decimal(101), t0 + timedelta(hours=1, minutes=20))
    assert [(b.interval, b.start) for b in closed] == [
        (timedelta(hours=1), t0), (timedelta(minutes=5), t0 + timedelta(minutes=55))]
    builder = BarBuilder(timedelta(minutes=1))
    assert builder.update(Decimal(1), t0) is None
    assert builder.update(Decimal(2), t0 - timedelta(minutes=1)) is None  # late: dropped
    assert builder.close_due(t0 + timedelta(seconds=59)) is None
    bar = builder.close_due(t0 + timedelta(minutes=1))
    assert bar is not None and bar.close == Decimal(1)


def test_parse_interval() -> None:
    assert parse_interval("5m") == timedelta(minutes=5)
    assert parse_interval("1h") == timedelta(hours=1)
    with pytest.raises(ValueError):
        parse_interval("5x")
    with pytest.raises(ValueError):
        parse_interval("8d")


def test_rsi_is_100_without_losses_and_indicators_reject_bad_periods() -> None:
    rsi = RSI(3)
    for x in (1, 2, 3, 4):
        value = rsi.update(Decimal(x))
    assert value == 100
    with pytest.raises(ValueError):
        SMA(0)
    with pytest.raises(ValueError):
        ReturnsStdev(1)


def test_a_feed_drops_the_partial_first_bar_and_keeps_a_minute_of_volume() -> None:
    from app.domain.market import Quote, TradePrint
    from app.domain.orders import Side
    from app.strategies.common import PriceSource, SymbolFeed

    t0 = datetime(2022, 1, 1, 10, 2, tzinfo=UTC)  # started mid-bar
    feed = SymbolFeed("BTC-PERP", MultiBars([timedelta(minutes=5)]))
    closed: list[Bar] = []
    for minute in range(10):
        ts = t0 + timedelta(minutes=minute)
        closed += feed.on_update(TradePrint("v", "BTC-PERP", Decimal(100 + minute),
                                            Decimal(1), Side.BUY, ts))
        closed += feed.on_update(Quote("v", "ETH-PERP", Decimal(1), Decimal(1), Decimal(2),
                                       Decimal(1), ts))  # another symbol: ignored
    assert [b.start.minute for b in closed] == [5]  # 10:00 was partial; 10:10 still forming
    assert closed[0].open == 103 and closed[0].close == 107 and closed[0].volume == 525
    now = t0 + timedelta(minutes=9)
    assert feed.volume_1m(now) == 109  # only the print at 10:11 is within the minute
    mids = SymbolFeed("BTC-PERP", MultiBars([timedelta(minutes=1)]), PriceSource.MID)
    mids.on_update(Quote("v", "BTC-PERP", Decimal(99), Decimal(1), Decimal(101), Decimal(1),
                         t0))
    (bar,) = mids.on_update(Quote("v", "BTC-PERP", Decimal(100), Decimal(1), Decimal(102),
                                  Decimal(1), t0 + timedelta(minutes=1)))
    assert bar.close == 100 and mids.mid == 101
