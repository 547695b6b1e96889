"""Market-data updates the engine consumes.

Every update names the venue and symbol it belongs to and the exchange time
``ts`` (timezone-aware UTC) at which it happened. They are values: feeds
build them, the engine and the paper venue read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from app.domain.orders import Side


@dataclass(frozen=True, slots=True)
class Quote:
    """Best bid and offer (L1)."""

    venue: str
    symbol: str
    bid: Decimal
    bid_size: Decimal
    ask: Decimal
    ask_size: Decimal
    ts: datetime


@dataclass(frozen=True, slots=True)
class TradePrint:
    """A public trade. ``aggressor`` is the taker's side: a SELL aggressor hits bids."""

    venue: str
    symbol: str
    price: Decimal
    qty: Decimal
    aggressor: Side
    ts: datetime
    trade_id: str = ""


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    """A full L2 book: levels as (price, size), bids best-first, asks best-first."""

    venue: str
    symbol: str
    bids: tuple[tuple[Decimal, Decimal], ...]
    asks: tuple[tuple[Decimal, Decimal], ...]
    ts: datetime


@dataclass(frozen=True, slots=True)
class BookDelta:
    """Changed L2 levels: the new absolute size at each price; size 0 deletes the level."""

    venue: str
    symbol: str
    bids: tuple[tuple[Decimal, Decimal], ...]
    asks: tuple[tuple[Decimal, Decimal], ...]
    ts: datetime


@dataclass(frozen=True, slots=True)
class MarkPrice:
    """The venue's mark price (what unrealized P&L, margin and funding use)."""

    venue: str
    symbol: str
    price: Decimal
    ts: datetime


@dataclass(frozen=True, slots=True)
class FundingRate:
    """The funding rate that applies at ``funding_at``.

    A rate announced ahead of time (``funding_at`` in the future) is settled
    when the clock reaches ``funding_at``; a rate whose ``funding_at`` has
    already passed is a settlement print and is applied at once. A positive
    rate means longs pay shorts.
    """

    venue: str
    symbol: str
    rate: Decimal
    funding_at: datetime
    ts: datetime


@dataclass(frozen=True, slots=True)
class BookInvalidated:
    """Our copy of the venue's book can no longer be trusted.

    A feed emits it when it sees a sequence gap (an update id that does not
    follow the last one applied): levels changed that we never heard about, so
    trading against the book would use liquidity that may not be there. The
    book stays invalid until the feed's next ``BookSnapshot`` (or, for a book
    kept from L1 quotes only, the next ``Quote``). ``reason`` is for people
    (logs, /readyz), e.g. ``"gap: pu 41 after u 40"``.
    """

    venue: str
    symbol: str
    reason: str
    ts: datetime


class PriceBar(NamedTuple):  # a tuple: a backtest builds a million of them
    """One OHLC bar as the four price points it is replayed as
    (app/marketdata/bars.py ``read_bars``):
    each point's time, price (on the tick grid), size (base units, a quarter of the
    bar's volume at that price) and trade aggressor. ``ask`` is the quote's ask at each
    point (the price plus one tick)."""

    times: tuple[datetime, datetime, datetime, datetime]
    prices: tuple[Decimal, Decimal, Decimal, Decimal]
    sizes: tuple[Decimal, Decimal, Decimal, Decimal]
    aggressors: tuple[Side, Side, Side, Side]
    tick: Decimal

    @property
    def start(self) -> datetime:
        return self.times[0]

    def point_updates(self, venue: str, symbol: str, k: int
                      ) -> tuple[Quote, TradePrint, MarkPrice]:
        """Point ``k`` as the three updates the engine takes: quote, trade print, mark."""
        p, size, ts = self.prices[k], self.sizes[k], self.times[k]
        return (Quote(venue, symbol, p, size, p + self.tick, size, ts),
                TradePrint(venue, symbol, p, size, self.aggressors[k], ts),
                MarkPrice(venue, symbol, p, ts))


MarketUpdate = (
    Quote | TradePrint | BookSnapshot | BookDelta | MarkPrice | FundingRate | BookInvalidated
)
