"""Seed 000 §4.2's validation checklist, evaluated on a finished sandbox run.

Lines about orders the strategy placed are checked on those orders; the lines no
strategy exercises by itself (post-only crossing, GTC/IOC, cancel/replace) are
checked with probe orders (app/scenarios/probes.py); money lines are recomputed
from the events (app/scenarios/checks.py). A line this run could not exercise
is N/A with the reason.
"""

from __future__ import annotations

from decimal import Decimal

from app.domain.events import OrderFilled, OrderSubmitted, OrderTriggered
from app.domain.instruments import Rounding
from app.domain.orders import OrderSpec, OrderType, Side
from app.scenarios import checks, probes
from app.scenarios.harness import Run
from app.scenarios.report import Check
from app.strategies.common import BPS, HUNDRED, STOP, stop_prices

LIMIT_OFFSET = "Limit orders placed at correct offset from mid"
STOPS = "Stop orders trigger at expected levels"
PNL = "PnL calculations match exchange reports"
CREDENTIALS = "Sandbox run against the exchange with real API credentials (small sizes)"


def strategy_orders(run: Run, strategies: set[str]) -> list[OrderSubmitted]:
    return [e for e in run.events if type(e) is OrderSubmitted
            and e.spec.tags.strategy in strategies and e.replaces is None]


def limit_offsets(run: Run, strategies: set[str], offset_bps: Decimal) -> Check:
    """Each limit entry at mid ∓ offset (rounded away from the touch to the tick),
    the mid being the book's when the strategy decided."""
    entries = [e for e in strategy_orders(run, strategies)
               if e.spec.type is OrderType.LIMIT and not e.spec.reduce_only]
    if not entries:
        return Check.na(LIMIT_OFFSET, "the strategy placed no limit entry in this run")
    wrong = []
    for e in entries:
        mid = run.tops[e.order_id].mid
        if mid is None:
            wrong.append(e.order_id)
            continue
        expected = _offset_price(run, e.spec, mid, offset_bps)
        if e.spec.price != expected:
            wrong.append(e.order_id)
    sample = entries[0]
    top = run.tops[sample.order_id]
    return Check.of(LIMIT_OFFSET, not wrong,
                    f"{len(entries)} limit entries, each mid ∓ {offset_bps} bps on the tick "
                    f"(e.g. {sample.spec.side.value} {sample.spec.price} with bid {top.bid} / "
                    f"ask {top.ask})" + (f"; {len(wrong)} off: {wrong[:5]}" if wrong else ""))


def _offset_price(run: Run, spec: OrderSpec, mid: Decimal, offset_bps: Decimal) -> Decimal:
    inst = run.engine.instruments[(spec.venue, spec.symbol)]
    offset = mid * offset_bps / BPS * spec.side.sign
    return inst.round_price(mid - offset,
                            Rounding.DOWN if spec.side is Side.BUY else Rounding.UP)


def stop_levels(run: Run, strategies: set[str], stop_pct: Decimal,
                spread_bps: Decimal) -> Check:
    """Every protective stop-limit at ``stop_pct`` % from the position's average entry
    (its limit ``spread_bps`` beyond), and every trigger at or through that level."""
    stops = [e for e in strategy_orders(run, strategies)
             if e.spec.type is OrderType.STOP_LIMIT and e.spec.tags.exit_reason == STOP]
    if not stops:
        return Check.na(STOPS, "no position was opened, so no stop was placed")
    misplaced = []
    for e in stops:
        qty, avg = run.held[e.order_id]
        inst = run.engine.instruments[(e.spec.venue, e.spec.symbol)]
        sign = 1 if qty > 0 else -1
        trigger, limit = stop_prices(inst, sign, avg * (1 - sign * stop_pct / HUNDRED),
                                     spread_bps)
        if not qty or (e.spec.trigger_price, e.spec.price) != (trigger, limit) \
                or e.spec.qty != abs(qty):
            misplaced.append(e.order_id)
    by_id = {e.order_id: e.spec for e in stops}
    triggered = [e for e in run.events if type(e) is OrderTriggered and e.order_id in by_id]
    early = [e.order_id for e in triggered
             if (e.trigger_price > by_id[e.order_id].trigger_price  # type: ignore[operator]
                 if by_id[e.order_id].side is Side.SELL
                 else e.trigger_price < by_id[e.order_id].trigger_price)]  # type: ignore[operator]
    fills = [e for e in run.events if type(e) is OrderFilled and e.order_id in by_id]
    outside = [e.order_id for e in fills
               if (e.price < by_id[e.order_id].price  # type: ignore[operator]
                   if e.side is Side.SELL else e.price > by_id[e.order_id].price)]  # type: ignore[operator]
    detail = (f"{len(stops)} stop-limits placed, each {stop_pct} % from the average entry "
              f"(limit {spread_bps} bps beyond); {len(triggered)} triggered, all at or "
              f"through their level; {len(fills)} fills within their limits")
    problems = []
    if misplaced:
        problems.append(f"{len(misplaced)} misplaced {misplaced[:5]}")
    if early:
        problems.append(f"{len(early)} triggered early {early[:5]}")
    if outside:
        problems.append(f"{len(outside)} filled beyond the limit {outside[:5]}")
    if problems:
        return Check.of(STOPS, False, "; ".join(problems))
    if not triggered:
        return Check.na(STOPS, f"{len(stops)} stop-limits placed at the right levels "
                               f"({stop_pct} % from entry), but none triggered in this run")
    return Check.of(STOPS, True, detail)


def checklist(run: Run, *, strategies: set[str], symbol: str, limit_offset_bps: Decimal,
              stop_pct: Decimal, stop_spread_bps: Decimal) -> list[Check]:
    """Seed 000's eight lines (probes placed on ``symbol`` at the end of the run), and
    the line a paper venue cannot check."""
    out = [limit_offsets(run, strategies, limit_offset_bps),
           stop_levels(run, strategies, stop_pct, stop_spread_bps)]
    if run.last_at is None:
        out.append(Check.na("probes", "no market data"))
        return out
    probe = probes.Probe(run, symbol, run.last_at)
    out.append(probes.post_only(probe))
    tif, resting = probes.time_in_force(probe)
    out.append(tif)
    out.append(probes.cancel_replace(probe, resting))
    checks.final_sample(run)
    out.append(checks.pnl_matches(run, PNL))
    out.append(checks.funding(run))
    out.append(checks.event_store(run))
    out.append(Check.na(CREDENTIALS, "perpdesk runs these scenarios on its paper venues "
                                     "(binance-usdm / bybit-v5 order rules); no exchange "
                                     "sandbox or credentials are involved"))
    return out
