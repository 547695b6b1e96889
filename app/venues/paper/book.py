"""The paper venue's view of one symbol's order book.

Two sources, one interface:

* **L2** — snapshots and deltas maintain every level exactly.
* **L1** — only the best bid/offer is known (quotes); deeper levels are
  synthesized around it on demand (``depth`` levels, one tick apart, each a
  little thicker than the one before), so walking the book still costs more
  the further it goes. Synthesis is lazy: a quote only stores four numbers.

Liquidity that our own aggressive orders took is remembered per level and
stays taken until the feed updates that level (a delta for that price, a
snapshot, or in L1 mode the next quote), so two market orders in a row
cannot both eat the same displayed size.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from sortedcontainers import SortedDict

from app.domain.orders import Side

ZERO = Decimal(0)
Level = tuple[Decimal, Decimal]


def _neg(price: Decimal) -> Decimal:
    return -price


class Book:
    __slots__ = (
        "_ask_taken",
        "_asks",
        "_bid_taken",
        "_bids",
        "ask",
        "ask_size",
        "bid",
        "bid_size",
        "depth",
        "growth",
        "is_l2",
        "tick",
    )

    def __init__(self, tick: Decimal, depth: int = 20, growth: Decimal = Decimal("0.5")):
        self.tick = tick
        self.depth = depth
        self.growth = growth  # synthesized level k holds touch size × (1 + growth × k)
        self.is_l2 = False
        self.bid: Decimal | None = None
        self.ask: Decimal | None = None
        self.bid_size = ZERO
        self.ask_size = ZERO
        self._bids: SortedDict = SortedDict(_neg)  # best (highest) first
        self._asks: SortedDict = SortedDict()  # best (lowest) first
        self._bid_taken: dict[Decimal, Decimal] = {}
        self._ask_taken: dict[Decimal, Decimal] = {}

    # ---- feed updates -------------------------------------------------

    def set_quote(self, bid: Decimal, bid_size: Decimal, ask: Decimal, ask_size: Decimal) -> None:
        """L1 update. Ignored for the book once L2 data has been seen (L2 is richer)."""
        if self.is_l2:
            return
        self.bid, self.bid_size, self.ask, self.ask_size = bid, bid_size, ask, ask_size
        if self._bid_taken:
            self._bid_taken.clear()
        if self._ask_taken:
            self._ask_taken.clear()

    def apply_snapshot(self, bids: tuple[Level, ...], asks: tuple[Level, ...]) -> None:
        self.is_l2 = True
        self._bids.clear()
        self._asks.clear()
        self._bid_taken.clear()
        self._ask_taken.clear()
        for price, size in bids:
            if size > 0:
                self._bids[price] = size
        for price, size in asks:
            if size > 0:
                self._asks[price] = size
        self._refresh_top()

    def apply_delta(self, bids: tuple[Level, ...], asks: tuple[Level, ...]) -> None:
        if not self.is_l2:
            return  # a delta without a snapshot cannot be placed; wait for one
        for side_levels, levels, taken in ((bids, self._bids, self._bid_taken),
                                           (asks, self._asks, self._ask_taken)):
            for price, size in side_levels:
                taken.pop(price, None)
                if size > 0:
                    levels[price] = size
                else:
                    levels.pop(price, None)
        self._refresh_top()

    def _refresh_top(self) -> None:
        if self._bids:
            self.bid, self.bid_size = self._bids.peekitem(0)
        else:
            self.bid, self.bid_size = None, ZERO
        if self._asks:
            self.ask, self.ask_size = self._asks.peekitem(0)
        else:
            self.ask, self.ask_size = None, ZERO

    # ---- reading ------------------------------------------------------

    @property
    def has_liquidity(self) -> bool:
        return self.bid is not None or self.ask is not None

    @property
    def mid(self) -> Decimal | None:
        if self.bid is None or self.ask is None:
            return None
        return (self.bid + self.ask) / 2

    @property
    def crossed(self) -> bool:
        return self.bid is not None and self.ask is not None and self.bid >= self.ask

    def levels(self, book_side: Side) -> Iterator[Level]:
        """Levels of one side, best first, as displayed (before our consumption)."""
        if self.is_l2:
            yield from (self._bids if book_side is Side.BUY else self._asks).items()
            return
        best = self.bid if book_side is Side.BUY else self.ask
        size = self.bid_size if book_side is Side.BUY else self.ask_size
        if best is None or size <= 0:
            return
        step = -self.tick if book_side is Side.BUY else self.tick
        for k in range(self.depth):
            price = best + step * k
            if price <= 0:
                return
            yield price, size * (1 + self.growth * k)

    def size_at(self, book_side: Side, price: Decimal) -> Decimal:
        """Displayed size at ``price`` on one side (0 when no such level)."""
        if self.is_l2:
            return (self._bids if book_side is Side.BUY else self._asks).get(price, ZERO)
        if book_side is Side.BUY:
            best, size, gap = self.bid, self.bid_size, self.bid - price if self.bid else None
        else:
            best, size, gap = self.ask, self.ask_size, price - self.ask if self.ask else None
        if best is None or gap is None or gap < 0:
            return ZERO
        if not gap:
            return size
        k, off_grid = divmod(gap, self.tick)
        if off_grid or k >= self.depth:
            return ZERO
        return size * (1 + self.growth * k)

    def available(self, book_side: Side, price: Decimal, size: Decimal) -> Decimal:
        taken = (self._bid_taken if book_side is Side.BUY else self._ask_taken).get(price)
        return size - taken if taken else size

    # ---- taking liquidity ---------------------------------------------

    def plan_take(self, taker_side: Side, qty: Decimal, limit: Decimal | None) -> list[Level]:
        """The (price, qty) slices a taker of ``qty`` would get, without taking them.

        A buyer walks the asks upward, a seller the bids downward, stopping at
        ``limit`` (inclusive) if given.
        """
        book_side = taker_side.opposite
        slices: list[Level] = []
        left = qty
        for price, size in self.levels(book_side):
            if limit is not None and (price > limit if taker_side is Side.BUY else price < limit):
                break
            free = self.available(book_side, price, size)
            if free <= 0:
                continue
            take = free if free < left else left
            slices.append((price, take))
            left -= take
            if not left:
                break
        return slices

    def take(self, taker_side: Side, slices: list[Level]) -> None:
        taken = self._ask_taken if taker_side is Side.BUY else self._bid_taken
        for price, qty in slices:
            taken[price] = taken.get(price, ZERO) + qty

    def consume(self, book_side: Side, price: Decimal, qty: Decimal) -> None:
        """Mark ``qty`` at ``price`` on ``book_side`` as taken by a resting order of ours."""
        taken = self._bid_taken if book_side is Side.BUY else self._ask_taken
        taken[price] = taken.get(price, ZERO) + qty
