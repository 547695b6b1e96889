"""/api/v1/risk and /api/v1/rejections: a client's risk controls.

* ``GET /risk/{client}`` (viewer of that client): its profile (limits, sizing,
  breakers), where the profile comes from, current usage against each limit,
  and each breaker's state with the figures that tripped it.
* ``PUT /risk/{client}`` (operator): replace the profile, with a reason; audited,
  in force from the next order and kept across restarts.
* ``POST /risk/{client}/reset-breaker`` (operator): clear a tripped breaker,
  with a reason; audited; idempotent (``changed`` says whether it was tripped).
* ``GET /rejections``: rejected orders by code, client, symbol and strategy.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from app.api.deps import Operator, Reads, System
from app.api.inputs import (
    NAME_MAX,
    NAME_PATTERN,
    ClientQuery,
    Instant,
    Reason,
    SymbolQuery,
)
from app.api.openapi import Responses
from app.api.schemas import Strict
from app.config import RiskProfileConfig
from app.domain.rejections import RejectCode
from app.domain.risk import Breaker
from app.services import rejections, risk
from app.services.risk import RiskView

router = APIRouter(tags=["risk"])

ClientPath = Annotated[str, Path(min_length=1, max_length=NAME_MAX, pattern=NAME_PATTERN)]
ERRORS: Responses = {403: {"description": "not your client, or not an operator"},
                     404: {"description": "no such client"}}


class RiskUpdate(Strict):
    profile: RiskProfileConfig
    reason: Reason


class BreakerResetIn(Strict):
    breaker: Breaker
    reason: Reason


class RiskPublic(BaseModel):
    client: str
    source: str
    profile: dict[str, Any]
    equity: str
    peak_equity: str | None
    day_open_equity: str | None
    usage: dict[str, Any]
    breakers: list[dict[str, Any]]


class RejectionsPublic(BaseModel):
    start: datetime
    end: datetime
    total: int
    by_code: dict[str, int]
    rows: list[dict[str, Any]]
    rate_limited_api: dict[str, int]


def _text(value: Any) -> Any:
    """Decimals as strings, all the way down (the API's money rule)."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return {k: _text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_text(v) for v in value]
    return value


def risk_json(view: RiskView) -> dict[str, Any]:
    return {
        "client": view.client, "source": view.source,
        "profile": RiskProfileConfig.of(view.profile).model_dump(mode="json"),
        "equity": _text(view.equity), "peak_equity": _text(view.peak_equity),
        "day_open_equity": _text(view.day_open_equity), "usage": _text(view.usage),
        "breakers": [{"breaker": b.breaker.value, "limit": b.limit, "current": b.current,
                      "action": b.action, "tripped": None if b.tripped is None else {
                          "at": b.tripped.at.isoformat(), "state": b.tripped.state.value,
                          "message": b.tripped.message, "figures": dict(b.tripped.figures)}}
                     for b in view.breakers],
    }


@router.get("/risk/{client}", response_model=RiskPublic, responses=ERRORS,
            summary="A client's risk limits, usage and breakers")
async def get_risk(client: ClientPath, reader: Reads) -> dict[str, Any]:
    return risk_json(risk.risk_view(reader.system, reader.principal, client))


@router.put("/risk/{client}", response_model=RiskPublic, responses=ERRORS,
            summary="Replace a client's risk profile (operator)")
async def put_risk(client: ClientPath, body: RiskUpdate, principal: Operator, system: System
                   ) -> dict[str, Any]:
    view = await risk.set_profile(system, principal, client, body.profile.to_domain(),
                                  body.reason)
    return risk_json(view)


class BreakerResetPublic(RiskPublic):
    changed: bool  # False: the breaker was not tripped (a retried reset changes nothing)


@router.post("/risk/{client}/reset-breaker", response_model=BreakerResetPublic,
             responses=ERRORS, summary="Clear a tripped breaker (operator; idempotent)")
async def reset_breaker(client: ClientPath, body: BreakerResetIn, principal: Operator,
                        system: System) -> dict[str, Any]:
    view, changed = await risk.reset_breaker(system, principal, client, body.breaker,
                                             body.reason)
    return {**risk_json(view), "changed": changed}


@router.get("/rejections", response_model=RejectionsPublic,
            summary="Rejected orders by code, client, symbol and strategy")
async def get_rejections(
    reader: Reads, client: ClientQuery = None, symbol: SymbolQuery = None,
    strategy: Annotated[str | None, Query(min_length=1, max_length=64,
                                          pattern=NAME_PATTERN)] = None,
    code: RejectCode | None = None,
    start: Annotated[Instant | None, Query(alias="from")] = None,
    end: Annotated[Instant | None, Query(alias="to")] = None,
) -> dict[str, Any]:
    """Counts over ``from``..``to`` (default: the last 24 hours; at most 31 days),
    most frequent first; ``rate_limited_api`` counts API orders refused (429) by a
    rate limit before they became orders, since the server started."""
    found = await rejections.breakdown(reader.system, reader.principal, client=client,
                                       symbol=symbol, strategy=strategy,
                                       code=code.value if code else None, start=start,
                                       end=end)
    return {"start": found.start, "end": found.end, "total": found.total,
            "by_code": found.by_code,
            "rows": [{"code": r.code, "client": r.client, "symbol": r.symbol,
                      "strategy": r.strategy, "count": r.count} for r in found.rows],
            "rate_limited_api": found.rate_limited_api}
