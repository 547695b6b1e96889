"""Kind ``ma_crossover``: a fast/slow moving-average crossover (seed 000 §5.2).

Decision (pure, ``CrossDetector`` and ``ma_signal``): on every closed bar of
``interval`` the fast and slow MAs are compared with a tolerance of
``ma_cross_epsilon_bps`` of the slow MA — the fast MA is *above* only when it
exceeds slow × (1 + ε), *below* only under slow × (1 − ε), and in between it is
neither (ε = 0 is the raw comparison). A cross is a change from below to above
(bullish, +1) or above to below (bearish, −1); with ``ma_cross_confirm_bars`` N
the new side must hold for N more bars before the signal fires, and a bar that
is not on the new side drops the pending cross. The first side seen after a
(re)start only sets the state: a strategy never trades on an old cross. With
``rsi_confirm`` a bullish cross needs RSI ≥ ``rsi_long_min`` (and below
``rsi_overbought``), a bearish one RSI ≤ ``rsi_short_max`` (and above
``rsi_oversold``).

Placing (``MaCrossover._act``): +1 buys ``order_notional`` (closing a short
first), −1 sells (closing a long; opening a short unless ``long_only``). An
entry is refused by seed 000's filters (``max_spread_bps``, ``min_l1_depth``,
``min_volume_1m``, off when null) and sized by the engine's impact-aware sizing
in ``sizing_mode``. Entries are market orders, or limits ``limit_offset_bps``
from the mid (seed 000's 5) with ``use_limit_orders``. Every position gets a
reduce-only stop-limit ``stop_pct`` % from its average entry (seed 003's 2 %),
its limit ``stop_limit_spread_bps`` beyond the trigger (seed 000's 10), kept
in line with the position after each fill.

With ``use_signals`` the strategy places nothing itself: each cross becomes a
signal (+1 / −1, or 0 when the filters refuse an entry while a position is open
the other way), which the engine turns into orders with the client's signal
parameters — size, entry, and the OCO take-profit / stop-loss bracket that then
protects the position instead of the strategy's own stop (app/engine/signals.py) —
exactly as ``POST /api/v1/signals`` would.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import Field, model_validator

from app.domain.commands import Command
from app.domain.events import Event, OrderFilled
from app.domain.instruments import Instrument, Rounding
from app.domain.market import MarketUpdate
from app.domain.orders import OrderType, Side
from app.strategies.bars import Bar, MultiBars, parse_interval, saved_in_order
from app.strategies.base import (
    BaseStrategy,
    Commands,
    StrategyContext,
    StrategyKind,
    StrategyParams,
)
from app.strategies.common import (
    BPS,
    HUNDRED,
    Interval,
    LastSignal,
    LiquidityFilters,
    PriceSource,
    QuietFeed,
    Sizing,
    Symbol,
    SymbolFeed,
    close_position,
    entry_pending,
    keep_stop,
    take_bars,
)
from app.strategies.indicators import EMA, RSI, SMA
from app.strategies.registry import register

Money = Annotated[Decimal, Field(gt=0, le=100_000_000, decimal_places=2)]


class MaType(StrEnum):
    SMA = "sma"
    EMA = "ema"


class MaCrossoverParams(StrategyParams):
    symbol: Symbol = "BTC-PERP"
    interval: Interval = "5m"
    price_source: PriceSource = PriceSource.TRADE
    ma_type: MaType = MaType.SMA
    fast_period: Annotated[int, Field(ge=1, le=1000)] = 10
    slow_period: Annotated[int, Field(ge=2, le=2000)] = 30
    ma_cross_epsilon_bps: Annotated[Decimal, Field(ge=0, le=1000, decimal_places=2)] = \
        Decimal(1)
    ma_cross_confirm_bars: Annotated[int, Field(ge=0, le=100)] = 0
    rsi_confirm: bool = False
    rsi_period: Annotated[int, Field(ge=2, le=500)] = 14
    rsi_long_min: Annotated[Decimal, Field(ge=0, le=100, decimal_places=2)] = Decimal(50)
    rsi_short_max: Annotated[Decimal, Field(ge=0, le=100, decimal_places=2)] = Decimal(50)
    rsi_overbought: Annotated[Decimal, Field(ge=0, le=100, decimal_places=2)] = Decimal(70)
    rsi_oversold: Annotated[Decimal, Field(ge=0, le=100, decimal_places=2)] = Decimal(30)
    long_only: bool = False
    order_notional: Money = Decimal(100)
    use_limit_orders: bool = False
    limit_offset_bps: Annotated[Decimal, Field(ge=0, le=1000, decimal_places=2)] = Decimal(5)
    stop_pct: Annotated[Decimal, Field(gt=0, le=50, decimal_places=3)] = Decimal(2)
    stop_limit_spread_bps: Annotated[Decimal, Field(ge=0, le=1000, decimal_places=2)] = \
        Decimal(10)
    max_spread_bps: Annotated[Decimal | None, Field(gt=0, le=10_000, decimal_places=2)] = None
    # Seed 000's --liq-buffer-pct: no entry whose position could be liquidated by a move
    # of less than this (percent of the price), the account's equity and maintenance
    # margin after the entry taken into account (cross margin). None: no such check.
    liq_buffer_pct: Annotated[Decimal | None, Field(gt=0, le=100, decimal_places=2)] = None
    min_l1_depth: Annotated[Decimal | None, Field(gt=0, le=1e12, decimal_places=2)] = None
    min_volume_1m: Annotated[Decimal | None, Field(gt=0, le=1e12, decimal_places=2)] = None
    sizing_mode: Sizing = Sizing.CLIENT
    # Emit each cross as a signal (ctx.signal) for the engine to turn into orders with
    # the client's signal parameters and their bracket, instead of placing orders here.
    use_signals: bool = False

    @model_validator(mode="after")
    def _periods(self) -> MaCrossoverParams:
        if self.fast_period >= self.slow_period:
            raise ValueError("fast_period must be below slow_period")
        parse_interval(self.interval)
        return self


# ---- decision -------------------------------------------------------------------------

def relation(fast: Decimal, slow: Decimal, epsilon_bps: Decimal) -> int:
    """+1 fast above slow by more than ε bps of slow, −1 below by more, 0 within."""
    band = slow * epsilon_bps / BPS
    if fast > slow + band:
        return 1
    if fast < slow - band:
        return -1
    return 0


class CrossDetector:
    """Crossovers with seed 000's epsilon tolerance and confirmation bars."""

    __slots__ = ("_held", "_pending", "confirm_bars", "epsilon_bps", "side")

    def __init__(self, epsilon_bps: Decimal, confirm_bars: int):
        self.epsilon_bps = epsilon_bps
        self.confirm_bars = confirm_bars
        self.side = 0  # the last confirmed side
        self._pending = 0
        self._held = 0

    def update(self, fast: Decimal, slow: Decimal) -> int:
        """+1 a confirmed bullish cross on this bar, −1 a bearish one, else 0."""
        rel = relation(fast, slow, self.epsilon_bps)
        if self._pending:
            if rel == self._pending:
                self._held += 1
                if self._held >= self.confirm_bars:
                    self.side, self._pending = rel, 0
                    return rel
                return 0
            self._pending = 0  # not confirmed: the cross is dropped
        if rel == 0:
            return 0
        if self.side == 0:
            self.side = rel  # the state after a (re)start is not a cross
            return 0
        if rel != self.side:
            if self.confirm_bars == 0:
                self.side = rel
                return rel
            self._pending, self._held = rel, 0
        return 0


def rsi_allows(signal: int, rsi: Decimal | None, p: MaCrossoverParams) -> bool:
    """Seed 000's RSI confirmation of a cross (always true when off)."""
    if not p.rsi_confirm or signal == 0:
        return True
    if rsi is None:
        return False
    if signal > 0:
        return p.rsi_long_min <= rsi < p.rsi_overbought
    return p.rsi_oversold < rsi <= p.rsi_short_max


@dataclass(slots=True)
class MaSignal:
    signal: int
    reason: str
    fast: Decimal | None
    slow: Decimal | None
    rsi: Decimal | None


class MaModel:
    """The indicators and the detector, fed with closed bars: the whole decision."""

    def __init__(self, p: MaCrossoverParams):
        self.p = p
        ma = SMA if p.ma_type is MaType.SMA else EMA
        self.fast = ma(p.fast_period)
        self.slow = ma(p.slow_period)
        self.rsi = RSI(p.rsi_period)
        self.detector = CrossDetector(p.ma_cross_epsilon_bps, p.ma_cross_confirm_bars)
        self.bars = 0

    def on_bar(self, bar: Bar) -> MaSignal:
        self.bars += 1
        fast = self.fast.update(bar.close)
        slow = self.slow.update(bar.close)
        rsi = self.rsi.update(bar.close)
        if fast is None or slow is None:
            return MaSignal(0, "warming up", fast, slow, rsi)
        cross = self.detector.update(fast, slow)
        if cross == 0:
            return MaSignal(0, "no cross", fast, slow, rsi)
        word = "bullish" if cross > 0 else "bearish"
        if not rsi_allows(cross, rsi, self.p):
            return MaSignal(0, f"{word} cross, RSI {rsi} does not confirm", fast, slow, rsi)
        return MaSignal(cross, f"{word} cross", fast, slow, rsi)


# ---- placing --------------------------------------------------------------------------

class MaCrossover(QuietFeed, BaseStrategy):
    def __init__(self, params: MaCrossoverParams):
        self.p = params
        self.model = MaModel(params)
        self.interval = parse_interval(params.interval)
        self.filters = LiquidityFilters(params.max_spread_bps, params.min_l1_depth,
                                        params.min_volume_1m)
        self.feed = SymbolFeed(params.symbol, MultiBars([self.interval]), params.price_source,
                               track_volume=params.min_volume_1m is not None)
        self.last_signal: LastSignal | None = None

    def on_start(self, ctx: StrategyContext) -> Commands:
        # A restart: its indicators take in again the bars it had closed (decisions on
        # them were taken already); the position and its resting stop are the
        # engine's: put the stop back in line with the position (a no-op when it is).
        for bar in saved_in_order(ctx.saved_bars()):
            if bar.interval == self.interval:
                self.model.on_bar(bar)
        inst = ctx.instrument(self.p.symbol)
        if inst is None:
            raise ValueError(f"{self.p.symbol} is not traded on {ctx.venue}")
        if self.p.use_signals:
            return None  # the signal's bracket protects the position
        return self._protect(ctx, inst)

    def on_market(self, update: MarketUpdate, ctx: StrategyContext) -> Commands:
        bars, commands = take_bars(ctx, self.feed, update)
        for bar in bars:
            decision = self.model.on_bar(bar)
            if decision.signal:
                self.last_signal = LastSignal(decision.signal, ctx.now, decision.reason,
                                              bar.close)
                commands += (self._signal(ctx, decision.signal)
                             if self.p.use_signals else self._act(ctx, decision.signal))
        return commands

    def on_event(self, event: Event, ctx: StrategyContext) -> Commands:
        if self.p.use_signals:
            return None
        if isinstance(event, OrderFilled) and event.symbol == self.p.symbol:
            order = ctx.order(event.order_id)
            if order is not None and order.spec.tags.strategy == ctx.strategy_id:
                inst = ctx.instrument(self.p.symbol)
                return self._protect(ctx, inst) if inst is not None else None
        return None

    def on_stop(self, ctx: StrategyContext) -> Commands:
        # Entries are cancelled; the protective stop stays with the position.
        return [ctx.cancel(o.order_id, "strategy stopped")
                for o in ctx.open_orders(self.p.symbol) if not o.spec.reduce_only]

    def status(self) -> dict[str, object]:
        return {"bars": self.model.bars, "fast": self.model.fast.value,
                "slow": self.model.slow.value, "rsi": self.model.rsi.value,
                "last_signal": self.last_signal}

    def _protect(self, ctx: StrategyContext, inst: Instrument) -> list[Command]:
        position = ctx.position(inst.symbol)
        if position is None or not position.qty:
            return keep_stop(ctx, inst, None, None)
        sign = 1 if position.qty > 0 else -1
        stop = position.avg_entry * (1 - sign * self.p.stop_pct / HUNDRED)
        return keep_stop(ctx, inst, stop, self.p.stop_limit_spread_bps)

    def _signal(self, ctx: StrategyContext, signal: int) -> list[Command]:
        """The cross as a signal for the engine's signal pipeline. The strategy's own
        liquidity filters still gate entries: a refused entry becomes a flat signal
        when a position is open the other way (the reversal's close), else nothing."""
        symbol = self.p.symbol
        side = Side.BUY if signal > 0 else Side.SELL
        problem = self.feed.liquidity_problem(self.filters, side, ctx.now)
        if problem is not None:
            self.last_signal = LastSignal(signal, ctx.now, f"filtered: {problem}")
            qty = ctx.position_qty(symbol)
            if qty and (qty > 0) != (signal > 0):
                return [ctx.signal(symbol, 0)]
            return []
        return [ctx.signal(symbol, signal)]

    def _liquidation_room(self, ctx: StrategyContext, inst: Instrument, size: Decimal,
                          price: Decimal) -> Decimal | None:
        """How far (a fraction of the price) the price could move against a position
        of ``size`` before the account's equity met its maintenance margin (cross
        margin: the account's other positions and their maintenance included)."""
        if self.p.liq_buffer_pct is None:
            return None
        summary = ctx.summary()
        notional = size * price
        maintenance = summary.maintenance_margin + inst.maintenance_margin(notional)
        return (summary.equity - maintenance) / notional if notional else None

    def _act(self, ctx: StrategyContext, signal: int) -> list[Command]:
        """The one place a signal becomes orders."""
        symbol = self.p.symbol
        inst = ctx.instrument(symbol)
        if inst is None:
            return []
        qty = ctx.position_qty(symbol)
        if (qty > 0 and signal > 0) or (qty < 0 and signal < 0) or entry_pending(ctx, symbol):
            return []  # already in (or entering) the trade: never double up
        commands: list[Command] = []
        if qty:
            commands += close_position(ctx, symbol, "signal reversed")
        if signal < 0 and self.p.long_only:
            return commands
        side = Side.BUY if signal > 0 else Side.SELL
        problem = self.feed.liquidity_problem(self.filters, side, ctx.now)
        if problem is not None:
            self.last_signal = LastSignal(signal, ctx.now, f"filtered: {problem}")
            return commands
        price = self.feed.mid or ctx.price(symbol)
        if price is None or price <= 0:
            return commands
        size = inst.round_qty(self.p.order_notional / price)
        if size < inst.min_qty:
            return commands
        room = self._liquidation_room(ctx, inst, size, price)
        if room is not None and self.p.liq_buffer_pct is not None \
                and room * 100 < self.p.liq_buffer_pct:
            self.last_signal = LastSignal(
                signal, ctx.now, f"filtered: liquidation {room * 100:.1f} % away, "
                f"less than the {self.p.liq_buffer_pct} % buffer")
            return commands
        if self.p.use_limit_orders:
            offset = price * self.p.limit_offset_bps / BPS * side.sign
            limit = inst.round_price(price - offset,
                                     Rounding.DOWN if side is Side.BUY else Rounding.UP)
            commands.append(ctx.submit(symbol, side, OrderType.LIMIT, size, price=limit,
                                       sizing=self.p.sizing_mode.request()))
        else:
            commands.append(ctx.submit(symbol, side, OrderType.MARKET, size,
                                       sizing=self.p.sizing_mode.request()))
        return commands


MA_CROSSOVER = register(StrategyKind(
    name="ma_crossover",
    description="fast/slow MA crossover with epsilon and confirmation bars, optional RSI "
                "confirmation, liquidity filters and a stop-limit at stop_pct",
    params=MaCrossoverParams, factory=MaCrossover))
