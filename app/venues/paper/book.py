"""The paper venue's view of one symbol's order book.

Two sources, one interface:

* **L2** — snapshots and deltas maintain every level exactly.
* **L1** — only the best bid/offer is known (quotes); deeper levels are
  synthesized around it on demand (``depth`` levels, one tick apart, each a
  little thicker than the one before), so walking the book still costs more
  the further it goes. Synthesis is lazy: a quote only stores four numbers.

Liquidity that our own orders took is remembered per level, with the size the
level displayed when we took from it. The feed knows nothing of our simulated
trades, so its next snapshot, delta or quote restates the level as if we had
never been there; taking that size again (a second market order, or a resting
order of ours filling as maker against the restated level) would trade the same
liquidity twice. So what we took comes back only as the market itself moves on:

* every unit by which the level's displayed size falls below what it showed when
  we took from it (real trades and cancellations that would have hit the same
  orders) returns one unit of what we took;
* a level that leaves the book (absent from a snapshot, deleted by a delta, or
  beyond the touch of an L1 quote) returns all of it;
* a level that grows keeps what we took withheld: new orders join behind, and
  its next shrink eats the front of the queue, where what we took was.

Whether the book can be trusted is tracked too. A feed that sees a sequence gap
says so (``BookInvalidated``): levels changed that we never heard about, so the
book is **invalid** — deltas are ignored (they would patch a book that is already
wrong) until the next snapshot, or, for a book kept from L1 quotes, the next
quote. And a book that has not been updated for a while is **stale**: the last
update's time is kept (``updated_at``) so the venue can refuse to walk it with a
market order (``not_ready``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
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
        "invalid_reason",
        "is_l2",
        "lot",
        "tick",
        "updated_at",
    )

    def __init__(self, tick: Decimal, depth: int = 20, growth: Decimal = Decimal("0.5"),
                 lot: Decimal | None = None):
        self.tick = tick
        # Synthesized levels hold whole lots (the instrument's step), as real books do,
        # so queues and fills against them stay on the step.
        self.lot = lot
        self.depth = depth
        self.growth = growth  # synthesized level k holds touch size × (1 + growth × k)
        self.is_l2 = False
        self.bid: Decimal | None = None
        self.ask: Decimal | None = None
        self.bid_size = ZERO
        self.ask_size = ZERO
        self._bids: SortedDict = SortedDict(_neg)  # best (highest) first
        self._asks: SortedDict = SortedDict()  # best (lowest) first
        # price -> [size the level displayed when we took from it, how much we took]
        self._bid_taken: dict[Decimal, list[Decimal]] = {}
        self._ask_taken: dict[Decimal, list[Decimal]] = {}
        # Why the feed said this book cannot be trusted; None while it is valid.
        self.invalid_reason: str | None = None
        # Exchange time of the last update that changed the book (None: never fed).
        self.updated_at: datetime | None = None

    # ---- feed updates -------------------------------------------------

    def set_quote(self, bid: Decimal, bid_size: Decimal, ask: Decimal, ask_size: Decimal,
                  at: datetime | None = None) -> None:
        """L1 update (``at``: its exchange time). Ignored for the book once L2 data has
        been seen (L2 is richer); on an L1 book it is the whole state, so it makes an
        invalidated book valid again."""
        if self.is_l2:
            return
        self.invalid_reason = None
        if at is not None:
            self.updated_at = at
        self.bid, self.bid_size, self.ask, self.ask_size = bid, bid_size, ask, ask_size
        if self._bid_taken:
            self._restate(Side.BUY, self._bid_taken)
        if self._ask_taken:
            self._restate(Side.SELL, self._ask_taken)

    def apply_snapshot(self, bids: tuple[Level, ...], asks: tuple[Level, ...],
                       at: datetime | None = None) -> None:
        """Replace the whole L2 book (``at``: the snapshot's exchange time); a snapshot
        makes an invalidated book valid again."""
        self.is_l2 = True
        self.invalid_reason = None
        if at is not None:
            self.updated_at = at
        self._bids.clear()
        self._asks.clear()
        for price, size in bids:
            if size > 0:
                self._bids[price] = size
        for price, size in asks:
            if size > 0:
                self._asks[price] = size
        self._refresh_top()
        if self._bid_taken:
            self._restate(Side.BUY, self._bid_taken)
        if self._ask_taken:
            self._restate(Side.SELL, self._ask_taken)

    def apply_delta(self, bids: tuple[Level, ...], asks: tuple[Level, ...],
                    at: datetime | None = None) -> None:
        """Change some L2 levels (absolute sizes, 0 deletes; ``at``: exchange time)."""
        if not self.is_l2 or self.invalid_reason is not None:
            # A delta without a snapshot cannot be placed, and one on an invalidated
            # book would patch a book that is already wrong: wait for a snapshot.
            return
        if at is not None:
            self.updated_at = at
        for side_levels, levels in ((bids, self._bids), (asks, self._asks)):
            for price, size in side_levels:
                if size > 0:
                    levels[price] = size
                else:
                    levels.pop(price, None)
        self._refresh_top()
        if self._bid_taken and bids:
            self._restate(Side.BUY, self._bid_taken, {p for p, _ in bids})
        if self._ask_taken and asks:
            self._restate(Side.SELL, self._ask_taken, {p for p, _ in asks})

    def invalidate(self, reason: str) -> None:
        """The feed lost updates (a sequence gap): the book is wrong until the next
        snapshot (or, for an L1 book, quote). Its levels are kept — resting orders keep
        their queue estimates — but market orders must not walk them (``not_ready``)."""
        self.invalid_reason = reason or "invalidated by the feed"

    @property
    def remembers_taken(self) -> bool:
        """Liquidity we took that the feed has not yet restated (``_restate``)."""
        return bool(self._bid_taken or self._ask_taken)

    def _restate(self, book_side: Side, taken: dict[Decimal, list[Decimal]],
                 prices: set[Decimal] | None = None) -> None:
        """The feed restated levels we took from: give back what the market moved on
        from (see the module docstring). ``prices``: only these levels changed."""
        for price in list(taken if prices is None else prices & taken.keys()):
            entry = taken[price]
            size = self.size_at(book_side, price)
            shrink = entry[0] - size
            if size <= 0 or shrink >= entry[1]:
                del taken[price]
            else:
                # Shrinking eats the front of the queue first, where what we took was;
                # growing adds behind it (the new size is the baseline from now on).
                entry[0], entry[1] = size, entry[1] - max(shrink, ZERO)

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
    def valid(self) -> bool:
        """False between a feed's ``BookInvalidated`` and the next snapshot (L1: quote)."""
        return self.invalid_reason is None

    def not_ready(self, now: datetime, max_age: timedelta | None) -> str | None:
        """Why a market order must not walk this book now, or None if it may.

        Invalid (a feed gap), or stale: the last update is older than ``max_age``
        (None: never stale). A book never fed is neither — it has no liquidity,
        which the venue reports on its own (``NO_MARKET_DATA``).
        """
        if self.invalid_reason is not None:
            return f"invalid ({self.invalid_reason})"
        if max_age is not None and self.updated_at is not None:
            age = now - self.updated_at
            if age > max_age:
                return (f"stale (last update {age.total_seconds():g} s ago, "
                        f"limit {max_age.total_seconds():g} s)")
        return None

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
            yield price, self._synthesized(size, k)

    def _synthesized(self, touch: Decimal, k: int) -> Decimal:
        size = touch * (1 + self.growth * k)
        if self.lot is None or not k:
            return size
        return max(touch, size // self.lot * self.lot)

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
        return self._synthesized(size, int(k))

    def available(self, book_side: Side, price: Decimal, size: Decimal) -> Decimal:
        taken = (self._bid_taken if book_side is Side.BUY else self._ask_taken).get(price)
        return size - taken[1] if taken else size

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
        book_side = taker_side.opposite
        for price, qty in slices:
            self.consume(book_side, price, qty)

    def consume(self, book_side: Side, price: Decimal, qty: Decimal) -> None:
        """Mark ``qty`` at ``price`` on ``book_side`` as taken by an order of ours."""
        taken = self._bid_taken if book_side is Side.BUY else self._ask_taken
        entry = taken.get(price)
        if entry is None:
            taken[price] = [self.size_at(book_side, price), qty]
        else:
            entry[1] += qty
