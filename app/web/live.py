"""Live dashboard updates: rendered fragments pushed over a WebSocket.

The browser's htmx ws extension swaps each pushed fragment into the page by
id (out-of-band swaps). The hub holds ONE subscription to the broadcaster;
it wakes when events are committed, waits a few milliseconds to gather a
burst, then pushes what they made stale:

* **Elements are throttled one by one**: an element is rendered at once if
  its last render was at least 250 ms ago, otherwise at that mark — so a
  burst costs one render per element per 250 ms, and a quiet element is
  never held back by a busy one.
* **Order tables update per row**: each order's row is its own element,
  inserted at the top when it joins the table, replaced when it changes,
  deleted when it leaves (a delete renders nothing, so it is never held).
  Each row operation travels in its own ``<template>`` (see ``_in_template``),
  so one push can mix whole fragments, row changes and row inserts.
* **Renders are shared**: each stale element is rendered once per distinct
  view (same visible clients, role, page and filters) and the HTML is queued
  to every connection with that view.

Slow browsers are dropped within a bounded time and never hold up the hub or
the other connections (the hub only ever queues, it never waits on a socket):
a connection whose queue (``SEND_QUEUE`` pushes) is full is closed with code
1013, one the htmx ws extension reconnects after, and the reconnect gets a full
render (resync); a connection whose send has not completed within
``SLOW_CONSUMER_SECONDS`` (the browser stopped reading) is aborted, which the
extension also reconnects after. If the hub itself falls behind its own
subscription, it subscribes again and re-renders every page in full. Prices
move without events, so marks, positions, the summary and the equity curve
also refresh once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum, auto
from typing import Literal

from fastapi import WebSocket

from app.api.ws import abort, drop_consumer, send_within, server_transport
from app.auth.principal import Principal
from app.runtime.broadcast import Subscriber
from app.runtime.system import TradingSystem

log = logging.getLogger(__name__)

MIN_INTERVAL = 0.25  # at most one render per element per 250 ms
GATHER_SECONDS = 0.01  # wait this long after the first event to gather a burst
PERIODIC_SECONDS = 1.0
SEND_QUEUE = 256
# Close code for a browser that fell behind: "try again later", one of the codes after
# which the htmx ws extension reconnects (1006, 1011, 1012, 1013; not 4008, which /ws
# uses for scripts that resume with since=).
RESYNC_CLOSE_CODE = 1013
ROW_TABLES = {"orders": "orders-body", "blotter": "blotter-body"}  # fragment -> tbody id
DASHBOARD_ORDER_ROWS = 50

# Which whole fragments an event topic makes stale (order rows are handled per row).
STALE_BY_TOPIC: dict[str, set[str]] = {
    "fills": {"positions", "summary", "strategies"},
    "positions": {"positions", "summary", "strategies"},
    "strategies": {"strategies"},
    "portfolio": {"summary"},
    "trades": {"exits", "summary", "recap"},
    "funding": {"positions", "summary"},
    "balances": {"summary"},
    "trading_states": {"banner", "controls", "risk"},
    "alerts": {"alerts"},
    "risk": {"risk"},
    "arb": {"arb", "legouts"},
    "backtests": {"backtests"},
}
# The recap is computed in the background (app/services/recaps.py): the periodic
# render shows the latest one.
PERIODIC = {"marks", "positions", "summary", "equity", "risk", "strategies", "arb", "recap"}

# Which fragments each page shows.
PAGE_FRAGMENTS: dict[str, set[str]] = {
    "dashboard": {"banner", "summary", "positions", "orders", "exits", "alerts", "marks",
                  "equity", "legouts", "strategies", "arb", "recap"},
    "controls": {"banner", "controls"},
    "orders": {"banner", "blotter"},
    "positions": {"banner", "positions", "summary"},
    "trades": {"banner", "exits"},
    "audit": {"banner"},
    "risk": {"banner", "risk"},
    "backtests": {"banner", "backtests"},
}

ViewKey = tuple


@dataclass(eq=False)
class Connection:
    ws: WebSocket
    principal: Principal
    page: str
    params: tuple[tuple[str, str], ...]
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(SEND_QUEUE))
    closed: bool = False
    rows: set[int] = field(default_factory=set)  # order rows this page currently shows
    # Set when the queue overflowed: serve() drops the connection.
    overflowed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def view_key(self) -> ViewKey:
        return (self.principal.clients, self.principal.role, self.page, self.params)

    @property
    def row_table(self) -> str | None:
        shown = PAGE_FRAGMENTS.get(self.page, set())
        return next((f for f in ROW_TABLES if f in shown), None)


# (fragment, principal, params) -> HTML of a whole fragment, with hx-swap-oob.
Renderer = Callable[[str, Principal, dict[str, str]], str]
# (order id, principal, table) -> (row HTML without an oob attribute, or None if the
# order is not in that table for this viewer)
RowRenderer = Callable[[int, Principal, str, dict[str, str]], str | None]
# (principal, table, params) -> the ids of the rows a full render of that table shows
RowLister = Callable[[Principal, str, dict[str, str]], list[int]]


class _Held(Enum):
    """A row rendered less than 250 ms ago: left stale for a later push."""

    HELD = auto()


_HELD = _Held.HELD
# A row's HTML, None (not in the table for this viewer), or _HELD.
RowRender = str | None | Literal[_Held.HELD]


class LiveHub:
    def __init__(self, system: TradingSystem, render: Renderer, render_row: RowRenderer,
                 list_rows: RowLister):
        self.system = system
        self.render = render
        self.render_row = render_row
        self.list_rows = list_rows
        self.connections: set[Connection] = set()
        self.renders = 0  # elements rendered (for tests and the benchmark)
        self._sub: Subscriber | None = None
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()  # a first dashboard connected
        self._resync = False  # the hub's own subscription overflowed
        # Per view: stale fragments / rows, and when each element was last rendered.
        self._stale: dict[ViewKey, set[str]] = {}
        self._stale_rows: dict[ViewKey, set[int]] = {}
        self._rendered_at: dict[tuple[ViewKey, object], float] = {}
        self._row_cache: dict[tuple[ViewKey, int], RowRender] = {}  # one push's row renders

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="live-hub")

    def _subscribe(self) -> None:
        """Listen to commits only while a dashboard is open: with none, the bus skips
        building live messages altogether."""
        if self._sub is None:
            self._sub = self.system.broadcaster.subscribe(None, None)
            self._sub.queue = asyncio.Queue(100_000)
            self._sub.on_overflow = self._on_overflow
            self._wake.set()

    def _on_overflow(self) -> None:
        """The hub fell 100,000 messages behind (a huge burst while it was rendering):
        the broadcaster dropped its subscription. Pages are rendered from the engine's
        state, not from the messages, so subscribe again and render every page in full
        (called from publish: only flag it here)."""
        self._resync = True

    def _resubscribe_and_render_all(self) -> None:
        self._resync = False
        self._sub = None
        if not self.connections:
            return
        self._subscribe()
        for conn in list(self.connections):
            if not conn.closed:
                self._queue_html(conn, self._render_all(conn))

    def _unsubscribe_if_idle(self) -> None:
        if self._sub is not None and not self.connections:
            self.system.broadcaster.unsubscribe(self._sub)
            self._sub = None

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sub is not None:
            self.system.broadcaster.unsubscribe(self._sub)

    # ---- connections ----------------------------------------------------------------

    async def serve(self, conn: Connection) -> None:
        """Own one browser connection until it closes (call it from the endpoint's
        task: that is where the server's transport is found, to abort a stalled socket).
        """
        transport = server_transport()
        self.connections.add(conn)
        self._subscribe()
        self._queue_html(conn, self._render_all(conn))  # a (re)connect is a full resync
        receiver = asyncio.create_task(self._drain_incoming(conn))
        overflowed = asyncio.create_task(conn.overflowed.wait())
        try:
            while True:
                getter = asyncio.create_task(conn.queue.get())
                done, _ = await asyncio.wait({getter, receiver, overflowed},
                                             return_when=asyncio.FIRST_COMPLETED)
                if receiver in done:
                    getter.cancel()
                    break
                if overflowed in done:  # too slow: the browser reconnects and resyncs
                    getter.cancel()
                    await drop_consumer(conn.ws, transport, code=RESYNC_CLOSE_CODE,
                                        reason="slow consumer: resync")
                    break
                if not await send_within(conn.ws, getter.result()):
                    abort(transport)  # it stopped reading: nothing more gets through
                    break
        except Exception:  # a dropped socket ends the connection; nothing to recover
            pass
        finally:
            conn.closed = True
            self.connections.discard(conn)
            self._unsubscribe_if_idle()
            receiver.cancel()
            overflowed.cancel()

    async def _drain_incoming(self, conn: Connection) -> None:
        with contextlib.suppress(Exception):
            while True:
                message = await conn.ws.receive()
                if message["type"] == "websocket.disconnect":
                    return

    def _queue_html(self, conn: Connection, html: str) -> None:
        if not html or conn.closed:
            return
        try:
            conn.queue.put_nowait(html)
        except asyncio.QueueFull:
            conn.closed = True  # no more pushes for it; serve() drops it at once
            conn.overflowed.set()

    def _render_all(self, conn: Connection) -> str:
        params = dict(conn.params)
        table = conn.row_table
        if table is not None:
            conn.rows = set(self.list_rows(conn.principal, table, params))
        return "".join(self._safe_render(name, conn.principal, params)
                       for name in sorted(PAGE_FRAGMENTS.get(conn.page, ())))

    def _safe_render(self, name: str, principal: Principal, params: dict[str, str]) -> str:
        self.renders += 1
        try:
            return self.render(name, principal, params)
        except Exception:
            log.exception("rendering fragment %s failed", name)
            return ""

    # ---- the loop ---------------------------------------------------------------------

    async def _run(self) -> None:
        next_periodic = time.monotonic() + PERIODIC_SECONDS
        while True:
            if self._resync:
                self._resubscribe_and_render_all()
            if self._sub is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            queue = self._sub.queue
            now = time.monotonic()
            timeout = max(0.0, min(next_periodic, self._next_due(now)) - now)
            try:
                first = await asyncio.wait_for(queue.get(), timeout)
            except TimeoutError:
                first = None
            if first is not None:
                await asyncio.sleep(GATHER_SECONDS)  # let the rest of a burst arrive
                messages = [first]
                while not queue.empty():
                    messages.append(queue.get_nowait())
                self._mark(messages)
            if time.monotonic() >= next_periodic:
                next_periodic = time.monotonic() + PERIODIC_SECONDS
                for view in self._views():
                    self._stale.setdefault(view, set()).update(PERIODIC)
                self._prune(time.monotonic())
            self._push(time.monotonic())

    def _views(self) -> dict[ViewKey, list[Connection]]:
        views: dict[ViewKey, list[Connection]] = {}
        for conn in self.connections:
            if not conn.closed:
                views.setdefault(conn.view_key, []).append(conn)
        return views

    def _mark(self, messages: list[dict]) -> None:
        """Record which elements of which views the messages made stale."""
        views = self._views()
        for message in messages:
            client = message.get("client")
            order_id = _order_id(message)
            names = STALE_BY_TOPIC.get(message["topic"], set())
            for view, conns in views.items():
                principal = conns[0].principal
                if client is not None and not principal.can_access(client):
                    continue
                if names:
                    self._stale.setdefault(view, set()).update(names)
                if order_id is not None and conns[0].row_table is not None:
                    self._stale_rows.setdefault(view, set()).add(order_id)

    def _next_due(self, now: float) -> float:
        due = now + PERIODIC_SECONDS
        for view, names in self._stale.items():
            for name in names:
                due = min(due, self._rendered_at.get((view, name), 0.0) + MIN_INTERVAL)
        for view, rows in self._stale_rows.items():
            for order_id in rows:
                due = min(due, self._rendered_at.get((view, order_id), 0.0) + MIN_INTERVAL)
        return due

    def _push(self, now: float) -> None:
        for view, conns in self._views().items():
            first = conns[0]
            params = dict(first.params)
            shown = PAGE_FRAGMENTS.get(first.page, set())
            parts: list[str] = []
            stale = self._stale.get(view, set())
            for name in sorted(stale):
                if name not in shown:
                    stale.discard(name)
                    continue
                if now - self._rendered_at.get((view, name), 0.0) < MIN_INTERVAL:
                    continue  # rendered recently: its turn comes at the 250 ms mark
                stale.discard(name)
                self._rendered_at[(view, name)] = now
                parts.append(self._safe_render(name, first.principal, params))
            html = "".join(parts)
            for conn in conns:
                self._queue_html(conn, html + self._row_updates(view, conn, now))
        self._forget_closed_views()

    def _row_updates(self, view: ViewKey, conn: Connection, now: float) -> str:
        table = conn.row_table
        pending = self._stale_rows.get(view)
        if table is None or not pending:
            return ""
        params = dict(conn.params)
        body = ROW_TABLES[table]
        parts: list[str] = []
        for order_id in sorted(pending):
            row = self._row(view, order_id, conn.principal, table, params, now)
            if row is _HELD:
                continue
            if row is None:
                if order_id in conn.rows:  # it left the table: delete (no render)
                    conn.rows.discard(order_id)
                    parts.append(_in_template(
                        f'<tr id="{body}-{order_id}" hx-swap-oob="delete"></tr>'))
                continue
            if order_id in conn.rows:
                parts.append(_in_template(row.replace("<tr ", '<tr hx-swap-oob="true" ', 1)))
            else:
                conn.rows.add(order_id)
                parts.append(_in_template(
                    f'<tbody hx-swap-oob="afterbegin:#{body}">{row}</tbody>'))
        if table == "orders" and len(conn.rows) > DASHBOARD_ORDER_ROWS:
            for old in sorted(conn.rows)[: len(conn.rows) - DASHBOARD_ORDER_ROWS]:
                conn.rows.discard(old)
                parts.append(_in_template(f'<tr id="{body}-{old}" hx-swap-oob="delete"></tr>'))
        return "".join(parts)

    def _row(self, view: ViewKey, order_id: int, principal: Principal, table: str,
             params: dict[str, str], now: float) -> RowRender:
        """The row's HTML (rendered once per view per push), None if it is not in the
        table, or _HELD if it was rendered less than 250 ms ago."""
        cache = self._row_cache
        key = (view, order_id)
        if key in cache:
            return cache[key]
        last = self._rendered_at.get(key, 0.0)
        row = self.render_row(order_id, principal, table, params)
        if row is not None and now - last < MIN_INTERVAL:
            cache[key] = _HELD
            return _HELD
        if row is not None:
            self.renders += 1
            self._rendered_at[key] = now
        cache[key] = row
        return row

    def _forget_closed_views(self) -> None:
        """Clear per-push caches and rows that were sent (held rows stay stale)."""
        for key, row in self._row_cache.items():
            if row is not _HELD:
                self._stale_rows.get(key[0], set()).discard(key[1])
        self._row_cache = {}
        live = set(self._views())
        for view in list(self._stale):
            if view not in live:
                del self._stale[view]
        for view in list(self._stale_rows):
            if view not in live:
                del self._stale_rows[view]


    def _prune(self, now: float) -> None:
        """Forget render times too old to throttle anything (keeps memory flat)."""
        cutoff = now - MIN_INTERVAL
        self._rendered_at = {k: t for k, t in self._rendered_at.items() if t > cutoff}


def _in_template(html: str) -> str:
    """One row operation, wrapped so the browser parses it in its own context.

    A push is parsed as one piece of HTML, and the parser drops table parts that are
    out of context: a ``<tr>`` after a ``<div>`` (a whole fragment in the same push),
    or a ``<tbody>`` after a ``<tr>`` (a replace: the original's row changes, the
    successor's is inserted) vanished. A ``<template>`` is allowed anywhere and its
    content is parsed on its own, so each operation survives whatever comes before
    it; app.js (the ``live-rows`` extension) swaps the content of each template.
    """
    return f"<template>{html}</template>"


def _order_id(message: dict) -> int | None:
    if message["topic"] not in ("orders", "fills"):
        return None
    data = message.get("data")
    order_id = data.get("order_id") if isinstance(data, dict) else None
    return order_id if isinstance(order_id, int) else None
