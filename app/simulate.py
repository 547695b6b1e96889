"""``perpdesk simulate``: run the engine on the built-in demo configuration.

Feeds the synthetic market, or a replay of an OHLCV bar file (any interval,
any configured symbol, optionally with a funding-rate file), through the
engine while the demo trader — a seeded ``demo`` strategy per client and venue,
on the strategy host as in the server — places market and limit orders, then
prints what happened: orders by outcome, closed trades and
every account's valuation. Deterministic for a seed.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Protocol, TypeVar

from app.defaults import (
    CLIENTS,
    DEFAULT_LEVERAGE,
    DEMO_LIMITS,
    STARTING_BALANCE,
    VENUES,
    demo_instruments,
)
from app.domain.commands import Deposit
from app.domain.events import Event, OrderFilled, OrderRejected, TradeClosed
from app.domain.instruments import Instrument
from app.domain.market import FundingRate, MarketUpdate, PriceBar
from app.domain.risk import UNLIMITED
from app.domain.strategies import CreateStrategy, StartStrategy
from app.engine import Engine, EngineConfig
from app.engine.engine import AccountSetup
from app.marketdata.bars import (
    bar_file_layout,
    bar_updates,
    detect_interval,
    format_interval,
    parse_interval,
    read_funding_rates,
    read_price_bars,
)
from app.marketdata.replay import default_data_dir
from app.marketdata.synthetic import SyntheticMarket
from app.strategies.demo import DEMO
from app.strategies.host import StrategyHost
from app.venues.mock import MockVenue, MockVenueConfig
from app.venues.paper.queue import make_queue_model
from app.venues.paper.venue import PaperVenue, PaperVenueConfig

START = datetime(2024, 1, 1, tzinfo=UTC)
BTC_BARS = "btc-perp-2022-01_1m.csv"
# Without --minutes: 30 minutes of the synthetic market, or 30 bars of a file
# (30 minutes of the 1-minute BTC sample, as before bar files of any interval).
DEFAULT_MINUTES = 30.0
DEFAULT_BARS = 30
# Depth given to each bar of a file without volume (quote units): deep enough that
# the demo's small orders never walk it, which the report says.
NOTIONAL_WITHOUT_VOLUME = Decimal(1_000_000)


@dataclass(slots=True)
class Source:
    """What to replay: the feed, the instruments and venues it covers, and how."""

    feed: Iterable[MarketUpdate]
    instruments: list[Instrument]
    venues: tuple[str, ...]
    venue_config: PaperVenueConfig | None = None
    description: str = "synthetic market"
    interval: timedelta | None = None  # of a bar file
    # A bar file's bars and funding rates, apart (``feed`` is the two merged, as
    # updates): a backtest steps through bars (app/backtest/runner.py). Lazy, like
    # ``feed``; read one or the other.
    bars: Iterable[PriceBar] | None = None
    funding_rates: Iterable[FundingRate] = ()


def build_demo_engine(instruments: list[Instrument], venues: tuple[str, ...],
                      venue_config: PaperVenueConfig | None = None,
                      mock: MockVenueConfig | None = None) -> Engine:
    """The demo clients on ``venues``, funded at ``START``, trading ``instruments`` on
    paper venues (``venue_config``), or on mock venues with ``mock`` (app/venues/mock.py)."""
    config = EngineConfig(
        instruments=instruments,
        accounts=[AccountSetup(c, v, DEFAULT_LEVERAGE) for c in CLIENTS for v in venues],
        limits=DEMO_LIMITS,
    )
    engine = Engine(config, {v: MockVenue(v, mock) if mock is not None
                             else PaperVenue(v, venue_config) for v in venues})
    for client in CLIENTS:
        for venue in venues:
            engine.handle(Deposit(client, venue, STARTING_BALANCE), START)
    return engine


def bar_source(path: Path, *, symbol: str = "BTC-PERP", venue: str = VENUES[0],
               interval: timedelta | None = None, funding: Path | None = None,
               volume_unit: str = "quote") -> Source:
    """A bar file replayed as ``symbol`` on ``venue`` (one of the demo's), its interval
    given or detected, merged with a funding-rate file if given.

    The paper venue's max book age becomes half the interval when that is longer
    than its default: a bar file quotes every quarter interval, so a book is only
    stale once two of its points are missing.
    """
    if venue not in VENUES:
        raise ValueError(f"unknown venue {venue!r} (configured: {', '.join(VENUES)})")
    instruments = [i for i in demo_instruments((venue,)) if i.symbol == symbol]
    if not instruments:
        known = sorted({i.symbol for i in demo_instruments((venue,))})
        raise ValueError(f"unknown symbol {symbol!r} (configured: {', '.join(known)})")
    inst = instruments[0]
    layout = bar_file_layout(path, volume_unit)
    detected = interval is None
    if interval is None:
        interval = detect_interval(path)
    every: timedelta = interval  # (fixed for the closures below)

    def bars() -> Iterator[PriceBar]:
        return read_price_bars(
            path, tick=inst.tick_size, interval=every, size_step=inst.step_size,
            volume_unit=volume_unit,
            notional_without_volume=NOTIONAL_WITHOUT_VOLUME if layout.volume is None else None)

    description = (f"{path.name}: {symbol} on {venue}, {format_interval(interval)} bars"
                   f"{' (detected)' if detected else ''}")
    if layout.volume is None:
        description += f", no volume column ({NOTIONAL_WITHOUT_VOLUME:,} quote a bar assumed)"
    feed: Iterable[MarketUpdate] = bar_updates(bars(), venue, symbol)
    rates: Iterable[FundingRate] = ()
    if funding is not None:
        rates = read_funding_rates(funding, venue=venue, symbol=symbol)
        feed = with_funding(feed, read_funding_rates(funding, venue=venue, symbol=symbol))
        description += f", funding from {funding.name}"
    default_age = PaperVenueConfig().max_book_age
    max_age = interval / 2 if default_age is None or interval / 2 > default_age else default_age
    return Source(feed, instruments, (venue,), PaperVenueConfig(max_book_age=max_age),
                  description, interval, bars(), rates)


def with_funding(bars: Iterable[MarketUpdate], rates: Iterable[FundingRate]
                 ) -> Iterator[MarketUpdate]:
    """The bar stream with the funding rates that fall inside it, in time order.

    Rates before the first bar or after the last are left out (no market to settle
    against; the run ends with the bars). A rate stamped at the same time as a bar
    point comes after it, so it settles against that point's mark.
    """
    return merged_in(bars, rates)


class _Timed(Protocol):
    @property
    def ts(self) -> datetime: ...


_U = TypeVar("_U", bound=_Timed)
_T = TypeVar("_T", bound=_Timed)


def merged_in(updates: Iterable[_U], timed: Iterable[_T],
              left_out: Callable[[_T], None] | None = None) -> Iterator[_U | _T]:
    """``timed`` items (each with its ``ts``, in time order) inside the ``updates``
    stream: each before the first update later than it, so after those at its time.
    Those before the first update or after the last have no market to act on: left
    out, each told to ``left_out`` (without it, the ones after are not even read)."""
    pending = iter(timed)
    item = next(pending, None)
    started = False
    for update in updates:
        while item is not None and item.ts < update.ts:
            if started:
                yield item
            elif left_out is not None:
                left_out(item)
            item = next(pending, None)
        started = True
        yield update
    if left_out is not None:
        while item is not None:
            left_out(item)
            item = next(pending, None)


def synthetic_source(seed: int) -> Source:
    instruments = demo_instruments(VENUES)
    return Source(SyntheticMarket(instruments, seed=seed, start=START), instruments, VENUES)


@dataclass(slots=True)
class Result:
    """A finished simulation: the engine as it ended and every event it produced."""

    engine: Engine
    events: list[Event]
    venues: tuple[str, ...]
    updates: int = 0
    funding_rates: int = 0
    first_at: datetime | None = None
    last_at: datetime | None = None


def demo_strategies(venues: tuple[str, ...], seed: int, order_every: float
                    ) -> list[CreateStrategy]:
    """The demo trader: a ``demo`` strategy for every client on every venue, each with
    its own seed, together placing an order every ``order_every`` seconds on average."""
    count = len(CLIENTS) * len(venues)
    every = (Decimal(str(order_every)) * count).quantize(Decimal("0.001"))
    out = []
    for i, (client, venue) in enumerate((c, v) for c in CLIENTS for v in venues):
        params = DEMO.validate({"seed": seed * 100 + i, "order_every_s": str(every)})
        out.append(CreateStrategy(f"demo-{client}-{venue}", DEMO.name, client, venue, params,
                                  "simulate"))
    return out


def simulate(source: Source, *, seed: int, minutes: float | None,
             order_every: float = 5.0) -> Result:
    """Run ``source`` through a demo engine for ``minutes`` of market time (None: until
    the feed ends), the demo trader running on the strategy host exactly as in the
    server: after every engine step, on the engine's clock."""
    engine = build_demo_engine(source.instruments, source.venues, source.venue_config)
    host = StrategyHost()
    result = Result(engine, [], source.venues)
    for create in demo_strategies(source.venues, seed, order_every):
        result.events += engine.handle(create, START)
        result.events += engine.handle(StartStrategy(create.strategy_id, "simulate"), START)
    limit = None if minutes is None else timedelta(minutes=minutes)
    for update in source.feed:
        now = update.ts
        result.first_at = result.first_at or now
        if limit is not None and now - result.first_at > limit:
            break
        result.last_at = now
        result.updates += 1
        result.funding_rates += type(update) is FundingRate
        events = engine.on_market(update, now)
        result.events += events
        result.events += host.step(engine, now, events, update).events
    return result


def run(args: argparse.Namespace) -> int:
    try:
        if args.source == "synthetic":
            if args.funding or args.interval or args.symbol:
                raise ValueError("--symbol, --interval and --funding need a bar file --source")
            source = synthetic_source(args.seed)
            minutes = DEFAULT_MINUTES if args.minutes is None else args.minutes
        else:
            path = (default_data_dir() / BTC_BARS if args.source == "btc-bars"
                    else Path(args.source).expanduser())
            source = bar_source(
                path, symbol=args.symbol or "BTC-PERP", venue=args.venue,
                interval=parse_interval(args.interval) if args.interval else None,
                funding=Path(args.funding).expanduser() if args.funding else None,
                volume_unit=args.volume_unit)
            minutes = args.minutes
            if minutes is None and source.interval is not None:
                minutes = DEFAULT_BARS * source.interval.total_seconds() / 60
        if minutes is not None and minutes <= 0:
            minutes = None  # until the data ends
        print(f"source: {source.description}")
        result = simulate(source, seed=args.seed, minutes=minutes, order_every=args.order_every)
    except (OSError, ValueError) as exc:
        print(f"perpdesk simulate: {exc}", file=sys.stderr)
        return 2
    _print_report(result)
    return 0


def _print_report(result: Result) -> None:
    engine, events = result.engine, result.events
    if result.first_at is not None and result.last_at is not None:
        print(f"market: {result.updates} updates, {result.first_at:%Y-%m-%d %H:%M} → "
              f"{result.last_at:%Y-%m-%d %H:%M} UTC"
              + (f", {result.funding_rates} funding rates" if result.funding_rates else ""))
    orders = engine.state.orders.values()
    outcomes = Counter(o.status.value for o in orders)
    reasons = Counter(e.code for e in events if isinstance(e, OrderRejected))
    fills = sum(1 for e in events if isinstance(e, OrderFilled))
    trades = [e.trade for e in events if isinstance(e, TradeClosed)]
    print(f"orders: {len(engine.state.orders)}  fills: {fills}  closed trades: {len(trades)}")
    print("by status: " + ", ".join(f"{k}={v}" for k, v in sorted(outcomes.items())))
    if reasons:
        print("rejections: " + ", ".join(f"{k}={v}" for k, v in sorted(reasons.items())))
    for t in trades[-5:]:
        print(f"  closed {t.symbol:9} {t.direction:5} qty={t.qty} entry={t.entry_price:.2f} "
              f"exit={t.exit_price:.2f} net={t.net_pnl:+.4f} ({t.exit_reason})")
    print(f"{'client':8} {'venue':14} {'wallet':>12} {'unrealized':>11} {'equity':>12} "
          f"{'available':>12} {'fees':>8} {'funding':>9}")
    for client in CLIENTS:
        for venue in result.venues:
            s = engine.summary(client, venue)
            print(f"{client:8} {venue:14} {s.wallet:12.2f} {s.unrealized_pnl:11.2f} "
                  f"{s.equity:12.2f} {s.available:12.2f} {s.fees:8.4f} {s.funding:9.4f}")


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("simulate", help="run the engine on the demo configuration",
                            description=__doc__)
    p.add_argument("--source", default="synthetic", metavar="synthetic|btc-bars|FILE",
                   help="the synthetic market (default), the shared BTC-PERP 1-minute bars, "
                        "or an OHLCV bar file (CSV: timestamp, open, high, low, close[, "
                        "volume]; any interval; ISO or epoch s/ms timestamps)")
    p.add_argument("--symbol", help="the demo instrument the bars are for (default BTC-PERP)")
    p.add_argument("--venue", default=VENUES[0], choices=VENUES,
                   help="the paper venue that trades it (default %(default)s)")
    p.add_argument("--interval", help="bar interval, e.g. 1m, 5m, 1h, 8h, 1d "
                                      "(default: the most common gap between bars)")
    p.add_argument("--funding", metavar="FILE",
                   help="funding rates to settle (CSV: timestamp, funding_rate)")
    p.add_argument("--volume-unit", choices=("quote", "base"), default="quote",
                   help="what a plain 'volume' column counts (default %(default)s)")
    p.add_argument("--minutes", type=float, default=None,
                   help=f"market minutes to run (default {DEFAULT_MINUTES:g} on the synthetic "
                        f"market, {DEFAULT_BARS} bars of a file; 0: until a file ends)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--order-every", type=float, default=5.0,
                   help="simulated seconds between demo orders")
    p.set_defaults(run=run)


# ---- the funding-rate arbitrage on the synthetic market (tests and bench/arb_cycle.py) ----

ARB_CLIENT = "arb"
ARB_STRATEGY = "funding-arb"


@dataclass(slots=True)
class ArbRun:
    """A finished arbitrage run: the engine, the events, how many updates it took."""

    engine: Engine
    events: list[Event]
    updates: int
    first_at: datetime | None = None
    last_at: datetime | None = None


def build_arb_engine(instruments: list[Instrument], venues: tuple[str, ...],
                     venue_configs: dict[str, PaperVenueConfig] | None = None,
                     balance: Decimal = STARTING_BALANCE, queue_model: str | None = None
                     ) -> Engine:
    """The arbitrage's client on ``venues`` (no per-symbol caps: its size is its own
    capital's), funded at ``START``."""
    config = EngineConfig(
        instruments=instruments,
        accounts=[AccountSetup(ARB_CLIENT, v, DEFAULT_LEVERAGE) for v in venues],
        # As the server's built-in profile for it: hedges come in bursts.
        risk_profiles={ARB_CLIENT: replace(UNLIMITED, orders_per_second=20,
                                           orders_per_minute=600)})
    configs = venue_configs or {}
    engine = Engine(config, {v: PaperVenue(v, configs.get(v), make_queue_model(queue_model))
                             if queue_model else PaperVenue(v, configs.get(v))
                             for v in venues})
    for venue in venues:
        engine.handle(Deposit(ARB_CLIENT, venue, balance), START)
    return engine


def run_arbitrage(feed: Iterable[MarketUpdate], engine: Engine, *,
                  params: dict[str, object] | None = None, hours: float | None = None,
                  keep_events: bool = True, host: StrategyHost | None = None,
                  on_step: Callable[[Engine, datetime, list[Event]], None] | None = None,
                  create: bool = True) -> ArbRun:
    """Run the ``funding_arb`` strategy over ``feed`` for ``hours`` of market time (None:
    until the feed ends), on the strategy host after every engine step. ``create``:
    create and start it first (False: it exists, carry on); ``on_step`` is called
    after every step with what it produced."""
    from app.strategies.arbitrage import FUNDING_ARB

    venues = tuple(sorted(engine.venues))
    validated = FUNDING_ARB.validate({"venues": list(venues), **(params or {})})
    host = host or StrategyHost()
    events: list[Event] = []
    if create:
        events += engine.handle(CreateStrategy(ARB_STRATEGY, FUNDING_ARB.name, ARB_CLIENT,
                                               venues[0], validated, "simulate"), START)
        events += engine.handle(StartStrategy(ARB_STRATEGY, "simulate"), START)
    run = ArbRun(engine, events if keep_events else [], 0)
    limit = None if hours is None else timedelta(hours=hours)
    for update in feed:
        now = update.ts
        run.first_at = run.first_at or now
        if limit is not None and now - run.first_at > limit:
            break
        run.last_at = now
        run.updates += 1
        produced = engine.on_market(update, now)
        produced += host.step(engine, now, produced, update).events
        if keep_events:
            events += produced
        if on_step is not None:
            on_step(engine, now, produced)
    return run
