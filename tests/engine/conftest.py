"""Fixtures for engine behaviour tests.

The standard world: one perpetual, ``BTC-PERP`` on the paper venue
``paper-binance`` (tick 0.1, step 0.001, min qty 0.001, min notional 5,
default fees 0.02 % maker / 0.05 % taker), and one account, client ``demo``
at 5x leverage with 20,000 deposited at ``T0``.

Fixtures (all plain callables or objects, so tests never import this module):

* ``t0`` — the start of the simulated clock, 2024-01-01 00:00 UTC.
* ``at(seconds)`` — ``t0 + seconds`` (floats allowed: ``at(0.05)`` is +50 ms).
* ``make_instrument(symbol, venue=..., kind="perp", **overrides)`` — an
  ``Instrument`` with the standard grid unless overridden.
* ``make_engine(...)`` — a fresh engine; see ``build_engine`` for the knobs
  (venue config, extra venues, instruments, accounts, deposits, risk limits).
* ``engine`` — the standard engine with no market data yet.
* ``quoted_engine`` — the standard engine after ``STANDARD_BOOK`` was pushed
  at ``t0``: bid 60000.0 × 1, ask 60000.1 × 1, synthesized depth behind it
  (level k holds 1 × (1 + 0.5k), one tick apart).
* ``market`` — a ``MarketPusher``: ``market.quote/trade/mark/funding/snapshot(
  engine, now, ...)`` build the update stamped ``now`` and feed it through
  ``engine.on_market``, returning the events.
* ``order_spec(**fields)`` — an ``OrderSpec`` with short keyword names
  (``side``, ``type``, ``qty``, ``price``, ``trigger``, ``tif``, ``expire_at``,
  ``post_only``, ``reduce_only``, ``coid``, ...). Strings become enums and
  ``Decimal``; defaults are a demo GTC limit buy of 0.1 BTC-PERP.
* ``place(engine, now, clip=False, **fields)`` — submit ``order_spec(**fields)``
  and return ``(order, events)``; ``order`` is the order the engine holds for
  it (for an idempotent retry: the first order).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from app.domain.commands import Deposit, SubmitOrder
from app.domain.events import Event, OrderSubmitted
from app.domain.instruments import Instrument, InstrumentKind
from app.domain.market import BookSnapshot, FundingRate, MarkPrice, Quote, TradePrint
from app.domain.orders import (
    Order,
    OrderSpec,
    OrderTags,
    OrderType,
    Side,
    TimeInForce,
    TriggerSource,
)
from app.domain.risk import UNLIMITED, MarginWindow, RiskProfile
from app.engine.engine import AccountSetup, Engine, EngineConfig
from app.engine.risk import RiskLimits
from app.venues.paper.venue import PaperVenue, PaperVenueConfig

T0 = datetime(2024, 1, 1, tzinfo=UTC)
CLIENT = "demo"
VENUE = "paper-binance"
SYMBOL = "BTC-PERP"
LEVERAGE = Decimal(5)
DEPOSIT = Decimal(20000)
# bid, bid size, ask, ask size
STANDARD_BOOK = (Decimal("60000.0"), Decimal(1), Decimal("60000.1"), Decimal(1))

Num = Decimal | int | str


def D(value: Num | float | None) -> Decimal | None:
    """``Decimal`` from a str/int/Decimal (floats go through ``str`` to stay exact)."""
    if value is None or isinstance(value, Decimal):
        return value
    return Decimal(str(value))


def instrument(symbol: str = SYMBOL, venue: str = VENUE, kind: str = "perp",
               **overrides: Any) -> Instrument:
    """An instrument on the standard grid (tick 0.1, step 0.001, min qty 0.001,
    min notional 5); ``overrides`` replace any field (strings become Decimal)."""
    base, _, quote = symbol.partition("-")
    fields: dict[str, Any] = {
        "symbol": symbol, "venue": venue, "kind": InstrumentKind(kind), "base": base,
        "quote": "USDT" if quote == "PERP" else quote,
        "tick_size": Decimal("0.1"), "step_size": Decimal("0.001"),
        "min_qty": Decimal("0.001"), "min_notional": Decimal(5),
    }
    for key, value in overrides.items():
        fields[key] = D(value) if isinstance(value, str | int) else value
    return Instrument(**fields)


def build_engine(
    *,
    venue_config: PaperVenueConfig | None = None,
    venue_configs: dict[str, PaperVenueConfig] | None = None,
    instruments: Iterable[Instrument] | None = None,
    extra_instruments: Iterable[Instrument] = (),
    accounts: Iterable[AccountSetup] | None = None,
    extra_accounts: Iterable[AccountSetup] = (),
    deposits: dict[tuple[str, str], Num] | None = None,
    limits: dict[str, RiskLimits] | None = None,
    client_limits: dict[tuple[str, str], RiskLimits] | None = None,
    risk_profile: RiskProfile | None = None,
    margin_windows: dict[str, tuple[MarginWindow, ...]] | None = None,
) -> Engine:
    """An engine with paper venues for every venue its instruments name.

    * ``venue_config`` configures ``paper-binance``; ``venue_configs`` any venue.
    * ``instruments`` replaces the default ``[BTC-PERP]``; ``extra_instruments`` adds.
    * ``accounts`` replaces the default ``[demo @ paper-binance, 5x]``;
      ``extra_accounts`` adds.
    * ``deposits`` (default: 20,000 to every account) are made at ``T0``.
    * ``limits`` are per-symbol risk limits, ``client_limits`` per (client, symbol).
    * ``risk_profile`` is every client's risk profile (default: none, ``UNLIMITED``).
    """
    insts = [*(instruments if instruments is not None else [instrument()]), *extra_instruments]
    setups = [*(accounts if accounts is not None
                else [AccountSetup(CLIENT, VENUE, LEVERAGE)]), *extra_accounts]
    configs = dict(venue_configs or {})
    if venue_config is not None:
        configs[VENUE] = venue_config
    names = {i.venue for i in insts} | {a.venue for a in setups}
    venues = {name: PaperVenue(name, configs.get(name)) for name in sorted(names)}
    engine = Engine(
        EngineConfig(instruments=insts, accounts=setups, limits=dict(limits or {}),
                     client_limits=dict(client_limits or {}),
                     default_risk_profile=risk_profile or UNLIMITED,
                     margin_windows=dict(margin_windows or {})),
        venues,  # type: ignore[arg-type]
    )
    if deposits is None:
        deposits = {(a.client, a.venue): DEPOSIT for a in setups}
    for (client, venue), amount in deposits.items():
        engine.handle(Deposit(client, venue, D(amount)), T0)  # type: ignore[arg-type]
    return engine


@dataclass
class MarketPusher:
    """Builds market updates stamped ``now`` and feeds them to ``engine.on_market``."""

    def quote(self, engine: Engine, now: datetime, bid: Num = STANDARD_BOOK[0],
              ask: Num = STANDARD_BOOK[2], bid_size: Num = STANDARD_BOOK[1],
              ask_size: Num = STANDARD_BOOK[3], *, symbol: str = SYMBOL,
              venue: str = VENUE) -> list[Event]:
        q = Quote(venue, symbol, D(bid), D(bid_size), D(ask), D(ask_size), now)  # type: ignore[arg-type]
        return engine.on_market(q, now)

    def trade(self, engine: Engine, now: datetime, price: Num, qty: Num,
              aggressor: Side | str, *, symbol: str = SYMBOL, venue: str = VENUE
              ) -> list[Event]:
        t = TradePrint(venue, symbol, D(price), D(qty), Side(aggressor), now)  # type: ignore[arg-type]
        return engine.on_market(t, now)

    def mark(self, engine: Engine, now: datetime, price: Num, *, symbol: str = SYMBOL,
             venue: str = VENUE) -> list[Event]:
        return engine.on_market(MarkPrice(venue, symbol, D(price), now), now)  # type: ignore[arg-type]

    def funding(self, engine: Engine, now: datetime, rate: Num, funding_at: datetime, *,
                symbol: str = SYMBOL, venue: str = VENUE) -> list[Event]:
        update = FundingRate(venue, symbol, D(rate), funding_at, now)  # type: ignore[arg-type]
        return engine.on_market(update, now)

    def snapshot(self, engine: Engine, now: datetime,
                 bids: Iterable[tuple[Num, Num]], asks: Iterable[tuple[Num, Num]], *,
                 symbol: str = SYMBOL, venue: str = VENUE) -> list[Event]:
        """An L2 book; after one, the venue ignores L1 quotes for that symbol."""
        snap = BookSnapshot(venue, symbol,
                            tuple((D(p), D(s)) for p, s in bids),  # type: ignore[misc]
                            tuple((D(p), D(s)) for p, s in asks),  # type: ignore[misc]
                            now)
        return engine.on_market(snap, now)


def make_spec(
    side: Side | str = "buy",
    type: OrderType | str = "limit",
    qty: Num = "0.1",
    price: Num | None = None,
    *,
    trigger: Num | None = None,
    trigger_source: TriggerSource | str = "last",
    tif: TimeInForce | str = "gtc",
    expire_at: datetime | None = None,
    post_only: bool = False,
    reduce_only: bool = False,
    coid: str | None = None,
    client: str = CLIENT,
    venue: str = VENUE,
    symbol: str = SYMBOL,
    tags: OrderTags | None = None,
) -> OrderSpec:
    """An ``OrderSpec`` from short names; strings become enums and Decimals."""
    return OrderSpec(
        client=client, venue=venue, symbol=symbol, side=Side(side), type=OrderType(type),
        qty=D(qty),  # type: ignore[arg-type]
        price=D(price), trigger_price=D(trigger), trigger_source=TriggerSource(trigger_source),
        time_in_force=TimeInForce(tif), expire_at=expire_at, post_only=post_only,
        reduce_only=reduce_only, client_order_id=coid, tags=tags or OrderTags(),
    )


def place_order(engine: Engine, now: datetime, clip: bool = False, **fields: Any
                ) -> tuple[Order, list[Event]]:
    """Submit ``make_spec(**fields)``; return the order the engine holds for it and the events."""
    spec = make_spec(**fields)
    events = engine.handle(SubmitOrder(spec, clip_to_position=clip), now)
    submitted = [e for e in events if isinstance(e, OrderSubmitted)]
    if submitted:
        return engine.state.orders[submitted[0].order_id], events
    assert spec.client_order_id is not None, "no order was recorded"
    existing = engine.state.order_by_client_id(spec.client, spec.venue, spec.client_order_id)
    assert existing is not None
    return existing, events


@pytest.fixture
def t0() -> datetime:
    return T0


@pytest.fixture
def at() -> Callable[[float], datetime]:
    def _at(seconds: float = 0) -> datetime:
        return T0 + timedelta(seconds=seconds)
    return _at


@pytest.fixture
def make_instrument() -> Callable[..., Instrument]:
    return instrument


@pytest.fixture
def make_engine() -> Callable[..., Engine]:
    return build_engine


@pytest.fixture
def engine() -> Engine:
    """The standard engine (BTC-PERP, demo 5x with 20,000), no market data yet."""
    return build_engine()


@pytest.fixture
def market() -> MarketPusher:
    return MarketPusher()


@pytest.fixture
def quoted_engine(engine: Engine, market: MarketPusher) -> Engine:
    """The standard engine with the standard book (60000.0 × 1 / 60000.1 × 1) at ``t0``."""
    market.quote(engine, T0)
    return engine


@pytest.fixture
def order_spec() -> Callable[..., OrderSpec]:
    return make_spec


@pytest.fixture
def place() -> Callable[..., tuple[Order, list[Event]]]:
    return place_order
