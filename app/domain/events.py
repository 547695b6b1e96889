"""Events: what happened (past tense, frozen). State changes only by applying them.

Every event carries ``at``, the engine clock when it happened. Replaying the
stored events in order into an empty state rebuilds the live state exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from app.domain.arbitrage import ArbTradeUpdated, LegOutDetected
from app.domain.orders import Liquidity, OrderSpec, Side
from app.domain.positions import ClosedTrade
from app.domain.risk import (
    BreakerReset,
    BreakerTripped,
    MarginWindowChanged,
    MarginWindowWarning,
    OrderSizedDown,
    RiskProfileChanged,
    RiskStateRecorded,
)
from app.domain.signals import (
    BracketClosed,
    BracketLegsPlaced,
    BracketOpened,
    SignalParamsChanged,
    SignalReceived,
    SignalResolved,
)
from app.domain.strategies import (
    StrategyBarsRecorded,
    StrategyConfigured,
    StrategyCreated,
    StrategyStarted,
    StrategyStopped,
)
from app.domain.trading_state import Scope, TradingState


@dataclass(frozen=True, slots=True)
class FundsDeposited:
    client: str
    venue: str
    amount: Decimal
    at: datetime
    actor: str = "system"


@dataclass(frozen=True, slots=True)
class FundsWithdrawn:
    client: str
    venue: str
    amount: Decimal
    at: datetime
    actor: str = "system"


@dataclass(frozen=True, slots=True)
class OrderSubmitted:
    """The OMS took the order in (status NEW). ``spec.client_order_id`` is always set."""

    order_id: int
    spec: OrderSpec
    at: datetime
    replaces: int | None = None
    actor: str = "system"
    # Set when the order was clipped to the position: what the caller asked for.
    requested_qty: Decimal | None = None
    # The venue's mid price as the order was submitted (its arrival, or decision,
    # price: implementation shortfall measures fills against it). None: no two-sided
    # book then, or a log written before it was recorded.
    arrival_mid: Decimal | None = None


@dataclass(frozen=True, slots=True)
class OrderAccepted:
    order_id: int
    at: datetime


@dataclass(frozen=True, slots=True)
class OrderRejected:
    order_id: int
    code: str
    message: str
    at: datetime


@dataclass(frozen=True, slots=True)
class OrderTriggered:
    order_id: int
    trigger_price: Decimal  # the last or mark price that crossed the trigger
    at: datetime
    # A close-position order: the position it closes, now its qty (None: unchanged).
    qty: Decimal | None = None
    # The book's mid as it triggered: the order reaches the market only now, so this
    # is its arrival price (None: no two-sided book, or an older log).
    arrival_mid: Decimal | None = None


@dataclass(frozen=True, slots=True)
class OrderFilled:
    order_id: int
    fill_id: int
    client: str
    venue: str
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal
    fee: Decimal
    liquidity: Liquidity
    at: datetime


@dataclass(frozen=True, slots=True)
class OrderCancelRequested:
    order_id: int
    at: datetime
    actor: str = "system"


@dataclass(frozen=True, slots=True)
class OrderReplaceRequested:
    """Cancel ``order_id``; once the venue confirms, submit ``new_spec`` as ``new_order_id``."""

    order_id: int
    new_order_id: int
    new_spec: OrderSpec
    at: datetime
    actor: str = "system"
    # No new qty was asked for: the successor takes what is left when the cancel is
    # confirmed (fills may arrive while it is on its way), not ``new_spec.qty``.
    qty_from_remaining: bool = False


@dataclass(frozen=True, slots=True)
class OrderAmendRequested:
    """An amend in place was sent to the venue (the order keeps its ids)."""

    order_id: int
    qty: Decimal | None
    price: Decimal | None
    at: datetime
    actor: str = "system"


@dataclass(frozen=True, slots=True)
class OrderAmended:
    """The venue took an amend: the order's total qty and price are now these.
    ``kept_priority``: it kept its place in the queue (a qty decrease, where the venue
    allows it); otherwise it went to the back at its (new) price."""

    order_id: int
    qty: Decimal
    price: Decimal | None
    kept_priority: bool
    at: datetime


@dataclass(frozen=True, slots=True)
class OrderAmendRejected:
    """The venue refused an amend (the order was done, or the change was not allowed);
    the order is as it was."""

    order_id: int
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class OrderCanceled:
    order_id: int
    reason: str
    at: datetime
    replaced_by: int | None = None


@dataclass(frozen=True, slots=True)
class OrderCancelRejected:
    """The venue refused a cancel (the order was already done); it keeps its state."""

    order_id: int
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class OrderExpired:
    order_id: int
    at: datetime


@dataclass(frozen=True, slots=True)
class FundingApplied:
    """A funding settlement: ``amount`` is signed (positive = the account received)."""

    client: str
    venue: str
    symbol: str
    position_qty: Decimal
    mark: Decimal
    rate: Decimal
    amount: Decimal
    at: datetime


@dataclass(frozen=True, slots=True)
class FundingSettled:
    """A funding time was settled for a symbol (whether or not anyone held it).

    Recorded so a replay knows which funding times are done: a late or
    repeated announcement for them is never charged twice, restart or not.
    """

    venue: str
    symbol: str
    rate: Decimal
    mark: Decimal | None
    funding_at: datetime
    at: datetime


@dataclass(frozen=True, slots=True)
class FundingPosition:
    """A position as it stood at a funding instant."""

    client: str
    qty: Decimal


@dataclass(frozen=True, slots=True)
class FundingRateMissing:
    """A funding instant passed and no rate for it arrived within the grace period. The
    positions open at the instant (and the mark then) are kept here, so a late rate
    charges exactly them, never a position opened after the instant."""

    venue: str
    symbol: str
    funding_at: datetime
    mark: Decimal | None
    positions: tuple[FundingPosition, ...]
    at: datetime


@dataclass(frozen=True, slots=True)
class TradeClosed:
    """A position went flat or flipped; the round trip it completed."""

    trade: ClosedTrade
    at: datetime


@dataclass(frozen=True, slots=True)
class TradingStateChanged:
    scope: Scope
    state: TradingState
    previous: TradingState
    reason: str
    actor: str
    at: datetime


@dataclass(frozen=True, slots=True)
class CloseResult:
    """What close-all did to one position."""

    client: str
    venue: str
    symbol: str
    qty_before: Decimal
    order_id: int | None
    filled_qty: Decimal
    avg_price: Decimal | None
    status: str  # "closed" | "partial" | "pending" | "failed"
    message: str = ""


@dataclass(frozen=True, slots=True)
class CloseAllCompleted:
    scope: Scope
    results: tuple[CloseResult, ...]
    reason: str
    actor: str
    at: datetime


@dataclass(frozen=True, slots=True)
class LeverageChanged:
    """An account's leverage for one symbol (bounded by the instrument's tiers)."""

    client: str
    venue: str
    symbol: str
    leverage: Decimal
    previous: Decimal
    actor: str
    at: datetime


@dataclass(frozen=True, slots=True)
class PositionLiquidated:
    """The venue liquidated a position: the account's equity fell to its maintenance
    margin at ``mark``. ``order_id`` is the reduce-only market order that closed it
    (its fills are their own events); ``fee`` is the liquidation fee charged here on
    the notional closed; ``loss`` is what the position lost against its entry,
    fee included."""

    client: str
    venue: str
    symbol: str
    qty: Decimal  # signed position size before the liquidation
    mark: Decimal
    price: Decimal | None  # average fill of the closing order (None: not filled yet)
    filled_qty: Decimal
    fee: Decimal
    loss: Decimal
    equity: Decimal  # at the trigger
    maintenance_margin: Decimal
    order_id: int
    at: datetime


Event = (
    FundsDeposited | FundsWithdrawn | OrderSubmitted | OrderAccepted | OrderRejected
    | OrderTriggered | OrderFilled | OrderCancelRequested | OrderReplaceRequested
    | OrderAmendRequested | OrderAmended | OrderAmendRejected
    | OrderCanceled | OrderCancelRejected | OrderExpired | FundingApplied | FundingSettled
    | TradeClosed
    | TradingStateChanged | CloseAllCompleted | LeverageChanged | PositionLiquidated
    | FundingRateMissing
    | StrategyCreated | StrategyStarted | StrategyStopped | StrategyConfigured
    | RiskProfileChanged | BreakerTripped | BreakerReset | RiskStateRecorded | OrderSizedDown
    | MarginWindowChanged | MarginWindowWarning
    | ArbTradeUpdated | LegOutDetected | StrategyBarsRecorded
    | SignalReceived | SignalResolved | SignalParamsChanged
    | BracketOpened | BracketLegsPlaced | BracketClosed
)
