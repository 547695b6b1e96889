"""Hypothesis: amend never increases filled beyond qty.

One resting order is amended at random (qty up or down, price moves, both) while
prints and quotes trade against it, with and without venue latency (so amends and
fills race). After every step the order's filled qty is within its qty, the venue's
remaining is exactly the engine's, and at the end the events replay to the same
state.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.domain.commands import AmendOrder
from app.domain.events import OrderAmended, OrderFilled
from app.domain.instruments import VenueCapabilities
from app.domain.rejections import CommandRefused
from app.domain.venue_profiles import BINANCE_USDM, BYBIT_V5, GENERIC
from app.venues.paper.venue import PaperVenueConfig
from tests.engine.conftest import T0, VENUE, MarketPusher, build_engine, place_order

D = Decimal
STEP = D("0.001")
market = MarketPusher()

amends = st.tuples(st.just("amend"), st.none() | st.integers(1, 3000),
                   st.none() | st.integers(-5, 5))
prints = st.tuples(st.just("print"), st.integers(1, 2000), st.integers(-2, 2))
quotes = st.tuples(st.just("quote"), st.integers(1, 2000), st.integers(-3, 3))


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(profile=st.sampled_from((GENERIC, BINANCE_USDM, BYBIT_V5)),
       latency_ms=st.sampled_from((0, 0, 30)),
       qty_units=st.integers(1, 3000),
       steps=st.lists(st.one_of(amends, prints, quotes), min_size=1, max_size=40))
def test_amend_never_leaves_an_order_filled_beyond_its_qty(profile, latency_ms, qty_units,
                                                           steps) -> None:
    latency = timedelta(milliseconds=latency_ms)
    engine = build_engine(venue_config=PaperVenueConfig(
        capabilities=VenueCapabilities(profile=profile), submit_latency=latency))
    bid = D("60000.0")
    events = market.quote(engine, T0, bid=bid, ask=bid + D("0.1"), bid_size=2, ask_size=2)
    order, placed = place_order(engine, T0, side="buy", qty=qty_units * STEP, price=bid)
    events += placed
    now = T0
    for kind, size, ticks in steps:
        now += timedelta(milliseconds=20)
        events += engine.advance(now)
        if kind == "amend":
            price = None if ticks is None else bid + ticks * D("0.1")
            with contextlib.suppress(CommandRefused):
                events += engine.handle(AmendOrder(order.order_id, new_price=price,
                                                   new_qty=None if size is None
                                                   else size * STEP), now)
        elif kind == "print":
            events += market.trade(engine, now, bid + ticks * D("0.1"), size * STEP, "sell")
        else:
            bid += ticks * D("0.1")
            events += market.quote(engine, now, bid=bid, ask=bid + D("0.1"),
                                   bid_size=size * STEP, ask_size=2)
        assert D(0) <= order.filled_qty <= order.spec.qty, order
        work = engine.venues[VENUE].working(order.order_id)
        if work is not None and order.is_open and not latency:
            assert work.remaining == order.remaining_qty, (work, order)
    events += engine.advance(now + timedelta(seconds=1))
    assert order.filled_qty <= order.spec.qty
    filled = D(0)
    for e in events:  # each amend took effect above what had filled by then
        if isinstance(e, OrderFilled) and e.order_id == order.order_id:
            filled += e.qty
        elif isinstance(e, OrderAmended):
            assert e.qty > filled, (e, filled)
    state = build_engine().state
    for e in events:
        state.apply(e)
    assert state.comparable() == engine.state.comparable()
