"""/api/v1 alerts and the reconciliation history (read side; any role, scoped)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import AfterValidator, BaseModel, Field

from app.api.deps import Reads
from app.api.inputs import ClientQuery, CursorQuery, VenueQuery, check_instant
from app.api.schemas import DecimalText
from app.services.alerts import alerts_page, reconciliation_page

router = APIRouter(tags=["alerts"])

Severity = Literal["info", "warning", "error", "critical"]
AlertState = Literal["active", "resolved", "notice"]
KEY_PATTERN = r"^[A-Za-z0-9._:/-]+$"


def _utc(value: datetime | None) -> datetime | None:
    """An instant in UTC (no offset: taken as UTC), years 2000 to 2999."""
    if value is None:
        return None
    return check_instant(value if value.tzinfo is not None else value.replace(tzinfo=UTC))


FromQuery = Annotated[datetime | None, Query(
    alias="from", description="raised at or after this time (ISO 8601; UTC if no offset)"),
    AfterValidator(_utc)]
ToQuery = Annotated[datetime | None, Query(
    alias="to", description="raised before this time (ISO 8601; UTC if no offset)"),
    AfterValidator(_utc)]
PageLimit = Annotated[int, Query(ge=1, le=500)]


class AlertPublic(BaseModel):
    id: int
    key: str | None = Field(description="the dedupe key; null for a notice")
    state: AlertState = Field(description="active and resolved: a condition (keyed); "
                                           "notice: an event with nothing to resolve")
    severity: Severity = Field(description="an active alert keeps the highest it reached")
    title: str
    message: str
    client: str | None = Field(description="null: about no client (shown to every caller)")
    raised_at: datetime
    at: datetime = Field(description="raised, or last escalated")
    resolved_at: datetime | None
    resolution: str


class AlertPage(BaseModel):
    items: list[AlertPublic]
    next_cursor: int | None


class ReconciliationPublic(BaseModel):
    id: int
    at: datetime
    client: str
    venue: str
    equity: DecimalText
    wallet: DecimalText
    deposits: DecimalText
    withdrawals: DecimalText
    realized_pnl: DecimalText
    unrealized_pnl: DecimalText
    fees: DecimalText
    funding: DecimalText
    expected_equity: DecimalText = Field(
        description="deposits - withdrawals + realized - fees + funding + unrealized")
    drift: DecimalText = Field(description="equity - expected_equity")
    ok: bool = Field(description="|drift| within the threshold (alerts.max_drift)")


class ReconciliationPage(BaseModel):
    items: list[ReconciliationPublic]
    next_cursor: int | None


@router.get("/alerts", response_model=AlertPage,
            summary="Alerts, active and resolved, newest first (cursor = id)")
async def list_alerts(
        reader: Reads, client: ClientQuery = None,
        severity: Annotated[list[Severity] | None, Query(
            max_length=4, description="repeat for several")] = None,
        state: AlertState | None = None,
        key_prefix: Annotated[str | None, Query(min_length=1, max_length=200,
                                                pattern=KEY_PATTERN)] = None,
        since: FromQuery = None, until: ToQuery = None, cursor: CursorQuery = None,
        limit: PageLimit = 100) -> dict:
    page = alerts_page(reader, client=client, severities=severity, state=state,
                       key_prefix=key_prefix, since=since, until=until, cursor=cursor,
                       limit=limit)
    return {"items": [a.as_json() for a in page.items], "next_cursor": page.next_cursor}


@router.get("/reconciliation", response_model=ReconciliationPage,
            summary="Reconciliation history: each account's equity against its parts, "
                    "newest first (cursor = id)")
async def list_reconciliations(
        reader: Reads, client: ClientQuery = None, venue: VenueQuery = None,
        drifting: Annotated[bool, Query(description="only records over the threshold")
                            ] = False,
        cursor: CursorQuery = None, limit: PageLimit = 100) -> dict:
    page = reconciliation_page(reader, client=client, venue=venue, drifting=drifting,
                               cursor=cursor, limit=limit)
    return {"items": [r.as_json() for r in page.items], "next_cursor": page.next_cursor}
