"""The synthetic feed: deterministic, and a market a venue can trust."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.instruments import Instrument, InstrumentKind
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
from app.marketdata import SyntheticMarket, default_initial_price, next_funding_at, quote_ticks

# Thirty seconds before a funding boundary, so funding_at has to roll over.
START = datetime(2024, 3, 1, 7, 59, 30, tzinfo=UTC)

BTC = Instrument(
    symbol="BTC-PERP",
    venue="paper-binance",
    kind=InstrumentKind.PERP,
    base="BTC",
    quote="USDT",
    tick_size=Decimal("0.1"),
    step_size=Decimal("0.001"),
    min_qty=Decimal("0.001"),
    min_notional=Decimal(5),
)
XRP = Instrument(
    symbol="XRP-PERP",
    venue="paper-bybit",
    kind=InstrumentKind.PERP,
    base="XRP",
    quote="USDT",
    tick_size=Decimal("0.0001"),
    step_size=Decimal(1),
    min_qty=Decimal(1),
    min_notional=Decimal(5),
)
ETH_SPOT = Instrument(
    symbol="ETH-USD",
    venue="paper-binance",
    kind=InstrumentKind.SPOT,
    base="ETH",
    quote="USD",
    tick_size=Decimal("0.01"),
    step_size=Decimal("0.0001"),
    min_qty=Decimal("0.0001"),
    min_notional=Decimal(5),
)
INSTRUMENTS = [BTC, XRP, ETH_SPOT]
BY_KEY = {(i.venue, i.symbol): i for i in INSTRUMENTS}


def market(**kwargs: object) -> SyntheticMarket:
    return SyntheticMarket(INSTRUMENTS, start=START, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def updates() -> list[MarketUpdate]:
    # About 12 minutes of 250 ms steps: snapshots, marks, a funding rollover.
    return market().take(20_000)


class Book:
    """A minimal L2 book: what a consumer of snapshots and deltas would hold."""

    def __init__(self) -> None:
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}

    def apply(self, update: BookSnapshot | BookDelta) -> None:
        if isinstance(update, BookSnapshot):
            self.bids, self.asks = dict(update.bids), dict(update.asks)
            return
        for side, levels in ((self.bids, update.bids), (self.asks, update.asks)):
            for price, size in levels:
                if size == 0:
                    side.pop(price, None)
                else:
                    side[price] = size

    def best_bid(self) -> tuple[Decimal, Decimal]:
        price = max(self.bids)
        return price, self.bids[price]

    def best_ask(self) -> tuple[Decimal, Decimal]:
        price = min(self.asks)
        return price, self.asks[price]


def replay_books(updates: list[MarketUpdate]) -> dict[tuple[str, str], Book]:
    """Apply every book update, checking the invariants a venue relies on."""
    books: dict[tuple[str, str], Book] = {}
    for u in updates:
        key = (u.venue, u.symbol)
        inst = BY_KEY[key]
        if isinstance(u, BookSnapshot | BookDelta):
            if isinstance(u, BookDelta):
                assert key in books, "delta before the first snapshot"
            books.setdefault(key, Book()).apply(u)
            book = books[key]
            assert book.bids and book.asks
            assert book.best_bid()[0] < book.best_ask()[0], "crossed book"
            for price, size in (*book.bids.items(), *book.asks.items()):
                assert inst.price_on_tick(price) and price > 0
                assert inst.qty_on_step(size) and size > 0
        elif isinstance(u, Quote):
            book = books[key]
            assert (u.bid, u.bid_size) == book.best_bid()
            assert (u.ask, u.ask_size) == book.best_ask()
        elif isinstance(u, TradePrint):
            book = books[key]
            price, size = book.best_ask() if u.aggressor is Side.BUY else book.best_bid()
            assert u.price == price
            assert 0 < u.qty <= size
            assert inst.qty_on_step(u.qty)
    return books


def test_same_seed_gives_identical_updates() -> None:
    assert market(seed=11).take(3000) == market(seed=11).take(3000)


def test_different_seed_gives_different_updates() -> None:
    assert market(seed=11).take(3000) != market(seed=12).take(3000)


def test_adding_an_instrument_leaves_the_others_unchanged() -> None:
    alone = SyntheticMarket([XRP], start=START).take(500)
    together = [u for u in market().take(3000) if u.symbol == "XRP-PERP"][:500]
    assert alone == together


def test_take_continues_the_stream() -> None:
    m1, m2 = market(), market()
    assert m1.take(100) + m1.take(100) == m2.take(200)
    assert next(iter(m1)) == m2.take(1)[0]


def test_books_consistent_quotes_on_top_trades_at_touch(updates: list[MarketUpdate]) -> None:
    books = replay_books(updates)
    assert set(books) == set(BY_KEY)


def test_snapshot_first_then_periodically(updates: list[MarketUpdate]) -> None:
    for inst in INSTRUMENTS:
        books = [
            u
            for u in updates
            if u.symbol == inst.symbol and isinstance(u, BookSnapshot | BookDelta)
        ]
        assert isinstance(books[0], BookSnapshot)
        snapshots = [i for i, u in enumerate(books) if isinstance(u, BookSnapshot)]
        assert snapshots[:3] == [0, 240, 480]
        first = books[0]
        assert len(first.bids) == len(first.asks) == 20
        # Best first on both sides.
        assert [p for p, _ in first.bids] == sorted((p for p, _ in first.bids), reverse=True)
        assert [p for p, _ in first.asks] == sorted(p for p, _ in first.asks)


def test_book_is_thicker_deeper_than_at_the_touch(updates: list[MarketUpdate]) -> None:
    snapshots = [u for u in updates if isinstance(u, BookSnapshot)]
    touch = sum(s.bids[0][1] / s.bids[-1][1] for s in snapshots) / len(snapshots)
    assert touch < Decimal("0.5")


def test_every_update_names_its_instrument_and_is_decimal(updates: list[MarketUpdate]) -> None:
    for u in updates:
        assert (u.venue, u.symbol) in BY_KEY
        assert u.ts.tzinfo is not None and u.ts.utcoffset() == timedelta(0)
        if isinstance(u, Quote):
            values = [u.bid, u.bid_size, u.ask, u.ask_size]
        elif isinstance(u, TradePrint):
            values = [u.price, u.qty]
        elif isinstance(u, MarkPrice):
            values = [u.price]
        elif isinstance(u, FundingRate):
            values = [u.rate]
        else:
            values = [x for level in (*u.bids, *u.asks) for x in level]
        assert all(type(v) is Decimal for v in values)


def test_timestamps_non_decreasing_and_stepped(updates: list[MarketUpdate]) -> None:
    stamps = [u.ts for u in updates]
    assert stamps == sorted(stamps)
    assert stamps[0] == START
    assert set(b - a for a, b in pairwise(stamps)) == {
        timedelta(0),
        timedelta(milliseconds=250),
    }


def test_trades_happen_on_both_sides(updates: list[MarketUpdate]) -> None:
    trades = Counter(u.aggressor for u in updates if isinstance(u, TradePrint))
    assert trades[Side.BUY] > 50 and trades[Side.SELL] > 50


def test_mark_price_about_once_a_second_on_tick(updates: list[MarketUpdate]) -> None:
    quotes = [u for u in updates if isinstance(u, Quote) and u.symbol == "BTC-PERP"]
    marks = [u for u in updates if isinstance(u, MarkPrice) and u.symbol == "BTC-PERP"]
    seconds = (quotes[-1].ts - quotes[0].ts).total_seconds()
    assert abs(len(marks) - seconds) <= 2
    assert all(BTC.price_on_tick(m.price) for m in marks)
    # Smoothed mid: never far from the market.
    for m in marks:
        q = next(q for q in quotes if q.ts == m.ts)
        assert abs(m.price - (q.bid + q.ask) / 2) < q.bid * Decimal("0.002")


def test_funding_only_for_perps_about_once_a_minute_on_the_8h_grid(
    updates: list[MarketUpdate],
) -> None:
    funding = [u for u in updates if isinstance(u, FundingRate)]
    per_symbol = Counter(u.symbol for u in funding)
    assert set(per_symbol) == {"BTC-PERP", "XRP-PERP"}
    minutes = (updates[-1].ts - updates[0].ts) / timedelta(minutes=1)
    assert all(abs(n - minutes) <= 1 for n in per_symbol.values())
    for u in funding:
        assert u.funding_at > u.ts
        assert u.funding_at - u.ts <= timedelta(hours=8)
        assert u.funding_at.hour in (0, 8, 16)
        assert (u.funding_at.minute, u.funding_at.second, u.funding_at.microsecond) == (0, 0, 0)
        assert abs(u.rate) <= Decimal("0.0075")  # venues' caps
        assert u.rate == u.rate.quantize(Decimal("0.000001"))
    assert {u.funding_at for u in funding} == {
        datetime(2024, 3, 1, 8, tzinfo=UTC),
        datetime(2024, 3, 1, 16, tzinfo=UTC),
    }


def test_default_initial_prices() -> None:
    assert default_initial_price("BTC-PERP") == 60000
    assert default_initial_price("eth-usd") == 3000
    assert default_initial_price("SOL-PERP") == 150
    assert default_initial_price("XRP-PERP") == Decimal("0.6")
    assert default_initial_price("DOGE-PERP") == 100
    first = {u.symbol: u for u in reversed(market().take(20)) if isinstance(u, Quote)}
    assert abs(first["BTC-PERP"].bid - 60000) < 100
    assert abs(first["XRP-PERP"].bid - Decimal("0.6")) < Decimal("0.01")
    assert abs(first["ETH-USD"].bid - 3000) < 10


def test_initial_prices_override_and_get_rounded_to_tick() -> None:
    m = market(initial_prices={"ETH-USD": Decimal("1234.567")})
    quote = next(u for u in m.take(20) if isinstance(u, Quote) and u.symbol == "ETH-USD")
    assert abs(quote.bid - Decimal("1234.567")) < 2
    assert ETH_SPOT.price_on_tick(quote.bid)


def test_naive_start_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        SyntheticMarket([BTC], start=datetime(2024, 1, 1))


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (datetime(2024, 1, 1, 0, 0, tzinfo=UTC), datetime(2024, 1, 1, 8, tzinfo=UTC)),
        (datetime(2024, 1, 1, 7, 59, 59, tzinfo=UTC), datetime(2024, 1, 1, 8, tzinfo=UTC)),
        (datetime(2024, 1, 1, 8, 0, tzinfo=UTC), datetime(2024, 1, 1, 16, tzinfo=UTC)),
        (datetime(2024, 1, 1, 23, 59, tzinfo=UTC), datetime(2024, 1, 2, 0, tzinfo=UTC)),
    ],
)
def test_next_funding_at_8h(ts: datetime, expected: datetime) -> None:
    assert next_funding_at(ts, timedelta(hours=8)) == expected


def test_next_funding_at_hourly() -> None:
    ts = datetime(2024, 1, 1, 13, 20, tzinfo=UTC)
    assert next_funding_at(ts, timedelta(hours=1)) == datetime(2024, 1, 1, 14, tzinfo=UTC)


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    levels=st.integers(1, 8),
    volatility=st.sampled_from([0.1, 1.0, 20.0]),
    trade_probability=st.sampled_from([0.0, 0.5, 1.0]),
    snapshot_every=st.integers(1, 50),
)
def test_books_stay_consistent_for_any_parameters(
    seed: int, levels: int, volatility: float, trade_probability: float, snapshot_every: int
) -> None:
    m = SyntheticMarket(
        INSTRUMENTS,
        seed=seed,
        start=START,
        levels=levels,
        volatility_bps=volatility,
        trade_probability=trade_probability,
        snapshot_every=snapshot_every,
    )
    replay_books(m.take(1500))


def test_small_prices_never_go_non_positive() -> None:
    cheap = SyntheticMarket(
        [XRP], start=START, initial_prices={"XRP-PERP": Decimal("0.0005")}, volatility_bps=500
    )
    replay_books(cheap.take(2000))


# --- quote_ticks -----------------------------------------------------------


def ticks(n: int, seed: int = 1) -> list[Quote]:
    return quote_ticks(
        n,
        venue="paper-binance",
        symbol="BTC-PERP",
        tick=Decimal("0.1"),
        start_price=Decimal(60000),
        size_step=Decimal("0.001"),
        seed=seed,
        start=START,
    )


def test_quote_ticks_shape() -> None:
    quotes = ticks(20_000)
    assert len(quotes) == 20_000
    assert quotes[0].ts == START
    assert all(b.ts - a.ts == timedelta(milliseconds=10) for a, b in pairwise(quotes))
    spreads = Counter((q.ask - q.bid) / BTC.tick_size for q in quotes)
    assert set(spreads) == {1, 2, 3}
    for q in quotes:
        assert BTC.price_on_tick(q.bid) and BTC.price_on_tick(q.ask)
        assert BTC.qty_on_step(q.bid_size) and q.bid_size > 0
        assert BTC.qty_on_step(q.ask_size) and q.ask_size > 0
        assert (q.venue, q.symbol) == ("paper-binance", "BTC-PERP")
    assert abs(quotes[0].bid - 60000) <= 1
    # It walks: prices are not stuck.
    assert len({q.bid for q in quotes}) > 20


def test_quote_ticks_deterministic() -> None:
    assert ticks(1000) == ticks(1000)
    assert ticks(1000) != ticks(1000, seed=2)
    assert ticks(0) == []


def test_venues_share_a_fair_price_and_their_funding_rates_diverge_persistently() -> None:
    """What the funding-rate arbitrage needs of the demo market: one symbol's mids on
    two venues a few bps apart (not a random walk each), and funding rates that differ
    between the venues for long stretches rather than minute to minute."""
    from app.defaults import demo_instruments

    venues = ("paper-binance", "paper-bybit")
    instruments = [i for i in demo_instruments(venues) if i.symbol == "BTC-PERP"]
    feed = SyntheticMarket(instruments, start=START, step=timedelta(seconds=1), books=False,
                           levels=2)
    mids: dict[str, Decimal] = {}
    gaps, rates = [], {v: [] for v in venues}
    for u in feed.take(4 * 3 * 3600):  # 3 hours
        if isinstance(u, Quote):
            mids[u.venue] = (u.bid + u.ask) / 2
            if len(mids) == 2:
                a, b = mids.values()
                gaps.append(abs(a - b) / a * 10_000)
        elif isinstance(u, FundingRate):
            rates[u.venue].append(u.rate)
    assert max(gaps) < 25 and sorted(gaps)[len(gaps) // 2] < 5  # bps
    deltas = [b - a for a, b in zip(rates[venues[0]], rates[venues[1]], strict=True)]
    assert len(deltas) >= 100
    # Minute to minute the delta moves little against its size: persistent, not noise.
    steps = [abs(y - x) for x, y in pairwise(deltas)]
    assert sum(steps) / len(steps) < sum(abs(d) for d in deltas) / len(deltas) / 3
