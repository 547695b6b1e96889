"""Orders: their parameters, their lifecycle as an explicit transition table."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from app.domain.rejections import IllegalTransition

ZERO = Decimal(0)


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"  # stop-market
    STOP_LIMIT = "stop_limit"
    # Take-profit: a stop whose trigger lies the other way (a sell triggers when the
    # price rises to it, a buy when it falls to it): Binance TAKE_PROFIT_MARKET and
    # TAKE_PROFIT, Bybit conditional orders with the other triggerDirection.
    TAKE_PROFIT = "take_profit"  # take-profit market
    TAKE_PROFIT_LIMIT = "take_profit_limit"
    # A stop-market whose trigger follows the best price since activation at
    # ``callback_rate`` percent (Binance TRAILING_STOP_MARKET).
    TRAILING_STOP = "trailing_stop"

    @property
    def has_limit_price(self) -> bool:
        return self in _LIMIT_PRICED

    @property
    def is_stop(self) -> bool:
        """A stop-loss (market or limit): buys trigger on a rise, sells on a fall."""
        return self in (OrderType.STOP, OrderType.STOP_LIMIT)

    @property
    def is_take_profit(self) -> bool:
        return self in (OrderType.TAKE_PROFIT, OrderType.TAKE_PROFIT_LIMIT)

    @property
    def is_conditional(self) -> bool:
        """Waits for a trigger before it acts (stop, take-profit, trailing stop)."""
        return self in _CONDITIONAL

    @property
    def executes_at_market(self) -> bool:
        """Takes the book with no limit once live (market, or a triggered *-market)."""
        return self in _AT_MARKET


_LIMIT_PRICED = frozenset({OrderType.LIMIT, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT_LIMIT})
_CONDITIONAL = frozenset({OrderType.STOP, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT,
                          OrderType.TAKE_PROFIT_LIMIT, OrderType.TRAILING_STOP})
_AT_MARKET = frozenset({OrderType.MARKET, OrderType.STOP, OrderType.TAKE_PROFIT,
                        OrderType.TRAILING_STOP})


def triggers_on_rise(order_type: OrderType, side: Side) -> bool:
    """Does a conditional order of this type and side trigger when the price rises to
    its trigger (else: when it falls to it)? A stop buys on a rise and sells on a fall
    (it chases the move); a take-profit is the other way round (it takes the move)."""
    return (side is Side.BUY) != order_type.is_take_profit


class TimeInForce(StrEnum):
    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"
    GTD = "gtd"


class TriggerSource(StrEnum):
    LAST = "last"
    MARK = "mark"


class Liquidity(StrEnum):
    MAKER = "maker"
    TAKER = "taker"


class OrderStatus(StrEnum):
    NEW = "new"
    ACCEPTED = "accepted"
    TRIGGERED = "triggered"
    PARTIALLY_FILLED = "partially_filled"
    PENDING_CANCEL = "pending_cancel"
    PENDING_REPLACE = "pending_replace"
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REJECTED = "rejected"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    @property
    def is_open(self) -> bool:
        return self not in TERMINAL_STATUSES


S = OrderStatus
TERMINAL_STATUSES = frozenset({S.FILLED, S.CANCELED, S.EXPIRED, S.REJECTED})

# Which status may follow which. Fills may race a pending cancel or replace
# (the venue filled before it saw the request), and a refused cancel or
# replace returns the order to the working state it had.
_WORKING = {S.ACCEPTED, S.TRIGGERED, S.PARTIALLY_FILLED}
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.NEW: frozenset({S.ACCEPTED, S.REJECTED, S.PENDING_CANCEL}),
    S.ACCEPTED: frozenset(
        {S.TRIGGERED, S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.PENDING_REPLACE,
         S.CANCELED, S.EXPIRED}
    ),
    S.TRIGGERED: frozenset(
        {S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.PENDING_REPLACE, S.CANCELED,
         S.EXPIRED}
    ),
    S.PARTIALLY_FILLED: frozenset(
        {S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.PENDING_REPLACE, S.CANCELED,
         S.EXPIRED}
    ),
    # A refused cancel of an order the venue had not acknowledged returns it to NEW.
    S.PENDING_CANCEL: frozenset(
        {S.CANCELED, S.PARTIALLY_FILLED, S.FILLED, S.EXPIRED, S.NEW, S.REJECTED, *_WORKING}
    ),
    S.PENDING_REPLACE: frozenset(
        {S.CANCELED, S.PARTIALLY_FILLED, S.FILLED, S.EXPIRED, *_WORKING}
    ),
    S.FILLED: frozenset(),
    S.CANCELED: frozenset(),
    S.EXPIRED: frozenset(),
    S.REJECTED: frozenset(),
}


def can_transition(current: OrderStatus, new: OrderStatus) -> bool:
    return new in TRANSITIONS[current]


_CLIENT_ORDER_ID = re.compile(r"^[A-Za-z0-9._:/-]{1,36}$")


def valid_client_order_id(value: str) -> bool:
    """1–36 characters of ``[A-Za-z0-9._:/-]``: what Binance, Bybit and OKX all accept."""
    return bool(_CLIENT_ORDER_ID.fullmatch(value))


@dataclass(frozen=True, slots=True)
class OrderTags:
    """Free-form attribution carried from the caller to fills and closed trades."""

    strategy: str | None = None
    signal_id: str | None = None
    parent_trade_id: str | None = None
    exit_reason: str | None = None


# Shared by every untagged order: tags are immutable, and one object per order less
# for the garbage collector to walk (the engine keeps every order in memory).
NO_TAGS = OrderTags()


@dataclass(frozen=True, slots=True)
class OrderSpec:
    """Everything the caller asked for. Two submissions with the same
    ``client_order_id`` are the same order only if their specs are equal."""

    client: str
    venue: str
    symbol: str
    side: Side
    type: OrderType
    qty: Decimal
    price: Decimal | None = None
    trigger_price: Decimal | None = None
    trigger_source: TriggerSource = TriggerSource.LAST
    time_in_force: TimeInForce = TimeInForce.GTC
    expire_at: datetime | None = None
    post_only: bool = False
    reduce_only: bool = False
    client_order_id: str | None = None
    tags: OrderTags = NO_TAGS
    # Trailing stop: the callback in percent (0.1-10, Binance's callbackRate) and the
    # price that arms it (None: armed at once, from the price when it arrives).
    callback_rate: Decimal | None = None
    activation_price: Decimal | None = None
    # Close-position (Binance closePosition): no qty; at the trigger it closes whatever
    # position there is on the side it reduces (reduce-only by nature). Its qty is 0
    # until then, and becomes the position's size when it triggers.
    close_position: bool = False

    @property
    def account(self) -> tuple[str, str]:
        return (self.client, self.venue)


@dataclass(slots=True)
class Order:
    """An order as the OMS knows it. Mutated only by applying events."""

    order_id: int
    spec: OrderSpec
    client_order_id: str
    created_at: datetime
    status: OrderStatus = OrderStatus.NEW
    updated_at: datetime | None = None
    filled_qty: Decimal = ZERO
    filled_notional: Decimal = ZERO
    fees: Decimal = ZERO
    reject_code: str | None = None
    reject_message: str | None = None
    cancel_reason: str | None = None
    triggered_at: datetime | None = None
    replaces: int | None = None
    replaced_by: int | None = None
    requested_qty: Decimal | None = None  # when clipped to the position
    # The price its fills' slippage is measured against: the mid at submission, or,
    # for a conditional order, the mid when it triggered (it reached the market only
    # then; the trigger price without a two-sided book). None: unknown.
    arrival_price: Decimal | None = None
    # The working status to return to if a cancel or replace is refused.
    status_before_pending: OrderStatus | None = None
    # A cancel (or replace) was requested and the venue has not answered yet;
    # the answer may come after the order filled.
    cancel_in_flight: bool = False
    # The spec as submitted, once an amend (or a close-position's trigger) changed it:
    # a retry of the submission is still the same request.
    submitted: OrderSpec | None = None

    def same_request(self, spec: OrderSpec) -> bool:
        """Would ``spec`` (a retry) have produced this order?"""
        mine = self.submitted or self.spec
        if self.requested_qty is not None:
            mine = replace(mine, qty=self.requested_qty)
        return mine == replace(spec, client_order_id=self.client_order_id)

    @property
    def remaining_qty(self) -> Decimal:
        return self.spec.qty - self.filled_qty

    @property
    def avg_fill_price(self) -> Decimal | None:
        if not self.filled_qty:
            return None
        return self.filled_notional / self.filled_qty

    @property
    def is_open(self) -> bool:
        return self.status not in TERMINAL_STATUSES

    def respec(self, spec: OrderSpec, at: datetime) -> None:
        """Take a new price and/or qty in place (an amend, or a close-position's size at
        its trigger). The qty must stay above what has filled: an amend never makes an
        order more than filled (the venue cancels one amended down to its fills)."""
        if spec.qty <= self.filled_qty:
            raise IllegalTransition(
                f"order {self.order_id}: qty {spec.qty} is not above filled {self.filled_qty}")
        if self.submitted is None:
            self.submitted = self.spec
        self.spec = spec
        self.updated_at = at

    def transition(self, new: OrderStatus, at: datetime) -> None:
        if new not in TRANSITIONS[self.status]:
            raise IllegalTransition(
                f"order {self.order_id}: {self.status.value} -> {new.value} is not allowed"
            )
        if new in (OrderStatus.PENDING_CANCEL, OrderStatus.PENDING_REPLACE):
            self.status_before_pending = self.status
        self.status = new
        self.updated_at = at

    def record_fill(self, qty: Decimal, price: Decimal, fee: Decimal, at: datetime) -> None:
        """Add a fill. Validates everything first, so a bad fill changes nothing."""
        if qty <= 0 or qty > self.remaining_qty:
            raise IllegalTransition(
                f"order {self.order_id}: fill of {qty} exceeds remaining {self.remaining_qty}"
            )
        pending = self.status in (OrderStatus.PENDING_CANCEL, OrderStatus.PENDING_REPLACE)
        complete = self.filled_qty + qty == self.spec.qty
        target = OrderStatus.FILLED if complete else OrderStatus.PARTIALLY_FILLED
        if not (pending and not complete) and target not in TRANSITIONS[self.status]:
            raise IllegalTransition(
                f"order {self.order_id}: cannot fill while {self.status.value}")
        self.filled_qty += qty
        self.filled_notional += qty * price
        self.fees += fee
        if pending and not complete:
            # Still waiting on the cancel; remember the fill for a refused cancel.
            self.status_before_pending = OrderStatus.PARTIALLY_FILLED
            self.updated_at = at
        else:
            self.transition(target, at)
