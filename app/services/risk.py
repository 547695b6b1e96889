"""Risk controls as use cases: read a client's limits with their current usage and
breaker states, change its profile (operator; audited; in force at once and after
a restart), reset a tripped breaker (operator, with a reason), and the order rate
limit that API callers meet before their order reaches the engine.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from app.auth.principal import Principal, Role
from app.config import RiskProfileConfig
from app.domain.events import Event
from app.domain.orders import OrderSpec
from app.domain.risk import (
    Breaker,
    BreakerTripped,
    ClientRiskState,
    ResetBreaker,
    RiskProfile,
    SetRiskProfile,
)
from app.runtime.bus import utc_now
from app.runtime.system import TradingSystem
from app.services.commands import run
from app.services.errors import ServiceError
from app.services.scope import ensure_role, known_account
from app.store.tables import AuditRow

safety_log = logging.getLogger("perpdesk.safety")
HUNDRED = Decimal(100)


# ---- the API's order rate limit ------------------------------------------------------

def check_order_rate(system: TradingSystem, spec: OrderSpec) -> None:
    """Refuse (429, nothing recorded) an order beyond its client's rate limits.
    Strategies are limited inside the engine instead (app/engine/risk_controls.py)."""
    profile = system.engine.risk.profile(spec.client)
    if profile.orders_per_second is None and profile.orders_per_minute is None:
        return
    refusal = system.order_rates.take(spec.client, utc_now(), profile.orders_per_second,
                                      profile.orders_per_minute)
    if refusal is None:
        return
    wait = refusal.retry_after.total_seconds()
    safety_log.warning("SAFETY_RATE_LIMIT client=%s limit=%d/%s retry_after_s=%.3f",
                       spec.client, refusal.limit, refusal.window, wait)
    raise ServiceError(429, "RATE_LIMITED",
                       f"more than {refusal.limit} orders a {refusal.window} for "
                       f"{spec.client}; retry in {wait:.3f} s",
                       {"limit": str(refusal.limit), "window": refusal.window,
                        "retry_after_s": f"{wait:.3f}"},
                       headers={"Retry-After": str(max(1, round(wait + 0.499)))})


# ---- reading --------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class BreakerView:
    breaker: Breaker
    limit: str | None  # None: off
    current: str  # the figure it watches, now
    action: str
    tripped: BreakerTripped | None


@dataclass(frozen=True, slots=True)
class RiskView:
    client: str
    profile: RiskProfile
    source: str  # "default" | "configured" | "set"
    equity: Decimal
    peak_equity: Decimal | None
    day_open_equity: Decimal | None
    usage: dict[str, Any]
    breakers: list[BreakerView]


def risk_view(system: TradingSystem, principal: Principal, client: str) -> RiskView:
    known_account(system, principal, client, None)
    engine = system.engine
    profile = engine.risk.profile(client)
    source = "set" if client in engine.state.risk_profiles else \
        "configured" if client in engine.risk.configured else "default"
    state = engine.state.risk.get(client) or ClientRiskState()
    usage = _usage(system, client, profile)
    # The breakers' equity (the client's, all venues) from the valuations usage made.
    equity = sum((m["equity"] for m in usage["margin"]), Decimal(0))
    return RiskView(client, profile, source, equity, state.peak_equity, state.day_open_equity,
                    usage, _breakers(profile, state, equity, utc_now()))


def _usage(system: TradingSystem, client: str, profile: RiskProfile) -> dict[str, Any]:
    engine = system.engine
    accounts = [v for c, v in engine.state.accounts if c == client]
    open_orders = sum(len(engine.state.open_orders.get((client, v), ())) for v in accounts)
    per_second, per_minute = system.order_rates.recent(client, utc_now())
    margin = []
    for venue in accounts:
        s = engine.summary(client, venue)
        used = s.margin_used + s.order_margin
        margin.append({"venue": venue, "equity": s.equity, "margin_in_use": used,
                       "ratio": used / s.equity if s.equity > 0 else None})
    positions = []
    for venue in accounts:
        prices = engine.prices(venue)
        for symbol, position in sorted(engine.positions_of(client, venue).items()):
            if not position.qty:
                continue
            limits = engine.position_limits(client, symbol)  # what the checks use
            mark = prices.get(symbol)
            positions.append({"venue": venue, "symbol": symbol, "size": abs(position.qty),
                              "max_size": limits.max_position_size,
                              "notional": abs(position.qty) * mark if mark else None,
                              "max_notional": limits.max_position_notional})
    windows = []
    now = utc_now()
    for venue in accounts:
        if not engine.margin.windows.get(venue):
            continue
        current = engine.margin.current(venue)
        at, coming = engine.margin.upcoming(venue, now)
        windows.append({"venue": venue, "current": current.name if current else None,
                        "initial_multiplier": current.initial_multiplier if current
                        else Decimal(1),
                        "next_change_at": at.isoformat() if at else None,
                        "next": coming.name if coming else None})
    return {"open_orders": open_orders, "max_open_orders": profile.max_open_orders,
            "margin_windows": windows,
            "orders_last_second": per_second, "orders_per_second": profile.orders_per_second,
            "orders_last_minute": per_minute, "orders_per_minute": profile.orders_per_minute,
            "margin": margin, "max_margin_ratio": profile.margin_ratio_cap,
            "positions": positions}


def _breakers(profile: RiskProfile, state: ClientRiskState, equity: Decimal, now: datetime
              ) -> list[BreakerView]:
    policy = profile.breakers

    def pct(part: Decimal | None, whole: Decimal | None) -> str:
        if part is None or not whole or whole <= 0:
            return "—"
        return f"{max(part, Decimal(0)) / whole * HUNDRED:.2f}%"

    started = state.session_started
    minutes = f"{(now - started).total_seconds() / 60:.0f} min" if started else "—"
    figures: dict[Breaker, tuple[Any, str]] = {
        Breaker.CONSECUTIVE_LOSSES: (policy.consecutive_losses, str(state.consecutive_losses)),
        Breaker.DAILY_LOSS: (policy.daily_loss_pct, pct(
            (state.day_open_equity - equity) if state.day_open_equity is not None else None,
            state.day_open_equity)),
        Breaker.DRAWDOWN: (policy.max_drawdown_pct, pct(
            (state.peak_equity - equity) if state.peak_equity is not None else None,
            state.peak_equity)),
        Breaker.SESSION_TRADES: (policy.session_max_trades, str(state.session_trades)),
        Breaker.SESSION_RUNTIME: (policy.session_max_runtime_minutes, minutes),
    }
    return [BreakerView(b, None if limit is None else str(limit), current,
                        policy.action(b).value, state.tripped.get(b))
            for b, (limit, current) in figures.items()]


# ---- changing ---------------------------------------------------------------------------

async def set_profile(system: TradingSystem, principal: Principal, client: str,
                      profile: RiskProfile, reason: str) -> RiskView:
    """Replace a client's risk profile (operator). In force from the next order."""
    ensure_role(principal, Role.OPERATOR)
    known_account(system, principal, client, None)
    before = system.engine.risk.profile(client)

    def audit(events: list[Event]) -> list[AuditRow]:
        return [AuditRow(at=datetime.now(UTC), actor=principal.actor, action="risk-profile",
                         scope=f"client {client}", reason=reason, previous=None,
                         details={"before": _jsonable(before), "after": _jsonable(profile)})]

    await run(system, SetRiskProfile(client, profile, reason, principal.actor), audit=audit)
    return risk_view(system, principal, client)


async def reset_breaker(system: TradingSystem, principal: Principal, client: str,
                        breaker: Breaker, reason: str) -> tuple[RiskView, bool]:
    """Clear a tripped breaker (operator, with a reason); trading comes back if the
    trip is what held the client and no other trip does. Idempotent, as the kill
    switches are: resetting a breaker that is not tripped changes nothing and says so
    (``False``), so a retried reset is not an error."""
    ensure_role(principal, Role.OPERATOR)
    known_account(system, principal, client, None)
    trip = (system.engine.state.risk.get(client) or ClientRiskState()).tripped.get(breaker)

    def audit(events: list[Event]) -> list[AuditRow]:
        return [AuditRow(at=datetime.now(UTC), actor=principal.actor, action="breaker-reset",
                         scope=f"client {client}", reason=reason,
                         previous=trip.state.value if trip else None,
                         details={"breaker": breaker.value,
                                  "tripped_at": trip.at.isoformat() if trip else None,
                                  "figures": dict(trip.figures) if trip else {}})]

    try:
        await run(system, ResetBreaker(client, breaker, reason, principal.actor),
                  audit=audit)
    except ServiceError as exc:
        if exc.code != "BREAKER_NOT_TRIPPED":
            raise
        return risk_view(system, principal, client), False
    return risk_view(system, principal, client), True


def _jsonable(profile: RiskProfile) -> dict[str, Any]:
    return RiskProfileConfig.of(profile).model_dump(mode="json")
