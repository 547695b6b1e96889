"""Pre-trade checks that a venue profile adds (app/domain/venue_profiles.py).

They run right after the shape checks of ``risk.check_order``, so an order a
real exchange would refuse (a GTD too soon, a stop that would trigger at once, a
limit far from the mark) is refused here with its own code before margin and
limits are looked at. Read-only, like every check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.domain.orders import OrderSpec, OrderType, TimeInForce, TriggerSource, triggers_on_rise
from app.domain.rejections import RejectCode, Rejection

if TYPE_CHECKING:
    from app.engine.risk import OrderContext

R = RejectCode


def check_profile(spec: OrderSpec, ctx: OrderContext) -> Rejection | None:
    profile = ctx.capabilities.profile
    lead = profile.gtd_min_lead
    if (lead and spec.time_in_force is TimeInForce.GTD and spec.expire_at is not None
            and spec.expire_at < ctx.now + lead):
        return Rejection(R.GTD_TOO_SOON,
                         f"{spec.venue} needs expire_at at least {int(lead.total_seconds())} s "
                         f"ahead ({profile.name})")
    if (profile.reject_immediate_trigger and spec.type.is_conditional
            and spec.type is not OrderType.TRAILING_STOP and spec.trigger_price is not None):
        current = ctx.mark_price if spec.trigger_source is TriggerSource.MARK else ctx.last_price
        if current is not None:
            rises = triggers_on_rise(spec.type, spec.side)
            if (current >= spec.trigger_price) if rises else (current <= spec.trigger_price):
                return Rejection(R.WOULD_IMMEDIATELY_TRIGGER,
                                 f"the {spec.trigger_source.value} price {current} has already "
                                 f"reached the trigger {spec.trigger_price}")
    band = profile.price_band
    if band is not None and spec.price is not None and ctx.mark_price is not None:
        mark = ctx.mark_price
        high, low = mark * (1 + band), mark * (1 - band)
        if spec.price > high or spec.price < low:
            return Rejection(R.PRICE_OUT_OF_BAND,
                             f"price {spec.price} is more than {band * 100:f}% from the mark "
                             f"{mark} (allowed {low:f} to {high:f})")
    return None
