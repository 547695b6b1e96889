"""An asynchronous venue plugs in beside the paper one: it acknowledges orders and
later reports fills on its own, as work items of the command bus (``bus.reports``),
which the engine applies in arrival order and the log commits — also across a
storage outage, when they are held, every one, until writes work again."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from app.domain.commands import Deposit, SubmitOrder
from app.domain.events import OrderFilled
from app.domain.instruments import Instrument, InstrumentKind, VenueCapabilities
from app.domain.market import MarketUpdate
from app.domain.orders import Liquidity, Order, OrderSpec, OrderStatus, OrderType, Side
from app.domain.rejections import Rejection
from app.engine import Engine, EngineConfig
from app.engine.engine import AccountSetup
from app.runtime.broadcast import Broadcaster
from app.runtime.bus import CommandBus
from app.store.event_log import EventLog, make_db_engine
from app.store.migrate import upgrade
from app.venues.base import Accepted, Filled, Report

D = Decimal
VENUE, SYMBOL = "live-x", "BTC-PERP"
T0 = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass
class _Top:
    bid: Decimal | None = None
    ask: Decimal | None = None


@dataclass
class AsyncVenue:
    """A venue that only acknowledges: fills come later, on their own."""

    name: str = VENUE
    capabilities: VenueCapabilities = field(default_factory=VenueCapabilities)
    last: dict[str, Decimal] = field(default_factory=dict)
    marks: dict[str, Decimal] = field(default_factory=lambda: {SYMBOL: D("60000")})
    sent: list[int] = field(default_factory=list)

    def book(self, symbol: str) -> _Top:
        return _Top(D("59999"), D("60001"))

    def reference_price(self, symbol: str) -> Decimal | None:
        return self.marks.get(symbol)

    def add_instrument(self, instrument: Instrument) -> None:
        pass

    def submit(self, order: Order, now: datetime, enforce_reduce_only: bool = False
               ) -> list[Report]:
        self.sent.append(order.order_id)
        return [Accepted(order.order_id, now)]

    def cancel(self, order_id: int, now: datetime, reason: str = "canceled") -> list[Report]:
        return []

    def amend(self, order_id: int, qty: Decimal | None, price: Decimal | None,
              now: datetime) -> list[Report]:
        return []  # answered later, like everything else here

    def precheck(self, spec: OrderSpec, now: datetime) -> Rejection | None:
        return None

    def on_market(self, update: MarketUpdate, now: datetime) -> list[Report]:
        return []

    def advance(self, now: datetime) -> list[Report]:
        return []

    def restore(self, open_orders: list[Order], positions: dict[tuple[str, str], Decimal],
                now: datetime) -> list[Report]:
        return []


def make_bus(tmp_path: Path) -> tuple[CommandBus, AsyncVenue, EventLog]:
    url = f"sqlite:///{tmp_path / 'reports.db'}"
    upgrade(url)
    log = EventLog(make_db_engine(url))
    venue = AsyncVenue()
    inst = Instrument(SYMBOL, VENUE, InstrumentKind.PERP, "BTC", "USDT", D("0.1"),
                      D("0.001"), min_qty=D("0.001"), min_notional=D(5))
    engine = Engine(EngineConfig([inst], [AccountSetup("demo", VENUE, D(5))]),
                    {VENUE: venue})
    return CommandBus(engine, log, Broadcaster(16), clock=lambda: T0), venue, log


def order() -> SubmitOrder:
    return SubmitOrder(OrderSpec("demo", VENUE, SYMBOL, Side.BUY, OrderType.LIMIT,
                                 D("0.010"), price=D("60000.0")))


def test_fills_reported_later_are_applied_and_committed(tmp_path: Path) -> None:
    async def body() -> None:
        bus, venue, log = make_bus(tmp_path)
        bus.start()
        await bus.execute(Deposit("demo", VENUE, D(10_000)))
        await bus.execute(order())
        (order_id,) = venue.sent
        assert bus.engine.state.orders[order_id].status is OrderStatus.ACCEPTED
        bus.reports([Filled(order_id, D("0.004"), D("60000.0"), D("0.12"), Liquidity.MAKER,
                            T0)])
        bus.reports([Filled(order_id, D("0.006"), D("59999.9"), D("0.18"), Liquidity.MAKER,
                            T0), Filled(order_id, D("0.001"), D("1"), D(0), Liquidity.MAKER,
                                        T0)])  # the last one overfills: ignored
        await bus.execute(Deposit("demo", VENUE, D(1)))  # after the reports, in order
        state = bus.engine.state
        assert state.orders[order_id].status is OrderStatus.FILLED
        assert state.positions[("demo", VENUE, SYMBOL)].qty == D("0.010")
        await bus.stop()
        fills = [e for e in log.replay() if isinstance(e, OrderFilled)]
        assert [f.qty for f in fills] == [D("0.004"), D("0.006")]

    asyncio.run(body())


def test_reports_during_a_storage_outage_are_held_and_applied_after(tmp_path: Path) -> None:
    async def body() -> None:
        bus, venue, log = make_bus(tmp_path)
        bus.start()
        await bus.execute(Deposit("demo", VENUE, D(10_000)))
        await bus.execute(order())
        (order_id,) = venue.sent
        bus.storage_error = "OperationalError"  # as after a failed commit
        bus.reports([Filled(order_id, D("0.010"), D("60000.0"), D("0.3"), Liquidity.MAKER,
                            T0)])
        assert bus.engine.state.orders[order_id].status is OrderStatus.ACCEPTED
        await bus._resume()  # what the recovery task does once the log takes writes
        assert bus.writable
        assert bus.engine.state.orders[order_id].status is OrderStatus.FILLED
        await bus.stop()
        assert any(isinstance(e, OrderFilled) for e in log.replay())

    asyncio.run(body())
