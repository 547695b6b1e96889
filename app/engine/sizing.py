"""Impact-aware sizing on the real book (seed 000 §2, seed 003).

The impact of taking ``qty`` is how far the average price of walking the book
for it lies from the mid, in basis points: ``|vwap − mid| / mid × 10⁴``. The walk
is the one the paper venue fills with (the levels a taker would meet, best first,
net of liquidity our own orders already took), so the estimate is what the fill
would cost, not an L1/L10 approximation.

The largest size within a limit is found as seed 000 finds it: a binary search on
the notional, to $1 precision, between 0 and the order's notional. Walking is
done once: cumulative sizes and notionals per level make each probe a bisection.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

ZERO = Decimal(0)
BPS = Decimal(10_000)
PRECISION = Decimal(1)  # dollars: seed 000's binary-search precision


@dataclass(frozen=True, slots=True)
class Depth:
    """One side of the book as a taker meets it, made cumulative for fast walks."""

    prices: tuple[Decimal, ...]
    cum_qty: tuple[Decimal, ...]  # size of levels 0..i
    cum_notional: tuple[Decimal, ...]

    @classmethod
    def of(cls, levels: Iterable[tuple[Decimal, Decimal]], enough: Decimal | None = None
           ) -> Depth:
        """``levels``: (price, size) best first; stops once ``enough`` qty is covered."""
        prices, cum_qty, cum_notional = [], [], []
        qty = notional = ZERO
        for price, size in levels:
            if size <= 0:
                continue
            qty += size
            notional += price * size
            prices.append(price)
            cum_qty.append(qty)
            cum_notional.append(notional)
            if enough is not None and qty >= enough:
                break
        return cls(tuple(prices), tuple(cum_qty), tuple(cum_notional))

    @property
    def total_qty(self) -> Decimal:
        return self.cum_qty[-1] if self.cum_qty else ZERO

    def cost(self, qty: Decimal) -> Decimal | None:
        """The notional of taking ``qty`` (None: the book holds less)."""
        if qty <= 0:
            return ZERO
        i = bisect_left(self.cum_qty, qty)
        if i >= len(self.cum_qty):
            return None
        before_qty = self.cum_qty[i - 1] if i else ZERO
        before_notional = self.cum_notional[i - 1] if i else ZERO
        return before_notional + (qty - before_qty) * self.prices[i]


def impact_bps(depth: Depth, qty: Decimal, mid: Decimal) -> Decimal | None:
    """Expected impact of taking ``qty``, in bps of ``mid`` (None: the book is too thin)."""
    if qty <= 0:
        return ZERO
    notional = depth.cost(qty)
    if notional is None:
        return None
    vwap = notional / qty
    return abs(vwap - mid) / mid * BPS


def largest_within(depth: Depth, mid: Decimal, max_bps: Decimal, target_qty: Decimal,
                   step: Decimal) -> Decimal:
    """The largest qty (a multiple of ``step``, at most ``target_qty``) whose impact is
    within ``max_bps``: seed 000's binary search on the notional, to $1."""
    def fits(notional: Decimal) -> bool:
        qty = _floor(notional / mid, step)
        impact = impact_bps(depth, qty, mid)
        return impact is not None and impact <= max_bps

    target_notional = target_qty * mid
    if fits(target_notional):
        return target_qty
    low, high = ZERO, target_notional
    while high - low > PRECISION:
        probe = (low + high) / 2
        if fits(probe):
            low = probe
        else:
            high = probe
    return min(_floor(low / mid, step), target_qty)


def _floor(qty: Decimal, step: Decimal) -> Decimal:
    return (qty / step).to_integral_value(rounding=ROUND_DOWN) * step
