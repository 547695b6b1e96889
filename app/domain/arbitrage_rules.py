"""The arithmetic of funding-rate arbitrage (seed 001), as pure functions.

Conventions: rates are per settlement interval, positive = longs pay shorts;
``bps`` are basis points of the trade's notional per leg; money is Decimal.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from functools import cache
from math import gcd

from app.domain.arbitrage import ArbBook

ZERO = Decimal(0)
BPS = Decimal(10_000)
EIGHT_HOURS = timedelta(hours=8)
_MIDNIGHT_GRID_ORIGIN = datetime(1970, 1, 1, tzinfo=UTC)


# ---- funding over a holding horizon ---------------------------------------------------------

def settlements_within(start: datetime, horizon: timedelta, interval: timedelta,
                       next_at: datetime | None = None) -> int:
    """How many settlement instants a position opened at ``start`` and held for
    ``horizon`` straddles: instants t with start < t ≤ start + horizon, on the
    venue's own grid (``next_at`` when the venue says when its next one is, else
    every ``interval`` from midnight UTC). A position must be open *at* an instant
    to be charged or paid there, so an instant at ``start`` itself does not count."""
    if interval <= timedelta(0) or horizon <= timedelta(0):
        return 0
    first = next_at
    if first is None or first <= start:
        steps = (start - _MIDNIGHT_GRID_ORIGIN) // interval + 1
        first = _MIDNIGHT_GRID_ORIGIN + steps * interval
    end = start + horizon
    if first > end:
        return 0
    return (end - first) // interval + 1


def per_eight_hours(rate: Decimal, interval: timedelta) -> Decimal:
    """A rate per ``interval`` as the equivalent rate per 8 h (to compare venues)."""
    return rate * _to_eight_hours(interval)


@cache
def _to_eight_hours(interval: timedelta) -> Decimal:
    return Decimal(EIGHT_HOURS // timedelta(seconds=1)) / Decimal(
        interval // timedelta(seconds=1))


@dataclass(frozen=True, slots=True)
class FundingProjection:
    income_bps: Decimal  # what the legs receive over the horizon
    cost_bps: Decimal  # what they pay (≥ 0)

    @property
    def net_bps(self) -> Decimal:
        return self.income_bps - self.cost_bps


def project_funding(long_rate: Decimal, long_settlements: int, short_rate: Decimal,
                    short_settlements: int) -> FundingProjection:
    """Funding of a long on one venue and a short on the other, each over its own
    settlements: a long pays its venue's rate, a short receives its venue's rate."""
    flows = (-long_rate * long_settlements * BPS, short_rate * short_settlements * BPS)
    return FundingProjection(sum((f for f in flows if f > 0), ZERO),
                             sum((-f for f in flows if f < 0), ZERO))


# ---- sizing (seed 001) ---------------------------------------------------------------------

def position_size(spread_bps: Decimal, fees_bps: Decimal, funding_cost_bps: Decimal,
                  available: Decimal, max_fraction: Decimal = Decimal("0.5"),
                  minimum: Decimal = Decimal(100)) -> Decimal:
    """Seed 001's sizing: base = (spread − fees − funding cost) / spread × available,
    capped at ``max_fraction`` of available, at least ``minimum``; 0 when there is
    no edge or the pool cannot pay the minimum."""
    if spread_bps <= 0 or available < minimum:
        return ZERO
    base = (spread_bps - fees_bps - funding_cost_bps) / spread_bps * available
    if base <= 0:
        return ZERO
    return max(min(base, available * max_fraction), minimum)


@cache
def coarser_step(a: Decimal, b: Decimal) -> Decimal:
    """The smallest quantity that is a whole number of both steps (their least
    common multiple: 0.001 and 0.01 give 0.01; 0.004 and 0.006 give 0.012)."""
    fa, fb = Fraction(a), Fraction(b)
    # lcm(p/q, r/s) = lcm(p·s, r·q) / (q·s)
    num = _lcm(fa.numerator * fb.denominator, fb.numerator * fa.denominator)
    result = Fraction(num, fa.denominator * fb.denominator)
    return Decimal(result.numerator) / Decimal(result.denominator)


def _lcm(x: int, y: int) -> int:
    return x // gcd(x, y) * y


def round_down_to(qty: Decimal, step: Decimal) -> Decimal:
    return (qty // step) * step


# ---- slippage from a book ------------------------------------------------------------------

def walk(levels: Iterable[tuple[Decimal, Decimal]], qty: Decimal
         ) -> tuple[Decimal, Decimal | None]:
    """Walk ``levels`` (price, size), best first, for ``qty``: (what was found, its
    average price)."""
    left, notional = qty, ZERO
    for price, size in levels:
        take = min(left, size)
        notional += take * price
        left -= take
        if left <= 0:
            break
    found = qty - max(left, ZERO)
    return found, (notional / found if found else None)


def slippage_bps(best: Decimal, average: Decimal | None) -> Decimal:
    """How far an average fill is from the best price, in bps (≥ 0)."""
    if average is None or best <= 0:
        return ZERO
    return abs(average - best) / best * BPS


def depth_within(levels: Iterable[tuple[Decimal, Decimal]], max_impact_bps: Decimal
                 ) -> Decimal:
    """Quantity available within ``max_impact_bps`` of the best level."""
    total, best = ZERO, None
    for price, size in levels:
        if best is None:
            best = price
        if abs(price - best) / best * BPS > max_impact_bps:
            break
        total += size
    return total


# ---- confidence ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ConfidenceInputs:
    net_bps: Decimal  # projected edge after all costs
    costs_bps: Decimal  # fees + slippage + funding paid
    persisted: timedelta  # how long the funding delta has pointed this way
    persistence_full: timedelta  # how long earns the full persistence score
    depth_ratio: Decimal  # depth within the impact limit / the trade's qty (thinner venue)
    age: timedelta  # the oldest of the two books and two funding rates used
    stale_after: timedelta


def confidence(c: ConfidenceInputs) -> int:
    """A score 0–100 of how far the opportunity can be trusted:

    * edge, 35: 35 × min(1, net / costs) — full when the projected net edge at least
      matches what the trade spends to get it (0 with no edge);
    * persistence, 25: 25 × min(1, persisted / persistence_full) — a delta that has
      held its sign (and stayed above the entry threshold) for long is less likely
      to be a quote wobbling;
    * liquidity, 25: 25 × min(1, (depth ratio − 1) / 2) — full when the thinner venue
      shows three times the trade within the impact limit, 0 at just the trade;
    * freshness, 15: 15 × (1 − age / stale_after), 0 once any input is stale.
    """
    edge = (min(Decimal(1), c.net_bps / c.costs_bps) if c.costs_bps > 0 else Decimal(1)
            ) if c.net_bps > 0 else ZERO
    full = c.persistence_full.total_seconds()
    persistence = Decimal(1) if full <= 0 else min(
        Decimal(1), Decimal(str(max(c.persisted.total_seconds(), 0.0) / full)))
    liquidity = max(ZERO, min(Decimal(1), (c.depth_ratio - 1) / 2))
    stale = c.stale_after.total_seconds()
    fresh = ZERO if stale <= 0 else max(
        ZERO, Decimal(1) - Decimal(str(max(c.age.total_seconds(), 0.0) / stale)))
    score = 35 * edge + 25 * persistence + 25 * liquidity + 15 * fresh
    return int(min(Decimal(100), max(ZERO, score)))


# ---- exits (seed 001, in its order) ----------------------------------------------------------

PROFIT_TARGET = "profit_target"
LOSS_LIMIT = "loss_limit"
FUNDING_CONVERGENCE = "funding_convergence"


def exit_reason(booked: Decimal, unrealized: Decimal, projected: Decimal,
                funding_delta: Decimal | None, *,
                profit_target: Decimal = Decimal("0.9"), loss_limit: Decimal = Decimal("0.3"),
                convergence: Decimal = Decimal("0.00005"), held_long_enough: bool = True,
                converged_checks: int = 1, confirm_checks: int = 1) -> str | None:
    """The first exit condition a trade meets, or None (seed 001's, in its order):

    1. profit target: what closing now would book (``booked``: exit-side prices, every
       fee) ≥ ``profit_target`` × projected — the projection is net of all four legs'
       fees, so the two compare like for like;
    2. loss limit: seed 001's unrealized P&L (price moves of both legs and funding,
       before fees: fees are spent whichever way the trade ends) ≤ −``loss_limit`` ×
       projected — always, however young the trade;
    3. funding convergence: the delta in the trade's favour (short venue's rate minus
       the long venue's, per 8 h) below ``convergence`` (0.005 %), once the trade
       has been held its minimum time and the delta has stayed there for
       ``confirm_checks`` consecutive checks (hysteresis against a wobbling quote).
    """
    if projected > 0 and booked >= profit_target * projected:
        return PROFIT_TARGET
    if projected > 0 and unrealized <= -loss_limit * projected:
        return LOSS_LIMIT
    if (funding_delta is not None and funding_delta < convergence and held_long_enough
            and converged_checks >= confirm_checks):
        return FUNDING_CONVERGENCE
    return None


# ---- portfolio metrics (seed 001) ------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PortfolioMetrics:
    starting_capital: Decimal
    available_capital: Decimal
    total_open_positions: Decimal
    open_trades: int
    total_trades: int
    wins: int
    losses: int
    win_rate: Decimal | None  # wins / total trades
    cumulative_pnl: Decimal
    pnl_pct: Decimal  # cumulative P&L / starting capital × 100
    utilization_pct: Decimal  # open positions / starting capital × 100
    leg_out_count: int
    leg_out_loss: Decimal
    leg_out_loss_pct: Decimal | None  # leg-out loss / |cumulative P&L| × 100
    realistic_apr_pct: Decimal | None  # (P&L / capital) / (days / 365) × 100
    days_elapsed: Decimal


MIN_APR_DAYS = Decimal(1) / 24  # an APR over less than an hour says nothing


def portfolio_metrics(book: ArbBook, starting_capital: Decimal, now: datetime
                      ) -> PortfolioMetrics:
    allocated = book.allocated
    available = starting_capital + book.cumulative_pnl - allocated
    days = ZERO
    if book.first_trade_at is not None:
        days = Decimal(str(max((now - book.first_trade_at).total_seconds(), 0.0) / 86_400))
    pnl_ratio = book.cumulative_pnl / starting_capital if starting_capital else ZERO
    apr = (pnl_ratio / (days / 365) * 100).quantize(Decimal("0.01")) \
        if days >= MIN_APR_DAYS else None
    return PortfolioMetrics(
        starting_capital=starting_capital, available_capital=available,
        total_open_positions=allocated, open_trades=len(book.open),
        total_trades=book.trades, wins=book.wins, losses=book.losses,
        win_rate=(Decimal(book.wins) / book.trades) if book.trades else None,
        cumulative_pnl=book.cumulative_pnl, pnl_pct=pnl_ratio * 100,
        utilization_pct=(allocated / starting_capital * 100) if starting_capital else ZERO,
        leg_out_count=book.leg_out_count, leg_out_loss=book.leg_out_loss,
        leg_out_loss_pct=(book.leg_out_loss / abs(book.cumulative_pnl) * 100)
        if book.cumulative_pnl else None,
        realistic_apr_pct=apr, days_elapsed=days)
