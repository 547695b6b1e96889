"""``perpdesk simulate``: run the engine on the built-in demo configuration.

Feeds the synthetic market (or a replay of the real BTC-PERP 1-minute bars)
through the engine while a small, seeded demo trader places market and
limit orders for each client, then prints what happened: orders by outcome,
closed trades and every account's valuation. Deterministic for a seed.
"""

from __future__ import annotations

import argparse
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from app.defaults import (
    CLIENTS,
    DEFAULT_LEVERAGE,
    DEMO_LIMITS,
    STARTING_BALANCE,
    VENUES,
    demo_instruments,
)
from app.domain.commands import Deposit, SubmitOrder
from app.domain.events import Event, OrderFilled, OrderRejected, TradeClosed
from app.domain.instruments import Instrument, Rounding
from app.domain.orders import OrderSpec, OrderType, Side
from app.domain.rejections import CommandRefused
from app.engine import Engine, EngineConfig
from app.engine.engine import AccountSetup
from app.marketdata.replay import default_data_dir, read_perp_bars
from app.marketdata.synthetic import SyntheticMarket
from app.venues.paper.venue import PaperVenue

START = datetime(2024, 1, 1, tzinfo=UTC)


def build_demo_engine(instruments: list[Instrument], venues: tuple[str, ...]) -> Engine:
    config = EngineConfig(
        instruments=instruments,
        accounts=[AccountSetup(c, v, DEFAULT_LEVERAGE) for c in CLIENTS for v in venues],
        limits=DEMO_LIMITS,
    )
    engine = Engine(config, {v: PaperVenue(v) for v in venues})
    for client in CLIENTS:
        for venue in venues:
            engine.handle(Deposit(client, venue, STARTING_BALANCE), START)
    return engine


def _demo_order(rng: random.Random, engine: Engine, inst: Instrument, client: str
                ) -> OrderSpec | None:
    """A small order well inside the demo limits: market or passive limit."""
    price = engine.venues[inst.venue].reference_price(inst.symbol)
    if price is None:
        return None
    limits = DEMO_LIMITS[inst.symbol]
    notional = Decimal(rng.randint(20, 60))
    qty = inst.round_qty(min(notional / price, limits.max_position_size / 4))
    if qty < inst.min_qty:
        return None
    side = rng.choice((Side.BUY, Side.SELL))
    if rng.random() < 0.5:
        return OrderSpec(client, inst.venue, inst.symbol, side, OrderType.MARKET, qty)
    offset = price * Decimal("0.0005") * side.sign
    limit = inst.round_price(price - offset, Rounding.DOWN if side is Side.BUY else Rounding.UP)
    return OrderSpec(client, inst.venue, inst.symbol, side, OrderType.LIMIT, qty, price=limit)


def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    if args.source == "btc-bars":
        venues = (VENUES[0],)
        instruments = [i for i in demo_instruments(venues) if i.symbol == "BTC-PERP"]
        feed = read_perp_bars(default_data_dir() / "btc-perp-2022-01_1m.csv", venue=venues[0],
                              symbol="BTC-PERP", tick=instruments[0].tick_size)
    else:
        venues = VENUES
        instruments = demo_instruments(venues)
        feed = SyntheticMarket(instruments, seed=args.seed, start=START)
    engine = build_demo_engine(instruments, venues)
    events: list[Event] = []
    first_ts = None
    next_order_at = None
    for update in feed:
        now = update.ts
        first_ts = first_ts or now
        if now - first_ts > timedelta(minutes=args.minutes):
            break
        events.extend(engine.on_market(update, now))
        if next_order_at is None or now >= next_order_at:
            next_order_at = now + timedelta(seconds=args.order_every)
            inst = rng.choice(instruments)
            spec = _demo_order(rng, engine, inst, rng.choice(CLIENTS))
            if spec is not None:
                try:
                    events.extend(engine.handle(SubmitOrder(spec), now))
                except CommandRefused as refused:
                    print(f"refused: {refused}")
    _print_report(engine, events, venues)
    return 0


def _print_report(engine: Engine, events: list[Event], venues: tuple[str, ...]) -> None:
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
        for venue in venues:
            s = engine.summary(client, venue)
            print(f"{client:8} {venue:14} {s.wallet:12.2f} {s.unrealized_pnl:11.2f} "
                  f"{s.equity:12.2f} {s.available:12.2f} {s.fees:8.4f} {s.funding:9.4f}")


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("simulate", help="run the engine on the demo configuration",
                            description=__doc__)
    p.add_argument("--source", choices=("synthetic", "btc-bars"), default="synthetic")
    p.add_argument("--minutes", type=float, default=30.0, help="simulated minutes to run")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--order-every", type=float, default=5.0,
                   help="simulated seconds between demo orders")
    p.set_defaults(run=run)
