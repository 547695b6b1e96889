"""Impact-aware sizing on the real Bybit XRPUSDT 500-level book (seed 000 §2, seed 003):
the engine's impact estimate equals walking the book by hand, and a conservative order
comes out within ``max_impact_bps`` and as large as the limit allows."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal as D

import pytest

from app.domain.commands import Deposit, SubmitOrder
from app.domain.events import OrderRejected
from app.domain.instruments import Instrument, InstrumentKind
from app.domain.market import MarkPrice
from app.domain.orders import OrderSpec, OrderStatus, OrderType, Side
from app.domain.rejections import RejectCode
from app.domain.risk import UNLIMITED, OrderSizedDown, SizingMode, SizingPolicy, SizingRequest
from app.engine.engine import AccountSetup, Engine, EngineConfig
from app.engine.sizing import Depth, impact_bps
from app.marketdata import read_bybit_book
from app.venues.paper.venue import PaperVenue

BYBIT = "bybit-xrpusdt-ob500-2024-12-01.jsonl"
VENUE, SYMBOL = "paper-bybit", "XRP-PERP"
STEP = D("1")


@pytest.fixture
def book_levels(data_dir) -> tuple[list[tuple[D, D]], list[tuple[D, D]]]:
    """The book after the whole file, rebuilt by hand from the raw messages."""
    bids: dict[D, D] = {}
    asks: dict[D, D] = {}
    with open(data_dir / BYBIT, encoding="utf-8") as f:
        for line in f:
            message = json.loads(line)
            data = message["data"]
            if message["type"] == "snapshot":
                bids, asks = {}, {}
            for side, raw in ((bids, data["b"]), (asks, data["a"])):
                for p, s in raw:
                    if D(s) == 0:
                        side.pop(D(p), None)
                    else:
                        side[D(p)] = D(s)
    return sorted(bids.items(), reverse=True), sorted(asks.items())


def hand_impact(asks: list[tuple[D, D]], qty: D, mid: D) -> D:
    left, cost = qty, D(0)
    for price, size in asks:
        take = min(left, size)
        cost += take * price
        left -= take
        if not left:
            break
    assert left == 0, "more than the book"
    return abs(cost / qty - mid) / mid * 10_000


@pytest.fixture
def engine(data_dir) -> Engine:
    inst = Instrument(SYMBOL, VENUE, InstrumentKind.PERP, "XRP", "USDT", D("0.0001"), STEP,
                      STEP, D(5), max_leverage=D(50))
    profile = replace(UNLIMITED, sizing=SizingPolicy(SizingMode.CONSERVATIVE, D(5),
                                                     aggressive_max_impact_bps=D(60)))
    engine = Engine(EngineConfig([inst], [AccountSetup("desk", VENUE, D(1))],
                                 default_risk_profile=profile),
                    {VENUE: PaperVenue(VENUE)})
    updates = list(read_bybit_book(data_dir / BYBIT, venue=VENUE, symbol=SYMBOL))
    now = updates[-1].ts
    engine.handle(Deposit("desk", VENUE, D(50_000_000)), now)  # 1x: the tiers allow most
    for update in updates:
        engine.on_market(update, now)
    engine.on_market(MarkPrice(VENUE, SYMBOL, D("1.9537"), now), now)
    return engine


def test_the_estimate_equals_a_hand_walk_of_the_real_book(engine, book_levels) -> None:
    bids, asks = book_levels
    mid = (bids[0][0] + asks[0][0]) / 2
    venue = engine.venues[VENUE]
    depth = Depth.of(venue.liquidity(SYMBOL, Side.BUY))
    assert list(zip(depth.prices, depth.cum_qty, strict=True))[:3] == [
        (asks[0][0], asks[0][1]), (asks[1][0], asks[0][1] + asks[1][1]),
        (asks[2][0], asks[0][1] + asks[1][1] + asks[2][1])]
    assert len(depth.prices) == len(asks) > 400  # the whole 500-level side
    for qty in (D(1), asks[0][1], D(50_000), D(250_000), D(1_000_000)):
        assert impact_bps(depth, qty, mid) == hand_impact(asks, qty, mid)


def test_conservative_sizing_fits_max_impact_on_the_real_book(engine, book_levels) -> None:
    bids, asks = book_levels
    mid = (bids[0][0] + asks[0][0]) / 2
    asked = D(2_000_000)  # far more than 5 bps of this book holds
    assert hand_impact(asks, asked, mid) > 5
    spec = OrderSpec("desk", VENUE, SYMBOL, Side.BUY, OrderType.MARKET, asked)
    events = engine.handle(SubmitOrder(spec), engine.venues[VENUE].book(SYMBOL).updated_at)
    [sized] = [e for e in events if isinstance(e, OrderSizedDown)]
    order = engine.state.orders[sized.order_id]
    assert order.status is OrderStatus.FILLED and order.spec.qty == sized.qty < asked
    # Within the limit, and one more step would break it.
    assert hand_impact(asks, sized.qty, mid) <= 5 < hand_impact(asks, sized.qty + STEP, mid)
    assert sized.impact_bps == hand_impact(asks, sized.qty, mid).quantize(D("0.01"))
    # The fill's own average price is the walk's.
    assert abs(order.avg_fill_price - mid) / mid * 10_000 == hand_impact(asks, sized.qty, mid)


def test_strict_and_aggressive_on_the_real_book(engine, book_levels) -> None:
    bids, asks = book_levels
    mid = (bids[0][0] + asks[0][0]) / 2
    now = engine.venues[VENUE].book(SYMBOL).updated_at
    big = OrderSpec("desk", VENUE, SYMBOL, Side.BUY, OrderType.MARKET, D(2_000_000))
    events = engine.handle(SubmitOrder(big, sizing=SizingRequest(SizingMode.STRICT)), now)
    assert [e.code for e in events if isinstance(e, OrderRejected)] == [
        RejectCode.IMPACT_TOO_HIGH]
    # Nine million is most of the ask side (its far end is 256 bps away).
    huge = replace(big, qty=D(9_000_000))
    assert hand_impact(asks, huge.qty, mid) > 60
    events = engine.handle(SubmitOrder(huge, sizing=SizingRequest(SizingMode.AGGRESSIVE)),
                           now)
    [sized] = [e for e in events if isinstance(e, OrderSizedDown)]
    assert hand_impact(asks, sized.qty, mid) <= 60 < hand_impact(asks, sized.qty + STEP,
                                                                  mid)  # the higher cap
