"""Strategies as the engine records them: their lifecycle commands and events.

A strategy is a kind (registered in ``app/strategies``), a client and venue it
trades for, and parameters. Its lifecycle is events in the log, so a restart
resumes every running strategy with its configuration, and replays rebuild the
same list. What a strategy *does* (the code of its kind) runs on the strategy
host; the engine only records who it is and whether it runs.

Parameters travel as ``(name, text)`` pairs sorted by name: plain values,
decimals as their text, so the log holds exactly what was validated.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

Params = tuple[tuple[str, str], ...]


class StrategyStatus(StrEnum):
    STOPPED = "stopped"
    RUNNING = "running"
    FAILED = "failed"  # stopped by the host because its code raised


# ---- commands ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CreateStrategy:
    strategy_id: str
    kind: str
    client: str
    venue: str
    params: Params
    actor: str = "system"


@dataclass(frozen=True, slots=True)
class StartStrategy:
    strategy_id: str
    actor: str = "system"


@dataclass(frozen=True, slots=True)
class StopStrategy:
    strategy_id: str
    reason: str = "requested"
    actor: str = "system"
    failed: bool = False  # the host stops a strategy whose code raised


@dataclass(frozen=True, slots=True)
class ConfigureStrategy:
    strategy_id: str
    params: Params
    actor: str = "system"


@dataclass(frozen=True, slots=True)
class SavedBar:
    """A closed bar a strategy's indicators were fed, kept so that a restart feeds them
    again: the strategy resumes with its bars, not from an empty history."""

    symbol: str
    interval_s: int
    start: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    points: int


@dataclass(frozen=True, slots=True)
class RecordBars:
    strategy_id: str
    bars: tuple[SavedBar, ...]
    actor: str = "system"


# ---- events -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class StrategyCreated:
    strategy_id: str
    kind: str
    client: str
    venue: str
    params: Params
    at: datetime
    actor: str = "system"


@dataclass(frozen=True, slots=True)
class StrategyStarted:
    strategy_id: str
    client: str
    venue: str
    at: datetime
    actor: str = "system"


@dataclass(frozen=True, slots=True)
class StrategyStopped:
    strategy_id: str
    client: str
    venue: str
    reason: str
    failed: bool
    at: datetime
    actor: str = "system"


@dataclass(frozen=True, slots=True)
class StrategyConfigured:
    strategy_id: str
    client: str
    venue: str
    params: Params
    previous: Params
    at: datetime
    actor: str = "system"


@dataclass(frozen=True, slots=True)
class StrategyBarsRecorded:
    """Bars a strategy closed (what its indicators took in), for its restart."""

    strategy_id: str
    client: str
    venue: str
    bars: tuple[SavedBar, ...]
    at: datetime


# ---- state --------------------------------------------------------------------------------

@dataclass(slots=True)
class StrategyRecord:
    """One strategy as the engine knows it. Mutated only by applying events."""

    strategy_id: str
    kind: str
    client: str
    venue: str
    params: Params
    created_at: datetime
    status: StrategyStatus = StrategyStatus.STOPPED
    status_reason: str = ""
    updated_at: datetime | None = None
    starts: int = 0  # how often it was started (a restart resumes without counting)

    @property
    def running(self) -> bool:
        return self.status is StrategyStatus.RUNNING

    def param(self, name: str, default: str | None = None) -> str | None:
        return dict(self.params).get(name, default)
