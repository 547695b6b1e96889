"""Circuit breakers (seed 004): when one trips, and the equity references they use.

Pure functions of a client's ``ClientRiskState``, its policy, its equity now
(all venues together: a funding-rate arbitrage's profit piles on one venue and
its loss on the other, and only their sum says how the client is doing) and the
engine clock. The engine turns their answers into events.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from app.domain.risk import Breaker, BreakerPolicy, ClientRiskState, RiskStateRecorded

HUNDRED = Decimal(100)
# A new peak is recorded once it is this much above the recorded one: a rising
# market would otherwise write one event per tick. The drawdown guard therefore
# measures from a peak at most 0.1 % below the true one (it trips a little later).
PEAK_STEP = Decimal("0.001")


def track_equity(client: str, state: ClientRiskState, equity: Decimal, now: datetime
                 ) -> RiskStateRecorded | None:
    """The record to write when a new UTC day starts (its opening equity) or the peak
    rises by more than ``PEAK_STEP``; None when nothing changed enough."""
    day = now.date().isoformat()
    peak = state.peak_equity
    if state.day != day or state.day_open_equity is None:
        return RiskStateRecorded(client, equity if peak is None else max(peak, equity),
                                 day, equity, now)
    if peak is None or equity > peak * (1 + PEAK_STEP):
        return RiskStateRecorded(client, equity, day, state.day_open_equity, now)
    return None


def breaches(policy: BreakerPolicy, state: ClientRiskState, equity: Decimal, now: datetime
             ) -> list[tuple[Breaker, str, tuple[tuple[str, str], ...]]]:
    """The breakers that trip now (not those already tripped): each with a message
    and the figures that tripped it."""
    out: list[tuple[Breaker, str, tuple[tuple[str, str], ...]]] = []
    tripped = state.tripped
    limit = policy.consecutive_losses
    if limit is not None and Breaker.CONSECUTIVE_LOSSES not in tripped \
            and state.consecutive_losses >= limit:
        out.append((Breaker.CONSECUTIVE_LOSSES,
                    f"{state.consecutive_losses} losing trades in a row (limit {limit})",
                    (("consecutive_losses", str(state.consecutive_losses)),
                     ("limit", str(limit)))))
    pct = policy.daily_loss_pct
    opening = state.day_open_equity
    if pct is not None and Breaker.DAILY_LOSS not in tripped and opening and opening > 0:
        loss = opening - equity
        if loss * HUNDRED >= opening * pct:
            out.append((Breaker.DAILY_LOSS,
                        f"down {loss:.2f} today ({loss / opening * HUNDRED:.2f}% of the "
                        f"day's opening equity {opening:.2f}; limit {pct}%)",
                        (("day", state.day or ""), ("day_open_equity", f"{opening:.2f}"),
                         ("equity", f"{equity:.2f}"), ("loss", f"{loss:.2f}"),
                         ("limit_pct", str(pct)))))
    pct = policy.max_drawdown_pct
    peak = state.peak_equity
    if pct is not None and Breaker.DRAWDOWN not in tripped and peak and peak > 0:
        drawdown = peak - equity
        if drawdown * HUNDRED >= peak * pct:
            out.append((Breaker.DRAWDOWN,
                        f"equity {equity:.2f} is {drawdown / peak * HUNDRED:.2f}% below its "
                        f"peak {peak:.2f} (limit {pct}%)",
                        (("peak_equity", f"{peak:.2f}"), ("equity", f"{equity:.2f}"),
                         ("drawdown", f"{drawdown:.2f}"), ("limit_pct", str(pct)))))
    trades = policy.session_max_trades
    if trades is not None and Breaker.SESSION_TRADES not in tripped \
            and state.session_trades >= trades:
        out.append((Breaker.SESSION_TRADES,
                    f"{state.session_trades} trades this session (limit {trades})",
                    (("session_trades", str(state.session_trades)), ("limit", str(trades)))))
    minutes = policy.session_max_runtime_minutes
    started = state.session_started
    if minutes is not None and Breaker.SESSION_RUNTIME not in tripped \
            and started is not None and now - started >= timedelta(minutes=minutes):
        ran = (now - started).total_seconds() / 60
        out.append((Breaker.SESSION_RUNTIME,
                    f"the session has run {ran:.0f} minutes (limit {minutes})",
                    (("session_started", started.isoformat()),
                     ("minutes", f"{ran:.0f}"), ("limit", str(minutes)))))
    return out
