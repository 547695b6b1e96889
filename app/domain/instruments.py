"""Instruments, venue capabilities, and the rounding that keeps orders on the grid."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from enum import StrEnum


class InstrumentKind(StrEnum):
    SPOT = "spot"
    PERP = "perp"


class Rounding(StrEnum):
    DOWN = "down"  # toward -infinity
    UP = "up"  # toward +infinity
    NEAREST = "nearest"


_MODES = {Rounding.DOWN: ROUND_FLOOR, Rounding.UP: ROUND_CEILING, Rounding.NEAREST: ROUND_HALF_EVEN}


def round_to_increment(value: Decimal, increment: Decimal, mode: Rounding) -> Decimal:
    """Round ``value`` to a whole multiple of ``increment``.

    The result is always an exact multiple, expressed with the increment's
    exponent (so ``0.1`` on a ``0.01`` grid is ``0.10``), which keeps later
    on-grid checks exact.
    """
    if increment <= 0:
        raise ValueError("increment must be positive")
    units = (value / increment).to_integral_value(rounding=_MODES[mode])
    return (units * increment).quantize(increment)


def is_multiple(value: Decimal, increment: Decimal) -> bool:
    return value % increment == 0


@dataclass(frozen=True, slots=True)
class Instrument:
    """A tradable contract on one venue."""

    symbol: str
    venue: str
    kind: InstrumentKind
    base: str
    quote: str
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    min_notional: Decimal
    max_leverage: Decimal = Decimal(20)
    # Binance USD-M VIP0 defaults: 0.02 % maker, 0.05 % taker.
    maker_fee_rate: Decimal = Decimal("0.0002")
    taker_fee_rate: Decimal = Decimal("0.0005")
    funding_interval: timedelta = timedelta(hours=8)

    @property
    def is_perp(self) -> bool:
        return self.kind is InstrumentKind.PERP

    def round_price(self, price: Decimal, mode: Rounding = Rounding.NEAREST) -> Decimal:
        return round_to_increment(price, self.tick_size, mode)

    def round_qty(self, qty: Decimal, mode: Rounding = Rounding.DOWN) -> Decimal:
        """Quantities round down by default: never trade more than asked."""
        return round_to_increment(qty, self.step_size, mode)

    def price_on_tick(self, price: Decimal) -> bool:
        return is_multiple(price, self.tick_size)

    def qty_on_step(self, qty: Decimal) -> bool:
        return is_multiple(qty, self.step_size)


@dataclass(frozen=True, slots=True)
class VenueCapabilities:
    """What a venue accepts. Orders using anything else are rejected
    ``UNSUPPORTED_BY_VENUE`` before they reach it (seeds 000 and 003 gate
    FOK and GTD on some venues)."""

    order_types: frozenset[str] = field(
        default_factory=lambda: frozenset({"market", "limit", "stop", "stop_limit"})
    )
    time_in_force: frozenset[str] = field(
        default_factory=lambda: frozenset({"gtc", "ioc", "fok", "gtd"})
    )
    post_only: bool = True
    reduce_only: bool = True
    trigger_sources: frozenset[str] = field(default_factory=lambda: frozenset({"last", "mark"}))
