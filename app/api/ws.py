"""/ws: a stream of committed events for scripts.

Query: ``topics=orders,fills`` (default: all), ``since=SEQ`` to resume after a
reconnect with no gap, ``key=...`` when the client cannot send an
``Authorization`` header. Messages: ``{"seq", "topic", "type", "client", "data"}``.
Besides events, ``positions`` and ``portfolio`` carry live state after each
commit (``"derived": true``: not in the log, so not replayed by ``since``).
A client that falls behind its bounded queue is sent
``{"type": "resync", "since": <last seq it got>}`` and disconnected (code 4008);
it reconnects with that ``since``. A socket opened with an API key is closed
(code 4401) within ``KEY_RECHECK_SECONDS`` (plus the key cache's 5 s) once
the key is revoked.
"""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from sqlmodel import Session, select

from app.api.deps import bearer_token, session_principal
from app.auth.principal import Principal
from app.runtime.topics import TOPICS, topic_of, visible_to
from app.store.tables import EventRow

router = APIRouter()
RESYNC_CLOSE_CODE = 4008
UNAUTHENTICATED_CLOSE_CODE = 4401
KEY_RECHECK_SECONDS = 5.0
BACKLOG_PAGE = 1_000
BACKLOG_MAX = 100_000  # beyond this, page through GET /api/v1/events instead


def _key(ws: WebSocket) -> str | None:
    return bearer_token(ws.headers.get("authorization", "")) or ws.query_params.get("key")


def _authenticate(ws: WebSocket, key: str | None) -> Principal | None:
    if key:
        return ws.app.state.auth.authenticate_key(key)
    return session_principal(ws)  # type: ignore[arg-type]


async def _until_revoked(ws: WebSocket, key: str) -> None:
    """Return once ``key`` no longer authenticates (revoked, or its user removed)."""
    while True:
        await asyncio.sleep(KEY_RECHECK_SECONDS)
        if ws.app.state.auth.authenticate_key(key) is None:
            return


@router.websocket("/ws")
async def stream(ws: WebSocket) -> None:
    key = _key(ws)
    principal = _authenticate(ws, key)
    if principal is None:
        await ws.close(code=UNAUTHENTICATED_CLOSE_CODE, reason="authentication required")
        return
    raw_topics = ws.query_params.get("topics")
    topics = frozenset(t for t in raw_topics.split(",") if t) if raw_topics else None
    if topics is not None and not topics <= TOPICS:
        await ws.close(code=4400, reason=f"unknown topics: {','.join(sorted(topics - TOPICS))}")
        return
    since_raw = ws.query_params.get("since")
    if since_raw is not None and not (since_raw.isdigit()):
        await ws.close(code=4400, reason="since must be a sequence number (0 or more)")
        return
    await ws.accept()
    ws.app.state.ws_clients += 1
    system = ws.app.state.system
    # Subscribe first, then read the backlog: nothing falls between the two.
    sub = system.broadcaster.subscribe(topics, principal.clients)
    overflow = asyncio.Event()
    sub.on_overflow = overflow.set
    gone: asyncio.Task | None = None
    revoked: asyncio.Task | None = None
    try:
        last = 0
        if since_raw is not None:
            last = int(since_raw)
            sent = 0
            while True:  # page until caught up with what is committed
                page, read_to = await asyncio.to_thread(_backlog, system, last, topics,
                                                        principal)
                for message in page:
                    await ws.send_json(message)
                sent += len(page)
                if read_to == last:
                    break
                last = read_to
                if sent > BACKLOG_MAX:
                    await ws.send_json({"type": "resync", "since": last,
                                        "message": "backlog too long; page through "
                                                   "/api/v1/events, then reconnect"})
                    await ws.close(code=RESYNC_CLOSE_CODE, reason="backlog too long")
                    return
        await ws.send_json({"type": "ready", "seq": max(last, system.bus.last_committed_seq)})
        # Notice a closed socket (or a server shutdown) at once, not at the next event,
        # and a revoked key within the recheck interval.
        gone = asyncio.create_task(_until_disconnected(ws))
        revoked = asyncio.create_task(_until_revoked(ws, key) if key else asyncio.Event().wait())
        while True:
            getter = asyncio.create_task(sub.queue.get())
            overflowed = asyncio.create_task(overflow.wait())
            done, _ = await asyncio.wait({getter, overflowed, gone, revoked},
                                         return_when=asyncio.FIRST_COMPLETED)
            if gone in done:
                getter.cancel()
                overflowed.cancel()
                return
            if revoked in done:
                getter.cancel()
                overflowed.cancel()
                await ws.send_json({"type": "error", "code": "UNAUTHENTICATED",
                                    "message": "the API key was revoked"})
                await ws.close(code=UNAUTHENTICATED_CLOSE_CODE, reason="key revoked")
                return
            if getter not in done:
                getter.cancel()
                await ws.send_json({"type": "resync", "since": last,
                                    "message": "you fell behind; reconnect with since=" +
                                    str(last)})
                await ws.close(code=RESYNC_CLOSE_CODE, reason="slow consumer: resync")
                return
            overflowed.cancel()
            message = getter.result()
            if message.get("derived"):
                await ws.send_json(message)  # live state, not part of the log
                continue
            if message["seq"] <= last:
                continue  # already sent from the backlog
            await ws.send_json(message)
            last = message["seq"]
    except WebSocketDisconnect:
        pass
    finally:
        for task in (gone, revoked):
            if task is not None:
                task.cancel()
        ws.app.state.ws_clients -= 1
        system.broadcaster.unsubscribe(sub)
        with contextlib.suppress(Exception):
            await ws.close()


async def _until_disconnected(ws: WebSocket) -> None:
    """Read (and ignore) what the client sends until it goes away."""
    with contextlib.suppress(Exception):
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return


def _backlog(system, after: int, topics, principal: Principal) -> tuple[list[dict], int]:
    """One page of committed events after ``after`` that this reader may see,
    and the last sequence read (``after`` when there was nothing more)."""
    with Session(system.db) as session:
        rows = session.exec(select(EventRow).where(EventRow.seq > after)
                            .order_by(EventRow.seq).limit(BACKLOG_PAGE)).all()
    out = []
    for row in rows:
        topic = topic_of(row.type)
        if topics is not None and topic not in topics:
            continue
        message = visible_to({"seq": row.seq, "topic": topic, "type": row.type,
                              "client": row.client, "data": row.payload}, principal.clients)
        if message is not None:
            out.append(message)
    return out, (rows[-1].seq if rows else after)
