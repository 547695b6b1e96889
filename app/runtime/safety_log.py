"""Grep-friendly ``SAFETY_*`` lines (seed 004 Fix Pack 2): one per limiter that
acted, after its events are durable.

* ``SAFETY_<BREAKER>`` when a breaker trips (``SAFETY_DRAWDOWN``, ...) and
  ``SAFETY_BREAKER_RESET`` when an operator clears one;
* ``SAFETY_MARGIN_BLOCK`` for an entry refused by the margin-ratio cap,
  ``SAFETY_RATE_LIMIT`` for a strategy's order over its rate (an API caller's is
  logged where it is refused: app/services/risk.py), ``SAFETY_SIZED_DOWN`` for an
  order impact-aware sizing shrank, and ``SAFETY_LIMIT`` for any other
  pre-trade limit of a client's profile.

Every line is ``TAG key=value ...`` on the ``perpdesk.safety`` logger.
"""

from __future__ import annotations

import logging
from collections import deque

from app.domain.events import OrderRejected
from app.domain.rejections import RejectCode
from app.domain.risk import BreakerReset, BreakerTripped, OrderSizedDown
from app.store.event_log import Recorded

log = logging.getLogger("perpdesk.safety")
R = RejectCode
_TAGS = {
    R.MARGIN_RATIO_CAP.value: "SAFETY_MARGIN_BLOCK",
    R.RATE_LIMITED.value: "SAFETY_RATE_LIMIT",
    **{code.value: "SAFETY_LIMIT" for code in (
        R.MAX_ORDER_SIZE, R.MAX_ORDER_NOTIONAL, R.MAX_OPEN_ORDERS, R.PRICE_OUT_OF_BAND,
        R.IMPACT_TOO_HIGH, R.SPREAD_TOO_WIDE, R.DEPTH_TOO_THIN, R.VOLUME_TOO_LOW)},
}
WATCHED = (BreakerTripped, BreakerReset, OrderSizedDown, OrderRejected)


def log_safety(records: list[Recorded]) -> None:
    """A post-commit handler (registered for ``WATCHED``)."""
    for record in records:
        e = record.event
        if type(e) is BreakerTripped:
            figures = " ".join(f"{k}={v}" for k, v in e.figures)
            log.warning("%s client=%s state=%s %s", e.breaker.tag, e.client, e.state.value,
                        figures)
        elif type(e) is BreakerReset:
            log.warning("SAFETY_BREAKER_RESET client=%s breaker=%s actor=%s reason=%r",
                        e.client, e.breaker.value, e.actor, e.reason)
        elif type(e) is OrderSizedDown:
            log.info("SAFETY_SIZED_DOWN client=%s order=%d symbol=%s qty=%s->%s "
                     "impact_bps=%s max_bps=%s", e.client, e.order_id, e.symbol,
                     e.requested_qty, e.qty, e.impact_bps, e.max_impact_bps)
        elif type(e) is OrderRejected:
            tag = _TAGS.get(e.code)
            if tag is not None:
                log.warning("%s client=%s order=%d code=%s %s", tag, record.client,
                            e.order_id, e.code, e.message)


class SizedDownFeed:
    """The newest orders impact-aware sizing shrank, for the risk page (seed 003's
    ``sized_down_events``); bounded, newest first."""

    def __init__(self, size: int = 200):
        self.events: deque[OrderSizedDown] = deque(maxlen=size)

    def on_records(self, records: list[Recorded]) -> None:
        for record in records:
            if type(record.event) is OrderSizedDown:
                self.events.appendleft(record.event)

    def recent(self, clients: list[str], limit: int = 20) -> list[OrderSizedDown]:
        return [e for e in self.events if e.client in clients][:limit]
