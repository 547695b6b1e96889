"""The kill switches: set a scope's trading state, close-all. Operator actions,
each audited in the same transaction as its events (who, when, scope, reason,
previous state), and idempotent: setting a state already in force changes
nothing and says so."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from app.auth.principal import Principal
from app.domain.commands import CloseAll, SetTradingState
from app.domain.events import CloseAllCompleted, CloseResult, Event, OrderCanceled
from app.domain.trading_state import Scope, TradingState
from app.runtime.system import TradingSystem
from app.services.commands import run
from app.services.errors import ServiceError
from app.services.queries import Reader
from app.services.scope import check_client
from app.store.codec import encode
from app.store.tables import AuditRow

# The audit log's name for each state an operator sets.
ACTION_OF_STATE = {TradingState.REDUCE_ONLY: "reduce-only",
                   TradingState.HALTED: "disable-trading",
                   TradingState.ACTIVE: "enable-trading"}


@dataclass(frozen=True, slots=True)
class StateChange:
    scope: Scope
    state: TradingState  # the scope's own setting after the change
    previous: TradingState
    changed: bool
    results: tuple[CloseResult, ...] = ()  # close-all: one per position


def control_scope(system: TradingSystem, principal: Principal, client: str | None,
                  venue: str | None) -> Scope:
    """The scope an operator names, checked: known client and venue, and a
    client-scoped operator must name one of its clients (never global or a venue)."""
    if client is not None and client not in system.clients:
        raise ServiceError(404, "UNKNOWN_CLIENT", f"there is no client {client!r}")
    if venue is not None and venue not in system.venue_names:
        raise ServiceError(404, "UNKNOWN_VENUE", f"there is no venue {venue!r}")
    if client is None:
        if principal.clients is not None:
            raise ServiceError(403, "CLIENT_FORBIDDEN",
                               "a client-scoped operator must name one of its clients")
    else:
        check_client(principal, client)
    return Scope(client, venue)


async def set_trading_state(system: TradingSystem, principal: Principal,
                            client: str | None, venue: str | None, state: TradingState,
                            reason: str) -> StateChange:
    """Set ``state`` on the scope (client and/or venue; neither: global). Restricting
    cancels the resting orders the new state forbids; cancels stay allowed."""
    scope = control_scope(system, principal, client, venue)
    reader = Reader(system, principal)
    previous = reader.state_of(scope)
    action = ACTION_OF_STATE[state]

    def audit(events: list[Event]) -> list[AuditRow]:
        return [AuditRow(at=datetime.now(UTC), actor=principal.actor, action=action,
                         scope=scope.describe(), reason=reason, previous=previous.value,
                         details={"state": state.value, "changed": bool(events),
                                  "canceled_orders": sum(1 for e in events
                                                         if type(e) is OrderCanceled)})]

    committed = await run(system, SetTradingState(scope, state, reason, principal.actor),
                          audit=audit, respond=lambda events: reader.state_of(scope))
    return StateChange(scope, committed.response, previous, bool(committed.events))


async def close_all(system: TradingSystem, principal: Principal, client: str | None,
                    venue: str | None, reason: str) -> StateChange:
    """Cancel every open order of the scope, flatten every position with reduce-only
    market orders (a result per position), and leave the scope REDUCE_ONLY."""
    scope = control_scope(system, principal, client, venue)
    reader = Reader(system, principal)
    previous = reader.state_of(scope)

    def audit(events: list[Event]) -> list[AuditRow]:
        done = next((e for e in events if type(e) is CloseAllCompleted), None)
        summary = [encode(r) for r in done.results] if done else []
        return [AuditRow(at=datetime.now(UTC), actor=principal.actor, action="close-all",
                         scope=scope.describe(), reason=reason, previous=previous.value,
                         details={"results": summary})]

    committed = await run(system, CloseAll(scope, reason, principal.actor), audit=audit,
                          respond=lambda events: reader.state_of(scope))
    done = next((e for e in committed.events if type(e) is CloseAllCompleted), None)
    return StateChange(scope, committed.response, previous, bool(committed.events),
                       tuple(done.results) if done is not None else ())
