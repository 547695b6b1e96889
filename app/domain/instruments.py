"""Instruments, venue capabilities, and the rounding that keeps orders on the grid."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from enum import StrEnum

from app.domain.venue_profiles import GENERIC, VenueProfile


class InstrumentKind(StrEnum):
    SPOT = "spot"
    PERP = "perp"


class Rounding(StrEnum):
    DOWN = "down"  # toward -infinity
    UP = "up"  # toward +infinity
    NEAREST = "nearest"


_MODES = {Rounding.DOWN: ROUND_FLOOR, Rounding.UP: ROUND_CEILING, Rounding.NEAREST: ROUND_HALF_EVEN}


_TABLES: dict[Decimal, tuple[LeverageBracket, ...]] = {}


def _default_table(max_leverage: Decimal) -> tuple[LeverageBracket, ...]:
    table = _TABLES.get(max_leverage)
    if table is None:
        table = _TABLES[max_leverage] = default_brackets(max_leverage)
    return table


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
class LeverageBracket:
    """One notional tier of a perp's margin table, as Binance USD-M publishes them:
    positions up to ``notional_cap`` may use up to ``max_leverage`` and keep
    ``maintenance_rate`` × notional − ``maintenance_amount`` as maintenance margin
    (the amount makes the requirement continuous from one tier to the next)."""

    notional_cap: Decimal
    max_leverage: Decimal
    maintenance_rate: Decimal
    maintenance_amount: Decimal = Decimal(0)


def default_brackets(max_leverage: Decimal) -> tuple[LeverageBracket, ...]:
    """Tiers shaped like Binance's for a contract whose first tier allows
    ``max_leverage``: maintenance is half the initial rate, and every step up in
    notional (×10 from 50,000) halves the leverage and doubles the rate."""
    brackets: list[LeverageBracket] = []
    cap, lev, rate, amount = Decimal(50_000), max_leverage, 1 / (2 * max_leverage), Decimal(0)
    previous_cap = Decimal(0)
    for _ in range(5):
        if brackets:  # keep maintenance continuous at the tier boundary
            amount += previous_cap * (rate - brackets[-1].maintenance_rate)
        brackets.append(LeverageBracket(cap, lev, rate, amount))
        previous_cap, cap = cap, cap * 10
        lev, rate = max(Decimal(1), (lev / 2).to_integral_value()), min(rate * 2, Decimal("0.5"))
    return tuple(brackets)


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
    # Notional tiers (ascending); empty: ``default_brackets(max_leverage)``.
    brackets: tuple[LeverageBracket, ...] = ()
    # Charged on the notional a liquidation closes (Binance's "clearance fee").
    liquidation_fee_rate: Decimal = Decimal("0.005")

    @property
    def is_perp(self) -> bool:
        return self.kind is InstrumentKind.PERP

    @property
    def margin_table(self) -> tuple[LeverageBracket, ...]:
        return self.brackets or _default_table(self.max_leverage)

    def bracket(self, notional: Decimal) -> LeverageBracket:
        """The tier a position of ``notional`` (absolute) falls in."""
        table = self.margin_table
        for tier in table:
            if notional <= tier.notional_cap:
                return tier
        return table[-1]

    def maintenance_margin(self, notional: Decimal) -> Decimal:
        tier = self.bracket(notional)
        return max(notional * tier.maintenance_rate - tier.maintenance_amount, Decimal(0))

    def max_notional_at(self, leverage: Decimal) -> Decimal:
        """The largest position notional that may use ``leverage`` (0: none may)."""
        best = Decimal(0)
        for tier in self.margin_table:
            if tier.max_leverage >= leverage:
                best = tier.notional_cap
        return best

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
        default_factory=lambda: frozenset({"market", "limit", "stop", "stop_limit",
                                           "take_profit", "take_profit_limit",
                                           "trailing_stop"})
    )
    time_in_force: frozenset[str] = field(
        default_factory=lambda: frozenset({"gtc", "ioc", "fok", "gtd"})
    )
    post_only: bool = True
    reduce_only: bool = True
    trigger_sources: frozenset[str] = field(default_factory=lambda: frozenset({"last", "mark"}))
    # The exchange's order-entry rules the venue follows (app/domain/venue_profiles.py).
    profile: VenueProfile = GENERIC
