"""A mock venue: execution without market realism (seed 002's local-dev profile,
``{'type': 'mock', 'latency_ms': 50, 'fill_ratio': 1.0}``), for running strategies
end to end where the paper venue's book walking and queue position would be noise.

What it does, all on the engine's clock (deterministic, no randomness):

* **Latency** — an order, cancel or amend reaches the venue ``latency`` after it
  was sent; the order is acknowledged and executed then, at the price of that
  moment (a cancel can still catch it before).
* **Price** — it fills at the current reference price: the mark if one was
  seen, else the quote's mid, else the last trade. No book is walked: any size
  fills at that one price.
* **Limits** — a limit that is marketable at arrival (a buy at or above the
  reference price, a sell at or below) fills at once at the reference price
  (taker fee); otherwise it rests and fills at its own limit price (maker fee)
  when the reference price reaches it. A post-only limit that would fill at
  arrival is rejected.
* **Stops and take-profits** — trigger on the mark or the last price (their
  ``trigger_source``), then execute as a market order or, with a limit price,
  as a limit. Trailing stops are not offered (its capabilities leave them out).
* **Fill ratio** — every order executes once: ``fill_ratio`` of its remaining
  quantity fills (rounded down to the instrument's step size); the rest is
  canceled (``mock fill ratio``), or expired for a market order as a real
  venue reports an unfilled market remainder. ``fill_ratio`` 1 fills orders
  whole; a FOK order that cannot fill whole is rejected; a fill that rounds
  to nothing fills nothing.
* **Reduce-only** — capped by the venue's own view of the position, as on the
  paper venue.

Risk limits, kill switches, margin, funding and liquidation are the engine's:
they apply here exactly as with the paper venue.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from itertools import count

from app.domain.instruments import Instrument, VenueCapabilities
from app.domain.market import (
    BookSnapshot,
    MarketUpdate,
    MarkPrice,
    Quote,
    TradePrint,
)
from app.domain.orders import (
    Liquidity,
    Order,
    OrderSpec,
    OrderType,
    Side,
    TimeInForce,
    TriggerSource,
    triggers_on_rise,
)
from app.domain.rejections import RejectCode, Rejection
from app.venues.base import (
    Accepted,
    Amended,
    AmendRefused,
    Canceled,
    CancelRefused,
    Expired,
    Filled,
    Rejected,
    Report,
    Triggered,
)

ZERO = Decimal(0)
# The depth the mock shows at its price (base units): deep enough that impact-aware
# sizing and depth filters never bind — there is no book to walk.
MOCK_DEPTH = Decimal(10) ** 12
FILL_RATIO_REASON = "mock fill ratio: the rest is canceled"
MOCK_ORDER_TYPES = frozenset({"market", "limit", "stop", "stop_limit", "take_profit",
                              "take_profit_limit"})


def mock_capabilities(configured: VenueCapabilities) -> VenueCapabilities:
    """A configured venue's capabilities as the mock offers them: without the order
    types it does not model (trailing stops)."""
    return replace(configured, order_types=configured.order_types & MOCK_ORDER_TYPES)


@dataclass(frozen=True, slots=True)
class MockVenueConfig:
    latency: timedelta = timedelta(milliseconds=50)
    fill_ratio: Decimal = Decimal(1)
    capabilities: VenueCapabilities = field(
        default_factory=lambda: VenueCapabilities(order_types=MOCK_ORDER_TYPES))

    def __post_init__(self) -> None:
        if not ZERO < self.fill_ratio <= 1:
            raise ValueError(f"fill_ratio must be above 0 and at most 1, not {self.fill_ratio}")
        if self.latency < timedelta(0):
            raise ValueError("latency cannot be negative")


@dataclass(slots=True)
class MockTop:
    """The last quote's best bid and ask (a ``TopOfBook``)."""

    bid: Decimal | None = None
    ask: Decimal | None = None
    updated_at: datetime | None = None

    @property
    def mid(self) -> Decimal | None:
        if self.bid is None or self.ask is None:
            return None
        return (self.bid + self.ask) / 2


@dataclass(slots=True)
class _Working:
    order_id: int
    client: str
    symbol: str
    side: Side
    type: OrderType
    price: Decimal | None
    trigger_price: Decimal | None
    trigger_source: TriggerSource
    tif: TimeInForce
    expire_at: datetime | None
    post_only: bool
    reduce_only: bool
    close_position: bool
    remaining: Decimal
    accepted: bool = False

    @classmethod
    def of(cls, order: Order, enforce_reduce_only: bool) -> _Working:
        s = order.spec
        return cls(order.order_id, s.client, s.symbol, s.side, s.type, s.price,
                   s.trigger_price, s.trigger_source, s.time_in_force, s.expire_at,
                   s.post_only, s.reduce_only or s.close_position or enforce_reduce_only,
                   s.close_position, order.remaining_qty)


@dataclass(slots=True)
class _Cancel:
    order_id: int
    reason: str


@dataclass(slots=True)
class _Amend:
    order_id: int
    qty: Decimal | None
    price: Decimal | None


class MockVenue:
    """One mock venue (``kind: mock`` in the configuration)."""

    def __init__(self, name: str, config: MockVenueConfig | None = None):
        self.name = name
        self.config = config or MockVenueConfig()
        self.capabilities = self.config.capabilities
        self.instruments: dict[str, Instrument] = {}
        self.last: dict[str, Decimal] = {}
        self.marks: dict[str, Decimal] = {}
        self.tops: dict[str, MockTop] = {}
        self.positions: dict[tuple[str, str], Decimal] = {}  # (client, symbol) -> signed
        self._resting: dict[str, dict[int, _Working]] = {}  # limits waiting for a price
        self._stops: dict[str, dict[int, _Working]] = {}  # conditionals waiting a trigger
        self._by_id: dict[int, _Working] = {}
        self._inflight: list[tuple[datetime, int, _Working | _Cancel | _Amend]] = []
        self._expiries: list[tuple[datetime, int]] = []
        self._seq = count()

    # ---- market view ----------------------------------------------------------------

    def add_instrument(self, instrument: Instrument) -> None:
        self.instruments[instrument.symbol] = instrument
        self.tops[instrument.symbol] = MockTop()
        self._resting[instrument.symbol] = {}
        self._stops[instrument.symbol] = {}

    def book(self, symbol: str) -> MockTop:
        return self.tops.setdefault(symbol, MockTop())

    def reference_price(self, symbol: str) -> Decimal | None:
        """What the mock fills at: the mark, else the quote's mid, else the last trade."""
        mark = self.marks.get(symbol)
        if mark is not None:
            return mark
        top = self.tops.get(symbol)
        mid = top.mid if top is not None else None
        return mid if mid is not None else self.last.get(symbol)

    def liquidity(self, symbol: str, taker_side: Side) -> Iterator[tuple[Decimal, Decimal]]:
        price = self.reference_price(symbol)
        if price is not None:
            yield price, MOCK_DEPTH

    # ---- order entry -----------------------------------------------------------------

    def precheck(self, spec: OrderSpec, now: datetime) -> Rejection | None:
        return None  # everything is judged when it arrives

    def submit(self, order: Order, now: datetime, enforce_reduce_only: bool = False
               ) -> list[Report]:
        work = _Working.of(order, enforce_reduce_only)
        self._by_id[work.order_id] = work
        return self._send(work, now)

    def cancel(self, order_id: int, now: datetime, reason: str = "canceled") -> list[Report]:
        return self._send(_Cancel(order_id, reason), now)

    def amend(self, order_id: int, qty: Decimal | None, price: Decimal | None,
              now: datetime) -> list[Report]:
        return self._send(_Amend(order_id, qty, price), now)

    def restore(self, open_orders: list[Order], positions: dict[tuple[str, str], Decimal],
                now: datetime) -> list[Report]:
        """After a restart: positions as the log has them; orders that had not arrived
        arrive now, conditionals wait for their trigger again, limits rest again."""
        self.positions = dict(positions)
        out: list[Report] = []
        for order in open_orders:
            work = _Working.of(order, False)
            work.accepted = order.status.value != "new"
            self._by_id[work.order_id] = work
            if not work.accepted:
                self._arrive(work, now, out)
            elif work.type.is_conditional and order.triggered_at is None:
                self._stops[work.symbol][work.order_id] = work
                self._schedule_expiry(work)
            elif work.price is None:
                self._execute(work, now, out)
            else:
                self._resting[work.symbol][work.order_id] = work
                self._schedule_expiry(work)
            if order.status.value in ("pending_cancel", "pending_replace"):
                self._cancel_now(work.order_id, "canceled", now, out)
        return out

    # ---- time and market data -----------------------------------------------------

    def advance(self, now: datetime) -> list[Report]:
        """Time reaches ``now``: what was in flight arrives, GTD orders expire."""
        out: list[Report] = []
        while self._inflight and self._inflight[0][0] <= now:
            at, _, payload = heapq.heappop(self._inflight)
            if isinstance(payload, _Working):
                self._arrive(payload, at, out)
            elif isinstance(payload, _Cancel):
                self._cancel_now(payload.order_id, payload.reason, at, out)
            else:
                self._amend_now(payload, at, out)
        while self._expiries and self._expiries[0][0] <= now:
            at, order_id = heapq.heappop(self._expiries)
            work = self._by_id.get(order_id)
            if work is not None and self._waiting(work):
                self._remove(work)
                out.append(Expired(order_id, at))
        return out

    def on_market(self, update: MarketUpdate, now: datetime) -> list[Report]:
        out = self.advance(now) if (self._inflight or self._expiries) else []
        symbol = update.symbol
        if symbol not in self.instruments:
            return out
        if isinstance(update, MarkPrice):
            self.marks[symbol] = update.price
        elif isinstance(update, TradePrint):
            self.last[symbol] = update.price
        elif isinstance(update, Quote):
            top = self.tops[symbol]
            top.bid, top.ask, top.updated_at = update.bid, update.ask, update.ts
        elif isinstance(update, BookSnapshot):
            top = self.tops[symbol]
            top.bid = max((p for p, _ in update.bids), default=None)
            top.ask = min((p for p, _ in update.asks), default=None)
            top.updated_at = update.ts
        else:
            return out  # funding is the engine's; deltas need no book here
        if self._stops[symbol]:
            self._check_stops(symbol, now, out)
        if self._resting[symbol]:
            self._check_resting(symbol, now, out)
        return out

    # ---- execution -------------------------------------------------------------------

    def _send(self, payload: _Working | _Cancel | _Amend, now: datetime) -> list[Report]:
        latency = self.config.latency
        if latency:
            heapq.heappush(self._inflight, (now + latency, next(self._seq), payload))
            return []
        heapq.heappush(self._inflight, (now, next(self._seq), payload))
        return self.advance(now)

    def _arrive(self, work: _Working, now: datetime, out: list[Report]) -> None:
        if work.remaining <= 0 and not work.close_position:
            return  # canceled on its way (``_cancel_now`` found it in flight)
        if work.type.is_conditional:
            work.accepted = True
            out.append(Accepted(work.order_id, now))
            self._stops[work.symbol][work.order_id] = work
            self._schedule_expiry(work)
            self._check_stops(work.symbol, now, out)
            return
        self._execute(work, now, out)

    def _execute(self, work: _Working, now: datetime, out: list[Report]) -> None:
        """Fill ``work`` now at the reference price if it may (market, or a marketable
        limit), else rest it; either way it executes once (the fill ratio)."""
        price = self.reference_price(work.symbol)
        if price is None:
            self._refuse(work, RejectCode.NO_MARKET_DATA,
                         f"no price for {work.symbol} yet", now, out)
            return
        limit = None if work.type.executes_at_market else work.price
        marketable = limit is None or (price <= limit if work.side is Side.BUY
                                       else price >= limit)
        if marketable and work.post_only:
            self._refuse(work, RejectCode.POST_ONLY_WOULD_CROSS,
                         f"post-only {work.side.value} at {limit} would fill at once at "
                         f"{price}", now, out)
            return
        want = self._fillable(work)
        if work.tif is TimeInForce.FOK and marketable and want < work.remaining:
            self._refuse(work, RejectCode.FOK_NOT_FILLABLE,
                         f"only {want} of {work.remaining} would fill (fill ratio "
                         f"{self.config.fill_ratio})", now, out)
            return
        if not work.accepted:
            work.accepted = True
            out.append(Accepted(work.order_id, now))
        if not marketable:
            if work.tif in (TimeInForce.IOC, TimeInForce.FOK):
                self._remove(work)
                out.append(Canceled(work.order_id, "ioc remainder", now))
                return
            self._resting[work.symbol][work.order_id] = work
            self._schedule_expiry(work)
            return
        rate = self.instruments[work.symbol].taker_fee_rate
        self._fill_and_finish(work, want, price, rate, Liquidity.TAKER, now, out)

    def _fillable(self, work: _Working) -> Decimal:
        """What fills of ``work``: its remaining quantity times the fill ratio, rounded
        down to the step size, within what reduce-only allows."""
        qty = work.remaining
        if self.config.fill_ratio < 1:
            step = self.instruments[work.symbol].step_size
            qty = (qty * self.config.fill_ratio / step).to_integral_value(ROUND_DOWN) * step
        if work.reduce_only:
            pos = self.positions.get((work.client, work.symbol), ZERO)
            if (work.side is Side.SELL and pos > 0) or (work.side is Side.BUY and pos < 0):
                qty = min(qty, abs(pos))
            else:
                qty = ZERO
        return qty

    def _fill_and_finish(self, work: _Working, qty: Decimal, price: Decimal, rate: Decimal,
                         liquidity: Liquidity, now: datetime, out: list[Report]) -> None:
        if qty > 0:
            work.remaining -= qty
            key = (work.client, work.symbol)
            self.positions[key] = self.positions.get(key, ZERO) + (
                qty if work.side is Side.BUY else -qty)
            out.append(Filled(work.order_id, qty, price, qty * price * rate, liquidity, now))
        self._remove(work)
        if work.remaining > 0:
            if work.type.executes_at_market:
                out.append(Expired(work.order_id, now))
            else:
                out.append(Canceled(work.order_id, FILL_RATIO_REASON, now))

    def _check_resting(self, symbol: str, now: datetime, out: list[Report]) -> None:
        price = self.reference_price(symbol)
        if price is None:
            return
        rate = self.instruments[symbol].maker_fee_rate
        for work in list(self._resting[symbol].values()):
            limit = work.price
            if limit is None or not (price <= limit if work.side is Side.BUY
                                     else price >= limit):
                continue
            self._fill_and_finish(work, self._fillable(work), limit, rate, Liquidity.MAKER,
                                  now, out)

    def _check_stops(self, symbol: str, now: datetime, out: list[Report]) -> None:
        reference = self.reference_price(symbol)
        for work in list(self._stops[symbol].values()):
            source = (self.marks if work.trigger_source is TriggerSource.MARK else self.last)
            px = source.get(symbol, reference)
            trigger = work.trigger_price
            if px is None or trigger is None:
                continue
            if not (px >= trigger if triggers_on_rise(work.type, work.side) else px <= trigger):
                continue
            del self._stops[symbol][work.order_id]
            if work.close_position:
                pos = self.positions.get((work.client, symbol), ZERO)
                size = pos if work.side is Side.SELL else -pos
                if size <= 0:
                    self._remove(work)
                    out.append(Expired(work.order_id, now))
                    continue
                work.remaining = size
                out.append(Triggered(work.order_id, px, now, qty=size))
            else:
                out.append(Triggered(work.order_id, px, now))
            self._execute(work, now, out)

    # ---- removal and amends --------------------------------------------------------

    def _waiting(self, work: _Working) -> bool:
        return (work.order_id in self._resting[work.symbol]
                or work.order_id in self._stops[work.symbol])

    def _remove(self, work: _Working) -> None:
        self._resting[work.symbol].pop(work.order_id, None)
        self._stops[work.symbol].pop(work.order_id, None)
        self._by_id.pop(work.order_id, None)

    def _refuse(self, work: _Working, code: str, message: str, now: datetime,
                out: list[Report]) -> None:
        self._remove(work)
        if work.accepted:  # a triggered stop that cannot execute
            out.append(Canceled(work.order_id, f"{code}: {message}", now))
        else:
            out.append(Rejected(work.order_id, code, message, now))

    def _cancel_now(self, order_id: int, reason: str, now: datetime, out: list[Report]
                    ) -> None:
        work = self._by_id.get(order_id)
        if work is None:
            out.append(CancelRefused(order_id, "order is not open at the venue", now))
            return
        self._remove(work)
        if not work.accepted:
            # Still in flight: it never reaches the matching engine.
            work.remaining = ZERO
            work.close_position = False
        out.append(Canceled(order_id, reason, now))

    def _amend_now(self, amend: _Amend, now: datetime, out: list[Report]) -> None:
        work = self._by_id.get(amend.order_id)
        if work is None or not self._waiting(work):
            out.append(AmendRefused(amend.order_id, "order is not open at the venue", now))
            return
        if amend.qty is not None:
            if amend.qty <= 0:
                out.append(AmendRefused(amend.order_id, "quantity must be positive", now))
                return
            work.remaining = amend.qty  # nothing has filled: an order executes once
        if amend.price is not None:
            work.price = amend.price
        out.append(Amended(work.order_id, work.remaining, work.price, False, now))
        if work.order_id in self._resting[work.symbol]:
            del self._resting[work.symbol][work.order_id]
            self._execute(work, now, out)  # it may be marketable at its new price

    def _schedule_expiry(self, work: _Working) -> None:
        if work.tif is TimeInForce.GTD and work.expire_at is not None:
            heapq.heappush(self._expiries, (work.expire_at, work.order_id))
