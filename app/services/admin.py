"""Users and API keys. Every change is audited by the auth store (scope ``auth``,
with the actor) in the same transaction as the change itself.

These run without a trading system (the CLI manages users before the first
start), on the auth store alone.
"""

from __future__ import annotations

from app.auth.principal import Role
from app.auth.store import AuthError, AuthStore
from app.services.errors import ServiceError
from app.store.tables import ApiKeyRow


def add_user(auth: AuthStore, actor: str, name: str, role: Role, password: str,
             clients: str = "") -> None:
    """A new user with ``role``, limited to ``clients`` (comma-separated; empty: all)."""
    try:
        auth.add_user(name, role, password, clients, actor=actor)
    except AuthError as exc:
        raise ServiceError(400, "INVALID_USER", str(exc)) from None


def remove_user(auth: AuthStore, actor: str, name: str) -> None:
    """Remove a user; their browser sessions end with them."""
    if not auth.remove_user(name, actor=actor):
        raise ServiceError(404, "UNKNOWN_USER", f"there is no user {name!r}")


def create_key(auth: AuthStore, actor: str, role: Role, name: str, clients: str = "") -> str:
    """A new API key, returned once (only its hash is stored)."""
    return auth.create_key(role, name, clients, actor=actor)


def revoke_key(auth: AuthStore, actor: str, prefix_or_name: str) -> int:
    """Revoke every key with this prefix or name; how many. Open sockets of a revoked
    key are closed within seconds."""
    count = auth.revoke_key(prefix_or_name, actor=actor)
    if not count:
        raise ServiceError(404, "UNKNOWN_KEY", f"no active key {prefix_or_name!r}")
    return count


def list_keys(auth: AuthStore) -> list[ApiKeyRow]:
    return auth.list_keys()
