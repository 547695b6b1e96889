"""File replay against the real data in ../shared/data (and small inline files)."""

from __future__ import annotations

import csv
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from app.domain.market import (
    BookDelta,
    BookSnapshot,
    FundingRate,
    MarketUpdate,
    MarkPrice,
    Quote,
    TradePrint,
)
from app.domain.orders import Side
from app.marketdata import (
    default_data_dir,
    merge_by_time,
    read_binance_quotes,
    read_binance_trades,
    read_bybit_book,
    read_funding_series,
    read_perp_bars,
)

TRADES = "binance-btcusdt-trades-2021-01-08.csv"
QUOTES = "binance-btcusdt-quotes-2021-01-08.csv"
BYBIT = "bybit-xrpusdt-ob500-2024-12-01.jsonl"
FUNDING = "xrpusdt-perp-funding-8h.csv"
MARK = "xrpusdt-perp-mark-8h.csv"
BARS = "btc-perp-2022-01_1m.csv"

BN = {"venue": "binance", "symbol": "BTC-USDT"}
XRP = {"venue": "bybit", "symbol": "XRP-PERP"}


def csv_rows(path: Path) -> list[dict[str, str]]:
    """The file's rows, read independently of the code under test."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def assert_ordered(updates: list[MarketUpdate]) -> None:
    stamps = [u.ts for u in updates]
    assert stamps == sorted(stamps)
    assert all(ts.utcoffset() == timedelta(0) for ts in stamps)


# --- default_data_dir -----------------------------------------------------------


def test_default_data_dir_is_shared_data_next_to_the_repo(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PERPDESK_DATA_DIR", raising=False)
    repo_root = Path(__file__).resolve().parents[2]
    assert default_data_dir() == (repo_root.parent / "shared" / "data").resolve()


def test_default_data_dir_env_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PERPDESK_DATA_DIR", str(tmp_path))
    assert default_data_dir() == tmp_path


# --- Binance trades and quotes --------------------------------------------------


def test_binance_trades(data_dir: Path) -> None:
    rows = csv_rows(data_dir / TRADES)
    trades = list(read_binance_trades(data_dir / TRADES, **BN))
    assert len(trades) == len(rows) == 2001
    assert_ordered(trades)
    for row, trade in zip(rows, trades, strict=True):
        # buyer_maker: the buyer rested, so the taker sold.
        expected = Side.SELL if row["buyer_maker"] == "True" else Side.BUY
        assert trade.aggressor is expected
        assert trade.trade_id == row["trade_id"]
        assert trade.price == Decimal(row["price"]) and trade.qty == Decimal(row["quantity"])
        assert type(trade.price) is Decimal and type(trade.qty) is Decimal
        assert (trade.venue, trade.symbol) == ("binance", "BTC-USDT")
    assert set(Counter(t.aggressor for t in trades)) == {Side.BUY, Side.SELL}
    first = trades[0]
    assert first.ts == datetime(2021, 1, 8, 0, 0, 0, 278000, tzinfo=UTC)
    assert (first.price, first.aggressor, first.trade_id) == (
        Decimal("39432.48"),
        Side.SELL,
        "553287559",
    )


def test_binance_quotes(data_dir: Path) -> None:
    rows = csv_rows(data_dir / QUOTES)
    quotes = list(read_binance_quotes(data_dir / QUOTES, **BN))
    assert len(quotes) == len(rows) == 451
    assert_ordered(quotes)
    assert all(q.bid < q.ask for q in quotes)
    first = quotes[0]
    assert first == Quote(
        venue="binance",
        symbol="BTC-USDT",
        bid=Decimal("39432.99"),
        bid_size=Decimal("0.0031"),
        ask=Decimal("39433.62"),
        ask_size=Decimal("0.066851"),
        ts=datetime(2021, 1, 8, 0, 0, 1, 76000, tzinfo=UTC),
    )
    # Exact text, not float: the file's float noise survives verbatim.
    assert Decimal("3.2909330000000003") in {q.ask_size for q in quotes}


def test_merged_trades_and_quotes_are_ordered(data_dir: Path) -> None:
    trades = list(read_binance_trades(data_dir / TRADES, **BN))
    quotes = list(read_binance_quotes(data_dir / QUOTES, **BN))
    merged = list(merge_by_time(iter(trades), iter(quotes)))
    assert len(merged) == len(trades) + len(quotes)
    assert_ordered(merged)
    # Each stream keeps its own order inside the merge.
    assert [u for u in merged if isinstance(u, TradePrint)] == trades
    assert [u for u in merged if isinstance(u, Quote)] == quotes


def test_merge_is_stable_on_equal_timestamps() -> None:
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    t1 = t0 + timedelta(seconds=1)

    def mark(price: int, ts: datetime) -> MarkPrice:
        return MarkPrice("v", "S", Decimal(price), ts)

    a = [mark(1, t0), mark(2, t0), mark(3, t1)]
    b = [mark(10, t0), mark(11, t1)]
    c: list[MarkPrice] = []
    merged = [u.price for u in merge_by_time(a, b, c)]
    assert merged == [1, 2, 10, 3, 11]
    assert [u.price for u in merge_by_time(b, a)] == [10, 1, 2, 11, 3]
    assert list(merge_by_time()) == []


# --- Bybit order book ---------------------------------------------------------


class Book:
    def __init__(self, snapshot: BookSnapshot) -> None:
        self.bids = dict(snapshot.bids)
        self.asks = dict(snapshot.asks)

    def apply(self, delta: BookDelta) -> None:
        for side, levels in ((self.bids, delta.bids), (self.asks, delta.asks)):
            for price, size in levels:
                if size == 0:
                    side.pop(price, None)
                else:
                    side[price] = size

    def crossed(self) -> bool:
        return max(self.bids) >= min(self.asks)


def test_bybit_book(data_dir: Path) -> None:
    with open(data_dir / BYBIT) as f:
        messages = [json.loads(line) for line in f if line.strip()]
    updates = list(read_bybit_book(data_dir / BYBIT, **XRP))
    kinds = Counter(type(u) for u in updates)
    assert kinds[BookSnapshot] == sum(m["type"] == "snapshot" for m in messages) == 1
    assert kinds[BookDelta] == sum(m["type"] == "delta" for m in messages) == 49
    assert_ordered(updates)

    snapshot = updates[0]
    assert isinstance(snapshot, BookSnapshot)
    assert snapshot.ts == datetime(2024, 12, 1, 0, 0, 0, 691000, tzinfo=UTC)
    assert len(snapshot.bids) == len(snapshot.asks) == 500
    bid_prices = [p for p, _ in snapshot.bids]
    ask_prices = [p for p, _ in snapshot.asks]
    assert bid_prices == sorted(bid_prices, reverse=True)
    assert ask_prices == sorted(ask_prices)
    assert bid_prices[0] < ask_prices[0]
    assert all(type(x) is Decimal for level in snapshot.bids + snapshot.asks for x in level)
    assert all(size > 0 for _, size in snapshot.bids + snapshot.asks)

    book = Book(snapshot)
    for delta in updates[1:]:
        assert isinstance(delta, BookDelta)
        book.apply(delta)
        assert not book.crossed()
    assert any(size == 0 for d in updates[1:] for _, size in d.bids + d.asks)


def test_bybit_deltas_before_snapshot_are_skipped(tmp_path: Path) -> None:
    def message(kind: str, ts: int, bids: list[list[str]], asks: list[list[str]],
                u: int, seq: int) -> str:
        data = {"s": "XRPUSDT", "b": bids, "a": asks, "u": u, "seq": seq}
        return json.dumps({"topic": "orderbook.500.XRPUSDT", "type": kind, "ts": ts, "data": data})

    path = tmp_path / "book.jsonl"
    path.write_text(
        "\n".join(
            [
                message("delta", 1000, [["1.0", "5"]], [], 40, 400),
                message(
                    "snapshot", 2000, [["1.0", "5"], ["1.1", "7"]], [["1.3", "1"], ["1.2", "2"]],
                    41, 410,
                ),
                "",
                message("delta", 3000, [["1.1", "0"]], [["1.2", "4"]], 42, 420),
            ]
        )
    )
    updates = list(read_bybit_book(path, **XRP))
    assert [type(u) for u in updates] == [BookSnapshot, BookDelta]
    snapshot, delta = updates
    assert snapshot.bids == ((Decimal("1.1"), Decimal(7)), (Decimal("1.0"), Decimal(5)))
    assert snapshot.asks == ((Decimal("1.2"), Decimal(2)), (Decimal("1.3"), Decimal(1)))
    assert delta.bids == ((Decimal("1.1"), Decimal(0)),)
    assert delta.ts == datetime(1970, 1, 1, 0, 0, 3, tzinfo=UTC)


# --- funding ------------------------------------------------------------------


def test_funding_series(data_dir: Path) -> None:
    funding_rows = csv_rows(data_dir / FUNDING)
    marks = {row["timestamp"]: row["open"] for row in csv_rows(data_dir / MARK)}
    updates = list(read_funding_series(data_dir / FUNDING, data_dir / MARK, **XRP))
    assert len(funding_rows) == 91
    assert len(updates) == 2 * len(funding_rows)
    assert_ordered(updates)
    for row, (mark, rate) in zip(
        funding_rows, zip(updates[::2], updates[1::2], strict=True), strict=True
    ):
        assert isinstance(mark, MarkPrice) and isinstance(rate, FundingRate)
        assert mark.ts == rate.ts == rate.funding_at
        assert rate.rate == Decimal(row["funding_rate"]) and type(rate.rate) is Decimal
        # The candle opening at the 8 h boundary just before the funding print.
        boundary = mark.ts.replace(microsecond=0)
        assert boundary.hour % 8 == 0 and boundary.minute == boundary.second == 0
        assert mark.price == Decimal(marks[boundary.isoformat(sep=" ")])
    first_mark, first_rate = updates[0], updates[1]
    assert first_mark.price == Decimal("1.0959")
    assert first_rate.ts == datetime(2021, 11, 18, 0, 0, 0, 17000, tzinfo=UTC)
    assert first_rate.rate == Decimal("0.0001")


def test_funding_without_an_earlier_candle_has_no_mark(tmp_path: Path) -> None:
    (tmp_path / "f.csv").write_text(
        "timestamp,funding_rate\n"
        "2021-01-01 00:00:00.010+00:00,8.995e-05\n"
        "2021-01-01 08:00:00.010+00:00,-0.0001\n"
    )
    (tmp_path / "m.csv").write_text(
        "timestamp,open,high,low,close\n2021-01-01 08:00:00+00:00,1.5,1.6,1.4,1.5\n"
    )
    updates = list(read_funding_series(tmp_path / "f.csv", tmp_path / "m.csv", **XRP))
    assert [type(u) for u in updates] == [FundingRate, MarkPrice, FundingRate]
    assert updates[0].rate == Decimal("0.00008995")
    assert updates[1].price == Decimal("1.5")


# --- 1-minute bars --------------------------------------------------------------


def test_bars_small_file(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(
        "timestamp,open,high,low,close,volume\n"
        "2022-01-01 00:00:00.000000,100.0,104.0,99.0,103.0,4000\n"  # up bar: O L H C
        "2022-01-01 00:01:00.000000,103.0,103.5,101.0,101.75,0.1\n"  # down bar: O H L C
    )
    updates = list(read_perp_bars(path, venue="v", symbol="BTC-PERP", tick=Decimal("0.5")))
    assert len(updates) == 2 * 4 * 3
    quotes = updates[0::3]
    trades = updates[1::3]
    marks = updates[2::3]
    assert all(isinstance(q, Quote) for q in quotes)
    assert all(isinstance(t, TradePrint) for t in trades)
    assert all(isinstance(m, MarkPrice) for m in marks)
    # 101.75 is off the 0.5 grid: rounded to the nearest tick (half-even).
    assert [q.bid for q in quotes] == [100, 99, 104, 103, 103, Decimal("103.5"), 101, 102]
    assert all(q.ask == q.bid + Decimal("0.5") for q in quotes)
    t0 = datetime(2022, 1, 1, tzinfo=UTC)
    assert [q.ts - t0 for q in quotes] == [
        timedelta(seconds=s) for s in (0, 15, 30, 45, 60, 75, 90, 105)
    ]
    assert [t.aggressor for t in trades] == [
        Side.SELL,  # first point: nothing to compare with
        Side.SELL,
        Side.BUY,
        Side.SELL,
        Side.SELL,  # unchanged counts as SELL
        Side.BUY,
        Side.SELL,
        Side.BUY,
    ]
    # 4000 / 100 / 4 = 10; the second bar's tiny volume floors at 0.001.
    assert quotes[0].bid_size == quotes[0].ask_size == trades[0].qty == Decimal("10.000")
    assert quotes[4].bid_size == Decimal("0.001")
    assert all(t.price == q.bid == m.price for q, t, m in zip(quotes, trades, marks, strict=True))


@pytest.mark.slow
def test_bars_real_file(data_dir: Path) -> None:
    rows = csv_rows(data_dir / BARS)
    assert len(rows) == 45_031
    count = 0
    last_ts = None
    previous: Decimal | None = None
    tick = Decimal("0.5")
    for i, u in enumerate(read_perp_bars(data_dir / BARS, venue="v", symbol="BTC-PERP", tick=tick)):
        count += 1
        assert last_ts is None or u.ts >= last_ts
        last_ts = u.ts
        kind = i % 3
        if kind == 0:
            assert isinstance(u, Quote)
            assert u.ask - u.bid == tick and u.bid % tick == 0
            assert u.bid_size >= Decimal("0.001") and u.bid_size % Decimal("0.001") == 0
        elif kind == 1:
            assert isinstance(u, TradePrint)
            up = previous is not None and u.price > previous
            assert u.aggressor is (Side.BUY if up else Side.SELL)
            previous = u.price
        else:
            assert isinstance(u, MarkPrice)
    assert count == len(rows) * 4 * 3
    first_bar_start = datetime(2021, 12, 31, 23, 1, tzinfo=UTC)
    assert last_ts == datetime.fromisoformat(rows[-1]["timestamp"]).replace(tzinfo=UTC) + timedelta(
        seconds=45
    )
    first = next(read_perp_bars(data_dir / BARS, venue="v", symbol="BTC-PERP", tick=tick))
    assert isinstance(first, Quote)
    assert (first.ts, first.bid) == (first_bar_start, Decimal("46319.0"))
