"""Engine throughput on synthetic L1 quote ticks for one perp.

Scenarios (ticks are generated before the clock starts; only the engine run is timed):
  a  no orders
  b  a market order every 100 ticks, alternating side
  c  cancel + replace of a limit order near the touch every 10 ticks

Usage:  python bench/engine_throughput.py [--ticks N] [--scenarios abc] [--growth]

``--growth`` also runs (c) on a tenth of the ticks and prints the ratio of
the two rates: (c) must not slow down as fills pile up on the position.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

from app.domain.commands import Deposit, ReplaceOrder, SubmitOrder
from app.domain.events import OrderCanceled, OrderFilled, OrderSubmitted
from app.domain.instruments import Instrument, InstrumentKind
from app.domain.market import Quote
from app.domain.orders import OrderSpec, OrderType, Side
from app.engine import Engine, EngineConfig
from app.engine.engine import AccountSetup
from app.marketdata.synthetic import quote_ticks
from app.venues.paper.venue import PaperVenue

VENUE, SYMBOL, CLIENT = "paper-binance", "BTC-PERP", "bench"
TICK, STEP = Decimal("0.1"), Decimal("0.001")
START = datetime(2024, 1, 1, tzinfo=UTC)


def build_engine() -> Engine:
    instrument = Instrument(SYMBOL, VENUE, InstrumentKind.PERP, "BTC", "USDT", TICK, STEP,
                            min_qty=STEP, min_notional=Decimal(5))
    # 5x: (c) keeps buying at the touch, and by 1M ticks its position (~3 BTC) is past
    # the 50,000 notional that 20x allows (the default tiers): at 20x its replaces were
    # refused MAX_POSITION_AT_LEVERAGE and the run stopped.
    config = EngineConfig([instrument], [AccountSetup(CLIENT, VENUE, Decimal(5))])
    engine = Engine(config, {VENUE: PaperVenue(VENUE)})
    engine.handle(Deposit(CLIENT, VENUE, Decimal(10) ** 9), START)
    return engine


def scenario_a(engine: Engine, ticks: list[Quote]) -> list:
    on_market = engine.on_market
    events: list = []
    for q in ticks:
        out = on_market(q, q.ts)
        if out:
            events.extend(out)
    return events


def scenario_b(engine: Engine, ticks: list[Quote]) -> list:
    on_market, handle = engine.on_market, engine.handle
    qty = Decimal("0.01")
    specs = [OrderSpec(CLIENT, VENUE, SYMBOL, side, OrderType.MARKET, qty)
             for side in (Side.BUY, Side.SELL)]
    events: list = []
    for i, q in enumerate(ticks):
        out = on_market(q, q.ts)
        if out:
            events.extend(out)
        if i % 100 == 99:
            events.extend(handle(SubmitOrder(specs[(i // 100) % 2]), q.ts))
    return events


def scenario_c(engine: Engine, ticks: list[Quote]) -> list:
    on_market, handle, orders = engine.on_market, engine.handle, engine.state.orders
    qty = Decimal("0.001")
    events: list = []
    order_id = None
    for i, q in enumerate(ticks):
        out = on_market(q, q.ts)
        if out:
            events.extend(out)
        if i % 10 != 9:
            continue
        order = orders.get(order_id) if order_id is not None else None
        if order is None or not order.is_open:
            # (Re)start the quote: a bid at the touch.
            spec = OrderSpec(CLIENT, VENUE, SYMBOL, Side.BUY, OrderType.LIMIT, qty, price=q.bid)
            out = handle(SubmitOrder(spec), q.ts)
        else:
            price = q.bid if order.spec.price != q.bid else q.bid - TICK
            out = handle(ReplaceOrder(order_id, new_price=price), q.ts)
        events.extend(out)
        for e in reversed(out):
            if type(e) is OrderSubmitted:
                order_id = e.order_id
                break
    return events


SCENARIOS: dict[str, Callable[[Engine, list[Quote]], list]] = {
    "a": scenario_a, "b": scenario_b, "c": scenario_c,
}


def run(name: str, ticks: list[Quote]) -> tuple[float, list]:
    engine = build_engine()
    gc.collect()
    started = time.perf_counter()
    events = SCENARIOS[name](engine, ticks)
    return time.perf_counter() - started, events


def report(name: str, n: int, seconds: float, events: list) -> float:
    orders = sum(1 for e in events if type(e) is OrderSubmitted)
    fills = sum(1 for e in events if type(e) is OrderFilled)
    cancels = sum(1 for e in events if type(e) is OrderCanceled)
    rate = n / seconds
    print(f"scenario={name} ticks={n} seconds={seconds:.2f} ticks_per_s={rate:.0f} "
          f"orders={orders} fills={fills} cancels={cancels}", flush=True)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=1_000_000)
    parser.add_argument("--scenarios", default="abc")
    parser.add_argument("--growth", action="store_true",
                        help="also run (c) on ticks/10 and print the rate ratio")
    args = parser.parse_args()
    ticks = quote_ticks(args.ticks, venue=VENUE, symbol=SYMBOL, tick=TICK,
                        start_price=Decimal("60000"), size_step=STEP, seed=1, start=START)
    rates = {}
    for name in args.scenarios:
        seconds, events = run(name, ticks)
        rates[name] = report(name, args.ticks, seconds, events)
        del events
    if args.growth:
        small = ticks[: args.ticks // 10]
        seconds, _ = run("c", small)
        small_rate = len(small) / seconds
        full_rate = rates.get("c") or report("c", args.ticks, *run("c", ticks))
        print(f"growth scenario=c ticks_per_s_small={small_rate:.0f} "
              f"ticks_per_s_full={full_rate:.0f} ratio={full_rate / small_rate:.2f}")


if __name__ == "__main__":
    main()
