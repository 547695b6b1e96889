"""Checks every scenario makes on a finished run, each recomputed from the events
(the venue's fill reports, funding, cash) rather than read back from the engine."""

from __future__ import annotations

from decimal import Decimal

from app.domain.events import FundingApplied, OrderFilled, PositionLiquidated
from app.domain.orders import Liquidity
from app.scenarios.harness import Run, replica
from app.scenarios.report import Check

CENT = Decimal("0.01")
ZERO = Decimal(0)


def money(value: Decimal) -> str:
    return f"${value.quantize(CENT):,}"


def final_sample(run: Run) -> None:
    """A last valuation at the end of the run (the reconciliation covers it)."""
    if run.last_at is not None:
        run.sample(run.last_at)


def reconciliation(run: Run, line: str = "Financial reconciliation within $0.01") -> Check:
    """Engine equity against the independent ledger's at every minute's snapshot."""
    if not run.samples:
        return Check.na(line, "no snapshot was taken (no market data)")
    worst = max(run.samples, key=lambda s: s.drift)
    return Check.of(line, worst.drift <= CENT,
                    f"{len(run.samples)} snapshots; largest drift {worst.drift:.8f} "
                    f"({worst.client} at {worst.at:%Y-%m-%d %H:%M})")


def pnl_matches(run: Run, line: str) -> Check:
    """Realized P&L, fees, funding and positions as the engine holds them, against the
    ledger kept from the venue's fill reports."""
    engine = run.engine
    fills = sum(1 for e in run.events if type(e) is OrderFilled)
    problems = []
    for client in run.clients:
        account = engine.state.accounts[(client, run.venue)]
        book = run.ledger.book(client, run.venue)
        for name, ours, theirs in (("realized", account.realized_pnl, book.realized),
                                   ("fees", account.fees, book.fees),
                                   ("funding", account.funding, book.funding)):
            if abs(ours - theirs) > CENT:
                problems.append(f"{client} {name} {ours} vs {theirs}")
        for symbol, position in engine.positions_of(client, run.venue).items():
            held = book.holdings.get(symbol)
            qty = held.qty if held is not None else ZERO
            if position.qty != qty or (held is not None and qty
                                       and abs(position.avg_entry - held.avg) > CENT):
                problems.append(f"{client} {symbol} position {position.qty} vs {qty}")
    if not fills:
        return Check.na(line, "no fills in this run")
    realized = sum((run.ledger.book(c, run.venue).realized for c in run.clients), ZERO)
    return Check.of(line, not problems,
                    "; ".join(problems[:3]) if problems else
                    f"{fills} fills; realized {money(realized)} recomputed from the venue's "
                    f"fill reports equals the engine's, as do fees, funding and positions")


def funding(run: Run, line: str = "Funding accruals tracked correctly") -> Check:
    applied = [e for e in run.events if type(e) is FundingApplied]
    if not applied:
        return Check.na(line, "no funding settled on an open position during the run "
                              "(a settlement every 8 h; none with a position held)")
    wrong = [e for e in applied
             if abs(e.amount - (-e.position_qty * e.mark * e.rate)) > CENT]
    total = sum((e.amount for e in applied), ZERO)
    booked = sum((run.engine.state.accounts[(c, run.venue)].funding for c in run.clients),
                 ZERO)
    ok = not wrong and abs(total - booked) <= CENT
    return Check.of(line, ok, f"{len(applied)} accruals, each −qty × mark × rate; total "
                              f"{money(total)}, booked {money(booked)}"
                    + (f"; {len(wrong)} off" if wrong else ""))


def fees(run: Run, line: str = "Fee tier correctly applied") -> Check:
    fills = [e for e in run.events if type(e) is OrderFilled]
    if not fills:
        return Check.na(line, "no fills in this run")
    wrong = []
    for e in fills:
        inst = run.engine.instruments[(e.venue, e.symbol)]
        rate = inst.maker_fee_rate if e.liquidity is Liquidity.MAKER else inst.taker_fee_rate
        if e.fee != e.qty * e.price * rate:
            wrong.append(e)
    makers = sum(1 for e in fills if e.liquidity is Liquidity.MAKER)
    return Check.of(line, not wrong,
                    f"{len(fills)} fills ({makers} maker, {len(fills) - makers} taker), each "
                    f"charged notional × its tier's maker/taker rate"
                    + (f"; {len(wrong)} not" if wrong else ""))


def no_liquidations(run: Run, line: str = "No margin calls or liquidations") -> Check:
    liquidations = [e for e in run.events if type(e) is PositionLiquidated]
    worst = max((s.maintenance_ratio for s in run.samples), default=ZERO)
    return Check.of(line, not liquidations and worst < 1,
                    f"{len(liquidations)} liquidations; highest maintenance ratio "
                    f"{worst * 100:.2f} % (100 % liquidates)")


def event_store(run: Run, line: str = "Event store captures all metrics") -> Check:
    """A fresh engine fed only the run's events holds the same accounts, positions and
    orders: the event log is the whole record."""
    rebuilt = replica(run)
    problems = []
    for key, account in run.engine.state.accounts.items():
        other = rebuilt.state.accounts.get(key)
        if other is None or (account.wallet, account.realized_pnl, account.fees,
                             account.funding) != (other.wallet, other.realized_pnl,
                                                  other.fees, other.funding):
            problems.append(f"account {key}")
    for where, position in run.engine.state.positions.items():
        other_pos = rebuilt.state.positions.get(where)
        if other_pos is None or (position.qty, position.avg_entry) != (other_pos.qty,
                                                                        other_pos.avg_entry):
            problems.append(f"position {where}")
    for oid, order in run.engine.state.orders.items():
        other_order = rebuilt.state.orders.get(oid)
        if other_order is None or (order.status, order.filled_qty) != (
                other_order.status, other_order.filled_qty):
            problems.append(f"order {oid}")
    return Check.of(line, not problems,
                    "; ".join(problems[:3]) if problems else
                    f"{len(run.events)} events rebuild {len(run.engine.state.orders)} orders, "
                    f"{len(run.engine.state.positions)} positions and every account exactly")
