"""Accounts (one per client + venue) and the balance arithmetic around them.

The wallet is a running balance changed by each cash movement; the totals
it is made of (deposits, withdrawals, realized P&L, fees, funding) are kept
beside it so reconciliation can check one against the other:

    wallet = deposits - withdrawals + realized - fees + funding
    equity = wallet + Σ unrealized
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from app.domain.instruments import Instrument
from app.domain.positions import Position

ZERO = Decimal(0)
ONE = Decimal(1)

AccountKey = tuple[str, str]  # (client, venue)


@dataclass(slots=True)
class Account:
    client: str
    venue: str
    leverage: Decimal = Decimal(1)
    asset: str = "USDT"
    deposits: Decimal = ZERO
    withdrawals: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    funding: Decimal = ZERO  # signed: positive = received
    wallet: Decimal = ZERO
    # Leverage chosen per symbol (``leverage`` is the default for the others).
    symbol_leverage: dict[str, Decimal] = field(default_factory=dict)

    @property
    def key(self) -> AccountKey:
        return (self.client, self.venue)

    def leverage_for(self, symbol: str, instrument: Instrument | None = None) -> Decimal:
        """The leverage in force for ``symbol``: the account's choice, never above what
        the instrument allows at all."""
        chosen = self.symbol_leverage.get(symbol, self.leverage)
        if instrument is not None and chosen > instrument.max_leverage:
            return instrument.max_leverage
        return chosen

    def deposit(self, amount: Decimal) -> None:
        self.deposits += amount
        self.wallet += amount

    def withdraw(self, amount: Decimal) -> None:
        self.withdrawals += amount
        self.wallet -= amount

    def realize(self, pnl: Decimal) -> None:
        self.realized_pnl += pnl
        self.wallet += pnl

    def charge_fee(self, fee: Decimal) -> None:
        self.fees += fee
        self.wallet -= fee

    def settle_funding(self, amount: Decimal) -> None:
        self.funding += amount
        self.wallet += amount

    @property
    def expected_wallet(self) -> Decimal:
        return self.deposits - self.withdrawals + self.realized_pnl - self.fees + self.funding


@dataclass(frozen=True, slots=True)
class AccountSummary:
    """A point-in-time valuation of one account at the current marks."""

    client: str
    venue: str
    wallet: Decimal
    unrealized_pnl: Decimal
    equity: Decimal
    margin_used: Decimal  # Σ position notional / its symbol's leverage (initial margin)
    order_margin: Decimal  # reserved by open orders that would add exposure
    available: Decimal  # equity - margin_used - order_margin
    margin_ratio: Decimal  # margin_used / equity (0 when equity <= 0 and nothing is used)
    realized_pnl: Decimal
    fees: Decimal
    funding: Decimal
    deposits: Decimal
    withdrawals: Decimal
    # Σ maintenance margin by the instruments' tiers; the venue liquidates the account
    # (cross margin) once equity falls to it.
    maintenance_margin: Decimal = ZERO
    # maintenance_margin / equity: 1 (100 %) is liquidation (Binance's "margin ratio").
    maintenance_ratio: Decimal = ZERO


def summarize(
    account: Account,
    positions: Iterable[Position],
    marks: Mapping[str, Decimal],
    order_margin: Decimal = ZERO,
    instruments: Mapping[str, Instrument] | None = None,
    initial_multiplier: Decimal = ONE,
    maintenance_multiplier: Decimal = ONE,
) -> AccountSummary:
    """Value ``account`` given its positions and the mark per symbol (and, to apply each
    symbol's leverage cap and maintenance tiers, the instruments by symbol).

    A position whose symbol has no mark yet is valued at its entry price
    (zero unrealized) rather than at zero, which would invent a loss. The
    multipliers are a margin window's (``MarginWindow``): they scale the initial
    and maintenance requirements (``order_margin`` comes scaled already).
    """
    unrealized = ZERO
    margin_used = ZERO
    maintenance = ZERO
    for p in positions:
        if not p.qty:
            continue
        mark = marks.get(p.symbol, p.avg_entry)
        unrealized += p.unrealized_pnl(mark)
        notional = p.notional(mark)
        inst = instruments.get(p.symbol) if instruments is not None else None
        margin_used += notional / account.leverage_for(p.symbol, inst)
        if inst is not None:
            maintenance += inst.maintenance_margin(notional)
    if initial_multiplier != ONE:
        margin_used *= initial_multiplier
    if maintenance_multiplier != ONE:
        maintenance *= maintenance_multiplier
    equity = account.wallet + unrealized
    available = equity - margin_used - order_margin
    if equity > 0:
        ratio = margin_used / equity
    elif margin_used:
        ratio = Decimal("Infinity")  # underwater with positions open
    else:
        ratio = ZERO
    if equity > 0:
        maintenance_ratio = maintenance / equity
    else:
        maintenance_ratio = Decimal("Infinity") if maintenance else ZERO
    return AccountSummary(
        client=account.client,
        venue=account.venue,
        wallet=account.wallet,
        unrealized_pnl=unrealized,
        equity=equity,
        margin_used=margin_used,
        order_margin=order_margin,
        available=available,
        margin_ratio=ratio,
        realized_pnl=account.realized_pnl,
        fees=account.fees,
        funding=account.funding,
        deposits=account.deposits,
        withdrawals=account.withdrawals,
        maintenance_margin=maintenance,
        maintenance_ratio=maintenance_ratio,
    )
