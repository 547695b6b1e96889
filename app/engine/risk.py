"""Pre-trade checks: everything an order must pass before it reaches a venue.

The checks run in a fixed order, cheapest and most fundamental first, and
the first failure wins, so the same order always gets the same reason code.
They read state; they never change it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from app.domain.instruments import Instrument, VenueCapabilities
from app.domain.orders import OrderSpec, OrderType, Side, TimeInForce
from app.domain.positions import Position
from app.domain.rejections import RejectCode, Rejection
from app.domain.trading_state import TradingState
from app.engine.venue_rules import check_profile

ZERO = Decimal(0)
R = RejectCode


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """Per-symbol position limits (seed 003's table is the demo configuration)."""

    max_position_size: Decimal | None = None
    max_position_notional: Decimal | None = None


@dataclass(frozen=True, slots=True)
class OrderContext:
    """What the checks need to know about the world, gathered by the engine."""

    now: datetime
    instrument: Instrument
    capabilities: VenueCapabilities
    position: Position
    trading_state: TradingState
    reference_price: Decimal | None  # mark, else mid, else last
    leverage: Decimal
    available: Decimal  # equity - margin used - margin reserved by open orders
    # Remaining qty of the account's open orders on this symbol and side (excluding
    # any order being replaced): position limits count them as filled.
    resting_qty: Decimal
    limits: RiskLimits
    clip_to_position: bool = False
    bypass_halt: bool = False  # close-all's own reduce-only orders
    # The largest position notional the instrument's tiers allow at ``leverage``
    # (None: no tiers apply, e.g. spot).
    max_notional_at_leverage: Decimal | None = None
    # The account's margin in use (positions and what open orders reserve) and its
    # equity: the client's margin-ratio cap on entries compares them.
    margin_in_use: Decimal = ZERO
    equity: Decimal = ZERO
    # A margin window's initial-margin multiplier on this venue (1: none in force).
    margin_multiplier: Decimal = Decimal(1)
    # Last trade and mark, for the venue profile's trigger and price-band rules.
    last_price: Decimal | None = None
    mark_price: Decimal | None = None


# The engine's own bound on prices and quantities, whoever sends them (the API is
# stricter, app/api/inputs.py): past it, remainders and products leave the 28
# digits of Python's decimal context and rejection messages grow with the input.
MAX_WHOLE_DIGITS = 15
MAX_FRACTION_DIGITS = 18


def _in_range(value: Decimal) -> bool:
    if not value.is_finite():
        return False
    exponent = value.as_tuple().exponent
    return value.adjusted() < MAX_WHOLE_DIGITS and isinstance(exponent, int) \
        and exponent >= -MAX_FRACTION_DIGITS


def _reject(code: RejectCode, message: str) -> tuple[Rejection, Decimal]:
    return Rejection(code, message), ZERO


def check_order(spec: OrderSpec, ctx: OrderContext) -> tuple[Rejection | None, Decimal]:
    """Return ``(rejection, qty)``: the first failed check, or None and the qty to send
    (smaller than asked only when clipping to the position was requested)."""
    shape = _check_shape(spec, ctx)
    if shape is None and ctx.capabilities.profile.adds_entry_checks:
        shape = check_profile(spec, ctx)
    if shape is not None:
        return shape, ZERO
    inst = ctx.instrument
    qty = spec.qty

    if ctx.trading_state is TradingState.HALTED and not (ctx.bypass_halt and spec.reduce_only):
        return _reject(R.TRADING_HALTED, "trading is halted; only cancels are accepted")
    if spec.close_position:
        return None, qty  # no qty until it triggers, then only what closes the position

    position = ctx.position
    increases = position.would_increase(spec.side, qty)
    restricted = ctx.trading_state is not TradingState.ACTIVE
    if increases and (restricted or spec.reduce_only):
        reducible = reducible_qty(position, spec.side)
        if reducible and ctx.clip_to_position:
            qty, increases = reducible, False
        elif restricted:
            return _reject(R.TRADING_REDUCE_ONLY, _reduce_message(
                position, spec.side, qty, "the account is in reduce-only mode"))
        else:
            return _reject(R.REDUCE_ONLY_WOULD_INCREASE, _reduce_message(
                position, spec.side, qty, "the order is reduce-only"))

    # Value the order at its limit, a stop- or take-profit-market at its trigger (as
    # venues do), a trailing stop at its activation price, a market order at the
    # reference price.
    if spec.type.has_limit_price:
        price = spec.price
    else:
        price = spec.trigger_price or spec.activation_price or ctx.reference_price
    if price is None:
        return _reject(R.NO_MARKET_DATA,
                       f"no market data for {spec.symbol} yet; cannot value a market order")
    notional = qty * price
    profile = ctx.capabilities.profile
    if (increases or (profile.min_notional_when_closing and not spec.reduce_only)) \
            and notional < inst.min_notional:
        # Closing orders are exempt (on Binance only reduce-only ones): a small position
        # must stay closable.
        return _reject(R.MIN_NOTIONAL,
                       f"order notional {notional:f} is below the minimum {inst.min_notional}")

    if not inst.is_perp and spec.side is Side.SELL and qty > max(position.qty, ZERO):
        return _reject(R.INSUFFICIENT_BALANCE,
                       f"cannot sell {qty} {inst.base}: only {max(position.qty, ZERO)} held")

    if increases:
        limit_rejection = _check_limits(spec.side, qty, price, ctx)
        if limit_rejection is not None:
            return limit_rejection, ZERO
        cap = ctx.max_notional_at_leverage
        if cap is not None:
            after = position.qty + (qty if spec.side is Side.BUY else -qty)
            exposure = (abs(after) + ctx.resting_qty) * price
            if exposure > cap:
                return _reject(R.MAX_POSITION_AT_LEVERAGE,
                               f"a position of {exposure:.2f} is above the {cap} allowed at "
                               f"{ctx.leverage}x; lower the leverage or the size")
        added = qty - reducible_qty(position, spec.side)
        needed = added * price / ctx.leverage * ctx.margin_multiplier \
            + qty * price * inst.taker_fee_rate
        if needed > ctx.available and (profile.margin_check_untriggered
                                       or not spec.type.is_conditional):
            return _reject(R.INSUFFICIENT_MARGIN,
                           f"needs {needed:.2f} margin at {ctx.leverage}x leverage, "
                           f"{max(ctx.available, ZERO):.2f} available")
    return None, qty


def _check_shape(spec: OrderSpec, ctx: OrderContext) -> Rejection | None:
    inst, caps = ctx.instrument, ctx.capabilities
    if spec.type.value not in caps.order_types:
        return Rejection(R.UNSUPPORTED_BY_VENUE,
                         f"{spec.venue} does not support {spec.type.value} orders")
    if spec.time_in_force.value not in caps.time_in_force:
        return Rejection(R.UNSUPPORTED_BY_VENUE,
                         f"{spec.venue} does not support time in force "
                         f"{spec.time_in_force.value.upper()}")
    if spec.post_only and not caps.post_only:
        return Rejection(R.UNSUPPORTED_BY_VENUE, f"{spec.venue} does not support post-only")
    if spec.reduce_only and not caps.reduce_only:
        return Rejection(R.UNSUPPORTED_BY_VENUE, f"{spec.venue} does not support reduce-only")
    if spec.type.is_conditional and spec.trigger_source.value not in caps.trigger_sources:
        return Rejection(R.UNSUPPORTED_BY_VENUE,
                         f"{spec.venue} cannot trigger on {spec.trigger_source.value} price")

    for name, value in (("qty", spec.qty), ("price", spec.price),
                        ("trigger_price", spec.trigger_price),
                        ("callback_rate", spec.callback_rate),
                        ("activation_price", spec.activation_price)):
        if value is not None and not _in_range(value):
            # Checked before anything quotes the value or divides by the tick size.
            return Rejection(R.INVALID_ORDER, f"{name} is out of range (at most "
                             f"{MAX_WHOLE_DIGITS} digits before the point and "
                             f"{MAX_FRACTION_DIGITS} after it)")
    conditional = _check_conditional(spec)
    if conditional is not None:
        return conditional
    if spec.qty <= 0 and not spec.close_position:
        return Rejection(R.INVALID_ORDER, "qty must be positive")
    if spec.type.has_limit_price:
        if spec.price is None or spec.price <= 0:
            return Rejection(R.INVALID_ORDER, f"a {spec.type.value} order needs a positive price")
    elif spec.price is not None:
        return Rejection(R.INVALID_ORDER, f"a {spec.type.value} order takes no price")
    if spec.post_only and (not spec.type.has_limit_price
                           or spec.time_in_force in (TimeInForce.IOC, TimeInForce.FOK)):
        return Rejection(R.INVALID_ORDER,
                         "post-only needs a resting limit order (not market, IOC or FOK)")
    if spec.type.executes_at_market and spec.time_in_force is TimeInForce.GTD:
        return Rejection(R.INVALID_ORDER, "market orders cannot be GTD")
    if spec.time_in_force is TimeInForce.GTD:
        if spec.expire_at is None:
            return Rejection(R.INVALID_ORDER, "a GTD order needs expire_at")
        if spec.expire_at <= ctx.now:
            return Rejection(R.GTD_IN_PAST,
                             f"expire_at {spec.expire_at.isoformat()} is not in the future")
    elif spec.expire_at is not None:
        return Rejection(R.INVALID_ORDER, "expire_at is only for GTD orders")

    for name, value in (("price", spec.price), ("trigger_price", spec.trigger_price),
                        ("activation_price", spec.activation_price)):
        if value is not None and not inst.price_on_tick(value):
            return Rejection(R.PRICE_NOT_ON_TICK,
                             f"{name} {value} is not a multiple of the tick size {inst.tick_size}")
    if spec.close_position:
        return None  # no qty to check
    if not inst.qty_on_step(spec.qty):
        return Rejection(R.QTY_NOT_ON_STEP,
                         f"qty {spec.qty} is not a multiple of the step size {inst.step_size}")
    if spec.qty < inst.min_qty:
        return Rejection(R.MIN_QTY, f"qty {spec.qty} is below the minimum {inst.min_qty}")
    return None


# Binance's callbackRate range: "min 0.1, max 10 where 1 for 1%".
MIN_CALLBACK_RATE, MAX_CALLBACK_RATE = Decimal("0.1"), Decimal(10)


def _check_conditional(spec: OrderSpec) -> Rejection | None:
    """Triggers, trailing and close-position fit the order type."""
    kind = spec.type
    if kind is OrderType.TRAILING_STOP:
        if spec.trigger_price is not None:
            return Rejection(R.INVALID_ORDER, "a trailing stop takes no trigger_price: it "
                             "trails the price (activation_price arms it)")
        rate = spec.callback_rate
        if rate is None or not MIN_CALLBACK_RATE <= rate <= MAX_CALLBACK_RATE:
            return Rejection(R.INVALID_ORDER, f"a trailing stop needs a callback_rate from "
                             f"{MIN_CALLBACK_RATE} to {MAX_CALLBACK_RATE} (percent)")
        if spec.activation_price is not None and spec.activation_price <= 0:
            return Rejection(R.INVALID_ORDER, "activation_price must be positive")
    else:
        if spec.callback_rate is not None or spec.activation_price is not None:
            return Rejection(R.INVALID_ORDER,
                             "callback_rate and activation_price are for trailing stops")
        if kind.is_conditional:
            if spec.trigger_price is None or spec.trigger_price <= 0:
                return Rejection(R.INVALID_ORDER,
                                 f"a {kind.value} order needs a positive trigger_price")
        elif spec.trigger_price is not None:
            return Rejection(R.INVALID_ORDER, f"a {kind.value} order takes no trigger_price")
    if spec.close_position:
        # Binance closePosition: "used with STOP_MARKET or TAKE_PROFIT_MARKET", "cannot
        # be sent with quantity", and is reduce-only by nature ("cannot be used with
        # reduceOnly").
        if kind not in (OrderType.STOP, OrderType.TAKE_PROFIT):
            return Rejection(R.INVALID_ORDER,
                             "close_position is for stop and take_profit (market) orders")
        if spec.qty:
            return Rejection(R.INVALID_ORDER,
                             "a close-position order takes no qty: it closes the position")
        if spec.reduce_only:
            return Rejection(R.INVALID_ORDER,
                             "a close-position order is reduce-only already; "
                             "leave reduce_only unset")
    return None


def _check_limits(side: Side, qty: Decimal, price: Decimal, ctx: OrderContext
                  ) -> Rejection | None:
    limits = ctx.limits
    if limits.max_position_size is None and limits.max_position_notional is None:
        return None
    # Worst case: every open order on this side fills too.
    signed = ctx.position.qty + (qty + ctx.resting_qty) * side.sign
    size = abs(signed)
    if limits.max_position_size is not None and size > limits.max_position_size:
        return Rejection(R.MAX_POSITION_SIZE,
                         f"position would reach {size}, above the limit "
                         f"{limits.max_position_size} {ctx.instrument.base}")
    if limits.max_position_notional is not None and size * price > limits.max_position_notional:
        return Rejection(R.MAX_POSITION_NOTIONAL,
                         f"position notional would reach {size * price:.2f}, above the limit "
                         f"{limits.max_position_notional}")
    return None


def reducible_qty(position: Position, side: Side) -> Decimal:
    """How much of ``side`` would only shrink the position."""
    if (side is Side.SELL and position.qty > 0) or (side is Side.BUY and position.qty < 0):
        return abs(position.qty)
    return ZERO


def _reduce_message(position: Position, side: Side, qty: Decimal, why: str) -> str:
    if position.is_flat:
        return f"{why}, and there is no position to reduce"
    if reducible_qty(position, side):
        return f"{why}: {side.value} {qty} would flip the {position.direction} {abs(position.qty)}"
    return f"{why}: {side.value} would increase the {position.direction} position"
