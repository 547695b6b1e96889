"""Signals to orders (seed 002): a strategy's 1 / 0 / -1 for a client, venue and
symbol, the client's order parameters that turn it into orders, and the OCO bracket
(reduce-only take profit and stop loss) that protects what an entry filled.

A signal is a command (``SubmitSignal``) the engine answers with events:
``SignalReceived``, the orders it placed (each tagged with the signal id and the
strategy id), and ``SignalResolved`` saying what came of it: the orders, or why
there were none (``NoOrderReason``). Parameters are per client: the configuration's
``signals:`` section, overridden by ``SignalParamsChanged`` events (operator), so a
restart comes back with the same ones.

A bracket is engine policy, recorded as events so a replay rebuilds it:
``BracketOpened`` (with the entry order, before it is placed), ``BracketLegsPlaced``
each time its legs change (they follow the entry's fills and each other's), and
``BracketClosed``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from app.domain.orders import Side, TimeInForce


class PositionMode(StrEnum):
    LONG_SHORT = "long_short"  # -1 goes short (an opposite signal reverses)
    LONG_ONLY = "long_only"  # -1 only closes a long


class EntryPoint(StrEnum):
    """The candle price a signal's entry refers to (sizing and the slippage cap)."""

    CURRENT_OPEN = "current_open"  # the open of the candle the signal arrives in
    PREVIOUS_CLOSE = "previous_close"  # the close of the candle before it


class EntryOrder(StrEnum):
    MARKET = "market"  # a marketable IOC limit capped at max_slippage_bps (or a market)
    LIMIT = "limit"  # limit_price_offset_bps from mid, on the passive side


class SizeMode(StrEnum):
    FIXED = "fixed"  # fixed_qty
    BALANCE_FRACTION = "balance_fraction"  # balance_fraction × equity, as notional
    RISK = "risk"  # lose risk_fraction × equity if the stop is hit


class ExitMode(StrEnum):
    VOLATILITY = "volatility"  # multiples of the stdev of returns over a window
    FIXED_PCT = "fixed_pct"  # percentages of the entry price
    NONE = "none"  # no bracket


class NoOrderReason(StrEnum):
    """Why a signal placed no order (stable codes, as reject codes are)."""

    NOTHING_TO_CLOSE = "NOTHING_TO_CLOSE"  # 0 (or -1 long-only) with no position
    ALREADY_POSITIONED = "ALREADY_POSITIONED"  # the position already has that direction
    UNKNOWN_SYMBOL = "UNKNOWN_SYMBOL"
    NO_CANDLE = "NO_CANDLE"  # no candle yet to take the entry price from
    NO_MARKET_DATA = "NO_MARKET_DATA"  # no bid and ask for a limit's mid
    VOLATILITY_NOT_READY = "VOLATILITY_NOT_READY"  # fewer candles than the window
    NO_STOP_DISTANCE = "NO_STOP_DISTANCE"  # risk sizing without a stop loss (or zero)
    SIZE_TOO_SMALL = "SIZE_TOO_SMALL"  # below the instrument's minimum quantity
    SLIPPAGE_TOO_HIGH = "SLIPPAGE_TOO_HIGH"  # the market moved beyond max_slippage_bps
    ORDER_REJECTED = "ORDER_REJECTED"  # placed, and the risk gate refused it


@dataclass(frozen=True, slots=True)
class SignalParams:
    """A client's signal order parameters; the defaults are the seeds' (002's
    take_profit_sd 1.0, stop_loss_sd 2.0, market orders, GTC, 10 bps slippage;
    000's limit_price_offset_bps 5)."""

    mode: PositionMode = PositionMode.LONG_SHORT
    entry_at: EntryPoint = EntryPoint.CURRENT_OPEN
    order_type: EntryOrder = EntryOrder.MARKET
    limit_price_offset_bps: Decimal = Decimal(5)
    time_in_force: TimeInForce = TimeInForce.GTC  # of limit entries (market: IOC)
    max_slippage_bps: Decimal | None = Decimal(10)  # None: plain market orders
    size_mode: SizeMode = SizeMode.BALANCE_FRACTION
    fixed_qty: Decimal | None = None
    balance_fraction: Decimal = Decimal("0.1")
    risk_fraction: Decimal = Decimal("0.01")
    exit_mode: ExitMode = ExitMode.VOLATILITY
    take_profit_sd: Decimal | None = Decimal("1.0")
    stop_loss_sd: Decimal | None = Decimal("2.0")
    take_profit_pct: Decimal | None = None
    stop_loss_pct: Decimal | None = None
    volatility_window: int = 20  # returns of candles of the engine's signal interval
    scale_by_strength: bool = True  # a signal's strength (0..1] scales its size


DEFAULT_SIGNAL_PARAMS = SignalParams()


# ---- commands ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SubmitSignal:
    """A strategy's signal for one client, venue and symbol: 1 long, 0 flat, -1 short.
    Idempotent on ``signal_id`` (None: the engine names it)."""

    client: str
    venue: str
    symbol: str
    signal: int
    strategy: str
    signal_at: datetime
    strength: Decimal | None = None
    signal_id: str | None = None
    actor: str = "system"


@dataclass(frozen=True, slots=True)
class SetSignalParams:
    client: str
    params: SignalParams
    reason: str
    actor: str = "system"


# ---- events ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SignalReceived:
    signal_id: str
    client: str
    venue: str
    symbol: str
    signal: int
    strategy: str
    strength: Decimal | None
    signal_at: datetime
    at: datetime
    actor: str = "system"


@dataclass(frozen=True, slots=True)
class SignalResolved:
    """What came of a signal: the orders it placed (closing first), or why none.
    ``reason`` is set when no order went out (or the entry was refused)."""

    signal_id: str
    client: str
    venue: str
    symbol: str
    order_ids: tuple[int, ...]
    reason: NoOrderReason | None
    message: str
    reference_price: Decimal | None  # the candle price the entry referred to
    take_profit_frac: Decimal | None  # distance from the entry fill, as a fraction
    stop_loss_frac: Decimal | None
    at: datetime


@dataclass(frozen=True, slots=True)
class SignalParamsChanged:
    client: str
    params: SignalParams
    reason: str
    actor: str
    at: datetime


@dataclass(frozen=True, slots=True)
class BracketOpened:
    """An entry will carry a bracket: its legs are placed as it fills. The bracket's
    id is the entry's order id (recorded before the entry is placed)."""

    bracket_id: int
    signal_id: str
    strategy: str
    client: str
    venue: str
    symbol: str
    entry_side: Side
    take_profit_frac: Decimal | None
    stop_loss_frac: Decimal | None
    at: datetime


@dataclass(frozen=True, slots=True)
class BracketLegsPlaced:
    """The bracket's current legs (None: none) and the quantity each protects. Legs
    left out are no longer the bracket's (being canceled), though their late fills
    still count as exits."""

    bracket_id: int
    client: str
    venue: str
    take_profit_order_id: int | None
    stop_loss_order_id: int | None
    qty: Decimal
    at: datetime


@dataclass(frozen=True, slots=True)
class BracketClosed:
    bracket_id: int
    client: str
    venue: str
    reason: str
    at: datetime


# ---- state --------------------------------------------------------------------------------

@dataclass(slots=True)
class SignalRecord:
    """One signal as the engine knows it. Changed only by applying events."""

    signal_id: str
    client: str
    venue: str
    symbol: str
    signal: int
    strategy: str
    strength: Decimal | None
    signal_at: datetime
    received_at: datetime
    actor: str
    resolved: SignalResolved | None = None
    bracket_id: int | None = None

    def same_request(self, cmd: SubmitSignal) -> bool:
        return (self.client, self.venue, self.symbol, self.signal, self.strategy,
                self.strength, self.signal_at) == (cmd.client, cmd.venue, cmd.symbol,
                                                   cmd.signal, cmd.strategy, cmd.strength,
                                                   cmd.signal_at)


@dataclass(slots=True)
class Bracket:
    """One OCO bracket. ``entry_filled`` and ``exit_filled`` follow the fills of the
    entry and of every leg it ever had."""

    bracket_id: int
    signal_id: str
    strategy: str
    client: str
    venue: str
    symbol: str
    entry_side: Side
    take_profit_frac: Decimal | None
    stop_loss_frac: Decimal | None
    opened_at: datetime
    entry_filled: Decimal = Decimal(0)
    entry_notional: Decimal = Decimal(0)  # sum of qty × price of the entry's fills
    exit_filled: Decimal = Decimal(0)
    take_profit_order_id: int | None = None
    stop_loss_order_id: int | None = None
    qty: Decimal = Decimal(0)  # what the current legs protect
    closed: str | None = None  # why it closed; None: open
    legs: list[int] = field(default_factory=list)  # every leg it ever had

    @property
    def entry_price(self) -> Decimal | None:
        return self.entry_notional / self.entry_filled if self.entry_filled else None

    @property
    def open_qty(self) -> Decimal:
        return self.entry_filled - self.exit_filled
