"""Synthetic market data: the embedded default feed.

Seeded and deterministic, so demos, tests and replays of a paper session see
the same market every time. Prices live on integer tick indices and sizes on
integer step units; they become ``Decimal`` only when an update is built, so
every price is an exact multiple of the tick and every size of the step.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import islice

from app.domain.instruments import Instrument
from app.domain.market import (
    BookDelta,
    BookSnapshot,
    FundingRate,
    MarketUpdate,
    MarkPrice,
    Quote,
    TradePrint,
)
from app.domain.orders import Side

_DEFAULT_PRICES = (
    ("BTC", Decimal(60000)),
    ("ETH", Decimal(3000)),
    ("SOL", Decimal(150)),
    ("XRP", Decimal("0.6")),
)
_FALLBACK_PRICE = Decimal(100)

# Book shape: the touch holds roughly this much notional, and each level
# further out holds DEPTH_GROWTH more (relative to the touch) than the last.
_TOUCH_NOTIONAL = Decimal(5000)
_DEPTH_GROWTH = 0.35
# Share of resting levels redrawn each step; this keeps the shape recovering
# after the book shifts or a trade eats the touch.
_LEVEL_REFRESH = 0.25
# Pull of the mid back to its start per step: keeps long demos in range
# without being visible over minutes.
_MEAN_REVERSION = 0.0005
# Smoothing of the mid for the mark price (per step).
_MARK_ALPHA = 0.2
_SPREADS = (1, 2, 3)
_SPREAD_WEIGHTS = (6, 3, 1)
_RATE_QUANTUM = Decimal("0.000001")
# Cross-venue structure: one fair price per symbol, shared by every venue that lists
# it; each venue's mid sits a small basis off it that decays back (the spread an
# arbitrage sees: a few bps, gone in tens of seconds).
_BASIS_DECAY = 0.01  # per step
_BASIS_SHOCK = 2.5e-5  # relative, per step: about 1.8 bps of basis at rest
# Funding: a rate per symbol common to all venues (the market's tilt) plus a premium
# per venue, each persistent (updated once a minute, drifting back slowly), so the
# venues' rates diverge for hours at a time and converge now and then. Capped at
# ±0.75 % per interval, as venues cap them.
_COMMON_RATE_MEAN = 0.0001
_COMMON_RATE_DECAY = 0.02  # per minute
_COMMON_RATE_SHOCK = 0.00002
_PREMIUM_DECAY = 0.003  # per minute: a half-life of about four hours
_PREMIUM_SHOCK = 0.00006  # about 0.08 % of premium at rest
_MAX_RATE = 0.0075


def default_initial_price(symbol: str) -> Decimal:
    """A plausible starting price, matched by symbol prefix (``BTC-PERP`` -> 60000)."""
    upper = symbol.upper()
    for prefix, price in _DEFAULT_PRICES:
        if upper.startswith(prefix):
            return price
    return _FALLBACK_PRICE


def next_funding_at(ts: datetime, interval: timedelta) -> datetime:
    """The first multiple of ``interval`` since midnight UTC strictly after ``ts``.

    For 8 h that is 00:00, 08:00 or 16:00; a ``ts`` exactly on the grid
    points at the next slot, because that settlement is already happening.
    """
    ts = ts.astimezone(UTC)
    midnight = ts.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight + ((ts - midnight) // interval + 1) * interval


def _as_utc(ts: datetime) -> datetime:
    if ts.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware (UTC)")
    return ts.astimezone(UTC)


@dataclass(slots=True)
class _InstrumentState:
    """Per-instrument walk and book state. Sizes are in step units."""

    instrument: Instrument
    rng: random.Random
    mid: float  # fair mid, in ticks
    anchor: float
    mark_mid: float
    touch_units: int
    min_units: int
    bids: dict[int, int] = field(default_factory=dict)  # as published, minus trades since
    asks: dict[int, int] = field(default_factory=dict)
    shown_bids: dict[int, int] = field(default_factory=dict)  # as the consumers have it
    shown_asks: dict[int, int] = field(default_factory=dict)
    trade_seq: int = 0
    basis: float = 0.0  # relative offset of this venue's mid from the symbol's fair price
    premium: float = 0.0  # this venue's funding premium over the symbol's common rate


@dataclass(slots=True)
class _SymbolState:
    """What the venues listing one symbol share: its fair price and common rate."""

    rng: random.Random
    fair: float  # relative to the anchor: 1.0 at the start
    rate: float = _COMMON_RATE_MEAN
    step: int = -1  # the step it was last moved on


class SyntheticMarket:
    """An endless, deterministic stream of market updates for some instruments.

    Each step, for each instrument in order, it emits: the book (a
    ``BookSnapshot`` on the first step and every ``snapshot_every`` steps,
    otherwise a ``BookDelta`` against the previous book), the matching
    top-of-book ``Quote``, sometimes a ``TradePrint`` at the touch, a
    ``MarkPrice`` about once a second and, for perps, a ``FundingRate``
    about once a minute. All updates of a step share its ``ts``.

    Iterate it directly, or call ``take(n)`` for the next ``n`` updates.
    """

    def __init__(
        self,
        instruments: list[Instrument],
        *,
        seed: int = 7,
        start: datetime,
        step: timedelta = timedelta(milliseconds=250),
        initial_prices: dict[str, Decimal] | None = None,
        levels: int = 20,
        volatility_bps: Decimal | float = Decimal("0.5"),
        snapshot_every: int = 240,
        trade_probability: float = 0.3,
        books: bool = True,
    ) -> None:
        if step <= timedelta(0):
            raise ValueError("step must be positive")
        if levels < 1 or snapshot_every < 1:
            raise ValueError("levels and snapshot_every must be at least 1")
        self._start = _as_utc(start)
        self._step = step
        self._levels = levels
        self._volatility = float(volatility_bps) / 10_000
        self._snapshot_every = snapshot_every
        self._trade_probability = trade_probability
        # Without books, only quotes (and trades, marks, funding): a paper venue then
        # synthesizes depth around each quote. Lighter, for long simulations.
        self._books = books
        # "About once a second / a minute" whatever the step: at least every step.
        self._mark_every = max(1, round(timedelta(seconds=1) / step))
        self._funding_every = max(1, round(timedelta(minutes=1) / step))
        prices = initial_prices or {}
        self._states = [
            self._new_state(inst, seed, prices.get(inst.symbol)) for inst in instruments
        ]
        self._symbols = {inst.symbol: _SymbolState(random.Random(f"{seed}:{inst.symbol}"), 1.0)
                         for inst in instruments}
        self._updates = self._generate()

    def _new_state(self, inst: Instrument, seed: int, price: Decimal | None) -> _InstrumentState:
        price = price if price is not None else default_initial_price(inst.symbol)
        # One RNG per instrument, seeded by its identity, so adding an
        # instrument to the list does not change the others' streams.
        rng = random.Random(f"{seed}:{inst.venue}:{inst.symbol}")
        mid = max(float(price / inst.tick_size), self._levels + 2.0)
        touch = max(1, round(_TOUCH_NOTIONAL / (price * inst.step_size)))
        min_units = max(1, math.ceil(inst.min_qty / inst.step_size))
        state = _InstrumentState(inst, rng, mid, mid, mid, max(touch, min_units), min_units)
        # Funding premiums start where they would be at rest, not all at zero.
        state.premium = rng.gauss(0.0, _PREMIUM_SHOCK / math.sqrt(2 * _PREMIUM_DECAY))
        return state

    def __iter__(self) -> Iterator[MarketUpdate]:
        return self

    def __next__(self) -> MarketUpdate:
        return next(self._updates)

    def take(self, n: int) -> list[MarketUpdate]:
        """The next ``n`` updates (the stream continues from there afterwards)."""
        return list(islice(self._updates, n))

    def _generate(self) -> Iterator[MarketUpdate]:
        index = 0
        while True:
            ts = self._start + index * self._step
            for state in self._states:
                yield from self._step_instrument(state, index, ts)
            index += 1

    def _step_instrument(
        self, st: _InstrumentState, index: int, ts: datetime
    ) -> list[MarketUpdate]:
        inst, rng = st.instrument, st.rng
        common = self._symbol_at(inst.symbol, index)
        st.basis += rng.gauss(0.0, _BASIS_SHOCK) - _BASIS_DECAY * st.basis
        st.mid = st.anchor * common.fair * (1.0 + st.basis)
        # Keep the deepest bid level above zero.
        st.mid = max(st.mid, self._levels + 2.0)
        spread = rng.choices(_SPREADS, _SPREAD_WEIGHTS)[0]
        best_bid = max(self._levels, round(st.mid - spread / 2))
        best_ask = best_bid + spread

        bids = self._side(st, st.bids, range(best_bid, best_bid - self._levels, -1))
        asks = self._side(st, st.asks, range(best_ask, best_ask + self._levels))
        # Index 0 is a multiple too: consumers always start from a snapshot.
        snapshot = index % self._snapshot_every == 0
        out: list[MarketUpdate] = (
            [self._book_update(st, bids, asks, snapshot, ts)] if self._books else [])
        st.bids, st.asks = dict(bids), dict(asks)
        st.shown_bids, st.shown_asks = bids, asks

        out.append(
            Quote(
                inst.venue,
                inst.symbol,
                self._px(st, best_bid),
                self._qty(st, bids[best_bid]),
                self._px(st, best_ask),
                self._qty(st, asks[best_ask]),
                ts,
            )
        )
        if rng.random() < self._trade_probability:
            out.append(self._trade(st, best_bid, best_ask, ts))

        st.mark_mid += _MARK_ALPHA * ((best_bid + best_ask) / 2 - st.mark_mid)
        if index % self._mark_every == 0:
            out.append(MarkPrice(inst.venue, inst.symbol, self._px(st, round(st.mark_mid)), ts))
        if inst.is_perp and index % self._funding_every == 0:
            st.premium += rng.gauss(0.0, _PREMIUM_SHOCK) - _PREMIUM_DECAY * st.premium
            raw = max(-_MAX_RATE, min(_MAX_RATE, common.rate + st.premium))
            rate = Decimal(round(raw / 1e-6)) * _RATE_QUANTUM
            funding_at = next_funding_at(ts, inst.funding_interval)
            out.append(FundingRate(inst.venue, inst.symbol, rate, funding_at, ts))
        return out

    def _symbol_at(self, symbol: str, index: int) -> _SymbolState:
        """The symbol's shared state, moved once per step (by whichever venue's
        instrument comes first) and once a minute for its common rate."""
        common = self._symbols[symbol]
        if common.step != index:
            common.step = index
            rng = common.rng
            common.fair *= 1.0 + rng.gauss(0.0, self._volatility)
            common.fair += _MEAN_REVERSION * (1.0 - common.fair)
            if index % self._funding_every == 0:
                common.rate += (rng.gauss(0.0, _COMMON_RATE_SHOCK)
                                + _COMMON_RATE_DECAY * (_COMMON_RATE_MEAN - common.rate))
        return common

    def _side(self, st: _InstrumentState, previous: dict[int, int], ticks: range) -> dict[int, int]:
        """New levels for one side: resting levels mostly keep their size, new
        ones (and a random share of the old) get a fresh size for their depth."""
        rng = st.rng
        levels: dict[int, int] = {}
        for depth, tick in enumerate(ticks):
            units = previous.get(tick)
            if units is None or rng.random() < _LEVEL_REFRESH:
                target = st.touch_units * (1 + _DEPTH_GROWTH * depth) * rng.uniform(0.6, 1.4)
                units = max(st.min_units, round(target))
            levels[tick] = units
        return levels

    def _book_update(
        self,
        st: _InstrumentState,
        bids: dict[int, int],
        asks: dict[int, int],
        snapshot: bool,
        ts: datetime,
    ) -> BookSnapshot | BookDelta:
        inst = st.instrument
        if snapshot:
            return BookSnapshot(
                inst.venue,
                inst.symbol,
                self._levels_out(st, bids, reverse=True),
                self._levels_out(st, asks, reverse=False),
                ts,
            )
        # Diff against what consumers hold, not the trade-depleted working
        # copy, so applying the deltas reproduces this book exactly.
        bid_changes = _diff(st.shown_bids, bids)
        ask_changes = _diff(st.shown_asks, asks)
        return BookDelta(
            inst.venue,
            inst.symbol,
            self._levels_out(st, bid_changes, reverse=True),
            self._levels_out(st, ask_changes, reverse=False),
            ts,
        )

    def _trade(
        self, st: _InstrumentState, best_bid: int, best_ask: int, ts: datetime
    ) -> TradePrint:
        rng, inst = st.rng, st.instrument
        aggressor = Side.BUY if rng.random() < 0.5 else Side.SELL
        # A buyer lifts the offer, a seller hits the bid.
        book, tick = (st.asks, best_ask) if aggressor is Side.BUY else (st.bids, best_bid)
        available = book[tick]
        units = rng.randint(min(st.min_units, available), available)
        # The trade consumes liquidity: the next delta shows the level smaller.
        if units == available:
            del book[tick]
        else:
            book[tick] = available - units
        st.trade_seq += 1
        return TradePrint(
            inst.venue,
            inst.symbol,
            self._px(st, tick),
            self._qty(st, units),
            aggressor,
            ts,
            trade_id=str(st.trade_seq),
        )

    def _levels_out(
        self, st: _InstrumentState, levels: dict[int, int], *, reverse: bool
    ) -> tuple[tuple[Decimal, Decimal], ...]:
        return tuple(
            (self._px(st, t), self._qty(st, levels[t])) for t in sorted(levels, reverse=reverse)
        )

    @staticmethod
    def _px(st: _InstrumentState, ticks: int) -> Decimal:
        return ticks * st.instrument.tick_size

    @staticmethod
    def _qty(st: _InstrumentState, units: int) -> Decimal:
        return units * st.instrument.step_size


def _diff(old: dict[int, int], new: dict[int, int]) -> dict[int, int]:
    """Levels whose size changed, with 0 for levels that disappeared."""
    changes = {tick: units for tick, units in new.items() if old.get(tick) != units}
    changes.update((tick, 0) for tick in old if tick not in new)
    return changes


_QT_MOVES = (-1, 0, 0, 1)
_QT_SPREADS = (1, 1, 2, 3)


def quote_ticks(
    n: int,
    *,
    venue: str,
    symbol: str,
    tick: Decimal,
    start_price: Decimal,
    size_step: Decimal,
    seed: int = 1,
    start: datetime,
    step: timedelta = timedelta(milliseconds=10),
) -> list[Quote]:
    """``n`` L1 quotes, fast: a random walk in ticks, spread 1–3 ticks,
    sizes 1–16 steps, one quote every ``step``.

    Built for benchmarks that need a million quotes: one RNG call per quote,
    and prices and sizes come from caches of ``Decimal`` objects instead of
    being constructed each time.
    """
    rng = random.Random(seed)
    bits = rng.getrandbits
    prices: dict[int, Decimal] = {}
    sizes = [k * size_step for k in range(1, 17)]
    bid_i = max(1, int((start_price / tick).to_integral_value()))
    ts = _as_utc(start)
    quotes: list[Quote] = []
    append = quotes.append
    for _ in range(n):
        r = bits(12)
        bid_i = max(1, bid_i + _QT_MOVES[r & 3])
        ask_i = bid_i + _QT_SPREADS[(r >> 2) & 3]
        bid = prices.get(bid_i)
        if bid is None:
            bid = prices[bid_i] = bid_i * tick
        ask = prices.get(ask_i)
        if ask is None:
            ask = prices[ask_i] = ask_i * tick
        append(Quote(venue, symbol, bid, sizes[(r >> 4) & 15], ask, sizes[(r >> 8) & 15], ts))
        ts += step
    return quotes
