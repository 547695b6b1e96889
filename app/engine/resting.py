"""Open orders grouped by account, symbol and side, with running totals.

Every order decision needs two figures about the account's open orders: the
quantity already working on the order's symbol and side (position limits
count it as if filled) and the margin all of them reserve (it comes off the
available balance). Scanning every open order for each new one made an
order's cost grow with the book: a client with a few thousand resting
orders paid for all of them on every placement. Each group keeps its sums
up to date as orders open, fill and close, so both figures cost one step
per (symbol, side) the account trades.

Sums are ``Decimal`` arithmetic, exact while a total needs fewer than the
context's 28 significant digits (far beyond any real quantity x price); a
group that empties resets to zero, so nothing could creep past its lifetime.
The property test holds them to a scan of the open orders.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from app.domain.orders import Order, Side
from app.domain.positions import Position
from app.engine.risk import reducible_qty

ZERO = Decimal(0)


class RestingOrders:
    """One account's open orders on one symbol and side."""

    __slots__ = ("orders", "priced_notional", "qty", "side", "unpriced_qty")

    def __init__(self, side: Side) -> None:
        self.side = side
        self.orders: dict[int, Order] = {}
        self.qty = ZERO  # remaining quantity of all of them
        self.priced_notional = ZERO  # remaining x limit price, over orders with a price
        self.unpriced_qty = ZERO  # remaining quantity of orders without one (stop-market)

    def add(self, order: Order) -> None:
        self.orders[order.order_id] = order
        self._count(order, order.remaining_qty)

    def filled(self, order: Order, qty: Decimal) -> None:
        """``order`` (still listed) had ``qty`` filled."""
        if order.order_id in self.orders:
            self._count(order, -qty)

    def remove(self, order: Order) -> None:
        if self.orders.pop(order.order_id, None) is None:
            return
        if self.orders:
            self._count(order, -order.remaining_qty)
        else:
            self.qty = self.priced_notional = self.unpriced_qty = ZERO

    def _count(self, order: Order, qty: Decimal) -> None:
        self.qty += qty
        price = order.spec.price
        if price is None:
            self.unpriced_qty += qty
        else:
            self.priced_notional += qty * price

    def margin(self, position: Position | None, reference: Decimal | None,
               leverage: Decimal, exclude: int | None = None) -> Decimal:
        """Margin these orders reserve: what each would add to the position if it
        filled, valued at its limit price (else the reference price), over leverage."""
        reducible = ZERO if position is None else reducible_qty(position, self.side)
        if not reducible and exclude not in self.orders:
            notional = self.priced_notional
            if reference is not None:
                notional += self.unpriced_qty * reference
            return notional / leverage
        # A position on the other side: each order's part that only reduces it
        # reserves nothing. Rare enough to count order by order.
        notional = ZERO
        for order in self.orders.values():
            if order.order_id == exclude:
                continue
            adding = order.remaining_qty - reducible
            price = order.spec.price or reference
            if adding > 0 and price is not None:
                notional += adding * price
        return notional / leverage


class RestingBook:
    """All accounts' groups: (client, venue) -> (symbol, side) -> RestingOrders."""

    def __init__(self) -> None:
        self.accounts: dict[tuple[str, str], dict[tuple[str, Side], RestingOrders]] = {}

    def group(self, client: str, venue: str, symbol: str, side: Side) -> RestingOrders | None:
        groups = self.accounts.get((client, venue))
        return None if groups is None else groups.get((symbol, side))

    def groups(self, client: str, venue: str) -> Iterator[tuple[tuple[str, Side],
                                                                 RestingOrders]]:
        yield from self.accounts.get((client, venue), {}).items()

    def add(self, order: Order) -> None:
        spec = order.spec
        groups = self.accounts.setdefault((spec.client, spec.venue), {})
        group = groups.get((spec.symbol, spec.side))
        if group is None:
            group = groups[(spec.symbol, spec.side)] = RestingOrders(spec.side)
        group.add(order)

    def filled(self, order: Order, qty: Decimal) -> None:
        spec = order.spec
        group = self.group(spec.client, spec.venue, spec.symbol, spec.side)
        if group is not None:
            group.filled(order, qty)

    def remove(self, order: Order) -> None:
        spec = order.spec
        group = self.group(spec.client, spec.venue, spec.symbol, spec.side)
        if group is not None:
            group.remove(order)
