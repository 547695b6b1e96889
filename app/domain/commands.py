"""Commands: what a caller asks the engine to do (imperative, frozen)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from app.domain.arbitrage import RecordArbTrade, RecordLegOut
from app.domain.orders import OrderSpec, Side
from app.domain.risk import ResetBreaker, SetRiskProfile, SizingRequest
from app.domain.signals import SetSignalParams, SubmitSignal
from app.domain.strategies import (
    ConfigureStrategy,
    CreateStrategy,
    RecordBars,
    StartStrategy,
    StopStrategy,
)
from app.domain.trading_state import Scope, TradingState


@dataclass(frozen=True, slots=True)
class SubmitOrder:
    spec: OrderSpec
    # In REDUCE_ONLY (or with reduce_only set), shrink an order that would
    # flip the position down to the position's size instead of rejecting it.
    clip_to_position: bool = False
    actor: str = "system"
    sizing: SizingRequest | None = None  # None: the client's default (strategies: conservative)


@dataclass(frozen=True, slots=True)
class CancelOrder:
    order_id: int
    actor: str = "system"
    reason: str = "requested"


@dataclass(frozen=True, slots=True)
class ReplaceOrder:
    """Cancel an order and place its successor with a new price and/or qty.

    The successor keeps the original's side, type, flags and tags (the
    position intent) and gets a client id derived from the original's, so a
    retried replace finds the successor instead of placing another.
    ``new_qty`` is the successor's quantity; without it the successor takes
    the original's unfilled remainder.
    """

    order_id: int
    new_price: Decimal | None = None
    new_qty: Decimal | None = None
    new_trigger_price: Decimal | None = None
    actor: str = "system"


@dataclass(frozen=True, slots=True)
class AmendOrder:
    """Change a working order's price and/or total qty in place: the same order id
    and client order id. ``new_qty`` is the order's new total (what has filled
    included); one at or below the filled qty cancels the rest (as Binance does).
    Whether the order keeps its place in the queue is the venue's rule."""

    order_id: int
    new_price: Decimal | None = None
    new_qty: Decimal | None = None
    actor: str = "system"


@dataclass(frozen=True, slots=True)
class CancelAll:
    client: str | None = None
    venue: str | None = None
    symbol: str | None = None
    side: Side | None = None
    actor: str = "system"
    reason: str = "cancel all"


@dataclass(frozen=True, slots=True)
class SetTradingState:
    scope: Scope
    state: TradingState
    reason: str
    actor: str = "system"


@dataclass(frozen=True, slots=True)
class CloseAll:
    """Cancel every open order in scope, flatten every position with
    reduce-only market orders, and leave the scope REDUCE_ONLY."""

    scope: Scope
    reason: str
    actor: str = "system"


@dataclass(frozen=True, slots=True)
class Deposit:
    client: str
    venue: str
    amount: Decimal
    actor: str = "system"


@dataclass(frozen=True, slots=True)
class Withdraw:
    client: str
    venue: str
    amount: Decimal
    actor: str = "system"


@dataclass(frozen=True, slots=True)
class SetLeverage:
    """Set an account's leverage for one symbol."""

    client: str
    venue: str
    symbol: str
    leverage: Decimal
    actor: str = "system"


Command = (
    SubmitOrder | CancelOrder | ReplaceOrder | AmendOrder | CancelAll | SetTradingState | CloseAll
    | Deposit | Withdraw | SetLeverage
    | CreateStrategy | StartStrategy | StopStrategy | ConfigureStrategy
    | SetRiskProfile | ResetBreaker
    | RecordArbTrade | RecordLegOut | RecordBars
    | SubmitSignal | SetSignalParams
)
