"""Live dashboard updates: rendered fragments pushed over a WebSocket.

The browser's htmx ws extension swaps each pushed fragment into the page by
id (out-of-band swaps). The hub holds ONE subscription to the broadcaster and
works in 250 ms rounds: it collects which fragments the committed events made
stale, renders each stale fragment once per distinct view (same visible
clients, role and page filters) and queues the HTML to every connection with
that view. So an element is rendered at most once per 250 ms however bursty
the flow, and 100 dashboards showing the same thing cost one render.

A connection whose queue is full is closed; the browser reconnects and gets
a full render (resync). Prices move without events, so marks, positions, the
summary and the equity curve also refresh once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import WebSocket

from app.auth.principal import Principal
from app.runtime.broadcast import Subscriber
from app.runtime.system import TradingSystem

log = logging.getLogger(__name__)

ROUND_SECONDS = 0.25
PERIODIC_SECONDS = 1.0
SEND_QUEUE = 64

# Which fragments an event topic makes stale.
STALE_BY_TOPIC: dict[str, set[str]] = {
    "orders": {"orders", "blotter"},
    "fills": {"orders", "blotter", "positions", "summary"},
    "positions": {"positions", "summary"},
    "portfolio": {"summary"},
    "trades": {"exits", "summary"},
    "funding": {"positions", "summary"},
    "balances": {"summary"},
    "trading_states": {"banner", "controls", "orders", "blotter"},
    "alerts": {"alerts"},
}
PERIODIC = {"marks", "positions", "summary", "equity"}

# Which fragments each page shows.
PAGE_FRAGMENTS: dict[str, set[str]] = {
    "dashboard": {"banner", "summary", "positions", "orders", "exits", "alerts", "marks",
                  "equity", "legouts"},
    "controls": {"banner", "controls"},
    "orders": {"banner", "blotter"},
    "positions": {"banner", "positions", "summary"},
    "trades": {"banner", "exits"},
    "audit": {"banner"},
}


@dataclass(eq=False)
class Connection:
    ws: WebSocket
    principal: Principal
    page: str
    params: tuple[tuple[str, str], ...]
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(SEND_QUEUE))
    closed: bool = False

    @property
    def view_key(self) -> tuple:
        return (self.principal.clients, self.principal.role, self.page, self.params)


Renderer = Callable[[str, Principal, dict[str, str]], str]


class LiveHub:
    def __init__(self, system: TradingSystem, render: Renderer):
        self.system = system
        self.render = render  # (fragment, principal, params) -> HTML with hx-swap-oob
        self.connections: set[Connection] = set()
        self._sub: Subscriber | None = None
        self._task: asyncio.Task | None = None
        self.renders = 0  # fragments rendered (for tests and the benchmark)
        self._closing: set[asyncio.Task] = set()

    def start(self) -> None:
        self._sub = self.system.broadcaster.subscribe(None, None)
        self._sub.queue = asyncio.Queue(100_000)
        self._task = asyncio.create_task(self._run(), name="live-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sub is not None:
            self.system.broadcaster.unsubscribe(self._sub)

    # ---- connections ----------------------------------------------------------------

    async def serve(self, conn: Connection) -> None:
        """Own one browser connection until it closes."""
        self.connections.add(conn)
        self._queue_html(conn, self._render_all(conn))  # a (re)connect is a full resync
        try:
            receiver = asyncio.create_task(self._drain_incoming(conn))
            while not conn.closed:
                getter = asyncio.create_task(conn.queue.get())
                done, _ = await asyncio.wait({getter, receiver},
                                             return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    break
                await conn.ws.send_text(getter.result())
        except Exception:  # a dropped socket ends the connection; nothing to recover
            pass
        finally:
            conn.closed = True
            self.connections.discard(conn)
            receiver.cancel()

    async def _drain_incoming(self, conn: Connection) -> None:
        with contextlib.suppress(Exception):
            while True:
                await conn.ws.receive_text()  # the page sends nothing we need

    def _queue_html(self, conn: Connection, html: str) -> None:
        if not html or conn.closed:
            return
        try:
            conn.queue.put_nowait(html)
        except asyncio.QueueFull:
            conn.closed = True  # too slow: drop it; the browser reconnects and resyncs
            task = asyncio.ensure_future(conn.ws.close(code=4008))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def _render_all(self, conn: Connection) -> str:
        params = dict(conn.params)
        return "".join(self._safe_render(name, conn.principal, params)
                       for name in sorted(PAGE_FRAGMENTS.get(conn.page, ())))

    def _safe_render(self, name: str, principal: Principal, params: dict[str, str]) -> str:
        self.renders += 1
        try:
            return self.render(name, principal, params)
        except Exception:
            log.exception("rendering fragment %s failed", name)
            return ""

    # ---- rounds -----------------------------------------------------------------------

    async def _run(self) -> None:
        next_periodic = time.monotonic()
        while True:
            await asyncio.sleep(ROUND_SECONDS)
            stale: dict[str, set[str | None]] = {}  # fragment -> clients it concerns
            assert self._sub is not None
            while not self._sub.queue.empty():
                message = self._sub.queue.get_nowait()
                for name in STALE_BY_TOPIC.get(message["topic"], ()):
                    stale.setdefault(name, set()).add(message.get("client"))
            if time.monotonic() >= next_periodic:
                next_periodic = time.monotonic() + PERIODIC_SECONDS
                for name in PERIODIC:
                    stale.setdefault(name, set()).add(None)
            if stale and self.connections:
                self._push(stale)

    def _push(self, stale: dict[str, set[str | None]]) -> None:
        views: dict[tuple, list[Connection]] = {}
        for conn in self.connections:
            if not conn.closed:
                views.setdefault(conn.view_key, []).append(conn)
        for conns in views.values():
            first = conns[0]
            shown = PAGE_FRAGMENTS.get(first.page, set())
            params = dict(first.params)
            parts = []
            for name, clients in stale.items():
                if name not in shown:
                    continue
                if None not in clients and not any(first.principal.can_access(c)
                                                   for c in clients if c):
                    continue  # nothing this viewer can see changed
                parts.append(self._safe_render(name, first.principal, params))
            html = "".join(parts)
            for conn in conns:
                self._queue_html(conn, html)
