"""A deterministic exchange simulator driven by market data.

What it models, and why:

* **Book walking** — market orders and the marketable part of limit orders
  take displayed liquidity level by level, one fill per level, so the
  order's average price is the VWAP of what it consumed and slippage grows
  with size against depth.
* **Queue position** — resting limits fill only after the queue ahead of
  them is gone (see ``queue.py``); a book that moves through the price
  fills them as maker at their own price, up to the crossing size.
* **Exchange rules** — post-only that would cross is rejected (Binance
  GTX) or canceled (Bybit), IOC remainders are canceled, FOK is all or
  nothing, GTD expires, stops, take-profits and trailing stops trigger on
  last or mark, close-position stops close what is there at the trigger,
  reduce-only never increases the venue's own view of the position, amends
  keep or lose queue priority as the venue's profile says
  (``app/domain/venue_profiles.py``).
* **Latency** — submit latency delays arrival at the matching engine,
  response latency delays when reports become visible, both on the
  simulated clock, so the same inputs always give the same outputs.

The venue keeps its own positions (like a real exchange) so reduce-only
caps use what the venue knows, not what the OMS has heard back yet.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import count
from typing import TypeVar, cast

from app.domain.instruments import Instrument, VenueCapabilities
from app.domain.market import (
    BookDelta,
    BookInvalidated,
    BookSnapshot,
    FundingRate,
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
from app.domain.venue_profiles import Outcome
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
from app.venues.paper.book import Book
from app.venues.paper.queue import QueueModel, QueuePosition
from app.venues.paper.trailing import arm_and_trail

ZERO = Decimal(0)
NO_DELAY = timedelta(0)


@dataclass(slots=True)
class PaperVenueConfig:
    submit_latency: timedelta = NO_DELAY
    response_latency: timedelta = NO_DELAY
    synthetic_depth: int = 20  # levels synthesized around an L1 quote
    synthetic_growth: Decimal = Decimal("0.5")
    capabilities: VenueCapabilities = field(default_factory=VenueCapabilities)
    # A print through a resting order's price: "print" fills at most what the print
    # leaves after the queue ahead (the honest bound: a tape prints each level a
    # sweep took, so the levels above were printed already); "full" fills the
    # whole order (the level must have gone, us included: optimistic).
    through_fill: str = "print"
    # A book with no update for longer than this (exchange time of its last quote,
    # snapshot or delta vs the venue clock) is stale: market orders are refused
    # with BOOK_NOT_READY rather than filled at prices from the past. None: never.
    max_book_age: timedelta | None = timedelta(seconds=30)
    # Self-trade prevention: what happens when an order of an account would trade with
    # a resting order of the same account (Binance's STP modes): "none" (the paper
    # book never holds our own orders, so nothing trades with them),
    # "expire_taker" (the incoming order stops short of them; its rest expires),
    # "expire_maker" (the resting ones are canceled first) or "expire_both".
    self_trade_prevention: str = "none"


@dataclass(slots=True)
class Working:
    """The venue's record of a live order."""

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
    remaining: Decimal
    qty: Decimal = ZERO  # the order's total (what has filled is qty - remaining)
    accepted: bool = False
    queue_ahead: Decimal | None = None
    depth_at_entry: Decimal = ZERO
    traded_at_price: Decimal = ZERO
    close_position: bool = False
    # Trailing stops: the callback (percent), the arming price, whether it is armed and
    # the best price seen since (the high for a sell, the low for a buy).
    callback_rate: Decimal | None = None
    activation_price: Decimal | None = None
    armed: bool = False
    extreme: Decimal | None = None

    @classmethod
    def of(cls, order: Order, enforce_reduce_only: bool) -> Working:
        s = order.spec
        return cls(
            order_id=order.order_id, client=s.client, symbol=s.symbol, side=s.side,
            type=s.type, price=s.price, trigger_price=s.trigger_price,
            trigger_source=s.trigger_source, tif=s.time_in_force, expire_at=s.expire_at,
            post_only=s.post_only,
            reduce_only=s.reduce_only or s.close_position or enforce_reduce_only,
            remaining=order.remaining_qty, qty=s.qty, close_position=s.close_position,
            callback_rate=s.callback_rate, activation_price=s.activation_price,
        )


class PaperVenue:
    """One simulated exchange (e.g. ``paper-binance``) holding books for its symbols."""

    def __init__(self, name: str, config: PaperVenueConfig | None = None,
                 queue_model: QueueModel | None = None):
        self.name = name
        self.config = config or PaperVenueConfig()
        self.capabilities = self.config.capabilities
        self.profile = self.capabilities.profile
        # Accounts and symbols whose position changed: their reduce-only orders are
        # looked at once the step is done (profiles that expire them at once).
        self._moved: set[tuple[str, str]] = set()
        self.queue_model: QueueModel = queue_model or QueuePosition()
        self.instruments: dict[str, Instrument] = {}
        self.books: dict[str, Book] = {}
        self.last: dict[str, Decimal] = {}
        self.marks: dict[str, Decimal] = {}
        self.positions: dict[tuple[str, str], Decimal] = {}  # (client, symbol) -> signed qty
        self._resting: dict[str, dict[int, Working]] = {}
        self._stops: dict[str, dict[int, Working]] = {}
        self._by_id: dict[int, Working] = {}
        self._expiries: list[tuple[datetime, int]] = []
        # What is on its way to the matching engine (submit latency), in arrival order:
        # an order, a cancel as (order_id, reason), or an amend.
        self._inflight: list[tuple[datetime, int, Working | tuple[int, str] | _Amend]] = []
        self._outbox: deque[Report] = deque()
        self._seq = count()
        self._delay_out = self.config.response_latency > NO_DELAY
        # Dispatch by exact type: one dict lookup per update, each handler typed for
        # its own kind of update.
        self._handlers: dict[type, _UpdateHandler] = dict([
            _on_update(Quote, self._on_quote), _on_update(TradePrint, self._on_trade),
            _on_update(BookSnapshot, self._on_snapshot), _on_update(BookDelta, self._on_delta),
            _on_update(MarkPrice, self._on_mark), _on_update(FundingRate, _ignore),
            _on_update(BookInvalidated, self._on_invalidated),
        ])

    # ---- setup ----------------------------------------------------------

    def add_instrument(self, instrument: Instrument) -> None:
        self.instruments[instrument.symbol] = instrument
        self.books[instrument.symbol] = Book(
            instrument.tick_size, self.config.synthetic_depth, self.config.synthetic_growth,
            lot=instrument.step_size)
        self._resting[instrument.symbol] = {}
        self._stops[instrument.symbol] = {}

    def reference_price(self, symbol: str) -> Decimal | None:
        """Mark if known, else mid, else last: what margin and notional checks use."""
        mark = self.marks.get(symbol)
        if mark is not None:
            return mark
        book = self.books.get(symbol)
        mid = book.mid if book else None
        return mid if mid is not None else self.last.get(symbol)

    def book(self, symbol: str) -> Book:
        return self.books[symbol]

    def liquidity(self, symbol: str, taker_side: Side) -> Iterator[tuple[Decimal, Decimal]]:
        book = self.books.get(symbol)
        if book is None or not book.valid:
            return
        book_side = taker_side.opposite
        for price, size in book.levels(book_side):
            free = book.available(book_side, price, size)
            if free > 0:
                yield price, free

    # ---- order entry ----------------------------------------------------

    def submit(self, order: Order, now: datetime, enforce_reduce_only: bool = False
               ) -> list[Report]:
        work = Working.of(order, enforce_reduce_only)
        self._by_id[work.order_id] = work
        if self.config.submit_latency > NO_DELAY:
            self._schedule(now + self.config.submit_latency, work)
            return []
        out: list[Report] = []
        self._arrive(work, now, out)
        self._settle_reduce_only(now, out)
        return self._respond(out, now)

    def precheck(self, spec: OrderSpec, now: datetime) -> Rejection | None:
        """What the venue answers at once, before any order exists (the profile's
        ``REFUSE`` outcomes, e.g. Binance's -5022 and -5021), judged on the book as it
        is now; None if it would take the order. With submit latency the order is
        judged again when it arrives (and then rejected as a recorded order)."""
        if not self.profile.refuses_unrecorded:
            return None
        book = self.books.get(spec.symbol)
        if book is None or not spec.type.has_limit_price or spec.type.is_conditional:
            return None
        price = spec.price
        if price is None:
            return None
        profile = self.profile
        if (profile.post_only_cross is Outcome.REFUSE and spec.post_only
                and self._crosses(book, spec.side, price)):
            return Rejection(RejectCode.POST_ONLY_WOULD_CROSS,
                             f"post-only {spec.side.value} at {price} would take liquidity; "
                             "no order was placed")
        if profile.fok_unfillable is Outcome.REFUSE and spec.time_in_force is TimeInForce.FOK:
            fillable = sum((q for _, q in book.plan_take(spec.side, spec.qty, price)), ZERO)
            if fillable < spec.qty:
                return Rejection(RejectCode.FOK_NOT_FILLABLE,
                                 f"only {fillable} of {spec.qty} fillable now; "
                                 "no order was placed")
        return None

    def amend(self, order_id: int, qty: Decimal | None, price: Decimal | None, now: datetime
              ) -> list[Report]:
        """Change a working order's total qty and/or price in place (see ``_amend_now``)."""
        if self.config.submit_latency > NO_DELAY:
            self._schedule(now + self.config.submit_latency, _Amend(order_id, qty, price))
            return []
        out: list[Report] = []
        self._amend_now(_Amend(order_id, qty, price), now, out)
        self._settle_reduce_only(now, out)
        return self._respond(out, now)

    def cancel(self, order_id: int, now: datetime, reason: str = "canceled") -> list[Report]:
        if self.config.submit_latency > NO_DELAY:
            self._schedule(now + self.config.submit_latency, (order_id, reason))
            return []
        out: list[Report] = []
        self._cancel_now(order_id, now, reason, out)
        return self._respond(out, now)

    def restore(self, open_orders: list[Order], positions: dict[tuple[str, str], Decimal],
                now: datetime) -> list[Report]:
        """Rebuild live orders after a restart; their queue place is re-estimated.

        Orders that had not reached the venue (NEW) are sent now; orders with a
        cancel in flight are canceled now.
        """
        self.positions = dict(positions)
        out: list[Report] = []
        for order in open_orders:
            work = Working.of(order, False)
            work.accepted = order.status.value != "new"
            self._by_id[work.order_id] = work
            if not work.accepted:
                self._arrive(work, now, out)
            elif work.type.is_conditional and order.triggered_at is None:
                # (A trailing stop re-arms from the prices it sees from now on: the best
                # price before the restart is not kept.)
                self._stops[work.symbol][work.order_id] = work
                self._schedule_expiry(work)
            elif work.price is None:
                # An acknowledged market order (or triggered stop-market) whose outcome
                # never reached the log: it has no price to rest at, so it executes now.
                self._execute(work, now, out)
            else:
                self._rest(work, work.price, None)
            if order.status.value in ("pending_cancel", "pending_replace"):
                self._cancel_now(work.order_id, now, "canceled", out)
        return self._respond(out, now)

    # ---- time -------------------------------------------------------------

    def advance(self, now: datetime) -> list[Report]:
        """Let simulated time reach ``now``: arrivals, expiries, delayed reports."""
        if not (self._inflight or self._expiries or self._outbox):
            return []
        out: list[Report] = []
        while self._inflight and self._inflight[0][0] <= now:
            at, _, payload = heapq.heappop(self._inflight)
            if isinstance(payload, Working):
                self._arrive(payload, at, out)
            elif isinstance(payload, _Amend):
                self._amend_now(payload, at, out)
            else:
                order_id, reason = payload
                self._cancel_now(order_id, at, reason, out)
        while self._expiries and self._expiries[0][0] <= now:
            at, order_id = heapq.heappop(self._expiries)
            work = self._by_id.get(order_id)
            if work is not None and self._live(work):
                self._remove(work)
                out.append(Expired(order_id, at))
        self._settle_reduce_only(now, out)
        self._queue_out(out, now)
        return self._release(now)

    def _schedule(self, at: datetime, payload: Working | tuple[int, str] | _Amend) -> None:
        heapq.heappush(self._inflight, (at, next(self._seq), payload))

    def _respond(self, out: list[Report], now: datetime) -> list[Report]:
        if not self._delay_out:
            return out
        self._queue_out(out, now)
        return self._release(now)

    def _queue_out(self, out: list[Report], now: datetime) -> None:
        if not out:
            return
        if not self._delay_out:
            self._outbox.extend(out)
            return
        delay = self.config.response_latency
        for report in out:
            report.at = report.at + delay
            self._outbox.append(report)

    def _release(self, now: datetime) -> list[Report]:
        ready: list[Report] = []
        while self._outbox and self._outbox[0].at <= now:
            ready.append(self._outbox.popleft())
        return ready

    # ---- market data ------------------------------------------------------

    def on_market(self, update: MarketUpdate, now: datetime) -> list[Report]:
        out: list[Report] = []
        if self._inflight or self._expiries or self._outbox:
            out = self.advance(now)
        more = self._handlers[type(update)](update, now)
        if self._moved:
            more = more or []
            self._settle_reduce_only(now, more)
        if more:
            if self._delay_out:
                self._queue_out(more, now)
                out.extend(self._release(now))
            else:
                out.extend(more)
        return out

    def _on_quote(self, q: Quote, now: datetime) -> list[Report] | None:
        book = self.books.get(q.symbol)
        if book is None:
            return None
        book.set_quote(q.bid, q.bid_size, q.ask, q.ask_size, q.ts)
        out: list[Report] = []
        if self._resting[q.symbol]:
            self._on_book_change(q.symbol, book, now, out)
        if self._stops[q.symbol]:
            self._check_stops(q.symbol, now, out)
        return out

    def _on_snapshot(self, u: BookSnapshot, now: datetime) -> list[Report] | None:
        book = self.books.get(u.symbol)
        if book is None:
            return None
        book.apply_snapshot(u.bids, u.asks, u.ts)
        return self._after_l2(u.symbol, book, now)

    def _on_delta(self, u: BookDelta, now: datetime) -> list[Report] | None:
        book = self.books.get(u.symbol)
        if book is None:
            return None
        book.apply_delta(u.bids, u.asks, u.ts)
        return self._after_l2(u.symbol, book, now)

    def _on_invalidated(self, u: BookInvalidated, now: datetime) -> None:
        # Nothing trades on it: resting orders keep their place, market orders are
        # refused (``_execute``) until the next snapshot makes the book valid again.
        book = self.books.get(u.symbol)
        if book is not None:
            book.invalidate(u.reason)

    def _after_l2(self, symbol: str, book: Book, now: datetime) -> list[Report]:
        out: list[Report] = []
        if self._resting[symbol]:
            self._on_book_change(symbol, book, now, out)
        if self._stops[symbol]:
            self._check_stops(symbol, now, out)
        return out

    def _on_trade(self, t: TradePrint, now: datetime) -> list[Report] | None:
        if t.symbol not in self.books:
            return None
        self.last[t.symbol] = t.price
        out: list[Report] = []
        resting = self._resting[t.symbol]
        if resting:
            hit_side = t.aggressor.opposite  # a SELL aggressor trades against bids
            left = t.qty  # one print's volume reaches our orders once, in arrival order
            full_through = self.config.through_fill == "full"
            for work in list(resting.values()):
                price = work.price
                if work.side is not hit_side or price is None:
                    continue
                through = (t.price < price) if hit_side is Side.BUY else (t.price > price)
                if through and full_through:
                    reach = work.remaining  # the whole level went, us included
                elif through or t.price == price:
                    if left <= 0:
                        continue
                    # The print's volume eats the queue ahead first; a print through
                    # our price counts like one at it (the levels between were printed).
                    reach = self.queue_model.on_trade(work, left)
                else:
                    continue
                if reach > 0:
                    before = work.remaining
                    self._fill_resting(work, price, min(reach, work.remaining), now, out)
                    if not (through and full_through):
                        left -= before - work.remaining
        if self._stops[t.symbol]:
            self._check_stops(t.symbol, now, out)
        return out

    def _on_mark(self, m: MarkPrice, now: datetime) -> list[Report] | None:
        if m.symbol not in self.books:
            return None
        self.marks[m.symbol] = m.price
        if self._stops[m.symbol]:
            out: list[Report] = []
            self._check_stops(m.symbol, now, out)
            return out
        return None

    # ---- quiet points (a backtest's fast path: app/engine/quiet.py) -------

    def quiet_bounds(self, symbol: str) -> tuple[Decimal | None, Decimal | None] | None:
        """The prices strictly between which an L1 point of ``symbol`` (a quote at p and
        one tick above, a print and a mark at p) would change nothing here but the
        book, the last price and the mark: no stop is reached (None: no bound that
        side). None when a point could do more whatever its price: an order resting on
        the symbol (queues, fills), a trailing stop (it trails every print), anything
        in flight or due, an L2 book, or no last price or mark yet."""
        if self._inflight or self._expiries or self._outbox or self._moved \
                or self._resting[symbol]:
            return None
        book = self.books[symbol]
        last, mark = self.last.get(symbol), self.marks.get(symbol)
        if book.is_l2 or last is None or mark is None:
            return None
        low: Decimal | None = None
        high: Decimal | None = None
        for work in self._stops[symbol].values():
            trigger = work.trigger_price
            if work.type is OrderType.TRAILING_STOP or trigger is None:
                return None
            if triggers_on_rise(work.type, work.side):
                high = trigger if high is None or trigger < high else high
            else:
                low = trigger if low is None or trigger > low else low
        for price in (last, mark):  # where it stands now is quiet too
            if (low is not None and price <= low) or (high is not None and price >= high):
                return None
        return low, high

    # A point inside ``quiet_bounds``, a part at a time: what its quote, print and mark
    # leave behind, without looking for anything to match or trigger.

    def take_quiet_quote(self, symbol: str, bid: Decimal, bid_size: Decimal, ask: Decimal,
                         ask_size: Decimal, at: datetime) -> None:
        self.books[symbol].set_quote(bid, bid_size, ask, ask_size, at)

    def quotes_leave_only_the_last(self, symbol: str) -> bool:
        """Whether a run of quotes leaves the book as its last one alone would: yes
        unless the book remembers liquidity we took (each quote restates that)."""
        return not self.books[symbol].remembers_taken

    def take_quiet_print(self, symbol: str, price: Decimal) -> None:
        self.last[symbol] = price

    def take_quiet_mark(self, symbol: str, price: Decimal) -> None:
        self.marks[symbol] = price

    # ---- matching ---------------------------------------------------------

    def _arrive(self, work: Working, now: datetime, out: list[Report]) -> None:
        if work.type.is_conditional:
            work.accepted = True
            out.append(Accepted(work.order_id, now))
            self._stops[work.symbol][work.order_id] = work
            self._schedule_expiry(work)
            self._check_stops(work.symbol, now, out)
            return
        self._execute(work, now, out)

    def _execute(self, work: Working, now: datetime, out: list[Report]) -> None:
        """Match an arriving (or just triggered) order, then rest, cancel or reject the rest."""
        book = self.books[work.symbol]
        is_market = work.type.executes_at_market
        limit = None if is_market else work.price
        if is_market and not book.has_liquidity:
            self._refuse(work, RejectCode.NO_MARKET_DATA,
                         f"no order book for {work.symbol} yet", now, out)
            return
        if is_market and (why := book.not_ready(now, self.config.max_book_age)):
            self._refuse(work, RejectCode.BOOK_NOT_READY,
                         f"the {work.symbol} order book is {why}", now, out)
            return
        if work.post_only and limit is not None and self._crosses(book, work.side, limit):
            self._refuse(work, RejectCode.POST_ONLY_WOULD_CROSS,
                         f"post-only {work.side.value} at {limit} would take liquidity", now, out,
                         self.profile.post_only_cross)
            return
        cap = self._reduce_cap(work)
        want = min(work.remaining, cap)
        slices = book.plan_take(work.side, want, limit) if want > 0 else []
        stp_expires = False
        if slices and self.config.self_trade_prevention != "none":
            slices, stp_expires = self._prevent_self_trade(work, book, want, limit, slices,
                                                           now, out)
        if work.tif is TimeInForce.FOK:
            fillable = sum((q for _, q in slices), ZERO)
            if fillable < work.remaining:
                self._refuse(work, RejectCode.FOK_NOT_FILLABLE,
                             f"only {fillable} of {work.remaining} fillable now", now, out,
                             self.profile.fok_unfillable)
                return
        if not work.accepted:
            work.accepted = True
            out.append(Accepted(work.order_id, now))
        if slices:
            book.take(work.side, slices)
            rate = self.instruments[work.symbol].taker_fee_rate
            for price, qty in slices:
                self._fill(work, qty, price, qty * price * rate, Liquidity.TAKER, now, out)
        if work.remaining <= 0:
            self._forget(work)
        elif stp_expires:
            self._remove(work)
            out.append(Expired(work.order_id, now))
        elif is_market or limit is None:
            # Larger than the visible book: the rest expires, as Binance reports it
            # (status EXPIRED), rather than being canceled by anyone. (Nothing without
            # a limit price rests.)
            self._remove(work)
            out.append(Expired(work.order_id, now))
        elif work.tif in (TimeInForce.IOC, TimeInForce.FOK):
            self._cancel_rest(work, "ioc remainder", now, out)
        elif work.reduce_only and self._reduce_cap(work) <= 0:
            self._unreducible(work, now, out)
        else:
            self._rest(work, limit, book)

    def _prevent_self_trade(self, work: Working, book: Book, want: Decimal,
                            limit: Decimal | None, slices: list[tuple[Decimal, Decimal]],
                            now: datetime, out: list[Report]
                            ) -> tuple[list[tuple[Decimal, Decimal]], bool]:
        """Apply the STP mode when ``work`` would reach a resting order of its own
        account; returns the slices it may take and whether its rest expires."""
        worst = slices[-1][0]
        buying = work.side is Side.BUY
        own = [(w, p) for w in self._resting[work.symbol].values()
               if w.client == work.client and w.side is not work.side
               and (p := w.price) is not None and (p <= worst if buying else p >= worst)]
        if not own:
            return slices, False
        mode = self.config.self_trade_prevention
        if mode in ("expire_maker", "expire_both"):
            for maker, _ in own:
                self._cancel_rest(maker, "self-trade prevention", now, out)
        if mode in ("expire_taker", "expire_both"):
            # Stop one tick short of the best own order: what lies beyond would trade
            # with ourselves.
            tick = self.instruments[work.symbol].tick_size
            best = min(p for _, p in own) if buying else max(p for _, p in own)
            stop = best - tick if work.side is Side.BUY else best + tick
            if limit is not None:
                stop = min(stop, limit) if work.side is Side.BUY else max(stop, limit)
            return book.plan_take(work.side, want, stop), True
        return slices, False

    def _crosses(self, book: Book, side: Side, price: Decimal) -> bool:
        if side is Side.BUY:
            return book.ask is not None and price >= book.ask
        return book.bid is not None and price <= book.bid

    def _rest(self, work: Working, price: Decimal, book: Book | None) -> None:
        """Rest ``work`` (a limit order: ``price`` is its ``work.price``) in the book."""
        self._resting[work.symbol][work.order_id] = work
        if book is not None:
            self.queue_model.on_rest(work, book.available(
                work.side, price, book.size_at(work.side, price)))
        self._schedule_expiry(work)

    def _schedule_expiry(self, work: Working) -> None:
        # A stop that triggers and rests is scheduled twice; the second entry
        # finds the order already gone and is skipped.
        if work.tif is TimeInForce.GTD and work.expire_at is not None:
            heapq.heappush(self._expiries, (work.expire_at, work.order_id))

    def _on_book_change(self, symbol: str, book: Book, now: datetime,
                        out: list[Report]) -> None:
        """Resting orders see the new book: crossed ones fill, the rest update their queue."""
        ask, bid = book.ask, book.bid
        model = self.queue_model
        for work in list(self._resting[symbol].values()):
            price = work.price
            if price is None:
                continue  # only limit orders rest (``_rest``)
            if work.side is Side.BUY:
                if ask is not None and ask <= price:
                    self._fill_crossed(work, price, book, now, out)
                    continue
                if bid is not None and bid >= price:
                    # In L1 mode only the touch is observed; deeper sizes are synthetic
                    # and say nothing about cancellations ahead of us.
                    if book.is_l2 or bid == price:
                        model.on_level_size(work, book.size_at(Side.BUY, price))
                elif work.queue_ahead:
                    work.queue_ahead = ZERO  # level vanished: we are at the front now
            else:
                if bid is not None and bid >= price:
                    self._fill_crossed(work, price, book, now, out)
                    continue
                if ask is not None and ask <= price:
                    if book.is_l2 or ask == price:
                        model.on_level_size(work, book.size_at(Side.SELL, price))
                elif work.queue_ahead:
                    work.queue_ahead = ZERO

    def _fill_crossed(self, work: Working, price: Decimal, book: Book, now: datetime,
                      out: list[Report]) -> None:
        # The other side moved onto our price: the crossing liquidity trades
        # with us at our price (we were there first), as maker.
        want = min(work.remaining, self._reduce_cap(work))
        slices = book.plan_take(work.side, want, price) if want > 0 else []
        if slices:
            qty = sum((q for _, q in slices), ZERO)
            book.take(work.side, slices)
            self._fill_resting(work, price, qty, now, out)
        elif want <= 0:
            self._unreducible(work, now, out)

    def _fill_resting(self, work: Working, price: Decimal, qty: Decimal, now: datetime,
                      out: list[Report]) -> None:
        """Fill a resting order as maker at its own ``price``."""
        cap = self._reduce_cap(work)
        if cap <= 0:
            self._unreducible(work, now, out)
            return
        qty = min(qty, cap)
        rate = self.instruments[work.symbol].maker_fee_rate
        self._fill(work, qty, price, qty * price * rate, Liquidity.MAKER, now, out)
        if work.remaining <= 0:
            self._remove(work)
        elif work.reduce_only and self._reduce_cap(work) <= 0:
            self._unreducible(work, now, out)

    def _fill(self, work: Working, qty: Decimal, price: Decimal, fee: Decimal,
              liquidity: Liquidity, now: datetime, out: list[Report]) -> None:
        work.remaining -= qty
        key = (work.client, work.symbol)
        self.positions[key] = self.positions.get(key, ZERO) + (
            qty if work.side is Side.BUY else -qty)
        if self.profile.expire_unreducible:
            self._moved.add(key)
        out.append(Filled(work.order_id, qty, price, fee, liquidity, now))

    def _reduce_cap(self, work: Working) -> Decimal:
        """How much this order may still fill without growing or flipping the position."""
        if not work.reduce_only:
            return work.remaining
        pos = self.positions.get((work.client, work.symbol), ZERO)
        if (work.side is Side.SELL and pos > 0) or (work.side is Side.BUY and pos < 0):
            return abs(pos)
        return ZERO

    def _check_stops(self, symbol: str, now: datetime, out: list[Report]) -> None:
        stops = self._stops[symbol]
        last = self.last.get(symbol)
        mark = self.marks.get(symbol)
        if last is None or mark is None:  # not printed or marked yet: the book's mid
            mid = self.books[symbol].mid
            last = mid if last is None else last
            mark = mid if mark is None else mark
        for work in list(stops.values()):
            px = mark if work.trigger_source is TriggerSource.MARK else last
            if px is None:
                continue
            if work.type is OrderType.TRAILING_STOP:
                if not arm_and_trail(work, px):
                    continue
            else:
                trigger = work.trigger_price
                if trigger is None:
                    continue
                rises = triggers_on_rise(work.type, work.side)
                if not (px >= trigger if rises else px <= trigger):
                    continue
            del stops[work.order_id]
            if work.close_position:
                # At its trigger it takes the size of the position it closes; with none
                # on that side there is nothing to close, and it expires.
                pos = self.positions.get((work.client, work.symbol), ZERO)
                size = pos if work.side is Side.SELL else -pos
                if size <= 0:
                    self._forget(work)
                    out.append(Expired(work.order_id, now))
                    continue
                work.remaining = work.qty = size
                out.append(Triggered(work.order_id, px, now, qty=size))
            else:
                out.append(Triggered(work.order_id, px, now))
            self._execute(work, now, out)

    # ---- removal ----------------------------------------------------------

    def _cancel_now(self, order_id: int, now: datetime, reason: str, out: list[Report]) -> None:
        work = self._by_id.get(order_id)
        if work is None or not self._live(work):
            out.append(CancelRefused(order_id, "order is not open at the venue", now))
            return
        self._cancel_rest(work, reason, now, out)

    def _cancel_rest(self, work: Working, reason: str, now: datetime, out: list[Report]) -> None:
        self._remove(work)
        out.append(Canceled(work.order_id, reason, now))

    def _refuse(self, work: Working, code: str, message: str, now: datetime,
                out: list[Report], outcome: Outcome = Outcome.REJECT) -> None:
        self._forget(work)
        if outcome is Outcome.CANCEL and not work.accepted:
            # Created, then canceled (Bybit: a PostOnly that would take liquidity).
            work.accepted = True
            out.append(Accepted(work.order_id, now))
        if work.accepted:  # a triggered stop that can no longer execute
            out.append(Canceled(work.order_id, f"{code}: {message}", now))
        else:
            out.append(Rejected(work.order_id, code, message, now))

    def _unreducible(self, work: Working, now: datetime, out: list[Report]) -> None:
        """A reduce-only order with nothing left to reduce: expired on profiles that say
        so (Binance), else canceled."""
        if self.profile.expire_unreducible:
            self._remove(work)
            out.append(Expired(work.order_id, now))
        else:
            self._cancel_rest(work, "reduce-only: nothing left to reduce", now, out)

    def _settle_reduce_only(self, now: datetime, out: list[Report]) -> None:
        """After a step that moved positions: on profiles that expire reduce-only
        orders as soon as they can no longer reduce (Binance), expire them now, not
        when the market next reaches them."""
        if not self._moved:
            return
        moved, self._moved = self._moved, set()
        for client, symbol in sorted(moved):
            for book in (self._resting.get(symbol, {}), self._stops.get(symbol, {})):
                for work in list(book.values()):
                    if (work.client == client and work.reduce_only and not work.close_position
                            and self._reduce_cap(work) <= 0):
                        self._unreducible(work, now, out)

    def _live(self, work: Working) -> bool:
        """Still working (an untriggered close-position order has no qty yet)."""
        return work.remaining > 0 or (work.close_position
                                      and work.order_id in self._stops[work.symbol])

    # ---- amend ------------------------------------------------------------

    def _amend_now(self, amend: _Amend, now: datetime, out: list[Report]) -> None:
        """Amend in place. The venue's own view decides (fills may have come first):
        a qty at or below what has filled cancels the rest (Binance Modify Order);
        a qty decrease keeps the queue place where the profile says so; a price
        change or qty increase goes to the back of the queue at the (new) price, and
        a post-only one that would now cross is canceled."""
        work = self._by_id.get(amend.order_id)
        if work is None or not self._live(work):
            out.append(AmendRefused(amend.order_id, "order is not open at the venue", now))
            return
        filled = work.qty - work.remaining
        qty = work.qty if amend.qty is None else amend.qty
        price = work.price if amend.price is None else amend.price
        if qty <= filled:
            self._cancel_rest(work, "amended to no more than its filled qty", now, out)
            return
        waiting = work.order_id in self._stops[work.symbol]
        book = self.books[work.symbol]
        if (not waiting and work.post_only and price is not None
                and self._crosses(book, work.side, price)):
            self._cancel_rest(work, "post-only amend would cross", now, out)
            return
        resting = self._resting[work.symbol]
        keeps = (waiting or (price == work.price and qty < work.qty
                             and self.profile.amend_keeps_priority))
        work.qty, work.remaining, work.price = qty, qty - filled, price
        out.append(Amended(work.order_id, qty, price, keeps, now))
        if waiting or keeps or work.order_id not in resting:
            return
        # To the back of the queue: off the book and in again as if it just arrived
        # (it may take liquidity now, as a limit moved through the touch does).
        del resting[work.order_id]
        work.queue_ahead = None
        self._execute(work, now, out)

    def _remove(self, work: Working) -> None:
        self._resting[work.symbol].pop(work.order_id, None)
        self._stops[work.symbol].pop(work.order_id, None)
        self._forget(work)

    def _forget(self, work: Working) -> None:
        work.remaining = ZERO if work.remaining < 0 else work.remaining
        self._by_id.pop(work.order_id, None)

    # ---- introspection (tests, dashboards) -----------------------------------

    def working(self, order_id: int) -> Working | None:
        return self._by_id.get(order_id)


@dataclass(slots=True)
class _Amend:
    order_id: int
    qty: Decimal | None
    price: Decimal | None


_UpdateHandler = Callable[[MarketUpdate, datetime], list[Report] | None]
_U = TypeVar("_U", bound=MarketUpdate)


def _on_update(kind: type[_U], handle: Callable[[_U, datetime], list[Report] | None]
               ) -> tuple[type, _UpdateHandler]:
    """An entry of ``PaperVenue._handlers``: the checker makes sure ``handle`` takes a
    ``kind``; the table is looked up by ``type(update)``, so it only ever gets one,
    which the cast tells the checker (it cannot relate a dict's keys to its values)."""
    return kind, cast(_UpdateHandler, handle)


def _ignore(update: FundingRate, now: datetime) -> None:
    return None
