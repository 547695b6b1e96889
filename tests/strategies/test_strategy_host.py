"""The strategy host: lifecycle as events, strategies between engine steps on the
engine's clock, kill switches and account scope applied to their orders, a raising
strategy stopped while the engine goes on, determinism and resumption by replay."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from app.defaults import CLIENTS, VENUES, demo_instruments
from app.domain.commands import SetTradingState
from app.domain.events import Event, OrderFilled, OrderRejected, OrderSubmitted
from app.domain.market import MarketUpdate
from app.domain.orders import OrderType, Side
from app.domain.rejections import CommandRefused
from app.domain.strategies import (
    ConfigureStrategy,
    CreateStrategy,
    StartStrategy,
    StopStrategy,
    StrategyStarted,
    StrategyStatus,
    StrategyStopped,
)
from app.domain.trading_state import Scope, TradingState
from app.engine import Engine
from app.marketdata.synthetic import SyntheticMarket
from app.simulate import START, build_demo_engine
from app.store.codec import encode_event
from app.strategies.base import (
    BaseStrategy,
    Commands,
    StrategyContext,
    StrategyKind,
    StrategyParams,
)
from app.strategies.demo import DEMO
from app.strategies.host import StrategyHost

VENUE = VENUES[0]


class Hedger(BaseStrategy):
    """Buys once at start; on each of its fills, sells the same qty at once."""

    def on_start(self, ctx: StrategyContext) -> Commands:
        return [ctx.submit("BTC-PERP", Side.BUY, OrderType.MARKET, Decimal("0.001"))]

    def on_event(self, event: Event, ctx: StrategyContext) -> Commands:
        if isinstance(event, OrderFilled):
            order = ctx.order(event.order_id)
            if order is not None and order.spec.side is Side.BUY:
                return [ctx.submit("BTC-PERP", Side.SELL, OrderType.MARKET, event.qty)]
        return None


class Raiser(BaseStrategy):
    def __init__(self, after: int):
        self.after, self.seen = after, 0

    def on_market(self, update: MarketUpdate, ctx: StrategyContext) -> Commands:
        self.seen += 1
        if self.seen > self.after:
            raise ZeroDivisionError("a bug in the strategy")
        return None


class Trespasser(BaseStrategy):
    def on_start(self, ctx: StrategyContext) -> Commands:
        other = CLIENTS[1] if ctx.client == CLIENTS[0] else CLIENTS[0]
        spec = ctx.submit("BTC-PERP", Side.BUY, OrderType.MARKET, Decimal("0.001")).spec
        from dataclasses import replace

        from app.domain.commands import SubmitOrder
        return [SubmitOrder(replace(spec, client=other))]


class NoParams(StrategyParams):
    after: int = 3


TEST_KINDS = {
    "demo": DEMO,
    "hedger": StrategyKind("hedger", "test", NoParams, lambda p: Hedger()),
    "raiser": StrategyKind("raiser", "test", NoParams, lambda p: Raiser(p.after)),
    "trespasser": StrategyKind("trespasser", "test", NoParams, lambda p: Trespasser()),
}


def feed(seed: int = 5, start: datetime = START) -> Iterable[MarketUpdate]:
    return SyntheticMarket(demo_instruments((VENUE,)), seed=seed, start=start)


def world() -> Engine:
    return build_demo_engine(demo_instruments((VENUE,)), (VENUE,))


def create(engine: Engine, sid: str, kind: str, client: str = CLIENTS[0],
           params: dict[str, Any] | None = None, at: datetime = START) -> list[Event]:
    validated = TEST_KINDS[kind].validate(params or {})
    return (engine.handle(CreateStrategy(sid, kind, client, VENUE, validated, "test"), at)
            + engine.handle(StartStrategy(sid, "test"), at))


def run(engine: Engine, host: StrategyHost, updates: Iterable[MarketUpdate],
        limit: int) -> list[Event]:
    """What ``simulate`` and the bus do: an engine step, then the host's reaction."""
    out: list[Event] = []
    for i, update in enumerate(updates):
        if i == limit:
            break
        events = engine.on_market(update, update.ts)
        out += events
        out += host.step(engine, update.ts, events, update).events
    return out


def test_lifecycle_is_events_and_idempotent() -> None:
    engine = world()
    params = TEST_KINDS["demo"].validate({"seed": 1})
    created = engine.handle(CreateStrategy("s1", "demo", CLIENTS[0], VENUE, params, "op"),
                            START)
    assert [type(e).__name__ for e in created] == ["StrategyCreated"]
    record = engine.state.strategies["s1"]
    assert record.status is StrategyStatus.STOPPED and record.params == params
    # The same definition again: nothing new. Another one under the same id: refused.
    assert engine.handle(CreateStrategy("s1", "demo", CLIENTS[0], VENUE, params, "op"),
                         START) == []
    with pytest.raises(CommandRefused) as refused:
        engine.handle(CreateStrategy("s1", "demo", CLIENTS[1], VENUE, params, "op"), START)
    assert refused.value.code.value == "DUPLICATE_STRATEGY"
    assert [type(e) for e in engine.handle(StartStrategy("s1", "op"), START)] == [
        StrategyStarted]
    assert engine.handle(StartStrategy("s1", "op"), START) == []
    new = TEST_KINDS["demo"].validate({"seed": 2})
    (configured,) = engine.handle(ConfigureStrategy("s1", new, "op"), START)
    assert configured.previous == params and engine.state.strategies["s1"].params == new
    assert [type(e) for e in engine.handle(StopStrategy("s1", "enough", "op"), START)] == [
        StrategyStopped]
    assert engine.handle(StopStrategy("s1", "again", "op"), START) == []
    with pytest.raises(CommandRefused) as refused:
        engine.handle(StartStrategy("nope", "op"), START)
    assert refused.value.code.value == "UNKNOWN_STRATEGY"
    with pytest.raises(CommandRefused):
        engine.handle(CreateStrategy("s2", "demo", "nobody", VENUE, params, "op"), START)


def test_strategy_orders_carry_its_id_and_go_through_the_risk_gate() -> None:
    engine, host = world(), StrategyHost(TEST_KINDS)
    create(engine, "demo-1", "demo", params={"seed": 3, "order_every_s": "1"})
    events = run(engine, host, feed(), 2000)  # about 50 s of market
    submitted = [e for e in events if isinstance(e, OrderSubmitted)]
    assert len(submitted) > 20
    assert {e.spec.tags.strategy for e in submitted} == {"demo-1"}
    assert {e.spec.client for e in submitted} == {CLIENTS[0]}
    assert {e.actor for e in submitted} == {"strategy:demo-1"}
    # A kill switch applies to its orders exactly as to any other.
    engine.handle(SetTradingState(Scope(CLIENTS[0], None), TradingState.HALTED, "t", "op"),
                  START + timedelta(hours=1))
    later = run(engine, host, feed(seed=6, start=START + timedelta(hours=2)), 400)
    rejected = [e for e in later if isinstance(e, OrderRejected)]
    assert rejected and {e.code for e in rejected} == {"TRADING_HALTED"}


def test_a_strategy_sees_its_fills_in_the_same_step_and_hedges_them() -> None:
    engine, host = world(), StrategyHost(TEST_KINDS)
    create(engine, "h", "hedger")
    events = run(engine, host, feed(), 30)
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert len(fills) >= 2
    first_buy = next(e for e in fills if engine.state.orders[e.order_id].spec.side is Side.BUY)
    first_sell = next(e for e in fills
                      if engine.state.orders[e.order_id].spec.side is Side.SELL)
    assert first_sell.at == first_buy.at  # the same engine step
    assert engine.state.positions[(CLIENTS[0], VENUE, "BTC-PERP")].qty == 0


def test_a_raising_strategy_is_stopped_and_the_engine_goes_on() -> None:
    engine, host = world(), StrategyHost(TEST_KINDS)
    create(engine, "bad", "raiser", params={"after": 5})
    create(engine, "good", "demo", client=CLIENTS[1], params={"seed": 4, "order_every_s": "1"})
    failures = []
    for i, update in enumerate(feed()):
        if i == 2000:
            break
        events = engine.on_market(update, update.ts)
        failures += host.step(engine, update.ts, events, update).failures
    assert [f.strategy_id for f in failures] == ["bad"]
    assert "ZeroDivisionError" in failures[0].error
    bad = engine.state.strategies["bad"]
    assert bad.status is StrategyStatus.FAILED and "ZeroDivisionError" in bad.status_reason
    assert host.running == ["good"]
    good_orders = [o for o in engine.state.orders.values() if o.spec.tags.strategy == "good"]
    assert len(good_orders) > 20  # it went on trading after the other one failed


def test_an_order_for_another_account_stops_the_strategy() -> None:
    engine, host = world(), StrategyHost(TEST_KINDS)
    create(engine, "t", "trespasser")
    result = host.step(engine, START, [])
    assert [f.strategy_id for f in result.failures] == ["t"]
    assert "not its own account" in result.failures[0].error
    assert not engine.state.orders  # nothing was placed


def test_the_same_data_gives_byte_identical_events_and_a_replay_resumes() -> None:
    def once() -> tuple[Engine, list[Event]]:
        engine, host = world(), StrategyHost(TEST_KINDS)
        events = create(engine, "d", "demo", params={"seed": 9, "order_every_s": "2"})
        return engine, events + run(engine, host, feed(), 2000)

    _, first = once()
    _, second = once()
    assert [encode_event(e) for e in first] == [encode_event(e) for e in second]
    # A restart: the log replayed into a fresh engine knows the strategy runs, and a
    # fresh host starts it again from the next step.
    restarted = world()
    restarted.replay(first)
    assert restarted.state.strategies["d"].running
    host = StrategyHost(TEST_KINDS)
    more = run(restarted, host, feed(seed=11, start=START + timedelta(hours=1)), 400)
    assert host.running == ["d"]
    assert any(isinstance(e, OrderSubmitted) and e.spec.tags.strategy == "d" for e in more)


def test_stopping_lets_the_strategy_cancel_its_orders() -> None:
    engine, host = world(), StrategyHost(TEST_KINDS)
    create(engine, "d", "demo", params={"seed": 2, "order_every_s": "1",
                                         "market_share": "0"})
    run(engine, host, feed(), 400)
    open_before = [o for o in engine.state.orders.values()
                   if o.is_open and o.spec.tags.strategy == "d"]
    assert open_before
    at = START + timedelta(hours=2)
    stopped = engine.handle(StopStrategy("d", "done", "op"), at)
    canceled = host.step(engine, at, stopped).events
    assert host.running == []
    assert not [o for o in engine.state.orders.values()
                if o.is_open and o.spec.tags.strategy == "d"]
    assert canceled
