"""Soak: a million orders through the real command bus, engine and event log, in-process.

Builds the server's ``TradingSystem`` on a fresh SQLite file (WAL, full fsync, as
the server configures it; the Alembic migrations run on start like ``perpdesk
serve``), runs it under ``app.runtime.gc_tuning.tuned_gc`` exactly as the server's
lifespan does (after recovery), and drives it with ``--concurrency`` asyncio callers
each awaiting ``bus.execute`` in a loop, so group commit batches them as it batches
concurrent requests in the server. Nothing is stubbed: the paper venues, the alert
monitor (after every commit and once a second), the Prometheus metrics hooks and the
projections all run. No HTTP: this measures the engine, the bus and the log.

The workload, per caller (each acts for one of ``--clients`` clients, on two venues
and ``--symbols``):

  far limit    40 % of orders: a GTC limit 10-40 bps behind the touch, canceled
               3-40 of the caller's steps later (most never fill)
  near limit   30 %: a GTC limit at the touch or up to 1 bp behind it; it rests and
               fills as the market moves (queue position, prints, crossing), or is
               canceled after 20-150 steps
  market       30 %: a market order on the side that shrinks the client's position
  replace      about 1 step in 10: a resting order re-priced (cancel/replace)

A caller keeps at most ``--max-open`` orders resting (the oldest is canceled first).
A cancel or replace of an order the caller can see has filled is not sent.

A seeded synthetic market (``app.marketdata.synthetic``: L2 deltas and snapshots,
quotes, prints, marks, funding) advances one step of 250 ms simulated time every
``--orders-per-step`` orders; the bus's clock is that simulated time. Market data
enters the bus queue from the callers' own turns and the callers wake in commit order,
so the queue's order, and with it every event, is a function of the seed and the
options (only wall-clock timestamps and the measurements differ between runs).

Figures: latency of every command from ``bus.execute`` to its committed answer,
attributed to the order count when it was sent (``first``: the first 100k orders,
``last``: the last 100k; a tenth of ``--orders`` each when that is less); RSS from
/proc/self/status after setup and at the end after a full collection (the sweep the
server runs daily, timed on its own); every garbage-collector pass of the run timed by
``tuned_gc``'s hook (``GcStats``, the figures the server puts on /metrics).

Usage (from the repository root; ~1,350 orders/s, ~2,000 commands/s on a 2-core
machine, so the full run takes about 12.5 minutes and needs ~1.2 GB of RAM and ~1.7 GB
of disk for the database):

  python bench/long_run.py --orders 100000                 # a quick look
  python bench/long_run.py                                 # 1,000,000 orders
  python bench/long_run.py --orders 100000 --tracemalloc 25   # what holds the memory

Options: ``--orders N`` (1,000,000), ``--seed``, ``--db PATH`` (default: a file in a
temporary directory, removed afterwards), ``--clients`` (6), ``--concurrency`` (12),
``--symbols`` (BTC-PERP,ETH-PERP), ``--orders-per-step`` (16), ``--max-open`` (48),
``--tracemalloc N`` (top N growing allocation sites between setup and end; slows the
run several times, so use it on 100k), ``--progress`` (orders between progress lines).

stdout is one line:

  orders=1000000 rss_mb_start=... rss_mb_end=... p99_ms_first_100k=...
  p99_ms_last_100k=... max_gc_pause_ms=...

stderr has the progress lines, the workload's outcome, what the engine holds at the
end, the garbage collector's passes per generation, and the targets with PASS/FAIL:
RSS growth <= 100 MB, last-window p99 within 20 % of the first-window p99, no GC pause
over 10 ms. The exit status is 0 whatever they say: it is a benchmark, not a test.

Baseline at b267178 (2-core VM shared with other jobs, 737 s for the orders):

  orders=1000000 rss_mb_start=89.5 rss_mb_end=1140.7 p99_ms_first_100k=12.49
  p99_ms_last_100k=15.18 max_gc_pause_ms=1462.13

All three targets fail. The engine keeps every order it has seen (1,056,255 Order
objects with their specs, client order ids and fill totals, indexed by id, by client
order id and per client) and every closed trade (179,329): ~1.1 kB of RSS per order,
2.3 million objects for the collector. Its two full passes took 1.0 s and 1.5 s (48
commands waited over 100 ms, too few to move a p99); young passes average 5.5 ms
(gen 0) and 58 ms (gen 1, up to ~100k survivors at the tuned thresholds) whatever the
history.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import gc
import heapq
import logging
import os
import random
import shutil
import sys
import tempfile
import time
import tracemalloc
from array import array
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from _common import note, percentile

from app.api.metrics import Metrics
from app.config import (
    BreakersConfig,
    ClientConfig,
    RiskConfig,
    RiskProfileConfig,
    Settings,
    TradingConfig,
    VenueConfig,
    default_trading_config,
)
from app.domain.commands import CancelOrder, Command, ReplaceOrder, SubmitOrder
from app.domain.events import (
    OrderAccepted,
    OrderFilled,
    OrderRejected,
    OrderReplaceRequested,
    OrderSubmitted,
)
from app.domain.market import Quote
from app.domain.orders import ZERO as ORDER_ZERO
from app.domain.orders import OrderSpec, OrderStatus, OrderType, Side
from app.domain.rejections import CommandRefused
from app.marketdata.synthetic import SyntheticMarket
from app.runtime.bus import StorageUnavailable
from app.runtime.gc_tuning import GcStats, tuned_gc
from app.runtime.system import TradingSystem

VENUES = ("paper-binance", "paper-bybit")
# Simulated time: the same every run; a million orders span ~4.3 h of it, so the 08:00
# funding instant settles mid-run.
START = datetime(2024, 1, 1, 6, tzinfo=UTC)
STEP = timedelta(milliseconds=250)
DEPOSIT = Decimal(100_000)
WINDOW = 100_000

# Targets (seed requirements for a long-running server).
MAX_RSS_GROWTH_MB = 100.0
MAX_P99_DRIFT = 0.20
MAX_GC_PAUSE_MS = 10.0

# The workload's mix (see the module docstring).
P_REPLACE = 0.10
P_FAR, P_NEAR = 0.40, 0.30  # of orders; the rest are market orders
FAR_BPS, FAR_LIFE = (10, 40), (3, 40)
NEAR_BPS, NEAR_LIFE = (0, 1), (20, 150)
FAR, NEAR = 0, 1

# Progress-line latency histogram: 50 µs buckets up to 200 ms.
HIST_RES = 20_000
HIST_TOP = 4_000


def memory_mb() -> tuple[float, float]:
    """(VmRSS, VmHWM) of this process in MB, from /proc/self/status."""
    rss = hwm = 0.0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) / 1024
    return rss, hwm


class Market:
    """The seeded synthetic feed, released one 250 ms step at a time into the bus.

    It owns the bus's clock (the simulated time of the last step released) and the
    latest quote per instrument (what the callers price their orders from, as a
    client watching the feed would)."""

    def __init__(self, system: TradingSystem, seed: int):
        self.system = system
        self.stream = iter(SyntheticMarket(system.instruments, seed=seed, start=START,
                                           step=STEP))
        self.pending = next(self.stream)
        self.now = START
        self.steps = 0
        self.updates = 0
        self.quotes: dict[tuple[str, str], Quote] = {}

    def clock(self) -> datetime:
        return self.now

    def step(self) -> None:
        ts = self.pending.ts
        on_market = self.system.on_market
        while self.pending.ts == ts:
            update = self.pending
            if type(update) is Quote:
                self.quotes[(update.venue, update.symbol)] = update
            on_market(update)
            self.updates += 1
            self.pending = next(self.stream)
        self.now = ts
        self.steps += 1


@dataclass
class Samples:
    """Latencies (seconds) of the commands sent during the first and last windows,
    in arrays allocated before the run (so they do not count as growth)."""

    window: int
    total: int
    first: array = field(init=False)
    last: array = field(init=False)
    n_first: int = 0
    n_last: int = 0
    hist: list[int] = field(default_factory=lambda: [0] * (HIST_TOP + 1))
    hist_n: int = 0
    slowest: float = 0.0  # over the whole run
    over_100ms: int = 0

    def __post_init__(self) -> None:
        cap = self.window * 4  # at most ~2 commands per order: generous
        self.first = array("d", bytes(8 * cap))
        self.last = array("d", bytes(8 * cap))

    def add(self, order_index: int, seconds: float) -> None:
        if order_index <= self.window and self.n_first < len(self.first):
            self.first[self.n_first] = seconds
            self.n_first += 1
        if order_index > self.total - self.window and self.n_last < len(self.last):
            self.last[self.n_last] = seconds
            self.n_last += 1
        b = int(seconds * HIST_RES)
        self.hist[b if b < HIST_TOP else HIST_TOP] += 1
        self.hist_n += 1
        if seconds > 0.1:
            self.over_100ms += 1
            if seconds > self.slowest:
                self.slowest = seconds

    def interval_p99_ms(self) -> float:
        """p99 of the commands since the last call (histogram resolution), then reset."""
        n, hist = self.hist_n, self.hist
        rank, seen, value = max(1, -(-99 * n // 100)), 0, float("nan")
        for b, c in enumerate(hist):
            seen += c
            if c and seen >= rank:
                value = (b + 1) / HIST_RES * 1000
                break
        self.hist = [0] * (HIST_TOP + 1)
        self.hist_n = 0
        return value


@dataclass
class Run:
    """What the callers share: the order counter, the market, the figures."""

    system: TradingSystem
    market: Market
    samples: Samples
    gc: GcStats  # the server's own figures (tuned_gc's pacer times every pass)
    total: int
    orders_per_step: int
    progress_every: int
    max_open: int
    seed: int
    orders: int = 0
    next_step_at: int = 0
    next_progress_at: int = 0
    started: float = 0.0
    rss_start: float = 0.0
    sent: Counter = field(default_factory=Counter)
    outcome: Counter = field(default_factory=Counter)
    instruments: dict[tuple[str, str], tuple[Decimal, list[Decimal], float]] = field(
        default_factory=dict)

    def claim_order(self) -> int | None:
        """The next order's number (1-based), releasing market steps as it goes."""
        if self.orders >= self.total:
            return None
        self.orders += 1
        while self.orders >= self.next_step_at:
            self.market.step()
            self.next_step_at += self.orders_per_step
        if self.orders >= self.next_progress_at:
            self.next_progress_at += self.progress_every
            self.progress()
        return self.orders

    def progress(self) -> None:
        elapsed = time.perf_counter() - self.started
        rss, _ = memory_mb()
        state = self.system.engine.state
        note(f"progress orders={self.orders} elapsed_s={elapsed:.0f} "
             f"orders_per_s={self.orders / elapsed if elapsed else 0:.0f} rss_mb={rss:.0f} "
             f"(+{rss - self.rss_start:.0f}) p99_ms_interval={self.samples.interval_p99_ms():.1f} "
             f"gc2={self.gc.passes[2]} gc2_max_ms={self.gc.max_s[2] * 1000:.0f} "
             f"engine_orders={len(state.orders)} closed_trades={len(state.closed_trades)} "
             f"sim_time={self.market.now:%H:%M:%S}")


async def caller(run: Run, index: int, client: str, symbols: list[str]) -> None:
    """One concurrent caller: place, cancel and replace orders for ``client``."""
    rng = random.Random(f"{run.seed}:caller:{index}")
    bus = run.system.bus
    state = run.system.engine.state
    orders = state.orders
    positions = state.positions
    quotes = run.market.quotes
    markets = [(venue, symbol) for venue in VENUES for symbol in symbols]
    resting: list[tuple[int, int, int]] = []  # heap of (due step, order id, far/near)
    step = 0

    async def send(command: Command, order_index: int, kind: str):
        run.sent[kind] += 1
        started = time.perf_counter()
        try:
            committed = await bus.execute(command)
        except CommandRefused as refused:
            run.outcome[f"{kind}_refused_{refused.code.value}"] += 1
            committed = None
        except StorageUnavailable:
            run.outcome[f"{kind}_storage_unavailable"] += 1
            committed = None
        run.samples.add(order_index, time.perf_counter() - started)
        return committed

    def passive_price(venue: str, symbol: str, side: Side, bps_range: tuple[int, int]
                      ) -> Decimal:
        quote = quotes[(venue, symbol)]
        tick, _, ticks_per_bp = run.instruments[(venue, symbol)]
        offset = int(rng.uniform(*bps_range) * ticks_per_bp)
        if side is Side.BUY:
            return max(tick, quote.bid - offset * tick)
        return quote.ask + offset * tick

    while run.orders < run.total:  # at the end, whatever rests stays resting
        step += 1
        # A resting order that is due (or the oldest, when too many rest): cancel it.
        if resting and (resting[0][0] <= step or len(resting) >= run.max_open):
            _, order_id, _ = heapq.heappop(resting)
            order = orders.get(order_id)
            if order is None or not order.is_open:
                run.outcome["closed_before_cancel"] += 1
                continue
            await send(CancelOrder(order_id, actor=client), run.orders, "cancel")
            continue
        # Re-price one of the resting orders now and then.
        if resting and rng.random() < P_REPLACE:
            slot = rng.randrange(len(resting))
            due, order_id, kind = resting[slot]
            order = orders.get(order_id)
            if order is None or order.status not in (OrderStatus.ACCEPTED,
                                                      OrderStatus.PARTIALLY_FILLED):
                continue
            spec = order.spec
            price = passive_price(spec.venue, spec.symbol, spec.side,
                                  FAR_BPS if kind == FAR else NEAR_BPS)
            if price == spec.price:
                continue
            committed = await send(ReplaceOrder(order_id, new_price=price, actor=client),
                                   run.orders, "replace")
            if committed is not None:
                for event in committed.events:
                    if type(event) is OrderReplaceRequested:
                        # Same due step: the heap order holds.
                        resting[slot] = (due, event.new_order_id, kind)
                        break
            continue
        order_index = run.claim_order()
        if order_index is None:
            break
        venue, symbol = markets[rng.randrange(len(markets))]
        _, qtys, _ = run.instruments[(venue, symbol)]
        qty = qtys[rng.randrange(len(qtys))]
        r = rng.random()
        if r < P_FAR + P_NEAR:
            kind = FAR if r < P_FAR else NEAR
            side = Side.BUY if rng.random() < 0.5 else Side.SELL
            price = passive_price(venue, symbol, side, FAR_BPS if kind == FAR else NEAR_BPS)
            spec = OrderSpec(client, venue, symbol, side, OrderType.LIMIT, qty, price=price)
            name = "limit_far" if kind == FAR else "limit_near"
        else:
            kind = -1
            position = positions.get((client, venue, symbol))
            held = position.qty if position is not None else 0
            side = (Side.SELL if held > 0 else Side.BUY if held < 0
                    else Side.BUY if rng.random() < 0.5 else Side.SELL)
            spec = OrderSpec(client, venue, symbol, side, OrderType.MARKET, qty)
            name = "market"
        committed = await send(SubmitOrder(spec, actor=client), order_index, name)
        if committed is None:
            continue
        order_id = None
        for event in committed.events:
            kind_of = type(event)
            if kind_of is OrderSubmitted:
                order_id = event.order_id
            elif kind_of is OrderRejected:
                run.outcome[f"{name}_rejected_{event.code}"] += 1
            elif kind_of is OrderFilled:
                run.outcome[f"{name}_fill_events_in_ack"] += 1
        if kind >= 0 and order_id is not None and orders[order_id].is_open:
            life = FAR_LIFE if kind == FAR else NEAR_LIFE
            heapq.heappush(resting, (step + rng.randint(*life), order_id, kind))


def trading_config(clients: list[str], symbols: list[str]) -> TradingConfig:
    """The embedded default narrowed to ``symbols`` on both paper venues, ``clients``
    funded on each, and no per-symbol position limits (the demo's seed-003 limits are
    a few hundred dollars: a soak would spend its time on rejections). The clients'
    risk profile is the server's default with its circuit breakers off: the random
    walk makes losing trades as often as winning ones, and a tripped breaker would turn
    the rest of the run into reduce-only rejections; every per-order check still runs."""
    base = default_trading_config()
    no_breakers = BreakersConfig(consecutive_losses=None, daily_loss_pct=None,
                                 max_drawdown_pct=None)
    return TradingConfig(
        venues=[VenueConfig(name=v) for v in VENUES],
        instruments=[i for i in base.instruments if i.symbol in symbols and i.venue in VENUES],
        clients=[ClientConfig(name=c, deposits=dict.fromkeys(VENUES, DEPOSIT))
                 for c in clients],
        limits={}, risk=RiskConfig(default=RiskProfileConfig(breakers=no_breakers)))


def order_sizes(system: TradingSystem) -> dict[tuple[str, str], tuple[Decimal, list[Decimal],
                                                                      float]]:
    """Per instrument: tick, a few order sizes (1-4x the smallest that clears the minimum
    notional with room), and ticks per basis point at the starting price."""
    out = {}
    prices = {q.symbol: q.bid for q in SyntheticMarket(system.instruments, seed=0,
                                                        start=START).take(40)
              if type(q) is Quote}
    for inst in system.instruments:
        price = prices[inst.symbol]
        units = max(1, int(inst.min_notional * Decimal("1.5") / price / inst.step_size) + 1,
                    int(inst.min_qty / inst.step_size))
        base = units * inst.step_size
        out[(inst.venue, inst.symbol)] = (inst.tick_size, [base * k for k in (1, 2, 3, 4)],
                                          float(price / inst.tick_size) / 10_000)
    return out


def engine_holdings(system: TradingSystem) -> list[str]:
    """What the engine and the venues hold at the end, container by container."""
    s = system.engine.state
    statuses = Counter(o.status.value for o in s.orders.values())
    lines = [
        f"engine.state.orders={len(s.orders)} "
        f"({', '.join(f'{k}={v}' for k, v in statuses.most_common())})",
        f"engine.state.by_client_order_id={len(s.by_client_order_id)}",
        f"engine.state.order_ids_by_client={sum(map(len, s.order_ids_by_client.values()))} "
        f"ids in {len(s.order_ids_by_client)} lists",
        f"engine.state.open_orders={sum(map(len, s.open_orders.values()))}",
        f"engine.state.pending_replaces={len(s.pending_replaces)}",
        f"engine.state.closed_trades={len(s.closed_trades)} "
        f"(+ closed_trades_by_client={sum(map(len, s.closed_trades_by_client.values()))}"
        " references)",
        f"engine.state.positions={len(s.positions)} accounts={len(s.accounts)} "
        f"funding_unpriced={len(s.funding_unpriced)}",
    ]
    for name, venue in system.engine.venues.items():
        resting = sum(map(len, getattr(venue, "_resting", {}).values()))
        by_id = len(getattr(venue, "_by_id", {}))
        lines.append(f"venue {name}: working={by_id} resting={resting}")
    lines.append(f"alerts.feed={len(system.alerts.feed)} bus.backlog={system.bus.backlog}")
    return lines


def retained_sizes(system: TradingSystem, sample: int = 2000) -> str:
    """A rough estimate of the bytes each order keeps alive: shallow sizes of the Order,
    its spec and the values only it holds (client order id, price, fill totals,
    messages), its entries in the order indexes, sampled over the newest orders.
    Shared values (sizes from a cache, timestamps shared by a batch, enums, tags) are
    left out. ``--tracemalloc`` measures instead of estimating."""
    s = system.engine.state
    ids = list(s.orders)[-sample:]
    if not ids:
        return "no orders"
    skip = {id(None), id(ORDER_ZERO)}
    total = 0
    for oid in ids:
        order = s.orders[oid]
        spec = order.spec
        seen: set[int] = set()
        for obj in (order, spec, order.client_order_id, spec.price, order.filled_qty,
                    order.filled_notional, order.fees, order.reject_message):
            if id(obj) not in skip and id(obj) not in seen:
                seen.add(id(obj))
                total += sys.getsizeof(obj)
        # by_client_order_id's key tuple, and the int keys of the two dicts
        total += sys.getsizeof((spec.client, spec.venue, order.client_order_id))
        total += sys.getsizeof(oid) * 2
    per_order = total / len(ids)
    index = (sys.getsizeof(s.orders) / max(1, len(s.orders))
             + sys.getsizeof(s.by_client_order_id) / max(1, len(s.by_client_order_id)) + 8)
    trades = s.closed_trades[-sample:]
    per_trade = sum(sys.getsizeof(t) for t in trades) / len(trades) if trades else 0.0
    return (f"~{per_order:.0f} B per order in objects (shallow, sampled) + ~{index:.0f} B "
            f"of index tables; ~{per_trade:.0f} B per closed trade (shallow)")


async def soak(args: argparse.Namespace, db_path: Path) -> None:
    clients = [f"soak-{i}" for i in range(args.clients)]
    symbols = [s.strip() for s in args.symbols.split(",") if s.strip()]
    settings = Settings(database_url=f"sqlite:///{db_path}", feed="none", migrate=True,
                        demo_credentials=False, config=None)
    system = TradingSystem(settings, trading_config(clients, symbols))
    if not system.instruments:
        raise SystemExit(f"no instrument matches --symbols {args.symbols}")
    # As the server's lifespan wires it (post-commit handlers by event type where the
    # bus has them, the older plain listener list otherwise).
    metrics = Metrics()
    system.bus.observer = metrics.observe
    post_commit = getattr(system.bus, "post_commit", None)
    if post_commit is not None:
        post_commit.on("metrics", metrics.observe_records,
                       OrderFilled, OrderAccepted, OrderRejected)
    else:
        system.bus.listeners.append(metrics.observe_events)
    market = Market(system, args.seed)
    system.bus.clock = market.clock  # the engine runs on simulated time
    await system.start()  # migrations, recovery, the bus, the deposits, clock, housekeeping
    # The bus's wall-clock tick would interleave with the callers by timing; the feed
    # advances time for the engine instead (a tick only runs venue timers, and these
    # venues have no latency and the orders no expiry). Housekeeping (alert checks once
    # a second) stays: it reads, never queues.
    await system.clock.stop()
    window = min(WINDOW, max(1, args.orders // 10))
    run = Run(system, market, Samples(window, args.orders), GcStats(), args.orders,
              args.orders_per_step, args.progress or max(1, args.orders // 20),
              args.max_open, args.seed)
    run.instruments = order_sizes(system)
    for _ in range(8):  # books, quotes and marks before the first order
        market.step()
    run.next_step_at = args.orders_per_step
    run.next_progress_at = run.progress_every
    if window != WINDOW:
        note(f"note: windows are the first and last {window} orders (a tenth of the run); "
             "the keys keep their names")
    note(f"setup: db={db_path} clients={len(clients)} concurrency={args.concurrency} "
         f"instruments={len(system.instruments)} "
         f"({', '.join(f'{i.venue}:{i.symbol}' for i in system.instruments)}) "
         f"orders_per_step={args.orders_per_step} max_open={args.max_open} seed={args.seed}")

    with tuned_gc() as pacer:  # as the server's lifespan: after recovery, around serving
        # (it has just collected and frozen what setup left, and times every pass from here)
        run.gc = pacer.stats
        rss_start, _ = memory_mb()
        frozen_start = gc.get_freeze_count()
        run.rss_start = rss_start
        if args.tracemalloc:
            tracemalloc.start(1)
            before = tracemalloc.take_snapshot()
        run.started = time.perf_counter()
        await asyncio.gather(*(
            caller(run, i, clients[i % len(clients)], symbols)
            for i in range(args.concurrency)))
        elapsed = time.perf_counter() - run.started
        gcs = copy.deepcopy(pacer.stats)  # the run's passes: not the sweep below
        frozen_before_sweep = gc.get_freeze_count()
        sweep_ms = pacer.sweep() * 1000  # not in max_gc_pause_ms: it is scheduled daily
        rss_end, hwm = memory_mb()
        top, by_file = [], []
        if args.tracemalloc:
            after = tracemalloc.take_snapshot()
            tracemalloc.stop()
            filters = [tracemalloc.Filter(False, tracemalloc.__file__)]
            after, before = after.filter_traces(filters), before.filter_traces(filters)
            top = after.compare_to(before, "lineno")[:args.tracemalloc]
            by_file = after.compare_to(before, "filename")[:10]
        tracked = len(gc.get_objects())
        frozen = gc.get_freeze_count()

    samples = run.samples
    first = sorted(samples.first[:samples.n_first])
    last = sorted(samples.last[:samples.n_last])
    p99_first, p99_last = percentile(first, 99), percentile(last, 99)
    commands = sum(run.sent.values())
    note(f"done: orders={run.orders} commands={commands} seconds={elapsed:.0f} "
         f"orders_per_s={run.orders / elapsed:.0f} commands_per_s={commands / elapsed:.0f} "
         f"market_steps={market.steps} market_updates={market.updates} "
         f"sim_time={market.now - START} events={system.bus.last_committed_seq}")
    note("sent: " + " ".join(f"{k}={v}" for k, v in sorted(run.sent.items())))
    note("outcome: " + " ".join(f"{k}={v}" for k, v in sorted(run.outcome.items())))
    for name, values in (("first", first), ("last", last)):
        note(f"latency {name} {window} orders: commands={len(values)} "
             f"p50_ms={percentile(values, 50):.2f} p99_ms={percentile(values, 99):.2f} "
             f"p99.9_ms={percentile(values, 99.9):.2f} "
             f"max_ms={values[-1] * 1000 if values else float('nan'):.1f}")
    note(f"latency whole run: commands over 100 ms={samples.over_100ms} "
         f"slowest_ms={samples.slowest * 1000:.0f}")
    for g in range(3):
        note(f"gc gen{g}: passes={gcs.passes[g]} total_ms={gcs.total_s[g] * 1000:.0f} "
             f"max_ms={gcs.max_s[g] * 1000:.1f} (cpu {gcs.max_cpu_s[g] * 1000:.1f}) "
             f"collected={gcs.collected[g]}")
    note(f"gc: objects tracked at the end={tracked} (what a pass could walk), frozen "
         f"(no pass walks them) at start={frozen_start} at the end={frozen_before_sweep}")
    note(f"gc sweep (what PERPDESK_GC_SWEEP_HOURS schedules, once a day by default) at the "
         f"end: {sweep_ms:.1f} ms, {frozen} objects frozen after it")
    note(f"memory: rss_mb_start={rss_start:.1f} rss_mb_end={rss_end:.1f} "
         f"growth_mb={rss_end - rss_start:.1f} peak_mb={hwm:.1f} "
         f"growth_per_order_b={(rss_end - rss_start) * 2**20 / max(1, run.orders):.0f}")
    for line in engine_holdings(system):
        note("holds: " + line)
    note("holds: " + retained_sizes(system))
    db_bytes = sum(p.stat().st_size for p in db_path.parent.glob(db_path.name + "*"))
    note(f"database: {db_bytes / 2**20:.0f} MB (with WAL)")
    here = str(Path.cwd()) + os.sep
    if top:
        note(f"tracemalloc: top {len(top)} allocation sites by growth since setup")
        for stat in top:
            frame = stat.traceback[0]
            note(f"  {stat.size_diff / 2**20:8.1f} MB {stat.count_diff:+9d} blocks  "
                 f"{frame.filename.replace(here, '')}:{frame.lineno}")
        note("tracemalloc: growth by file")
        for stat in by_file:
            note(f"  {stat.size_diff / 2**20:8.1f} MB {stat.count_diff:+9d} blocks  "
                 f"{stat.traceback[0].filename.replace(here, '')}")

    await system.stop()

    growth = rss_end - rss_start
    drift = p99_last / p99_first - 1 if p99_first else float("nan")
    max_pause_ms = gcs.max_pause_s * 1000
    targets = [
        (f"rss growth {growth:.1f} MB <= {MAX_RSS_GROWTH_MB:.0f} MB",
         growth <= MAX_RSS_GROWTH_MB),
        (f"last-window p99 {p99_last:.2f} ms within {MAX_P99_DRIFT:.0%} of first-window "
         f"p99 {p99_first:.2f} ms ({drift:+.0%})", p99_last <= p99_first * (1 + MAX_P99_DRIFT)),
        (f"max gc pause {max_pause_ms:.1f} ms <= {MAX_GC_PAUSE_MS:.0f} ms",
         max_pause_ms <= MAX_GC_PAUSE_MS),
    ]
    for text, met in targets:
        note(f"target: {'PASS' if met else 'FAIL'} {text}")
    print(f"orders={run.orders} rss_mb_start={rss_start:.1f} rss_mb_end={rss_end:.1f} "
          f"p99_ms_first_100k={p99_first:.2f} p99_ms_last_100k={p99_last:.2f} "
          f"max_gc_pause_ms={max_pause_ms:.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--db", type=Path, default=None,
                        help="SQLite file to create (default: in a temporary directory)")
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=12)
    parser.add_argument("--symbols", default="BTC-PERP,ETH-PERP")
    parser.add_argument("--orders-per-step", type=int, default=16,
                        help="orders per 250 ms step of the synthetic market")
    parser.add_argument("--max-open", type=int, default=48,
                        help="resting orders per caller at most")
    parser.add_argument("--tracemalloc", type=int, default=0, metavar="N",
                        help="print the N allocation sites that grew most (slow)")
    parser.add_argument("--progress", type=int, default=0,
                        help="orders between progress lines (default: a twentieth)")
    args = parser.parse_args()
    if args.orders < 1 or args.clients < 1 or args.concurrency < 1 or args.orders_per_step < 1:
        parser.error("--orders, --clients, --concurrency and --orders-per-step must be >= 1")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    tmp = None
    if args.db is None:
        tmp = Path(tempfile.mkdtemp(prefix="perpdesk-soak-"))
        db_path = tmp / "soak.db"
    else:
        db_path = args.db.resolve()
        if db_path.exists():
            parser.error(f"{db_path} exists: the soak needs a fresh database")
        db_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(soak(args, db_path))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
