"""The webhook sink against a real HTTP receiver on 127.0.0.1: a receiver that fails
(500s), then is gone (connection refused), then recovers gets every alert event, in
order, once per event id; a slow receiver is retried with the same id (at least once);
a full queue drops its oldest event and counts it, and never makes the caller wait."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from app.config import AlertsConfig, WebhookSinkConfig
from app.runtime.alerts import AlertMonitor
from app.runtime.alerts_sinks import WebhookSink
from app.runtime.alerts_store import AlertEvent
from tests.runtime.alert_receiver import Receiver


@pytest.fixture
def receiver() -> Any:
    r = Receiver().start()
    yield r
    r.stop()


class Feed:
    def __init__(self) -> None:
        self.events: list[AlertEvent] = []

    def publish(self, messages: list) -> None:
        pass

    name = "recorder"

    def deliver(self, event: AlertEvent) -> None:
        self.events.append(event)

    async def start(self) -> None: ...
    async def stop(self) -> None: ...


def monitor_with(sink: WebhookSink) -> tuple[AlertMonitor, Feed]:
    feed = Feed()
    system = SimpleNamespace(engine=None, settings=SimpleNamespace(stale_mark_seconds=30.0))
    monitor = AlertMonitor(system, feed, config=AlertsConfig(),  # type: ignore[arg-type]
                           sinks=[sink, feed])  # type: ignore[list-item]
    return monitor, feed


def hook(url: str, **overrides: Any) -> WebhookSink:
    values: dict[str, Any] = {"type": "webhook", "name": "hook", "url": url,
                              "backoff_initial_s": 0.02, "backoff_max_s": 0.1,
                              "timeout_s": 2.0, "retry_horizon_s": 60.0}
    values.update(overrides)
    return WebhookSink(WebhookSinkConfig(**values))


async def until(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def test_no_event_is_lost_or_repeated_while_the_receiver_fails_then_recovers(
        receiver: Receiver) -> None:
    receiver.answer = lambda payload: 500

    async def scenario() -> tuple[list[str], WebhookSink]:
        sink = hook(receiver.url)
        monitor, feed = monitor_with(sink)
        await monitor.start()
        monitor.raise_alert("warning", "Margin utilization", "25%", "demo",
                            key="margin_utilization:demo:paper-binance")
        monitor.raise_alert("warning", "Stale mark", "no mark", key="stale_mark:x:BTC-PERP")
        monitor.raise_alert("critical", "Margin utilization", "55%", "demo",
                            key="margin_utilization:demo:paper-binance")
        monitor.raise_alert("critical", "Position liquidated", "demo x BTC-PERP", "demo")
        await until(lambda: receiver.tried() >= 3, "three 500s")
        receiver.stop()  # now the connection is refused
        tried = sink.retries
        monitor.resolve("margin_utilization:demo:paper-binance", "back to 10%")
        monitor.raise_alert("info", "Trading active", "global", None)
        await until(lambda: sink.retries >= tried + 3, "refused connections retried")
        assert receiver.delivered_ids() == []
        receiver.answer = lambda payload: 200
        receiver.start()  # back, on the same port
        monitor.resolve("stale_mark:x:BTC-PERP", "marks flow")
        sent = [e.event_id for e in feed.events]
        await until(lambda: len(receiver.delivered_ids()) == len(sent), "every event")
        await asyncio.sleep(0.2)  # nothing more comes
        await monitor.stop()
        return sent, sink

    sent, sink = asyncio.run(scenario())
    assert len(sent) == 7
    # Every event, in the order raised, each id once.
    assert receiver.delivered_ids() == sent
    # While the receiver failed, only the oldest event was tried: the next waited.
    failed = {event_id for event_id, status in receiver.attempts if status >= 500}
    assert failed == {sent[0]}
    assert sink.dropped == {} and sink.delivered == 7 and sink.retries >= 5
    # Receivers de-duplicate on the event id (body and Idempotency-Key) and the key.
    first = receiver.payloads[0]
    assert first["event"] == "raised" and first["alert"]["key"] == \
        "margin_utilization:demo:paper-binance"
    assert first["alert"]["severity"] == "warning" and first["alert"]["client"] == "demo"
    assert [p["event"] for p in receiver.payloads] == [
        "raised", "raised", "escalated", "raised", "resolved", "raised", "resolved"]
    assert receiver.payloads[2]["alert"]["id"] == first["alert"]["id"]  # one alert, escalated
    assert receiver.payloads[2]["previous_severity"] == "warning"
    resolved = receiver.payloads[4]["alert"]
    assert resolved["state"] == "resolved" and resolved["resolution"] == "back to 10%"
    for headers, payload in zip(receiver.headers[-7:], receiver.payloads, strict=True):
        assert headers["Idempotency-Key"] == payload["event_id"]
        assert headers["Content-Type"] == "application/json"


def test_a_receiver_too_slow_to_answer_gets_the_same_id_again(receiver: Receiver) -> None:
    """At least once: a response that does not come in time is retried with the same
    event id, which the receiver recognises; nothing is lost."""
    slow_once = threading.Event()

    def answer(payload: dict) -> int:
        if not slow_once.is_set():
            slow_once.set()
            time.sleep(0.6)  # past the sender's timeout: it has given up and will retry
        return 200

    receiver.answer = answer

    async def scenario() -> list[str]:
        monitor, feed = monitor_with(hook(receiver.url, timeout_s=0.2))
        await monitor.start()
        monitor.raise_alert("error", "Reconciliation drift", "1.01", "demo",
                            key="reconciliation_drift:demo:paper-binance")
        monitor.raise_alert("info", "Trading active", "global")
        sent = [e.event_id for e in feed.events]
        await until(lambda: set(receiver.delivered_ids()) == set(sent), "both events")
        # ...and the late answer's request, which the receiver also took
        await until(lambda: receiver.tried() == 3, "the slow request's end")
        await monitor.stop()
        return sent

    sent = asyncio.run(scenario())
    got = receiver.delivered_ids()
    assert got.count(sent[0]) >= 2  # the retry of the event whose answer was late
    assert list(dict.fromkeys(got)) == sent  # de-duplicated on the id: each once, in order


def test_a_full_queue_drops_the_oldest_and_never_waits(receiver: Receiver) -> None:
    release = threading.Event()

    def hang(payload: dict) -> int:
        release.wait(10)  # a receiver that holds every request
        return 200

    receiver.answer = hang

    async def scenario() -> tuple[list[str], WebhookSink, float]:
        sink = hook(receiver.url, queue_size=5, timeout_s=10.0)
        monitor, feed = monitor_with(sink)
        await monitor.start()
        monitor.raise_alert("info", "first", "0")
        await until(lambda: sink.stats().queued == 1 and not sink._queue, "one in flight")
        started = time.perf_counter()
        for i in range(1, 201):
            monitor.raise_alert("info", "notice", str(i))
        took = time.perf_counter() - started
        assert sink.stats().queued == 6  # 5 waiting + the one in flight
        assert sink.dropped["overflow"] == 195
        release.set()
        sent = [e.event_id for e in feed.events]
        await until(lambda: len(receiver.delivered_ids()) == 6, "what was kept")
        await monitor.stop()
        return sent, sink, took

    sent, sink, took = asyncio.run(scenario())
    assert took < 1.0  # 200 alerts while the receiver hangs: no waiting on it
    # The one in flight, then the five newest: the oldest waiting ones were dropped.
    assert receiver.delivered_ids() == [sent[0], *sent[-5:]]
    assert sink.stats().dropped == {"overflow": 195}


def test_an_event_past_the_retry_horizon_is_dropped_and_counted(receiver: Receiver) -> None:
    receiver.answer = lambda payload: 503

    async def scenario() -> tuple[list[str], WebhookSink]:
        sink = hook(receiver.url, retry_horizon_s=0.3)
        monitor, feed = monitor_with(sink)
        await monitor.start()
        monitor.raise_alert("warning", "old", "will expire")
        await until(lambda: sink.dropped["expired"] == 1, "the expiry")
        receiver.answer = lambda payload: 200
        monitor.raise_alert("warning", "new", "delivered")
        await until(lambda: len(receiver.delivered_ids()) == 1, "the next event")
        await monitor.stop()
        return [e.event_id for e in feed.events], sink

    sent, sink = asyncio.run(scenario())
    assert receiver.delivered_ids() == [sent[1]]
    assert sink.stats().dropped == {"expired": 1}


def test_a_refusal_is_not_retried(receiver: Receiver) -> None:
    receiver.answer = lambda payload: 400 if payload["alert"]["title"] == "bad" else 200

    async def scenario() -> tuple[list[str], WebhookSink]:
        sink = hook(receiver.url)
        monitor, feed = monitor_with(sink)
        await monitor.start()
        monitor.raise_alert("warning", "bad", "refused")
        monitor.raise_alert("warning", "good", "accepted")
        await until(lambda: len(receiver.delivered_ids()) == 1, "the next event")
        await monitor.stop()
        return [e.event_id for e in feed.events], sink

    sent, sink = asyncio.run(scenario())
    assert receiver.attempts == [(sent[0], 400), (sent[1], 200)]
    assert sink.stats().dropped == {"rejected": 1} and sink.retries == 0


def test_min_severity_filters_raises_and_their_resolves(receiver: Receiver) -> None:
    async def scenario() -> list[str]:
        monitor, feed = monitor_with(hook(receiver.url, min_severity="error"))
        await monitor.start()
        monitor.raise_alert("warning", "minor", "m", key="minor")
        monitor.resolve("minor")
        monitor.raise_alert("critical", "major", "M", key="major")
        monitor.resolve("major")
        await until(lambda: len(receiver.delivered_ids()) == 2, "the major alert's events")
        await asyncio.sleep(0.1)
        await monitor.stop()
        return [e.event_id for e in feed.events]

    sent = asyncio.run(scenario())
    assert receiver.delivered_ids() == sent[2:]


def test_the_sink_configuration_is_validated() -> None:
    from pydantic import ValidationError

    from app.config import TradingConfig, default_trading_config

    base = default_trading_config().model_dump()
    ok = TradingConfig.model_validate({**base, "alerts": {"sinks": [
        {"type": "log"}, {"type": "webhook", "url": "https://hooks.example/x",
                          "headers": {"Authorization": "Bearer t"}}]}})
    assert [s.type for s in ok.alerts.sinks] == ["log", "webhook"]
    assert ok.alerts.margin_warning == Decimal("0.20")  # the section's other defaults
    for bad in ({"sinks": [{"type": "email"}]},
                {"sinks": [{"type": "webhook", "url": "ftp://x"}]},
                {"sinks": [{"type": "webhook", "url": "http://a"},
                           {"type": "webhook", "url": "http://b"}]},  # same name twice
                {"sinks": [{"type": "webhook", "url": "http://a", "queue_size": 0}]},
                {"sinks": [{"type": "webhook", "url": "http://a",
                            "headers": {"X": "line\nbreak"}}]},
                {"margin_warning": "0.6"},  # above the critical threshold
                {"history": 5}, {"surprise": 1}):
        with pytest.raises(ValidationError):
            TradingConfig.model_validate({**base, "alerts": bad})


def test_alert_times_are_utc() -> None:
    monitor, _ = monitor_with(hook("http://127.0.0.1:9/never"))
    alert = monitor.raise_alert("info", "t", "m")
    assert alert.at.tzinfo is not None and alert.at.utcoffset() == UTC.utcoffset(None)
    assert alert.at <= datetime.now(UTC)
