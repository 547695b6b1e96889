"""Paper venue matching: book walking, consumed liquidity, limits, fees, TIF, post-only,
reduce-only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from itertools import pairwise

import pytest

from app.domain.commands import Deposit, SubmitOrder
from app.domain.events import OrderFilled
from app.domain.instruments import Instrument, InstrumentKind
from app.domain.market import BookDelta, BookSnapshot, Quote, TradePrint
from app.domain.orders import (
    Liquidity,
    Order,
    OrderSpec,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from app.domain.rejections import RejectCode
from app.engine.engine import AccountSetup, Engine, EngineConfig
from app.venues.base import Accepted, Canceled, Expired, Filled, Rejected
from app.venues.paper.venue import PaperVenue

T0 = datetime(2024, 1, 1, tzinfo=UTC)
VENUE = "paper"
SYMBOL = "BTC-PERP"
CLIENT = "alice"
MAKER = D("0.0002")
TAKER = D("0.0005")


def instrument(**kw) -> Instrument:
    return Instrument(SYMBOL, VENUE, InstrumentKind.PERP, "BTC", "USDT", D("0.5"), D("0.001"),
                      D("0.001"), D(0), **kw)


def make_venue(**kw) -> PaperVenue:
    venue = PaperVenue(VENUE)
    venue.add_instrument(instrument(**kw))
    return venue


_ids = iter(range(1, 1_000_000))


def order(side: Side, qty, type_: OrderType = OrderType.MARKET, price=None, *,
          tif: TimeInForce = TimeInForce.GTC, post_only: bool = False,
          reduce_only: bool = False) -> Order:
    oid = next(_ids)
    spec = OrderSpec(CLIENT, VENUE, SYMBOL, side, type_, D(qty),
                     price=None if price is None else D(price), time_in_force=tif,
                     post_only=post_only, reduce_only=reduce_only)
    return Order(oid, spec, f"c{oid}", T0)


def limit(side: Side, qty, price, **kw) -> Order:
    return order(side, qty, OrderType.LIMIT, price, **kw)


def _levels(raw) -> tuple[tuple[D, D], ...]:
    return tuple((D(p), D(s)) for p, s in raw)


def snapshot(bids, asks) -> BookSnapshot:
    return BookSnapshot(VENUE, SYMBOL, _levels(bids), _levels(asks), T0)


def delta(bids=(), asks=()) -> BookDelta:
    return BookDelta(VENUE, SYMBOL, _levels(bids), _levels(asks), T0)


def quote(bid, bid_size, ask, ask_size) -> Quote:
    return Quote(VENUE, SYMBOL, D(bid), D(bid_size), D(ask), D(ask_size), T0)


def trade(price, qty, aggressor: Side) -> TradePrint:
    return TradePrint(VENUE, SYMBOL, D(price), D(qty), aggressor, T0)


BIDS = [("100", "1"), ("99.5", "2"), ("99", "3")]
ASKS = [("100.5", "1"), ("101", "2"), ("101.5", "3")]


def l2_venue(**kw) -> PaperVenue:
    venue = make_venue(**kw)
    venue.on_market(snapshot(BIDS, ASKS), T0)
    return venue


def fills(reports) -> list[tuple[D, D]]:
    """(qty, price) of each fill, in order."""
    return [(r.qty, r.price) for r in reports if isinstance(r, Filled)]


def vwap(slices: list[tuple[D, D]]) -> D:
    return sum((q * p for q, p in slices), D(0)) / sum((q for q, _ in slices), D(0))


# ---- book walking ---------------------------------------------------------------


def test_market_buy_walks_levels_one_fill_per_level_at_vwap():
    venue = l2_venue()
    o = order(Side.BUY, "4.5")
    reports = venue.submit(o, T0)
    assert isinstance(reports[0], Accepted)
    assert fills(reports) == [(D(1), D("100.5")), (D(2), D(101)), (D("1.5"), D("101.5"))]
    assert all(r.liquidity is Liquidity.TAKER for r in reports if isinstance(r, Filled))
    assert not any(isinstance(r, Canceled) for r in reports)
    # avg = (100.5 + 202 + 152.25) / 4.5
    assert vwap(fills(reports)) == D("454.75") / D("4.5")
    assert venue.working(o.order_id) is None
    assert venue.positions[(CLIENT, SYMBOL)] == D("4.5")


def test_market_sell_walks_the_bids_downward():
    venue = l2_venue()
    reports = venue.submit(order(Side.SELL, "2.5"), T0)
    assert fills(reports) == [(D(1), D(100)), (D("1.5"), D("99.5"))]
    assert venue.positions[(CLIENT, SYMBOL)] == D("-2.5")


@pytest.mark.parametrize(("qty", "expected_avg"), [
    ("0.5", D("100.5")),
    ("1", D("100.5")),
    ("2", (D("100.5") + D(101)) / 2),
    ("3", (D("100.5") + 2 * D(101)) / 3),
    ("6", (D("100.5") + 2 * D(101) + 3 * D("101.5")) / 6),
])
def test_average_price_is_the_vwap_of_consumed_levels(qty, expected_avg):
    reports = l2_venue().submit(order(Side.BUY, qty), T0)
    assert vwap(fills(reports)) == expected_avg
    assert sum(q for q, _ in fills(reports)) == D(qty)


def test_slippage_grows_with_order_size_against_the_same_book():
    touch = D("100.5")
    slippages = []
    for qty in ("1", "2", "3", "4.5", "6"):
        reports = l2_venue().submit(order(Side.BUY, qty), T0)
        slippages.append(vwap(fills(reports)) - touch)
    assert slippages[0] == 0
    assert all(a < b for a, b in pairwise(slippages))
    assert slippages[1] == D("0.25")  # (100.5 + 101) / 2 - 100.5
    assert slippages[-1] == D(607) / 6 - touch  # (100.5 + 202 + 304.5) / 6 - 100.5 ≈ 0.667


def test_market_order_larger_than_the_book_fills_what_there_is_and_the_rest_expires():
    """As Binance reports it: the unfilled rest of a market order is EXPIRED (nobody
    canceled it)."""
    venue = l2_venue()
    o = order(Side.BUY, "10")
    reports = venue.submit(o, T0)
    assert sum(q for q, _ in fills(reports)) == D(6)
    assert isinstance(reports[-1], Expired)
    assert venue.working(o.order_id) is None


# ---- consumed liquidity ------------------------------------------------------------


def test_l2_consumed_liquidity_stays_consumed_until_the_market_moves_on():
    """The feed knows nothing of our trades: restating a level we emptied does not give
    it back; only the level shrinking (the market taking or canceling the same orders)
    or leaving the book does."""
    venue = l2_venue()
    assert fills(venue.submit(order(Side.BUY, "1"), T0)) == [(D(1), D("100.5"))]
    # 100.5 was eaten: the second order starts at 101
    assert fills(venue.submit(order(Side.BUY, "1"), T0)) == [(D(1), D(101))]
    # a delta at another level does not give back 100.5 (nor the 1 taken at 101)
    venue.on_market(delta(asks=[("102", "5")]), T0)
    # a delta restating 100.5 at the same size, or larger, does not either
    venue.on_market(delta(asks=[("100.5", "1")]), T0)
    venue.on_market(delta(asks=[("100.5", "1.5")]), T0)  # 0.5 joined behind what we took
    assert fills(venue.submit(order(Side.BUY, "1"), T0)) == [(D("0.5"), D("100.5")),
                                                            (D("0.5"), D(101))]
    # the level shrinking by 1.2 from 1.5 gives back 1.2 of the 1.5 we have taken there
    venue.on_market(delta(asks=[("100.5", "0.3")]), T0)
    assert fills(venue.submit(order(Side.BUY, "0.1"), T0)) == [(D("0.1"), D(101))]
    # the level leaving the book gives everything back; a new level is all free
    venue.on_market(delta(asks=[("100.5", "0")]), T0)
    venue.on_market(delta(asks=[("100.5", "2")]), T0)
    assert fills(venue.submit(order(Side.BUY, "2"), T0)) == [(D(2), D("100.5"))]


def test_l2_snapshot_restating_a_taken_level_does_not_give_it_back():
    venue = l2_venue()
    venue.submit(order(Side.BUY, "3"), T0)  # 1 @ 100.5, 2 @ 101
    venue.on_market(snapshot(BIDS, ASKS), T0)
    assert fills(venue.submit(order(Side.BUY, "1"), T0)) == [(D(1), D("101.5"))]
    # a snapshot without the levels gives them back
    venue.on_market(snapshot(BIDS, [("101.5", "3")]), T0)
    venue.on_market(snapshot(BIDS, ASKS), T0)
    assert fills(venue.submit(order(Side.BUY, "1"), T0)) == [(D(1), D("100.5"))]


def test_l2_a_resting_order_cannot_take_again_what_a_market_order_took():
    """The double take: a market buy empties 100.5; the next snapshot restates it; a
    resting buy at 100.5 must not now fill against the same 1 as maker."""
    venue = l2_venue()
    rest = limit(Side.BUY, "1", "100")
    venue.submit(rest, T0)
    assert fills(venue.submit(order(Side.BUY, "1"), T0)) == [(D(1), D("100.5"))]
    asks_down = [("100", "1"), ("100.5", "1"), ("101", "2")]  # the ask now crosses us
    reports = venue.on_market(snapshot([("99.5", "2")], asks_down), T0)
    assert fills(reports) == [(D(1), D(100))]  # the new liquidity at 100 is fine
    venue2 = l2_venue()
    rest2 = limit(Side.BUY, "1", "100.5")
    venue2.submit(order(Side.BUY, "1"), T0)  # takes the 1 @ 100.5 first
    venue2.submit(rest2, T0)  # rests at 100.5: the ask there is ours already
    reports = venue2.on_market(snapshot(BIDS, ASKS), T0)  # restated: still ours
    assert fills(reports) == []
    work = venue2.working(rest2.order_id)
    assert work is not None and work.remaining == D(1)


def test_l1_consumed_liquidity_stays_consumed_until_the_touch_moves_on():
    venue = make_venue()
    venue.on_market(quote("100", "1", "100.5", "1"), T0)
    assert fills(venue.submit(order(Side.BUY, "1"), T0)) == [(D(1), D("100.5"))]
    # second order: the touch is gone, next synthesized level holds 1.5
    assert fills(venue.submit(order(Side.BUY, "2"), T0)) == [(D("1.5"), D(101)),
                                                             (D("0.5"), D("101.5"))]
    venue.on_market(quote("100", "1", "100.5", "1"), T0)  # the same quote again: still taken
    assert fills(venue.submit(order(Side.BUY, "1"), T0)) == [(D(1), D("101.5"))]
    venue.on_market(quote("100", "1", "101.5", "1"), T0)  # the ask moved up past them
    venue.on_market(quote("100", "1", "100.5", "1"), T0)  # and back: new liquidity
    assert fills(venue.submit(order(Side.BUY, "1"), T0)) == [(D(1), D("100.5"))]


def test_a_trade_print_does_not_reset_consumed_liquidity():
    venue = l2_venue()
    venue.submit(order(Side.BUY, "1"), T0)
    venue.on_market(trade("100.5", "0.1", Side.BUY), T0)
    assert fills(venue.submit(order(Side.BUY, "1"), T0)) == [(D(1), D(101))]


# ---- limits ---------------------------------------------------------------------


def test_marketable_limit_takes_up_to_its_price_and_rests_the_remainder():
    venue = l2_venue()
    o = limit(Side.BUY, "5", "101")
    reports = venue.submit(o, T0)
    assert isinstance(reports[0], Accepted)
    assert fills(reports) == [(D(1), D("100.5")), (D(2), D(101))]
    assert not any(isinstance(r, Canceled) for r in reports)
    work = venue.working(o.order_id)
    assert work is not None and work.remaining == D(2) and work.price == D(101)
    # the rest is a maker order now: new liquidity arriving at 101 (the level grows past
    # the 2 it showed, which we took) trades with it at 101
    reports = venue.on_market(delta(asks=[("101", "2.5")]), T0)
    assert [(r.qty, r.price, r.liquidity) for r in reports] == [
        (D("0.5"), D(101), Liquidity.MAKER)]
    assert venue.working(o.order_id).remaining == D("1.5")


def test_non_marketable_limit_rests_without_fills():
    venue = l2_venue()
    o = limit(Side.SELL, "1", "102")
    reports = venue.submit(o, T0)
    assert [type(r) for r in reports] == [Accepted]
    assert venue.working(o.order_id).remaining == D(1)


def test_fees_taker_and_maker_are_exact():
    venue = l2_venue()
    reports = venue.submit(order(Side.BUY, "3"), T0)
    assert [r.fee for r in reports if isinstance(r, Filled)] == [
        D(1) * D("100.5") * TAKER, D(2) * D(101) * TAKER]
    assert [r.fee for r in reports if isinstance(r, Filled)] == [D("0.05025"), D("0.1010")]
    resting = limit(Side.BUY, "2", "99")
    venue.submit(resting, T0)
    # a print through 99 of 5.1: the 3 displayed at 99 were ahead of us, 2.1 reaches us
    reports = venue.on_market(trade("98.5", "5.1", Side.SELL), T0)
    assert [(r.qty, r.price, r.fee, r.liquidity) for r in reports] == [
        (D(2), D(99), D("0.0396"), Liquidity.MAKER)]


def test_fee_rates_come_from_the_instrument():
    venue = l2_venue(maker_fee_rate=D("-0.0001"), taker_fee_rate=D("0.001"))
    reports = venue.submit(order(Side.SELL, "1"), T0)
    assert [r.fee for r in reports if isinstance(r, Filled)] == [D("0.1000")]
    venue.submit(limit(Side.SELL, "1", "102"), T0)
    reports = venue.on_market(trade("102.5", "1", Side.BUY), T0)
    assert [r.fee for r in reports if isinstance(r, Filled)] == [D("-0.0102")]  # a rebate


def test_market_order_without_a_book_is_rejected_no_market_data():
    venue = make_venue()
    o = order(Side.BUY, "1")
    reports = venue.submit(o, T0)
    assert len(reports) == 1 and isinstance(reports[0], Rejected)
    assert reports[0].code == RejectCode.NO_MARKET_DATA
    assert venue.working(o.order_id) is None
    assert (CLIENT, SYMBOL) not in venue.positions


# ---- time in force, post-only -----------------------------------------------------------


def test_ioc_fills_what_it_can_and_cancels_the_remainder():
    venue = l2_venue()
    o = limit(Side.BUY, "5", "101", tif=TimeInForce.IOC)
    reports = venue.submit(o, T0)
    assert fills(reports) == [(D(1), D("100.5")), (D(2), D(101))]
    assert isinstance(reports[-1], Canceled)
    assert venue.working(o.order_id) is None
    assert venue.on_market(delta(asks=[("101", "9")]), T0) == []  # nothing rests


def test_ioc_that_cannot_trade_is_canceled_without_fills():
    venue = l2_venue()
    reports = venue.submit(limit(Side.BUY, "1", "100", tif=TimeInForce.IOC), T0)
    assert [type(r) for r in reports] == [Accepted, Canceled]


def test_fok_that_cannot_fill_completely_is_rejected_and_takes_nothing():
    venue = l2_venue()
    reports = venue.submit(limit(Side.BUY, "4", "101", tif=TimeInForce.FOK), T0)
    assert [type(r) for r in reports] == [Rejected]
    assert reports[0].code == RejectCode.FOK_NOT_FILLABLE
    # the book is untouched
    assert fills(venue.submit(order(Side.BUY, "1"), T0)) == [(D(1), D("100.5"))]


def test_fok_that_can_fill_completely_fills_over_several_levels():
    venue = l2_venue()
    o = limit(Side.BUY, "3", "101", tif=TimeInForce.FOK)
    reports = venue.submit(o, T0)
    assert fills(reports) == [(D(1), D("100.5")), (D(2), D(101))]
    assert venue.working(o.order_id) is None


def test_post_only_that_would_cross_is_rejected():
    venue = l2_venue()
    for o in (limit(Side.BUY, "1", "100.5", post_only=True),
              limit(Side.BUY, "1", "101", post_only=True),
              limit(Side.SELL, "1", "100", post_only=True)):
        reports = venue.submit(o, T0)
        assert [type(r) for r in reports] == [Rejected]
        assert reports[0].code == RejectCode.POST_ONLY_WOULD_CROSS
        assert venue.working(o.order_id) is None
    assert fills(venue.submit(order(Side.BUY, "1"), T0)) == [(D(1), D("100.5"))]


def test_post_only_that_does_not_cross_rests():
    venue = l2_venue()
    o = limit(Side.BUY, "1", "100", post_only=True)
    assert [type(r) for r in venue.submit(o, T0)] == [Accepted]
    assert venue.working(o.order_id).remaining == D(1)


# ---- reduce-only ------------------------------------------------------------------------


def test_reduce_only_with_no_position_is_canceled_without_filling():
    venue = l2_venue()
    for o, last in ((order(Side.SELL, "1", reduce_only=True), Expired),
                    (limit(Side.SELL, "1", "99", reduce_only=True), Canceled)):
        reports = venue.submit(o, T0)
        assert fills(reports) == []
        assert isinstance(reports[-1], last)
        assert venue.working(o.order_id) is None
    assert venue.positions.get((CLIENT, SYMBOL), D(0)) == 0


def test_reduce_only_market_never_fills_more_than_the_position():
    venue = l2_venue()
    venue.submit(order(Side.BUY, "1.5"), T0)  # long 1.5
    venue.on_market(snapshot(BIDS, ASKS), T0)
    o = order(Side.SELL, "5", reduce_only=True)
    reports = venue.submit(o, T0)
    assert fills(reports) == [(D(1), D(100)), (D("0.5"), D("99.5"))]
    assert isinstance(reports[-1], Expired)
    assert venue.positions[(CLIENT, SYMBOL)] == 0


def test_reduce_only_limit_is_capped_then_canceled_when_nothing_is_left():
    venue = l2_venue()
    venue.submit(order(Side.SELL, "0.75"), T0)  # short 0.75
    o = limit(Side.BUY, "2", "99", reduce_only=True)
    assert fills(venue.submit(o, T0)) == []
    reports = venue.on_market(trade("98.5", "5", Side.SELL), T0)  # through our price
    assert fills(reports) == [(D("0.75"), D(99))]
    assert isinstance(reports[-1], Canceled)
    assert venue.working(o.order_id) is None
    assert venue.positions[(CLIENT, SYMBOL)] == 0


def test_resting_reduce_only_is_canceled_when_the_position_closed_elsewhere():
    venue = l2_venue()
    venue.submit(order(Side.BUY, "1"), T0)  # long 1
    o = limit(Side.SELL, "1", "103", reduce_only=True)
    venue.submit(o, T0)
    venue.on_market(snapshot(BIDS, ASKS), T0)
    venue.submit(order(Side.SELL, "1"), T0)  # flat again through another order
    reports = venue.on_market(trade("103.5", "2", Side.BUY), T0)  # through 103
    assert fills(reports) == []
    assert [type(r) for r in reports] == [Canceled]
    assert venue.positions[(CLIENT, SYMBOL)] == 0


def test_marketable_reduce_only_limit_rests_only_what_can_still_reduce():
    venue = l2_venue()
    venue.submit(order(Side.BUY, "0.5"), T0)  # long 0.5
    venue.on_market(snapshot(BIDS, ASKS), T0)
    o = limit(Side.SELL, "3", "99", reduce_only=True)
    reports = venue.submit(o, T0)
    assert fills(reports) == [(D("0.5"), D(100))]
    assert isinstance(reports[-1], Canceled)
    assert venue.working(o.order_id) is None


# ---- through an engine --------------------------------------------------------------------


def test_engine_market_order_walks_the_book_with_one_fill_event_per_level():
    venue = PaperVenue(VENUE)
    engine = Engine(EngineConfig([instrument()], [AccountSetup(CLIENT, VENUE)]),
                    {VENUE: venue})
    engine.handle(Deposit(CLIENT, VENUE, D(10_000)), T0)
    engine.on_market(snapshot(BIDS, ASKS), T0)
    spec = OrderSpec(CLIENT, VENUE, SYMBOL, Side.BUY, OrderType.MARKET, D(3))
    events = engine.handle(SubmitOrder(spec), T0 + timedelta(seconds=1))
    filled = [e for e in events if isinstance(e, OrderFilled)]
    assert [(e.qty, e.price, e.fee) for e in filled] == [
        (D(1), D("100.5"), D("0.05025")), (D(2), D(101), D("0.1010"))]
    o = engine.state.orders[filled[0].order_id]
    assert o.status is OrderStatus.FILLED
    assert o.avg_fill_price == D("302.5") / 3
    account = engine.state.accounts[(CLIENT, VENUE)]
    assert account.fees == D("0.15125")
    assert account.wallet == D(10_000) - D("0.15125")
