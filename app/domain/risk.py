"""Risk controls as values: a client's risk profile (pre-trade limits, impact-aware
sizing, circuit breakers), the commands that change it, and the events that record
what the controls did.

The numbers of seeds 000 §2, 003 and 004 are the defaults: sizing at most 50 bps
of impact, three consecutive losses, a daily loss of 5 % of the day's opening
equity, a drawdown of 10 % from peak equity, and entries blocked above 80 % margin
utilization. A profile is replaced whole by ``SetRiskProfile``; the engine records
``RiskProfileChanged`` so a restart comes back with the same limits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum

from app.domain.trading_state import TradingState


class SizingMode(StrEnum):
    """What to do with an order whose expected impact is above the limit (seed 000 §2.2)."""

    NONE = "none"  # no impact check
    CONSERVATIVE = "conservative"  # downsize to fit, and say so (OrderSizedDown)
    STRICT = "strict"  # reject IMPACT_TOO_HIGH
    AGGRESSIVE = "aggressive"  # allow up to the higher cap, downsize beyond it


class Breaker(StrEnum):
    """The circuit breakers of seed 004 (their names are the SAFETY_<NAME> log tags)."""

    CONSECUTIVE_LOSSES = "consecutive_losses"
    DAILY_LOSS = "daily_loss"
    DRAWDOWN = "drawdown"
    SESSION_TRADES = "session_trades"
    SESSION_RUNTIME = "session_runtime"

    @property
    def tag(self) -> str:
        return f"SAFETY_{self.value.upper()}"


@dataclass(frozen=True, slots=True)
class SizingPolicy:
    """Impact-aware sizing and the liquidity filters of seed 000 (None: filter off)."""

    mode: SizingMode = SizingMode.NONE
    max_impact_bps: Decimal = Decimal(50)
    aggressive_max_impact_bps: Decimal = Decimal(150)
    max_spread_bps: Decimal | None = None
    min_l1_depth_notional: Decimal | None = None  # both sides of the touch, each
    min_volume_1m_notional: Decimal | None = None  # traded in the last minute

    def cap_bps(self, mode: SizingMode | None = None) -> Decimal:
        mode = mode or self.mode
        return self.aggressive_max_impact_bps if mode is SizingMode.AGGRESSIVE \
            else self.max_impact_bps


@dataclass(frozen=True, slots=True)
class SymbolLimits:
    """Per-symbol limits of one client (seed 003's table is the demo's default)."""

    symbol: str
    max_order_qty: Decimal | None = None
    max_order_notional: Decimal | None = None
    max_position_size: Decimal | None = None
    max_position_notional: Decimal | None = None


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """Seed 004's breakers (None: that breaker is off) and what a trip does."""

    consecutive_losses: int | None = 3
    daily_loss_pct: Decimal | None = Decimal(5)
    max_drawdown_pct: Decimal | None = Decimal(10)
    session_max_trades: int | None = None
    session_max_runtime_minutes: int | None = None
    # What a trip moves the client to; per breaker, REDUCE_ONLY unless listed here.
    halt_on: tuple[Breaker, ...] = ()

    @property
    def any_on(self) -> bool:
        return any(limit is not None for limit in (
            self.consecutive_losses, self.daily_loss_pct, self.max_drawdown_pct,
            self.session_max_trades, self.session_max_runtime_minutes))

    def action(self, breaker: Breaker) -> TradingState:
        return TradingState.HALTED if breaker in self.halt_on else TradingState.REDUCE_ONLY


@dataclass(frozen=True, slots=True)
class RiskProfile:
    """Everything the engine enforces for one client beyond the instrument's rules."""

    max_order_qty: Decimal | None = None  # any symbol; a symbol's own limit is checked too
    max_order_notional: Decimal | None = None
    max_leverage: Decimal | None = None
    # A limit price this far from the mark is a fat finger (the venues' own bands, e.g.
    # binance-usdm's 5 %, apply besides); an extra digit is caught, a deep bid is not.
    price_band_pct: Decimal | None = Decimal(10)
    max_open_orders: int | None = 1000
    orders_per_second: int | None = None  # API callers; strategies default to seed 004's 5/s
    orders_per_minute: int | None = None  # ... and 60/min
    margin_ratio_cap: Decimal | None = Decimal("0.80")  # entries blocked above (seed 004)
    symbols: tuple[SymbolLimits, ...] = ()
    sizing: SizingPolicy = field(default_factory=SizingPolicy)
    breakers: BreakerPolicy = field(default_factory=BreakerPolicy)

    def for_symbol(self, symbol: str) -> SymbolLimits | None:
        for limits in self.symbols:
            if limits.symbol == symbol:
                return limits
        return None


DEFAULT_PROFILE = RiskProfile()
# What an engine built without configuration enforces: nothing beyond the
# instruments' rules (the server's configuration starts from DEFAULT_PROFILE).
UNLIMITED = RiskProfile(price_band_pct=None, max_open_orders=None, margin_ratio_cap=None,
                        breakers=BreakerPolicy(None, None, None))
# Seed 004's API caps, applied to strategies when their client's profile sets none.
STRATEGY_ORDERS_PER_SECOND = 5
STRATEGY_ORDERS_PER_MINUTE = 60


# ---- commands ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SizingRequest:
    """An order's own choice of sizing (``sizing`` on POST /api/v1/orders); unset
    parts come from the client's profile."""

    mode: SizingMode
    max_impact_bps: Decimal | None = None


@dataclass(frozen=True, slots=True)
class SetRiskProfile:
    client: str
    profile: RiskProfile
    reason: str
    actor: str = "system"


@dataclass(frozen=True, slots=True)
class ResetBreaker:
    client: str
    breaker: Breaker
    reason: str
    actor: str = "system"


# ---- events ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RiskProfileChanged:
    client: str
    profile: RiskProfile
    reason: str
    actor: str
    at: datetime


@dataclass(frozen=True, slots=True)
class BreakerTripped:
    """A breaker tripped for ``client``: its figures, and the state it moved the
    client to (a ``TradingStateChanged`` follows, by ``breaker:<name>``)."""

    client: str
    breaker: Breaker
    state: TradingState
    message: str
    figures: tuple[tuple[str, str], ...]
    at: datetime


@dataclass(frozen=True, slots=True)
class BreakerReset:
    """An operator cleared a trip. The breaker starts over from here: its losing
    streak or session restarts, and an equity breaker's reference (the peak, or the
    day's opening equity) becomes ``equity``, the client's equity at the reset."""

    client: str
    breaker: Breaker
    reason: str
    actor: str
    equity: Decimal
    at: datetime


@dataclass(frozen=True, slots=True)
class RiskStateRecorded:
    """The equity-based part of a client's risk state, which no other event implies:
    the peak equity (drawdown) and the day's opening equity (daily loss). Recorded
    when a new day starts and when the peak rises by more than a step, so a restart
    resumes the guards where they were (seed 004 Fix Pack 3)."""

    client: str
    peak_equity: Decimal
    day: str  # YYYY-MM-DD, UTC
    day_open_equity: Decimal
    at: datetime


@dataclass(frozen=True, slots=True)
class OrderSizedDown:
    """Impact-aware sizing shrank an order before it was sent (seed 003's SIZED_DOWN)."""

    order_id: int
    client: str
    venue: str
    symbol: str
    requested_qty: Decimal
    qty: Decimal
    requested_impact_bps: Decimal | None  # None: the book is too thin for all of it
    impact_bps: Decimal
    max_impact_bps: Decimal
    mode: SizingMode
    at: datetime


# ---- margin windows (seed 003) ----------------------------------------------------------

@dataclass(frozen=True, slots=True)
class MarginWindow:
    """A time of day in which a venue asks more (or less) margin, as Coinbase's
    derivatives do overnight: each position's initial and maintenance margin are
    multiplied. ``start`` and ``end`` are UTC times of day; an ``end`` at or before
    ``start`` wraps past midnight. Outside every window the multipliers are 1."""

    name: str
    start: time
    end: time
    initial_multiplier: Decimal = Decimal(1)
    maintenance_multiplier: Decimal = Decimal(1)

    def covers(self, at: datetime) -> bool:
        t = at.timetz().replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end


def window_at(windows: tuple[MarginWindow, ...], at: datetime) -> MarginWindow | None:
    """The window in force at ``at`` (the first listed that covers it)."""
    return next((w for w in windows if w.covers(at)), None)


def next_boundary(windows: tuple[MarginWindow, ...], at: datetime) -> datetime | None:
    """The next instant after ``at`` at which some window starts or ends."""
    best: datetime | None = None
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    for w in windows:
        for moment in (w.start, w.end):
            for days in (0, 1):
                candidate = day + timedelta(days=days, hours=moment.hour,
                                            minutes=moment.minute, seconds=moment.second)
                if candidate > at and (best is None or candidate < best):
                    best = candidate
    return best


@dataclass(frozen=True, slots=True)
class MarginSnapshot:
    """One account at a window change: its margin utilization (margin in use over
    equity) under the requirements before and after it."""

    client: str
    equity: Decimal
    utilization_before: Decimal
    utilization_after: Decimal


@dataclass(frozen=True, slots=True)
class MarginWindowChanged:
    venue: str
    previous: str | None  # window names; None: no window (the base requirements)
    current: str | None
    initial_multiplier: Decimal
    maintenance_multiplier: Decimal
    snapshots: tuple[MarginSnapshot, ...]
    at: datetime


@dataclass(frozen=True, slots=True)
class MarginWindowWarning:
    """Ahead of a window that raises requirements beyond an account's headroom: the
    margin the account would need then exceeds its equity less what is in use now."""

    venue: str
    client: str
    window: str | None
    starts_at: datetime
    equity: Decimal
    margin_now: Decimal
    margin_then: Decimal
    at: datetime


# ---- state --------------------------------------------------------------------------------

@dataclass(slots=True)
class ClientRiskState:
    """What the breakers track for one client. Changed only by applying events."""

    consecutive_losses: int = 0
    session_started: datetime | None = None
    session_trades: int = 0
    peak_equity: Decimal | None = None
    day: str | None = None
    day_open_equity: Decimal | None = None
    tripped: dict[Breaker, BreakerTripped] = field(default_factory=dict)
