"""The command bus: the one place where command -> engine -> events -> durable
append -> broadcast happens.

A single writer task owns the engine. It takes everything queued (commands,
market data, clock ticks), runs it through the engine in arrival order,
appends all resulting events in ONE transaction (group commit), and only then
resolves the callers' futures and broadcasts. So an acknowledged command is
durable, concurrent commands share an fsync, and the engine is never touched
by two tasks at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.domain.commands import CloseAll, Command, SetTradingState
from app.domain.events import Event
from app.domain.market import MarketUpdate
from app.domain.rejections import CommandRefused
from app.domain.trading_state import TradingState
from app.engine import Engine
from app.runtime.broadcast import Broadcaster
from app.runtime.topics import account_message, event_message, position_message
from app.store.event_log import EventLog
from app.store.tables import AuditRow

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Committed:
    """What a command produced, after it is durable."""

    events: list[Event]
    first_seq: int
    last_seq: int
    response: Any = None  # what ``respond`` built from the state right at commit


@dataclass(eq=False)
class _Work:
    command: Command | None = None
    update: MarketUpdate | None = None
    tick: bool = False
    audit: Callable[[list[Event]], Sequence[AuditRow]] | None = None
    respond: Callable[[list[Event]], Any] | None = None
    future: asyncio.Future | None = None
    events: list[Event] = field(default_factory=list)
    error: BaseException | None = None


def _restricts(command: Command | None) -> bool:
    return type(command) is CloseAll or (type(command) is SetTradingState
                                         and command.state is not TradingState.ACTIVE)


class CommandBus:
    def __init__(self, engine: Engine, log: EventLog, broadcaster: Broadcaster,
                 clock: Callable[[], datetime] = utc_now,
                 observer: Callable[[str, float, int], None] | None = None):
        self.engine = engine
        self.log = log
        self.broadcaster = broadcaster
        self.clock = clock
        self.observer = observer  # metrics hook: (kind, seconds, events)
        self.listeners: list[Callable[[list[Event]], None]] = []  # after each commit
        self.last_committed_seq = 0
        self.last_processed_at: datetime | None = None
        self._queue: asyncio.Queue[_Work | None] = asyncio.Queue()
        self._task: asyncio.Task | None = None

    # ---- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="command-bus")

    async def stop(self) -> None:
        """Finish everything queued, commit it, then stop."""
        if self._task is None:
            return
        await self._queue.put(None)
        await self._task
        self._task = None

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    # ---- entry points -----------------------------------------------------------

    async def execute(self, command: Command,
                      audit: Callable[[list[Event]], Sequence[AuditRow]] | None = None,
                      respond: Callable[[list[Event]], Any] | None = None) -> Committed:
        """Run ``command`` and return once its events are committed.

        ``audit`` turns the command's events into audit rows written in the same
        transaction. ``respond`` builds the caller's answer from the engine state
        right after the commit — before the next batch can change that state —
        so an acknowledgement never shows anything that is not durable. Raises
        ``CommandRefused`` if the engine refused it.
        """
        if self._task is None:
            raise RuntimeError("the command bus is not running")
        future = asyncio.get_running_loop().create_future()
        started = time.perf_counter()
        await self._queue.put(_Work(command=command, audit=audit, respond=respond,
                                    future=future))
        try:
            return await future
        finally:
            if self.observer is not None:
                self.observer("command", time.perf_counter() - started, 0)

    def market(self, update: MarketUpdate) -> None:
        """Queue market data; its events are committed like any others."""
        self._queue.put_nowait(_Work(update=update))

    def tick(self) -> None:
        """Let the clock advance the engine (latency, GTD expiry, funding)."""
        self._queue.put_nowait(_Work(tick=True))

    # ---- the writer -------------------------------------------------------------------

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            batch: list[_Work] = []
            if first is None:
                stopping = True
            else:
                batch.append(first)
            while not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stopping = True
                else:
                    batch.append(item)
            if batch:
                await self._process(batch)

    async def _process(self, batch: list[_Work]) -> None:
        started = time.perf_counter()
        if len(batch) > 1 and any(_restricts(w.command) for w in batch):
            # A kill switch goes first: an operator's brake does not wait behind
            # orders that arrived a moment before it; those are judged under it.
            # (Only restrictions jump the queue: an order sent while trading was
            # halted is never let through by an enable that overtook it.)
            batch.sort(key=lambda w: not _restricts(w.command))  # stable
        now = self.clock()
        engine = self.engine
        events: list[Event] = []
        audits: list[AuditRow] = []
        for work in batch:
            try:
                if work.command is not None:
                    work.events = engine.handle(work.command, now)
                    if work.audit is not None:
                        audits.extend(work.audit(work.events))
                elif work.update is not None:
                    work.events = engine.on_market(work.update, now)
                else:
                    work.events = engine.advance(now)
            except CommandRefused as refused:
                work.error = refused
                if work.audit is not None:
                    audits.extend(work.audit([]))
            except Exception as exc:  # a bug: report it to the caller, keep serving
                log.exception("engine failed on %r", work.command or work.update)
                work.error = exc
            events.extend(work.events)
        self.last_processed_at = now
        try:
            if events or audits:
                # Rows are built here, on the thread that owns the engine state.
                prepared = self.log.prepare(events, engine.state, audits)
                first_seq, last_seq = await self.log.commit(prepared)
            else:
                first_seq, last_seq = 0, 0
        except Exception as exc:
            # Not durable: nobody may be told otherwise. The in-memory engine is
            # now ahead of the log, so the process must restart and recover.
            log.critical("event log append failed; stopping to recover from the log: %s", exc)
            for work in batch:
                if work.future is not None and not work.future.done():
                    work.future.set_exception(exc)
            raise
        if last_seq:
            self.last_committed_seq = last_seq
        self._resolve(batch, first_seq)
        if events:
            self._broadcast(events, first_seq)
            for listener in self.listeners:
                listener(events)
        if self.observer is not None:
            self.observer("batch", time.perf_counter() - started, len(events))

    def _resolve(self, batch: list[_Work], first_seq: int) -> None:
        seq = first_seq
        for work in batch:
            n = len(work.events)
            if work.future is not None and not work.future.done():
                if work.error is not None:
                    work.future.set_exception(work.error)
                else:
                    try:
                        response = work.respond(work.events) if work.respond else None
                    except Exception as exc:  # a bug in the caller's view; report it there
                        work.future.set_exception(exc)
                    else:
                        work.future.set_result(Committed(
                            work.events, seq if n else 0, seq + n - 1 if n else 0, response))
            seq += n

    def _broadcast(self, events: list[Event], first_seq: int) -> None:
        if not self.broadcaster.count:
            return
        engine = self.engine
        orders = engine.state.orders
        messages: list[dict[str, Any]] = []
        touched: set[tuple[str, str, str]] = set()
        accounts: set[tuple[str, str]] = set()
        for i, event in enumerate(events):
            message = event_message(first_seq + i, event)
            if message["client"] is None:
                order = orders.get(getattr(event, "order_id", -1))
                if order is not None:
                    message["client"] = order.spec.client
            messages.append(message)
            symbol = getattr(event, "symbol", None)
            client, venue = getattr(event, "client", None), getattr(event, "venue", None)
            if client is not None and venue is not None:
                accounts.add((client, venue))
                if symbol is not None:
                    touched.add((client, venue, symbol))
        last_seq = first_seq + len(events) - 1
        for client, venue, symbol in sorted(touched):
            position = engine.state.positions.get((client, venue, symbol))
            if position is not None:
                mark = engine.venues[venue].reference_price(symbol)
                messages.append(position_message(last_seq, position, mark))
        for client, venue in sorted(accounts):
            messages.append(account_message(last_seq, engine.summary(client, venue)))
        self.broadcaster.publish(messages)
