"""Kill switches: REDUCE_ONLY, HALTED, their scopes, and close-all."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from app.domain.commands import (
    CancelAll,
    CancelOrder,
    CloseAll,
    ReplaceOrder,
    SetTradingState,
    SubmitOrder,
)
from app.domain.events import (
    CloseAllCompleted,
    CloseResult,
    OrderCanceled,
    OrderCancelRequested,
    OrderFilled,
    OrderSubmitted,
    TradingStateChanged,
)
from app.domain.orders import OrderStatus, Side
from app.domain.rejections import CommandRefused, RejectCode
from app.domain.trading_state import Scope, TradingState
from app.engine.engine import AccountSetup
from app.venues.paper.venue import PaperVenueConfig

S = OrderStatus
R = RejectCode
TS = TradingState
ACCOUNT = Scope("demo", "paper-binance")
BTC = ("demo", "paper-binance", "BTC-PERP")


def pos(engine, client="demo", venue="paper-binance", symbol="BTC-PERP") -> Decimal:
    p = engine.state.positions.get((client, venue, symbol))
    return p.qty if p else Decimal(0)


def set_state(engine, scope, state, now, reason="test", actor="ops"):
    return engine.handle(SetTradingState(scope, state, reason, actor), now)


@pytest.fixture
def long_half(quoted_engine, market, place, at):
    """demo is long 0.5 BTC-PERP (bought at 60000.1); the book is refreshed at t+1."""
    place(quoted_engine, at(0), type="market", qty="0.5")
    market.quote(quoted_engine, at(1))
    assert pos(quoted_engine) == Decimal("0.5")
    return quoted_engine


# ---- REDUCE_ONLY ----------------------------------------------------------------------


def test_reduce_only_cancels_adding_orders_and_keeps_reducing_ones(long_half, place,
                                                                   at) -> None:
    engine = long_half
    adding, _ = place(engine, at(1), side="buy", qty="0.2", price="59000.0")
    reducing, _ = place(engine, at(1), side="sell", qty="0.3", price="61000.0")
    events = set_state(engine, ACCOUNT, TS.REDUCE_ONLY, at(2), reason="drawdown")
    assert events == [
        TradingStateChanged(ACCOUNT, TS.REDUCE_ONLY, TS.ACTIVE, "drawdown", "ops", at(2)),
        OrderCancelRequested(adding.order_id, at(2), "ops"),
        OrderCanceled(adding.order_id, "trading state reduce_only", at(2)),
    ]
    assert adding.status is S.CANCELED
    assert reducing.status is S.ACCEPTED
    assert engine.trading_state("demo", "paper-binance") == (TS.REDUCE_ONLY, ACCOUNT)


def test_reduce_only_when_flat_cancels_every_resting_order(quoted_engine, place, at) -> None:
    buy, _ = place(quoted_engine, at(1), side="buy", qty="0.2", price="59000.0")
    sell, _ = place(quoted_engine, at(1), side="sell", qty="0.2", price="61000.0")
    set_state(quoted_engine, ACCOUNT, TS.REDUCE_ONLY, at(2))
    assert buy.status is sell.status is S.CANCELED


@pytest.mark.parametrize("through", ["quote", "trade"])
def test_kept_reducing_orders_can_no_longer_flip_the_position(through, long_half, market,
                                                              place, at) -> None:
    engine = long_half
    # 0.3 + 0.4 = 0.7 of sells against a 0.5 long: together they would flip it. The
    # engine (not the venue, which cannot make a live order reduce-only) keeps the
    # oldest that fit and cancels the rest.
    first, _ = place(engine, at(1), side="sell", qty="0.3", price="61000.0")
    second, _ = place(engine, at(1), side="sell", qty="0.4", price="61000.0")
    set_state(engine, ACCOUNT, TS.REDUCE_ONLY, at(2))
    assert first.status is S.ACCEPTED
    assert second.status is S.CANCELED
    assert second.cancel_reason == "trading state reduce_only"
    if through == "quote":  # the bid moves up through both
        events = market.quote(engine, at(3), bid="62000.0", ask="62000.1", bid_size="5")
    else:  # a buyer trades through the price
        events = market.trade(engine, at(3), "61000.1", "5", "buy")
    running = Decimal("0.5")
    for e in events:
        if isinstance(e, OrderFilled):
            after = running - e.qty
            assert e.side is Side.SELL and 0 <= after < running  # never grows or flips
            running = after
    assert first.status is S.FILLED and running == Decimal("0.2") == pos(engine)


def test_a_fill_shrinks_what_the_kept_orders_may_close(long_half, place, at) -> None:
    engine = long_half
    older, _ = place(engine, at(1), side="sell", qty="0.3", price="61000.0")
    newer, _ = place(engine, at(1), side="sell", qty="0.2", price="62000.0")
    set_state(engine, ACCOUNT, TS.REDUCE_ONLY, at(2))
    assert older.status is newer.status is S.ACCEPTED  # 0.3 + 0.2 close the 0.5 exactly
    closing, _ = place(engine, at(3), side="sell", type="market", qty="0.1")
    assert closing.status is S.FILLED and pos(engine) == Decimal("0.4")
    # 0.4 left: the older 0.3 still fits, the newer 0.2 would take the long past flat.
    assert older.status is S.ACCEPTED
    assert newer.status is S.CANCELED
    assert newer.cancel_reason == "reduce-only: exceeds the position"


def test_a_kill_switch_keeps_both_the_take_profit_and_the_stop(long_half, place,
                                                              at) -> None:
    engine = long_half
    take_profit, _ = place(engine, at(1), side="sell", qty="0.5", price="61000.0")
    stop_loss, _ = place(engine, at(1), side="sell", type="stop", qty="0.5",
                         trigger="59000.0")
    set_state(engine, ACCOUNT, TS.REDUCE_ONLY, at(2))
    assert take_profit.status is S.ACCEPTED and stop_loss.status is S.ACCEPTED


def test_reduce_only_rejects_orders_that_increase(long_half, place, at) -> None:
    set_state(long_half, ACCOUNT, TS.REDUCE_ONLY, at(2))
    order, events = place(long_half, at(3), side="buy", qty="0.1", price="59000.0")
    assert order.reject_code == R.TRADING_REDUCE_ONLY
    assert events[-1].message == ("the account is in reduce-only mode: buy would increase "
                                  "the long position")


def test_reduce_only_accepts_reducing_orders(long_half, place, at) -> None:
    set_state(long_half, ACCOUNT, TS.REDUCE_ONLY, at(2))
    resting, _ = place(long_half, at(3), side="sell", qty="0.2", price="61000.0")
    assert resting.status is S.ACCEPTED
    # Sent reduce-only, as a live venue's reduceOnly flag.
    assert long_half.venues["paper-binance"].working(resting.order_id).reduce_only
    taking, _ = place(long_half, at(4), side="sell", type="market", qty="0.1")
    assert taking.status is S.FILLED and taking.avg_fill_price == Decimal("60000.0")
    assert pos(long_half) == Decimal("0.4")


def test_reduce_only_rejects_an_oversized_reducing_order(long_half, place, at) -> None:
    set_state(long_half, ACCOUNT, TS.REDUCE_ONLY, at(2))
    order, events = place(long_half, at(3), side="sell", type="market", qty="0.8")
    assert order.reject_code == R.TRADING_REDUCE_ONLY
    assert events[-1].message == ("the account is in reduce-only mode: sell 0.8 would flip "
                                  "the long 0.5")
    assert pos(long_half) == Decimal("0.5")


def test_reduce_only_clips_an_oversized_order_to_the_position(long_half, order_spec,
                                                               at) -> None:
    set_state(long_half, ACCOUNT, TS.REDUCE_ONLY, at(2))
    command = SubmitOrder(order_spec(side="sell", type="market", qty="0.8", coid="flat-1"),
                          clip_to_position=True)
    events = long_half.handle(command, at(3))
    submitted = events[0]
    assert isinstance(submitted, OrderSubmitted)
    assert submitted.spec.qty == Decimal("0.5") and submitted.requested_qty == Decimal("0.8")
    order = long_half.state.orders[submitted.order_id]
    assert (order.spec.qty, order.requested_qty, order.status) == (
        Decimal("0.5"), Decimal("0.8"), S.FILLED)
    assert pos(long_half) == 0
    # The retry (same request: 0.8, clipped) finds the first order.
    assert long_half.handle(command, at(4)) == []
    assert long_half.state.order_by_client_id("demo", "paper-binance", "flat-1") is order


def test_clip_to_position_also_applies_to_reduce_only_orders_when_active(long_half, place,
                                                                         at) -> None:
    order, _ = place(long_half, at(2), clip=True, side="sell", type="market", qty="2",
                     reduce_only=True)
    assert (order.spec.qty, order.requested_qty, order.status) == (
        Decimal("0.5"), Decimal("2"), S.FILLED)


# ---- HALTED ---------------------------------------------------------------------------


def test_halted_rejects_new_orders_but_cancels_work(long_half, place, at) -> None:
    reducing, _ = place(long_half, at(1), side="sell", qty="0.3", price="61000.0")
    adding, _ = place(long_half, at(1), side="buy", qty="0.1", price="59000.0")
    set_state(long_half, ACCOUNT, TS.HALTED, at(2))
    assert adding.status is S.CANCELED
    for fields in ({"side": "buy", "qty": "0.1", "price": "59000.0"},
                   {"side": "sell", "qty": "0.1", "price": "61000.0"},  # even reducing
                   {"side": "sell", "type": "market", "qty": "0.5", "reduce_only": True}):
        order, events = place(long_half, at(3), **fields)
        assert order.reject_code == R.TRADING_HALTED
        assert events[-1].message == "trading is halted; only cancels are accepted"
    events = long_half.handle(CancelOrder(reducing.order_id, reason="ops"), at(4))
    assert [type(e) for e in events] == [OrderCancelRequested, OrderCanceled]
    assert reducing.status is S.CANCELED
    assert pos(long_half) == Decimal("0.5")


def test_cancel_all_works_while_halted(long_half, place, at) -> None:
    reducing, _ = place(long_half, at(1), side="sell", qty="0.3", price="61000.0")
    set_state(long_half, ACCOUNT, TS.HALTED, at(2))
    long_half.handle(CancelAll(client="demo"), at(3))
    assert reducing.status is S.CANCELED


# ---- scopes ---------------------------------------------------------------------------

ACCOUNTS = (("demo", "paper-binance"), ("demo", "paper-bybit"), ("other", "paper-binance"))


@pytest.fixture
def three_accounts(make_engine, make_instrument, market, at):
    engine = make_engine(
        extra_instruments=[make_instrument("BTC-PERP", venue="paper-bybit")],
        extra_accounts=[AccountSetup("demo", "paper-bybit", Decimal(5)),
                        AccountSetup("other", "paper-binance", Decimal(5))])
    market.quote(engine, at(0))
    market.quote(engine, at(0), venue="paper-bybit")
    return engine


@pytest.mark.parametrize(("scope", "state", "affected"), [
    (Scope(), TS.HALTED, ACCOUNTS),
    (Scope("demo"), TS.REDUCE_ONLY, ACCOUNTS[:2]),
    (Scope(venue="paper-bybit"), TS.HALTED, ACCOUNTS[1:2]),
    (Scope(venue="paper-binance"), TS.REDUCE_ONLY, (ACCOUNTS[0], ACCOUNTS[2])),
    (Scope("demo", "paper-binance"), TS.HALTED, ACCOUNTS[:1]),
    (Scope("other", "paper-binance"), TS.REDUCE_ONLY, ACCOUNTS[2:]),
], ids=lambda v: getattr(v, "describe", lambda: None)() or str(v))
def test_scopes(scope, state, affected, three_accounts, place, at) -> None:
    engine = three_accounts
    resting = {acct: place(engine, at(1), client=acct[0], venue=acct[1], qty="0.1",
                           price="59000.0")[0] for acct in ACCOUNTS}
    set_state(engine, scope, state, at(2))
    code = R.TRADING_HALTED if state is TS.HALTED else R.TRADING_REDUCE_ONLY
    for client, venue in ACCOUNTS:
        hit = (client, venue) in affected
        assert engine.trading_state(client, venue) == (
            (state, scope) if hit else (TS.ACTIVE, Scope()))
        order, _ = place(engine, at(3), client=client, venue=venue, qty="0.1", price="59000.0")
        assert order.reject_code == (code if hit else None)
        # flat accounts: every resting order in scope could add exposure, so it went
        assert resting[(client, venue)].status is (S.CANCELED if hit else S.ACCEPTED)


def test_the_most_severe_scope_wins(three_accounts, place, at) -> None:
    engine = three_accounts
    set_state(engine, Scope("demo"), TS.REDUCE_ONLY, at(1))
    set_state(engine, ACCOUNT, TS.HALTED, at(2))
    assert engine.trading_state("demo", "paper-binance") == (TS.HALTED, ACCOUNT)
    assert engine.trading_state("demo", "paper-bybit") == (TS.REDUCE_ONLY, Scope("demo"))
    set_state(engine, ACCOUNT, TS.ACTIVE, at(3))
    assert engine.trading_state("demo", "paper-binance") == (TS.REDUCE_ONLY, Scope("demo"))
    order, _ = place(engine, at(4), qty="0.1", price="59000.0")
    assert order.reject_code == R.TRADING_REDUCE_ONLY  # the client scope still holds
    set_state(engine, Scope(), TS.HALTED, at(5))
    assert engine.trading_state("other", "paper-binance") == (TS.HALTED, Scope())
    assert engine.trading_state("demo", "paper-binance") == (TS.HALTED, Scope())


def test_setting_the_same_state_twice_emits_nothing(long_half, at) -> None:
    assert set_state(long_half, ACCOUNT, TS.ACTIVE, at(1)) == []  # already active
    assert len(set_state(long_half, ACCOUNT, TS.REDUCE_ONLY, at(2))) == 1
    assert set_state(long_half, ACCOUNT, TS.REDUCE_ONLY, at(3), reason="again") == []
    assert long_half.state.trading_states == {ACCOUNT: TS.REDUCE_ONLY}


def test_active_restores_trading(long_half, place, at) -> None:
    set_state(long_half, ACCOUNT, TS.REDUCE_ONLY, at(1))
    events = set_state(long_half, ACCOUNT, TS.ACTIVE, at(2), reason="all clear", actor="cro")
    assert events == [TradingStateChanged(ACCOUNT, TS.ACTIVE, TS.REDUCE_ONLY, "all clear", "cro",
                                          at(2))]
    assert long_half.state.trading_states == {}
    order, _ = place(long_half, at(3), side="buy", qty="0.1", price="59000.0")
    assert order.status is S.ACCEPTED


# ---- close-all ------------------------------------------------------------------------


@pytest.fixture
def two_positions(make_engine, make_instrument, market, place, at):
    """demo@paper-binance: long 0.5 BTC-PERP @ 60000.1, short 2 ETH-PERP @ 3000.0, and a
    resting BTC buy; other@paper-binance: long 0.1 BTC-PERP (outside a demo scope)."""
    engine = make_engine(
        extra_instruments=[make_instrument("ETH-PERP")],
        extra_accounts=[AccountSetup("other", "paper-binance", Decimal(5))])
    market.quote(engine, at(0))
    market.quote(engine, at(0), "3000.0", "3000.1", "10", "10", symbol="ETH-PERP")
    place(engine, at(0), type="market", qty="0.5")
    place(engine, at(0), symbol="ETH-PERP", side="sell", type="market", qty="2")
    place(engine, at(0), client="other", type="market", qty="0.1")
    market.quote(engine, at(1))
    market.quote(engine, at(1), "3000.0", "3000.1", "10", "10", symbol="ETH-PERP")
    resting, _ = place(engine, at(1), qty="0.1", price="59000.0")
    assert (pos(engine), pos(engine, symbol="ETH-PERP"), pos(engine, "other")) == (
        Decimal("0.5"), Decimal(-2), Decimal("0.1"))
    return engine, resting


def test_close_all_flattens_every_position_in_scope(two_positions, at) -> None:
    engine, resting = two_positions
    events = engine.handle(CloseAll(ACCOUNT, "flatten", actor="ops"), at(2))
    assert events[0] == TradingStateChanged(ACCOUNT, TS.REDUCE_ONLY, TS.ACTIVE, "flatten",
                                            "ops", at(2))
    assert resting.status is S.CANCELED
    done = events[-1]
    assert isinstance(done, CloseAllCompleted)
    btc_order, eth_order = (e.order_id for e in events if isinstance(e, OrderSubmitted))
    assert done == CloseAllCompleted(ACCOUNT, (
        CloseResult("demo", "paper-binance", "BTC-PERP", Decimal("0.5"), btc_order,
                    Decimal("0.5"), Decimal("60000.0"), "closed"),
        CloseResult("demo", "paper-binance", "ETH-PERP", Decimal(-2), eth_order,
                    Decimal(2), Decimal("3000.1"), "closed"),
    ), "flatten", "ops", at(2))
    assert pos(engine) == 0 and pos(engine, symbol="ETH-PERP") == 0
    assert pos(engine, "other") == Decimal("0.1")  # outside the scope
    for order_id in (btc_order, eth_order):
        spec = engine.state.orders[order_id].spec
        assert spec.reduce_only and spec.type.value == "market"
        assert spec.tags.exit_reason == "close_all"
    assert [t.exit_reason for t in engine.state.closed_trades] == ["close_all", "close_all"]
    assert engine.trading_state("demo", "paper-binance") == (TS.REDUCE_ONLY, ACCOUNT)
    assert engine.trading_state("other", "paper-binance") == (TS.ACTIVE, Scope())


def test_close_all_on_a_client_scope_covers_its_accounts_only(two_positions, at) -> None:
    engine, _ = two_positions
    events = engine.handle(CloseAll(Scope("other"), "flatten other"), at(2))
    (result,) = events[-1].results
    assert (result.client, result.symbol, result.status) == ("other", "BTC-PERP", "closed")
    assert pos(engine, "other") == 0 and pos(engine) == Decimal("0.5")


def test_close_all_works_even_when_halted(two_positions, place, at) -> None:
    engine, _ = two_positions
    set_state(engine, Scope(), TS.HALTED, at(2))
    events = engine.handle(CloseAll(ACCOUNT, "flatten"), at(3))
    assert [r.status for r in events[-1].results] == ["closed", "closed"]
    assert pos(engine) == 0 and pos(engine, symbol="ETH-PERP") == 0
    # the global halt still stands over the account's new REDUCE_ONLY
    assert engine.trading_state("demo", "paper-binance") == (TS.HALTED, Scope())
    assert engine.state.trading_states[ACCOUNT] is TS.REDUCE_ONLY
    order, _ = place(engine, at(4), side="sell", qty="0.1", price="61000.0")
    assert order.reject_code == R.TRADING_HALTED


def test_close_all_with_an_account_halt_still_flattens(two_positions, at) -> None:
    engine, _ = two_positions
    set_state(engine, ACCOUNT, TS.HALTED, at(2))
    events = engine.handle(CloseAll(ACCOUNT, "flatten"), at(3))
    assert [r.status for r in events[-1].results] == ["closed", "closed"]
    assert pos(engine) == 0 and pos(engine, symbol="ETH-PERP") == 0


def test_close_all_with_nothing_to_close(quoted_engine, at) -> None:
    events = quoted_engine.handle(CloseAll(ACCOUNT, "nothing"), at(1))
    assert [type(e) for e in events] == [TradingStateChanged, CloseAllCompleted]
    assert events[-1].results == ()


def test_close_all_with_thin_liquidity_is_partial(long_half, market, at) -> None:
    market.snapshot(long_half, at(2), bids=[("60000.0", "0.2")], asks=[("60000.1", "1")])
    events = long_half.handle(CloseAll(ACCOUNT, "flatten"), at(3))
    (result,) = events[-1].results
    assert (result.qty_before, result.filled_qty, result.avg_price, result.status,
            result.message) == (Decimal("0.5"), Decimal("0.2"), Decimal("60000.0"), "partial",
                                "not enough liquidity: the rest of the market order expired")
    assert pos(long_half) == Decimal("0.3")


def test_close_all_with_no_liquidity_fails(long_half, market, at) -> None:
    market.mark(long_half, at(2), "60000.0")
    market.snapshot(long_half, at(2), bids=[], asks=[("60000.1", "1")])
    events = long_half.handle(CloseAll(ACCOUNT, "flatten"), at(3))
    (result,) = events[-1].results
    assert (result.filled_qty, result.avg_price, result.status, result.message) == (
        Decimal(0), None, "failed",
        "not enough liquidity: the rest of the market order expired")
    assert pos(long_half) == Decimal("0.5")
    assert long_half.trading_state("demo", "paper-binance") == (TS.REDUCE_ONLY, ACCOUNT)


def test_replace_is_refused_while_halted_and_the_original_stays(long_half, place, at) -> None:
    reducing, _ = place(long_half, at(1), side="sell", qty="0.3", price="61000.0")
    set_state(long_half, ACCOUNT, TS.HALTED, at(2))
    with pytest.raises(CommandRefused) as info:
        long_half.handle(ReplaceOrder(reducing.order_id, new_price=Decimal("61500.0")), at(3))
    assert info.value.code is R.TRADING_HALTED
    assert (reducing.status, reducing.spec.price) == (S.ACCEPTED, Decimal("61000.0"))
    assert long_half.venues["paper-binance"].working(reducing.order_id) is not None


def test_close_all_behind_latency_reports_pending_then_flattens(make_engine, market, place,
                                                                at) -> None:
    engine = make_engine(venue_config=PaperVenueConfig(
        submit_latency=timedelta(milliseconds=50), response_latency=timedelta(milliseconds=20)))
    market.quote(engine, at(0))
    place(engine, at(0), type="market", qty="0.5")
    engine.advance(at(1))
    market.quote(engine, at(1))
    assert pos(engine) == Decimal("0.5")
    events = engine.handle(CloseAll(ACCOUNT, "flatten"), at(2))
    (result,) = events[-1].results
    assert (result.status, result.filled_qty) == ("pending", Decimal(0))
    assert result.message == "the close order is on its way to the venue"
    engine.advance(at(2.07))
    assert pos(engine) == 0
    assert engine.state.orders[result.order_id].status is S.FILLED
