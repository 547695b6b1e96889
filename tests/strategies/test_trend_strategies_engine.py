"""Both built-in trend strategies on the engine, fed real BTC-PERP minutes (each
minute as quotes, trades and marks): the orders they place (entries, protective
stops, TP1 partial and TP2, breakeven after TP1, exits), and a restart — the log
replayed into a fresh engine and a fresh host — in the middle of a trade: the
strategy adopts its open trade, keeps its stop, and does not enter twice."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.defaults import CLIENTS
from app.domain.commands import Withdraw
from app.domain.events import Event, OrderFilled, OrderSubmitted
from app.domain.market import MarketUpdate
from app.domain.orders import Order, OrderType, Side
from app.domain.strategies import CreateStrategy, StartStrategy
from app.engine import Engine
from app.simulate import bar_source, build_demo_engine
from app.strategies.atr_trend import AtrTrend
from app.strategies.common import STOP, TP1, TP2
from app.strategies.host import StrategyHost
from app.strategies.ma_crossover import MaCrossover
from app.strategies.registry import kinds

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "btc-perp-2022-01_1m.csv"
SID = "trend-1"
ATR_PARAMS = dict(trend_ema_period=20, fast_ema_period=5, slow_ema_period=10, atr_period=5,
                  max_position_notional="300", max_bars_in_trade=12)
MA_PARAMS = dict(interval="5m", fast_period=5, slow_period=15, order_notional="300")


@dataclass
class Run:
    engine: Engine
    host: StrategyHost
    updates: Iterator[MarketUpdate]
    events: list[Event] = field(default_factory=list)
    entries_while_in_position: int = 0

    def strategy(self) -> Any:
        return self.host._running[SID].strategy

    def mine(self) -> list[Order]:
        return [o for o in self.engine.state.orders.values()
                if o.is_open and o.spec.tags.strategy == SID]

    def position(self) -> Any:
        return self.engine.state.positions.get((CLIENTS[0], self.engine_venue, "BTC-PERP"))

    @property
    def engine_venue(self) -> str:
        return next(iter(self.engine.venues))

    def step(self, update: MarketUpdate) -> list[Event]:
        position = self.position()
        in_position = position is not None and position.qty != 0
        events = self.engine.on_market(update, update.ts)
        result = self.host.step(self.engine, update.ts, events, update)
        assert not result.failures, result.failures
        produced = events + result.events
        self.events += produced
        for e in produced:
            if (in_position and isinstance(e, OrderSubmitted) and e.spec.tags.strategy == SID
                    and not e.spec.reduce_only):
                self.entries_while_in_position += 1
        return produced

    def until(self, done: Callable[[Run], bool], limit: int = 200_000) -> bool:
        for i, update in enumerate(self.updates):
            self.step(update)
            if done(self):
                return True
            if i == limit:
                break
        return False


def start(kind: str, params: dict[str, Any]) -> Run:
    if not DATA.exists():
        pytest.skip(f"{DATA} is not there")
    source = bar_source(DATA)
    engine = build_demo_engine(source.instruments, source.venues, source.venue_config)
    updates = iter(source.feed)
    first = next(updates)
    validated = kinds()[kind].validate(params)
    events = (engine.handle(CreateStrategy(SID, kind, CLIENTS[0], source.venues[0], validated,
                                           "test"), first.ts)
              + engine.handle(StartStrategy(SID, "test"), first.ts))
    run = Run(engine, StrategyHost(), updates, events)
    run.step(first)
    return run


def restart(before: Run) -> Run:
    """What the server does on a restart: the log replayed into a fresh engine that
    hands its live orders back to the venues, a fresh host; the feed goes on where
    it was."""
    source = bar_source(DATA)
    engine = build_demo_engine(source.instruments, source.venues, source.venue_config)
    last = before.events[-1]
    restored = engine.recover(before.events, getattr(last, "at", None) or last.ts)
    return Run(engine, StrategyHost(), before.updates, list(restored))


def in_trade(run: Run) -> bool:
    p = run.position()
    strategy = run.strategy()
    return (p is not None and p.qty > 0 and strategy.trade is not None
            and strategy.trade.targets_placed)


def by_reason(run: Run, reason: str | None) -> list[Order]:
    return [o for o in run.mine() if o.spec.tags.exit_reason == reason]


def test_atr_trend_places_stop_and_targets_and_moves_to_breakeven_after_tp1() -> None:
    run = start("atr_trend", ATR_PARAMS)
    assert run.until(in_trade)
    trade = run.strategy().trade
    position = run.position()
    (stop,) = by_reason(run, STOP)
    (tp1,) = by_reason(run, TP1)
    (tp2,) = by_reason(run, TP2)
    assert stop.spec.type is OrderType.STOP and stop.spec.reduce_only
    assert stop.spec.side is Side.SELL and stop.spec.qty == position.qty
    assert stop.spec.trigger_price < trade.entry < tp1.spec.price < tp2.spec.price
    assert tp1.spec.qty + tp2.spec.qty == position.qty
    assert tp1.spec.reduce_only and tp2.spec.reduce_only
    # What the dashboard shows of it: the host reports its last signal and trade.
    status = run.host.status(SID)
    assert status is not None and status["last_signal"].signal == 1
    assert status["trade"] is trade
    # R multiples: TP1 1 R, TP2 2 R from the entry.
    assert abs(tp1.spec.price - (trade.entry + trade.risk)) <= 1
    assert abs(tp2.spec.price - (trade.entry + 2 * trade.risk)) <= 1

    def tp1_filled(r: Run) -> bool:
        return any(isinstance(e, OrderFilled) and r.engine.state.orders[e.order_id]
                   .spec.tags.exit_reason == TP1 for e in r.events[-20:])
    assert run.until(tp1_filled)
    trade = run.strategy().trade
    assert trade is not None and trade.tp1_done
    (stop,) = by_reason(run, STOP)
    assert stop.spec.trigger_price == trade.entry.quantize(stop.spec.trigger_price)  # breakeven
    assert stop.spec.qty == run.position().qty
    assert not by_reason(run, TP1) and len(by_reason(run, TP2)) == 1
    assert run.entries_while_in_position == 0


def test_atr_trend_exits_after_max_bars_and_cancels_its_orders() -> None:
    run = start("atr_trend", ATR_PARAMS)

    def max_bars_exit(r: Run) -> bool:
        return any(isinstance(e, OrderSubmitted) and e.spec.tags.exit_reason == "max_bars"
                   for e in r.events[-20:])
    assert run.until(max_bars_exit)
    run.until(lambda r: True)  # one more step: the exit fills, the rest is cancelled
    assert run.position().qty == 0
    assert run.mine() == []


def test_a_restarted_atr_trend_adopts_its_open_trade_and_does_not_enter_twice() -> None:
    run = start("atr_trend", ATR_PARAMS)
    assert run.until(in_trade)
    before = run.strategy().trade
    stop_before = {o.order_id for o in by_reason(run, STOP)}
    targets_before = {o.order_id for o in by_reason(run, TP1) + by_reason(run, TP2)}

    again = restart(run)
    assert again.engine.state.strategies[SID].running
    update = next(again.updates)
    again.step(update)
    adopted = again.strategy().trade
    assert isinstance(again.strategy(), AtrTrend) and adopted is not None
    assert adopted.entry == again.position().avg_entry == before.entry
    assert adopted.opened_at == before.opened_at
    if not any(isinstance(e, OrderFilled) for e in again.events):
        # Nothing filled on that first step: the very same orders protect the trade.
        assert {o.order_id for o in by_reason(again, STOP)} == stop_before
        assert {o.order_id for o in by_reason(again, TP1) + by_reason(again, TP2)} == \
            targets_before
        assert adopted.stop == before.stop.quantize(adopted.stop) or adopted.stop <= before.stop
    # It runs the trade to its end (stop, target or bar limit) without a second entry.
    assert again.until(lambda r: r.position().qty == 0)
    assert again.entries_while_in_position == 0
    assert again.mine() == []


def test_ma_crossover_reverses_on_crosses_with_a_stop_limit_at_stop_pct() -> None:
    run = start("ma_crossover", MA_PARAMS)
    assert run.until(lambda r: r.position() is not None and r.position().qty != 0
                     and bool(by_reason(r, STOP)))
    position = run.position()
    (stop,) = by_reason(run, STOP)
    sign = 1 if position.qty > 0 else -1
    assert stop.spec.type is OrderType.STOP_LIMIT and stop.spec.reduce_only
    assert stop.spec.qty == abs(position.qty)
    # 2 % from the average entry; the limit 10 bps beyond the trigger.
    expected = position.avg_entry * (1 - sign * Decimal("0.02"))
    assert abs(stop.spec.trigger_price - expected) <= 1
    assert abs(stop.spec.price - stop.spec.trigger_price * (1 - sign * Decimal("0.001"))) <= 1
    assert run.strategy().last_signal.signal == sign
    # The next cross reverses: the position changes sign, one stop for the new one.
    assert run.until(lambda r: r.position().qty * sign < 0 and bool(by_reason(r, STOP)))
    assert len(by_reason(run, STOP)) == 1

    # A restart in the position keeps the same stop and places nothing new at once.
    stop_ids = {o.order_id for o in by_reason(run, STOP)}
    again = restart(run)
    produced = again.step(next(again.updates))
    assert isinstance(again.strategy(), MaCrossover)
    if not any(isinstance(e, OrderFilled) for e in produced):
        assert {o.order_id for o in by_reason(again, STOP)} == stop_ids
        assert not [e for e in produced if isinstance(e, OrderSubmitted)]


@pytest.mark.parametrize("kind,params", [("ma_crossover", MA_PARAMS),
                                         ("atr_trend", ATR_PARAMS)])
def test_a_restarted_strategy_resumes_with_its_bars(kind: str, params: dict[str, Any]
                                                    ) -> None:
    """The bars a strategy closed are events (StrategyBarsRecorded): after a restart its
    indicators take them in again, so it does not wait for a warm-up to decide."""
    run = start(kind, params)
    assert run.until(lambda r: r.strategy().model.bars >= 40)
    model = run.strategy().model
    if kind == "ma_crossover":
        def indicators(m: Any) -> tuple[Any, ...]:
            return (m.bars, m.fast.value, m.slow.value, m.rsi.value)
    else:
        def indicators(m: Any) -> tuple[Any, ...]:
            return (m.bars, m.ema_fast.value, m.ema_slow.value, m.atr.value,
                    m.htf_ema.value, m.rsi.value)
    before = indicators(model)
    assert all(v is not None for v in before[1:3])
    again = restart(run)
    again.step(next(again.updates))  # the host starts it: bars first, then this update
    assert indicators(again.strategy().model) == before


def test_pnl_per_strategy_is_what_its_own_fills_did() -> None:
    run = start("ma_crossover", MA_PARAMS)
    assert run.until(lambda r: sum(isinstance(e, OrderFilled) for e in r.events) >= 6)
    own = run.engine.state.strategy_pnl[SID]
    fills = [e for e in run.events if isinstance(e, OrderFilled)]
    assert own.fills == len(fills) and own.fees == sum((f.fee for f in fills), Decimal(0))
    # It is the only one trading its account: its realized P&L is the account's.
    assert own.realized == run.engine.summary(CLIENTS[0], run.engine_venue).realized_pnl
    assert own.net == own.realized - own.fees


@pytest.mark.parametrize("buffer,enters", [("50", False), ("25", True)])
def test_ma_crossover_keeps_seed_000s_liquidation_buffer(buffer: str, enters: bool) -> None:
    """Seed 000's --liq-buffer-pct: with 100 of equity, a 300 position could be
    liquidated by a move of about 33 %: a 50 % buffer refuses the entry, 25 % lets it."""
    run = start("ma_crossover", {**MA_PARAMS, "liq_buffer_pct": buffer})
    run.events += run.engine.handle(Withdraw(CLIENTS[0], run.engine_venue, Decimal(19_900)),
                                    run.events[-1].at)
    entered = run.until(lambda r: any(isinstance(e, OrderSubmitted)
                                      and e.spec.tags.strategy == SID for e in r.events),
                        limit=20_000)
    assert entered is enters
    if not enters:
        last = run.strategy().last_signal
        assert last is not None and "liquidation" in last.reason
