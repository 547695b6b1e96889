"""Strategies on the host: create from a registered kind, start, stop, reconfigure.

Operator actions, each audited in the same transaction as its lifecycle event.
Parameters are validated by the kind (bounded, nothing unknown) before anything
is recorded; the engine records the lifecycle, and the host runs what runs.
Idempotent: creating the same id with the same definition, starting what runs,
stopping what is stopped and setting the parameters in force change nothing.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from app.auth.principal import Principal
from app.domain.commands import Command
from app.domain.events import Event
from app.domain.strategies import (
    ConfigureStrategy,
    CreateStrategy,
    Params,
    StartStrategy,
    StopStrategy,
    StrategyRecord,
)
from app.domain.trading_state import Scope
from app.runtime.system import TradingSystem
from app.services.commands import run
from app.services.errors import ServiceError
from app.services.scope import known_account
from app.store.tables import AuditRow
from app.strategies.base import InvalidParams, StrategyKind, params_dict
from app.strategies.registry import kind as registered_kind
from app.strategies.registry import kinds

STRATEGY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

__all__ = ["configure", "create", "kinds", "overview", "params_dict", "start", "stop",
           "strategies", "strategy"]


def strategies(system: TradingSystem, principal: Principal) -> list[StrategyRecord]:
    """The strategies of the clients ``principal`` may see, by id."""
    records = system.engine.state.strategies
    return [records[sid] for sid in sorted(records)
            if principal.can_access(records[sid].client)]


@dataclass(frozen=True, slots=True)
class StrategyOverview:
    """One strategy as the dashboard shows it: its state, the position on its symbol
    (its account's: one trend strategy per client, venue and symbol), its P&L (what its
    own fills realized, net of their fees, since it was created, plus the position's
    unrealized at the mark) and its last signal (from the running instance; None when
    stopped or when its kind reports none)."""

    record: StrategyRecord
    symbol: str | None
    position_qty: Decimal
    avg_entry: Decimal | None
    realized_pnl: Decimal
    unrealized_pnl: Decimal | None
    last_signal: int | None
    last_signal_reason: str
    last_signal_at: datetime | None


def overview(system: TradingSystem, principal: Principal) -> list[StrategyOverview]:
    """Every strategy ``principal`` may see, with its position, P&L and last signal."""
    engine = system.engine
    out: list[StrategyOverview] = []
    for record in strategies(system, principal):
        raw = params_dict(record.params).get("symbol")
        symbol = raw if isinstance(raw, str) else None
        position = engine.state.positions.get((record.client, record.venue, symbol or ""))
        qty = position.qty if position is not None else Decimal(0)
        mark = engine.venues[record.venue].reference_price(symbol) \
            if symbol and record.venue in engine.venues else None
        unrealized = position.unrealized_pnl(mark) if position is not None and qty \
            and mark is not None else (Decimal(0) if not qty else None)
        status = system.strategy_host.status(record.strategy_id) or {}
        last = status.get("last_signal")
        own = engine.state.strategy_pnl.get(record.strategy_id)
        out.append(StrategyOverview(
            record, symbol, qty, position.avg_entry if position is not None and qty else None,
            own.net if own is not None else Decimal(0), unrealized,
            getattr(last, "signal", None), str(getattr(last, "reason", "")),
            getattr(last, "at", None)))
    return out


def strategy(system: TradingSystem, principal: Principal, strategy_id: str) -> StrategyRecord:
    record = system.engine.state.strategies.get(strategy_id)
    if record is None or not principal.can_access(record.client):
        raise ServiceError(404, "UNKNOWN_STRATEGY", f"there is no strategy {strategy_id!r}")
    return record


def _kind(name: str) -> StrategyKind:
    found = registered_kind(name)
    if found is None:
        raise ServiceError(404, "UNKNOWN_STRATEGY_KIND",
                           f"there is no strategy kind {name!r} (known: "
                           f"{', '.join(kinds())})")
    return found


def _validated(kind: StrategyKind, params: Mapping[str, Any]) -> Params:
    """The parameters as the kind validates them, and as its code accepts them (a
    combination the code refuses, like a maximum below a minimum, is refused here)."""
    try:
        validated = kind.validate(params)
    except InvalidParams as exc:
        raise ServiceError(422, "INVALID_PARAMS", f"params.{exc}",
                           {"field": f"params.{exc.problems[0]['field']}"
                            if exc.problems else "params",
                            "errors": exc.problems}) from None
    try:
        kind.build(validated)
    except Exception as exc:
        raise ServiceError(422, "INVALID_PARAMS", f"params: {exc}", {"field": "params"}
                           ) from None
    return validated


async def create(system: TradingSystem, principal: Principal, kind_name: str, client: str,
                 venue: str, params: Mapping[str, Any], strategy_id: str | None = None,
                 start: bool = False, reason: str = "") -> StrategyRecord:
    """Create a strategy of a registered kind for ``client`` on ``venue`` (stopped,
    unless ``start``). Without an id, one is made from the kind."""
    known_account(system, principal, client, venue)
    kind = _kind(kind_name)
    validated = _validated(kind, params)
    if strategy_id is None:
        strategy_id = f"{kind.name}-{secrets.token_hex(4)}"
    elif not STRATEGY_ID.match(strategy_id):
        raise ServiceError(422, "VALIDATION_ERROR",
                           "id: 1 to 64 letters, digits, '.', '_' or '-' (not first)",
                           {"field": "id"})
    command = CreateStrategy(strategy_id, kind.name, client, venue, validated,
                             principal.actor)
    await _run(system, principal, command, "strategy-create", Scope(client, venue), reason,
               {"strategy": strategy_id, "kind": kind.name, "params": dict(validated)})
    if start:
        return await _lifecycle(system, principal, strategy_id, "strategy-start", reason,
                                StartStrategy(strategy_id, principal.actor))
    return system.engine.state.strategies[strategy_id]


async def start(system: TradingSystem, principal: Principal, strategy_id: str,
                reason: str = "") -> StrategyRecord:
    return await _lifecycle(system, principal, strategy_id, "strategy-start", reason,
                            StartStrategy(strategy_id, principal.actor))


async def stop(system: TradingSystem, principal: Principal, strategy_id: str,
               reason: str = "") -> StrategyRecord:
    return await _lifecycle(system, principal, strategy_id, "strategy-stop", reason,
                            StopStrategy(strategy_id, reason or "requested", principal.actor))


async def configure(system: TradingSystem, principal: Principal, strategy_id: str,
                    params: Mapping[str, Any], reason: str = "") -> StrategyRecord:
    """Replace the parameters (validated by the kind); a running strategy is rebuilt
    with them at the next step."""
    record = strategy(system, principal, strategy_id)
    kind = _kind(record.kind)
    validated = _validated(kind, params)
    return await _lifecycle(system, principal, strategy_id, "strategy-config", reason,
                            ConfigureStrategy(strategy_id, validated, principal.actor),
                            {"params": dict(validated), "previous": dict(record.params)})


async def _lifecycle(system: TradingSystem, principal: Principal, strategy_id: str,
                     action: str, reason: str, command: Command,
                     details: dict[str, Any] | None = None) -> StrategyRecord:
    record = strategy(system, principal, strategy_id)
    await _run(system, principal, command, action, Scope(record.client, record.venue), reason,
               {"strategy": strategy_id, **(details or {})}, previous=record.status.value)
    return system.engine.state.strategies[strategy_id]


async def _run(system: TradingSystem, principal: Principal, command: Command, action: str,
               scope: Scope, reason: str, details: dict[str, Any],
               previous: str | None = None) -> list[Event]:
    def audit(events: list[Event]) -> list[AuditRow]:
        return [AuditRow(at=datetime.now(UTC), actor=principal.actor, action=action,
                         scope=scope.describe(), reason=reason, previous=previous,
                         details={**details, "changed": bool(events)})]

    committed = await run(system, command, audit=audit)
    return committed.events
