"""/api/v1/analytics and /api/v1/reports/daily: performance metrics from the store
(app/services/analytics.py; the formulas: app/domain/analytics.py). Anyone who may
see a client may read its analytics; decimals are strings, times ISO 8601 UTC,
durations in seconds."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import AfterValidator, BaseModel, Field

from app.api.deps import Reads
from app.api.inputs import NAME_PATTERN, ClientQuery, Instant
from app.api.openapi import Responses
from app.domain.analytics import to_json
from app.services import analytics as service

router = APIRouter(tags=["analytics"])

StrategyQuery = Annotated[str | None, Query(min_length=1, max_length=64,
                                            pattern=NAME_PATTERN)]

ERRORS: Responses = {
    403: {"description": "the client is outside the caller's scope"},
    404: {"description": "no such client"},
    422: {"description": "a bad window (from ≥ to, over 366 days) or more trades in it "
                         "than one answer computes (TOO_MANY_TRADES: narrow it)"}}


class AnalyticsPublic(BaseModel):
    clients: list[str]
    strategy: str | None
    start: datetime = Field(description="the window's start (inclusive)")
    end: datetime = Field(description="the window's end (exclusive)")
    capital: str = Field(description="net deposits: the base of the realized equity curve")
    metrics: dict[str, Any] = Field(
        description="every metric of app/domain/analytics.Performance: P&L, return, CAGR, "
                    "volatility, Sharpe, Sortino, Calmar (daily, 365 periods a year), "
                    "max_drawdown, trades / long / short statistics, r_distribution, "
                    "exit_reasons, orders, by_venue, by_strategy, by_symbol; each trade "
                    "statistics block has slippage (Σ round-trip slippage against the "
                    "arrival mid, quote currency, positive = a cost) and "
                    "average_slippage_bps")


class DailyRecapPublic(BaseModel):
    date: date
    clients: list[str]
    total_pnl: str = Field(description="net P&L of the trades closed that day")
    win_rate: str | None
    max_drawdown: str = Field(description="of the day's realized equity, hourly")
    max_drawdown_pct: str
    sharpe: str | None = Field(description="hourly realized returns, annualized (8,760)")
    trades: int
    rejections: int
    rejections_by_code: dict[str, int]


def _check_day(value: date) -> date:
    if not 2000 <= value.year <= 2999:
        raise ValueError("must lie between the years 2000 and 2999")
    return value


Day = Annotated[date, AfterValidator(_check_day)]


@router.get("/analytics", response_model=AnalyticsPublic, responses=ERRORS,
            summary="Performance metrics of closed trades and orders over a window")
async def get_analytics(
    reader: Reads, client: ClientQuery = None, strategy: StrategyQuery = None,
    start: Annotated[Instant | None, Query(alias="from")] = None,
    end: Annotated[Instant | None, Query(alias="to")] = None,
) -> dict[str, Any]:
    """Trades closed and orders created in ``from``..``to`` (default: the last 30 days;
    at most 366), of one client or all the caller may see, of one strategy or all."""
    found = await service.analytics(reader.system, reader.principal, client=client,
                                    strategy=strategy, start=start, end=end)
    return {"clients": found.clients, "strategy": found.strategy, "start": found.start,
            "end": found.end, "capital": to_json(found.capital),
            "metrics": to_json(found.performance)}


@router.get("/reports/daily", response_model=DailyRecapPublic, responses=ERRORS,
            summary="Seed 000's daily recap: P&L, win rate, drawdown, Sharpe, trades, "
                    "rejections")
async def get_daily_recap(reader: Reads, client: ClientQuery = None,
                          day: Annotated[Day | None, Query(alias="date")] = None
                          ) -> dict[str, Any]:
    """One UTC day (default: today)."""
    r = await service.daily_recap(reader.system, reader.principal, client=client, day=day)
    return {"date": r.day, "clients": r.clients, "total_pnl": to_json(r.total_pnl),
            "win_rate": to_json(r.win_rate), "max_drawdown": to_json(r.max_drawdown),
            "max_drawdown_pct": to_json(r.max_drawdown_pct), "sharpe": to_json(r.sharpe),
            "trades": r.trades, "rejections": r.rejections,
            "rejections_by_code": r.rejections_by_code}
