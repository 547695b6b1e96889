"""Stable rejection reason codes.

Codes are part of the public contract (API responses, metrics, dashboards);
never rename one. Each rejection also carries a message written for a person.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class RejectCode(StrEnum):
    POST_ONLY_WOULD_CROSS = "POST_ONLY_WOULD_CROSS"
    REDUCE_ONLY_WOULD_INCREASE = "REDUCE_ONLY_WOULD_INCREASE"
    INSUFFICIENT_MARGIN = "INSUFFICIENT_MARGIN"
    MIN_NOTIONAL = "MIN_NOTIONAL"
    MIN_QTY = "MIN_QTY"
    PRICE_NOT_ON_TICK = "PRICE_NOT_ON_TICK"
    QTY_NOT_ON_STEP = "QTY_NOT_ON_STEP"
    FOK_NOT_FILLABLE = "FOK_NOT_FILLABLE"
    DUPLICATE_CLIENT_ORDER_ID = "DUPLICATE_CLIENT_ORDER_ID"
    UNKNOWN_SYMBOL = "UNKNOWN_SYMBOL"
    UNSUPPORTED_BY_VENUE = "UNSUPPORTED_BY_VENUE"
    GTD_IN_PAST = "GTD_IN_PAST"
    TRADING_HALTED = "TRADING_HALTED"
    TRADING_REDUCE_ONLY = "TRADING_REDUCE_ONLY"
    MAX_POSITION_SIZE = "MAX_POSITION_SIZE"
    MAX_POSITION_NOTIONAL = "MAX_POSITION_NOTIONAL"
    # The position would outgrow the notional tier that allows the account's leverage
    # (Binance -2027 "Exceeded the maximum allowable position at current leverage").
    MAX_POSITION_AT_LEVERAGE = "MAX_POSITION_AT_LEVERAGE"
    LEVERAGE_TOO_HIGH = "LEVERAGE_TOO_HIGH"
    # Beyond the required set: malformed or impossible requests.
    UNKNOWN_ACCOUNT = "UNKNOWN_ACCOUNT"
    UNKNOWN_ORDER = "UNKNOWN_ORDER"
    INVALID_ORDER = "INVALID_ORDER"
    INVALID_CLIENT_ORDER_ID = "INVALID_CLIENT_ORDER_ID"
    ORDER_NOT_OPEN = "ORDER_NOT_OPEN"
    NO_MARKET_DATA = "NO_MARKET_DATA"
    # A market order (or a triggered stop-market) against a book the feed marked
    # invalid (a sequence gap, until the next snapshot) or that has not been
    # updated for longer than the venue's max book age: its prices are not the market's.
    BOOK_NOT_READY = "BOOK_NOT_READY"
    INSUFFICIENT_BALANCE = "INSUFFICIENT_BALANCE"
    INVALID_AMOUNT = "INVALID_AMOUNT"
    # Risk controls (app/domain/risk.py): a client's pre-trade limits, ...
    MAX_ORDER_SIZE = "MAX_ORDER_SIZE"
    MAX_ORDER_NOTIONAL = "MAX_ORDER_NOTIONAL"
    MAX_OPEN_ORDERS = "MAX_OPEN_ORDERS"
    MARGIN_RATIO_CAP = "MARGIN_RATIO_CAP"
    RATE_LIMITED = "RATE_LIMITED"
    # ... impact-aware sizing and the liquidity filters of seed 000.
    IMPACT_TOO_HIGH = "IMPACT_TOO_HIGH"
    SPREAD_TOO_WIDE = "SPREAD_TOO_WIDE"
    DEPTH_TOO_THIN = "DEPTH_TOO_THIN"
    VOLUME_TOO_LOW = "VOLUME_TOO_LOW"
    BREAKER_NOT_TRIPPED = "BREAKER_NOT_TRIPPED"
    UNKNOWN_STRATEGY = "UNKNOWN_STRATEGY"
    # Venue profiles (app/domain/venue_profiles.py), named after the exchanges' rules:
    # a conditional order whose trigger is already reached (Binance -2021 "Order would
    # immediately trigger"); a limit price too far from the mark (Binance PERCENT_PRICE,
    # -4016 / -4024); a GTD expiry sooner than the venue allows (Binance: goodTillDate
    # at least 600 s ahead). PRICE_OUT_OF_BAND is also a client's fat-finger band.
    WOULD_IMMEDIATELY_TRIGGER = "WOULD_IMMEDIATELY_TRIGGER"
    PRICE_OUT_OF_BAND = "PRICE_OUT_OF_BAND"
    GTD_TOO_SOON = "GTD_TOO_SOON"
    # A strategy id already names another definition (kind, account or parameters).
    DUPLICATE_STRATEGY = "DUPLICATE_STRATEGY"
    # An arbitrage trade recorded out of its state machine (app/domain/arbitrage.py).
    INVALID_TRANSITION = "INVALID_TRANSITION"
    # Signals (app/domain/signals.py): a signal id already names another signal; a
    # signal that is not 1, 0 or -1 (or a strength outside (0, 1]).
    DUPLICATE_SIGNAL_ID = "DUPLICATE_SIGNAL_ID"
    INVALID_SIGNAL = "INVALID_SIGNAL"


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a command was refused."""

    code: RejectCode
    message: str
    details: dict[str, str] = field(default_factory=dict)


class DomainError(Exception):
    """A broken invariant inside the domain (a bug, not a user error)."""


class IllegalTransition(DomainError):
    """An order was asked to move to a state its transition table forbids."""


class CommandRefused(Exception):
    """A command the engine would not take at all (nothing was recorded).

    Order-level business rejections are different: the order is recorded as
    REJECTED with its reason, so callers and auditors can see it.
    """

    def __init__(self, code: RejectCode, message: str, **details: str):
        super().__init__(f"{code.value}: {message}")
        self.rejection = Rejection(code, message, dict(details))

    @property
    def code(self) -> RejectCode:
        return self.rejection.code
