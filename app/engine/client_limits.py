"""A client's pre-trade limits (its ``RiskProfile``): checked after the order's
own shape and the kill switches, before margin, so each rejection names the
limit it hit. Orders the engine sends on its own (close-all, liquidation) are
not held to them: getting out must never be blocked by a limit on getting in.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from app.domain.orders import OrderSpec
from app.domain.rejections import RejectCode, Rejection
from app.domain.risk import RiskProfile

R = RejectCode
HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class ClientUsage:
    """What the limits compare against, gathered by the engine."""

    open_orders: int  # the client's open orders, all venues
    mark: Decimal | None
    leverage: Decimal
    margin_used: Decimal  # the account's, including what its open orders reserve
    equity: Decimal


def check_client_limits(spec: OrderSpec, qty: Decimal, price: Decimal, increases: bool,
                        profile: RiskProfile, usage: ClientUsage) -> Rejection | None:
    """The first limit ``spec`` (valued at ``price``, ``qty`` after clipping) breaks."""
    notional = qty * price
    symbol = profile.for_symbol(spec.symbol)
    for limit in (profile.max_order_qty, symbol.max_order_qty if symbol else None):
        if limit is not None and qty > limit:
            return Rejection(R.MAX_ORDER_SIZE,
                             f"qty {qty} is above the order size limit {limit}")
    for limit in (profile.max_order_notional, symbol.max_order_notional if symbol else None):
        if limit is not None and notional > limit:
            return Rejection(R.MAX_ORDER_NOTIONAL,
                             f"order notional {notional:.2f} is above the limit {limit}")
    band = profile.price_band_pct
    # The fat-finger band is for limit prices (as Binance's PERCENT_PRICE filter):
    # a protective stop's trigger lies far from the market by design.
    if band is not None and usage.mark and spec.price is not None:
        off = abs(spec.price - usage.mark) / usage.mark * HUNDRED
        if off > band:
            return Rejection(R.PRICE_OUT_OF_BAND,
                             f"price {spec.price} is {off:.2f}% from the mark {usage.mark}; "
                             f"the band is {band}%")
    if profile.max_open_orders is not None and usage.open_orders >= profile.max_open_orders:
        return Rejection(R.MAX_OPEN_ORDERS,
                         f"{usage.open_orders} orders are open; the limit is "
                         f"{profile.max_open_orders}")
    if not increases:
        return None
    if profile.max_leverage is not None and usage.leverage > profile.max_leverage:
        return Rejection(R.LEVERAGE_TOO_HIGH,
                         f"the account's {spec.symbol} leverage {usage.leverage}x is above the "
                         f"client's limit {profile.max_leverage}x; lower it first")
    cap = profile.margin_ratio_cap
    if cap is not None:
        after = usage.margin_used + notional / usage.leverage
        if usage.equity <= 0 or after / usage.equity > cap:
            ratio = after / usage.equity * HUNDRED if usage.equity > 0 else None
            figure = f"{ratio:.1f}%" if ratio is not None else "all"
            return Rejection(R.MARGIN_RATIO_CAP,
                             f"the entry would put {figure} of equity in margin; entries are "
                             f"blocked above {cap * HUNDRED:.0f}%")
    return None
