"""The command bus: the one place where command -> engine -> events -> durable
append -> broadcast happens.

A single writer task owns the engine. It takes everything queued (commands,
market data, clock ticks), runs it through the engine in arrival order,
appends all resulting events in ONE transaction (group commit), and only then
resolves the callers' futures and broadcasts. So an acknowledged command is
durable, concurrent commands share an fsync, and the engine is never touched
by two tasks at once.

The bus never stops on a failed commit (database down, disk full, a lock or
privilege refused, a lost connection). The batch's callers are answered
``StorageUnavailable`` (503), and the bus turns *unwritable*: commands are
refused at once, market data and clock ticks are held back (the latest book,
quote, mark and funding rate per instrument are kept). The engine ran the
failed batch in memory, so a recovery task rebuilds it from the durable log
(replaying it into a fresh engine, off the event loop) — nothing of the
failed batch survives — then probes with backoff until a write goes through,
and hands the bus back: orders go back to the venues, the held market state
is applied, and commands are accepted again. Rebuilding from the log, rather
than applying events only after they commit, keeps the engine's one code path
(decide and apply together, fast) and reuses the recovery that every restart
already proves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.domain.commands import CloseAll, Command, SetTradingState
from app.domain.events import Event
from app.domain.market import BookSnapshot, FundingRate, MarketUpdate, MarkPrice, Quote
from app.domain.rejections import CommandRefused
from app.domain.risk import BreakerTripped
from app.domain.trading_state import Scope, TradingState
from app.engine import Engine
from app.runtime.broadcast import Broadcaster
from app.runtime.post_commit import PostCommit
from app.runtime.topics import account_message, position_message, record_message
from app.store.event_log import EventLog, Recorded
from app.store.tables import AuditRow
from app.strategies.host import StrategyHost
from app.venues.base import Report

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


class StorageUnavailable(Exception):
    """The event log cannot commit right now: the command was not carried out."""

    def __init__(self, message: str, retry_after: float = 1.0):
        super().__init__(message)
        self.retry_after = retry_after


# Market data that restates a state (rather than reporting a happening like a
# trade print) and so can be applied again after a rebuild.
_STATE_UPDATES = (BookSnapshot, Quote, MarkPrice, FundingRate)
# Backoff between recovery attempts while the database refuses writes.
RECOVERY_FIRST_DELAY_S = 0.2
RECOVERY_MAX_DELAY_S = 5.0


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
    reports: list[Report] | None = None  # from an asynchronous venue
    tick: bool = False
    audit: Callable[[list[Event]], Sequence[AuditRow]] | None = None
    respond: Callable[[list[Event]], Any] | None = None
    future: asyncio.Future | None = None
    events: list[Event] = field(default_factory=list)
    # What the strategies did in reaction, in the same step (committed with it).
    reactions: list[Event] = field(default_factory=list)
    error: BaseException | None = None
    resume: bool = False  # the recovery task found the log writable again


def _describe(exc: BaseException) -> str:
    """A one-line reason for logs, /readyz and 503 messages."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:200]}" if text else type(exc).__name__


def _restricts(command: Command | None) -> bool:
    return type(command) is CloseAll or (type(command) is SetTradingState
                                         and command.state is not TradingState.ACTIVE)


class CommandBus:
    def __init__(self, engine: Engine, log: EventLog, broadcaster: Broadcaster,
                 clock: Callable[[], datetime] = utc_now,
                 observer: Callable[[str, float, int], None] | None = None,
                 rebuild: Callable[[], Engine] | None = None,
                 host: StrategyHost | None = None,
                 market_time: Callable[[datetime], None] | None = None):
        self.engine = engine
        # A replay (``serve --replay``): the engine's time is the market data's. Each
        # update is processed at its own timestamp, what follows it in the batch at
        # that time too (time never goes back), and ``market_time`` hears how far
        # the data has got (the replay clock follows it). None: the clock decides.
        self.market_time = market_time
        # Strategies run between engine steps, inside this writer.
        self.host = host
        self.log = log
        self.broadcaster = broadcaster
        self.clock = clock
        self.observer = observer  # metrics hook: (kind, seconds, events)
        # A fresh engine with the durable log replayed into it (called on a worker
        # thread); without one, a failed commit is rebuilt by a restart only.
        self.rebuild = rebuild
        # After each commit: handlers by event type (the broadcast is the first).
        self.post_commit = PostCommit()
        self.post_commit.on("broadcast", self._broadcast)
        self.last_committed_seq = 0
        self.last_processed_at: datetime | None = None
        # Set while the log refuses writes: why, and since when.
        self.storage_error: str | None = None
        self.storage_failed_at: datetime | None = None
        self.storage_failures = 0  # failed commits since the start (a metric)
        self._engine_dirty = False  # holds effects of a batch that did not commit
        self._held_market: dict[tuple[type, str, str], MarketUpdate] = {}
        self._held_reports: list[Report] = []
        self._recovery: asyncio.Task | None = None
        self._retry_after = RECOVERY_FIRST_DELAY_S
        self._queue: asyncio.Queue[_Work | None] = asyncio.Queue()
        self._task: asyncio.Task | None = None

    # ---- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="command-bus")

    async def stop(self, timeout: float = 10.0) -> None:
        """Finish everything queued, commit it, then stop. Bounded: a commit that does
        not finish in ``timeout`` seconds (a database that hangs) is abandoned — it was
        never acknowledged — and whoever still waits is answered."""
        if self._recovery is not None:
            self._recovery.cancel()
            self._recovery = None
        if self._task is None:
            return
        await self._queue.put(None)
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except TimeoutError:
            log.error("the command bus did not drain within %.0f s; stopping anyway", timeout)
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        finally:
            self._task = None
            self._refuse_queued(StorageUnavailable("the server is shutting down"))

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    @property
    def writable(self) -> bool:
        """False while the event log refuses writes (commands are answered 503)."""
        return self.storage_error is None

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
        if self._task is None or self._task.done():
            raise StorageUnavailable("the server is not accepting commands (stopping)")
        if self.storage_error is not None:
            raise self._unavailable()
        future = asyncio.get_running_loop().create_future()
        started = time.perf_counter()
        await self._queue.put(_Work(command=command, audit=audit, respond=respond,
                                    future=future))
        try:
            return await future
        finally:
            # A refusal's traceback holds this frame, which would hold the future that
            # holds the refusal: a reference cycle only the garbage collector frees.
            del future
            if self.observer is not None:
                self.observer("command", time.perf_counter() - started, 0)

    def market(self, update: MarketUpdate) -> None:
        """Queue market data; its events are committed like any others."""
        if self.storage_error is not None:
            self._hold(update)  # applied when writes work again
            return
        self._queue.put_nowait(_Work(update=update))

    def reports(self, reports: list[Report]) -> None:
        """Queue what a venue reported on its own (an asynchronous venue's fills,
        acknowledgements, cancels): applied by the engine in arrival order like any
        other work, and committed. While the log refuses writes they are held, every
        one of them, and applied when writes work again."""
        if self.storage_error is not None:
            self._held_reports.extend(reports)
            return
        self._queue.put_nowait(_Work(reports=list(reports)))

    def tick(self) -> None:
        """Let the clock advance the engine (latency, GTD expiry, funding)."""
        if self.storage_error is None:
            self._queue.put_nowait(_Work(tick=True))

    async def flush(self) -> None:
        """Return once everything queued before this call is processed and committed
        (a clock tick with a caller: a replay's end waits for its last updates)."""
        if self._task is None or self._task.done():
            raise StorageUnavailable("the command bus is not running")
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Work(tick=True, future=future))
        await future

    def _hold(self, update: MarketUpdate) -> None:
        if isinstance(update, _STATE_UPDATES):
            self._held_market[(type(update), update.venue, update.symbol)] = update

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
            if any(w.resume for w in batch):
                batch = [w for w in batch if not w.resume]
                await self._resume()
            if not batch:
                continue
            if self.storage_error is not None:
                self._refuse(batch)
                continue
            try:
                await self._process(batch)
            except BaseException:
                # The writer itself is going away (cancelled at a stop that timed out,
                # or the process is dying): nobody waits for an answer that never comes.
                gone = StorageUnavailable("the server stopped before this was committed")
                for work in batch:
                    if work.future is not None and not work.future.done():
                        work.future.set_exception(gone)
                self._refuse_queued(gone)
                raise

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
        follow = self.market_time
        for work in batch:
            if follow is not None and work.update is not None and work.update.ts > now:
                now = work.update.ts
            try:
                if work.command is not None:
                    work.events = engine.handle(work.command, now)
                    if work.audit is not None:
                        audits.extend(work.audit(work.events))
                elif work.update is not None:
                    work.events = engine.on_market(work.update, now)
                elif work.reports is not None:
                    work.events = engine.on_reports(work.reports, now)
                else:
                    work.events = engine.advance(now)
            except CommandRefused as refused:
                # Without its traceback: its frames (this one, holding the batch, which
                # holds the work) would make a cycle for the garbage collector.
                work.error = refused.with_traceback(None)
                if work.audit is not None:
                    audits.extend(work.audit([]))
            except Exception as exc:  # a bug: report it to the caller, keep serving
                log.exception("engine failed on %r", work.command or work.update)
                work.error = exc
            events.extend(work.events)
            # No strategy ever created: nothing for the host (records are never removed).
            if self.host is not None and engine.state.strategies and (
                    work.events or work.update is not None or work.tick):
                work.reactions = self._react(engine, now, work, audits)
                events.extend(work.reactions)
        if engine.risk.trips:
            audits.extend(_trip_audits(engine.risk.take_trips()))
        if follow is not None:
            follow(now)
        self.last_processed_at = now
        records: list[Recorded] = []
        try:
            if events or audits:
                # Rows are built here, on the thread that owns the engine state.
                prepared = self.log.prepare(events, engine.state, audits)
                first_seq, last_seq = await self.log.commit(prepared)
                records = prepared.records
            else:
                first_seq, last_seq = 0, 0
        except Exception as exc:
            # Not durable: nobody may be told otherwise, and the engine, which ran the
            # batch, is ahead of the log until it is rebuilt from it.
            self._engine_dirty = True
            self._storage_failed(exc)
            self._refuse(batch)  # holds the batch's market data for the rebuilt engine
            return
        if last_seq:
            self.last_committed_seq = last_seq
        self._resolve(batch, first_seq)
        self.post_commit.dispatch(records)
        if self.observer is not None:
            self.observer("batch", time.perf_counter() - started, len(events))

    # ---- when the log refuses writes ----------------------------------------------------

    def _unavailable(self) -> StorageUnavailable:
        return StorageUnavailable(
            f"the event log cannot be written ({self.storage_error}); nothing was done, "
            "retry shortly", self._retry_after)

    def _refuse(self, batch: list[_Work]) -> None:
        """Answer a batch that will not be committed: commands 503, market data held."""
        error = self._unavailable()
        for work in batch:
            if work.update is not None:
                self._hold(work.update)
            if work.reports is not None:
                self._held_reports.extend(work.reports)
            if work.future is not None and not work.future.done():
                work.future.set_exception(error)

    def _refuse_queued(self, error: StorageUnavailable) -> None:
        while not self._queue.empty():
            work = self._queue.get_nowait()
            if work is not None and work.future is not None and not work.future.done():
                work.future.set_exception(error)

    def _storage_failed(self, exc: BaseException) -> None:
        self.storage_failures += 1
        if self.storage_error is None:
            self.storage_failed_at = self.clock()
            log.error("event log append failed; refusing commands until it can be written "
                      "again: %s", _describe(exc))
        # Only the kind of failure is shown to callers; the database's words (which
        # may quote a statement) stay in the log.
        self.storage_error = type(exc).__name__
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.create_task(self._recover(), name="bus-recovery")

    async def _recover(self) -> None:
        """Rebuild the engine from the log if it ran an uncommitted batch, then wait
        (with backoff) until the log takes a write, and hand the bus back."""
        delay = RECOVERY_FIRST_DELAY_S
        while True:
            self._retry_after = delay
            try:
                if self._engine_dirty:
                    if self.rebuild is None:
                        raise RuntimeError("no way to rebuild the engine; restart the server")
                    engine = await asyncio.to_thread(self.rebuild)
                    # Swapped on the event loop: no reader sees half of either engine.
                    self.engine = engine
                    if self.host is not None:
                        self.host.reset()  # its strategies saw what never committed
                    self._engine_dirty = False
                await asyncio.to_thread(self.log.probe_write)
            except Exception as exc:
                log.warning("event log still not writable (retrying in %.1f s): %s",
                            delay, _describe(exc))
                self.storage_error = type(exc).__name__
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECOVERY_MAX_DELAY_S)
                continue
            self._queue.put_nowait(_Work(resume=True))
            return

    async def _resume(self) -> None:
        """Writes work again: give the venues back their orders, apply the market data
        held meanwhile, and commit what that produced before accepting commands."""
        now = self.clock()
        engine = self.engine
        events: list[Event] = []
        try:
            events.extend(engine.restore_venues(now))
            # Kept until committed: a venue's fill must never be lost to a failure.
            reports = list(self._held_reports)
            events.extend(engine.on_reports(reports, now))
            held, self._held_market = self._held_market, {}
            for update in held.values():
                if type(update) is FundingRate and update.funding_at <= now:
                    continue  # a settlement print is applied once, not again
                events.extend(engine.on_market(update, now))
            last_seq = 0
            records: list[Recorded] = []
            if events:
                prepared = self.log.prepare(events, engine.state)
                _, last_seq = await self.log.commit(prepared)
                records = prepared.records
        except Exception as exc:
            self._engine_dirty = True
            self._storage_failed(exc)
            return
        log.warning("event log writable again after %s; accepting commands",
                    self.storage_failed_at)
        del self._held_reports[:len(reports)]
        if self._held_reports:  # arrived while this commit was on its way
            self._queue.put_nowait(_Work(reports=self._held_reports))
            self._held_reports = []
        self.storage_error = None
        self.storage_failed_at = None
        self._retry_after = RECOVERY_FIRST_DELAY_S
        if last_seq:
            self.last_committed_seq = last_seq
            self.post_commit.dispatch(records)

    def _resolve(self, batch: list[_Work], first_seq: int) -> None:
        seq = first_seq
        for work in batch:
            n = len(work.events)
            after = n + len(work.reactions)
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
            seq += after

    def _react(self, engine: Engine, now: datetime, work: _Work,
               audits: list[AuditRow]) -> list[Event]:
        """The strategies' reaction to one engine step; a strategy that failed is
        audited in the same commit (its alert comes from its StrategyStopped)."""
        assert self.host is not None
        try:
            result = self.host.step(engine, now, work.events, work.update)
        except Exception:  # a bug in the host itself: the step stands, strategies wait
            log.exception("the strategy host failed after %r", work.command or work.update)
            return []
        for failure in result.failures:
            audits.append(AuditRow(
                at=datetime.now(UTC), actor="host", action="strategy-failed",
                scope=Scope(failure.client, failure.venue).describe(),
                reason=failure.error[:200], previous="running",
                details={"strategy": failure.strategy_id, "error": failure.error}))
        return result.events

    def _broadcast(self, records: list[Recorded]) -> None:
        """Committed events to the sockets and dashboards, with the positions and
        accounts they changed (live state, not events)."""
        if not self.broadcaster.count:
            return
        engine = self.engine
        messages: list[dict[str, Any]] = []
        touched: set[tuple[str, str, str]] = set()
        accounts: set[tuple[str, str]] = set()
        for record in records:
            messages.append(record_message(record))
            # Events about an account's money or position (funding, deposits,
            # liquidations, leverage...) name it; fills reach the dashboards as events.
            event = record.event
            client, venue = getattr(event, "client", None), getattr(event, "venue", None)
            if client is not None and venue is not None:
                accounts.add((client, venue))
                symbol = getattr(event, "symbol", None)
                if symbol is not None:
                    touched.add((client, venue, symbol))
        last_seq = records[-1].seq
        for client, venue, symbol in sorted(touched):
            position = engine.state.positions.get((client, venue, symbol))
            if position is not None:
                mark = engine.venues[venue].reference_price(symbol)
                messages.append(position_message(last_seq, position, mark))
        for client, venue in sorted(accounts):
            messages.append(account_message(last_seq, engine.summary(client, venue)))
        self.broadcaster.publish(messages)


def _trip_audits(trips: list[BreakerTripped]) -> list[AuditRow]:
    """A breaker's trip is audited in the commit that records it, with its figures."""
    return [AuditRow(at=datetime.now(UTC), actor=f"breaker:{t.breaker.value}",
                     action="breaker-trip", scope=Scope(t.client, None).describe(),
                     reason=t.message[:500], previous=None,
                     details={"breaker": t.breaker.value, "state": t.state.value,
                              "figures": dict(t.figures)})
            for t in trips]
