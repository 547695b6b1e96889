"""Roles and the authenticated caller."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    VIEWER = "viewer"  # read
    TRADER = "trader"  # + orders
    OPERATOR = "operator"  # + kill switches
    ADMIN = "admin"  # + users and keys

    @property
    def rank(self) -> int:
        return _RANK[self]

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


_RANK = {Role.VIEWER: 0, Role.TRADER: 1, Role.OPERATOR: 2, Role.ADMIN: 3}


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: Role
    clients: frozenset[str] | None  # None: every client
    via: str  # "key" | "session"

    def can_access(self, client: str) -> bool:
        return self.clients is None or client in self.clients

    @property
    def actor(self) -> str:
        return f"{self.via}:{self.name}"


def parse_clients(text: str) -> frozenset[str] | None:
    names = frozenset(c.strip() for c in text.split(",") if c.strip())
    return names or None
