"""Kind ``atr_trend``: the multi-timeframe ATR trend strategy of seed 004 (long only,
as the seed's is).

Decision (pure: ``entry_decision``, ``exit_decision``, ``stop_and_targets``,
``risk_scale``, ``position_size``), on every closed bar of ``entry_interval``
(5 m) with the indicators of that bar and the last closed ``htf_interval`` (1 h)
bar; every rule below must pass for a long entry, checked in this order:

1. trend — the 1 h close is above the 1 h EMA(``trend_ema_period`` = 200)
   (skipped with ``use_multi_tf_atr_strategy`` false: single-timeframe entries);
2. alignment — EMA(``fast_ema_period`` 20) > EMA(``slow_ema_period`` 50) on 5 m;
3. volatility floor — ATR(``atr_period`` 14) is at least ``min_atr_pct`` % of
   the close and at least ``min_atr_usd``;
4. pullback — the bar dipped into or near the EMA20: low ≤ EMA20 +
   ``wick_atr_buffer`` × ATR;
5. bounce — the bar closed above the EMA20;
6. chasing guard — close − EMA20 ≤ ``max_ema_distance_atr`` × ATR;
7. RSI filter (``use_rsi_filter``) — ``rsi_min`` ≤ RSI(``rsi_period``) ≤ ``rsi_max``;
8. volume filter (``use_volume_filter``) — the bar's volume ≥ ``volume_multiple`` ×
   the mean volume of the ``volume_ma_period`` bars before it.

Stop distance R = max(``hard_stop_min_pct`` % of the entry, ``atr_stop_multiple`` ×
ATR); stop = entry − R; TP1 = entry + ``tp1_multiple`` × R, TP2 = entry +
``tp2_multiple`` × R. Size = equity × ``risk_per_trade_pct`` % / R, times
``atr_risk_scaling_factor`` when ATR % of price is above
``atr_risk_scaling_threshold``, capped at ``max_position_notional``.

In a trade, on every closed 5 m bar: exit at market after ``max_bars_in_trade``
bars (0: never), or when the 1 h close falls below the EMA200
(``exit_on_trend_flip``). Resting reduce-only orders do the rest: a stop (a
stop-market, or a stop-limit ``stop_limit_spread_bps`` beyond its trigger when
that is set), a limit at TP1 for ``tp1_fraction`` of the position (the partial)
and a limit at TP2 for the rest; once TP1 has filled the stop moves to the entry
price (``breakeven_after_tp1``).

Restarts: the position and the resting stop and targets are engine state (durable
orders); a restarted strategy adopts them (the trade's entry is the position's
average entry, its stop the resting stop's trigger, TP1 counts as done when only
the TP2 order is left, its age is counted from the position's opening) and never
enters while it holds a position or has an entry working. Its bars and indicators
warm up again from the feed: until the EMA200 is ready again no new entry is taken
and the trend-flip exit waits, while the stop, the targets and the bar limit
protect the open trade from the first update on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
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
    HUNDRED,
    STOP,
    TP1,
    TP2,
    ZERO,
    Interval,
    LastSignal,
    PriceSource,
    QuietFeed,
    Sizing,
    Symbol,
    SymbolFeed,
    close_position,
    entry_pending,
    keep_stop,
    own_orders,
    take_bars,
)
from app.strategies.indicators import ATR, EMA, RSI, SMA
from app.strategies.registry import register

Pct = Annotated[Decimal, Field(ge=0, le=100, decimal_places=4)]
Multiple = Annotated[Decimal, Field(gt=0, le=100, decimal_places=4)]


class AtrTrendParams(StrategyParams):
    """Seed 004's knobs (camelCase there, snake_case here), plus the periods and
    sizing it leaves implicit."""

    symbol: Symbol = "BTC-PERP"
    price_source: PriceSource = PriceSource.TRADE
    use_multi_tf_atr_strategy: bool = True  # useMultiTfAtrStrategy: the 1 h trend gate
    entry_interval: Interval = "5m"
    htf_interval: Interval = "1h"  # htfInterval
    trend_ema_period: Annotated[int, Field(ge=2, le=1000)] = 200
    fast_ema_period: Annotated[int, Field(ge=2, le=1000)] = 20
    slow_ema_period: Annotated[int, Field(ge=2, le=1000)] = 50
    atr_period: Annotated[int, Field(ge=2, le=500)] = 14  # atrPeriod
    atr_stop_multiple: Multiple = Decimal("1.5")  # atrStopMultiple
    hard_stop_min_pct: Pct = Decimal("0.5")  # hardStopMinPct (% of entry)
    tp1_multiple: Multiple = Decimal(1)  # tp1Multiple (R)
    tp2_multiple: Multiple = Decimal(2)  # tp2Multiple (R)
    tp1_fraction: Annotated[Decimal, Field(gt=0, le=1, decimal_places=4)] = Decimal("0.5")
    breakeven_after_tp1: bool = True  # breakevenAfterTp1
    min_atr_pct: Pct = Decimal("0.05")  # minAtrPct (% of close)
    min_atr_usd: Annotated[Decimal, Field(ge=0, le=1_000_000, decimal_places=4)] = ZERO
    max_ema_distance_atr: Multiple = Decimal(1)  # maxEmaDistanceAtr
    wick_atr_buffer: Annotated[Decimal, Field(ge=0, le=100, decimal_places=4)] = \
        Decimal("0.25")  # wickAtrBuffer
    exit_on_trend_flip: bool = True  # exitOnTrendFlip
    max_bars_in_trade: Annotated[int, Field(ge=0, le=100_000)] = 48  # maxBarsInTrade
    use_rsi_filter: bool = False  # useRsiFilter
    rsi_period: Annotated[int, Field(ge=2, le=500)] = 14
    rsi_min: Pct = Decimal(40)
    rsi_max: Pct = Decimal(70)
    use_volume_filter: bool = False  # useVolumeFilter
    volume_ma_period: Annotated[int, Field(ge=1, le=1000)] = 20
    volume_multiple: Annotated[Decimal, Field(ge=0, le=100, decimal_places=4)] = Decimal(1)
    atr_risk_scaling_threshold: Pct = Decimal(2)  # atrRiskScalingThreshold (ATR % of price)
    atr_risk_scaling_factor: Annotated[Decimal, Field(gt=0, le=1, decimal_places=4)] = \
        Decimal("0.5")  # the risk multiplier above the threshold
    risk_per_trade_pct: Annotated[Decimal, Field(gt=0, le=10, decimal_places=4)] = \
        Decimal("0.5")  # % of equity lost at the stop
    max_position_notional: Annotated[Decimal, Field(gt=0, le=100_000_000,
                                                    decimal_places=2)] = Decimal(1000)
    stop_limit_spread_bps: Annotated[Decimal | None, Field(ge=0, le=1000,
                                                           decimal_places=2)] = None
    sizing_mode: Sizing = Sizing.CLIENT

    @model_validator(mode="after")
    def _consistent(self) -> AtrTrendParams:
        if self.fast_ema_period >= self.slow_ema_period:
            raise ValueError("fast_ema_period must be below slow_ema_period")
        if self.tp1_multiple > self.tp2_multiple:
            raise ValueError("tp1_multiple must not be above tp2_multiple")
        if self.rsi_min > self.rsi_max:
            raise ValueError("rsi_min must not be above rsi_max")
        if parse_interval(self.htf_interval) <= parse_interval(self.entry_interval):
            raise ValueError("htf_interval must be longer than entry_interval")
        return self


# ---- decision -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a decision reads at one closed entry bar."""

    bar: Bar
    ema_fast: Decimal | None
    ema_slow: Decimal | None
    atr: Decimal | None
    rsi: Decimal | None = None
    volume_avg: Decimal | None = None  # of the bars before this one
    htf_close: Decimal | None = None
    htf_ema: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Levels:
    entry: Decimal
    risk: Decimal  # R: entry − stop
    stop: Decimal
    tp1: Decimal
    tp2: Decimal


@dataclass(frozen=True, slots=True)
class EntryDecision:
    signal: int  # 1: go long; 0: no entry
    rule: str  # the rule that failed, or "entry"
    reason: str
    levels: Levels | None = None
    risk_scale: Decimal = Decimal(1)


def trend_up(s: Snapshot) -> bool | None:
    if s.htf_close is None or s.htf_ema is None:
        return None
    return s.htf_close > s.htf_ema


def stop_and_targets(entry: Decimal, atr: Decimal, p: AtrTrendParams) -> Levels:
    risk = max(entry * p.hard_stop_min_pct / HUNDRED, p.atr_stop_multiple * atr)
    return Levels(entry, risk, entry - risk, entry + p.tp1_multiple * risk,
                  entry + p.tp2_multiple * risk)


def risk_scale(atr: Decimal, price: Decimal, p: AtrTrendParams) -> Decimal:
    """Seed 004's risk down-shift when ATR % of price is above the threshold."""
    atr_pct = atr / price * HUNDRED
    return p.atr_risk_scaling_factor if atr_pct > p.atr_risk_scaling_threshold \
        else Decimal(1)


def entry_decision(s: Snapshot, p: AtrTrendParams) -> EntryDecision:
    """Whether the bar in ``s`` is a long entry: the rules of seed 004 in order."""
    close = s.bar.close
    if s.ema_fast is None or s.ema_slow is None or s.atr is None:
        return EntryDecision(0, "warmup", "indicators warming up")
    ema, atr = s.ema_fast, s.atr
    if p.use_multi_tf_atr_strategy:
        up = trend_up(s)
        if up is None:
            return EntryDecision(0, "warmup", f"{p.htf_interval} EMA warming up")
        if not up:
            return EntryDecision(0, "trend", f"{p.htf_interval} close {s.htf_close} is not "
                                 f"above its EMA{p.trend_ema_period} {s.htf_ema:.2f}")
    if not s.ema_fast > s.ema_slow:
        return EntryDecision(0, "alignment", "EMA fast is not above EMA slow")
    if atr / close * HUNDRED < p.min_atr_pct or atr < p.min_atr_usd:
        return EntryDecision(0, "min_atr", f"ATR {atr:.2f} is below the floor")
    if not s.bar.low <= ema + p.wick_atr_buffer * atr:
        return EntryDecision(0, "pullback", "no dip into or near the EMA fast")
    if not close > ema:
        return EntryDecision(0, "bounce", "closed at or below the EMA fast")
    if close - ema > p.max_ema_distance_atr * atr:
        return EntryDecision(0, "chasing", f"close is {(close - ema) / atr:.2f} ATR above "
                             f"the EMA fast (max {p.max_ema_distance_atr})")
    if p.use_rsi_filter and (s.rsi is None or not p.rsi_min <= s.rsi <= p.rsi_max):
        return EntryDecision(0, "rsi", f"RSI {s.rsi} outside {p.rsi_min}..{p.rsi_max}")
    if p.use_volume_filter and (s.volume_avg is None
                                or s.bar.volume < p.volume_multiple * s.volume_avg):
        return EntryDecision(0, "volume", "volume below its average")
    levels = stop_and_targets(close, atr, p)
    return EntryDecision(1, "entry", "pullback entry", levels, risk_scale(atr, close, p))


def exit_decision(s: Snapshot, p: AtrTrendParams, bars_in_trade: int) -> str | None:
    """Why an open long should be closed at this bar (None: keep it)."""
    if p.max_bars_in_trade and bars_in_trade >= p.max_bars_in_trade:
        return "max_bars"
    if p.exit_on_trend_flip and trend_up(s) is False:
        return "trend_flip"
    return None


def position_size(equity: Decimal, levels: Levels, scale: Decimal, p: AtrTrendParams,
                  inst: Instrument) -> Decimal:
    """Risk-based size: equity × risk % / R (× the ATR scale), capped in notional."""
    if equity <= 0 or levels.risk <= 0:
        return ZERO
    qty = equity * p.risk_per_trade_pct / HUNDRED / levels.risk * scale
    qty = min(qty, p.max_position_notional / levels.entry)
    return inst.round_qty(qty)


class AtrModel:
    """Bars and incremental indicators of both timeframes."""

    def __init__(self, p: AtrTrendParams):
        self.p = p
        self.entry_interval = parse_interval(p.entry_interval)
        self.htf_interval = parse_interval(p.htf_interval)
        self.ema_fast = EMA(p.fast_ema_period)
        self.ema_slow = EMA(p.slow_ema_period)
        self.atr = ATR(p.atr_period)
        self.rsi = RSI(p.rsi_period)
        self.volume = SMA(p.volume_ma_period)
        self.htf_ema = EMA(p.trend_ema_period)
        self.htf_close: Decimal | None = None
        self.bars = 0

    def on_htf_bar(self, bar: Bar) -> None:
        self.htf_close = bar.close
        self.htf_ema.update(bar.close)

    def on_entry_bar(self, bar: Bar) -> Snapshot:
        self.bars += 1
        volume_avg = self.volume.value  # the bars before this one
        self.volume.update(bar.volume)
        return Snapshot(bar, self.ema_fast.update(bar.close), self.ema_slow.update(bar.close),
                        self.atr.update(bar.high, bar.low, bar.close),
                        self.rsi.update(bar.close), volume_avg, self.htf_close,
                        self.htf_ema.value)


# ---- placing --------------------------------------------------------------------------

@dataclass(slots=True)
class Trade:
    """The open trade as this strategy manages it."""

    entry: Decimal
    risk: Decimal | None  # R; None when adopted without a stop below the entry
    stop: Decimal
    opened_at: datetime
    tp1_done: bool = False
    targets_placed: bool = False


class AtrTrend(QuietFeed, BaseStrategy):
    def __init__(self, params: AtrTrendParams):
        self.p = params
        self.model = AtrModel(params)
        self.feed = SymbolFeed(params.symbol,
                               MultiBars([self.model.entry_interval, self.model.htf_interval]),
                               params.price_source, track_volume=False)
        self.trade: Trade | None = None
        self.pending: EntryDecision | None = None  # the entry sent, until it fills
        self.last_signal: LastSignal | None = None
        self.last_decision: EntryDecision | None = None

    # ---- calls from the host ----

    def on_start(self, ctx: StrategyContext) -> Commands:
        # A restart: the indicators take in again the bars it had closed, in the order
        # it first did (its decisions on them were taken already).
        for bar in saved_in_order(ctx.saved_bars()):
            if bar.interval == self.model.htf_interval:
                self.model.on_htf_bar(bar)
            elif bar.interval == self.model.entry_interval:
                self.model.on_entry_bar(bar)
        inst = self._instrument(ctx)
        self.trade = self._adopt(ctx, inst)
        return self._manage(ctx, inst)

    def on_market(self, update: MarketUpdate, ctx: StrategyContext) -> Commands:
        bars, commands = take_bars(ctx, self.feed, update)
        for bar in bars:
            if bar.interval == self.model.htf_interval:
                self.model.on_htf_bar(bar)
            else:
                commands += self._on_entry_bar(ctx, self.model.on_entry_bar(bar))
        return commands

    def on_event(self, event: Event, ctx: StrategyContext) -> Commands:
        if not isinstance(event, OrderFilled) or event.symbol != self.p.symbol:
            return None
        order = ctx.order(event.order_id)
        if order is None or order.spec.tags.strategy != ctx.strategy_id:
            return None
        inst = self._instrument(ctx)
        if order.spec.tags.exit_reason == TP1 and self.trade is not None:
            self.trade.tp1_done = True
        if (not order.spec.reduce_only and self.trade is None and self.pending is not None
                and self.pending.levels is not None):
            position = ctx.position(self.p.symbol)
            if position is not None and position.qty > 0:
                entry, risk = position.avg_entry, self.pending.levels.risk
                self.trade = Trade(entry, risk, entry - risk, position.opened_at or ctx.now)
                self.pending = None
        return self._manage(ctx, inst)

    def on_stop(self, ctx: StrategyContext) -> Commands:
        # Entries are cancelled; the stop and targets stay with the position.
        return [ctx.cancel(o.order_id, "strategy stopped")
                for o in ctx.open_orders(self.p.symbol) if not o.spec.reduce_only]

    def status(self) -> dict[str, object]:
        return {"bars": self.model.bars, "trade": self.trade, "last_signal": self.last_signal,
                "last_decision": self.last_decision}

    # ---- decisions to orders ----

    def _on_entry_bar(self, ctx: StrategyContext, snap: Snapshot) -> list[Command]:
        inst = self._instrument(ctx)
        position = ctx.position_qty(self.p.symbol)
        if self.trade is None and position > 0 and not entry_pending(ctx, self.p.symbol):
            self.trade = self._adopt(ctx, inst)  # a long it entered but lost track of
        if self.trade is not None and position > 0:
            bars = int((snap.bar.end - self.trade.opened_at) // self.model.entry_interval)
            why = exit_decision(snap, self.p, bars)
            if why is not None:
                self.last_signal = LastSignal(0, ctx.now, why, snap.bar.close)
                self.trade = None
                return close_position(ctx, self.p.symbol, why)
            return self._manage(ctx, inst)
        if position or entry_pending(ctx, self.p.symbol):
            return []  # a position it does not manage, or an entry working: never add
        decision = entry_decision(snap, self.p)
        self.last_decision = decision
        if not decision.signal or decision.levels is None:
            return []
        levels = decision.levels
        self.last_signal = LastSignal(1, ctx.now, decision.reason, levels.entry, levels.stop,
                                      (levels.tp1, levels.tp2))
        qty = position_size(ctx.summary().equity, levels, decision.risk_scale, self.p, inst)
        if qty < inst.min_qty or qty * levels.entry < inst.min_notional:
            self.last_signal = LastSignal(1, ctx.now, "entry too small to place",
                                          levels.entry, levels.stop)
            return []
        self.pending = decision
        return [ctx.submit(self.p.symbol, Side.BUY, OrderType.MARKET, qty,
                           signal_id=f"{ctx.strategy_id}@{snap.bar.end.isoformat()}",
                           sizing=self.p.sizing_mode.request())]

    def _manage(self, ctx: StrategyContext, inst: Instrument) -> list[Command]:
        """Keep the resting stop and targets in line with the position and the trade."""
        symbol = self.p.symbol
        qty = ctx.position_qty(symbol)
        if qty <= 0 or self.trade is None:
            if qty <= 0:
                self.trade = None
            return [ctx.cancel(o.order_id, "flat") for o in ctx.open_orders(symbol)
                    if o.spec.reduce_only] if qty == 0 else []
        trade = self.trade
        if trade.tp1_done and self.p.breakeven_after_tp1 and trade.stop < trade.entry:
            trade.stop = trade.entry
        commands = keep_stop(ctx, inst, trade.stop, self.p.stop_limit_spread_bps)
        if (not trade.targets_placed and trade.risk is not None
                and not entry_pending(ctx, symbol)):  # targets for the whole entry
            trade.targets_placed = True
            tp1 = inst.round_price(trade.entry + self.p.tp1_multiple * trade.risk, Rounding.UP)
            tp2 = inst.round_price(trade.entry + self.p.tp2_multiple * trade.risk, Rounding.UP)
            part = ZERO if trade.tp1_done else inst.round_qty(qty * self.p.tp1_fraction)
            if part >= inst.min_qty and part < qty:
                commands.append(ctx.submit(symbol, Side.SELL, OrderType.LIMIT, part, price=tp1,
                                           reduce_only=True, exit_reason=TP1))
            else:
                part = ZERO
            commands.append(ctx.submit(symbol, Side.SELL, OrderType.LIMIT, qty - part,
                                       price=tp2, reduce_only=True, exit_reason=TP2))
        return commands

    def _adopt(self, ctx: StrategyContext, inst: Instrument) -> Trade | None:
        """The open trade after a restart, from the position and its resting orders."""
        position = ctx.position(self.p.symbol)
        if position is None or position.qty <= 0:
            return None
        entry = position.avg_entry
        stops = own_orders(ctx, self.p.symbol, STOP)
        tp1s = own_orders(ctx, self.p.symbol, TP1)
        tp2s = own_orders(ctx, self.p.symbol, TP2)
        stop = stops[0].spec.trigger_price if stops and stops[0].spec.trigger_price \
            else entry * (1 - self.p.hard_stop_min_pct / HUNDRED)
        risk = entry - stop if stop < entry else None
        tp1_done = not tp1s and (bool(tp2s) or stop >= entry)
        return Trade(entry, risk, stop, position.opened_at or ctx.now, tp1_done,
                     targets_placed=bool(tp1s or tp2s))

    def _instrument(self, ctx: StrategyContext) -> Instrument:
        inst = ctx.instrument(self.p.symbol)
        if inst is None:
            raise ValueError(f"{self.p.symbol} is not traded on {ctx.venue}")
        return inst


ATR_TREND = register(StrategyKind(
    name="atr_trend",
    description="seed 004: 1 h EMA200 trend gating 5 m EMA20/50 pullback entries, ATR "
                "stops, TP1 partial and TP2 in R, breakeven, bar limit, trend-flip exit",
    params=AtrTrendParams, factory=AtrTrend))
