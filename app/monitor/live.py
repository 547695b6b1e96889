"""The monitor's I/O: REST views, the WebSocket stream and the rich ``Live`` display.

Data flow: the REST views (portfolio, positions, trades, controls, and the
first event for the APR clock) are loaded at start. The WebSocket (``/ws``,
key in the ``Authorization`` header so it stays out of access logs) says
*what* changed; each message marks the views it affects as dirty, and the
once-a-second loop re-fetches dirty views — so each view is fetched at most
once a second however busy the stream. Positions and the portfolio are also
re-polled every ``poll_seconds`` because marks move without events.

A dropped socket is retried with exponential backoff (plus jitter) and
``since=<last seq>`` so no event is missed; the status line says
``RECONNECTING`` meanwhile and the last data stays on screen. After every
(re)connect all views are re-fetched: derived live state is not replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
from rich.console import Console
from rich.live import Live
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus, WebSocketException

from app.monitor.model import (
    ExitView,
    PortfolioTotals,
    PositionView,
    compute_metrics,
    first_deposit_at,
    trading_state_label,
)
from app.monitor.render import Screen, Status, render_screen

VIEWS = frozenset({"portfolio", "positions", "trades", "controls", "origin"})
TOPIC_VIEWS: dict[str, frozenset[str]] = {
    "orders": frozenset({"portfolio"}),  # resting orders reserve margin
    "fills": frozenset({"positions", "portfolio"}),
    "positions": frozenset({"positions"}),
    "portfolio": frozenset({"portfolio"}),
    "trades": frozenset({"trades", "portfolio"}),
    "funding": frozenset({"positions", "portfolio"}),
    "balances": frozenset({"portfolio", "origin"}),
    "trading_states": frozenset({"controls"}),
}
LEG_OUT_EVENT = "LegOutDetected"
TRADES_FETCH_LIMIT = 1000  # the API's maximum page: counts and win rate cover this many
ORIGIN_SCAN_LIMIT = 100  # the first start deposits for every account up front


class MonitorError(Exception):
    """A problem the monitor cannot recover from by retrying (bad key, unknown client)."""


@dataclass(frozen=True)
class MonitorOptions:
    url: str = "http://127.0.0.1:8000"
    key: str = ""
    client: str | None = None
    rows: int = 10  # rows per table window
    exits: int = 20  # recent exits kept on screen
    refresh_seconds: float = 1.0
    scroll_seconds: float = 4.0  # a table longer than --rows advances a page this often
    poll_seconds: float = 2.0  # positions/portfolio re-poll (marks move without events)
    trades_poll_seconds: float = 30.0
    backoff_initial: float = 0.5
    backoff_max: float = 10.0
    screen: bool = True  # alternate screen (full-screen app)


class Monitor:
    """State + I/O. ``screen()`` turns the state into the pure renderer's input."""

    def __init__(self, options: MonitorOptions, http: httpx.AsyncClient | None = None,
                 console: Console | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.o = options
        self.console = console or _terminal_console()
        self.clock = clock
        self._http = http
        self._owns_http = http is None
        # state
        self.totals: PortfolioTotals | None = None
        self.positions: list[PositionView] = []
        self.trades: list[ExitView] = []
        self.trades_capped = False
        self.origin_at: datetime | None = None
        self.trading = "unknown"  # until GET /controls answers
        self.leg_outs = 0
        self.last_seq = 0
        self.seq_known = False  # a "ready" told us where the log is
        self.connection = "connecting"
        self.ws_detail = ""
        self.rest_detail = ""
        self.connects = 0
        self.dirty: set[str] = set(VIEWS)
        self.fetched_at: dict[str, float] = {}
        self.step_offset = 0
        self.started = clock()
        self.quit = asyncio.Event()
        self.wake = asyncio.Event()

    # ---- REST ----------------------------------------------------------------------------

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                base_url=self.o.url.rstrip("/"), timeout=10.0,
                headers={"Authorization": f"Bearer {self.o.key}"})
        return self._http

    async def _get(self, path: str, **params: Any) -> Any:
        if self.o.client is not None and path != "/api/v1/controls" and not path.startswith(
                "/api/v1/events"):
            params["client"] = self.o.client
        response = await self.http.get(path, params=params)
        if response.status_code in (401, 403, 404):
            raise MonitorError(f"GET {path}: HTTP {response.status_code}: "
                               f"{_error_message(response)}")
        response.raise_for_status()
        return response.json()

    async def fetch(self, view: str) -> None:
        if view == "portfolio":
            self.totals = PortfolioTotals.from_api(await self._get("/api/v1/portfolio"))
        elif view == "positions":
            rows = await self._get("/api/v1/positions")
            self.positions = sorted((PositionView.from_api(r) for r in rows),
                                    key=lambda p: (p.client, p.venue, p.symbol))
        elif view == "trades":
            rows = await self._get("/api/v1/trades", limit=TRADES_FETCH_LIMIT)
            self.trades = [ExitView.from_api(r) for r in rows]
            self.trades_capped = len(rows) >= TRADES_FETCH_LIMIT
        elif view == "controls":
            self.trading = trading_state_label(await self._get("/api/v1/controls"),
                                               self.o.client)
        elif view == "origin":
            if self.origin_at is None:
                page = await self._get("/api/v1/events", after=0, limit=ORIGIN_SCAN_LIMIT)
                self.origin_at = first_deposit_at(page["items"], self.o.client)
        else:  # pragma: no cover - a programming error
            raise ValueError(view)
        self.fetched_at[view] = self.clock()

    def due(self) -> set[str]:
        """Views to fetch now: dirty ones, plus the periodic re-polls."""
        now = self.clock()
        due = set(self.dirty)
        for view, every in (("positions", self.o.poll_seconds),
                            ("portfolio", self.o.poll_seconds),
                            ("trades", self.o.trades_poll_seconds)):
            if now - self.fetched_at.get(view, -1e18) >= every:
                due.add(view)
        return due

    async def refresh(self, *, strict: bool = False) -> None:
        """Fetch what is due (concurrently). ``strict``: raise MonitorError instead of
        showing it (used at start, where a bad key should end the program)."""
        views = self.due()
        if not views:
            return
        self.dirty -= views
        results = await asyncio.gather(*(self.fetch(v) for v in sorted(views)),
                                       return_exceptions=True)
        errors = []
        for view, result in zip(sorted(views), results, strict=True):
            if isinstance(result, BaseException):
                self.dirty.add(view)
                if strict and isinstance(result, MonitorError):
                    raise result
                errors.append(_describe(result))
        self.rest_detail = f"REST: {errors[0]}" if errors else ""

    # ---- WebSocket -----------------------------------------------------------------------

    def ws_url(self) -> str:
        parts = urlsplit(self.o.url.rstrip("/"))
        scheme = "wss" if parts.scheme == "https" else "ws"
        query = {"since": str(self.last_seq)} if self.seq_known else {}
        return urlunsplit((scheme, parts.netloc, parts.path + "/ws", urlencode(query), ""))

    def handle(self, message: dict[str, Any]) -> None:
        """Apply one WebSocket message to the state."""
        kind = message.get("type")
        if kind == "ready":
            self.last_seq = max(self.last_seq, int(message.get("seq") or 0))
            self.seq_known = True
            self.connection = "live"
            self.ws_detail = ""
            self.dirty |= VIEWS  # catch up: derived state is not replayed
            return
        if kind == "resync":
            self.last_seq = int(message.get("since", self.last_seq))
            self.ws_detail = "resync: fell behind"
            return
        seq = message.get("seq")
        if not message.get("derived") and isinstance(seq, int):
            if seq <= self.last_seq and self.seq_known:
                return  # seen already (a replay overlap)
            self.last_seq = max(self.last_seq, seq)
        client = message.get("client")
        if self.o.client is not None and client is not None and client != self.o.client:
            return
        if kind == LEG_OUT_EVENT:
            self.leg_outs += 1
        self.dirty |= TOPIC_VIEWS.get(str(message.get("topic")), frozenset())

    async def stream(self) -> None:
        """Follow /ws forever, reconnecting with backoff and since=<last seq>."""
        delay = self.o.backoff_initial
        while not self.quit.is_set():
            try:
                async with connect(self.ws_url(), open_timeout=10, max_size=None,
                                   additional_headers={"Authorization": f"Bearer {self.o.key}"}
                                   ) as ws:
                    self.connects += 1
                    async for raw in ws:
                        self.handle(json.loads(raw))
                        if self.connection == "live":
                            delay = self.o.backoff_initial
                    reason = f"socket closed ({ws.close_code})"
            except InvalidStatus as exc:
                reason = f"WebSocket refused: HTTP {exc.response.status_code}"
            except (OSError, TimeoutError, WebSocketException, ValueError) as exc:
                reason = f"WebSocket: {_describe(exc)}"
            if self.quit.is_set():
                return
            self.connection = "reconnecting"
            wait = delay * (1 + random.random() / 4)
            self.ws_detail = f"{reason}; retry in {wait:.1f}s"
            self.wake.set()
            await asyncio.sleep(wait)
            delay = min(delay * 2, self.o.backoff_max)

    # ---- display -------------------------------------------------------------------------

    def step(self) -> int:
        return int((self.clock() - self.started) / self.o.scroll_seconds) + self.step_offset

    def screen(self, now: datetime | None = None) -> Screen:
        now = now or datetime.now(UTC)
        metrics = None
        if self.totals is not None:
            metrics = compute_metrics(self.totals, self.trades, self.origin_at, now,
                                      self.leg_outs, self.trades_capped)
        detail = "; ".join(d for d in (self.ws_detail if self.connection != "live" else "",
                                       self.rest_detail) if d)
        status = Status(connection=self.connection, last_seq=self.last_seq, now=now,
                        trading=self.trading, detail=detail)
        return Screen(metrics=metrics, positions=self.positions,
                      exits=self.trades[:self.o.exits], status=status, rows=self.o.rows,
                      step=self.step(), show_client=self.o.client is None)

    def on_key(self, key: str) -> None:
        if key in "qQ":
            self.quit.set()
        elif key in " nj]+":
            self.step_offset += 1
        elif key in "pk[-":
            self.step_offset -= 1
        else:
            return
        self.wake.set()

    async def run(self, once: bool = False) -> int:
        """Run until 'q' (or Ctrl-C, which the caller handles). Returns an exit code."""
        try:
            try:
                await self.refresh(strict=True)
            except MonitorError as exc:
                self.console.print(f"[red]perpdesk monitor: {exc}[/red]")
                return 2
            if once:
                self.connection = "snapshot"
                self.console.print(render_screen(self.screen()))
                return 0 if not self.rest_detail else 1
            stream = asyncio.create_task(self.stream())
            try:
                with _KeyReader(self.on_key), Live(
                        render_screen(self.screen()), console=self.console,
                        screen=self.o.screen, auto_refresh=False,
                        redirect_stdout=False, redirect_stderr=False) as live:
                    await self._display(live)
            finally:
                self.quit.set()
                stream.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await stream
            return 0
        finally:
            if self._owns_http and self._http is not None:
                await self._http.aclose()

    async def _display(self, live: Live) -> None:
        next_tick = self.clock()
        while not self.quit.is_set():
            await self.refresh()
            live.update(render_screen(self.screen()), refresh=True)
            next_tick += self.o.refresh_seconds
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(),
                                       timeout=max(0.0, next_tick - self.clock()))
            if self.clock() > next_tick + self.o.refresh_seconds:
                next_tick = self.clock()  # fell behind (slow server): don't burst


class _KeyReader:
    """Single keys from a terminal stdin (cbreak mode) while the display runs; a no-op
    when stdin is not a terminal or on platforms without termios."""

    def __init__(self, on_key: Callable[[str], None]) -> None:
        self.on_key = on_key
        self.fd: int | None = None
        self.saved: Any = None

    def __enter__(self) -> _KeyReader:
        try:
            import termios
            import tty
        except ImportError:  # pragma: no cover - Windows
            return self
        if not sys.stdin.isatty():
            return self
        fd = sys.stdin.fileno()
        self.saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)
        asyncio.get_running_loop().add_reader(fd, self._read)
        self.fd = fd
        return self

    def _read(self) -> None:
        assert self.fd is not None
        data = os.read(self.fd, 64)
        for ch in data.decode(errors="ignore"):
            self.on_key(ch)

    def __exit__(self, *exc: object) -> None:
        if self.fd is None:
            return
        import termios

        asyncio.get_running_loop().remove_reader(self.fd)
        termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
        self.fd = None


def _terminal_console() -> Console:
    """On a terminal, size follows the terminal (and its resizes), not a stale exported
    $COLUMNS/$LINES, which rich would otherwise take as a fixed size."""
    environ = dict(os.environ)
    if sys.stdout.isatty():
        environ.pop("COLUMNS", None)
        environ.pop("LINES", None)
    return Console(_environ=environ)


def _error_message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200]


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
