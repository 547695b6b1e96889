"""A hand-driven two-venue market for the funding-rate arbitrage's tests.

Quotes, trades and funding rates are set per venue; ``step`` advances the clock,
feeds the engine and runs the strategy host exactly as the server and
``perpdesk simulate`` do (``run_arbitrage``), so every test sees the real engine,
paper venues and strategy code.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from app.defaults import demo_instruments
from app.domain.arbitrage import ArbBook
from app.domain.commands import Command
from app.domain.events import Event
from app.domain.market import FundingRate, MarketUpdate, MarkPrice, Quote, TradePrint
from app.domain.orders import Side
from app.domain.strategies import CreateStrategy, StartStrategy
from app.engine import Engine
from app.simulate import ARB_CLIENT, ARB_STRATEGY, build_arb_engine
from app.strategies.arbitrage import FUNDING_ARB
from app.strategies.host import StrategyHost
from app.venues.paper.venue import PaperVenueConfig

A, B = "paper-binance", "paper-bybit"
SYMBOL = "BTC-PERP"
T0 = datetime(2024, 1, 1, 1, 0, tzinfo=UTC)  # 7 h before the 08:00 settlement
STEP = timedelta(milliseconds=100)


@dataclass
class TwoVenues:
    engine: Engine
    host: StrategyHost = field(default_factory=StrategyHost)
    now: datetime = T0
    events: list[Event] = field(default_factory=list)

    @classmethod
    def make(cls, params: dict[str, object] | None = None,
             configs: dict[str, PaperVenueConfig] | None = None, start: bool = True,
             symbols: tuple[str, ...] = (SYMBOL,),
             steps: dict[str, D] | None = None) -> TwoVenues:
        """``steps``: a venue's own lot size for the symbols (venues differ)."""
        instruments = [i for i in demo_instruments((A, B)) if i.symbol in symbols]
        instruments = [replace(i, step_size=steps[i.venue], min_qty=steps[i.venue])
                       if steps and i.venue in steps else i for i in instruments]
        market = cls(build_arb_engine(instruments, (A, B), configs))
        if start:
            market.start(params)
        return market

    def start(self, params: dict[str, object] | None = None) -> None:
        defaults: dict[str, object] = {"venues": [A, B], "min_confidence": 0,
                                       "min_edge_ratio": "0", "scan_every_ms": 1000,
                                       "persistence_full_s": 0, "min_hold_s": 0}
        validated = FUNDING_ARB.validate({**defaults, **(params or {})})
        self.run(CreateStrategy(ARB_STRATEGY, FUNDING_ARB.name, ARB_CLIENT, A, validated))
        self.run(StartStrategy(ARB_STRATEGY))

    def run(self, command: Command) -> list[Event]:
        events = self.engine.handle(command, self.now)
        events += self.host.step(self.engine, self.now, events).events
        self.events += events
        return events

    def feed(self, *updates: MarketUpdate) -> None:
        for update in updates:
            produced = self.engine.on_market(update, self.now)
            produced += self.host.step(self.engine, self.now, produced, update).events
            self.events += produced

    def quote(self, venue: str, bid: str, ask: str, size: str = "1", symbol: str = SYMBOL
              ) -> None:
        self.feed(Quote(venue, symbol, D(bid), D(size), D(ask), D(size), self.now),
                  MarkPrice(venue, symbol, (D(bid) + D(ask)) / 2, self.now))

    def rate(self, venue: str, rate: str, symbol: str = SYMBOL,
             at: datetime | None = None) -> None:
        self.feed(FundingRate(venue, symbol, D(rate), at or datetime(2024, 1, 1, 8, tzinfo=UTC),
                              self.now))

    def trade(self, venue: str, price: str, qty: str, aggressor: Side,
              symbol: str = SYMBOL) -> None:
        self.feed(TradePrint(venue, symbol, D(price), D(qty), aggressor, self.now))

    def step(self, n: int = 1, every: timedelta = STEP) -> None:
        """Let ``n`` steps pass with no market data (the clock ticks as the bus's do)."""
        for _ in range(n):
            self.now += every
            produced = self.engine.advance(self.now)
            produced += self.host.step(self.engine, self.now, produced).events
            self.events += produced

    @property
    def book(self) -> ArbBook:
        return self.engine.state.arb.get(ARB_STRATEGY) or ArbBook()

    def position(self, venue: str, symbol: str = SYMBOL) -> D:
        pos = self.engine.state.positions.get((ARB_CLIENT, venue, symbol))
        return pos.qty if pos is not None else D(0)

    def wallets(self) -> D:
        return sum((self.engine.summary(ARB_CLIENT, v).wallet for v in (A, B)), D(0))

    def of_type(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]


def diverging(m: TwoVenues, a_rate: str = "0.0001", b_rate: str = "0.0010",
              a: tuple[str, str] = ("60000.0", "60000.1"),
              b: tuple[str, str] = ("60000.0", "60000.1"), size: str = "1") -> None:
    """Both venues quoted and funded: B pays shorts more, so the trade is long A,
    short B."""
    m.quote(A, *a, size=size)
    m.quote(B, *b, size=size)
    m.rate(A, a_rate)
    m.rate(B, b_rate)
