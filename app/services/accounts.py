"""Accounts: deposit, withdraw, set leverage. Each audited with what it did."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from app.auth.principal import Principal
from app.domain.commands import Deposit, SetLeverage, Withdraw
from app.domain.events import Event
from app.domain.trading_state import Scope
from app.runtime.system import TradingSystem
from app.services.commands import run
from app.services.queries import Reader
from app.services.scope import known_account
from app.store.tables import AuditRow


@dataclass(frozen=True, slots=True)
class LeverageSet:
    client: str
    venue: str
    symbol: str
    leverage: Decimal
    previous: Decimal
    changed: bool
    max_notional: Decimal  # the largest position the new leverage allows


async def set_leverage(system: TradingSystem, principal: Principal, client: str, venue: str,
                       symbol: str, leverage: Decimal) -> LeverageSet:
    """An account's leverage for one symbol, bounded by the instrument's brackets (and
    the tier of the open position): the engine refuses what they do not allow."""
    known_account(system, principal, client, venue)
    previous, inst = Reader(system, principal).leverage(client, venue, symbol)

    def audit(events: list[Event]) -> list[AuditRow]:
        return [AuditRow(at=datetime.now(UTC), actor=principal.actor, action="leverage",
                         scope=Scope(client, venue).describe(),
                         reason=f"{symbol} {previous}x -> {leverage}x", previous=str(previous),
                         details={"symbol": symbol, "leverage": str(leverage),
                                  "changed": bool(events)})]

    committed = await run(system, SetLeverage(client, venue, symbol, leverage,
                                              principal.actor), audit=audit)
    return LeverageSet(client, venue, symbol, leverage, previous, bool(committed.events),
                       inst.max_notional_at(leverage))


async def deposit(system: TradingSystem, principal: Principal, client: str, venue: str,
                  amount: Decimal, reason: str) -> list[Event]:
    """Credit an account's wallet (paper money, or a transfer recorded by hand)."""
    known_account(system, principal, client, venue)
    committed = await run(system, Deposit(client, venue, amount, principal.actor),
                          audit=_audit(principal, "deposit", client, venue, amount, reason))
    return committed.events


async def withdraw(system: TradingSystem, principal: Principal, client: str, venue: str,
                   amount: Decimal, reason: str) -> list[Event]:
    """Debit an account's wallet; the engine refuses more than is available."""
    known_account(system, principal, client, venue)
    committed = await run(system, Withdraw(client, venue, amount, principal.actor),
                          audit=_audit(principal, "withdraw", client, venue, amount, reason))
    return committed.events


def _audit(principal: Principal, action: str, client: str, venue: str, amount: Decimal,
           reason: str) -> Callable[[list[Event]], list[AuditRow]]:
    def rows(events: list[Event]) -> list[AuditRow]:
        return [AuditRow(at=datetime.now(UTC), actor=principal.actor, action=action,
                         scope=Scope(client, venue).describe(), reason=reason, previous=None,
                         details={"amount": format(amount, "f"), "done": bool(events)})]
    return rows
