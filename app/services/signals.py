"""Signals as use cases: submit a strategy's signal for a client (trader), read what
came of it, and read or replace a client's signal order parameters (operator;
audited; in force from the next signal and kept across restarts).

Each answer is taken at the commit (copies), so it never shows what is not durable.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from app.auth.principal import Principal, Role
from app.config import SignalParamsConfig
from app.domain.events import Event
from app.domain.orders import Order
from app.domain.signals import (
    Bracket,
    SetSignalParams,
    SignalParams,
    SignalReceived,
    SignalRecord,
    SubmitSignal,
)
from app.runtime.system import TradingSystem
from app.services.commands import run
from app.services.errors import ServiceError
from app.services.scope import ensure_role, known_account
from app.store.tables import AuditRow


@dataclass(frozen=True, slots=True)
class SignalView:
    """A signal, the orders it placed and its bracket, as they were when read."""

    record: SignalRecord
    orders: list[Order]
    bracket: Bracket | None
    bracket_legs: list[Order]


@dataclass(frozen=True, slots=True)
class Submitted:
    view: SignalView
    created: bool  # False: an idempotent retry answered with the first signal


@dataclass(frozen=True, slots=True)
class ParamsView:
    client: str
    params: SignalParams
    source: str  # "default" | "configured" | "set"


def _view(system: TradingSystem, record: SignalRecord) -> SignalView:
    state = system.engine.state
    ids = record.resolved.order_ids if record.resolved is not None else ()
    orders = [copy.copy(state.orders[i]) for i in ids if i in state.orders]
    bracket = state.brackets.get(record.bracket_id) if record.bracket_id is not None else None
    legs = [copy.copy(state.orders[i]) for i in (bracket.legs if bracket else ())
            if i in state.orders]
    return SignalView(copy.copy(record), orders, copy.deepcopy(bracket), legs)


async def submit(system: TradingSystem, principal: Principal, *, client: str, venue: str,
                 symbol: str, signal: int, at: datetime, strategy: str,
                 strength: Decimal | None = None, signal_id: str | None = None) -> Submitted:
    """Submit a signal for ``client`` (a trader of that client); return once what it did
    is durable. Idempotent on ``signal_id``: the same signal again answers the first;
    the id with another signal is 409 ``DUPLICATE_SIGNAL_ID``."""
    ensure_role(principal, Role.TRADER)
    known_account(system, principal, client, venue)

    def respond(events: list[Event]) -> Submitted:
        state = system.engine.state
        received = next((e for e in events if type(e) is SignalReceived), None)
        if received is not None:
            return Submitted(_view(system, state.signals[received.signal_id]), True)
        record = state.signals.get(signal_id or "")
        if record is None:
            raise RuntimeError("a signal with no events and no earlier signal")
        return Submitted(_view(system, record), False)

    command = SubmitSignal(client, venue, symbol, signal, strategy, at, strength, signal_id,
                           actor=principal.actor)
    committed = await run(system, command, respond=respond)
    submitted: Submitted = committed.response
    return submitted


def signal_view(system: TradingSystem, principal: Principal, signal_id: str) -> SignalView:
    """One signal the caller may see: what it was, what it placed or why nothing."""
    record = system.engine.state.signals.get(signal_id)
    if record is None or not principal.can_access(record.client):
        raise ServiceError(404, "UNKNOWN_SIGNAL",
                           f"there is no signal {signal_id!r} (or it is older than the "
                           "signals kept in memory)")
    return _view(system, record)


def params_view(system: TradingSystem, principal: Principal, client: str) -> ParamsView:
    known_account(system, principal, client, None)
    desk = system.engine.signals
    return ParamsView(client, desk.params(client), desk.source(client))


async def set_params(system: TradingSystem, principal: Principal, client: str,
                     params: SignalParams, reason: str) -> ParamsView:
    """Replace a client's signal order parameters (operator). In force from the next
    signal; audited with what they were and what they are."""
    ensure_role(principal, Role.OPERATOR)
    known_account(system, principal, client, None)
    before = system.engine.signals.params(client)

    def audit(events: list[Event]) -> list[AuditRow]:
        return [AuditRow(at=datetime.now(UTC), actor=principal.actor, action="signal-params",
                         scope=f"client {client}", reason=reason, previous=None,
                         details={"before": params_json(before),
                                  "after": params_json(params)})]

    await run(system, SetSignalParams(client, params, reason, principal.actor), audit=audit)
    return params_view(system, principal, client)


def params_json(params: SignalParams) -> dict[str, Any]:
    return SignalParamsConfig.of(params).model_dump(mode="json")


__all__ = ["ParamsView", "SignalView", "Submitted", "params_json",
           "params_view", "set_params", "signal_view", "submit"]
