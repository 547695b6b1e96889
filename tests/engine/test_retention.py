"""Bounded memory: the engine keeps open orders and a window of recent finished ones;
what left memory is remembered for idempotency by a filter of its client order ids;
a replay rebuilds exactly the same bounded state."""

from __future__ import annotations

from decimal import Decimal

from app.defaults import VENUES, demo_instruments
from app.domain.commands import CancelOrder, SubmitOrder
from app.domain.events import Event, OrderSubmitted
from app.domain.market import MarkPrice, Quote
from app.domain.orders import OrderSpec, OrderStatus, OrderType, Side
from app.engine import Engine
from app.engine.retention import EvictedIds
from app.simulate import START, build_demo_engine

VENUE = VENUES[0]
D = Decimal


def engine_with_window(window: int) -> Engine:
    engine = build_demo_engine(demo_instruments((VENUE,)), (VENUE,))
    engine.state.retain_finished = window
    engine.state.retain_trades = 10
    engine.on_market(Quote(VENUE, "BTC-PERP", D("60000.0"), D(5), D("60000.1"), D(5), START),
                     START)
    engine.on_market(MarkPrice(VENUE, "BTC-PERP", D("60000.0"), START), START)
    return engine


def churn(engine: Engine, n: int, keep_open: int = 3) -> list[Event]:
    """``n`` limit orders placed and canceled (the first ``keep_open`` stay open), and
    some market orders that fill and close trades."""
    events: list[Event] = []
    for i in range(n):
        spec = OrderSpec("demo", VENUE, "BTC-PERP", Side.BUY, OrderType.LIMIT, D("0.001"),
                         price=D("50000.0"), client_order_id=f"c-{i}")
        placed = engine.handle(SubmitOrder(spec), START)
        events += placed
        if i >= keep_open:
            order_id = next(e for e in placed if isinstance(e, OrderSubmitted)).order_id
            events += engine.handle(CancelOrder(order_id), START)
        if i % 10 == 0:
            side = Side.BUY if i % 20 == 0 else Side.SELL
            events += engine.handle(SubmitOrder(OrderSpec(
                "demo", VENUE, "BTC-PERP", side, OrderType.MARKET, D("0.001"))), START)
    return events


def test_finished_orders_beyond_the_window_leave_memory() -> None:
    engine = engine_with_window(50)
    churn(engine, 600)
    state = engine.state
    open_ids = [oid for oid, o in state.orders.items() if o.is_open]
    assert len(open_ids) == 3  # every open order stays, however old
    assert all(state.orders[oid].spec.client_order_id in {"c-0", "c-1", "c-2"}
               for oid in open_ids)
    assert len(state.orders) == 50 + 3
    assert len(state.by_client_order_id) == len(state.orders)
    assert state.evicted_orders == state.last_order_id - 53
    assert len(state.closed_trades_by_client["demo"]) <= 20
    # The newest finished orders are the ones kept.
    finished = sorted(oid for oid, o in state.orders.items() if not o.is_open)
    assert finished == list(range(state.last_order_id - 49, state.last_order_id + 1))


def test_the_evicted_filter_remembers_every_evicted_client_order_id() -> None:
    engine = engine_with_window(50)
    churn(engine, 600)
    state = engine.state
    evicted = [f"c-{i}" for i in range(3, 500)]
    assert all(state.may_have_evicted("demo", VENUE, c) for c in evicted)  # never "no"
    never_used = [f"fresh-{i}" for i in range(2000)]
    false_maybes = sum(state.may_have_evicted("demo", VENUE, c) for c in never_used)
    assert false_maybes <= 2
    assert not state.may_have_evicted("demo-2", VENUE, "c-10")  # keyed by account


def test_a_replay_rebuilds_the_same_bounded_state() -> None:
    live = engine_with_window(40)
    setup = engine_with_window(40)  # the same market data, for the replaying engine
    events = churn(live, 400)
    replayed = setup
    replayed.replay(events)
    assert replayed.state.comparable() == live.state.comparable()
    assert replayed.state.evicted_ids == live.state.evicted_ids


def test_the_filter_alone_and_a_tiny_window() -> None:
    ids = EvictedIds()
    ids.add(("a", "v", "x"))
    assert ids.may_contain(("a", "v", "x")) and not ids.may_contain(("a", "v", "y"))
    engine = engine_with_window(5)
    churn(engine, 30, keep_open=0)
    assert all(o.status in (OrderStatus.CANCELED, OrderStatus.FILLED)
               for o in engine.state.orders.values())
    assert len(engine.state.orders) == 5
