"""A strategy behaves identically in the server's command bus and in ``perpdesk
simulate``: the same strategy on the same market data writes byte-identical events
to the server's event log as ``simulate`` produces, and a server restarted on that
log resumes the running strategies."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import orjson

from app.defaults import VENUES, demo_instruments
from app.domain.events import Event, OrderSubmitted
from app.domain.market import MarketUpdate
from app.domain.strategies import StartStrategy
from app.marketdata.synthetic import SyntheticMarket
from app.runtime.broadcast import Broadcaster
from app.runtime.bus import CommandBus
from app.simulate import START, Source, build_demo_engine, demo_strategies, simulate
from app.store.codec import encode_event
from app.store.event_log import EventLog, make_db_engine
from app.store.migrate import upgrade
from app.strategies.host import StrategyHost

UPDATES = 3000  # about a minute of the synthetic market on one venue
VENUE = VENUES[0]


def source() -> Source:
    instruments = demo_instruments((VENUE,))
    feed = itertools.islice(SyntheticMarket(instruments, seed=21, start=START), UPDATES)
    return Source(feed, instruments, (VENUE,))


def encoded(events: list[Event]) -> list[bytes]:
    return [orjson.dumps(encode_event(e)) for e in events]


async def run_on_the_bus(log: EventLog) -> tuple[CommandBus, list[MarketUpdate]]:
    """The server's bus on the same engine as simulate's, its clock the market's."""
    src = source()
    clock = {"now": START}
    bus = CommandBus(build_demo_engine(src.instruments, src.venues), log, Broadcaster(16),
                     clock=lambda: clock["now"], host=StrategyHost())
    bus.start()
    for create in demo_strategies(src.venues, seed=4, order_every=2.0):
        await bus.execute(create)
        await bus.execute(StartStrategy(create.strategy_id, "simulate"))
    updates = list(src.feed)
    for update in updates:  # one engine step per batch, as simulate steps
        clock["now"] = update.ts
        bus.market(update)
        while bus.backlog or bus.last_processed_at != update.ts:
            await asyncio.sleep(0)
    await bus.stop()
    return bus, updates


def test_the_bus_and_simulate_write_byte_identical_events(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'determinism.db'}"
    upgrade(url)
    log = EventLog(make_db_engine(url))
    asyncio.run(run_on_the_bus(log))
    logged = list(log.replay())
    simulated = simulate(source(), seed=4, minutes=None, order_every=2.0).events
    assert len(logged) == len(simulated)
    assert any(isinstance(e, OrderSubmitted) for e in logged)
    assert encoded(logged) == encoded(simulated)


def test_a_restarted_server_resumes_its_running_strategies(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'restart.db'}"
    upgrade(url)
    log = EventLog(make_db_engine(url))
    _, updates = asyncio.run(run_on_the_bus(log))
    # A new server process: the engine is rebuilt from the log, the host starts empty.
    engine = build_demo_engine(demo_instruments((VENUE,)), (VENUE,))
    engine.replay(log.replay())
    running = sorted(sid for sid, r in engine.state.strategies.items() if r.running)
    assert running == sorted(f"demo-{c}-{VENUE}" for c in ("demo", "demo-2"))
    host = StrategyHost()
    later = SyntheticMarket(demo_instruments((VENUE,)), seed=22,
                            start=updates[-1].ts + (updates[-1].ts - START))
    placed = []
    for update in itertools.islice(later, 2000):
        events = engine.on_market(update, update.ts)
        placed += [e for e in host.step(engine, update.ts, events, update).events
                   if isinstance(e, OrderSubmitted)]
    assert host.running == running
    assert {e.spec.tags.strategy for e in placed} == set(running)
