"""An invalid or stale book: market orders and triggered stop-markets are refused with
BOOK_NOT_READY, limit orders still rest, and the next snapshot (L1: quote) restores it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from app.domain.commands import Deposit, SubmitOrder
from app.domain.events import OrderAccepted, OrderFilled, OrderRejected, OrderSubmitted
from app.domain.instruments import Instrument, InstrumentKind
from app.domain.market import (
    BookDelta,
    BookInvalidated,
    BookSnapshot,
    MarkPrice,
    Quote,
    TradePrint,
)
from app.domain.orders import Order, OrderSpec, OrderStatus, OrderType, Side, TriggerSource
from app.domain.rejections import RejectCode
from app.engine.engine import AccountSetup, Engine, EngineConfig
from app.venues.base import Accepted, Canceled, Filled, Rejected, Triggered
from app.venues.paper.book import Book
from app.venues.paper.venue import PaperVenue, PaperVenueConfig

T0 = datetime(2024, 1, 1, tzinfo=UTC)
VENUE = "paper"
SYMBOL = "BTC-PERP"
CLIENT = "alice"
MAX_AGE = timedelta(seconds=30)


def instrument() -> Instrument:
    return Instrument(SYMBOL, VENUE, InstrumentKind.PERP, "BTC", "USDT", D("0.5"), D("0.001"),
                      D("0.001"), D(0))


def make_venue(**config) -> PaperVenue:
    venue = PaperVenue(VENUE, PaperVenueConfig(**config))
    venue.add_instrument(instrument())
    return venue


_ids = iter(range(1, 1_000_000))


def order(side: Side, qty: str, type_: OrderType = OrderType.MARKET, price: str | None = None,
          trigger: str | None = None) -> Order:
    oid = next(_ids)
    spec = OrderSpec(CLIENT, VENUE, SYMBOL, side, type_, D(qty),
                     price=None if price is None else D(price),
                     trigger_price=None if trigger is None else D(trigger),
                     trigger_source=TriggerSource.LAST)
    return Order(oid, spec, f"c{oid}", T0)


def levels(*raw: tuple[str, str]) -> tuple[tuple[D, D], ...]:
    return tuple((D(p), D(s)) for p, s in raw)


def snapshot(at: datetime = T0) -> BookSnapshot:
    return BookSnapshot(VENUE, SYMBOL, levels(("100", "1"), ("99.5", "2")),
                        levels(("100.5", "1"), ("101", "2")), at)


def invalidated(at: datetime = T0) -> BookInvalidated:
    return BookInvalidated(VENUE, SYMBOL, "gap: u=7 after u=5", at)


def quote(at: datetime = T0) -> Quote:
    return Quote(VENUE, SYMBOL, D("100"), D("1"), D("100.5"), D("1"), at)


def last(price: str, at: datetime = T0) -> TradePrint:
    return TradePrint(VENUE, SYMBOL, D(price), D("0.001"), Side.BUY, at)


def codes(reports) -> list[str]:
    return [r.code for r in reports if isinstance(r, Rejected)]


# ---- the book's own flag ----------------------------------------------------------------


def test_a_book_is_invalid_from_the_gap_until_the_next_snapshot() -> None:
    book = Book(D("0.5"))
    book.apply_snapshot(levels(("100", "1")), levels(("100.5", "1")), T0)
    assert book.valid and book.not_ready(T0, MAX_AGE) is None
    book.invalidate("gap: u=7 after u=5")
    assert not book.valid
    assert book.not_ready(T0, MAX_AGE) == "invalid (gap: u=7 after u=5)"
    # Deltas would patch a book that is already wrong: ignored, and no fresher either.
    book.apply_delta(levels(("100", "9")), (), T0 + timedelta(seconds=1))
    assert book.size_at(Side.BUY, D("100")) == 1 and book.updated_at == T0
    book.apply_snapshot(levels(("100", "3")), levels(("100.5", "1")), T0 + timedelta(seconds=2))
    assert book.valid and book.size_at(Side.BUY, D("100")) == 3


def test_a_book_is_stale_only_after_more_than_the_max_age() -> None:
    book = Book(D("0.5"))
    assert book.not_ready(T0 + timedelta(days=1), MAX_AGE) is None  # never fed: not stale
    book.set_quote(D("100"), D("1"), D("100.5"), D("1"), T0)
    assert book.not_ready(T0 + MAX_AGE, MAX_AGE) is None
    assert book.not_ready(T0 + MAX_AGE + timedelta(microseconds=1), MAX_AGE) is not None
    why = book.not_ready(T0 + MAX_AGE + timedelta(milliseconds=1), MAX_AGE)
    assert why == "stale (last update 30.001 s ago, limit 30 s)"
    assert book.not_ready(T0 + timedelta(days=1), None) is None  # no limit configured


def test_an_l2_book_ignores_quotes_so_a_quote_neither_refreshes_nor_restores_it() -> None:
    book = Book(D("0.5"))
    book.apply_snapshot(levels(("100", "1")), levels(("100.5", "1")), T0)
    book.invalidate("gap")
    book.set_quote(D("100"), D("1"), D("100.5"), D("1"), T0 + timedelta(seconds=1))
    assert not book.valid and book.updated_at == T0


# ---- market orders on an invalid book -----------------------------------------------------


def test_market_order_on_an_invalid_book_is_rejected_book_not_ready() -> None:
    venue = make_venue()
    venue.on_market(snapshot(), T0)
    assert venue.on_market(invalidated(), T0) == []
    reports = venue.submit(order(Side.BUY, "0.5"), T0)
    assert [type(r) for r in reports] == [Rejected]
    assert reports[0].code == RejectCode.BOOK_NOT_READY
    assert reports[0].message == ("the BTC-PERP order book is invalid "
                                  "(gap: u=7 after u=5)")


def test_limit_orders_still_rest_on_an_invalid_book_and_market_orders_resume_on_snapshot(
) -> None:
    venue = make_venue()
    venue.on_market(snapshot(), T0)
    venue.on_market(invalidated(), T0)
    resting = order(Side.BUY, "1", OrderType.LIMIT, "99")
    assert [type(r) for r in venue.submit(resting, T0)] == [Accepted]
    assert venue.working(resting.order_id) is not None
    # A delta while invalid changes nothing, so nothing crosses our bid.
    venue.on_market(BookDelta(VENUE, SYMBOL, (), levels(("98.5", "5")), T0), T0)
    assert venue.working(resting.order_id).remaining == 1

    later = T0 + timedelta(seconds=1)
    venue.on_market(snapshot(later), later)
    reports = venue.submit(order(Side.BUY, "0.5"), later)
    assert [type(r) for r in reports] == [Accepted, Filled]
    assert (reports[1].qty, reports[1].price) == (D("0.5"), D("100.5"))


def test_triggered_stop_market_on_an_invalid_book_is_canceled_book_not_ready() -> None:
    venue = make_venue()
    venue.on_market(snapshot(), T0)
    stop = order(Side.BUY, "0.5", OrderType.STOP, trigger="101")
    assert [type(r) for r in venue.submit(stop, T0)] == [Accepted]
    venue.on_market(invalidated(), T0)
    reports = venue.on_market(last("101"), T0)
    assert [type(r) for r in reports] == [Triggered, Canceled]
    assert reports[-1].reason.startswith(f"{RejectCode.BOOK_NOT_READY}: the BTC-PERP order book "
                                         "is invalid")
    assert venue.working(stop.order_id) is None


def test_an_l1_book_is_restored_by_the_next_quote() -> None:
    venue = make_venue()
    venue.on_market(quote(), T0)
    venue.on_market(invalidated(), T0)
    assert codes(venue.submit(order(Side.SELL, "0.5"), T0)) == [RejectCode.BOOK_NOT_READY]
    venue.on_market(quote(), T0)
    reports = venue.submit(order(Side.SELL, "0.5"), T0)
    assert [type(r) for r in reports] == [Accepted, Filled]


def test_an_invalidation_for_an_unknown_symbol_is_ignored() -> None:
    venue = make_venue()
    assert venue.on_market(BookInvalidated(VENUE, "ETH-PERP", "gap", T0), T0) == []


# ---- market orders on a stale book -----------------------------------------------------


def test_market_order_on_a_stale_book_is_rejected_and_a_limit_still_rests() -> None:
    venue = make_venue()
    venue.on_market(snapshot(), T0)
    fresh = T0 + MAX_AGE
    stale = fresh + timedelta(milliseconds=1)
    assert [type(r) for r in venue.submit(order(Side.BUY, "0.1"), fresh)] == [Accepted, Filled]
    reports = venue.submit(order(Side.BUY, "0.1"), stale)
    assert codes(reports) == [RejectCode.BOOK_NOT_READY]
    assert "stale (last update 30.001 s ago, limit 30 s)" in reports[0].message
    resting = order(Side.SELL, "1", OrderType.LIMIT, "102")
    assert [type(r) for r in venue.submit(resting, stale)] == [Accepted]
    assert venue.working(resting.order_id) is not None
    # Trades and marks say nothing about the book: still stale. A snapshot refreshes it.
    venue.on_market(last("100.5", stale), stale)
    venue.on_market(MarkPrice(VENUE, SYMBOL, D("100.25"), stale), stale)
    assert codes(venue.submit(order(Side.BUY, "0.1"), stale)) == [RejectCode.BOOK_NOT_READY]
    venue.on_market(snapshot(stale), stale)
    assert [type(r) for r in venue.submit(order(Side.BUY, "0.1"), stale)] == [Accepted, Filled]


def test_triggered_stop_market_on_a_stale_book_is_canceled_book_not_ready() -> None:
    venue = make_venue()
    venue.on_market(quote(), T0)
    stop = order(Side.SELL, "0.5", OrderType.STOP, trigger="99")
    venue.submit(stop, T0)
    later = T0 + timedelta(minutes=5)
    reports = venue.on_market(last("99", later), later)
    assert [type(r) for r in reports] == [Triggered, Canceled]
    assert reports[-1].reason.startswith(f"{RejectCode.BOOK_NOT_READY}: the BTC-PERP order book "
                                         "is stale")


def test_deltas_keep_a_book_fresh() -> None:
    venue = make_venue()
    venue.on_market(snapshot(), T0)
    for seconds in (20, 40, 60):
        at = T0 + timedelta(seconds=seconds)
        venue.on_market(BookDelta(VENUE, SYMBOL, levels(("99", "1")), (), at), at)
    at = T0 + timedelta(seconds=89)
    assert [type(r) for r in venue.submit(order(Side.BUY, "0.1"), at)] == [Accepted, Filled]


def test_max_book_age_none_never_goes_stale() -> None:
    venue = make_venue(max_book_age=None)
    venue.on_market(snapshot(), T0)
    reports = venue.submit(order(Side.BUY, "0.1"), T0 + timedelta(days=3))
    assert [type(r) for r in reports] == [Accepted, Filled]


def test_no_book_at_all_is_still_no_market_data() -> None:
    venue = make_venue()
    assert codes(venue.submit(order(Side.BUY, "0.1"), T0)) == [RejectCode.NO_MARKET_DATA]


# ---- through the engine ---------------------------------------------------------------


@pytest.fixture
def engine() -> Engine:
    venue = make_venue()
    config = EngineConfig(instruments=[instrument()],
                          accounts=[AccountSetup(CLIENT, VENUE, D(5))], limits={})
    engine = Engine(config, {VENUE: venue})
    engine.handle(Deposit(CLIENT, VENUE, D(100_000)), T0)
    return engine


def test_the_engine_passes_book_invalidated_to_the_venue_and_records_the_rejection(
        engine: Engine) -> None:
    engine.on_market(snapshot(), T0)
    assert engine.on_market(invalidated(), T0) == []
    events = engine.handle(SubmitOrder(OrderSpec(CLIENT, VENUE, SYMBOL, Side.BUY,
                                                 OrderType.MARKET, D("0.1"))), T0)
    assert [type(e) for e in events] == [OrderSubmitted, OrderRejected]
    assert events[-1].code == RejectCode.BOOK_NOT_READY
    (order_,) = [o for o in engine.state.orders.values()]
    assert order_.status is OrderStatus.REJECTED

    events = engine.handle(SubmitOrder(OrderSpec(CLIENT, VENUE, SYMBOL, Side.BUY,
                                                 OrderType.LIMIT, D("0.1"), price=D("99"))), T0)
    assert [type(e) for e in events] == [OrderSubmitted, OrderAccepted]

    engine.on_market(snapshot(T0 + timedelta(seconds=1)), T0 + timedelta(seconds=1))
    events = engine.handle(SubmitOrder(OrderSpec(CLIENT, VENUE, SYMBOL, Side.BUY,
                                                 OrderType.MARKET, D("0.1"))),
                           T0 + timedelta(seconds=1))
    assert OrderFilled in [type(e) for e in events]
