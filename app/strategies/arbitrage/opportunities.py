"""Opportunity detection (seed 001): for one symbol on two venues, which way to
trade, how big, what it should earn over the holding horizon and how far to trust
that.

For each symbol: go long where the funding rate (per 8 h) is lower and short where
it is higher. Then

* funding over the horizon counts only the settlement instants the position will
  straddle, each venue on its own interval and schedule;
* the price spread is what the entry prices give (the harder leg rests at its own
  touch, the easier one crosses) less the exit's half spreads, assuming the two
  books' mids meet by the exit;
* fees are all four legs' (the harder entry as maker, the rest as taker);
* slippage is walked on the books for the trade's size (the easier entry and both
  exits);
* size follows seed 001 (``position_size``), capped by the thinner venue's depth
  within the impact limit, on the coarser step of the two venues.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from app.domain.arbitrage_rules import (
    BPS,
    ConfidenceInputs,
    coarser_step,
    confidence,
    per_eight_hours,
    position_size,
    project_funding,
    round_down_to,
    settlements_within,
    slippage_bps,
    walk,
)
from app.domain.instruments import Instrument
from app.domain.orders import Side
from app.strategies.arbitrage.params import ArbParams
from app.venues.base import TopOfBook

ZERO = Decimal(0)


class ArbMarket(Protocol):
    """What detection reads (a StrategyContext is one)."""

    now: datetime

    def instrument(self, symbol: str, venue: str | None = None) -> Instrument | None: ...

    def book(self, symbol: str, venue: str | None = None) -> TopOfBook: ...

    def liquidity(self, symbol: str, taker_side: Side, venue: str | None = None
                  ) -> Iterable[tuple[Decimal, Decimal]]: ...

    def funding(self, symbol: str, venue: str | None = None
                ) -> tuple[Decimal | None, datetime | None]: ...


@dataclass(frozen=True, slots=True)
class Opportunity:
    symbol: str
    long_venue: str
    short_venue: str
    harder_venue: str
    long_rate: Decimal  # per the long venue's interval
    short_rate: Decimal
    funding_delta: Decimal  # short minus long, per 8 h
    long_settlements: int
    short_settlements: int
    spread_bps: Decimal  # short venue's mid over the long venue's mid
    entry_edge_bps: Decimal  # what the entry prices and exit half spreads leave
    fees_bps: Decimal
    slippage_bps: Decimal
    funding_income_bps: Decimal
    funding_cost_bps: Decimal
    net_bps: Decimal
    notional: Decimal  # per leg
    qty: Decimal  # per leg
    long_price: Decimal  # the entry prices assumed
    short_price: Decimal
    projected_profit: Decimal
    confidence: int
    candidate: bool
    why_not: str  # empty for a candidate
    at: datetime


@dataclass(slots=True)
class Persistence:
    """Since when a symbol's funding delta has pointed one way above the entry
    threshold (the confidence score's persistence part)."""

    long_venue: str
    since: datetime


def scan_symbol(market: ArbMarket, p: ArbParams, symbol: str, available: Decimal,
                persisted: timedelta) -> Opportunity | None:
    """The opportunity on ``symbol`` now (None when a venue has no price or rate)."""
    a, b = p.venues
    now = market.now
    inst = {v: market.instrument(symbol, v) for v in (a, b)}
    tops = {v: market.book(symbol, v) for v in (a, b)}
    rates = {v: market.funding(symbol, v) for v in (a, b)}
    ia, ib = inst[a], inst[b]
    if ia is None or ib is None or not ia.is_perp or not ib.is_perp:
        return None
    for v in (a, b):
        top, (rate, _) = tops[v], rates[v]
        if top.bid is None or top.ask is None or top.bid <= 0 or rate is None:
            return None
    per8 = {v: per_eight_hours(rates[v][0] or ZERO, inst[v].funding_interval  # type: ignore[union-attr]
                               ) for v in (a, b)}
    long_v, short_v = (a, b) if per8[a] <= per8[b] else (b, a)
    li, si = inst[long_v], inst[short_v]
    assert li is not None and si is not None
    lt, st = tops[long_v], tops[short_v]
    l_bid, l_ask, s_bid, s_ask = lt.bid, lt.ask, st.bid, st.ask
    assert l_bid is not None and l_ask is not None and s_bid is not None and s_ask is not None
    l_mid, s_mid = (l_bid + l_ask) / 2, (s_bid + s_ask) / 2
    mid = (l_mid + s_mid) / 2
    delta = per8[short_v] - per8[long_v]
    horizon = timedelta(hours=float(p.horizon_hours))
    n_long = settlements_within(now, horizon, li.funding_interval, rates[long_v][1])
    n_short = settlements_within(now, horizon, si.funding_interval, rates[short_v][1])
    funding = project_funding(rates[long_v][0] or ZERO, n_long, rates[short_v][0] or ZERO,
                              n_short)

    # The long venue's asks and the short venue's bids are what the entry takes.
    # Only the levels within the impact limit (the size never goes beyond them), and
    # no deeper than three times the largest size the capital allows (where the
    # confidence's liquidity part is full): a deep book is not walked to its end.
    enough = 3 * available * p.max_position_fraction / mid if available > 0 else ZERO
    long_levels = within_impact(market.liquidity(symbol, Side.BUY, long_v), p.max_impact_bps,
                                enough)
    short_levels = within_impact(market.liquidity(symbol, Side.SELL, short_v),
                                 p.max_impact_bps, enough)
    if not long_levels or not short_levels:
        return None
    long_depth = sum((size for _, size in long_levels), ZERO)
    short_depth = sum((size for _, size in short_levels), ZERO)
    harder = long_v if long_depth <= short_depth else short_v
    easier = short_v if harder == long_v else long_v
    hi, ei = inst[harder], inst[easier]
    assert hi is not None and ei is not None
    fees_bps = (hi.maker_fee_rate + ei.taker_fee_rate + li.taker_fee_rate
                + si.taker_fee_rate) * BPS
    # Entry prices: the harder leg rests at its own touch, the easier one crosses.
    long_price = l_bid if harder == long_v else l_ask
    short_price = s_ask if harder == short_v else s_bid
    exit_half_spreads = ((l_ask - l_bid) / 2 + (s_ask - s_bid) / 2) / mid * BPS
    edge = (short_price - long_price) / mid * BPS - exit_half_spreads
    gross = funding.income_bps + max(edge, ZERO)
    notional = position_size(gross, fees_bps, funding.cost_bps, available,
                             p.max_position_fraction, p.min_trade_usd)
    step = coarser_step(li.step_size, si.step_size)
    depth = min(long_depth, short_depth)
    qty = round_down_to(min(notional / mid, depth), step) if notional > 0 else ZERO
    minimum = max(li.min_qty, si.min_qty)
    why = ""
    if qty < minimum or qty * mid < max(li.min_notional, si.min_notional):
        why = "too small for the venues' minimums" if notional > 0 else "no edge after costs"
        qty = ZERO
    slip = ZERO
    if qty > 0:
        easy_levels = long_levels if easier == long_v else short_levels
        found, avg = walk(easy_levels, qty)
        slip += slippage_bps(easy_levels[0][0], avg) if found == qty else p.max_impact_bps
        # The exits take the long venue's bids and the short venue's asks; the books
        # are taken as symmetric, so the entry sides' depth stands for them.
        for levels in (long_levels, short_levels):
            found, avg = walk(levels, qty)
            slip += slippage_bps(levels[0][0], avg) if found == qty else p.max_impact_bps
    costs = fees_bps + slip + funding.cost_bps + max(-edge, ZERO)
    net = gross - costs
    notional = qty * mid
    projected = (net * notional / BPS).quantize(Decimal("0.01")) if qty else ZERO
    ages = [now - t.updated_at for t in (lt, st) if t.updated_at is not None]
    age = max(ages) if ages else timedelta(seconds=p.stale_after_s)
    score = confidence(ConfidenceInputs(
        net_bps=net, costs_bps=costs, persisted=persisted,
        persistence_full=timedelta(seconds=p.persistence_full_s),
        depth_ratio=(depth / qty) if qty else ZERO, age=age,
        stale_after=timedelta(seconds=p.stale_after_s)))
    if not why:
        if delta < p.min_entry_delta:
            why = f"funding delta {delta:.6f} below the entry threshold {p.min_entry_delta}"
        elif projected <= 0:
            why = "no profit after fees, slippage and funding paid"
        elif net < p.min_edge_ratio * costs:
            why = (f"edge {net:.1f} bps is less than {p.min_edge_ratio}× its costs "
                   f"({costs:.1f} bps)")
        elif score < p.min_confidence:
            why = f"confidence {score} below {p.min_confidence}"
    return Opportunity(
        symbol=symbol, long_venue=long_v, short_venue=short_v, harder_venue=harder,
        long_rate=rates[long_v][0] or ZERO, short_rate=rates[short_v][0] or ZERO,
        funding_delta=delta, long_settlements=n_long, short_settlements=n_short,
        spread_bps=((s_mid - l_mid) / mid * BPS).quantize(Decimal("0.01")),
        entry_edge_bps=edge.quantize(Decimal("0.01")), fees_bps=fees_bps,
        slippage_bps=slip.quantize(Decimal("0.01")),
        funding_income_bps=funding.income_bps, funding_cost_bps=funding.cost_bps,
        net_bps=net.quantize(Decimal("0.01")), notional=notional.quantize(Decimal("0.01")),
        qty=qty, long_price=long_price, short_price=short_price,
        projected_profit=projected, confidence=score, candidate=not why, why_not=why, at=now)


def within_impact(levels: Iterable[tuple[Decimal, Decimal]], max_impact_bps: Decimal,
                  enough: Decimal | None = None) -> list[tuple[Decimal, Decimal]]:
    """The levels, best first, no further than ``max_impact_bps`` from the best (and
    no more of them than hold ``enough``, when given)."""
    out: list[tuple[Decimal, Decimal]] = []
    bound = None
    total = ZERO
    for price, size in levels:
        if bound is None:
            bound = price * max_impact_bps / BPS
        elif abs(price - out[0][0]) > bound:
            break
        out.append((price, size))
        total += size
        if enough is not None and total >= enough:
            break
    return out


def symbols_of(market: ArbMarket, p: ArbParams, listed: list[Instrument]) -> list[str]:
    """The perps listed on both venues (or the configured ones)."""
    if p.symbols:
        return list(p.symbols)
    return sorted(i.symbol for i in listed
                  if i.is_perp and market.instrument(i.symbol, p.venues[1]) is not None)
