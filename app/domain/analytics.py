"""Performance analytics: per-trade records and aggregate metrics (seed 002, seed 004).

Pure functions over an equity curve (``EquityPoint``: time and account equity) and a
list of closed trades (``TradeRecord``). Money stays ``Decimal`` throughout; the
square roots (volatility, Sharpe, Sortino) and the fractional power (CAGR) are taken
with ``Decimal.sqrt`` and ``Decimal.__pow__`` in a 28-digit context, so no float is
involved anywhere. Ratios are returned unrounded; callers quantize for display.

Annualization is explicit: every annualized metric takes ``periods_per_year`` — the
number of return periods in a year of the curve it is given. Crypto trades every
day, so a daily curve has 365 (``CRYPTO_DAYS_PER_YEAR``), not the equity markets'
252. The backtest resamples its equity to one point per UTC day
(``daily_equity``) before computing the ratios.

A metric that is undefined for its input (no trades, no losses, zero volatility,
fewer than two returns) is ``None``, never a made-up number.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Context, Decimal, localcontext
from itertools import pairwise

from app.domain.events import Event, OrderSubmitted, TradeClosed
from app.domain.positions import ClosedTrade

CRYPTO_DAYS_PER_YEAR = 365
_ZERO = Decimal(0)
_ONE = Decimal(1)
_HUNDRED = Decimal(100)
_CONTEXT = Context(prec=28)


# ---------------------------------------------------------------- per trade


@dataclass(frozen=True, slots=True)
class TradeRecord:
    """One closed round trip with everything the report shows of it.

    * ``gross_pnl``: price moves only, Σ (exit − entry) × qty signed by direction;
    * ``net_pnl`` = gross − fees + funding (funding signed: positive = received);
    * ``pnl_pct`` = net / entry notional × 100 (entry notional = entry price × qty);
    * ``duration`` = closed_at − opened_at;
    * ``initial_risk`` = |entry − initial stop| × qty, known only when the trade had a
      protective stop (its first one counts: moving it later does not change R);
    * ``r_multiple`` = net_pnl / initial_risk (Van Tharp's R multiple);
    * slippage against arrival price (implementation shortfall, Perold 1988): each
      fill is measured against its order's arrival price — the mid when the order
      was submitted (the decision price), or for a stop / take-profit the mid when it
      triggered (it reached the market only then; without a two-sided book, the price
      that triggered it). ``entry_arrival`` /
      ``exit_arrival`` are the quantity-weighted arrival prices of the entry and exit
      fills; with s = +1 long, −1 short, and positive = a cost:
      ``entry_slippage`` = s × (entry − entry_arrival) × qty,
      ``exit_slippage`` = s × (exit_arrival − exit) × qty (quote currency),
      ``*_slippage_bps`` = that leg's slippage / (its arrival × qty) × 10,000,
      ``slippage`` = entry + exit, ``slippage_bps`` = entry bps + exit bps (the round
      trip). All None when an arrival is unknown (no two-sided book when the order
      was submitted, or a log older than the field).
    """

    trade_id: str
    client: str
    venue: str
    symbol: str
    strategy: str | None
    direction: str  # "long" | "short"
    qty: Decimal
    entry_price: Decimal
    exit_price: Decimal
    opened_at: datetime
    closed_at: datetime
    gross_pnl: Decimal
    fees: Decimal
    funding: Decimal
    net_pnl: Decimal
    pnl_pct: Decimal
    exit_reason: str
    stop_price: Decimal | None = None
    initial_risk: Decimal | None = None
    r_multiple: Decimal | None = None
    entry_arrival: Decimal | None = None
    exit_arrival: Decimal | None = None
    entry_slippage: Decimal | None = None
    exit_slippage: Decimal | None = None
    entry_slippage_bps: Decimal | None = None
    exit_slippage_bps: Decimal | None = None
    slippage: Decimal | None = None
    slippage_bps: Decimal | None = None

    @property
    def duration(self) -> timedelta:
        return self.closed_at - self.opened_at

    @property
    def is_win(self) -> bool:
        return self.net_pnl > 0

    @property
    def is_loss(self) -> bool:
        return self.net_pnl < 0


@dataclass(frozen=True, slots=True)
class LegSlippage:
    """One leg's (entry's or exit's) shortfall against its arrival price."""

    quote: Decimal  # money, positive = a cost
    bps: Decimal  # of the arrival notional


_BPS = Decimal(10_000)


def leg_slippage(side_sign: int, price: Decimal, arrival: Decimal | None, qty: Decimal
                 ) -> LegSlippage | None:
    """Implementation shortfall of fills of ``qty`` at the average ``price`` against
    ``arrival``: side_sign × (price − arrival) × qty, ``side_sign`` +1 for buys and −1
    for sells (so paying up or selling down is positive, a cost), and the same in
    basis points of the arrival notional, shortfall / (arrival × qty) × 10,000."""
    if arrival is None or arrival <= 0 or qty <= 0:
        return None
    with localcontext(_CONTEXT):
        quote = side_sign * (price - arrival) * qty
        return LegSlippage(quote, quote / (arrival * qty) * _BPS)


def trade_record(trade: ClosedTrade, *, strategy: str | None = None,
                 stop_price: Decimal | None = None) -> TradeRecord:
    """``trade`` as a record, with its R multiple when its initial stop is known and
    its slippage when its arrival prices are."""
    sign = 1 if trade.direction == "long" else -1
    entry = leg_slippage(sign, trade.entry_price, trade.entry_arrival, trade.qty)
    exit_ = leg_slippage(-sign, trade.exit_price, trade.exit_arrival, trade.qty)
    risk = r = None
    if stop_price is not None:
        risk = abs(trade.entry_price - stop_price) * trade.qty
        if risk > 0:
            with localcontext(_CONTEXT):
                r = trade.net_pnl / risk
        else:
            risk = None
    return TradeRecord(
        trade.trade_id, trade.client, trade.venue, trade.symbol, strategy, trade.direction,
        trade.qty, trade.entry_price, trade.exit_price, trade.opened_at, trade.closed_at,
        trade.realized_pnl, trade.fees, trade.funding, trade.net_pnl, trade.pnl_pct,
        trade.exit_reason, stop_price, risk, r,
        trade.entry_arrival if entry else None, trade.exit_arrival if exit_ else None,
        entry.quote if entry else None, exit_.quote if exit_ else None,
        entry.bps if entry else None, exit_.bps if exit_ else None,
        entry.quote + exit_.quote if entry and exit_ else None,
        entry.bps + exit_.bps if entry and exit_ else None)


class InitialStops:
    """The first protective stop of every closed trade, by trade id: the trigger price
    of the first reduce-only stop (market or limit) submitted for the trade's client,
    venue and symbol after the previous trade there closed. Fed events as they come
    (``observe``), so a long run need not keep them."""

    __slots__ = ("_pending", "stops")

    def __init__(self) -> None:
        self._pending: dict[tuple[str, str, str], Decimal] = {}
        self.stops: dict[str, Decimal] = {}

    def observe(self, events: Iterable[Event]) -> None:
        for e in events:
            if type(e) is OrderSubmitted:
                spec = e.spec
                if (spec.type.is_stop and spec.reduce_only
                        and spec.trigger_price is not None):
                    self._pending.setdefault((spec.client, spec.venue, spec.symbol),
                                             spec.trigger_price)
            elif type(e) is TradeClosed:
                t = e.trade
                stop = self._pending.pop((t.client, t.venue, t.symbol), None)
                if stop is not None:
                    self.stops[t.trade_id] = stop


def initial_stops(events: Iterable[Event]) -> dict[str, Decimal]:
    """``InitialStops`` over a finished list of events."""
    tracker = InitialStops()
    tracker.observe(events)
    return tracker.stops


# ---------------------------------------------------------------- the equity curve


@dataclass(frozen=True, slots=True)
class EquityPoint:
    at: datetime
    equity: Decimal


def daily_equity(points: Sequence[EquityPoint]) -> list[EquityPoint]:
    """The curve sampled once per UTC day: the first point (the starting equity),
    then the last point of every calendar day. Its returns are daily returns."""
    if not points:
        return []
    out = [points[0]]
    for prev, point in pairwise(points):
        if point.at.date() != prev.at.date() and prev is not points[0]:
            out.append(prev)
    if points[-1] is not points[0]:
        out.append(points[-1])
    return out


def realized_curve(base: Decimal, trades: Sequence[TradeRecord], start: datetime,
                   end: datetime, period: timedelta) -> list[EquityPoint]:
    """The closed-trade (realized) equity curve over [start, end) sampled every
    ``period``: base at ``start``, then at the end of each period base + Σ net P&L of
    the trades closed before it. Periods without a trade repeat the last equity (a
    zero return), so the returns are those of a calendar, not of the active periods."""
    ordered = sorted(trades, key=lambda t: t.closed_at)
    points = [EquityPoint(start, base)]
    equity, i = base, 0
    at = start
    while at < end:
        at = min(at + period, end)
        while i < len(ordered) and ordered[i].closed_at < at:
            equity += ordered[i].net_pnl
            i += 1
        points.append(EquityPoint(at, equity))
    return points


def simple_returns(equity: Sequence[Decimal]) -> list[Decimal]:
    """Period returns r_t = E_t / E_{t−1} − 1 (a period starting at zero equity has
    no defined return and is skipped)."""
    with localcontext(_CONTEXT):
        return [b / a - 1 for a, b in pairwise(equity) if a != 0]


def _mean(values: Sequence[Decimal]) -> Decimal:
    with localcontext(_CONTEXT):
        return sum(values, _ZERO) / len(values)


def _sample_std(values: Sequence[Decimal]) -> Decimal | None:
    """Sample standard deviation, s = √(Σ (x − x̄)² / (n − 1))."""
    if len(values) < 2:
        return None
    with localcontext(_CONTEXT):
        m = _mean(values)
        return (sum(((x - m) ** 2 for x in values), _ZERO) / (len(values) - 1)).sqrt()


def total_return(start_equity: Decimal, end_equity: Decimal) -> Decimal | None:
    """Total return R = E_end / E_start − 1."""
    if start_equity <= 0:
        return None
    with localcontext(_CONTEXT):
        return end_equity / start_equity - 1


def cagr(start_equity: Decimal, end_equity: Decimal, periods: int,
         periods_per_year: int) -> Decimal | None:
    """Compound annual growth rate, CAGR = (E_end / E_start)^(1 / years) − 1, with
    years = periods / periods_per_year (the curve's length in years)."""
    if start_equity <= 0 or end_equity < 0 or periods <= 0:
        return None
    with localcontext(_CONTEXT):
        if end_equity == 0:
            return Decimal(-1)
        years = Decimal(periods) / periods_per_year
        return (end_equity / start_equity) ** (_ONE / years) - 1


def volatility(returns: Sequence[Decimal], periods_per_year: int) -> Decimal | None:
    """Annualized volatility σ_a = s(r) × √P: the sample standard deviation (n − 1) of
    the period returns scaled by the square root of P periods a year."""
    s = _sample_std(returns)
    if s is None:
        return None
    with localcontext(_CONTEXT):
        return s * Decimal(periods_per_year).sqrt()


def sharpe(returns: Sequence[Decimal], periods_per_year: int,
           risk_free: Decimal = _ZERO) -> Decimal | None:
    """Sharpe ratio (annualized), S = mean(r − r_f) / s(r − r_f) × √P, with r_f the
    risk-free return per period (default 0) and s the sample standard deviation."""
    excess = [r - risk_free for r in returns]
    s = _sample_std(excess)
    if s is None or s == 0:
        return None
    with localcontext(_CONTEXT):
        return _mean(excess) / s * Decimal(periods_per_year).sqrt()


def downside_deviation(returns: Sequence[Decimal], periods_per_year: int,
                       target: Decimal = _ZERO) -> Decimal | None:
    """Annualized downside deviation, DD = √(mean(min(r − T, 0)²)) × √P: the root mean
    square of the shortfalls below the target T over all periods."""
    if not returns:
        return None
    with localcontext(_CONTEXT):
        shortfalls = [min(r - target, _ZERO) ** 2 for r in returns]
        return _mean(shortfalls).sqrt() * Decimal(periods_per_year).sqrt()


def sortino(returns: Sequence[Decimal], periods_per_year: int,
            target: Decimal = _ZERO) -> Decimal | None:
    """Sortino ratio (annualized), mean(r − T) × P / DD, DD the annualized downside
    deviation below the target return T (default 0)."""
    dd = downside_deviation(returns, periods_per_year, target)
    if dd is None or dd == 0:
        return None
    with localcontext(_CONTEXT):
        return _mean([r - target for r in returns]) * periods_per_year / dd


@dataclass(frozen=True, slots=True)
class Drawdown:
    """The largest peak-to-trough fall of the curve.

    ``amount`` = peak − trough (money), ``pct`` = (peak − trough) / peak × 100;
    ``start`` is the peak's time, ``trough`` the bottom's, ``end`` the first time the
    curve is back at the peak (None: not recovered by the end of the curve), and
    ``duration`` = (end, or the curve's last time) − start.
    """

    amount: Decimal
    pct: Decimal
    start: datetime | None
    trough: datetime | None
    end: datetime | None
    duration: timedelta


def max_drawdown(points: Sequence[EquityPoint]) -> Drawdown:
    """Maximum drawdown, MDD = max_t (peak_t − E_t) / peak_t, peak_t = max_{s≤t} E_s —
    measured in percent of the running peak (the money amount is that same fall's)."""
    worst = Drawdown(_ZERO, _ZERO, None, None, None, timedelta(0))
    if not points:
        return worst
    peak = points[0]
    worst_ratio = _ZERO
    worst_peak: EquityPoint | None = None
    worst_trough: EquityPoint | None = None
    with localcontext(_CONTEXT):
        for p in points:
            if p.equity > peak.equity:
                peak = p
            elif peak.equity > 0:
                ratio = (peak.equity - p.equity) / peak.equity
                if ratio > worst_ratio:
                    worst_ratio, worst_peak, worst_trough = ratio, peak, p
        if worst_peak is None or worst_trough is None:
            return worst
        end = next((p.at for p in points
                    if p.at > worst_trough.at and p.equity >= worst_peak.equity), None)
        return Drawdown(worst_peak.equity - worst_trough.equity, worst_ratio * _HUNDRED,
                        worst_peak.at, worst_trough.at, end,
                        (end or points[-1].at) - worst_peak.at)


def calmar(cagr_value: Decimal | None, drawdown: Drawdown) -> Decimal | None:
    """Calmar ratio, CAGR / |MDD| (MDD as a fraction, over the same curve)."""
    if cagr_value is None or drawdown.pct == 0:
        return None
    with localcontext(_CONTEXT):
        return cagr_value / (drawdown.pct / _HUNDRED)


# ---------------------------------------------------------------- trades


@dataclass(frozen=True, slots=True)
class TradeStats:
    """Trade-list statistics (net P&L after fees and funding).

    * win rate = wins / trades (a win has net P&L > 0, a loss < 0; zero is neither);
    * average win = Σ wins / #wins, average loss = Σ losses / #losses (negative);
    * profit factor = Σ wins / |Σ losses| (gross profit over gross loss);
    * expectancy = Σ net P&L / trades (= win rate × avg win + loss rate × avg loss);
    * average R = mean R multiple of the trades whose R is known;
    * slippage = Σ round-trip slippage (quote, positive = cost) and average slippage
      bps = mean round-trip ``slippage_bps`` of the trades whose arrivals are known.
    """

    trades: int
    wins: int
    losses: int
    total_pnl: Decimal
    gross_profit: Decimal
    gross_loss: Decimal
    fees: Decimal
    funding: Decimal
    win_rate: Decimal | None
    average_win: Decimal | None
    average_loss: Decimal | None
    profit_factor: Decimal | None
    expectancy: Decimal | None
    average_r: Decimal | None
    average_duration: timedelta | None
    slippage: Decimal | None = None
    average_slippage_bps: Decimal | None = None


def trade_stats(trades: Sequence[TradeRecord]) -> TradeStats:
    wins = [t.net_pnl for t in trades if t.is_win]
    losses = [t.net_pnl for t in trades if t.is_loss]
    rs = [t.r_multiple for t in trades if t.r_multiple is not None]
    slipped = [t for t in trades if t.slippage is not None and t.slippage_bps is not None]
    n = len(trades)
    gross_profit, gross_loss = sum(wins, _ZERO), sum(losses, _ZERO)
    total = sum((t.net_pnl for t in trades), _ZERO)
    with localcontext(_CONTEXT):
        return TradeStats(
            trades=n, wins=len(wins), losses=len(losses), total_pnl=total,
            gross_profit=gross_profit, gross_loss=gross_loss,
            fees=sum((t.fees for t in trades), _ZERO),
            funding=sum((t.funding for t in trades), _ZERO),
            win_rate=Decimal(len(wins)) / n if n else None,
            average_win=gross_profit / len(wins) if wins else None,
            average_loss=gross_loss / len(losses) if losses else None,
            profit_factor=gross_profit / -gross_loss if losses else None,
            expectancy=total / n if n else None,
            average_r=_mean(rs) if rs else None,
            average_duration=(sum((t.duration for t in trades), timedelta(0)) / n
                              if n else None),
            slippage=(sum((t.slippage for t in slipped if t.slippage is not None), _ZERO)
                      if slipped else None),
            average_slippage_bps=(_mean([t.slippage_bps for t in slipped
                                         if t.slippage_bps is not None])
                                  if slipped else None),
        )


# Bucket edges of the R distribution: (-inf, -2), [-2, -1), [-1, 0), [0, 1), [1, 2),
# [2, 3), [3, inf).
R_EDGES = (Decimal(-2), Decimal(-1), _ZERO, _ONE, Decimal(2), Decimal(3))


def r_distribution(trades: Sequence[TradeRecord]) -> dict[str, int]:
    """How many trades ended in each R bucket (trades without a known R are left out)."""
    labels = ["<-2R", "-2R..-1R", "-1R..0R", "0R..1R", "1R..2R", "2R..3R", ">=3R"]
    counts = dict.fromkeys(labels, 0)
    for t in trades:
        if t.r_multiple is None:
            continue
        i = sum(1 for edge in R_EDGES if t.r_multiple >= edge)
        counts[labels[i]] += 1
    return counts


def exit_reasons(trades: Sequence[TradeRecord]) -> dict[str, int]:
    """Trades by exit reason (seed 004's TP hit rates are tp1/tp2 over all trades)."""
    return dict(sorted(Counter(t.exit_reason for t in trades).items()))


def breakdown(trades: Sequence[TradeRecord], key: Callable[[TradeRecord], str | None]
              ) -> dict[str, TradeStats]:
    """``trade_stats`` per group (per venue, per strategy, per symbol...)."""
    groups: dict[str, list[TradeRecord]] = {}
    for t in trades:
        groups.setdefault(key(t) or "-", []).append(t)
    return {k: trade_stats(v) for k, v in sorted(groups.items())}


# ---------------------------------------------------------------- orders


@dataclass(frozen=True, slots=True)
class OrderStats:
    """Order outcomes.

    * success rate = accepted / submitted (orders the risk gate and venue took);
    * rejection rate = rejected / submitted (= 1 − success rate);
    * fill rate = orders with at least one fill / accepted orders;
    * rejections by reason code.
    """

    submitted: int
    accepted: int
    rejected: int
    filled: int
    success_rate: Decimal | None
    rejection_rate: Decimal | None
    fill_rate: Decimal | None
    rejections: dict[str, int]


def order_stats(submitted: int, rejections: Sequence[str] | Mapping[str, int],
                filled: int) -> OrderStats:
    """From the count of submitted orders, the reason code of each rejected one (or
    the count by code), and the count of orders that filled at least partly."""
    by_code = dict(rejections) if isinstance(rejections, Mapping) else Counter(rejections)
    rejected = sum(by_code.values())
    accepted = submitted - rejected
    with localcontext(_CONTEXT):
        return OrderStats(
            submitted, accepted, rejected, filled,
            Decimal(accepted) / submitted if submitted else None,
            Decimal(rejected) / submitted if submitted else None,
            Decimal(filled) / accepted if accepted else None,
            dict(sorted(by_code.items())))


# ---------------------------------------------------------------- the whole report


@dataclass(frozen=True, slots=True)
class Performance:
    """Every aggregate metric of a run. Ratios use the daily curve and
    ``periods_per_year``; P&L and trade statistics use the trade list."""

    start_equity: Decimal
    end_equity: Decimal
    total_pnl: Decimal  # end − start equity (includes open positions' unrealized P&L)
    total_return: Decimal | None
    cagr: Decimal | None
    volatility: Decimal | None
    sharpe: Decimal | None
    sortino: Decimal | None
    calmar: Decimal | None
    max_drawdown: Drawdown
    periods: int
    periods_per_year: int
    trades: TradeStats
    long: TradeStats
    short: TradeStats
    r_distribution: dict[str, int]
    exit_reasons: dict[str, int]
    orders: OrderStats | None
    by_venue: dict[str, TradeStats]
    by_strategy: dict[str, TradeStats]
    by_symbol: dict[str, TradeStats]


def performance(curve: Sequence[EquityPoint], trades: Sequence[TradeRecord], *,
                orders: OrderStats | None = None,
                periods_per_year: int = CRYPTO_DAYS_PER_YEAR) -> Performance:
    """All metrics of ``curve`` (already sampled at the period ``periods_per_year``
    counts: ``daily_equity`` for 365) and ``trades``."""
    start = curve[0].equity if curve else _ZERO
    end = curve[-1].equity if curve else _ZERO
    returns = simple_returns([p.equity for p in curve])
    growth = cagr(start, end, len(returns), periods_per_year)
    drawdown = max_drawdown(curve)
    return Performance(
        start_equity=start, end_equity=end, total_pnl=end - start,
        total_return=total_return(start, end), cagr=growth,
        volatility=volatility(returns, periods_per_year),
        sharpe=sharpe(returns, periods_per_year),
        sortino=sortino(returns, periods_per_year),
        calmar=calmar(growth, drawdown), max_drawdown=drawdown,
        periods=len(returns), periods_per_year=periods_per_year,
        trades=trade_stats(trades),
        long=trade_stats([t for t in trades if t.direction == "long"]),
        short=trade_stats([t for t in trades if t.direction == "short"]),
        r_distribution=r_distribution(trades), exit_reasons=exit_reasons(trades),
        orders=orders,
        by_venue=breakdown(trades, lambda t: t.venue),
        by_strategy=breakdown(trades, lambda t: t.strategy),
        by_symbol=breakdown(trades, lambda t: t.symbol),
    )


def to_json(value: object) -> object:
    """A metric value as JSON: decimals as strings, times ISO 8601, durations in
    seconds (as a decimal string), dataclasses as objects."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(Decimal(str(value.total_seconds())))
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    fields = getattr(value, "__dataclass_fields__", None)
    if fields is not None:
        return {name: to_json(getattr(value, name)) for name in fields}
    return value
