"""The contract between the engine and a venue.

A venue receives orders and cancels, sees market data, and answers with
reports. The engine turns reports into domain events; the venue never
touches engine state.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from app.domain.instruments import Instrument, VenueCapabilities
from app.domain.market import MarketUpdate
from app.domain.orders import Liquidity, Order, OrderSpec, Side
from app.domain.rejections import Rejection


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
    qty: Decimal | None = None  # a close-position order: the position it now closes


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


@dataclass(slots=True)
class Amended:
    """An amend took effect: the order's total qty and price are now these."""

    order_id: int
    qty: Decimal
    price: Decimal | None
    kept_priority: bool
    at: datetime


@dataclass(slots=True)
class AmendRefused:
    order_id: int
    reason: str
    at: datetime


Report = (Accepted | Rejected | Triggered | Filled | Canceled | CancelRefused | Expired
          | Amended | AmendRefused)


class TopOfBook(Protocol):
    """The best bid and offer of one symbol's book (None: that side is empty)."""

    @property
    def bid(self) -> Decimal | None: ...

    @property
    def ask(self) -> Decimal | None: ...

    @property
    def updated_at(self) -> datetime | None:
        """The exchange time of the book's last update (None: never fed)."""
        ...


class MarketView(Protocol):
    """What a venue shows of its market, apart from execution: the last trade, mark
    and top of book per symbol, and the price that margin checks use."""

    @property
    def last(self) -> Mapping[str, Decimal]: ...

    @property
    def marks(self) -> Mapping[str, Decimal]: ...

    def book(self, symbol: str) -> TopOfBook: ...

    def reference_price(self, symbol: str) -> Decimal | None: ...

    def liquidity(self, symbol: str, taker_side: Side) -> Iterator[tuple[Decimal, Decimal]]:
        """The (price, size) levels a taker on ``taker_side`` would meet now, best
        first, net of what our own orders already took (impact-aware sizing walks
        them). Empty when the book is not fit to walk (invalid or never fed)."""
        ...


class Execution(Protocol):
    """What a venue does with orders: take them, cancel them, and report what
    happened (synchronously, as the paper venue does; an asynchronous venue also
    reports later, through ``CommandBus.reports``)."""

    name: str
    capabilities: VenueCapabilities

    def add_instrument(self, instrument: Instrument) -> None: ...

    # ``enforce_reduce_only``: send the order reduce-only (a live venue's reduceOnly
    # flag) though its spec does not ask it; the engine does when the account's
    # trading state is restricted. Orders already working are policed by the
    # engine itself (Engine._police_reduce_only), since no venue can add the flag
    # to a live order.
    def submit(self, order: Order, now: datetime, enforce_reduce_only: bool = False
               ) -> list[Report]: ...

    def cancel(self, order_id: int, now: datetime, reason: str = "canceled"
               ) -> list[Report]: ...

    def amend(self, order_id: int, qty: Decimal | None, price: Decimal | None,
              now: datetime) -> list[Report]: ...

    def precheck(self, spec: OrderSpec, now: datetime) -> Rejection | None:
        """A refusal the venue answers at once, before any order exists (its
        profile's ``REFUSE`` outcomes), or None."""
        ...

    def on_market(self, update: MarketUpdate, now: datetime) -> list[Report]: ...

    def advance(self, now: datetime) -> list[Report]: ...

    def restore(self, open_orders: list[Order], positions: dict[tuple[str, str], Decimal],
                now: datetime) -> list[Report]: ...


class Venue(Execution, MarketView, Protocol):
    """A venue as the engine uses it: execution and its view of the market."""
