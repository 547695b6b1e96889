"""Trailing stops: arming at the activation price, then trailing the best price.

Binance TRAILING_STOP_MARKET (New Order, USD-M futures): a SELL triggers when "the
highest price after order placed >= activationPrice, and the latest price <= the
highest price * (1 - callbackRate)"; a BUY when the lowest price <= activationPrice
and the latest price >= the lowest price * (1 + callbackRate). Without an
activation price it is armed at once, at the price when it arrives. The callback
rate is in percent (1 = 1 %).
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from app.domain.orders import Side

if TYPE_CHECKING:
    from app.venues.paper.venue import Working

HUNDRED = Decimal(100)


def arm_and_trail(work: Working, price: Decimal) -> bool:
    """Show the trailing stop ``work`` the trigger-source ``price``; True when it
    triggers. Updates its armed state and best price."""
    selling = work.side is Side.SELL
    if not work.armed:
        activation = work.activation_price
        if activation is not None and (price < activation if selling else price > activation):
            return False
        work.armed = True
        work.extreme = price
        return False
    extreme = work.extreme if work.extreme is not None else price
    rate = (work.callback_rate or Decimal(0)) / HUNDRED
    if selling:
        extreme = max(extreme, price)
        work.extreme = extreme
        return price <= extreme * (1 - rate)
    extreme = min(extreme, price)
    work.extreme = extreme
    return price >= extreme * (1 + rate)
