"""Strategies on the host emit the same signals as POST /api/v1/signals: the engine
turns them into orders with the client's parameters, tagged with the strategy and
signal ids; a signal for another account stops the strategy."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from app.defaults import CLIENTS, VENUES, demo_instruments
from app.domain.events import OrderSubmitted
from app.domain.market import MarketUpdate
from app.domain.signals import (
    ExitMode,
    SetSignalParams,
    SignalParams,
    SignalResolved,
    SizeMode,
)
from app.domain.strategies import CreateStrategy, StartStrategy
from app.marketdata.synthetic import SyntheticMarket
from app.simulate import START, build_demo_engine
from app.strategies.base import (
    BaseStrategy,
    Commands,
    StrategyContext,
    StrategyKind,
    StrategyParams,
)
from app.strategies.host import StrategyHost

VENUE = VENUES[0]


class Flipper(BaseStrategy):
    """Long after 100 updates, short after 200, flat after 300."""

    def __init__(self) -> None:
        self.seen = 0

    def on_market(self, update: MarketUpdate, ctx: StrategyContext) -> Commands:
        self.seen += 1
        wanted = {100: 1, 200: -1, 300: 0}.get(self.seen)
        if wanted is None:
            return None
        return [ctx.signal("BTC-PERP", wanted, signal_id=f"flip-{self.seen}")]


class Meddler(BaseStrategy):
    def on_start(self, ctx: StrategyContext) -> Commands:
        return [replace(ctx.signal("BTC-PERP", 1), client=CLIENTS[1])]


class NoParams(StrategyParams):
    pass


KINDS = {"flipper": StrategyKind("flipper", "test", NoParams, lambda p: Flipper()),
         "meddler": StrategyKind("meddler", "test", NoParams, lambda p: Meddler())}


def start(engine, sid: str, kind: str) -> None:
    engine.handle(CreateStrategy(sid, kind, CLIENTS[0], VENUE, (), "test"), START)
    engine.handle(StartStrategy(sid, "test"), START)


def test_a_strategy_signal_becomes_tagged_orders() -> None:
    engine = build_demo_engine(demo_instruments((VENUE,)), (VENUE,))
    engine.handle(SetSignalParams(CLIENTS[0], SignalParams(
        size_mode=SizeMode.FIXED, fixed_qty=Decimal("0.002"), exit_mode=ExitMode.FIXED_PCT,
        take_profit_pct=Decimal(2), stop_loss_pct=Decimal(1), max_slippage_bps=Decimal(50)),
        "test"), START)
    start(engine, "flip", "flipper")
    host = StrategyHost(KINDS)
    events = []
    for i, update in enumerate(SyntheticMarket(demo_instruments((VENUE,)), seed=5,
                                               start=START)):
        if i == 400:
            break
        step = engine.on_market(update, update.ts)
        events += step + host.step(engine, update.ts, step, update).events
    resolved = [e for e in events if isinstance(e, SignalResolved)]
    assert [e.signal_id for e in resolved] == ["flip-100", "flip-200", "flip-300"]
    assert all(e.reason is None for e in resolved), [e.message for e in resolved]
    submitted = [e for e in events if isinstance(e, OrderSubmitted)]
    assert {e.spec.tags.strategy for e in submitted} == {"flip"}
    assert all(e.spec.tags.signal_id and e.spec.tags.signal_id.startswith("flip-")
               for e in submitted)
    # long, then reversed (close + short entry, with a bracket each), then flat
    assert len(engine.state.signals["flip-200"].resolved.order_ids) == 2
    assert engine.state.positions[(CLIENTS[0], VENUE, "BTC-PERP")].qty == 0
    assert all(b.closed for b in engine.state.brackets.values())
    assert engine.state.signals["flip-100"].actor == "strategy:flip"


def test_a_signal_for_another_account_stops_the_strategy() -> None:
    engine = build_demo_engine(demo_instruments((VENUE,)), (VENUE,))
    start(engine, "m", "meddler")
    result = StrategyHost(KINDS).step(engine, START, [])
    assert [f.strategy_id for f in result.failures] == ["m"]
    assert "not its own account" in result.failures[0].error
    assert not engine.state.signals
