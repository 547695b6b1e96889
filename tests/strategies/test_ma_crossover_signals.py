"""``ma_crossover`` with ``use_signals``: its crosses go through the signal pipeline
(the engine's signal parameters, OCO brackets) instead of its own order placing —
the same crosses, as the same signals an API caller would send."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from app.defaults import CLIENTS
from app.domain.events import Event, OrderSubmitted
from app.domain.orders import OrderType
from app.domain.signals import (
    BracketOpened,
    ExitMode,
    SetSignalParams,
    SignalParams,
    SignalReceived,
    SignalResolved,
    SizeMode,
)
from app.domain.strategies import CreateStrategy, StartStrategy
from app.simulate import bar_source, build_demo_engine
from app.strategies.common import STOP
from app.strategies.host import StrategyHost
from app.strategies.ma_crossover import MA_CROSSOVER, MaCrossover

SID = "ma-signals"
BARS = 600
PARAMS = {"symbol": "BTC-PERP", "interval": "1m", "fast_period": 5, "slow_period": 20,
          "order_notional": "100"}


def run(data_dir: Path, use_signals: bool) -> tuple[list[Event], list[int], Any]:
    """Feed ``BARS`` minutes of real BTC bars; the events, and every cross the
    strategy decided (its last signal, each time it changed)."""
    source = bar_source(data_dir / "btc-perp-2022-01_1m.csv")
    engine = build_demo_engine(source.instruments, source.venues, source.venue_config)
    venue = source.venues[0]
    updates = iter(source.feed)
    first = next(updates)
    engine.handle(SetSignalParams(CLIENTS[0], SignalParams(
        size_mode=SizeMode.FIXED, fixed_qty=Decimal("0.002"), exit_mode=ExitMode.FIXED_PCT,
        take_profit_pct=Decimal(2), stop_loss_pct=Decimal(1), max_slippage_bps=Decimal(50)),
        "test"), first.ts)
    params = MA_CROSSOVER.validate({**PARAMS, "use_signals": use_signals})
    events = engine.handle(CreateStrategy(SID, MA_CROSSOVER.name, CLIENTS[0], venue, params,
                                          "test"), first.ts)
    events += engine.handle(StartStrategy(SID, "test"), first.ts)
    host = StrategyHost()
    crosses: list[int] = []
    last = None
    for update in [first, *updates]:
        if update.ts - first.ts > (BARS * source.interval if source.interval else 0):
            break
        step = engine.on_market(update, update.ts)
        result = host.step(engine, update.ts, step, update)
        assert not result.failures, result.failures
        events += step + result.events
        strategy = host.instance(SID)
        assert isinstance(strategy, MaCrossover)
        if strategy.last_signal is not last:
            last = strategy.last_signal
            if last is not None:
                crosses.append(last.signal)
    return events, crosses, engine


def test_use_signals_routes_the_same_crosses_through_the_signal_pipeline(
        data_dir: Path) -> None:
    own_events, own_crosses, _ = run(data_dir, use_signals=False)
    events, crosses, engine = run(data_dir, use_signals=True)
    assert crosses == own_crosses and len(crosses) >= 4  # the decision is the same
    received = [e for e in events if isinstance(e, SignalReceived)]
    assert [e.signal for e in received] == crosses
    assert {e.strategy for e in received} == {SID}
    resolved = [e for e in events if isinstance(e, SignalResolved)]
    assert any(e.order_ids for e in resolved)
    submitted = [e for e in events if isinstance(e, OrderSubmitted)
                 and e.spec.tags.strategy == SID]
    # Every order came from a signal (its id on it); none from the strategy's own
    # placing: no stop-limit of its own, the bracket protects the position.
    assert submitted and all(e.spec.tags.signal_id for e in submitted)
    assert not [e for e in submitted if e.spec.tags.exit_reason == STOP
                and e.spec.type is OrderType.STOP_LIMIT]
    assert [e for e in events if isinstance(e, BracketOpened) and e.strategy == SID]
    # Without use_signals: no signal at all, and its own stop-limits.
    assert not [e for e in own_events if isinstance(e, SignalReceived)]
    assert [e for e in own_events if isinstance(e, OrderSubmitted)
            and e.spec.tags.exit_reason == STOP and e.spec.type is OrderType.STOP_LIMIT]
    assert engine.state.signals[received[0].signal_id].actor == f"strategy:{SID}"


def test_use_signals_defaults_off() -> None:
    assert MA_CROSSOVER.parse(MA_CROSSOVER.validate({})).use_signals is False  # type: ignore[attr-defined]
