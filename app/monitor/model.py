"""The monitor's plain data: views parsed from the REST API, the portfolio metrics.

Pure: no I/O, no clock (``now`` is passed in), no rich. Money, prices and
quantities are ``Decimal`` parsed from the API's strings, never float.

Metrics follow seed 001 (``PortfolioMetrics``):

- win rate = winning closed trades / closed trades (a win is a net P&L > 0);
- cumulative P&L = what closed trading did to the wallet: realized − fees ±
  funding (= wallet − capital); its % is over the starting capital (deposits −
  withdrawals). Unrealized P&L of open positions is shown beside it, not in it;
- realistic APR = (cumulative P&L / starting capital) / (days elapsed / 365),
  days elapsed since the first deposit; not shown under one hour, where it
  would annualize noise;
- utilization = margin in use / equity, as the API computes it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

ZERO = Decimal(0)
HUNDRED = Decimal(100)
MIN_APR_WINDOW = timedelta(hours=1)
DAYS_PER_YEAR = Decimal(365)
MICROS_PER_DAY = Decimal(86_400_000_000)


def _dec(raw: Any) -> Decimal:
    if raw is None or raw == "":
        return ZERO
    if isinstance(raw, float):  # never expected from the API; keep it exact-ish anyway
        return Decimal(str(raw))
    return Decimal(raw)


def parse_time(raw: str | datetime | None) -> datetime | None:
    """An API timestamp (ISO 8601, ``Z`` or an offset) as an aware datetime."""
    if raw is None or isinstance(raw, datetime):
        return raw
    return datetime.fromisoformat(raw.replace("Z", "+00:00"))


@dataclass(frozen=True)
class PositionView:
    """One open position, as ``GET /api/v1/positions`` reports it."""

    client: str
    venue: str
    symbol: str
    side: str  # "long" | "short"
    qty: Decimal
    entry_price: Decimal
    mark_price: Decimal
    unrealized_pnl: Decimal

    @classmethod
    def from_api(cls, row: Mapping[str, Any]) -> PositionView:
        return cls(client=row["client"], venue=row["venue"], symbol=row["symbol"],
                   side=row["side"], qty=_dec(row["qty"]),
                   entry_price=_dec(row["avg_entry_price"]),
                   mark_price=_dec(row["mark_price"]),
                   unrealized_pnl=_dec(row["unrealized_pnl"]))


@dataclass(frozen=True)
class ExitView:
    """One closed trade, as ``GET /api/v1/trades`` reports it."""

    trade_id: str
    client: str
    venue: str
    symbol: str
    direction: str
    qty: Decimal
    entry_price: Decimal
    exit_price: Decimal
    net_pnl: Decimal
    exit_reason: str
    closed_at: datetime

    @classmethod
    def from_api(cls, row: Mapping[str, Any]) -> ExitView:
        closed = parse_time(row["closed_at"])
        if closed is None:
            raise ValueError(f"trade {row.get('trade_id')!r} has no closed_at")
        return cls(trade_id=row["trade_id"], client=row["client"], venue=row["venue"],
                   symbol=row["symbol"], direction=row["direction"], qty=_dec(row["qty"]),
                   entry_price=_dec(row["entry_price"]), exit_price=_dec(row["exit_price"]),
                   net_pnl=_dec(row["net_pnl"]), exit_reason=row.get("exit_reason") or "",
                   closed_at=closed)


@dataclass(frozen=True)
class PortfolioTotals:
    """The ``total`` rollup of ``GET /api/v1/portfolio`` (one client's, with ?client=)."""

    capital: Decimal  # deposits − withdrawals: the starting capital
    equity: Decimal
    wallet: Decimal
    available: Decimal
    margin_used: Decimal
    utilization_pct: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    fees: Decimal
    funding: Decimal

    @classmethod
    def from_api(cls, portfolio: Mapping[str, Any]) -> PortfolioTotals:
        t = portfolio["total"]
        return cls(capital=_dec(t["capital"]), equity=_dec(t["equity"]),
                   wallet=_dec(t["wallet"]), available=_dec(t["available"]),
                   margin_used=_dec(t["margin_used"]),
                   utilization_pct=_dec(t["utilization_pct"]),
                   realized_pnl=_dec(t["realized_pnl"]),
                   unrealized_pnl=_dec(t["unrealized_pnl"]), fees=_dec(t["fees"]),
                   funding=_dec(t["funding"]))

    @property
    def cumulative_pnl(self) -> Decimal:
        """Closed-trading P&L: realized − fees ± funding (the wallet's change)."""
        return self.realized_pnl - self.fees + self.funding


@dataclass(frozen=True)
class Metrics:
    capital: Decimal
    available: Decimal
    equity: Decimal
    utilization_pct: Decimal
    unrealized_pnl: Decimal
    trades: int
    trades_capped: bool  # the trade list hit the fetch limit: counts are "at least"
    wins: int
    win_rate_pct: Decimal | None  # None: no closed trades yet
    cumulative_pnl: Decimal
    pnl_pct: Decimal | None  # None: no capital
    apr_pct: Decimal | None  # None: under an hour of history, or no capital
    leg_outs: int


def realistic_apr_pct(cumulative_pnl: Decimal, capital: Decimal, since: datetime | None,
                      now: datetime) -> Decimal | None:
    """(pnl / capital) / (days / 365) in percent; None when it would be meaningless."""
    if since is None or capital <= 0:
        return None
    elapsed = now - since
    if elapsed < MIN_APR_WINDOW:
        return None
    micros = elapsed // timedelta(microseconds=1)
    # (pnl / capital) / (days / 365) × 100, as one division so it stays exact
    return cumulative_pnl * HUNDRED * DAYS_PER_YEAR * MICROS_PER_DAY / (capital * micros)


def compute_metrics(totals: PortfolioTotals, trades: Sequence[ExitView],
                    first_event_at: datetime | None, now: datetime, leg_outs: int = 0,
                    trades_capped: bool = False) -> Metrics:
    count = len(trades)
    wins = sum(1 for t in trades if t.net_pnl > 0)
    cumulative = totals.cumulative_pnl
    return Metrics(
        capital=totals.capital, available=totals.available, equity=totals.equity,
        utilization_pct=totals.utilization_pct, unrealized_pnl=totals.unrealized_pnl,
        trades=count, trades_capped=trades_capped, wins=wins,
        win_rate_pct=Decimal(wins) / Decimal(count) * HUNDRED if count else None,
        cumulative_pnl=cumulative,
        pnl_pct=cumulative / totals.capital * HUNDRED if totals.capital > 0 else None,
        apr_pct=realistic_apr_pct(cumulative, totals.capital, first_event_at, now),
        leg_outs=leg_outs)


def first_deposit_at(events: Iterable[Mapping[str, Any]], client: str | None = None
                     ) -> datetime | None:
    """When the book started: the first deposit (else the first event) in ``events``."""
    first_any: datetime | None = None
    for event in events:
        if client is not None and event.get("client") != client:
            continue
        at = parse_time(event.get("created_at"))
        if at is None:
            continue
        if event.get("type") == "FundsDeposited":
            return at
        if first_any is None:
            first_any = at
    return first_any


def trading_state_label(controls: Iterable[Mapping[str, Any]], client: str | None = None
                        ) -> str:
    """``active``, or the scopes that are not: ``global reduce_only, demo halted``."""
    parts = []
    for row in controls:
        if client is not None and row.get("client") not in (None, client):
            continue
        state = row.get("state", "?")
        if state == "active":
            continue
        if row.get("client") is None and row.get("venue") is None:
            parts.append(f"global {state}")
        else:
            scope = "@".join(x for x in (row.get("client"), row.get("venue")) if x)
            parts.append(f"{scope} {state}")
    return ", ".join(parts) if parts else "active"


# ---- scrolling ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Window:
    start: int  # 0-based, inclusive
    stop: int  # exclusive
    total: int

    @property
    def label(self) -> str:
        if self.total == 0:
            return "none"
        return f"showing {self.start + 1}–{self.stop} of {self.total}"


def scroll_window(total: int, rows: int, step: int) -> Window:
    """The page of ``rows`` rows shown at scroll step ``step`` (pages cycle)."""
    rows = max(1, rows)
    if total <= rows:
        return Window(0, total, total)
    pages = math.ceil(total / rows)
    start = (step % pages) * rows
    return Window(start, min(start + rows, total), total)


# ---- formatting --------------------------------------------------------------------------

def _places(value: Decimal, places: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def fmt_usd(value: Decimal, *, signed: bool = False, places: int = 2) -> str:
    """``$20,000.00``; signed: ``+$45.20`` / ``-$18.50``; under a cent: ``-$0.0018``."""
    q = _places(value, places)
    if value and not q:  # tiny but not zero: show it rather than "$0.00"
        places += 2
        q = _places(value, places)
    body = f"${abs(q):,.{places}f}"
    if q < 0:
        return "-" + body
    if signed and q > 0:
        return "+" + body
    return body


def fmt_pct(value: Decimal | None, *, signed: bool = False, places: int = 2) -> str:
    if value is None:
        return "—"
    q = _places(value, places)
    if value and not q:  # tiny but not zero: show it rather than "0.00%"
        q = _places(value, places + 2)
        places += 2
    if not q:
        q = abs(q)  # no "-0.00%"
    text = f"{q:,.{places}f}%"
    return "+" + text if signed and q > 0 else text


def fmt_price(value: Decimal) -> str:
    return f"{value:,f}"


def fmt_qty(value: Decimal) -> str:
    return f"{value:f}"


def pnl_style(value: Decimal) -> str:
    """Green for a gain, red for a loss, dim for nothing."""
    return "green" if value > 0 else "red" if value < 0 else "dim"


def fmt_time(at: datetime, now: datetime) -> str:
    """``05:23:06`` today (UTC), else ``11-20 05:23``."""
    at, now = at.astimezone(UTC), now.astimezone(UTC)
    return at.strftime("%H:%M:%S") if at.date() == now.date() else at.strftime("%m-%d %H:%M")
