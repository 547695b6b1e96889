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

The footer shows the event log's sequence number as the server last told it
(the ``ready`` message, then each event), ``—`` until it has; ``--once`` asks
the WebSocket for its ``ready`` before printing. Failures are said in words
under the status line, with when they are retried: ``REST: cannot connect to
http://127.0.0.1:8000 (connection refused); retrying in 1 s`` (one line for
both channels when the server is simply unreachable).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import math
import os
import random
import socket
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
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

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
HTTP_TIMEOUT_S = 10.0
SEQ_TIMEOUT_S = 5.0  # --once: how long to wait for the WebSocket's "ready"
MAX_PROBLEM_CHARS = 300  # a failure shown is cut here (an HTML error page, say)
# WebSocket close codes the server uses, in words.
CLOSE_REASONS = {1000: "closed by the server", 1001: "the server is going away",
                 1006: "connection lost", 1011: "server error",
                 1012: "the server is restarting", 4400: "request refused",
                 4401: "the API key was refused or revoked",
                 4008: "fell behind the stream (resyncing)"}


class MonitorError(Exception):
    """A problem the monitor cannot recover from by retrying (bad key, unknown client)."""


@dataclass(frozen=True)
class Failure:
    """The last failure of one channel (REST or the WebSocket), for the footer."""

    channel: str  # "REST" | "WebSocket"
    what: str  # in words: "cannot connect to http://127.0.0.1:8000 (connection refused)"
    unreachable: str | None = None  # the connect failure's reason, when it is one
    retry_at: float | None = None  # the monitor's clock at the next attempt; None: none


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
        self.rest_failure: Failure | None = None
        self.ws_failure: Failure | None = None
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
                base_url=self.o.url.rstrip("/"), timeout=HTTP_TIMEOUT_S,
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

    async def refresh(self, *, strict: bool = False, retry: bool = True) -> None:
        """Fetch what is due (concurrently). ``strict``: raise MonitorError instead of
        showing it (used at start, where a bad key should end the program). ``retry``:
        a failed view is fetched again on the next tick (not in a one-off snapshot)."""
        views = self.due()
        if not views:
            return
        self.dirty -= views
        results = await asyncio.gather(*(self.fetch(v) for v in sorted(views)),
                                       return_exceptions=True)
        failures: list[BaseException] = []
        for view, result in zip(sorted(views), results, strict=True):
            if isinstance(result, BaseException):
                self.dirty.add(view)
                if strict and isinstance(result, MonitorError):
                    raise result
                failures.append(result)
        if not failures:
            self.rest_failure = None
            return
        base = self.o.url.rstrip("/")
        self.rest_failure = Failure(
            "REST", describe_failure(failures[0], base), unreachable_reason(failures[0]),
            self.clock() + self.o.refresh_seconds if retry else None)

    @property
    def rest_detail(self) -> str:
        """The REST failure as the footer says it (empty when REST is fine)."""
        f = self.rest_failure
        return f"{f.channel}: {f.what}" if f else ""

    # ---- WebSocket -----------------------------------------------------------------------

    def ws_url(self, *, resume: bool = True) -> str:
        """The stream's URL, with ``since=<last seq>`` once known (``resume``); never
        the key (it goes in a header, out of access logs)."""
        parts = urlsplit(self.o.url.rstrip("/"))
        scheme = "wss" if parts.scheme == "https" else "ws"
        query = {"since": str(self.last_seq)} if self.seq_known and resume else {}
        return urlunsplit((scheme, parts.netloc, parts.path + "/ws", urlencode(query), ""))

    def handle(self, message: dict[str, Any]) -> None:
        """Apply one WebSocket message to the state."""
        kind = message.get("type")
        if kind == "ready":
            self.last_seq = max(self.last_seq, int(message.get("seq") or 0))
            self.seq_known = True
            self.connection = "live"
            self.ws_failure = None
            self.dirty |= VIEWS  # catch up: derived state is not replayed
            return
        if kind == "resync":
            self.last_seq = int(message.get("since", self.last_seq))
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
                    what = close_reason(ws.close_code, ws.close_reason)
                    unreachable = None
            except (OSError, TimeoutError, WebSocketException, ValueError) as exc:
                what = describe_failure(exc, self.ws_url(resume=False))
                unreachable = unreachable_reason(exc)
            if self.quit.is_set():
                return
            self.connection = "reconnecting"
            wait = delay * (1 + random.random() / 4)
            self.ws_failure = Failure("WebSocket", what, unreachable, self.clock() + wait)
            self.wake.set()
            await asyncio.sleep(wait)
            delay = min(delay * 2, self.o.backoff_max)

    async def read_seq(self) -> None:
        """Where the event log is, from the WebSocket's ``ready`` (for ``--once``, which
        does not follow the stream); a failure is shown, not raised."""
        try:
            async with asyncio.timeout(SEQ_TIMEOUT_S), connect(
                    self.ws_url(resume=False), open_timeout=SEQ_TIMEOUT_S, max_size=None,
                    additional_headers={"Authorization": f"Bearer {self.o.key}"}) as ws:
                async for raw in ws:
                    message = json.loads(raw)
                    if message.get("type") == "ready":
                        self.last_seq = max(self.last_seq, int(message.get("seq") or 0))
                        self.seq_known = True
                        return
                what = close_reason(ws.close_code, ws.close_reason)
                self.ws_failure = Failure("WebSocket", f"{what}; sequence unknown")
        except (OSError, TimeoutError, WebSocketException, ValueError) as exc:
            self.ws_failure = Failure(
                "WebSocket", describe_failure(exc, self.ws_url(resume=False)) +
                "; sequence unknown", unreachable_reason(exc))

    def problems(self) -> tuple[str, ...]:
        """The footer's failure lines: each channel's, or one for both when the server
        is simply unreachable; with when it is tried again."""
        now = self.clock()
        rest = self.rest_failure
        ws = self.ws_failure if self.connection != "live" else None
        if rest and ws and rest.unreachable and rest.unreachable == ws.unreachable:
            retries = [t for t in (rest.retry_at, ws.retry_at) if t is not None]
            both = Failure("REST and WebSocket", rest.what, rest.unreachable,
                           min(retries) if retries else None)
            return (_problem_line(both, now),)
        return tuple(_problem_line(f, now) for f in (rest, ws) if f is not None)

    # ---- display -------------------------------------------------------------------------

    def step(self) -> int:
        return int((self.clock() - self.started) / self.o.scroll_seconds) + self.step_offset

    def screen(self, now: datetime | None = None) -> Screen:
        now = now or datetime.now(UTC)
        metrics = None
        if self.totals is not None:
            metrics = compute_metrics(self.totals, self.trades, self.origin_at, now,
                                      self.leg_outs, self.trades_capped)
        # 0 until the server said otherwise is not a sequence number: show "—" instead.
        seq = self.last_seq if self.seq_known or self.last_seq else None
        status = Status(connection=self.connection, last_seq=seq, now=now,
                        trading=self.trading, problems=self.problems())
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
                await self.refresh(strict=True, retry=not once)
            except MonitorError as exc:
                self.console.print(f"[red]perpdesk monitor: {exc}[/red]")
                return 2
            if once:
                if self.rest_failure is None or self.rest_failure.unreachable is None:
                    await self.read_seq()  # (no point when the server cannot be reached)
                self.connection = "snapshot"
                self.console.print(render_screen(self.screen()))
                return 0 if self.rest_failure is None else 1
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


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and everything it was raised from (causes, contexts, grouped ones)."""
    out: list[BaseException] = []
    stack: list[BaseException | None] = [exc]
    while stack:
        e = stack.pop()
        if e is None or any(e is seen for seen in out):
            continue
        out.append(e)
        stack += [e.__cause__, e.__context__, *getattr(e, "exceptions", ())]
    return out


_ERRNO_WORDS = {errno.ECONNREFUSED: "connection refused", errno.ETIMEDOUT: "timed out",
                errno.EHOSTUNREACH: "host unreachable", errno.ENETUNREACH: "network unreachable",
                errno.ECONNRESET: "connection reset", errno.EADDRNOTAVAIL: "address not available"}


def unreachable_reason(exc: BaseException) -> str | None:
    """Why a connection could not even be opened ("connection refused", "host not
    found", ...), or None when the failure was something else."""
    if isinstance(exc, httpx.ConnectTimeout):
        return "timed out"
    if not isinstance(exc, httpx.ConnectError | OSError | TimeoutError):
        return None
    for e in _causes(exc):
        if isinstance(e, socket.gaierror):
            return "host not found"
        if isinstance(e, OSError) and e.errno in _ERRNO_WORDS:
            return _ERRNO_WORDS[e.errno]
    if isinstance(exc, TimeoutError):
        return "timed out"
    for e in _causes(exc):
        if isinstance(e, OSError) and e.strerror:
            return e.strerror.lower()
    return str(exc).strip() or type(exc).__name__


def close_reason(code: int | None, reason: str | None = "") -> str:
    """A WebSocket close in words: ``the server is restarting (1012)``."""
    words = CLOSE_REASONS.get(code or 1006, "closed")
    if reason and reason.lower() not in words:
        words = f"{words}: {reason}"
    return f"{words} ({code or 1006})"


def describe_failure(exc: BaseException, target: str) -> str:
    """A failed request to ``target`` in words, without a traceback's vocabulary."""
    unreachable = unreachable_reason(exc)
    if unreachable is not None:
        return f"cannot connect to {target} ({unreachable})"
    if isinstance(exc, httpx.HTTPStatusError):
        response = exc.response
        return (f"GET {response.request.url.path}: HTTP {response.status_code} "
                f"{response.reason_phrase}: {_error_message(response)}").rstrip(": ")
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer from {target} within {HTTP_TIMEOUT_S:g} s"
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        return f"{target} refused the connection: HTTP {status}"
    if isinstance(exc, ConnectionClosed):
        code = exc.rcvd.code if exc.rcvd is not None else None
        return close_reason(code, exc.rcvd.reason if exc.rcvd is not None else "")
    if isinstance(exc, httpx.TransportError):
        return f"connection to {target} failed ({str(exc).strip() or type(exc).__name__})"
    return _describe(exc)


def retry_phrase(seconds: float) -> str:
    """``retrying in 2 s`` (whole seconds, rounded up), or ``retrying now``."""
    if seconds <= 0.05:
        return "retrying now"
    # (- 0.05: a wait of 2.0 s read a moment later is still "2 s", not "3 s")
    return f"retrying in {max(1, math.ceil(seconds - 0.05))} s"


def _problem_line(failure: Failure, now: float) -> str:
    text = f"{failure.channel}: {failure.what}"
    if len(text) > MAX_PROBLEM_CHARS:
        text = text[:MAX_PROBLEM_CHARS - 1] + "…"
    if failure.retry_at is not None:
        text += f"; {retry_phrase(failure.retry_at - now)}"
    return text
