"""Every order type × time in force × post-only × reduce-only against a known book.

The book is the standard one (bid 60000.0 × 1, ask 60000.1 × 1, synthesized
depth: level k holds 1 × (1 + 0.5k), one tick apart). Every order asks for
1.5, so a limit at the touch can fill only 1 of it. The expected outcome of
each combination comes from the small rule table below, read top to bottom.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import pytest

from app.domain.events import OrderAccepted, OrderRejected, OrderSubmitted
from app.domain.orders import OrderStatus, OrderType, Side, TimeInForce
from app.domain.rejections import RejectCode

S = OrderStatus
T = OrderType
TIF = TimeInForce
R = RejectCode
QTY = Decimal("1.5")

# Prices per side: "marketable" sits on the far touch (only 1 there), "passive"
# is away from it, stops trigger away from the market (buy above, sell below),
# take-profits the other way (buy below, sell above).
PRICES = {
    Side.BUY: {"marketable": Decimal("60000.1"), "passive": Decimal("59990.0"),
               "trigger": Decimal("61000.0"), "tp_trigger": Decimal("59000.0")},
    Side.SELL: {"marketable": Decimal("60000.0"), "passive": Decimal("60010.0"),
                "trigger": Decimal("59000.0"), "tp_trigger": Decimal("61000.0")},
}
# Trailing stops have their own tests (tests/venues/test_conditional_orders.py).
TYPES = (T.MARKET, T.LIMIT, T.STOP, T.STOP_LIMIT, T.TAKE_PROFIT, T.TAKE_PROFIT_LIMIT)


@dataclass(frozen=True)
class Outcome:
    status: OrderStatus
    code: RejectCode | None = None
    filled: Decimal = Decimal(0)
    expires: bool = False  # still open, and EXPIRED once the clock passes expire_at
    cancel_reason: str | None = None


def rejected(code: RejectCode) -> Outcome:
    return Outcome(S.REJECTED, code)


# A limit order for 1.5 against the standard book, by where its price sits.
LIMIT_RULES: dict[tuple[str, TimeInForce], Outcome] = {
    ("marketable", TIF.GTC): Outcome(S.PARTIALLY_FILLED, filled=Decimal(1)),  # 0.5 rests
    ("marketable", TIF.GTD): Outcome(S.PARTIALLY_FILLED, filled=Decimal(1), expires=True),
    ("marketable", TIF.IOC): Outcome(S.CANCELED, filled=Decimal(1),
                                     cancel_reason="ioc remainder"),
    ("marketable", TIF.FOK): rejected(R.FOK_NOT_FILLABLE),  # the limit caps it at 1
    ("passive", TIF.GTC): Outcome(S.ACCEPTED),
    ("passive", TIF.GTD): Outcome(S.ACCEPTED, expires=True),
    ("passive", TIF.IOC): Outcome(S.CANCELED, cancel_reason="ioc remainder"),
    ("passive", TIF.FOK): rejected(R.FOK_NOT_FILLABLE),
}


@dataclass(frozen=True)
class Case:
    side: Side
    type: OrderType
    tif: TimeInForce
    post_only: bool
    reduce_only: bool
    price: str | None  # "marketable" | "passive" | None (no limit price)
    position: str  # "flat" | "opposite" (a position of 1.5 the order would reduce)

    def __str__(self) -> str:
        flags = [f for f, on in (("po", self.post_only), ("ro", self.reduce_only)) if on]
        return "-".join([self.side.value, self.type.value, self.tif.value, *flags,
                         self.price or "noprice", self.position])


def expected(case: Case) -> Outcome:
    """The rule table, in the order the checks apply."""
    takes_no_price = case.type.executes_at_market
    if case.post_only and (takes_no_price or case.tif in (TIF.IOC, TIF.FOK)):
        return rejected(R.INVALID_ORDER)  # post-only needs a resting limit
    if takes_no_price and case.tif is TIF.GTD:
        return rejected(R.INVALID_ORDER)  # market orders cannot be GTD
    if case.reduce_only and case.position == "flat":
        return rejected(R.REDUCE_ONLY_WOULD_INCREASE)
    if case.type.is_conditional:
        return Outcome(S.ACCEPTED, expires=case.tif is TIF.GTD)  # rests until triggered
    if case.type is T.MARKET:
        return Outcome(S.FILLED, filled=QTY)  # walks the touch (1) and the next level
    if case.post_only and case.price == "marketable":
        return rejected(R.POST_ONLY_WOULD_CROSS)
    return LIMIT_RULES[(case.price, case.tif)]  # type: ignore[index]


def all_cases() -> list[Case]:
    cases = []
    for side, type_, tif, po, ro, pos in itertools.product(
            Side, TYPES, TIF, (False, True), (False, True), ("flat", "opposite")):
        prices = ("marketable", "passive") if type_.has_limit_price else (None,)
        cases.extend(Case(side, type_, tif, po, ro, p, pos) for p in prices)
    return cases


CASES = all_cases()


def test_the_matrix_is_complete() -> None:
    # 2 sides × (3 priceless types + 3 priced types × 2 prices) × 4 TIF × 2 × 2 × 2 positions
    assert len(CASES) == 2 * (3 + 3 * 2) * 4 * 2 * 2 * 2
    assert {expected(c).status for c in CASES} == {
        S.REJECTED, S.ACCEPTED, S.PARTIALLY_FILLED, S.FILLED, S.CANCELED}
    assert {expected(c).code for c in CASES} == {
        None, R.INVALID_ORDER, R.REDUCE_ONLY_WOULD_INCREASE, R.POST_ONLY_WOULD_CROSS,
        R.FOK_NOT_FILLABLE}


@pytest.mark.parametrize("case", CASES, ids=str)
def test_order_matrix(case: Case, make_engine, market, place, at) -> None:
    engine = make_engine()
    market.quote(engine, at(0))
    start = Decimal(0)
    if case.position == "opposite":
        place(engine, at(0), side=case.side.opposite, type="market", qty=QTY)
        start = QTY * case.side.opposite.sign
        assert engine.state.positions[("demo", "paper-binance", "BTC-PERP")].qty == start
        market.quote(engine, at(1))  # fresh book: the opening trade's liquidity is back
    now = at(1)
    expire_at = now + timedelta(seconds=60)
    prices = PRICES[case.side]

    order, events = place(
        engine, now, side=case.side, type=case.type, qty=QTY,
        price=prices[case.price] if case.price else None,
        trigger=(prices["trigger"] if case.type.is_stop
                 else prices["tp_trigger"] if case.type.is_take_profit else None),
        tif=case.tif, expire_at=expire_at if case.tif is TIF.GTD else None,
        post_only=case.post_only, reduce_only=case.reduce_only)
    want = expected(case)

    assert isinstance(events[0], OrderSubmitted)
    assert (order.status, order.reject_code, order.filled_qty) == (
        want.status, want.code, want.filled)
    if want.code is not None:
        assert [type(e) for e in events] == [OrderSubmitted, OrderRejected]
        assert events[-1].code == want.code
        assert order.reject_message
    else:
        assert any(isinstance(e, OrderAccepted) for e in events)
    if want.cancel_reason is not None:
        assert order.cancel_reason == want.cancel_reason
    position = engine.state.positions.get(("demo", "paper-binance", "BTC-PERP"))
    held = position.qty if position else Decimal(0)
    assert held == start + want.filled * case.side.sign

    # Still working at the venue exactly when the order is open.
    venue = engine.venues["paper-binance"]
    assert (venue.working(order.order_id) is not None) == order.is_open

    # Let time pass beyond expire_at with no market data.
    engine.advance(expire_at - timedelta(microseconds=1))
    assert order.status is want.status
    engine.advance(expire_at)
    assert order.status is (S.EXPIRED if want.expires else want.status)
    assert order.filled_qty == want.filled


# ---- focused follow-ups to the matrix ---------------------------------------------


def test_market_order_walks_the_synthesized_depth(quoted_engine, place, at) -> None:
    order, events = place(quoted_engine, at(1), side="buy", type="market", qty="1.6")
    fills = [(e.price, e.qty, e.fee, e.liquidity.value) for e in events
             if type(e).__name__ == "OrderFilled"]
    # touch: 1 @ 60000.1; level 1 holds 1.5 @ 60000.2, of which 0.6 is still needed
    assert fills == [
        (Decimal("60000.1"), Decimal(1), Decimal("30.00005"), "taker"),
        (Decimal("60000.2"), Decimal("0.6"), Decimal("18.00006"), "taker"),
    ]
    assert order.status is S.FILLED
    assert order.avg_fill_price == Decimal("60000.1375")


def test_gtd_expires_on_a_later_quote_as_well_as_on_advance(quoted_engine, market, place,
                                                            at) -> None:
    order, _ = place(quoted_engine, at(1), price="59990.0", tif="gtd", expire_at=at(30))
    assert market.quote(quoted_engine, at(29)) == []
    assert order.status is S.ACCEPTED
    events = market.quote(quoted_engine, at(31))
    assert [type(e).__name__ for e in events] == ["OrderExpired"]
    assert events[0].at == at(30)  # it expired at expire_at, not when we noticed
    assert order.status is S.EXPIRED
    assert quoted_engine.venues["paper-binance"].working(order.order_id) is None


def test_stop_market_rests_until_last_trade_reaches_trigger(quoted_engine, market, place,
                                                            at) -> None:
    order, _ = place(quoted_engine, at(1), side="buy", type="stop", qty="0.5",
                     trigger="60100.0")
    assert market.trade(quoted_engine, at(2), "60099.9", "0.1", "buy") == []
    assert order.status is S.ACCEPTED and order.triggered_at is None
    market.quote(quoted_engine, at(3), bid="60100.0", ask="60100.1")
    events = market.trade(quoted_engine, at(4), "60100.0", "0.1", "buy")
    names = [type(e).__name__ for e in events]
    assert names == ["OrderTriggered", "OrderFilled"]
    assert events[0].trigger_price == Decimal("60100.0")
    assert events[1].price == Decimal("60100.1") and events[1].qty == Decimal("0.5")
    assert order.status is S.FILLED and order.triggered_at == at(4)


def test_stop_limit_on_mark_triggers_then_executes_as_a_limit(quoted_engine, market, place,
                                                              at) -> None:
    order, _ = place(quoted_engine, at(1), side="sell", type="stop_limit", qty="1.5",
                     price="60000.0", trigger="59500.0", trigger_source="mark")
    assert market.mark(quoted_engine, at(2), "59500.1") == []
    events = market.mark(quoted_engine, at(3), "59500.0")
    # Triggered, then the limit caps it at the touch: 1 @ 60000.0 fills, 0.5 rests there.
    assert [(type(e).__name__, getattr(e, "qty", None)) for e in events] == [
        ("OrderTriggered", None), ("OrderFilled", Decimal(1))]
    assert order.status is S.PARTIALLY_FILLED and order.triggered_at == at(3)
    # The bid moves up through the resting sell: filled as maker at its own price.
    fill = market.quote(quoted_engine, at(4), bid="60000.5", ask="60000.6")
    assert [(type(e).__name__, e.qty, e.price, e.liquidity.value) for e in fill] == [
        ("OrderFilled", Decimal("0.5"), Decimal("60000.0"), "maker")]
    assert order.status is S.FILLED


def test_post_only_passive_rests_and_fills_as_maker(quoted_engine, market, place, at) -> None:
    order, _ = place(quoted_engine, at(1), side="buy", qty="0.5", price="60000.0",
                     post_only=True)
    assert order.status is S.ACCEPTED
    # 1.0 is ahead of us at 60000.0; a 1.2 sell print eats it and 0.2 of ours
    events = market.trade(quoted_engine, at(2), "60000.0", "1.2", "sell")
    assert [(e.qty, e.price, e.fee, e.liquidity.value) for e in events] == [
        (Decimal("0.2"), Decimal("60000.0"), Decimal("2.400000"), "maker")]
    assert order.status is S.PARTIALLY_FILLED
