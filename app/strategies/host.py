"""The strategy host: runs strategies inside the single writer.

After every engine step (a market update, a command, a clock advance) the owner
of the engine — the command bus in the server, the loop of ``simulate`` and of
backtests — calls ``StrategyHost.step`` with what the step produced. The host
hands each running strategy, in id order, the market update, the events of its
own account and its timer if due, and runs the commands it answers with through
the same engine, at the same instant, where the risk gate and the kill switches
judge them like any other order. Events those commands produce are handed on in
the same step (a fill is hedged at once), for a bounded number of rounds; what
is left is handed over at the next step. So a strategy runs only between engine
steps, on the engine's clock, and replays deterministically.

A strategy whose code raises is stopped (``StrategyStopped`` with ``failed``),
and the owner is told so it can alert and audit; the engine and the bus go on.
Which strategies run is engine state (``state.strategies``, from lifecycle
events): after a restart, every strategy the log says is running runs again,
with its configuration, from the first step on.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from app.domain.arbitrage import RecordArbTrade, RecordLegOut
from app.domain.commands import CancelOrder, Command, ReplaceOrder, SubmitOrder
from app.domain.event_accounts import account_of
from app.domain.events import Event
from app.domain.market import MarketUpdate, PriceBar
from app.domain.rejections import CommandRefused
from app.domain.signals import SubmitSignal
from app.domain.strategies import (
    RecordBars,
    StopStrategy,
    StrategyBarsRecorded,
    StrategyRecord,
    StrategyStatus,
)
from app.engine import Engine
from app.strategies.base import Commands, Strategy, StrategyContext, StrategyKind
from app.strategies.registry import kinds as registered_kinds

log = logging.getLogger(__name__)

# Rounds of "events → strategies → commands → events" within one step; what the
# last round produces is handed to the strategies at the next step.
MAX_ROUNDS = 4
# Commands one strategy may run in one step: a strategy in a loop is stopped.
MAX_COMMANDS_PER_STEP = 100
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FAR_FUTURE = datetime.max.replace(tzinfo=UTC)


Call = Callable[[Strategy, StrategyContext], Commands]


def _on_start(strategy: Strategy, ctx: StrategyContext) -> Commands:
    return strategy.on_start(ctx)


def _on_timer(strategy: Strategy, ctx: StrategyContext) -> Commands:
    return strategy.on_timer(ctx)


def _on_event(event: Event) -> Call:
    def call(strategy: Strategy, ctx: StrategyContext) -> Commands:
        return strategy.on_event(event, ctx)
    return call


def _on_stop(strategy: Strategy, ctx: StrategyContext) -> Commands:
    return strategy.on_stop(ctx)


@dataclass(slots=True)
class Failure:
    """A strategy the host stopped because its code raised."""

    strategy_id: str
    client: str
    venue: str
    error: str


@dataclass(slots=True)
class StepResult:
    events: list[Event] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    refused: int = 0  # commands the engine refused outright (not recorded)


@dataclass(slots=True)
class _Running:
    record: StrategyRecord
    strategy: Strategy
    params: object  # what it was built from (a change rebuilds it)
    every: timedelta | None  # its kind's timer
    next_timer: datetime | None
    venues: frozenset[str]  # where it trades (its own venue, and any its kind adds)
    market_updates: bool = True  # its kind wants on_market

    def context(self, engine: Engine, now: datetime) -> StrategyContext:
        return StrategyContext(self.record, engine, now, self.venues)


class StrategyHost:
    def __init__(self, kinds: dict[str, StrategyKind] | None = None):
        self.kinds = kinds if kinds is not None else registered_kinds()
        self._running: dict[str, _Running] = {}
        self._pending: list[Event] = []  # produced in the last round of the last step
        # The engine state and its strategies' version last synced: most steps change
        # no strategy, and then there is nothing to sync.
        self._synced: tuple[object, int] | None = None

    @property
    def running(self) -> list[str]:
        return sorted(self._running)

    def instance(self, strategy_id: str) -> Strategy | None:
        """A running strategy's object (for read-only views), or None."""
        running = self._running.get(strategy_id)
        return running.strategy if running is not None else None

    def status(self, strategy_id: str) -> dict[str, object] | None:
        """What a running strategy reports of itself (its ``status()``, if its kind has
        one: last signal, indicators, open trade), for the dashboard; None otherwise."""
        running = self._running.get(strategy_id)
        report = getattr(running.strategy, "status", None) if running is not None else None
        if not callable(report):
            return None
        result = report()
        return dict(result) if isinstance(result, dict) else None

    def reset(self) -> None:
        """Forget every instance (the engine was rebuilt: start them afresh)."""
        self._running.clear()
        self._pending.clear()
        self._synced = None

    def step(self, engine: Engine, now: datetime, events: list[Event],
             update: MarketUpdate | None = None) -> StepResult:
        """React to one engine step; the events (and failures) the reactions produced."""
        result = StepResult()
        if not engine.state.strategies and not self._running:
            return result  # the common case without strategies costs nothing
        self._sync(engine, now, result)
        if not self._running:
            self._pending.clear()
            return result
        delivered = self._pending + events if self._pending else events
        self._pending = []
        budget = dict.fromkeys(self._running, MAX_COMMANDS_PER_STEP)
        for sid in (sorted(self._running) if len(self._running) > 1 else list(self._running)):
            running = self._running.get(sid)
            if running is None:
                continue
            every = running.every
            timer_due = (every is not None and running.next_timer is not None
                         and now >= running.next_timer)
            market = (update is not None and running.market_updates
                      and update.venue in running.venues)
            if not (market or timer_due):
                continue
            ctx = running.context(engine, now)
            if market and update is not None:
                # Called directly, not through a closure: this is every market update.
                commands = self._market(running, ctx, update, engine, now, result)
                if commands:
                    self._run_commands(engine, now, running, ctx, result, commands, budget)
            if timer_due and every is not None:
                running.next_timer = _grid_after(now, every)
                self._call(engine, now, running, ctx, result, budget, _on_timer)
        # What their calls just produced (fills of their own orders) goes round too.
        delivered = delivered + result.events if result.events else delivered
        for round_no in range(MAX_ROUNDS):
            if not delivered:
                break
            produced_from = len(result.events)
            self._deliver(engine, now, delivered, result, budget)
            delivered = result.events[produced_from:]
            self._sync(engine, now, result)
            if round_no == MAX_ROUNDS - 1:
                self._pending = list(delivered)
        return result

    # ---- quiet points (a backtest's fast path: app/engine/quiet.py) -------------------

    def quiet_until(self, engine: Engine, venue: str, symbol: str) -> datetime | None:
        """Until when a point of ``symbol`` on ``venue`` that produces no event would
        only be taken in (no strategy answers it, no timer is due, nothing is owed);
        None when a step might do more."""
        state = engine.state
        if not state.strategies and not self._running and not self._pending:
            return FAR_FUTURE  # no strategy: nothing here answers a point
        seen = self._synced
        if self._pending or seen is None or seen[0] is not state \
                or seen[1] != state.strategies_version:
            return None
        until = FAR_FUTURE
        for running in self._running.values():
            if running.next_timer is not None and running.next_timer < until:
                until = running.next_timer
            if running.market_updates and venue in running.venues:
                quiet = running.strategy.quiet_until(symbol)
                if quiet is None:
                    return None
                if quiet < until:
                    until = quiet
        return until

    def absorb_points(self, venue: str, symbol: str, bar: PriceBar, first: int,
                      stop: int = 4, *, quoted: bool = False) -> None:
        """Points ``first`` to ``stop`` (excluded) of ``bar``, all before
        ``quiet_until``: every strategy that takes market data of ``venue`` takes
        them in, as its ``on_market`` would."""
        for running in self._running.values():
            if running.market_updates and venue in running.venues:
                running.strategy.absorb_points(symbol, bar, first, stop, quoted=quoted)

    def absorb_bars(self, venue: str, symbol: str, bars: Sequence[PriceBar],
                    quoted: bool = False) -> None:
        """Whole bars in a row, all before ``quiet_until``: ``absorb_points`` over each
        (``quoted``: the first bar's first quote went through ``step``)."""
        for running in self._running.values():
            if running.market_updates and venue in running.venues:
                running.strategy.absorb_bars(symbol, bars, quoted)

    # ---- lifecycle --------------------------------------------------------------------

    def _sync(self, engine: Engine, now: datetime, result: StepResult) -> None:
        """Start what the engine says runs, stop what it says does not; rebuild what
        was reconfigured."""
        state = engine.state
        seen = self._synced
        if seen is not None and seen[0] is state and seen[1] == state.strategies_version:
            return
        # What this pass reads; a change it causes itself (a failure) is synced next time.
        self._synced = (state, state.strategies_version)
        records = state.strategies
        for sid in list(self._running):
            record = records.get(sid)
            if record is not None and record.running:
                continue
            running = self._running.pop(sid)
            if record is not None and record.status is StrategyStatus.STOPPED:
                # Stopped by an operator: it may tidy up (cancel its orders, say).
                running.record = record
                ctx = running.context(engine, now)
                self._call(engine, now, running, ctx, result, None, _on_stop)
        for sid in sorted(records):
            record = records[sid]
            if not record.running:
                continue
            current = self._running.get(sid)
            if current is not None and current.params == record.params:
                current.record = record
                continue
            kind = self.kinds.get(record.kind)
            if kind is None:
                self._fail(engine, now, record, f"unknown strategy kind {record.kind!r}",
                           result)
                continue
            try:
                strategy = kind.build(record.params)
                venues = kind.venues_of(record)
            except Exception as exc:
                self._fail(engine, now, record, f"cannot build: {_describe(exc)}", result)
                continue
            running = _Running(record, strategy, record.params, kind.timer,
                               None if kind.timer is None else _grid_after(now, kind.timer),
                               venues, kind.market_updates)
            self._running[sid] = running
            ctx = running.context(engine, now)
            self._call(engine, now, running, ctx, result, None, _on_start)

    # ---- calls ------------------------------------------------------------------------

    def _deliver(self, engine: Engine, now: datetime, events: list[Event],
                 result: StepResult, budget: dict[str, int]) -> None:
        # The records of the bars a strategy closed (one each bar) are the host's
        # bookkeeping, no news to a strategy: they are not delivered.
        events = [e for e in events if type(e) is not StrategyBarsRecorded]
        if not events:
            return
        orders = engine.state.orders
        accounts = [account_of(event, orders) for event in events]
        for sid in sorted(self._running):
            running = self._running.get(sid)
            if running is None:
                continue
            client, venues = running.record.client, running.venues
            # Its client's events on its venues, in the order they happened.
            mine = [e for e, (c, v) in zip(events, accounts, strict=True)
                    if c == client and v in venues]
            if not mine:
                continue
            ctx = running.context(engine, now)
            for event in mine:
                if sid not in self._running:
                    break
                self._call(engine, now, running, ctx, result, budget, _on_event(event))

    def _call(self, engine: Engine, now: datetime, running: _Running, ctx: StrategyContext,
              result: StepResult, budget: dict[str, int] | None, call: Call) -> None:
        commands = self._safely(running, ctx, call, engine, now, result)
        self._run_commands(engine, now, running, ctx, result, commands, budget)

    def _safely(self, running: _Running, ctx: StrategyContext, call: Call,
                engine: Engine, now: datetime, result: StepResult) -> list[Command]:
        try:
            return list(call(running.strategy, ctx) or ())
        except Exception as exc:
            self._raised(running, exc, engine, now, result)
            return []

    def _market(self, running: _Running, ctx: StrategyContext, update: MarketUpdate,
                engine: Engine, now: datetime, result: StepResult) -> list[Command]:
        """``_safely`` for ``on_market``, without a closure: it runs on every update."""
        try:
            return list(running.strategy.on_market(update, ctx) or ())
        except Exception as exc:
            self._raised(running, exc, engine, now, result)
            return []

    def _raised(self, running: _Running, exc: Exception, engine: Engine, now: datetime,
                result: StepResult) -> None:
        log.exception("strategy %s (%s) failed; stopping it", running.record.strategy_id,
                      running.record.kind)
        self._fail(engine, now, running.record, _describe(exc), result)

    def _run_commands(self, engine: Engine, now: datetime, running: _Running,
                      ctx: StrategyContext, result: StepResult, commands: Iterable[Command],
                      budget: dict[str, int] | None) -> None:
        sid = running.record.strategy_id
        for command in commands:
            if budget is not None:
                if budget.get(sid, 0) <= 0:
                    self._fail(engine, now, running.record,
                               f"more than {MAX_COMMANDS_PER_STEP} commands in one step",
                               result)
                    return
                budget[sid] -= 1
            problem = _foreign(command, running.record, running.venues, engine)
            if problem is not None:
                self._fail(engine, now, running.record, problem, result)
                return
            try:
                result.events.extend(engine.handle(command, now))
            except CommandRefused as refused:
                result.refused += 1
                log.info("strategy %s: %s refused: %s", sid, type(command).__name__,
                         refused.rejection.message)

    def _fail(self, engine: Engine, now: datetime, record: StrategyRecord, error: str,
              result: StepResult) -> None:
        self._running.pop(record.strategy_id, None)
        result.failures.append(Failure(record.strategy_id, record.client, record.venue, error))
        with contextlib.suppress(CommandRefused):  # already stopped: nothing to record
            result.events.extend(engine.handle(
                StopStrategy(record.strategy_id, f"failed: {error}"[:200], "host", failed=True),
                now))


def _foreign(command: Command, record: StrategyRecord, venues: frozenset[str],
             engine: Engine) -> str | None:
    """Why a strategy may not run ``command`` (another account's order, a command
    that is not an order's or its own record's), or None. Its orders carry its id
    whatever it set."""
    if isinstance(command, RecordBars):  # the most frequent: a strategy's every closed bar
        return None if command.strategy_id == record.strategy_id else \
            f"bars of strategy {command.strategy_id!r}"
    if isinstance(command, SubmitOrder):
        spec = command.spec
        if spec.client != record.client or spec.venue not in venues:
            return f"an order for {spec.client} on {spec.venue}, not its own account"
        if spec.tags.strategy != record.strategy_id:
            return "an order without its strategy id (use ctx.submit)"
        return None
    if isinstance(command, SubmitSignal):
        if (command.client, command.venue) != (record.client, record.venue):
            return f"a signal for {command.client} on {command.venue}, not its own account"
        if command.strategy != record.strategy_id:
            return "a signal without its strategy id (use ctx.signal)"
        return None
    if isinstance(command, CancelOrder | ReplaceOrder):
        order = engine.state.orders.get(command.order_id)
        if order is not None and (order.spec.client != record.client
                                  or order.spec.venue not in venues):
            return f"order {command.order_id} is not of its own account"
        return None
    if isinstance(command, RecordArbTrade | RecordLegOut):
        owner = (command.trade.strategy_id if isinstance(command, RecordArbTrade)
                 else command.leg_out.strategy_id)
        return None if owner == record.strategy_id else f"a record of strategy {owner!r}"
    return (f"a {type(command).__name__} (strategies place, cancel and replace orders, "
            "submit signals and record their trades)")


def _grid_after(now: datetime, every: timedelta) -> datetime:
    """The first instant after ``now`` on the grid of ``every`` from the epoch."""
    steps = (now - EPOCH) // every + 1
    return EPOCH + steps * every


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0][:150] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
