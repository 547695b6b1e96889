"""Who may act for, or see, which client — the one place these rules live."""

from __future__ import annotations

from app.auth.principal import Principal, Role
from app.runtime.system import TradingSystem
from app.services.errors import ServiceError, forbidden_client


def check_client(principal: Principal, client: str) -> None:
    if not principal.can_access(client):
        raise forbidden_client(client)


def ensure_role(principal: Principal, role: Role) -> Principal:
    if not principal.role.allows(role):
        raise ServiceError(403, "FORBIDDEN",
                           f"this needs the {role.value} role; you are {principal.role.value}")
    return principal


def known_account(system: TradingSystem, principal: Principal, client: str,
                  venue: str | None) -> None:
    """``client`` (and ``venue``) may be acted on by ``principal`` and exist. The scope
    is checked first: a caller outside it learns nothing of other clients."""
    check_client(principal, client)
    if client not in system.clients:
        raise ServiceError(404, "UNKNOWN_CLIENT", f"there is no client {client!r}")
    if venue is not None and venue not in system.venue_names:
        raise ServiceError(404, "UNKNOWN_VENUE", f"there is no venue {venue!r}")


def visible_clients(principal: Principal, system: TradingSystem,
                    requested: str | None = None) -> list[str]:
    """The clients a listing may show: the requested one (if allowed) or all allowed.

    A client outside the caller's scope is 403 whether it exists or not (a scoped
    caller learns nothing of other clients); an unknown one is 404 otherwise."""
    if requested is not None:
        known_account(system, principal, requested, None)
        return [requested]
    return [c for c in system.clients if principal.can_access(c)]
