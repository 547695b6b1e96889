"""Kill-switch states and their scopes.

A state is set on a scope: global (no client, no venue), a client, a venue,
or one account (client + venue). The state in force for an account is the
most restrictive of the four scopes that cover it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class TradingState(StrEnum):
    ACTIVE = "active"
    REDUCE_ONLY = "reduce_only"  # only orders that shrink a position, never flip it
    HALTED = "halted"  # no new orders; cancels always allowed

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {TradingState.ACTIVE: 0, TradingState.REDUCE_ONLY: 1, TradingState.HALTED: 2}


@dataclass(frozen=True, slots=True, order=True)
class Scope:
    client: str | None = None
    venue: str | None = None

    @property
    def is_global(self) -> bool:
        return self.client is None and self.venue is None

    def covers(self, client: str, venue: str) -> bool:
        return (self.client is None or self.client == client) and (
            self.venue is None or self.venue == venue
        )

    def describe(self) -> str:
        if self.is_global:
            return "global"
        parts = []
        if self.client is not None:
            parts.append(f"client {self.client}")
        if self.venue is not None:
            parts.append(f"venue {self.venue}")
        return ", ".join(parts)


GLOBAL = Scope()


def effective_state(
    states: Mapping[Scope, TradingState], client: str, venue: str
) -> tuple[TradingState, Scope]:
    """The most restrictive state covering ``(client, venue)`` and the scope that set it."""
    best, where = TradingState.ACTIVE, GLOBAL
    for scope in (GLOBAL, Scope(client, None), Scope(None, venue), Scope(client, venue)):
        state = states.get(scope)
        if state is not None and state.severity > best.severity:
            best, where = state, scope
    return best, where
