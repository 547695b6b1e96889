"""The contract between the engine and a venue.

A venue receives orders and cancels, sees market data, and answers with
reports. The engine turns reports into domain events; the venue never
touches engine state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from app.domain.instruments import Instrument, VenueCapabilities
from app.domain.market import MarketUpdate
from app.domain.orders import Liquidity, Order


@dataclass(slots=True)
class Accepted:
    order_id: int
    at: datetime


@dataclass(slots=True)
class Rejected:
    order_id: int
    code: str
    message: str
    at: datetime


@dataclass(slots=True)
class Triggered:
    order_id: int
    price: Decimal
    at: datetime


@dataclass(slots=True)
class Filled:
    order_id: int
    qty: Decimal
    price: Decimal
    fee: Decimal
    liquidity: Liquidity
    at: datetime


@dataclass(slots=True)
class Canceled:
    order_id: int
    reason: str
    at: datetime


@dataclass(slots=True)
class CancelRefused:
    order_id: int
    reason: str
    at: datetime


@dataclass(slots=True)
class Expired:
    order_id: int
    at: datetime


Report = Accepted | Rejected | Triggered | Filled | Canceled | CancelRefused | Expired


class Venue(Protocol):
    name: str
    capabilities: VenueCapabilities

    def add_instrument(self, instrument: Instrument) -> None: ...

    def submit(self, order: Order, now: datetime, enforce_reduce_only: bool = False
               ) -> list[Report]: ...

    def cancel(self, order_id: int, now: datetime, reason: str = "canceled"
               ) -> list[Report]: ...

    def enforce_reduce_only(self, order_id: int) -> None: ...

    def on_market(self, update: MarketUpdate, now: datetime) -> list[Report]: ...

    def advance(self, now: datetime) -> list[Report]: ...

    def restore(self, open_orders: list[Order], positions: dict[tuple[str, str], Decimal],
                now: datetime) -> list[Report]: ...

    def reference_price(self, symbol: str) -> Decimal | None: ...
