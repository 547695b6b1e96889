"""Self-trade prevention (issue 11): an account's order that would reach a resting order
of its own account, under each of Binance's STP modes."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from app.domain.orders import Side
from app.venues.base import Canceled, Expired
from app.venues.paper.venue import PaperVenue, PaperVenueConfig
from tests.venues.test_matching import ASKS, BIDS, T0, VENUE, fills, instrument, limit, order
from tests.venues.test_matching import snapshot as book_snapshot


def venue_with(mode: str) -> PaperVenue:
    venue = PaperVenue(VENUE, PaperVenueConfig(self_trade_prevention=mode))
    venue.add_instrument(instrument())
    venue.on_market(book_snapshot(BIDS, ASKS), T0)
    return venue


def resting_sell(venue: PaperVenue, price: str = "101"):
    maker = limit(Side.SELL, "1", price)
    venue.submit(maker, T0)
    assert venue.working(maker.order_id) is not None
    return maker


def test_none_leaves_our_own_resting_order_alone() -> None:
    venue = venue_with("none")
    maker = resting_sell(venue)
    assert fills(venue.submit(order(Side.BUY, "3"), T0)) == [(D(1), D("100.5")),
                                                             (D(2), D(101))]
    assert venue.working(maker.order_id) is not None


def test_expire_maker_cancels_our_resting_order_and_the_taker_trades_on() -> None:
    venue = venue_with("expire_maker")
    maker = resting_sell(venue)
    reports = venue.submit(order(Side.BUY, "3"), T0)
    canceled = [r for r in reports if isinstance(r, Canceled)]
    assert [(r.order_id, r.reason) for r in canceled] == [(maker.order_id,
                                                           "self-trade prevention")]
    assert fills(reports) == [(D(1), D("100.5")), (D(2), D(101))]
    assert venue.working(maker.order_id) is None


def test_expire_taker_stops_short_of_our_own_order_and_expires_the_rest() -> None:
    venue = venue_with("expire_taker")
    maker = resting_sell(venue)
    taker = order(Side.BUY, "3")
    reports = venue.submit(taker, T0)
    assert fills(reports) == [(D(1), D("100.5"))]  # 101 is where our own sell rests
    assert isinstance(reports[-1], Expired) and reports[-1].order_id == taker.order_id
    assert venue.working(maker.order_id) is not None


@pytest.mark.parametrize("mode", ["expire_both"])
def test_expire_both_cancels_the_maker_and_expires_the_taker(mode: str) -> None:
    venue = venue_with(mode)
    maker = resting_sell(venue, "100.5")  # at the touch: nothing may trade at all
    taker = limit(Side.BUY, "1", "102")
    reports = venue.submit(taker, T0)
    assert fills(reports) == []
    assert any(isinstance(r, Canceled) and r.order_id == maker.order_id for r in reports)
    assert isinstance(reports[-1], Expired) and venue.working(taker.order_id) is None


def test_orders_that_do_not_reach_our_own_are_untouched() -> None:
    venue = venue_with("expire_both")
    maker = resting_sell(venue, "101.5")
    assert fills(venue.submit(order(Side.BUY, "1"), T0)) == [(D(1), D("100.5"))]
    assert venue.working(maker.order_id) is not None
