"""One backtest: a strategy on the strategy host (and/or a file of recorded signals,
submitted at their times as the server's bus would), over a bar file, through the same
engine, paper venue and strategy code as the server (``app/simulate.py`` builds
them), then its analytics (``app/domain/analytics.py``).

The bars are a lazy iterator over the file (memory stays flat however long the
file, but for the equity curve and candles kept a bar each), each bar four price
points: those in which nothing can happen are taken in without stepping the engine
and the strategy host (``app/engine/quiet.py``), the others stepped update by
update, as the server's replay steps them, with the same result to the last digit.
``on_progress`` is called every ``chunk`` updates with the bars done so far.
Nothing here depends on the wall clock, so a run is deterministic: the same file,
strategy and parameters give the same trades, equity curve and metrics.
"""

from __future__ import annotations

import gc
import heapq
import json
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import chain
from operator import attrgetter
from pathlib import Path
from typing import Any

from app.defaults import CLIENTS, VENUES
from app.domain.analytics import (
    CRYPTO_DAYS_PER_YEAR,
    EquityPoint,
    InitialStops,
    Performance,
    TradeRecord,
    daily_equity,
    order_stats,
    performance,
    trade_record,
)
from app.domain.events import OrderFilled, OrderRejected, OrderSubmitted, TradeClosed
from app.domain.instruments import Instrument
from app.domain.market import FundingRate, MarkPrice, PriceBar
from app.domain.rejections import CommandRefused
from app.domain.strategies import CreateStrategy, StartStrategy
from app.engine.quiet import (
    SPAN_NEUTRAL,
    QuietSpan,
    absorb_bars,
    absorb_points,
    absorb_update,
    equity_marked,
    quiet_span,
)
from app.marketdata.recorded_signals import RecordedSignal, SignalCounts, SignalFile
from app.simulate import Source, bar_source, build_demo_engine
from app.strategies.host import StrategyHost
from app.strategies.registry import kinds
from app.venues.mock import MockVenueConfig

# Kinds a backtest runs: one symbol on one venue. funding_arb trades two venues'
# markets at once and has its own runner (app/simulate.py run_arbitrage).
BACKTEST_KINDS = ("ma_crossover", "atr_trend", "demo")
DEFAULT_CHUNK = 20_000  # market updates a chunk (a bar file gives four or more a bar)


@dataclass(frozen=True, slots=True)
class Fees:
    """Fee rates in basis points of notional (None: the instrument's own)."""

    maker_bps: Decimal | None = None
    taker_bps: Decimal | None = None

    def apply(self, instruments: list[Instrument]) -> list[Instrument]:
        out = []
        for inst in instruments:
            if self.maker_bps is not None:
                inst = replace(inst, maker_fee_rate=self.maker_bps / 10_000)
            if self.taker_bps is not None:
                inst = replace(inst, taker_fee_rate=self.taker_bps / 10_000)
            out.append(inst)
        return out


@dataclass(frozen=True, slots=True)
class BacktestConfig:
    strategy: str | None  # None: recorded signals only (``signals``)
    data: Path
    symbol: str = "BTC-PERP"
    venue: str = VENUES[0]
    params: Mapping[str, Any] = field(default_factory=dict)
    funding: Path | None = None
    fees: Fees = Fees()
    interval: timedelta | None = None
    volume_unit: str = "quote"
    periods_per_year: int = CRYPTO_DAYS_PER_YEAR
    chunk: int = DEFAULT_CHUNK
    # None: the paper venue (book walking, queues); set: the mock venue (app/venues/mock.py).
    mock: MockVenueConfig | None = None
    # Take bar points in which nothing can happen without stepping the engine and the
    # strategy host through them (app/engine/quiet.py); False steps every update.
    fast: bool = True
    # Recorded signals (app/marketdata/recorded_signals.py), each submitted at its time
    # as POST /api/v1/signals would: seed 002's historical mode, alone or beside a
    # strategy.
    signals: Path | None = None

    @property
    def strategy_id(self) -> str:
        return f"backtest-{self.strategy}"

    @property
    def label(self) -> str:
        """What is backtested, for a title: the strategy, and the signals' file."""
        parts = [self.strategy] if self.strategy else []
        if self.signals is not None:
            parts.append(f"signals {self.signals.name}")
        return " + ".join(parts)

    @property
    def client(self) -> str:
        return CLIENTS[0]


@dataclass(slots=True)
class BacktestResult:
    config: BacktestConfig
    params: dict[str, Any]  # as validated, defaults included
    description: str
    bars: int
    updates: int
    events: int
    equity: list[EquityPoint]  # one point a bar (its first update), and the last
    trades: list[TradeRecord]
    performance: Performance
    first_at: datetime | None
    last_at: datetime | None
    wall_s: float
    # The symbol's mark price a bar: (bar start, open, high, low, close), for the
    # HTML report's price chart.
    candles: list[tuple[datetime, Decimal, Decimal, Decimal, Decimal]] = field(
        default_factory=list)
    # Bar points taken in without stepping (``BacktestConfig.fast``): three of
    # ``updates`` each.
    absorbed_points: int = 0
    # Of ``updates``, those stepped through the engine's ``on_market`` and the strategy
    # host's ``step`` (all of them without ``fast``); the others were taken in.
    stepped_updates: int = 0
    # Recorded signals (``BacktestConfig.signals``): submitted, refused by the engine
    # (an unknown client, say; the last refusal's line and reason), left out (another
    # market's, or outside the bars' time).
    signals: dict[str, Any] = field(default_factory=dict)


def validated_params(config: BacktestConfig) -> tuple[tuple[str, str], ...]:
    """The strategy's parameters as the engine stores them; ``symbol`` (and the demo's
    ``symbols``) follow the backtest's symbol unless given."""
    if config.strategy is None:
        if config.signals is None:
            raise ValueError("a backtest needs a strategy, recorded signals, or both")
        return ()
    if config.strategy not in BACKTEST_KINDS:
        raise ValueError(f"strategy {config.strategy!r} cannot be backtested on one bar file"
                         f" (one of: {', '.join(BACKTEST_KINDS)})")
    kind = kinds()[config.strategy]
    raw = dict(config.params)
    fields = kind.params.model_fields
    if "symbol" in fields:
        raw.setdefault("symbol", config.symbol)
    if "symbols" in fields:
        raw.setdefault("symbols", [config.symbol])
    return kind.validate(raw)


def run_backtest(config: BacktestConfig,
                 on_progress: Callable[[int], None] | None = None) -> BacktestResult:
    """Run ``config``'s strategy over its bar file to the end and measure it."""
    with fewer_collections():
        return _run_backtest(config, on_progress)


# Collection thresholds while a backtest runs (generation 0 in allocations, 1 and 2 in
# collections of the generation below): see ``fewer_collections``.
BACKTEST_GC_THRESHOLDS = (100_000, 50, 100)


@contextmanager
def fewer_collections() -> Iterator[None]:
    """The cyclic garbage collector less often, restored after: a backtest allocates
    millions of short-lived objects (bars, decimals, equity points) and frees them by
    reference counting, and keeps a long equity curve that every older-generation
    collection walks again; at the defaults (700, 10, 10) that costs 5-8 % of a run
    for next to nothing. Cycles are still collected, less often."""
    before = gc.get_threshold()
    gc.set_threshold(*(max(now, wanted)
                       for now, wanted in zip(before, BACKTEST_GC_THRESHOLDS, strict=True)))
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _run_backtest(config: BacktestConfig,
                  on_progress: Callable[[int], None] | None) -> BacktestResult:
    started = time.perf_counter()
    params = validated_params(config)
    source: Source = bar_source(config.data, symbol=config.symbol, venue=config.venue,
                                interval=config.interval, funding=config.funding,
                                volume_unit=config.volume_unit)
    assert source.interval is not None
    instruments = config.fees.apply(source.instruments)
    engine = build_demo_engine(instruments, source.venues, source.venue_config,
                               mock=config.mock)
    if config.mock is not None:
        source.description += (f", mock venue ({config.mock.latency.total_seconds() * 1000:g}"
                               f" ms, fill ratio {config.mock.fill_ratio})")
    host = StrategyHost()
    client, venue, sid = config.client, config.venue, config.strategy_id

    assert source.bars is not None
    bars_in = iter(source.bars)
    first_bar = next(bars_in, None)
    if first_bar is None:
        raise ValueError(f"{config.data}: no bars")
    start = first_bar.start
    events: list[Any] = []
    if config.strategy is not None:
        events += engine.handle(CreateStrategy(sid, config.strategy, client, venue, params,
                                               "backtest"), start)
        events += engine.handle(StartStrategy(sid, "backtest"), start)
    signal_file = SignalFile(config.signals, venue=venue, symbol=config.symbol,
                             client=client) if config.signals is not None else None
    signal_counts = SignalCounts()
    if signal_file is not None:
        signal_file.check()
        source.description += f", signals from {signal_file.path.name}"
        signal_counts = signal_file.counts
    stops = InitialStops()
    closed: list[TradeClosed] = []
    mine: set[int] = set()
    rejections: list[str] = []
    filled: set[int] = set()
    count = 0

    def observe(produced: list[Any]) -> None:
        nonlocal count
        count += len(produced)
        stops.observe(produced)
        for e in produced:
            kind = type(e)
            if kind is OrderSubmitted:
                tags = e.spec.tags
                if tags.strategy == sid or (signal_file is not None
                                            and tags.signal_id is not None):
                    mine.add(e.order_id)
            elif kind is OrderFilled:
                if e.order_id in mine:
                    filled.add(e.order_id)
            elif kind is OrderRejected:
                if e.order_id in mine:
                    rejections.append(e.code)
            elif kind is TradeClosed and e.trade.client == client and e.trade.venue == venue:
                closed.append(e)

    observe(events)
    equity: list[EquityPoint] = []
    interval = source.interval
    symbol = config.symbol
    next_sample = start
    bars = updates = absorbed = stepped = 0
    bar_at = start
    candles: list[tuple[datetime, Decimal, Decimal, Decimal, Decimal]] = []

    def sample(now: datetime, is_bar: bool) -> None:
        """A new bar (or a funding rate at a bar's time): its equity before it trades."""
        nonlocal next_sample, bars, bar_at
        equity.append(EquityPoint(now, engine.equity(client, venue)))
        bars += is_bar
        next_sample = now + interval
        bar_at = now

    def candle_of(prices: tuple[Decimal, ...]) -> None:
        """The bar's candle (from the symbol's marks) with ``prices`` marked in turn."""
        high, low = max(prices), min(prices)
        if candles and candles[-1][0] == bar_at:
            at, o, h, lo, _ = candles[-1]
            candles[-1] = (at, o, max(h, high), min(lo, low), prices[-1])
        else:
            candles.append((bar_at, prices[0], high, low, prices[-1]))

    def step(update: Any, quiet: QuietSpan | None = None) -> bool:
        """One update through the engine and the strategy host: the way a server
        takes market data (``quiet``: a span that holds it, the engine takes it in).
        Whether anything happened that a quiet span rests on."""
        nonlocal updates, stepped
        if type(update) is RecordedSignal:
            submit(update)
            return True
        stepped += 1
        now = update.ts
        if now >= next_sample:
            sample(now, type(update) is not FundingRate)
        if type(update) is MarkPrice and update.symbol == symbol:
            candle_of((update.price,))
        if quiet is None:
            produced = engine.on_market(update, now)
        else:
            absorb_update(engine, quiet, update)
            produced = []
        produced += host.step(engine, now, produced, update).events
        observe(produced)
        updates += 1
        return any(type(e) not in SPAN_NEUTRAL for e in produced)

    def submit(recorded: RecordedSignal) -> None:
        """A recorded signal, as the server's bus would submit it: through the engine,
        then the strategy host sees what it did."""
        now = recorded.ts
        if now >= next_sample:
            sample(now, False)
        try:
            produced = engine.handle(recorded.command, now)
        except CommandRefused as exc:
            signal_counts.refuse(recorded, exc.rejection.message)
            return
        signal_counts.submitted += 1
        produced += host.step(engine, now, produced).events
        observe(produced)

    # Funding rates (and recorded signals) go in between the bar points as
    # ``with_funding`` puts them: before the first point later than they are; none
    # before the first bar.
    rates: Iterator[FundingRate | RecordedSignal] = iter(source.funding_rates)
    if signal_file is not None:
        rates = heapq.merge(rates, signal_file, key=attrgetter("ts"))
    rate = next(rates, None)
    while rate is not None and rate.ts < start:
        signal_counts.outside_data += type(rate) is RecordedSignal
        rate = next(rates, None)
    # The quiet span of the engine and of the host: points inside both are taken in
    # without stepping (app/engine/quiet.py); anything stepped may change them.
    span: QuietSpan | None = None
    host_until: datetime | None = None
    fresh = False  # whether span and host_until were worked out since the last step
    last_at = start
    chunk_left = config.chunk
    fast = config.fast
    # Whole bars inside both spans, taken in by the loop (equity, candle) but not yet
    # by the engine and the host: they take a run of them at once (``absorb_bars``)
    # before anything else reads their state.
    whole: list[PriceBar] = []
    whole_quoted = False  # whether the first one's first quote was stepped through

    def catch_up() -> None:
        nonlocal whole_quoted
        if whole:
            assert span is not None
            absorb_bars(engine, span, whole, whole_quoted)
            host.absorb_bars(venue, symbol, whole, whole_quoted)
            whole.clear()
            whole_quoted = False

    def bar_done(end: datetime) -> None:
        """A bar's last point taken (``end``): progress every ``chunk`` updates."""
        nonlocal last_at, chunk_left
        last_at = end
        chunk_left -= 12
        if chunk_left <= 0:
            chunk_left = config.chunk
            if on_progress is not None:
                on_progress(bars)

    for bar in chain((first_bar,), bars_in):
        times = bar.times
        if fast and fresh and span is not None and host_until is not None \
                and times[0] >= next_sample and times[3] < span.until \
                and times[3] < host_until and (rate is None or times[3] < rate.ts):
            low, high = span.low, span.high
            p0, p1, p2, p3 = bar.prices
            if low < p0 < high and low < p1 < high and low < p2 < high and low < p3 < high:
                # A whole quiet bar: its equity before it trades (marked at the close
                # of the bar before, which the engine has not taken in yet), its candle.
                at = times[0]
                value = equity_marked(engine, span, client, venue, whole[-1].prices[3]) \
                    if whole else engine.equity(client, venue)
                equity.append(EquityPoint(at, value))
                bars += 1
                next_sample = at + interval
                bar_at = at
                candles.append((at, p0, max(p0, p1, p2, p3), min(p0, p1, p2, p3), p3))
                whole.append(bar)
                updates += 12
                absorbed += 4
                bar_done(times[3])
                continue
        catch_up()
        k = 0
        while k < 4:
            now = times[k]
            while rate is not None and rate.ts < now:
                step(rate)
                fresh = False
                last_at = rate.ts
                rate = next(rates, None)
            if fast:
                if not fresh:
                    span = quiet_span(engine, venue, symbol)
                    host_until = host.quiet_until(engine, venue, symbol) \
                        if span is not None else None
                    fresh = True
                # The quiet points from k on: up to the bar's end, a point outside the
                # span, or the next funding rate.
                end = k
                if span is not None and host_until is not None:
                    limit = host_until if rate is None or rate.ts >= host_until else rate.ts
                    while end < 4 and times[end] < limit \
                            and span.holds(bar.prices[end], times[end]):
                        end += 1
                if end > k:
                    assert span is not None
                    # An equity sample is due before the first point at or after
                    # ``next_sample`` (most often the bar's open; after a funding rate
                    # took one between bars, a later point): the run splits there.
                    due = k
                    while due < end and times[due] < next_sample:
                        due += 1
                    for first, stop in ((k, due), (due, end)):
                        if first == stop:
                            continue
                        if times[first] >= next_sample:
                            sample(times[first], True)
                        candle_of(bar.prices[first:stop])
                        absorb_points(engine, span, bar, first, stop)
                        host.absorb_points(venue, symbol, bar, first, stop)
                    updates += 3 * (end - k)
                    absorbed += end - k
                    k = end
                    continue
            # A point to step through: the host sees each of its updates; the engine
            # takes in those its quiet span still holds (nothing of theirs can happen).
            price = bar.prices[k]
            quote, trade, mark = bar.point_updates(venue, symbol, k)
            if fresh and span is not None and span.holds(price, now):
                if step(quote, span):
                    fresh = False  # something moved: work the span out again
                else:
                    host_until = host.quiet_until(engine, venue, symbol)
                    if host_until is not None and now < host_until:
                        # The quote was all the host had to see (most often: it closed
                        # a strategy's bar, quietly): the print and the mark are quiet,
                        # and so are the bar's next points inside both spans, up to a
                        # funding rate or a due equity sample.
                        limit = host_until if rate is None or rate.ts >= host_until \
                            else rate.ts
                        limit = min(limit, next_sample)
                        end = k + 1
                        while end < 4 and times[end] < limit \
                                and span.holds(bar.prices[end], times[end]):
                            end += 1
                        if k == 0 and end == 4:  # the bar's rest goes with the next ones
                            whole.append(bar)
                            whole_quoted = True
                            candle_of(bar.prices)
                            updates += 11
                            absorbed += 3
                            break
                        absorb_update(engine, span, trade)
                        absorb_update(engine, span, mark)
                        if end > k + 1:
                            absorb_points(engine, span, bar, k + 1, end)
                        candle_of(bar.prices[k:end])
                        host.absorb_points(venue, symbol, bar, k, end, quoted=True)
                        updates += 2 + 3 * (end - k - 1)
                        absorbed += end - k - 1
                        k = end
                        continue
            else:
                step(quote)
                fresh = False
            for update in (trade, mark):
                if fresh and span is not None and span.holds(price, now):
                    if step(update, span):
                        fresh = False
                else:
                    step(update)
                    fresh = False
            if fresh and span is not None:  # the span still holds; the host moved on
                host_until = host.quiet_until(engine, venue, symbol)
            k += 1
        bar_done(times[3])
    catch_up()
    # Rates (and signals) after the last point are left out: no market to act on.
    if signal_file is not None:
        while rate is not None:  # (read to the end: each row checked, and counted)
            signal_counts.outside_data += type(rate) is RecordedSignal
            rate = next(rates, None)
    if on_progress is not None:
        on_progress(bars)
    final = engine.equity(client, venue)
    if equity[-1].at != last_at or equity[-1].equity != final:
        equity.append(EquityPoint(last_at, final))

    strategy_label = config.strategy or "signals"
    trades = [trade_record(e.trade, strategy=strategy_label,
                           stop_price=stops.stops.get(e.trade.trade_id)) for e in closed]
    orders = order_stats(len(mine), rejections, len(filled))
    perf = performance(daily_equity(equity), trades, orders=orders,
                       periods_per_year=config.periods_per_year)
    return BacktestResult(
        config, {k: json.loads(v) for k, v in params}, source.description, bars, updates,
        count, equity, trades, perf, start, last_at, time.perf_counter() - started,
        candles, absorbed, stepped, signal_counts.as_json() if signal_file is not None else {})
