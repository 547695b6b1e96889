"""Netting positions (one per client + venue + symbol) and closed-trade records.

Average-cost accounting: increases move the average entry price, reductions
realize ``(exit - entry) × qty`` in the position's direction, a fill larger
than the position closes it and opens the opposite side with the remainder
(its fee split pro rata). Every return to flat, or flip, produces a
``ClosedTrade``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from app.domain.orders import Side

ZERO = Decimal(0)
HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    """One round trip: from flat (or a flip) back to flat (or the next flip)."""

    trade_id: str
    client: str
    venue: str
    symbol: str
    direction: str  # "long" | "short"
    qty: Decimal  # total quantity opened over the trade
    entry_price: Decimal  # average of all entry fills
    exit_price: Decimal  # average of all exit fills
    realized_pnl: Decimal  # gross: price moves only
    fees: Decimal
    funding: Decimal  # signed: positive = received
    net_pnl: Decimal  # realized - fees + funding
    pnl_pct: Decimal  # net_pnl / entry notional × 100
    opened_at: datetime
    closed_at: datetime
    exit_reason: str
    # The quantity-weighted arrival price of the entry and of the exit fills (each
    # fill's order's ``Order.arrival_price``): what slippage is measured against.
    # None when a fill's arrival was unknown (no book; logs older than the field).
    entry_arrival: Decimal | None = None
    exit_arrival: Decimal | None = None

    @property
    def duration_seconds(self) -> Decimal:
        return Decimal(str((self.closed_at - self.opened_at).total_seconds()))

    @property
    def is_win(self) -> bool:
        return self.net_pnl > 0


@dataclass(frozen=True, slots=True)
class FillOutcome:
    """What a fill did to a position: realized P&L and any trade it closed."""

    realized_pnl: Decimal
    closed_trade: ClosedTrade | None


@dataclass(slots=True)
class Position:
    client: str
    venue: str
    symbol: str
    qty: Decimal = ZERO  # signed: long > 0, short < 0
    avg_entry: Decimal = ZERO
    # Accumulated over the current trade (reset when it closes):
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    funding: Decimal = ZERO
    opened_at: datetime | None = None
    entry_qty: Decimal = ZERO
    entry_notional: Decimal = ZERO
    exit_qty: Decimal = ZERO
    exit_notional: Decimal = ZERO
    trades_closed: int = 0
    trade_sign: int = 0  # +1 long, -1 short: the direction the current trade opened in
    # Σ qty × arrival price of the entry and exit fills; None once a fill's is unknown.
    entry_arrival_notional: Decimal | None = ZERO
    exit_arrival_notional: Decimal | None = ZERO

    @property
    def is_flat(self) -> bool:
        return not self.qty

    @property
    def direction(self) -> str:
        return "long" if self.qty > 0 else "short" if self.qty < 0 else "flat"

    def notional(self, mark: Decimal) -> Decimal:
        return abs(self.qty) * mark

    def unrealized_pnl(self, mark: Decimal) -> Decimal:
        if not self.qty:
            return ZERO
        return self.qty * (mark - self.avg_entry)

    def would_increase(self, side: Side, qty: Decimal) -> bool:
        """True if a fill of ``qty`` on ``side`` would grow |position| or flip it."""
        signed = qty if side is Side.BUY else -qty
        if not self.qty or (self.qty > 0) == (signed > 0):
            return True
        return qty > abs(self.qty)

    def apply_fill(
        self, side: Side, qty: Decimal, price: Decimal, fee: Decimal, at: datetime,
        exit_reason: str, arrival: Decimal | None = None,
    ) -> FillOutcome:
        signed = qty if side is Side.BUY else -qty
        if not self.qty or (self.qty > 0) == (signed > 0):
            self._increase(signed, price, fee, at, arrival)
            return FillOutcome(ZERO, None)

        close_qty = min(qty, abs(self.qty))
        open_qty = qty - close_qty
        close_fee = fee if not open_qty else fee * close_qty / qty
        direction = 1 if self.qty > 0 else -1
        realized = (price - self.avg_entry) * close_qty * direction
        self.realized_pnl += realized
        self.fees += close_fee
        self.exit_qty += close_qty
        self.exit_notional += close_qty * price
        if self.exit_arrival_notional is not None:
            self.exit_arrival_notional = (None if arrival is None
                                          else self.exit_arrival_notional
                                          + close_qty * arrival)
        self.qty += close_qty * -direction
        closed = None
        if not self.qty:
            closed = self._close(at, exit_reason)
        if open_qty:
            self._increase(open_qty * -direction, price, fee - close_fee, at, arrival)
        return FillOutcome(realized, closed)

    def apply_funding(self, amount: Decimal) -> None:
        self.funding += amount

    def _increase(self, signed: Decimal, price: Decimal, fee: Decimal, at: datetime,
                  arrival: Decimal | None = None) -> None:
        qty = abs(signed)
        if not self.qty:
            self.opened_at = at
            self.avg_entry = price
            self.trade_sign = 1 if signed > 0 else -1
        else:
            held = abs(self.qty)
            self.avg_entry = (held * self.avg_entry + qty * price) / (held + qty)
        self.qty += signed
        self.fees += fee
        self.entry_qty += qty
        self.entry_notional += qty * price
        if self.entry_arrival_notional is not None:
            self.entry_arrival_notional = (None if arrival is None
                                           else self.entry_arrival_notional + qty * arrival)

    def _close(self, at: datetime, exit_reason: str) -> ClosedTrade:
        self.trades_closed += 1
        entry_price = self.entry_notional / self.entry_qty
        net = self.realized_pnl - self.fees + self.funding
        trade = ClosedTrade(
            trade_id=f"{self.client}:{self.venue}:{self.symbol}:{self.trades_closed}",
            client=self.client,
            venue=self.venue,
            symbol=self.symbol,
            direction="long" if self.trade_sign > 0 else "short",
            qty=self.entry_qty,
            entry_price=entry_price,
            exit_price=self.exit_notional / self.exit_qty,
            realized_pnl=self.realized_pnl,
            fees=self.fees,
            funding=self.funding,
            net_pnl=net,
            pnl_pct=net / self.entry_notional * HUNDRED,
            opened_at=self.opened_at or at,
            closed_at=at,
            exit_reason=exit_reason,
            entry_arrival=(None if self.entry_arrival_notional is None
                           else self.entry_arrival_notional / self.entry_qty),
            exit_arrival=(None if self.exit_arrival_notional is None
                          else self.exit_arrival_notional / self.exit_qty),
        )
        self.entry_arrival_notional = self.exit_arrival_notional = ZERO
        self.avg_entry = ZERO
        self.realized_pnl = self.fees = self.funding = ZERO
        self.entry_qty = self.entry_notional = self.exit_qty = self.exit_notional = ZERO
        self.opened_at = None
        self.trade_sign = 0
        return trade
