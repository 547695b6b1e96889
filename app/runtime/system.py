"""Assembles and runs everything the server hosts: engine, venues, event log,
command bus, broadcaster, feeds and clock.

Start-up order matters: migrate, rebuild the engine from the log, hand live
orders back to the venues, start the bus, fund a brand-new database, then
start the feeds. Shutdown reverses it: feeds stop first, the bus drains and
commits what is queued, and only then does the database close.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from app.config import Settings, TradingConfig, VenueConfig
from app.domain.commands import Deposit
from app.domain.instruments import Instrument
from app.domain.market import MarketUpdate, MarkPrice
from app.domain.rate_limits import OrderRates
from app.domain.risk import OrderSizedDown
from app.domain.strategies import CreateStrategy, StartStrategy
from app.engine import Engine, EngineConfig
from app.engine.engine import AccountSetup
from app.runtime import risk_alerts
from app.runtime.alerts import AlertMonitor
from app.runtime.broadcast import Broadcaster
from app.runtime.bus import CommandBus, utc_now
from app.runtime.feeds import ClockTask, DemoClock, FeedTask, synthetic_feed
from app.runtime.replay import HIGH_WATER as REPLAY_HIGH_WATER
from app.runtime.replay import Replay, open_replay
from app.runtime.safety_log import WATCHED as SAFETY_EVENTS
from app.runtime.safety_log import SizedDownFeed, log_safety
from app.store.event_log import EventLog, make_db_engine
from app.store.migrate import upgrade
from app.strategies.host import StrategyHost
from app.strategies.registry import kinds
from app.venues.base import Venue
from app.venues.mock import MockVenue, MockVenueConfig, mock_capabilities
from app.venues.paper.queue import make_queue_model
from app.venues.paper.venue import PaperVenue, PaperVenueConfig

log = logging.getLogger(__name__)


class TradingSystem:
    def __init__(self, settings: Settings, trading: TradingConfig):
        self.settings = settings
        self.trading = trading
        self.db = make_db_engine(settings.database_url, settings.db_lock_timeout_ms,
                                 settings.db_statement_timeout_ms)
        self.log = EventLog(self.db)
        self.instruments = [i.to_domain() for i in trading.instruments]
        self.broadcaster = Broadcaster(settings.ws_queue_size)
        self.strategy_host = StrategyHost()
        # ``serve --replay FILE``: a bar file in place of the synthetic feed, on its clock.
        self.replay: Replay | None = self._open_replay()
        # The engine's clock: the wall clock, a demo's accelerated one, or a replay's.
        self.now: Callable[[], datetime] = (
            self.replay.clock if self.replay is not None
            else DemoClock(settings.demo_speed) if settings.demo_speed > 1 else utc_now)
        self.bus = CommandBus(self._new_engine(), self.log, self.broadcaster,
                              rebuild=self._rebuilt_engine, host=self.strategy_host,
                              clock=self.now,
                              market_time=(self.replay.clock.advance_to
                                           if self.replay is not None else None))
        self.marks_at: dict[tuple[str, str], datetime] = {}
        self.feeds: list[FeedTask] = []
        self.clock = ClockTask(self.bus.tick)
        self.alerts = AlertMonitor(self, self.broadcaster, config=trading.alerts)
        self.bus.post_commit.on("alerts", self.alerts.on_records)
        risk_alerts.install(self.alerts)
        self.bus.post_commit.on("safety log", log_safety, *SAFETY_EVENTS)
        self.sized_down = SizedDownFeed()
        self.bus.post_commit.on("sized down", self.sized_down.on_records, OrderSizedDown)
        self.order_rates = OrderRates()  # the API's order rate limits, per client
        self.housekeeping = ClockTask(self._housekeep, every=1.0)
        self.housekeepers: list = []  # more once-a-second jobs (e.g. the dashboard's)
        self.first_start = False
        self.started_at: datetime | None = None
        self.first_event_at: datetime | None = None
        self.equity: Any = None  # the dashboard's equity history, when the web UI runs
        self.backtests: Any = None  # the server's backtest runs (app/services/backtests.py)

    @property
    def engine(self) -> Engine:
        """The live engine (the bus swaps in a rebuilt one after a failed commit)."""
        return self.bus.engine

    def _open_replay(self) -> Replay | None:
        """The replay the settings ask for (None: none); a ValueError or OSError says
        what is wrong with it, and the server does not start."""
        if self.settings.replay is None:
            return None
        return open_replay(self.settings, self.instruments,
                           [v.name for v in self.trading.venues], self.clients)

    def _max_book_age(self, v: VenueConfig) -> timedelta | None:
        """A bar file quotes every quarter interval: its venue's books go stale only once
        two points are missing (as in ``perpdesk backtest``, app/simulate.py bar_source)."""
        age = None if v.max_book_age_s is None else timedelta(seconds=v.max_book_age_s)
        replay = self.replay
        if replay is not None and age is not None and replay.spec.venue == v.name:
            age = max(age, replay.interval / 2)
        return age

    def _new_venue(self, v: VenueConfig) -> Venue:
        if v.kind == "mock":
            return MockVenue(v.name, MockVenueConfig(
                latency=timedelta(milliseconds=v.latency_ms), fill_ratio=v.fill_ratio,
                capabilities=mock_capabilities(v.capabilities)))
        return PaperVenue(v.name, PaperVenueConfig(
            submit_latency=v.submit_latency, response_latency=v.response_latency,
            capabilities=v.capabilities, through_fill=v.through_fill,
            self_trade_prevention=v.self_trade_prevention,
            max_book_age=self._max_book_age(v)),
            make_queue_model(v.queue_model))

    def _new_engine(self) -> Engine:
        venues = {v.name: self._new_venue(v) for v in self.trading.venues}
        accounts = [AccountSetup(c.name, v, c.leverage) for c in self.trading.clients
                    for v in venues]
        return Engine(EngineConfig(self.instruments, accounts, self.trading.risk_limits(),
                                   client_limits=self.trading.client_limits(),
                                   retain_finished=self.settings.retain_finished_orders,
                                   retain_trades=self.settings.retain_closed_trades,
                                   risk_profiles=self.trading.risk_profiles(),
                                   default_risk_profile=self.trading.risk.default.to_domain(),
                                   margin_windows={v.name: tuple(w.to_domain()
                                                                 for w in v.margin_windows)
                                                   for v in self.trading.venues},
                                   signal_params=self.trading.signal_params(),
                                   default_signal_params=(
                                       self.trading.signals.default.to_domain()),
                                   signal_interval=timedelta(
                                       seconds=self.trading.signals.candle_seconds)),
                      venues)

    def _rebuilt_engine(self) -> Engine:
        """A fresh engine with the durable log replayed into it (the venues get their
        orders back when the bus resumes)."""
        engine = self._new_engine()
        engine.replay(self.log.replay())
        return engine

    @property
    def demo(self) -> bool:
        """``perpdesk serve --demo-speed N``: an accelerated demo."""
        return self.settings.demo_speed > 1

    @property
    def clients(self) -> list[str]:
        return [c.name for c in self.trading.clients]

    @property
    def venue_names(self) -> list[str]:
        return list(self.engine.venues)

    # ---- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        if self.settings.migrate:
            await asyncio.to_thread(upgrade, self.settings.database_url)
        await asyncio.to_thread(self._recover)
        risk_alerts.raise_standing(self.alerts, self.engine)
        self.bus.start()
        await self.alerts.start()  # the webhook sinks' tasks
        await self._fund_new_accounts()
        await self._create_configured_strategies()
        if self.replay is not None:
            if not self.first_start:
                log.warning("replaying %s into a database that already holds a run: its "
                            "balances, positions and strategies carry on (use a fresh "
                            "database for a clean simulation)", self.replay.spec.path.name)
            # While the log refuses writes the bus would keep only the latest prices:
            # the replay waits instead, so no bar of the file is skipped.
            self.replay.start(self.on_market, lambda: self.bus.backlog if self.bus.writable
                              else REPLAY_HIGH_WATER, self.bus.flush, self.bus.execute)
        elif self.settings.feed == "synthetic":
            # A demo's market steps a second at a time (still many steps a wall second).
            step_ms = max(self.settings.feed_step_ms, 1000) if self.demo \
                else self.settings.feed_step_ms
            feed = synthetic_feed(self.instruments, self.on_market, seed=self.settings.feed_seed,
                                  step_ms=step_ms, clock=self.now,
                                  speed=self.settings.demo_speed)
            self.feeds.append(feed)
            feed.start()
        self.clock.start()
        self.housekeeping.start()
        self.started_at = utc_now()
        if self.first_event_at is None:
            self.first_event_at = self.started_at

    async def stop(self) -> None:
        if self.replay is not None:
            await self.replay.stop()
        for feed in self.feeds:
            await feed.stop()
        await self.clock.stop()
        await self.housekeeping.stop()
        await self.bus.stop()
        await self.alerts.stop()  # after the bus: the last alerts get a chance to go out
        self.db.dispose()

    def _recover(self) -> None:
        events = list(self.log.replay())
        self.first_start = not events
        restored = self.engine.recover(events, self.now())
        if restored:
            self.log.append(restored, self.engine.state)
        self.bus.last_committed_seq = self.log.last_seq()
        self.first_event_at = self.log.first_created_at()
        log.info("recovered %d events; %d open orders", len(events),
                 sum(len(v) for v in self.engine.state.open_orders.values()))

    async def _fund_new_accounts(self) -> None:
        """Give every configured account that never received money its initial
        deposit. Checked on every start, so a crash during the first funding heals."""
        deposits = []
        for client in self.trading.clients:
            for venue, amount in client.deposits.items():
                account = self.engine.state.accounts.get((client.name, venue))
                if amount > 0 and account is not None and not account.deposits:
                    deposits.append(Deposit(client.name, venue, amount, actor="setup"))
        # Queued together, they share one commit.
        await asyncio.gather(*(self.bus.execute(d) for d in deposits))

    async def _create_configured_strategies(self) -> None:
        """Create (and start, unless told not to) the configuration's strategies whose
        ids the log does not know yet; once created, the strategy API changes them."""
        registered = kinds()
        entries = list(self.trading.strategies)
        if self.trading.arbitrage.autostart or self.demo:
            entries.append(self.trading.arbitrage.strategy(self.venue_names))
        for entry in entries:
            if entry.id in self.engine.state.strategies:
                continue
            params = registered[entry.kind].validate(entry.params)  # checked at load too
            await self.bus.execute(CreateStrategy(entry.id, entry.kind, entry.client,
                                                  entry.venue, params, actor="setup"))
            if entry.start:
                await self.bus.execute(StartStrategy(entry.id, actor="setup"))

    def _housekeep(self) -> None:
        self.alerts.housekeep()
        for job in self.housekeepers:
            job()

    # ---- market data ------------------------------------------------------------------

    def on_market(self, update: MarketUpdate) -> None:
        if type(update) is MarkPrice:
            self.marks_at[(update.venue, update.symbol)] = update.ts
        self.bus.market(update)

    def _fed_instruments(self) -> list[Instrument]:
        """The instruments that have a market: in a replay, only the replayed one."""
        if self.replay is None:
            return self.instruments
        return [i for i in self.instruments if (i.venue, i.symbol) == self.replay.key]

    def stale_marks(self, now: datetime) -> list[str]:
        """Instruments whose mark is missing or older than the staleness limit."""
        limit = self.settings.stale_mark_seconds
        if self.replay is not None:
            now = self.replay.clock()  # its marks carry the data's time, whoever asks
        stale = []
        for inst in self._fed_instruments():
            seen = self.marks_at.get((inst.venue, inst.symbol))
            if seen is None or (now - seen).total_seconds() > limit:
                stale.append(f"{inst.venue}:{inst.symbol}")
        return stale

    def unready_books(self, now: datetime) -> list[str]:
        """Paper books that would refuse a market order now (BOOK_NOT_READY): invalidated
        by a feed gap, or stale (no update for longer than the venue's max book age),
        each as ``venue:symbol (why)``. A book never fed is not listed (no data is what
        ``stale_marks`` reports)."""
        if self.replay is not None:
            now = self.replay.clock()
        unready = []
        for inst in self._fed_instruments():
            venue = self.engine.venues.get(inst.venue)
            if not isinstance(venue, PaperVenue):
                continue  # a live venue keeps no paper book
            book = venue.books.get(inst.symbol)
            why = book.not_ready(now, venue.config.max_book_age) if book is not None else None
            if why:
                unready.append(f"{inst.venue}:{inst.symbol} ({why})")
        return unready
