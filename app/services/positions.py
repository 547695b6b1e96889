"""Close one position with a reduce-only market order.

The close is an ordinary order placed through ``orders.place`` (the same checks,
events and rejections as any order): a market order on the opposite side for the
whole position, ``reduce_only`` with ``clip_to_position`` so that it can shrink
the position but never flip it, whatever filled in between.

Retrying is safe: a close whose answer was lost finds the position flat and
answers "already flat" with no order; a close racing another is clipped to what
is left. ``NO_POSITION`` (404) means the account never held the symbol. Under a
kill switch a close is an order like any other: allowed in reduce-only, refused
(``TRADING_HALTED``) when trading is disabled, where close-all is the tool.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from app.auth.audit import write_rows
from app.auth.principal import Principal
from app.domain.orders import Order, OrderSpec, OrderTags, OrderType, Side
from app.domain.trading_state import Scope
from app.runtime.system import TradingSystem
from app.services import orders
from app.services.errors import ServiceError
from app.services.queries import Reader
from app.services.scope import known_account
from app.store.tables import AuditRow

log = logging.getLogger(__name__)

# The strategy tag a close's order carries, so fills and the blotter say why.
CLOSE_TAG = "position-close"
_CLOSE_TAGS = OrderTags(strategy=CLOSE_TAG)


@dataclass(frozen=True, slots=True)
class PositionClosed:
    client: str
    venue: str
    symbol: str
    qty_before: Decimal
    qty: Decimal  # what is left (0 once flat)
    order: Order | None  # None: it was flat already, nothing was placed

    @property
    def flat(self) -> bool:
        return not self.qty


async def close_position(system: TradingSystem, principal: Principal, client: str,
                         venue: str, symbol: str, reason: str | None = None
                         ) -> PositionClosed:
    """Flatten one position; raises ``ServiceError`` (403 scope, 404 unknown or
    ``NO_POSITION``, 400 with the reason code if the close order was rejected)."""
    known_account(system, principal, client, venue)
    reader = Reader(system, principal)
    before = reader.position_qty(client, venue, symbol)
    if before is None:
        raise ServiceError(404, "NO_POSITION",
                           f"client {client} holds no {symbol} position on {venue}")
    if not before:
        return PositionClosed(client, venue, symbol, before, before, None)
    spec = OrderSpec(client=client, venue=venue, symbol=symbol,
                     side=Side.SELL if before > 0 else Side.BUY, type=OrderType.MARKET,
                     qty=abs(before), reduce_only=True, tags=_CLOSE_TAGS)
    placed = await orders.place(system, principal, spec, clip_to_position=True)
    after = reader.position_qty(client, venue, symbol) or Decimal(0)
    if placed.rejected:
        if not after and placed.order.reject_code in ("REDUCE_ONLY_WOULD_INCREASE",
                                                      "TRADING_REDUCE_ONLY"):
            # Another close (or a fill) got there first: the position is flat, which
            # is what was asked.
            return PositionClosed(client, venue, symbol, before, after, None)
        raise orders.rejection_error(placed.order)
    closed = PositionClosed(client, venue, symbol, before, after, placed.order)
    await _audit(system, principal, closed, reason)
    return closed


def qty_text(qty: Decimal) -> str:
    """A signed qty as the positions read writes it, flat as "0" (not "0.000")."""
    return format(qty, "f") if qty else "0"


async def _audit(system: TradingSystem, principal: Principal, closed: PositionClosed,
                 reason: str | None) -> None:
    """Who closed what and why. Written after the order's commit (the order and its
    actor are in the event log already); a failed write is logged, not raised: the
    close happened, and a retry would find the position flat anyway."""
    order = closed.order
    assert order is not None
    avg = order.avg_fill_price
    row = AuditRow(at=datetime.now(UTC), actor=principal.actor, action="position-close",
                   scope=Scope(closed.client, closed.venue).describe(), reason=reason or "",
                   previous=None,
                   details={"symbol": closed.symbol, "qty_before": qty_text(closed.qty_before),
                            "qty_after": qty_text(closed.qty), "order_id": order.order_id,
                            "status": order.status.value,
                            "filled_qty": format(order.filled_qty, "f"),
                            "avg_price": None if avg is None else _average(avg)})
    try:
        await asyncio.to_thread(write_rows, system.db, [row])
    except Exception:
        log.exception("position close of %s %s %s by %s: audit entry not written",
                      closed.client, closed.venue, closed.symbol, principal.actor)


def _average(avg: Decimal) -> str:
    """An average fill price as orders render it (10 places, no trailing zeros)."""
    return format(avg.quantize(Decimal("1e-10")).normalize(), "f")
