"""Stops (last vs mark triggers, stop-market and stop-limit) and GTD expiry at the paper venue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from app.domain.commands import Deposit, SubmitOrder
from app.domain.events import OrderAccepted, OrderExpired, OrderSubmitted
from app.domain.instruments import Instrument, InstrumentKind
from app.domain.market import BookSnapshot, MarkPrice, TradePrint
from app.domain.orders import (
    Liquidity,
    Order,
    OrderSpec,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    TriggerSource,
)
from app.domain.rejections import RejectCode
from app.engine.engine import AccountSetup, Engine, EngineConfig
from app.venues.base import Accepted, Canceled, Expired, Filled, Triggered
from app.venues.paper.venue import PaperVenue

T0 = datetime(2024, 1, 1, tzinfo=UTC)
VENUE = "paper"
SYMBOL = "BTC-PERP"
CLIENT = "alice"
US = timedelta(microseconds=1)


def instrument() -> Instrument:
    return Instrument(SYMBOL, VENUE, InstrumentKind.PERP, "BTC", "USDT", D("0.5"), D("0.001"),
                      D("0.001"), D(0))


def make_venue() -> PaperVenue:
    venue = PaperVenue(VENUE)
    venue.add_instrument(instrument())
    return venue


_ids = iter(range(1, 1_000_000))


def order(side: Side, qty, type_: OrderType, *, price=None, trigger=None,
          source: TriggerSource = TriggerSource.LAST, tif: TimeInForce = TimeInForce.GTC,
          expire_at: datetime | None = None) -> Order:
    oid = next(_ids)
    spec = OrderSpec(CLIENT, VENUE, SYMBOL, side, type_, D(qty),
                     price=None if price is None else D(price),
                     trigger_price=None if trigger is None else D(trigger),
                     trigger_source=source, time_in_force=tif, expire_at=expire_at)
    return Order(oid, spec, f"c{oid}", T0)


def stop(side: Side, qty, trigger, source: TriggerSource = TriggerSource.LAST) -> Order:
    return order(side, qty, OrderType.STOP, trigger=trigger, source=source)


def stop_limit(side: Side, qty, trigger, price, source: TriggerSource = TriggerSource.LAST,
               **kw) -> Order:
    return order(side, qty, OrderType.STOP_LIMIT, price=price, trigger=trigger, source=source,
                 **kw)


def _levels(raw) -> tuple[tuple[D, D], ...]:
    return tuple((D(p), D(s)) for p, s in raw)


BIDS = [("100", "1"), ("99.5", "2"), ("99", "3")]
ASKS = [("100.5", "1"), ("101", "2"), ("101.5", "3")]


def snapshot(bids=BIDS, asks=ASKS) -> BookSnapshot:
    return BookSnapshot(VENUE, SYMBOL, _levels(bids), _levels(asks), T0)


def last(price, aggressor: Side = Side.BUY, qty="0.001") -> TradePrint:
    return TradePrint(VENUE, SYMBOL, D(price), D(qty), aggressor, T0)


def mark(price) -> MarkPrice:
    return MarkPrice(VENUE, SYMBOL, D(price), T0)


def l2_venue() -> PaperVenue:
    """Book 100 / 100.5; last trade 100.25 and mark 100.25, so neither source is unset."""
    venue = make_venue()
    venue.on_market(snapshot(), T0)
    venue.on_market(last("100.25"), T0)
    venue.on_market(mark("100.25"), T0)
    return venue


def fills(reports) -> list[tuple[D, D]]:
    return [(r.qty, r.price) for r in reports if isinstance(r, Filled)]


def triggered(reports) -> list[D]:
    return [r.price for r in reports if isinstance(r, Triggered)]


# ---- triggers ------------------------------------------------------------------------------


def test_a_stop_is_accepted_and_waits_without_trading():
    venue = l2_venue()
    o = stop(Side.BUY, "1", "102")
    reports = venue.submit(o, T0)
    assert [type(r) for r in reports] == [Accepted]
    assert venue.working(o.order_id).remaining == D(1)


def test_buy_stop_on_last_triggers_at_or_above_and_ignores_mark():
    venue = l2_venue()
    o = stop(Side.BUY, "1.5", "102")
    venue.submit(o, T0)
    assert venue.on_market(mark("105"), T0) == []  # mark moves do not trigger a last stop
    assert venue.on_market(last("101.5"), T0) == []
    reports = venue.on_market(last("102"), T0)  # at the trigger
    assert triggered(reports) == [D(102)]
    # then it is a market order: it walks the book as taker
    assert fills(reports) == [(D(1), D("100.5")), (D("0.5"), D(101))]
    assert all(r.liquidity is Liquidity.TAKER for r in reports if isinstance(r, Filled))
    assert venue.working(o.order_id) is None


def test_buy_stop_on_mark_triggers_at_or_above_and_ignores_last():
    venue = l2_venue()
    o = stop(Side.BUY, "1", "102", TriggerSource.MARK)
    venue.submit(o, T0)
    assert venue.on_market(last("105"), T0) == []  # last moves do not trigger a mark stop
    assert venue.on_market(mark("101.5"), T0) == []
    reports = venue.on_market(mark("102.5"), T0)  # above the trigger
    assert triggered(reports) == [D("102.5")]
    assert fills(reports) == [(D(1), D("100.5"))]


def test_sell_stop_on_last_triggers_at_or_below_and_ignores_mark():
    venue = l2_venue()
    o = stop(Side.SELL, "2", "99")
    venue.submit(o, T0)
    assert venue.on_market(mark("95"), T0) == []
    assert venue.on_market(last("99.5", Side.SELL), T0) == []
    assert venue.on_market(last("105"), T0) == []  # a rise does not trigger a sell stop
    reports = venue.on_market(last("98.5", Side.SELL), T0)
    assert triggered(reports) == [D("98.5")]
    assert fills(reports) == [(D(1), D(100)), (D(1), D("99.5"))]


def test_sell_stop_on_mark_triggers_at_the_trigger_and_ignores_last():
    venue = l2_venue()
    o = stop(Side.SELL, "1", "99", TriggerSource.MARK)
    venue.submit(o, T0)
    assert venue.on_market(last("90", Side.SELL), T0) == []
    assert venue.on_market(mark("99.5"), T0) == []
    reports = venue.on_market(mark("99"), T0)
    assert triggered(reports) == [D(99)]
    assert fills(reports) == [(D(1), D(100))]


def test_book_updates_do_not_trigger_when_last_and_mark_are_known():
    venue = l2_venue()
    venue.submit(stop(Side.BUY, "1", "102"), T0)
    venue.submit(stop(Side.BUY, "1", "102", TriggerSource.MARK), T0)
    reports = venue.on_market(snapshot(bids=[("110", "1")], asks=[("110.5", "1")]), T0)
    assert triggered(reports) == []


def test_a_stop_already_through_its_trigger_triggers_on_arrival():
    venue = l2_venue()
    reports = venue.submit(stop(Side.BUY, "1", "100"), T0)  # last 100.25 >= 100
    assert [type(r) for r in reports] == [Accepted, Triggered, Filled]
    assert triggered(reports) == [D("100.25")]


def test_triggered_stop_market_without_liquidity_is_canceled_no_market_data():
    venue = make_venue()
    o = stop(Side.BUY, "1", "100")
    assert [type(r) for r in venue.submit(o, T0)] == [Accepted]
    reports = venue.on_market(last("100"), T0)
    assert [type(r) for r in reports] == [Triggered, Canceled]
    assert reports[-1].reason.startswith(RejectCode.NO_MARKET_DATA)
    assert venue.working(o.order_id) is None


def test_triggered_stop_limit_takes_up_to_its_limit_and_rests_the_rest():
    venue = l2_venue()
    o = stop_limit(Side.BUY, "5", "102", "101")
    venue.submit(o, T0)
    reports = venue.on_market(last("102"), T0)
    assert triggered(reports) == [D(102)]
    assert fills(reports) == [(D(1), D("100.5")), (D(2), D(101))]
    assert not any(isinstance(r, Canceled) for r in reports)
    work = venue.working(o.order_id)
    assert work.remaining == D(2)
    # it now rests like a limit at 101: a print through 101 big enough fills it as maker
    reports = venue.on_market(last("100.5", Side.SELL, qty="2"), T0)
    assert [(r.qty, r.price, r.liquidity) for r in reports] == [(D(2), D(101), Liquidity.MAKER)]


def test_triggered_stop_limit_behaves_like_a_limit_crossing_or_queuing():
    venue = l2_venue()
    o = stop_limit(Side.SELL, "1", "99.5", "99.5", TriggerSource.MARK)
    venue.submit(o, T0)
    reports = venue.on_market(mark("99.5"), T0)
    # selling at 99.5 crosses the bids at 100 and 99.5: limit semantics, best price first
    assert triggered(reports) == [D("99.5")]
    assert fills(reports) == [(D(1), D(100))]
    assert venue.working(o.order_id) is None

    o = stop_limit(Side.SELL, "1", "99", "101.5")
    venue.submit(o, T0)
    reports = venue.on_market(last("99", Side.SELL), T0)
    assert triggered(reports) == [D(99)] and fills(reports) == []
    work = venue.working(o.order_id)
    assert work.remaining == D(1) and work.queue_ahead == D(3)  # behind the 3 shown at 101.5
    assert venue.on_market(last("101.5", Side.BUY, qty="3"), T0) == []
    assert fills(venue.on_market(last("101.5", Side.BUY, qty="0.5"), T0)) == [
        (D("0.5"), D("101.5"))]


# ---- GTD expiry ----------------------------------------------------------------------------


def test_gtd_expires_exactly_when_the_clock_reaches_expire_at():
    venue = l2_venue()
    expire_at = T0 + timedelta(seconds=10)
    o = order(Side.BUY, "1", OrderType.LIMIT, price="99", tif=TimeInForce.GTD,
              expire_at=expire_at)
    assert [type(r) for r in venue.submit(o, T0)] == [Accepted]
    assert venue.advance(expire_at - US) == []
    assert venue.working(o.order_id) is not None
    reports = venue.advance(expire_at)
    assert len(reports) == 1 and isinstance(reports[0], Expired)
    assert (reports[0].order_id, reports[0].at) == (o.order_id, expire_at)
    assert venue.working(o.order_id) is None
    assert venue.advance(expire_at + timedelta(hours=1)) == []  # once only


def test_gtd_is_reported_at_expire_at_even_when_the_clock_jumps_past_it():
    venue = l2_venue()
    expire_at = T0 + timedelta(seconds=10)
    o = order(Side.BUY, "1", OrderType.LIMIT, price="99", tif=TimeInForce.GTD,
              expire_at=expire_at)
    venue.submit(o, T0)
    reports = venue.advance(expire_at + timedelta(minutes=5))
    assert [(type(r), r.at) for r in reports] == [(Expired, expire_at)]


def test_market_data_at_expire_at_expires_the_order_before_it_can_fill():
    venue = l2_venue()
    expire_at = T0 + timedelta(seconds=10)
    early = order(Side.BUY, "1", OrderType.LIMIT, price="99", tif=TimeInForce.GTD,
                  expire_at=expire_at)
    venue.submit(early, T0)
    through = last("98.5", Side.SELL)
    reports = venue.on_market(through, expire_at)
    assert [type(r) for r in reports] == [Expired]


def test_gtd_fills_normally_before_expire_at_and_a_partial_remainder_expires():
    venue = l2_venue()
    expire_at = T0 + timedelta(seconds=10)
    o = order(Side.BUY, "4", OrderType.LIMIT, price="100", tif=TimeInForce.GTD,
              expire_at=expire_at)
    venue.submit(o, T0)  # behind 1 at 100
    reports = venue.on_market(last("100", Side.SELL, qty="2"), expire_at - US)
    assert fills(reports) == [(D(1), D(100))]
    reports = venue.advance(expire_at)
    assert [type(r) for r in reports] == [Expired]
    assert venue.working(o.order_id) is None


def test_gtc_never_expires():
    venue = l2_venue()
    o = order(Side.BUY, "1", OrderType.LIMIT, price="99")
    venue.submit(o, T0)
    assert venue.advance(T0 + timedelta(days=3650)) == []
    assert venue.working(o.order_id) is not None


def test_untriggered_gtd_stop_limit_expires_at_expire_at():
    """A GTD stop-limit that never triggered is still a live GTD order: it must expire."""
    venue = l2_venue()
    expire_at = T0 + timedelta(seconds=10)
    o = stop_limit(Side.BUY, "1", "110", "111", tif=TimeInForce.GTD, expire_at=expire_at)
    assert [type(r) for r in venue.submit(o, T0)] == [Accepted]
    assert venue.advance(expire_at - US) == []
    reports = venue.advance(expire_at)
    assert [(type(r), r.at) for r in reports] == [(Expired, expire_at)]
    # and a later trigger print finds nothing to trigger
    assert venue.on_market(last("112"), expire_at + US) == []


@pytest.mark.parametrize("step", [timedelta(seconds=9), timedelta(seconds=10)])
def test_engine_gtd_expiry_through_advance(step):
    venue = PaperVenue(VENUE)
    engine = Engine(EngineConfig([instrument()], [AccountSetup(CLIENT, VENUE)]),
                    {VENUE: venue})
    engine.handle(Deposit(CLIENT, VENUE, D(10_000)), T0)
    engine.on_market(snapshot(), T0)
    expire_at = T0 + timedelta(seconds=10)
    spec = OrderSpec(CLIENT, VENUE, SYMBOL, Side.BUY, OrderType.LIMIT, D(1), price=D(99),
                     time_in_force=TimeInForce.GTD, expire_at=expire_at)
    events = engine.handle(SubmitOrder(spec), T0)
    assert [type(e) for e in events] == [OrderSubmitted, OrderAccepted]
    oid = events[0].order_id
    events = engine.advance(T0 + step)
    if T0 + step < expire_at:
        assert events == []
        assert engine.state.orders[oid].status is OrderStatus.ACCEPTED
    else:
        assert events == [OrderExpired(oid, expire_at)]
        assert engine.state.orders[oid].status is OrderStatus.EXPIRED
