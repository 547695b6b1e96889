"""Where alert events go besides the dashboard feed: pluggable sinks (YAML
``alerts.sinks``, see app/config.py).

* ``log`` (the default): one grep-friendly line per event on the
  ``perpdesk.alerts`` logger:
  ``ALERT[WARNING] margin_utilization:demo:paper-binance Margin utilization: ...``
  (escalations are ``ALERT[...]`` lines too) and ``ALERT_RESOLVED[WARNING] <key>
  <title>: <resolution>``; a notice has ``-`` for its key.
* ``webhook``: an HTTP POST of the event as JSON to a URL, from the sink's own
  asyncio task. ``deliver`` only appends to a bounded queue and never waits, so a
  slow or failing receiver cannot slow the engine or the bus; when the queue is
  full the oldest waiting event is dropped and counted. Each event is retried
  (connection failures, timeouts, 408/425/429/5xx) with exponential backoff
  until delivered or ``retry_horizon_s`` after it was raised; a 4xx answer is a
  refusal and is not retried. Events go out one at a time, in order, so a
  receiver sees an alert's resolve after its raise. Delivery is at least once:
  a receiver may see one ``event_id`` twice (a response lost in transit) and
  de-duplicates on it (also sent as the ``Idempotency-Key`` header).

A sink is anything with ``name``, ``deliver(event)`` (non-blocking, never
raising), ``stats()`` and async ``start()``/``stop()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import httpx
import orjson

from app.config import AlertSinkConfig, LogSinkConfig, WebhookSinkConfig
from app.runtime.alerts_store import RANK, AlertEvent

log = logging.getLogger("perpdesk.alerts")
_LOG_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR,
               "critical": logging.CRITICAL}
_RETRIED_STATUS = frozenset({408, 425, 429})
DRAIN_SECONDS = 2.0  # on shutdown, how long a webhook may go on delivering what is queued


@dataclass(frozen=True, slots=True)
class SinkStats:
    name: str
    kind: str
    queued: int
    delivered: int
    retries: int
    dropped: dict[str, int]  # reason (overflow | expired | rejected) -> count


class Sink(Protocol):
    name: str

    def deliver(self, event: AlertEvent) -> None: ...
    def stats(self) -> SinkStats: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


def log_line(event: AlertEvent) -> str:
    a = event.alert
    key = a.key or "-"
    if event.kind == "resolved":
        return f"ALERT_RESOLVED[{a.level.upper()}] {key} {a.title}: {a.resolution}"
    return f"ALERT[{a.level.upper()}] {key} {a.title}: {a.message}"


class LogSink:
    def __init__(self, config: LogSinkConfig | None = None):
        config = config or LogSinkConfig()
        self.name = config.name
        self._min_rank = RANK[config.min_severity]
        self._delivered = 0

    def deliver(self, event: AlertEvent) -> None:
        if RANK[event.alert.level] < self._min_rank:
            return
        # A resolve is good news whatever the alert's severity.
        level = logging.INFO if event.kind == "resolved" else _LOG_LEVELS[event.alert.level]
        log.log(level, "%s", log_line(event))
        self._delivered += 1

    def stats(self) -> SinkStats:
        return SinkStats(self.name, "log", 0, self._delivered, 0, {})

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


@dataclass(slots=True)
class _Pending:
    event_id: str
    body: bytes  # encoded once, when queued
    queued_at: float  # time.monotonic()


class WebhookSink:
    def __init__(self, config: WebhookSinkConfig,
                 client_factory: Callable[[], httpx.AsyncClient] | None = None):
        self.name = config.name
        self.config = config
        self._min_rank = RANK[config.min_severity]
        self._client_factory = client_factory or (
            lambda: httpx.AsyncClient(timeout=config.timeout_s, follow_redirects=False))
        self._queue: deque[_Pending] = deque()
        self._inflight: _Pending | None = None  # taken off the queue while it is tried
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.delivered = 0
        self.retries = 0
        self.dropped: Counter[str] = Counter()

    # ---- the engine's side: never waits ----------------------------------------------

    def deliver(self, event: AlertEvent) -> None:
        if RANK[event.alert.level] < self._min_rank:
            return
        if len(self._queue) >= self.config.queue_size:
            lost = self._queue.popleft()
            self.dropped["overflow"] += 1
            log.warning("alert webhook %s: queue full (%d); dropped event %s", self.name,
                        self.config.queue_size, lost.event_id)
        self._queue.append(_Pending(event.event_id, orjson.dumps(event.payload()),
                                    time.monotonic()))
        self._wake.set()

    def stats(self) -> SinkStats:
        queued = len(self._queue) + (self._inflight is not None)
        return SinkStats(self.name, "webhook", queued, self.delivered, self.retries,
                         dict(self.dropped))

    # ---- the sink's own task -------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"alert-webhook-{self.name}")

    async def stop(self) -> None:
        """Give what is queued a short while to go out, then stop."""
        task, self._task = self._task, None
        if task is None:
            return
        deadline = time.monotonic() + DRAIN_SECONDS
        while (self._queue or self._inflight) and time.monotonic() < deadline \
                and not task.done():
            await asyncio.sleep(0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        left = len(self._queue) + (self._inflight is not None)
        if left:
            log.warning("alert webhook %s: stopped with %d event(s) undelivered", self.name,
                        left)

    async def _run(self) -> None:
        while True:
            try:
                async with self._client_factory() as client:
                    while True:
                        if self._inflight is None:
                            if not self._queue:
                                self._wake.clear()
                                await self._wake.wait()
                                continue
                            self._inflight = self._queue.popleft()
                        await self._deliver_inflight(client)
            except asyncio.CancelledError:
                raise
            except Exception:  # the task must outlive its bugs: what is queued waits
                log.exception("alert webhook %s: sender failed; restarting", self.name)
                await asyncio.sleep(1.0)

    async def _deliver_inflight(self, client: httpx.AsyncClient) -> None:
        """Try the event in flight until it is delivered, refused or too old."""
        pending = self._inflight
        assert pending is not None
        backoff = self.config.backoff_initial_s
        while True:
            wait = await self._post(client, pending)
            if wait is None:
                self._inflight = None
                return
            delay = max(wait, backoff)
            if time.monotonic() + delay - pending.queued_at > self.config.retry_horizon_s:
                self.dropped["expired"] += 1
                log.error("alert webhook %s: event %s not delivered within %g s; dropped",
                          self.name, pending.event_id, self.config.retry_horizon_s)
                self._inflight = None
                return
            self.retries += 1
            await asyncio.sleep(delay)
            backoff = min(backoff * 2, self.config.backoff_max_s)

    async def _post(self, client: httpx.AsyncClient, pending: _Pending) -> float | None:
        """None when the event is done with (delivered or refused); else the least
        seconds to wait before trying again (a Retry-After, or 0)."""
        headers = {**self.config.headers, "Content-Type": "application/json",
                   "Idempotency-Key": pending.event_id, "User-Agent": "perpdesk-alerts"}
        try:
            response = await client.post(self.config.url, content=pending.body,
                                         headers=headers)
        except httpx.HTTPError as exc:  # refused, reset, timed out: the receiver is away
            log.warning("alert webhook %s: %s (%s); will retry", self.name,
                        exc.__class__.__name__, exc)
            return 0.0
        except Exception:  # a bug here must not end the task: retry within the horizon
            log.exception("alert webhook %s: delivery failed", self.name)
            return 0.0
        status = response.status_code
        if 200 <= status < 300:
            self.delivered += 1
            return None
        if status >= 500 or status in _RETRIED_STATUS:
            log.warning("alert webhook %s: receiver answered %d; will retry", self.name,
                        status)
            return _retry_after(response, self.config.backoff_max_s)
        self.dropped["rejected"] += 1
        log.error("alert webhook %s: receiver refused event %s with %d; not retried",
                  self.name, pending.event_id, status)
        return None


def _retry_after(response: httpx.Response, cap: float) -> float:
    """The receiver's Retry-After in seconds (capped), or 0."""
    try:
        seconds = float(response.headers.get("retry-after", "0"))
    except ValueError:  # an HTTP date: fall back on the backoff
        return 0.0
    return min(max(seconds, 0.0), cap) if math.isfinite(seconds) else 0.0


def build_sinks(configs: list[AlertSinkConfig]) -> list[Sink]:
    sinks: list[Sink] = []
    for config in configs:
        if isinstance(config, WebhookSinkConfig):
            sinks.append(WebhookSink(config))
        else:
            sinks.append(LogSink(config))
    return sinks
