"""Liveness, readiness and metrics: no authentication (for orchestrators and scrapers)."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.api.deps import System
from app.api.schemas import Health
from app.runtime.bus import utc_now

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="Alive")
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", summary="Database reachable and writable, every mark fresh, no "
            "invalid or stale order book",
            responses={503: {"description": "not ready: ``problems`` says why"}})
async def readyz(system: System) -> JSONResponse:
    problems: list[str] = []
    if not system.bus.writable:
        problems.append(f"event log not writable since {system.bus.storage_failed_at}: "
                        f"{system.bus.storage_error} (commands are answered 503)")

    def ping() -> None:
        with system.db.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    try:
        await asyncio.wait_for(asyncio.to_thread(ping), timeout=2)
    except Exception as exc:  # any failure means "not ready", with the reason
        problems.append(f"database unreachable: {exc.__class__.__name__}")
    now = utc_now()  # (a replay judges its marks by its own clock)
    stale = system.stale_marks(now)
    if stale:
        problems.append(f"stale or missing marks (> {system.settings.stale_mark_seconds:g} s): "
                        + ", ".join(stale))
    books = system.unready_books(now)
    if books:
        problems.append("order books not ready for market orders: " + ", ".join(books))
    body: dict = {"status": "ready" if not problems else "not_ready", "problems": problems}
    if system.replay is not None:  # ``serve --replay``: how far the data has got
        body["replay"] = system.replay.status()
    return JSONResponse(body, status_code=200 if not problems else 503)


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request, system: System) -> Response:
    m = request.app.state.metrics
    live = getattr(request.app.state, "live", None)
    m.refresh(system, request.app.state.ws_clients + (len(live.connections) if live else 0))
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)
