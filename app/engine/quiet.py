"""Quiet points: market data that provably changes nothing but prices (a backtest's
fast path).

A backtest replays each bar as four L1 points — a quote at p and one tick above, a
print and a mark at p (app/marketdata/bars.py) — and most of them meet nothing: no
order rests on the symbol, no stop is near, no account is near liquidation, no
funding or candle is due. Stepping the engine through such a point costs three
passes that all end in "nothing happened". ``quiet_span`` works out, from the
engine's state, the prices and the time within which that is certain; while the
state does not change (only quiet points are taken), every point inside the span is
taken by ``absorb_points``, which leaves the state exactly as the three updates
would have: the book, the last price, the mark, the signal desk's candles and the
breakers' "evaluated at" clock. Anything else — an order, a fill, a point outside
the span — goes through ``Engine.on_market`` as before, and the span is worked out
again after it.

What a span requires (anything it cannot bound makes it ``None``: step normally):

* the venue is a paper venue whose own bounds hold (``PaperVenue.quiet_bounds``:
  nothing resting on the symbol, stops bounded by their triggers, nothing in flight);
* no volume filter (it counts every print), no bracket or breaker work owed;
* time before the next funding instant (the signal desk's candle work, where a
  candle begins, is done as ``on_market`` does it);
* every account holding the symbol: breakers off (they would value it at every
  mark), and its equity above its maintenance margin all over the span's price
  range. Within one margin tier, equity minus maintenance margin is a concave
  function of the mark (linear, minus the positive part of a linear function), so
  it is above zero all over a range when it is at both ends: the span is at most
  ``LIQUIDATION_BAND`` either side of the mark, and narrowed to one tier.

``tests/backtest/test_quiet_points.py`` runs backtests both ways and compares every
trade, fill and equity point.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from itertools import chain

from app.domain.market import MarkPrice, PriceBar, Quote, TradePrint
from app.domain.strategies import StrategyBarsRecorded
from app.engine.engine import Engine
from app.venues.paper.venue import PaperVenue

# How far either side of the mark a span reaches before the liquidation check must be
# made again (a fraction of the mark). Wider spans are checked less often; a point
# outside simply goes through the engine and a new span is worked out there.
LIQUIDATION_BAND = Decimal("0.05")
ONE = Decimal(1)
ZERO = Decimal(0)


# Events that change nothing a span rests on (orders, positions, balances, risk):
# a step producing only these leaves the span as it was.
SPAN_NEUTRAL: frozenset[type] = frozenset({StrategyBarsRecorded})


@dataclass(frozen=True, slots=True)
class QuietSpan:
    """Points of ``symbol`` on ``venue`` at a price strictly between ``low`` and
    ``high`` and a time before ``until`` change nothing but prices."""

    venue: PaperVenue
    symbol: str
    low: Decimal
    high: Decimal
    until: datetime
    holders: tuple[str, ...]  # clients holding the symbol there (marked at every point)

    def holds(self, price: Decimal, at: datetime) -> bool:
        return at < self.until and self.low < price < self.high


def quiet_span(engine: Engine, venue_name: str, symbol: str) -> QuietSpan | None:
    """The span of quiet points of ``symbol`` from the engine's state now, or None."""
    venue = engine.venues.get(venue_name)
    if not isinstance(venue, PaperVenue) or symbol not in venue.books:
        return None
    risk = engine.risk
    if risk.track_volume or risk.due or engine.state.bracket_dirty:
        return None
    bounds = venue.quiet_bounds(symbol)
    if bounds is None:
        return None
    mark = venue.marks[symbol]
    low = mark * (ONE - LIQUIDATION_BAND)
    high = mark * (ONE + LIQUIDATION_BAND)
    if bounds[0] is not None and bounds[0] > low:
        low = bounds[0]
    if bounds[1] is not None and bounds[1] < high:
        high = bounds[1]
    until = engine._next_funding_at
    holders: list[str] = []
    inst = engine.instruments[(venue_name, symbol)]
    for (client, v, s), position in engine.state.positions.items():
        if v != venue_name or s != symbol or not position.qty:
            continue
        if risk.profile(client).breakers.any_on:
            return None
        size = abs(position.qty)
        if inst.bracket(size * low) != inst.bracket(size * high):
            return None  # a tier boundary inside: leave it to the engine
        for price in (low, high):
            equity, maintenance = engine._equity_and_maintenance(
                client, venue_name, marked=(symbol, price))
            if equity <= maintenance:
                return None
        holders.append(client)
    return QuietSpan(venue, symbol, low, high, until, tuple(holders))


def absorb_points(engine: Engine, span: QuietSpan, bar: PriceBar, first: int,
                  stop: int = 4) -> None:
    """Points ``first`` to ``stop`` (excluded) of ``bar``, all inside ``span``: the
    state their quotes, prints and marks leave behind, as ``Engine.on_market`` would
    leave it — the signal desk's candle work included, where a candle begins."""
    _points(engine, span, bar, first, stop)
    marked = engine.risk.marked_quietly  # the liquidation pass marks every holder
    for client in span.holders:
        marked(client, bar.times[first:stop])


def _points(engine: Engine, span: QuietSpan, bar: PriceBar, first: int,
            stop: int = 4) -> None:
    """``absorb_points`` but for the holders' marking."""
    venue, symbol = span.venue, span.symbol
    signals, tick = engine.signals, bar.tick
    # Quotes in a row leave the book as the last one does, unless it remembers what
    # we took; the signal desk's candle work (a candle's first update) needs its own.
    last_only = stop - 1 if venue.quotes_leave_only_the_last(symbol) else -1
    for k in range(first, stop):
        at = bar.times[k]
        if at >= signals.idle_until:  # each part with the desk's work, as on_market does
            if k > first:  # the desk reads the mark the point before left
                venue.take_quiet_print(symbol, bar.prices[k - 1])
                venue.take_quiet_mark(symbol, bar.prices[k - 1])
            price = bar.prices[k]
            _with_candle_work(engine, venue, symbol, at, price, bar.sizes[k], price + tick)
        elif last_only < 0 or k == last_only:
            price = bar.prices[k]
            size = bar.sizes[k]
            venue.take_quiet_quote(symbol, price, size, price + tick, size, at)
    price = bar.prices[stop - 1]
    venue.take_quiet_print(symbol, price)
    venue.take_quiet_mark(symbol, price)


def absorb_bars(engine: Engine, span: QuietSpan, bars: Sequence[PriceBar],
                quoted: bool = False) -> None:
    """Whole bars in a row, every point of them inside ``span``: the state
    ``absorb_points`` over each in turn leaves, with less done a bar (``quoted``: the
    first bar's first quote was taken already, by ``Engine.on_market`` or
    ``absorb_update``: the rest of the bar is to take). Within a bar the
    book, the last price and the mark are read by nothing but the signal desk's candle
    work, so a bar without it leaves only its last point behind; a bar with it at its
    open only (the usual case: a candle a bar, or fewer) needs only the mark before it
    for the desk (its candle's close and open: the quote leaves the mark as it was)."""
    venue, symbol = span.venue, span.symbol
    if quoted:  # the first bar's first print and mark, then its other points
        first, bars = bars[0], bars[1:]
        at, price = first.times[0], first.prices[0]
        _take(engine, venue, symbol, at, _PRINT, price)
        _take(engine, venue, symbol, at, _MARK, price)
        _points(engine, span, first, 1)
        marked = engine.risk.marked_quietly
        for client in span.holders:
            marked(client, first.times)
        if not bars:
            return
    if not venue.quotes_leave_only_the_last(symbol):  # every quote counts: bar by bar
        for bar in bars:
            absorb_points(engine, span, bar, 0)
        return
    signals = engine.signals
    name = venue.name
    before = venue.marks[symbol]  # the mark the point before left (the venue: at the end)
    for bar in bars:
        times = bar.times
        if times[3] < signals.idle_until:  # no candle work in this bar
            before = bar.prices[3]
            continue
        at = times[0]
        if at >= signals.idle_until:
            # The open's quote part: the quote itself is read by nothing (the bar's
            # last stays); the desk's candle close and open are the mark, as it was.
            if not signals.open_quietly(name, symbol, at, before):
                venue.take_quiet_mark(symbol, before)
                signals.before_market(name, symbol, at)
                signals.after_market(name, symbol)
            if times[3] < signals.idle_until:  # the usual case: nothing else
                before = bar.prices[3]
                continue
            venue.take_quiet_mark(symbol, before)
            _take(engine, venue, symbol, at, _PRINT, bar.prices[0])
            _take(engine, venue, symbol, at, _MARK, bar.prices[0])
            _points(engine, span, bar, 1)
        else:
            venue.take_quiet_mark(symbol, before)
            _points(engine, span, bar, 0)
        before = bar.prices[3]
    last = bars[-1]
    price, size = last.prices[3], last.sizes[3]
    venue.take_quiet_quote(symbol, price, size, price + last.tick, size, last.times[3])
    venue.take_quiet_print(symbol, price)
    venue.take_quiet_mark(symbol, price)
    marked = engine.risk.marked_quietly
    for client in span.holders:
        marked(client, chain.from_iterable(bar.times for bar in bars))


def equity_marked(engine: Engine, span: QuietSpan, client: str, venue: str,
                  price: Decimal) -> Decimal:
    """``client``'s equity on ``venue`` were ``span``'s symbol marked at ``price`` and
    nothing else changed: ``Engine.equity`` after quiet points up to a mark of
    ``price`` (it moves only the equity of the symbol's holders)."""
    if client not in span.holders:
        return engine.equity(client, venue)
    return engine._equity_and_maintenance(client, venue, maintenance=False,
                                          marked=(span.symbol, price))[0]


def absorb_update(engine: Engine, span: QuietSpan, update: Quote | TradePrint | MarkPrice
                  ) -> None:
    """One update of a point inside ``span``, as ``Engine.on_market`` would take it
    (for a point the strategy host must see update by update)."""
    if isinstance(update, Quote):
        _take(engine, span.venue, span.symbol, update.ts, _QUOTE, update.bid,
              update.bid_size, update.ask, update.ask_size)
    elif isinstance(update, TradePrint):
        _take(engine, span.venue, span.symbol, update.ts, _PRINT, update.price)
    else:
        _take(engine, span.venue, span.symbol, update.ts, _MARK, update.price)
        marked = engine.risk.marked_quietly
        for client in span.holders:
            marked(client, (update.ts,))


_QUOTE, _PRINT, _MARK = range(3)


def _with_candle_work(engine: Engine, venue: PaperVenue, symbol: str, at: datetime,
                      price: Decimal, size: Decimal, ask: Decimal) -> None:
    """A whole point, each part with the signal desk's work around it."""
    for part in (_QUOTE, _PRINT, _MARK):
        _take(engine, venue, symbol, at, part, price, size, ask, size)


def _take(engine: Engine, venue: PaperVenue, symbol: str, at: datetime, part: int,
          price: Decimal, size: Decimal = ZERO, ask: Decimal = ZERO,
          ask_size: Decimal = ZERO) -> None:
    """One part of a point (quote, print or mark) as ``on_market`` takes it: with the
    signal desk's candle work around it when a candle begins."""
    signals = engine.signals
    candle_work = at >= signals.idle_until
    if candle_work:
        if part == _QUOTE and signals.open_quietly(venue.name, symbol, at,
                                                   venue.marks[symbol]):
            # (a quote leaves the mark, the desk's reference price, as it was)
            venue.take_quiet_quote(symbol, price, size, ask, ask_size, at)
            return
        signals.before_market(venue.name, symbol, at)
    if part == _QUOTE:
        venue.take_quiet_quote(symbol, price, size, ask, ask_size, at)
    elif part == _PRINT:
        venue.take_quiet_print(symbol, price)
    else:
        venue.take_quiet_mark(symbol, price)
    if candle_work:
        signals.after_market(venue.name, symbol)
