"""File replay: turn recorded market data into ``MarketUpdate`` streams.

Readers are lazy generators over the files in ``../shared/data`` (see its
README). Numbers are parsed straight from the file text with ``Decimal(str)``
and never pass through float, so a replay is exact; timestamps come out
timezone-aware UTC. Each reader yields updates in file order, which for
these files is non-decreasing ``ts``; ``merge_by_time`` interleaves streams.

Order books are checked by their sequence numbers on the way in
(``bybit_book``, ``binance_depth``): a gap yields ``BookInvalidated`` and no
delta until the next snapshot. Bar files of any interval and column naming are
read by ``bars``; ``read_perp_bars`` is the shared BTC file's reader on top.
"""

from __future__ import annotations

import csv
import heapq
import json
import os
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from operator import attrgetter
from pathlib import Path

from app.domain.market import (
    BookDelta,
    BookInvalidated,
    BookSnapshot,
    FundingRate,
    MarketUpdate,
    MarkPrice,
    Quote,
    TradePrint,
)
from app.domain.orders import Side
from app.marketdata.bars import StrPath, read_bars
from app.marketdata.bybit_book import BybitBookAssembler


def default_data_dir() -> Path:
    """``$PERPDESK_DATA_DIR`` if set, else ``<repo root>/../shared/data``."""
    env = os.environ.get("PERPDESK_DATA_DIR")
    if env:
        return Path(env).expanduser()
    repo_root = Path(__file__).resolve().parents[2]  # .../app/marketdata/replay.py
    return (repo_root.parent / "shared" / "data").resolve()


def parse_ts(text: str) -> datetime:
    """An ISO timestamp as aware UTC; a naive one is taken to be UTC already."""
    ts = datetime.fromisoformat(text)
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _rows(path: StrPath) -> Iterator[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        yield from csv.DictReader(f)


def _parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def read_binance_trades(path: StrPath, *, venue: str, symbol: str) -> Iterator[TradePrint]:
    """Binance public trades (timestamp, trade_id, price, quantity, buyer_maker).

    ``buyer_maker`` true means the buyer's order was resting, so the taker
    (the aggressor) sold.
    """
    for row in _rows(path):
        aggressor = Side.SELL if _parse_bool(row["buyer_maker"]) else Side.BUY
        yield TradePrint(
            venue=venue,
            symbol=symbol,
            price=Decimal(row["price"]),
            qty=Decimal(row["quantity"]),
            aggressor=aggressor,
            ts=parse_ts(row["timestamp"]),
            trade_id=row["trade_id"],
        )


def read_binance_quotes(path: StrPath, *, venue: str, symbol: str) -> Iterator[Quote]:
    """Binance best bid/offer rows (timestamp, symbol, ask_size, ask, bid_size, bid).

    The file's own symbol column (``BTC/USDT``) is ignored in favour of ours.
    """
    for row in _rows(path):
        yield Quote(
            venue=venue,
            symbol=symbol,
            bid=Decimal(row["bid"]),
            bid_size=Decimal(row["bid_size"]),
            ask=Decimal(row["ask"]),
            ask_size=Decimal(row["ask_size"]),
            ts=parse_ts(row["timestamp"]),
        )


def merge_by_time(*iterables: Iterable[MarketUpdate]) -> Iterator[MarketUpdate]:
    """Merge streams that are each ordered by ``ts`` into one ordered stream.

    Stable: on equal ``ts`` an update from an earlier argument comes first,
    and each stream keeps its own order (``heapq.merge`` breaks ties by
    argument position).
    """
    return heapq.merge(*iterables, key=attrgetter("ts"))


def read_bybit_book(
    path: StrPath, *, venue: str, symbol: str
) -> Iterator[BookSnapshot | BookDelta | BookInvalidated]:
    """Bybit v5 ``orderbook.<depth>`` messages, one JSON object a line, checked by
    their ``u`` and ``seq`` (``bybit_book``).

    A ``snapshot`` (or a message with ``u`` = 1: Bybit's restart snapshot) becomes
    a ``BookSnapshot`` (bids sorted descending, asks ascending); a ``delta`` becomes
    a ``BookDelta`` carrying absolute sizes, where size 0 deletes the level. Deltas
    before the first snapshot are skipped, as a live Bybit client must: there is
    nothing to apply them to. Stale or duplicated deltas (``seq`` not increasing)
    are dropped; a delta whose ``u`` is not the previous ``u`` + 1 yields one
    ``BookInvalidated`` and no delta until the next snapshot.
    """
    assembler = BybitBookAssembler(venue, symbol)
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield from assembler.on_message(json.loads(line))


def read_funding_series(
    funding_csv: StrPath, mark_csv: StrPath, *, venue: str, symbol: str
) -> Iterator[MarkPrice | FundingRate]:
    """Funding settlements with the mark price they settle against.

    For each funding row at time t: a ``MarkPrice`` at t priced at the open
    of the mark candle at/just before t (the candle opening at the funding
    boundary; funding rows are stamped a few ms after it), then a
    ``FundingRate`` with ``funding_at = ts = t``, i.e. a settlement print.
    A funding row older than every candle gets no ``MarkPrice``.
    """
    candles = sorted((parse_ts(row["timestamp"]), Decimal(row["open"])) for row in _rows(mark_csv))
    candle_times = [ts for ts, _ in candles]
    for row in _rows(funding_csv):
        t = parse_ts(row["timestamp"])
        i = bisect_right(candle_times, t) - 1
        if i >= 0:
            yield MarkPrice(venue, symbol, candles[i][1], t)
        yield FundingRate(venue, symbol, Decimal(row["funding_rate"]), funding_at=t, ts=t)


def read_perp_bars(
    path: StrPath, *, venue: str, symbol: str, tick: Decimal
) -> Iterator[Quote | TradePrint | MarkPrice]:
    """OHLCV bars (timestamp, open, high, low, close, quote volume) as a tick
    stream: ``bars.read_bars`` with the interval detected (1 minute for the
    shared BTC file) and sizes on a 0.001 grid.

    Each 1-minute bar becomes four price points at +0/+15/+30/+45 s: O, then L, H for
    an up bar (close >= open) or H, L for a down bar, then C. Each point p
    yields ``Quote(bid=p, ask=p + tick)`` with both sizes = quote volume /
    p / 4 rounded down to 0.001 (at least 0.001), a ``TradePrint`` of that
    size at p (aggressor BUY if p rose from the previous point, else SELL;
    the very first point counts as SELL) and a ``MarkPrice`` at p.

    Points are rounded to the nearest ``tick`` first: the BTC file has two
    stretches of linearly interpolated bars (2022-01-01 and 2022-01-13,
    03:03-03:10) with prices like 46821.75 or 43613.875, off a 0.5 or 1
    grid, and quotes off the instrument's grid would break tick checks
    downstream. Naive timestamps are read as UTC.
    """
    return read_bars(path, venue=venue, symbol=symbol, tick=tick)
