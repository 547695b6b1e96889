"""Fill models for resting limit orders: QueuePosition and VolumeThreshold (seed 001)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.instruments import Instrument, InstrumentKind
from app.domain.market import BookDelta, BookSnapshot, Quote, TradePrint
from app.domain.orders import Liquidity, Order, OrderSpec, OrderType, Side
from app.venues.base import Filled
from app.venues.paper.queue import QueuePosition, VolumeThreshold, make_queue_model
from app.venues.paper.venue import PaperVenue, PaperVenueConfig

T0 = datetime(2024, 1, 1, tzinfo=UTC)
VENUE = "paper"
SYMBOL = "BTC-PERP"
CLIENT = "alice"
MAKER = D("0.0002")


def make_venue(queue_model=None, tick: str = "0.5") -> PaperVenue:
    venue = PaperVenue(VENUE, queue_model=queue_model)
    venue.add_instrument(Instrument(SYMBOL, VENUE, InstrumentKind.PERP, "BTC", "USDT", D(tick),
                                    D("0.001"), D("0.001"), D(0)))
    return venue


_ids = iter(range(1, 1_000_000))


def limit(side: Side, qty, price) -> Order:
    oid = next(_ids)
    spec = OrderSpec(CLIENT, VENUE, SYMBOL, side, OrderType.LIMIT, D(qty), price=D(price))
    return Order(oid, spec, f"c{oid}", T0)


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


def sell(price, qty) -> TradePrint:
    """A sell aggressor: it trades against bids."""
    return trade(price, qty, Side.SELL)


def fills(reports) -> list[tuple[D, D]]:
    return [(r.qty, r.price) for r in reports if isinstance(r, Filled)]


BIDS = [("100", "5"), ("99.5", "3")]
ASKS = [("100.5", "4"), ("101", "6")]


def l2_venue(queue_model=None) -> PaperVenue:
    venue = make_venue(queue_model)
    venue.on_market(snapshot(BIDS, ASKS), T0)
    return venue


def rest(venue: PaperVenue, side: Side, qty, price):
    o = limit(side, qty, price)
    reports = venue.submit(o, T0)
    assert fills(reports) == []
    return venue.working(o.order_id)


# ---- QueuePosition ----------------------------------------------------------------------


def test_queue_position_is_the_default_model():
    assert isinstance(PaperVenue(VENUE).queue_model, QueuePosition)


def test_on_acceptance_queue_ahead_is_the_displayed_size_at_the_price():
    venue = l2_venue()
    assert rest(venue, Side.BUY, "1", "100").queue_ahead == D(5)
    assert rest(venue, Side.BUY, "1", "99.5").queue_ahead == D(3)
    assert rest(venue, Side.BUY, "1", "99").queue_ahead == 0  # an empty level
    assert rest(venue, Side.SELL, "1", "101").queue_ahead == D(6)


def test_queue_ahead_in_l1_mode_is_the_synthesized_size():
    venue = make_venue()
    venue.on_market(quote("100", "2", "100.5", "2"), T0)
    assert rest(venue, Side.BUY, "1", "100").queue_ahead == D(2)
    assert rest(venue, Side.BUY, "1", "99").queue_ahead == D(4)  # k = 2: 2 × 2


def test_trades_at_the_price_consume_the_queue_first():
    venue = l2_venue()
    work = rest(venue, Side.BUY, "1", "100")
    assert venue.on_market(sell("100", "3"), T0) == []
    assert work.queue_ahead == D(2)
    assert venue.on_market(sell("100", "2"), T0) == []  # exactly consumed: still nothing
    assert work.queue_ahead == 0
    reports = venue.on_market(sell("100", "0.25"), T0)
    assert [(r.qty, r.price, r.liquidity, r.fee) for r in reports] == [
        (D("0.25"), D(100), Liquidity.MAKER, D("0.25") * D(100) * MAKER)]
    assert work.remaining == D("0.75")
    assert fills(venue.on_market(sell("100", "5"), T0)) == [(D("0.75"), D(100))]
    assert venue.working(work.order_id) is None


def test_only_the_excess_over_the_queue_fills_partial_when_smaller_than_the_order():
    venue = l2_venue()
    work = rest(venue, Side.BUY, "2", "100")
    assert fills(venue.on_market(sell("100", "5.5"), T0)) == [(D("0.5"), D(100))]
    assert work.remaining == D("1.5")
    assert work.queue_ahead == 0


def test_an_excess_larger_than_the_order_fills_it_completely():
    venue = l2_venue()
    work = rest(venue, Side.BUY, "2", "100")
    assert fills(venue.on_market(sell("100", "9"), T0)) == [(D(2), D(100))]
    assert venue.working(work.order_id) is None


def test_trades_on_the_other_side_or_away_from_the_price_leave_the_queue_alone():
    venue = l2_venue()
    work = rest(venue, Side.BUY, "1", "100")
    assert venue.on_market(trade("100", "50", Side.BUY), T0) == []  # buyers lift asks
    assert venue.on_market(sell("100.5", "50"), T0) == []  # a sell above our bid
    assert work.queue_ahead == D(5)


def test_sell_order_queue_is_consumed_by_buy_aggressors():
    venue = l2_venue()
    work = rest(venue, Side.SELL, "2", "100.5")
    assert work.queue_ahead == D(4)
    assert venue.on_market(sell("100.5", "10"), T0) == []
    assert fills(venue.on_market(trade("100.5", "5", Side.BUY), T0)) == [(D(1), D("100.5"))]
    assert work.remaining == D(1)


def test_level_shrinking_lowers_queue_ahead_to_at_most_the_new_size():
    venue = l2_venue()
    work = rest(venue, Side.BUY, "2", "100")
    venue.on_market(delta(bids=[("100", "2")]), T0)  # 3 canceled ahead of us (or behind)
    assert work.queue_ahead == D(2)
    venue.on_market(delta(bids=[("100", "7")]), T0)  # growth joins behind us
    assert work.queue_ahead == D(2)
    venue.on_market(delta(bids=[("99.5", "1")]), T0)  # another level: no change
    assert work.queue_ahead == D(2)
    assert fills(venue.on_market(sell("100", "3"), T0)) == [(D(1), D(100))]
    assert work.remaining == D(1)


def test_level_vanishing_puts_us_at_the_front():
    venue = l2_venue()
    work = rest(venue, Side.BUY, "1", "100")
    venue.on_market(delta(bids=[("100", "0")]), T0)  # best bid now 99.5, below us
    assert work.queue_ahead == 0
    assert fills(venue.on_market(sell("100", "0.5"), T0)) == [(D("0.5"), D(100))]


def test_a_trade_through_the_price_fills_what_the_print_leaves_after_the_queue():
    """through_fill "print" (the default): a tape prints every level a sweep took, so a
    print below our bid fills us with at most its own size beyond the queue ahead."""
    venue = l2_venue()
    work = rest(venue, Side.BUY, "2", "100")  # the 5 displayed at 100 are ahead of us
    assert venue.on_market(sell("99.5", "0.1"), T0) == []
    assert work.queue_ahead == D("4.9")
    reports = venue.on_market(sell("99.5", "5.5"), T0)
    assert [(r.qty, r.price, r.liquidity, r.fee) for r in reports] == [
        (D("0.6"), D(100), Liquidity.MAKER, D("0.0120"))]
    assert work.remaining == D("1.4")


def test_through_fill_full_fills_the_whole_order_as_maker_at_our_price():
    venue = PaperVenue(VENUE, PaperVenueConfig(through_fill="full"))
    venue.add_instrument(make_venue().instruments[SYMBOL])
    venue.on_market(snapshot(BIDS, ASKS), T0)
    work = rest(venue, Side.BUY, "2", "100")
    reports = venue.on_market(sell("99.5", "0.1"), T0)
    assert [(r.qty, r.price, r.liquidity, r.fee) for r in reports] == [
        (D(2), D(100), Liquidity.MAKER, D("0.0400"))]
    assert venue.working(work.order_id) is None


def test_a_book_moving_through_our_price_fills_as_maker_up_to_the_crossing_size():
    venue = l2_venue()
    work = rest(venue, Side.BUY, "10", "100")
    reports = venue.on_market(delta(bids=[("100", "0")], asks=[("100", "3")]), T0)
    assert [(r.qty, r.price, r.liquidity) for r in reports] == [(D(3), D(100), Liquidity.MAKER)]
    assert work.remaining == D(7)
    # more asks at and below our price: only what was not taken yet trades, at our price
    reports = venue.on_market(delta(asks=[("99.5", "2")]), T0)
    assert [(r.qty, r.price, r.liquidity, r.fee) for r in reports] == [
        (D(2), D(100), Liquidity.MAKER, D(2) * D(100) * MAKER)]
    assert work.remaining == D(5)


def test_an_l1_quote_moving_through_our_price_fills_up_to_the_synthesized_crossing_size():
    venue = make_venue(tick="0.1")
    venue.on_market(quote("100", "5", "100.1", "5"), T0)
    work = rest(venue, Side.BUY, "10", "100")
    # asks at 99.9 (2) and 100.0 (2 × 1.5) are at or below our price
    reports = venue.on_market(quote("99.8", "1", "99.9", "2"), T0)
    assert fills(reports) == [(D(5), D(100))]
    assert work.remaining == D(5)


def test_a_sell_resting_fills_when_bids_move_onto_it():
    venue = l2_venue()
    work = rest(venue, Side.SELL, "3", "101")
    reports = venue.on_market(delta(bids=[("101", "1"), ("100.5", "4")]), T0)
    assert fills(reports) == [(D(1), D(101))]
    assert work.remaining == D(2)


# ---- VolumeThreshold (seed 001) -----------------------------------------------------------


def test_volume_threshold_selectable_on_the_venue():
    venue = l2_venue(VolumeThreshold())
    assert venue.queue_model.name == "volume_threshold"
    assert isinstance(make_queue_model("volume_threshold"), VolumeThreshold)
    assert isinstance(make_queue_model("queue_position"), QueuePosition)
    assert make_queue_model("volume_threshold", D("0.5")).threshold == D("0.5")
    with pytest.raises(ValueError):
        make_queue_model("fifo")


def test_volume_threshold_fills_the_whole_order_once_20_percent_of_entry_depth_traded():
    venue = l2_venue(VolumeThreshold(D("0.20")))
    work = rest(venue, Side.BUY, "3", "100")  # depth at entry 5: threshold 1
    assert work.depth_at_entry == D(5)
    assert venue.on_market(sell("100", "0.4"), T0) == []
    assert venue.on_market(sell("100", "0.5"), T0) == []
    assert work.traded_at_price == D("0.9")
    assert work.remaining == D(3)
    # the next 0.1 reaches 1.0 = 0.2 × 5: the whole order fills, not just 0.1
    reports = venue.on_market(sell("100", "0.1"), T0)
    assert [(r.qty, r.price, r.liquidity) for r in reports] == [(D(3), D(100), Liquidity.MAKER)]
    assert venue.working(work.order_id) is None


def test_volume_threshold_ignores_level_shrinking_and_other_prices():
    venue = l2_venue(VolumeThreshold())
    work = rest(venue, Side.BUY, "1", "100")
    venue.on_market(delta(bids=[("100", "0.1")]), T0)
    venue.on_market(sell("100.5", "50"), T0)
    venue.on_market(trade("100", "50", Side.BUY), T0)
    assert work.traded_at_price == 0
    assert venue.on_market(sell("100", "0.9"), T0) == []  # 0.9 < 0.2 × 5
    assert fills(venue.on_market(sell("100", "0.1"), T0)) == [(D(1), D(100))]


def test_volume_threshold_counts_a_trade_through_as_volume_at_our_price():
    venue = l2_venue(VolumeThreshold())
    rest(venue, Side.BUY, "1", "100")  # 5 displayed at entry: fills once 1 traded
    assert venue.on_market(sell("99.5", "0.5"), T0) == []
    assert fills(venue.on_market(sell("99.5", "0.5"), T0)) == [(D(1), D(100))]


@settings(max_examples=60, deadline=None)
@given(
    depth=st.integers(min_value=1, max_value=500),
    order_qty=st.integers(min_value=1, max_value=50),
    trades=st.lists(st.integers(min_value=1, max_value=80), min_size=1, max_size=25),
)
def test_property_3_filled_implies_cumulative_volume_at_least_20_percent_of_depth(
        depth, order_qty, trades):
    """Seed 001 property 3: order.filled => cumulative_volume_at_price >= resting_depth × 0.20,
    and (the model's rule) it fills at the first trade that reaches it, never before."""
    depth_d = D(depth) / 10
    venue = make_venue(VolumeThreshold())
    venue.on_market(snapshot([("100", str(depth_d))], [("100.5", "1")]), T0)
    work = rest(venue, Side.BUY, D(order_qty) / 10, "100")
    cumulative = D(0)
    filled = False
    for q in trades:
        cumulative += D(q) / 100
        got = fills(venue.on_market(sell("100", D(q) / 100), T0))
        if filled:
            assert got == []
            continue
        if got:
            filled = True
            assert cumulative >= depth_d * D("0.2")
            assert got == [(D(order_qty) / 10, D(100))]  # the whole order at once
        else:
            assert cumulative < depth_d * D("0.2")
            assert work.remaining == D(order_qty) / 10
    assert filled == (cumulative >= depth_d * D("0.2"))


# ---- edge cases ---------------------------------------------------------------------------


def test_one_trade_excess_is_not_handed_to_two_of_our_orders_at_the_same_price():
    """Two of our buys at 100 behind 5 displayed; a sell of 6 at 100 leaves 1 beyond the
    displayed queue. The second order stands behind the first, so together they may get
    at most that 1: the venue must not fill more than was traded past the queue."""
    venue = l2_venue()
    first = rest(venue, Side.BUY, "1", "100")
    second = rest(venue, Side.BUY, "1", "100")
    reports = venue.on_market(sell("100", "6"), T0)
    assert sum(q for q, _ in fills(reports)) == D(1)
    assert venue.working(first.order_id) is None
    assert second.remaining == D(1)


def test_l1_bid_moving_away_above_us_is_not_evidence_that_our_queue_left():
    """In L1 mode the level at our price is not observed while the bid is above it.
    A bid 25 ticks up (beyond the 20 synthesized levels) must not move us to the front:
    once the bid is back at our price showing 5, a 1-lot sell still does not reach us."""
    venue = make_venue(tick="0.1")
    venue.on_market(quote("100", "5", "100.1", "5"), T0)
    work = rest(venue, Side.BUY, "1", "100")
    assert work.queue_ahead == D(5)
    venue.on_market(quote("102.5", "1", "102.6", "1"), T0)
    venue.on_market(quote("100", "5", "100.1", "5"), T0)
    assert fills(venue.on_market(sell("100", "1"), T0)) == []
    assert work.remaining == D(1)
