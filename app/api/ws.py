"""/ws: a stream of committed events for scripts.

Query: ``topics=orders,fills`` (default: all), ``since=SEQ`` to resume after a
reconnect with no gap, ``key=...`` when the client cannot send an
``Authorization`` header. Messages: ``{"seq", "topic", "type", "client", "data"}``.
Besides events, ``positions`` and ``portfolio`` carry live state after each
commit (``"derived": true``: not in the log, so not replayed by ``since``).

Slow consumers are dropped within a bounded time, so they can neither hold the
server's memory nor hold up the bus or other clients (publishing never waits):

* a client whose bounded queue (``PERPDESK_WS_QUEUE_SIZE``) overflows is sent what
  was queued (for at most ``SLOW_CONSUMER_SECONDS``), then
  ``{"type": "resync", "since": <last seq it got>}`` and closed with code 4008;
  it reconnects with that ``since``;
* a client that stopped reading — one send not completed within
  ``SLOW_CONSUMER_SECONDS`` because the socket's buffers are full — cannot be sent
  anything more, not even the hint: its connection is aborted (the client sees an
  abnormal close, 1006) and it reconnects with ``since=`` the last seq it got.

A socket opened with an API key is closed
(code 4401) within ``KEY_RECHECK_SECONDS`` (plus the key cache's 5 s) once
the key is revoked.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from app.api.deps import bearer_token, session_principal
from app.auth.principal import Principal
from app.runtime.topics import TOPICS
from app.services.queries import Reader

router = APIRouter()
RESYNC_CLOSE_CODE = 4008
UNAUTHENTICATED_CLOSE_CODE = 4401
KEY_RECHECK_SECONDS = 5.0
BACKLOG_PAGE = 1_000
BACKLOG_MAX = 100_000  # beyond this, page through GET /api/v1/events instead
# A consumer is dropped once one send has not completed for this long (it stopped
# reading and the socket's buffers are full), or this long after its queue overflowed.
# Long enough for a client on a slow link or a GC pause, short enough that a stalled
# socket cannot hold megabytes of buffers and a queue for long.
SLOW_CONSUMER_SECONDS = 5.0
# How long a dropped consumer gets for the resync hint and the close handshake before
# its connection is aborted.
DROP_GRACE_SECONDS = 1.0


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
    # ASCII digits only ("²".isdigit() is true, but int() refuses it), within BIGINT.
    if since_raw is not None and not (since_raw.isascii() and since_raw.isdigit()
                                      and len(since_raw) <= 19 and int(since_raw) < 2**63):
        await ws.close(code=4400, reason="since must be a sequence number (0 or more)")
        return
    await ws.accept()
    transport = server_transport()  # in the task that runs this socket (see there)
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
                page, read_to = await asyncio.to_thread(
                    Reader(system, principal).socket_backlog, last, BACKLOG_PAGE, topics)
                for backlogged in page:
                    if not await send_within(ws, backlogged):
                        abort(transport)
                        return
                sent += len(page)
                if read_to == last:
                    break
                last = read_to
                if sent > BACKLOG_MAX:
                    await drop_consumer(ws, transport, code=RESYNC_CLOSE_CODE,
                                        reason="backlog too long", farewell={
                                            "type": "resync", "since": last,
                                            "message": "backlog too long; page through "
                                                       "/api/v1/events, then reconnect"})
                    return
        if not await send_within(ws, {"type": "ready",
                                      "seq": max(last, system.bus.last_committed_seq)}):
            abort(transport)
            return
        # Notice a closed socket (or a server shutdown) at once, not at the next event,
        # and a revoked key within the recheck interval.
        gone = asyncio.create_task(_until_disconnected(ws))
        revoked = asyncio.create_task(_until_revoked(ws, key) if key else asyncio.Event().wait())
        drain_until: float | None = None  # set once the queue overflowed
        loop = asyncio.get_running_loop()
        while True:
            if drain_until is not None:
                # Overflowed (and unsubscribed): send what was queued, within the bound.
                message = sub.queue.get_nowait() if not sub.queue.empty() else None
                if message is None or loop.time() >= drain_until:
                    await drop_consumer(ws, transport, code=RESYNC_CLOSE_CODE,
                                        reason="slow consumer: resync", farewell={
                                            "type": "resync", "since": last,
                                            "message": "you fell behind; reconnect with "
                                                       f"since={last}"})
                    return
            else:
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
                    await drop_consumer(ws, transport, code=UNAUTHENTICATED_CLOSE_CODE,
                                        reason="key revoked", farewell={
                                            "type": "error", "code": "UNAUTHENTICATED",
                                            "message": "the API key was revoked"})
                    return
                if getter not in done:
                    getter.cancel()
                    drain_until = loop.time() + SLOW_CONSUMER_SECONDS
                    continue
                overflowed.cancel()
                message = getter.result()
            if not message.get("derived"):  # live state is not part of the log
                if message["seq"] <= last:
                    continue  # already sent from the backlog
                last_if_sent = message["seq"]
            else:
                last_if_sent = last
            if not await send_within(ws, message, drain_until):
                abort(transport)  # not reading: not even a resync hint would get through
                return
            last = last_if_sent
    except WebSocketDisconnect:
        pass
    finally:
        for task in (gone, revoked):
            if task is not None:
                task.cancel()
        ws.app.state.ws_clients -= 1
        system.broadcaster.unsubscribe(sub)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(DROP_GRACE_SECONDS):  # never wait on a stalled peer
                await ws.close()


# ---- slow consumers (shared with the dashboard socket, app/web/live.py) ----------------------

def server_transport() -> Any:
    """The server's transport under the WebSocket served by the current task, or None.

    ASGI has no way to abort a connection, and uvicorn's close waits for the write
    buffer to drain, which a peer that stopped reading never lets happen: a dropped
    consumer would keep its socket, and megabytes of kernel and transport buffers,
    for as long as it liked. uvicorn runs each WebSocket's app in a task of its own
    (``run_asgi`` of the connection's protocol), so the protocol, and its
    ``transport``, are found from that task. Call this from the endpoint itself; under
    another server (or the test client) it is None and dropping falls back to a close.
    """
    task = asyncio.current_task()
    frame = getattr(task.get_coro(), "cr_frame", None) if task is not None else None
    protocol = frame.f_locals.get("self") if frame is not None else None
    if not type(protocol).__module__.startswith("uvicorn.protocols.websockets"):
        return None
    transport = getattr(protocol, "transport", None)
    return transport if callable(getattr(transport, "abort", None)) else None


def abort(transport: Any) -> None:
    """Drop the connection at once with a reset, whatever is still buffered (no-op if
    already gone). A plain close of a socket with unsent data leaves it to the kernel,
    which keeps the data (megabytes) and retries a peer that does not read for minutes;
    ``SO_LINGER`` 0 makes the close a reset that frees it all now."""
    if transport is None:
        return
    with contextlib.suppress(Exception):
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(Exception):
        transport.abort()


async def send_within(ws: WebSocket, message: dict[str, Any] | str,
                      deadline: float | None = None) -> bool:
    """Send a JSON message (or text); False if it did not complete within
    ``SLOW_CONSUMER_SECONDS`` (or by ``deadline``, loop time) — the peer is not reading."""
    until = asyncio.get_running_loop().time() + SLOW_CONSUMER_SECONDS
    try:
        async with asyncio.timeout_at(until if deadline is None else min(until, deadline)):
            if isinstance(message, str):
                await ws.send_text(message)
            else:
                await ws.send_json(message)
    except TimeoutError:
        return False
    return True


async def drop_consumer(ws: WebSocket, transport: Any, code: int, reason: str,
                        farewell: dict[str, Any] | None = None) -> None:
    """Disconnect a consumer without ever waiting on it for long: ``farewell`` (e.g. the
    resync hint) and a close frame if its socket takes them within
    ``DROP_GRACE_SECONDS``, else an abort; and if the peer has not completed the close
    handshake ``DROP_GRACE_SECONDS`` later (it is not reading), an abort then."""
    try:
        async with asyncio.timeout(DROP_GRACE_SECONDS):
            if farewell is not None:
                await ws.send_json(farewell)
            await ws.close(code=code, reason=reason)
    except Exception:  # timed out, or the socket is already gone
        abort(transport)
        return
    if transport is not None:
        asyncio.get_running_loop().call_later(DROP_GRACE_SECONDS, abort, transport)


async def _until_disconnected(ws: WebSocket) -> None:
    """Read (and ignore) what the client sends until it goes away."""
    with contextlib.suppress(Exception):
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
