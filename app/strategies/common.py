"""What the built-in trend strategies share: turning the feed of one symbol into
bars and a liquidity view, the liquidity filters of seed 000, the protective stop
they keep in line with their position, and the record of their last signal.

Kept apart from each strategy's *decision* (pure functions of bars, indicators
and state, in the strategy's module) and from its order placing (one small
method per strategy), so the placing can later go through signals.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import Field

from app.domain.commands import Command
from app.domain.instruments import Instrument, Rounding
from app.domain.market import MarketUpdate, MarkPrice, PriceBar, Quote, TradePrint
from app.domain.orders import Order, OrderType, Side
from app.domain.risk import SizingMode, SizingRequest
from app.strategies.bars import FAR_FUTURE, Bar, MultiBars, to_saved
from app.strategies.base import StrategyContext

ZERO = Decimal(0)
BPS = Decimal(10_000)
HUNDRED = Decimal(100)
MINUTE = timedelta(minutes=1)

Symbol = Annotated[str, Field(pattern=r"^[A-Z0-9]{1,20}-[A-Z0-9]{1,20}$")]
Interval = Annotated[str, Field(pattern=r"^[1-9][0-9]{0,3}[smhd]$")]

# exit_reason tags of the strategies' own orders: what each resting order is for
# (a restarted strategy recognises its protective orders by them).
ENTRY = None
STOP = "stop"
TP1 = "tp1"
TP2 = "tp2"


class PriceSource(StrEnum):
    """Which prints make the bars."""

    TRADE = "trade"  # public trades (volume too)
    MID = "mid"  # quote mids (volume still from trades)
    MARK = "mark"  # mark prices (volume still from trades)


class Sizing(StrEnum):
    """The engine's impact-aware sizing mode for entries (seed 000 §2.2); ``client``
    leaves it to the client's risk profile."""

    CLIENT = "client"
    CONSERVATIVE = "conservative"
    STRICT = "strict"
    AGGRESSIVE = "aggressive"
    NONE = "none"

    def request(self) -> SizingRequest | None:
        return None if self is Sizing.CLIENT else SizingRequest(SizingMode(self.value))


@dataclass(slots=True)
class SymbolFeed:
    """One symbol's feed as a strategy sees it: bars of its intervals, the last
    quote, and the notional traded over the last minute."""

    symbol: str
    bars: MultiBars
    source: PriceSource = PriceSource.TRADE
    # Whether it keeps the notional traded over the last minute (``volume_1m``): only a
    # strategy with a minimum volume filter reads it, and it costs a deque a print.
    track_volume: bool = True
    bid: Decimal | None = None
    ask: Decimal | None = None
    bid_size: Decimal = ZERO
    ask_size: Decimal = ZERO
    mark: Decimal | None = None
    first_seen: datetime | None = None  # bars that began before it are partial: dropped
    seen_at: datetime | None = None  # the last update's time
    _trades: deque[tuple[datetime, Decimal]] = field(default_factory=deque)
    _volume: Decimal = ZERO

    def on_update(self, update: MarketUpdate) -> list[Bar]:
        """Bars this update closed (none for other symbols). The first bar of each
        interval after a (re)start is left out when it began before the first update
        seen: it would hold only part of its interval."""
        if update.symbol != self.symbol:
            return []
        if self.first_seen is None:
            self.first_seen = update.ts
        self.seen_at = update.ts
        first = self.first_seen
        return [b for b in self._bars(update) if b.start >= first]

    def _bars(self, update: MarketUpdate) -> list[Bar]:
        ts = update.ts
        if isinstance(update, TradePrint):
            notional = update.price * update.qty
            if self.track_volume:
                self._trades.append((ts, notional))
                self._volume += notional
                self._expire(ts)
            price = update.price if self.source is PriceSource.TRADE else self._price_now()
            if price is None:
                return self.bars.close_due(ts)
            return self.bars.update(price, ts, notional)
        if isinstance(update, Quote):
            self.bid, self.ask = update.bid, update.ask
            self.bid_size, self.ask_size = update.bid_size, update.ask_size
            if self.source is PriceSource.MID:
                return self.bars.update((update.bid + update.ask) / 2, ts)
        elif isinstance(update, MarkPrice):
            self.mark = update.price
            if self.source is PriceSource.MARK:
                return self.bars.update(update.price, ts)
        return self.bars.close_due(ts)

    def quiet_until(self) -> datetime | None:
        """Updates of this symbol before this time close no bar (None: one might)."""
        return None if self.seen_at is None else self.bars.quiet_until(self.seen_at)

    def absorb_points(self, bar: PriceBar, first: int, stop: int = 4, *,
                      quoted: bool = False) -> None:
        """Points ``first`` to ``stop`` (excluded) of ``bar``, all before
        ``quiet_until``: what ``on_update`` makes of each one's quote (price and price
        plus a tick, both sizes the point's), print and mark, none of which can close
        a bar (``quoted``: point ``first``'s quote was taken already, by ``on_update``)."""
        bars, source, trades = self.bars, self.source, self._trades
        tick = bar.tick
        if source is PriceSource.TRADE:  # the common case: the bar's prints at once
            prices = bar.prices[first:stop]
            times = bar.times[first:stop]
            notionals = [p * s for p, s in zip(prices, bar.sizes[first:stop], strict=True)]
            if self.track_volume:
                volume = self._volume
                for at, notional in zip(times, notionals, strict=True):
                    trades.append((at, notional))
                    volume += notional
                self._volume = volume
            bars.extend_trades(prices, notionals, times)
        else:
            for k in range(first, stop):
                at, price, size = bar.times[k], bar.prices[k], bar.sizes[k]
                notional = price * size
                if self.track_volume:
                    trades.append((at, notional))
                    self._volume += notional
                if source is PriceSource.MID:
                    mid = (price + (price + tick)) / 2  # as the quote's (bid + ask) / 2
                    if not (quoted and k == first):
                        bars.extend(mid, at)
                    bars.extend(mid, at, notional)  # the print: the mid now, with its volume
                else:  # MARK: the print at the mark before this point's, then the mark
                    if self.mark is not None:
                        bars.extend(self.mark, at, notional)
                    self.mark = price
                    bars.extend(price, at)
        self.seen_at = bar.times[stop - 1]
        if self.track_volume:
            self._expire(self.seen_at)
        price, size = bar.prices[stop - 1], bar.sizes[stop - 1]
        self.bid, self.ask, self.bid_size, self.ask_size = price, price + tick, size, size
        self.mark = price

    def absorb_bars(self, bars: Sequence[PriceBar], quoted: bool = False) -> None:
        """Whole bars in a row, all before ``quiet_until``: ``absorb_points`` over
        each, in one pass for prints (the same sums in the same order; ``quoted``: as
        for the first bar's first point). A quote changes no bar of prints."""
        if self.source is not PriceSource.TRADE:
            for i, bar in enumerate(bars):
                self.absorb_points(bar, 0, quoted=quoted and not i)
            return
        trades, extend = self._trades, self.bars.extend_trades
        volume = self._volume
        append = trades.append
        track = self.track_volume
        for times, prices, sizes, *_ in bars:  # written out: a bar at a time, a million
            n0, n1 = prices[0] * sizes[0], prices[1] * sizes[1]
            n2, n3 = prices[2] * sizes[2], prices[3] * sizes[3]
            extend(prices, (n0, n1, n2, n3), times)
            if not track:
                continue
            append((times[0], n0))
            append((times[1], n1))
            append((times[2], n2))
            append((times[3], n3))
            volume = volume + n0 + n1 + n2 + n3  # in order, as one print at a time
            expired = times[3] - MINUTE  # as _expire, bar by bar
            while trades[0][0] <= expired:
                volume -= trades.popleft()[1]
        self._volume = volume
        last = bars[-1]
        self.seen_at = last.times[3]
        price, size = last.prices[3], last.sizes[3]
        self.bid, self.ask, self.bid_size, self.ask_size = price, price + last.tick, size, size
        self.mark = price

    def _price_now(self) -> Decimal | None:
        if self.source is PriceSource.MID and self.bid is not None and self.ask is not None:
            return (self.bid + self.ask) / 2
        if self.source is PriceSource.MARK:
            return self.mark
        return None

    def _expire(self, now: datetime) -> None:
        while self._trades and self._trades[0][0] <= now - MINUTE:
            _, notional = self._trades.popleft()
            self._volume -= notional

    def volume_1m(self, now: datetime) -> Decimal:
        if not self.track_volume:
            raise RuntimeError(f"{self.symbol}: this feed does not keep its volume")
        self._expire(now)
        return self._volume

    def liquidity_problem(self, filters: LiquidityFilters, side: Side, now: datetime
                          ) -> str | None:
        """``liquidity_problem`` on this feed's quote and volume (read only when the
        filters have a minimum volume: a feed without it may not keep it)."""
        volume = self.volume_1m(now) if filters.min_volume_1m is not None else ZERO
        return liquidity_problem(filters, side, self.bid, self.ask, self.bid_size,
                                 self.ask_size, volume)

    @property
    def mid(self) -> Decimal | None:
        if self.bid is None or self.ask is None:
            return None
        return (self.bid + self.ask) / 2


class QuietFeed:
    """``quiet_until``/``absorb_points`` (app/strategies/base.py) for a strategy that
    acts on market data only when its one ``feed`` closes a bar."""

    feed: SymbolFeed

    def quiet_until(self, symbol: str) -> datetime | None:
        if symbol != self.feed.symbol:
            return FAR_FUTURE  # it takes nothing of other symbols
        return self.feed.quiet_until()

    def absorb_points(self, symbol: str, bar: PriceBar, first: int, stop: int = 4, *,
                      quoted: bool = False) -> None:
        if symbol == self.feed.symbol:
            self.feed.absorb_points(bar, first, stop, quoted=quoted)

    def absorb_bars(self, symbol: str, bars: Sequence[PriceBar], quoted: bool = False
                    ) -> None:
        if symbol == self.feed.symbol:
            self.feed.absorb_bars(bars, quoted)


@dataclass(frozen=True, slots=True)
class LiquidityFilters:
    """Seed 000's filters (None: off): max spread in bps of the mid, min notional at
    the best level the entry would take, min notional traded in the last minute."""

    max_spread_bps: Decimal | None = None
    min_l1_depth: Decimal | None = None
    min_volume_1m: Decimal | None = None


def liquidity_problem(filters: LiquidityFilters, side: Side, bid: Decimal | None,
                      ask: Decimal | None, bid_size: Decimal, ask_size: Decimal,
                      volume_1m: Decimal) -> str | None:
    """Why an entry on ``side`` may not go now (None: the filters pass). The same
    tests as the engine's profile-wide filters (app/engine/risk_controls.py), on the
    strategy's own thresholds."""
    if filters.max_spread_bps is not None:
        if bid is None or ask is None or bid <= 0:
            return "no two-sided quote"
        spread = (ask - bid) / ((ask + bid) / 2) * BPS
        if spread > filters.max_spread_bps:
            return f"spread {spread:.1f} bps > {filters.max_spread_bps}"
    if filters.min_l1_depth is not None:
        price, size = (ask, ask_size) if side is Side.BUY else (bid, bid_size)
        depth = price * size if price is not None else ZERO
        if depth < filters.min_l1_depth:
            return f"L1 depth {depth:.0f} < {filters.min_l1_depth}"
    if filters.min_volume_1m is not None and volume_1m < filters.min_volume_1m:
        return f"1m volume {volume_1m:.0f} < {filters.min_volume_1m}"
    return None


@dataclass(frozen=True, slots=True)
class LastSignal:
    """A strategy's last decision, for its status and the dashboard."""

    signal: int  # 1 long, -1 short, 0 flat / exit
    at: datetime
    reason: str
    price: Decimal | None = None
    stop: Decimal | None = None
    targets: tuple[Decimal, ...] = ()


def own_orders(ctx: StrategyContext, symbol: str, reason: str | None) -> list[Order]:
    return [o for o in ctx.open_orders(symbol) if o.spec.tags.exit_reason == reason]


def entry_pending(ctx: StrategyContext, symbol: str) -> bool:
    """An entry of this strategy still working (never enter twice)."""
    return any(not o.spec.reduce_only for o in ctx.open_orders(symbol))


def stop_prices(inst: Instrument, side_of_position: int, stop: Decimal,
                limit_spread_bps: Decimal | None) -> tuple[Decimal, Decimal | None]:
    """The trigger (and limit, for a stop-limit) of a protective stop, on the tick,
    rounded away from the position so it never triggers early."""
    if side_of_position > 0:
        trigger = inst.round_price(stop, Rounding.DOWN)
        limit = None if limit_spread_bps is None else inst.round_price(
            trigger * (1 - limit_spread_bps / BPS), Rounding.DOWN)
    else:
        trigger = inst.round_price(stop, Rounding.UP)
        limit = None if limit_spread_bps is None else inst.round_price(
            trigger * (1 + limit_spread_bps / BPS), Rounding.UP)
    return trigger, limit


def keep_stop(ctx: StrategyContext, inst: Instrument, stop: Decimal | None,
              limit_spread_bps: Decimal | None) -> list[Command]:
    """Make this strategy's protective stop match its position: one reduce-only stop
    (stop-limit when ``limit_spread_bps`` is set, else stop-market) for the whole
    position at ``stop``; none when flat. Cancels and re-places what differs."""
    qty = ctx.position_qty(inst.symbol)
    existing = own_orders(ctx, inst.symbol, STOP)
    commands: list[Command] = []
    if not qty or stop is None:
        return [ctx.cancel(o.order_id, "flat") for o in existing]
    sign = 1 if qty > 0 else -1
    trigger, limit = stop_prices(inst, sign, stop, limit_spread_bps)
    side = Side.SELL if sign > 0 else Side.BUY
    kind = OrderType.STOP if limit is None else OrderType.STOP_LIMIT
    keep: Order | None = None
    for order in existing:
        spec = order.spec
        if (keep is None and spec.side is side and spec.type is kind
                and spec.trigger_price == trigger and spec.price == limit
                and order.remaining_qty == abs(qty)):
            keep = order
        else:
            commands.append(ctx.cancel(order.order_id, "stop moved"))
    if keep is None:
        commands.append(ctx.submit(inst.symbol, side, kind, abs(qty), price=limit,
                                   trigger_price=trigger, reduce_only=True,
                                   exit_reason=STOP))
    return commands


def cancel_all(ctx: StrategyContext, symbol: str, reason: str) -> list[Command]:
    return [ctx.cancel(o.order_id, reason) for o in ctx.open_orders(symbol)]


def close_position(ctx: StrategyContext, symbol: str, reason: str) -> list[Command]:
    """Cancel this strategy's orders on ``symbol`` and flatten with a reduce-only market."""
    commands = cancel_all(ctx, symbol, reason)
    qty = ctx.position_qty(symbol)
    if qty:
        commands.append(ctx.submit(symbol, Side.SELL if qty > 0 else Side.BUY,
                                   OrderType.MARKET, abs(qty), reduce_only=True,
                                   exit_reason=reason))
    return commands


def pct_of(price: Decimal, pct: Decimal) -> Decimal:
    return price * pct / HUNDRED


def take_bars(ctx: StrategyContext, feed: SymbolFeed, update: MarketUpdate
              ) -> tuple[list[Bar], list[Command]]:
    """The bars ``update`` closed, and the record that keeps them for a restart
    (``ctx.saved_bars`` hands them back)."""
    bars = feed.on_update(update)
    if not bars:
        return bars, []
    return bars, [ctx.record_bars([to_saved(feed.symbol, b) for b in bars])]
