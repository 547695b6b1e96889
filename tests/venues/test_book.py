"""The paper venue's order book: L2 snapshots and deltas, L1 quotes with synthesized depth."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

from app.domain.instruments import Instrument, InstrumentKind
from app.domain.market import BookDelta, BookSnapshot, Quote
from app.domain.orders import Side
from app.venues.paper.book import Book
from app.venues.paper.venue import PaperVenue, PaperVenueConfig

T0 = datetime(2024, 1, 1, tzinfo=UTC)
VENUE = "paper"
SYMBOL = "BTC-PERP"


def l2_book(bids, asks, tick: str = "0.5") -> Book:
    book = Book(D(tick))
    book.apply_snapshot(_levels(bids), _levels(asks))
    return book


def _levels(raw) -> tuple[tuple[D, D], ...]:
    return tuple((D(p), D(s)) for p, s in raw)


def _venue(config: PaperVenueConfig | None = None) -> PaperVenue:
    venue = PaperVenue(VENUE, config)
    venue.add_instrument(Instrument(SYMBOL, VENUE, InstrumentKind.PERP, "BTC", "USDT",
                                    D("0.5"), D("0.001"), D("0.001"), D(0)))
    return venue


def snapshot(bids, asks) -> BookSnapshot:
    return BookSnapshot(VENUE, SYMBOL, _levels(bids), _levels(asks), T0)


def delta(bids=(), asks=()) -> BookDelta:
    return BookDelta(VENUE, SYMBOL, _levels(bids), _levels(asks), T0)


def quote(bid, bid_size, ask, ask_size) -> Quote:
    return Quote(VENUE, SYMBOL, D(bid), D(bid_size), D(ask), D(ask_size), T0)


# ---- L2 --------------------------------------------------------------------


def test_snapshot_orders_levels_best_first_and_sets_touch():
    book = l2_book(bids=[("99", "2"), ("100", "1"), ("98", "3")],
                   asks=[("102", "4"), ("101", "1.5")])
    assert book.is_l2
    assert (book.bid, book.bid_size) == (D(100), D(1))
    assert (book.ask, book.ask_size) == (D(101), D("1.5"))
    assert book.mid == D("100.5")
    assert list(book.levels(Side.BUY)) == [(D(100), D(1)), (D(99), D(2)), (D(98), D(3))]
    assert list(book.levels(Side.SELL)) == [(D(101), D("1.5")), (D(102), D(4))]
    assert not book.crossed


def test_snapshot_drops_zero_sized_levels_and_replaces_the_previous_book():
    book = l2_book(bids=[("100", "1"), ("99.5", "0")], asks=[("101", "2"), ("101.5", "0")])
    assert list(book.levels(Side.BUY)) == [(D(100), D(1))]
    assert list(book.levels(Side.SELL)) == [(D(101), D(2))]
    book.apply_snapshot(_levels([("90", "7")]), _levels([("95", "8")]))
    assert list(book.levels(Side.BUY)) == [(D(90), D(7))]
    assert list(book.levels(Side.SELL)) == [(D(95), D(8))]
    assert (book.bid, book.bid_size, book.ask, book.ask_size) == (D(90), D(7), D(95), D(8))


def test_delta_updates_inserts_and_deletes_levels_and_refreshes_touch():
    book = l2_book(bids=[("100", "1"), ("99.5", "2")], asks=[("101", "3"), ("101.5", "4")])
    book.apply_delta(_levels([("100", "0"), ("99", "6")]), _levels([("100.5", "5")]))
    assert list(book.levels(Side.BUY)) == [(D("99.5"), D(2)), (D(99), D(6))]
    assert list(book.levels(Side.SELL)) == [(D("100.5"), D(5)), (D(101), D(3)),
                                            (D("101.5"), D(4))]
    assert (book.bid, book.bid_size) == (D("99.5"), D(2))
    assert (book.ask, book.ask_size) == (D("100.5"), D(5))
    # A new absolute size at the touch changes the touch size, not the price.
    book.apply_delta(_levels([("99.5", "0.25")]), ())
    assert (book.bid, book.bid_size) == (D("99.5"), D("0.25"))
    # Deleting a level that is not there changes nothing.
    book.apply_delta(_levels([("42", "0")]), ())
    assert [p for p, _ in book.levels(Side.BUY)] == [D("99.5"), D(99)]


def test_delta_emptying_a_side_clears_its_touch():
    book = l2_book(bids=[("100", "1")], asks=[("101", "3")])
    book.apply_delta((), _levels([("101", "0")]))
    assert book.ask is None and book.ask_size == 0
    assert book.mid is None
    assert not book.crossed
    assert book.has_liquidity  # the bid side is still there
    book.apply_delta(_levels([("100", "0")]), ())
    assert book.bid is None and not book.has_liquidity


def test_crossed_property():
    book = l2_book(bids=[("100", "1")], asks=[("101", "1")])
    assert not book.crossed
    book.apply_delta(_levels([("101", "2")]), ())  # bid == ask
    assert book.crossed
    book.apply_delta(_levels([("101", "0")]), ())
    assert not book.crossed
    book.apply_delta(_levels([("102", "1")]), ())  # bid above ask
    assert book.crossed
    assert Book(D("0.5")).crossed is False  # empty book


def test_deltas_before_a_snapshot_are_ignored():
    book = Book(D("0.5"))
    book.apply_delta(_levels([("100", "1")]), _levels([("101", "1")]))
    assert not book.is_l2
    assert book.bid is None and book.ask is None
    assert list(book.levels(Side.BUY)) == []
    book.apply_snapshot(_levels([("99", "1")]), _levels([("100", "1")]))
    book.apply_delta(_levels([("99.5", "2")]), ())
    assert (book.bid, book.bid_size) == (D("99.5"), D(2))


def test_venue_ignores_deltas_before_a_snapshot():
    venue = _venue()
    assert venue.on_market(delta(bids=[("100", "1")], asks=[("101", "1")]), T0) == []
    book = venue.book(SYMBOL)
    assert book.bid is None and book.ask is None and not book.is_l2
    venue.on_market(snapshot([("99", "1")], [("100", "1")]), T0)
    venue.on_market(delta(bids=[("99.5", "3")]), T0)
    assert (book.bid, book.bid_size, book.ask) == (D("99.5"), D(3), D(100))


def test_size_at_in_l2_mode_is_the_exact_level():
    book = l2_book(bids=[("100", "1"), ("99", "2")], asks=[("101", "3")])
    assert book.size_at(Side.BUY, D(100)) == D(1)
    assert book.size_at(Side.BUY, D(99)) == D(2)
    assert book.size_at(Side.BUY, D("99.5")) == 0  # a gap: no synthesis in L2
    assert book.size_at(Side.SELL, D(101)) == D(3)
    assert book.size_at(Side.SELL, D(100)) == 0
    book.apply_delta(_levels([("99", "0")]), ())
    assert book.size_at(Side.BUY, D(99)) == 0


# ---- L1 ----------------------------------------------------------------------


def test_quote_synthesizes_twenty_levels_one_tick_apart():
    book = Book(D("0.5"))
    book.set_quote(D(100), D(2), D("100.5"), D(4))
    assert not book.is_l2
    bids = list(book.levels(Side.BUY))
    asks = list(book.levels(Side.SELL))
    # level k: touch size × (1 + 0.5k), k ticks away from the touch
    assert bids == [(D(100) - D("0.5") * k, D(2) * (1 + D("0.5") * k)) for k in range(20)]
    assert asks == [(D("100.5") + D("0.5") * k, D(4) * (1 + D("0.5") * k)) for k in range(20)]
    assert bids[:4] == [(D(100), D(2)), (D("99.5"), D(3)), (D(99), D(4)), (D("98.5"), D(5))]
    assert asks[:3] == [(D("100.5"), D(4)), (D(101), D(6)), (D("101.5"), D(8))]
    assert bids[-1] == (D("90.5"), D(21))
    assert asks[-1] == (D(110), D(42))
    assert (book.bid, book.bid_size, book.ask, book.ask_size) == (D(100), D(2), D("100.5"), D(4))


def test_synthesized_bids_stop_above_zero():
    book = Book(D("0.5"))
    book.set_quote(D(1), D(1), D("1.5"), D(1))
    assert list(book.levels(Side.BUY)) == [(D(1), D(1)), (D("0.5"), D("1.5"))]


def test_a_new_quote_replaces_the_l1_book():
    book = Book(D("0.1"))
    book.set_quote(D(100), D(2), D("100.1"), D(4))
    book.set_quote(D("99.5"), D(7), D("99.7"), D(1))
    assert (book.bid, book.bid_size, book.ask, book.ask_size) == (
        D("99.5"), D(7), D("99.7"), D(1))
    assert list(book.levels(Side.SELL))[:2] == [(D("99.7"), D(1)), (D("99.8"), D("1.5"))]
    assert book.mid == D("99.6")


def test_size_at_in_l1_mode_follows_the_synthesis_formula():
    book = Book(D("0.5"))
    book.set_quote(D(100), D(2), D("100.5"), D(4))
    assert book.size_at(Side.BUY, D(100)) == D(2)  # the touch
    assert book.size_at(Side.BUY, D("98.5")) == D(5)  # k = 3: 2 × 2.5
    assert book.size_at(Side.BUY, D("90.5")) == D(21)  # k = 19, the last level
    assert book.size_at(Side.BUY, D(90)) == 0  # k = 20: beyond the synthesized depth
    assert book.size_at(Side.BUY, D("99.75")) == 0  # off the tick grid
    assert book.size_at(Side.BUY, D("100.5")) == 0  # above the best bid
    assert book.size_at(Side.SELL, D("100.5")) == D(4)
    assert book.size_at(Side.SELL, D(102)) == D(10)  # k = 3: 4 × 2.5
    assert book.size_at(Side.SELL, D(100)) == 0  # below the best ask
    assert Book(D("0.5")).size_at(Side.BUY, D(100)) == 0  # no quote yet


def test_venue_config_controls_synthesized_depth_and_growth():
    venue = _venue(PaperVenueConfig(synthetic_depth=3, synthetic_growth=D(1)))
    venue.on_market(quote("100", "2", "100.5", "1"), T0)
    book = venue.book(SYMBOL)
    assert list(book.levels(Side.SELL)) == [(D("100.5"), D(1)), (D(101), D(2)),
                                            (D("101.5"), D(3))]
    assert book.size_at(Side.BUY, D(99)) == D(6)
    assert book.size_at(Side.BUY, D("98.5")) == 0


def test_quotes_are_ignored_once_l2_data_has_been_seen():
    book = l2_book(bids=[("100", "1")], asks=[("101", "2")])
    book.set_quote(D(50), D(9), D(60), D(9))
    assert (book.bid, book.bid_size, book.ask, book.ask_size) == (D(100), D(1), D(101), D(2))
    assert list(book.levels(Side.BUY)) == [(D(100), D(1))]  # no synthesized depth either


def test_venue_ignores_quotes_after_a_snapshot():
    venue = _venue()
    venue.on_market(quote("90", "5", "91", "5"), T0)
    book = venue.book(SYMBOL)
    assert not book.is_l2 and book.bid == D(90)
    venue.on_market(snapshot([("100", "1")], [("101", "2")]), T0)
    venue.on_market(quote("50", "9", "60", "9"), T0)
    assert book.is_l2
    assert (book.bid, book.ask) == (D(100), D(101))
    assert list(book.levels(Side.SELL)) == [(D(101), D(2))]
