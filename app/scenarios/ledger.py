"""An independent ledger kept from the events alone: the venue's fill reports (as
``OrderFilled``), funding and cash movements, with its own average-cost
arithmetic. Seed 003's reconciliation compares it with the engine's accounts:

    equity = deposits − withdrawals + realized − fees + funding + Σ unrealized

A drift above $0.01 is a bug (DESIGN.md, invariants).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from app.domain.events import (
    Event,
    FundingApplied,
    FundsDeposited,
    FundsWithdrawn,
    OrderFilled,
    PositionLiquidated,
)
from app.domain.orders import Side

ZERO = Decimal(0)


@dataclass(slots=True)
class Holding:
    qty: Decimal = ZERO  # signed
    avg: Decimal = ZERO


@dataclass(slots=True)
class Book:
    """One account (client, venue) as the ledger sees it."""

    deposits: Decimal = ZERO
    withdrawals: Decimal = ZERO
    realized: Decimal = ZERO
    fees: Decimal = ZERO
    funding: Decimal = ZERO
    holdings: dict[str, Holding] = field(default_factory=dict)

    @property
    def wallet(self) -> Decimal:
        return self.deposits - self.withdrawals + self.realized - self.fees + self.funding

    def unrealized(self, marks: Mapping[str, Decimal | None]) -> Decimal:
        total = ZERO
        for symbol, h in self.holdings.items():
            mark = marks.get(symbol)
            if h.qty and mark is not None:
                total += (mark - h.avg) * h.qty
        return total

    def equity(self, marks: Mapping[str, Decimal | None]) -> Decimal:
        return self.wallet + self.unrealized(marks)


class Ledger:
    def __init__(self) -> None:
        self.books: dict[tuple[str, str], Book] = {}

    def book(self, client: str, venue: str) -> Book:
        key = (client, venue)
        if key not in self.books:
            self.books[key] = Book()
        return self.books[key]

    def apply(self, event: Event) -> None:
        kind = type(event)
        if kind is OrderFilled:
            assert isinstance(event, OrderFilled)
            self._fill(event)
        elif kind is FundingApplied:
            assert isinstance(event, FundingApplied)
            self.book(event.client, event.venue).funding += event.amount
        elif kind is FundsDeposited:
            assert isinstance(event, FundsDeposited)
            self.book(event.client, event.venue).deposits += event.amount
        elif kind is FundsWithdrawn:
            assert isinstance(event, FundsWithdrawn)
            self.book(event.client, event.venue).withdrawals += event.amount
        elif kind is PositionLiquidated:
            assert isinstance(event, PositionLiquidated)
            self.book(event.client, event.venue).fees += event.fee

    def _fill(self, e: OrderFilled) -> None:
        book = self.book(e.client, e.venue)
        book.fees += e.fee
        h = book.holdings.setdefault(e.symbol, Holding())
        signed = e.qty if e.side is Side.BUY else -e.qty
        if not h.qty or (h.qty > 0) == (signed > 0):
            total = abs(h.qty) + e.qty
            h.avg = (abs(h.qty) * h.avg + e.qty * e.price) / total
            h.qty += signed
            return
        closing = min(e.qty, abs(h.qty))
        direction = 1 if h.qty > 0 else -1
        book.realized += (e.price - h.avg) * closing * direction
        h.qty -= closing * direction
        rest = e.qty - closing
        if rest:
            h.qty, h.avg = rest * (1 if signed > 0 else -1), e.price
        elif not h.qty:
            h.avg = ZERO
