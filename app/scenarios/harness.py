"""What every scenario shares: its market, an engine with paper venues following a
real exchange's order rules, the strategy host, and a recorder of what happened
(every event, the mid at each order's submission, a valuation every minute).

The engine, the venues, the risk controls and the strategies are the platform's
own, built as ``perpdesk simulate`` builds them; nothing here decides or checks
an order — the recorder only watches, and the checks (app/scenarios/checks.py)
recompute from what it saw.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from app.defaults import DEMO_LIMITS, STARTING_BALANCE, VENUE_PROFILES, demo_instruments
from app.domain.commands import Command, Deposit
from app.domain.events import Event, OrderSubmitted
from app.domain.instruments import Instrument, VenueCapabilities
from app.domain.market import MarketUpdate
from app.domain.orders import Side
from app.domain.rejections import CommandRefused
from app.domain.risk import DEFAULT_PROFILE, MarginWindow, RiskProfile
from app.domain.strategies import CreateStrategy, StartStrategy
from app.domain.venue_profiles import PROFILES
from app.engine import Engine, EngineConfig
from app.engine.engine import AccountSetup
from app.marketdata.replay import default_data_dir
from app.marketdata.synthetic import SyntheticMarket
from app.scenarios.ledger import Ledger
from app.simulate import BTC_BARS, START, bar_source
from app.strategies.host import StrategyHost
from app.venues.paper.venue import PaperVenue, PaperVenueConfig

ZERO = Decimal(0)
PROBE_CLIENT = "probe"  # places the checklist's probe orders (app/scenarios/probes.py)
TICK = timedelta(seconds=1)  # as the server's clock tick
SAMPLE_EVERY = timedelta(minutes=1)  # seed 003: portfolio snapshots every minute
# The synthetic market for scenarios: a step a second, quotes (the paper venue
# synthesizes depth around them): hours of market in seconds.
SYNTHETIC_STEP = timedelta(seconds=1)


@dataclass(slots=True)
class Market:
    """What a scenario runs on."""

    feed: Iterable[MarketUpdate]
    instruments: list[Instrument]
    venue: str
    venue_config: PaperVenueConfig
    description: str


def capabilities(venue: str) -> VenueCapabilities:
    """The order rules of the exchange the demo venue follows (binance-usdm, bybit-v5)."""
    profile = PROFILES[VENUE_PROFILES[venue]]
    return VenueCapabilities(order_types=profile.order_types,
                             time_in_force=profile.time_in_force, profile=profile)


def synthetic_market(symbols: tuple[str, ...], venue: str, seed: int,
                     step: timedelta = SYNTHETIC_STEP) -> Market:
    instruments = [i for i in demo_instruments((venue,)) if i.symbol in symbols]
    feed = SyntheticMarket(instruments, seed=seed, start=START, step=step, books=False)
    config = PaperVenueConfig(capabilities=capabilities(venue))
    return Market(feed, instruments, venue, config,
                  f"synthetic market (seed {seed}): {', '.join(symbols)} on {venue} "
                  f"({VENUE_PROFILES[venue]} rules)")


def bar_market(path: Path | None, symbol: str, venue: str) -> Market:
    """A bar file (default: the shared real BTC-PERP 1-minute bars) replayed as
    ``symbol`` on ``venue``."""
    path = path if path is not None else default_data_dir() / BTC_BARS
    source = bar_source(path, symbol=symbol, venue=venue)
    config = replace(source.venue_config or PaperVenueConfig(),
                     capabilities=capabilities(venue))
    return Market(source.feed, source.instruments, venue, config,
                  f"{source.description} ({VENUE_PROFILES[venue]} rules)")


@dataclass(frozen=True, slots=True)
class Top:
    """A symbol's book as an order was decided on: best prices and the notional at each."""

    bid: Decimal | None
    ask: Decimal | None
    bid_depth: Decimal = ZERO
    ask_depth: Decimal = ZERO

    @property
    def mid(self) -> Decimal | None:
        return None if self.bid is None or self.ask is None else (self.bid + self.ask) / 2

    @property
    def spread_bps(self) -> Decimal | None:
        mid = self.mid
        if mid is None or self.bid is None or self.ask is None or mid <= 0:
            return None
        return (self.ask - self.bid) / mid * 10_000


@dataclass(slots=True)
class Sample:
    """One account's valuation at a minute of the run."""

    at: datetime
    client: str
    equity: Decimal
    wallet: Decimal
    unrealized: Decimal
    margin_used: Decimal
    order_margin: Decimal
    utilization: Decimal  # (position + order margin) / equity
    maintenance_ratio: Decimal
    liquidation_gaps: tuple[tuple[str, Decimal | None], ...]  # symbol -> |liq - mark| / mark
    drift: Decimal  # |engine equity - the independent ledger's equity|


@dataclass(slots=True)
class Refusal:
    """A command the engine refused outright (no order exists)."""

    command: Command
    code: str
    message: str
    at: datetime


@dataclass(slots=True)
class Run:
    """A scenario's engine, host and everything recorded while it ran."""

    engine: Engine
    market: Market
    clients: tuple[str, ...]
    host: StrategyHost = field(default_factory=StrategyHost)
    events: list[Event] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    # order id -> its symbol's book when it was submitted
    tops: dict[int, Top] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    ledger: Ledger = field(default_factory=Ledger)
    # order id -> the (qty, avg entry) of its symbol's position when it was submitted
    held: dict[int, tuple[Decimal, Decimal]] = field(default_factory=dict)
    updates: int = 0
    first_at: datetime | None = None
    last_at: datetime | None = None
    _next_sample: datetime | None = None
    _next_tick: datetime | None = None
    started: bool = False

    @property
    def venue(self) -> str:
        return self.market.venue

    def command(self, command: Command, now: datetime) -> list[Event]:
        """Run one command as the scenario's operator; a refusal is recorded."""
        try:
            events = self.engine.handle(command, now)
        except CommandRefused as exc:
            self.refusals.append(Refusal(command, exc.code.value, exc.rejection.message, now))
            return []
        self._record(events)
        return events

    def _record(self, events: list[Event], tops: dict[str, Top] | None = None) -> None:
        """Keep ``events``; for each order submitted, the book it was decided on (``tops``:
        as before the step that placed it; else as now) and the position the ledger
        held then (what its placer had seen)."""
        for e in events:
            if type(e) is OrderSubmitted and e.order_id not in self.tops:
                symbol = e.spec.symbol
                self.tops[e.order_id] = tops[symbol] if tops is not None and symbol in tops \
                    else self.top(symbol)
                held = self.ledger.book(e.spec.client, e.spec.venue).holdings.get(symbol)
                self.held[e.order_id] = (held.qty, held.avg) if held is not None else (ZERO, ZERO)
            self.ledger.apply(e)
        self.events += events

    def top(self, symbol: str) -> Top:
        venue = self.engine.venues[self.venue]
        book = venue.book(symbol)
        asks = next(iter(venue.liquidity(symbol, Side.BUY)), None)
        bids = next(iter(venue.liquidity(symbol, Side.SELL)), None)
        return Top(book.bid, book.ask, bids[0] * bids[1] if bids else ZERO,
                   asks[0] * asks[1] if asks else ZERO)

    def book_tops(self) -> dict[str, Top]:
        return {inst.symbol: self.top(inst.symbol) for inst in self.market.instruments}

    def run(self, minutes: float | None, *, strategies: Iterable[CreateStrategy] = (),
            balance: Decimal = STARTING_BALANCE,
            on_step: Callable[[Run, datetime], None] | None = None) -> None:
        """Fund the clients and start ``strategies`` at the first update, then feed the
        market for ``minutes`` (None: until it ends), the host stepping after every
        engine step; ``on_step`` after each, and a valuation every minute."""
        engine = self.engine
        limit = None if minutes is None else timedelta(minutes=minutes)
        for update in self.market.feed:
            now = update.ts
            if self.first_at is None:
                self.first_at = now
                for client in self.clients:
                    self.command(Deposit(client, self.venue, balance), now)
                for create in strategies:
                    self.command(create, now)
                    self.command(StartStrategy(create.strategy_id, "scenario"), now)
                self._next_sample = now
            if limit is not None and now - self.first_at > limit:
                break
            self.last_at = now
            self.updates += 1
            if self._next_tick is None or now >= self._next_tick:
                # The runtime's clock tick: time passes for timers and margin windows.
                self._record(engine.advance(now))
                self._next_tick = now + TICK
            events = engine.on_market(update, now)
            self._record(events)
            tops = self.book_tops()
            stepped = self.host.step(engine, now, events, update).events
            self._record(stepped, tops)
            if on_step is not None:
                on_step(self, now)
            if self._next_sample is not None and now >= self._next_sample:
                self.sample(now)
                self._next_sample = now + SAMPLE_EVERY

    def sample(self, now: datetime) -> None:
        engine = self.engine
        prices = engine.prices(self.venue)
        for client in self.clients:
            s = engine.summary(client, self.venue)
            drift = abs(s.equity - self.ledger.book(client, self.venue).equity(prices))
            used = s.margin_used + s.order_margin
            utilization = used / s.equity if s.equity > 0 else Decimal("Infinity")
            gaps = []
            for symbol, position in sorted(engine.positions_of(client, self.venue).items()):
                if not position.qty:
                    continue
                mark = prices.get(symbol)
                liq = engine.liquidation_price(client, self.venue, symbol, s)
                gap = None if liq is None or not mark else abs(liq - mark) / mark
                gaps.append((symbol, gap))
            self.samples.append(Sample(now, client, s.equity, s.wallet, s.unrealized_pnl,
                                       s.margin_used, s.order_margin, utilization,
                                       s.maintenance_ratio, tuple(gaps), drift))


def build_run(market: Market, clients: tuple[str, ...], *, leverage: Decimal,
              profile: RiskProfile = DEFAULT_PROFILE,
              margin_windows: tuple[MarginWindow, ...] = ()) -> Run:
    """An engine for ``clients`` on the market's venue, seed 003's conservative
    per-symbol position limits (``DEMO_LIMITS``) and ``profile`` for every client but
    the probes' (``PROBE_CLIENT``: the platform's default profile)."""
    config = EngineConfig(
        instruments=market.instruments,
        accounts=[AccountSetup(c, market.venue, leverage) for c in clients],
        limits=DEMO_LIMITS,
        risk_profiles={c: DEFAULT_PROFILE if c == PROBE_CLIENT else profile for c in clients},
        margin_windows={market.venue: margin_windows} if margin_windows else {})
    engine = Engine(config, {market.venue: PaperVenue(market.venue, market.venue_config)})
    return Run(engine, market, clients)


def replica(run: Run) -> Engine:
    """A fresh engine with the run's configuration and the run's events replayed into
    it: the state the event store alone rebuilds."""
    engine = Engine(run.engine.config,
                    {run.venue: PaperVenue(run.venue, run.market.venue_config)})
    engine.replay(run.events)
    return engine
