"""The alert monitor's rules and its raise/resolve contract, on a stand-in engine whose
account valuations the tests set: each threshold raises once, escalates, holds and
resolves exactly at its boundary; notices are never deduplicated; the book and the
reconciliation history stay bounded; every sink gets every event."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from app.config import AlertsConfig
from app.domain.accounts import AccountSummary
from app.domain.events import TradingStateChanged
from app.domain.trading_state import Scope, TradingState
from app.runtime.alerts import AlertFilter, AlertMonitor
from app.runtime.alerts_sinks import LogSink, SinkStats
from app.runtime.alerts_store import AlertEvent

D = Decimal
T0 = datetime(2024, 1, 1, tzinfo=UTC)
ACCOUNT = ("demo", "paper-binance")


class Engine:
    """What the monitor reads of an engine: accounts and their valuation."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], dict[str, Decimal]] = {ACCOUNT: {}}
        self.state = SimpleNamespace(accounts=self.values)

    def set(self, account: tuple[str, str] = ACCOUNT, **values: Decimal) -> None:
        self.values[account] = values

    def summary(self, client: str, venue: str) -> AccountSummary:
        v = {"wallet": D(1000), "unrealized_pnl": D(0), "margin_ratio": D(0),
             "maintenance_ratio": D(0), "realized_pnl": D(0), "fees": D(0),
             "funding": D(0), "deposits": D(1000), "withdrawals": D(0),
             **self.values[(client, venue)]}
        equity = v.pop("equity", v["wallet"] + v["unrealized_pnl"])
        return AccountSummary(client=client, venue=venue, equity=equity, margin_used=D(0),
                              order_margin=D(0), available=equity, **v)


class Recorder:
    """A sink (and a broadcaster) that keeps what it was given."""

    name = "recorder"

    def __init__(self) -> None:
        self.events: list[AlertEvent] = []
        self.messages: list[dict] = []

    def deliver(self, event: AlertEvent) -> None:
        self.events.append(event)

    def publish(self, messages: list[dict]) -> None:
        self.messages += messages

    def stats(self) -> SinkStats:
        return SinkStats(self.name, "test", 0, len(self.events), 0, {})

    async def start(self) -> None: ...
    async def stop(self) -> None: ...

    def kinds(self) -> list[tuple[str, str, str | None]]:
        return [(e.kind, e.alert.level, e.alert.key) for e in self.events]


@dataclass
class World:
    monitor: AlertMonitor
    engine: Engine
    sink: Recorder
    stale: list[str]
    clock: list[datetime]

    def tick(self, seconds: float = 1) -> None:
        self.clock[0] += timedelta(seconds=seconds)


@pytest.fixture
def world() -> World:
    engine, sink, stale, clock = Engine(), Recorder(), [], [T0]
    system = SimpleNamespace(engine=engine, settings=SimpleNamespace(stale_mark_seconds=30.0),
                             stale_marks=lambda now: list(stale))
    monitor = AlertMonitor(system, sink, config=AlertsConfig(history=50),  # type: ignore[arg-type]
                           sinks=[sink], clock=lambda: clock[0])
    return World(monitor, engine, sink, stale, clock)


@pytest.mark.parametrize(("ratio_field", "key", "title", "warning", "critical"), [
    ("margin_ratio", "margin_utilization:demo:paper-binance", "Margin utilization",
     D("0.20"), D("0.50")),
    ("maintenance_ratio", "liquidation_risk:demo:paper-binance", "Liquidation risk",
     D("0.50"), D("0.80")),
])
def test_a_ratio_threshold_raises_once_escalates_and_resolves(
        world: World, ratio_field: str, key: str, title: str, warning: Decimal,
        critical: Decimal) -> None:
    m, step = world.monitor, D("0.0001")

    def at(ratio: Decimal) -> None:
        world.engine.set(**{ratio_field: ratio})
        world.tick()
        m.check_accounts()

    at(warning)  # at the threshold is not above it
    assert m.active(key) is None and world.sink.events == []
    at(warning + step)
    alert = m.active(key)
    assert alert is not None and alert.level == "warning" and alert.title == title
    assert alert.client == "demo" and alert.state == "active"
    for _ in range(5):  # the condition holds: raised once
        at(warning + step * 10)
    assert world.sink.kinds() == [("raised", "warning", key)]

    at(critical + step)  # escalates: the same alert, now critical
    escalated = m.active(key)
    assert escalated is not None and escalated.id == alert.id
    assert escalated.level == "critical" and escalated.at > alert.at
    assert world.sink.events[-1].previous_level == "warning"
    at(critical - step)  # back under critical but still over warning: no news
    at(critical + step)  # nor on the way back up: it never stopped being active
    assert world.sink.kinds() == [("raised", "warning", key), ("escalated", "critical", key)]

    at(warning)  # cleared: resolved, with the time and the figure
    assert m.active(key) is None
    resolved = m.book.get(alert.id)
    assert resolved is not None and resolved.state == "resolved"
    assert resolved.resolved_at == world.clock[0] and resolved.level == "critical"
    assert f"(at or below {int(warning * 100)}%)" in resolved.resolution
    assert world.sink.kinds()[-1] == ("resolved", "critical", key)
    at(D(0))  # resolving twice is a no-op
    assert len(world.sink.events) == 3

    at(critical + step)  # a new episode is a new alert, straight at critical
    again = m.active(key)
    assert again is not None and again.id != alert.id and again.level == "critical"
    assert world.sink.kinds()[-1] == ("raised", "critical", key)


def test_infinite_ratios_count_as_critical(world: World) -> None:
    """Equity at or below zero with positions open: the ratios are infinite."""
    world.engine.set(margin_ratio=D("Infinity"), maintenance_ratio=D("Infinity"))
    world.monitor.check_accounts()
    assert {(k, lvl) for _, lvl, k in world.sink.kinds()} == {
        ("margin_utilization:demo:paper-binance", "critical"),
        ("liquidation_risk:demo:paper-binance", "critical")}


def test_thresholds_come_from_the_configuration(world: World) -> None:
    world.monitor.config = AlertsConfig(margin_warning=D("0.05"), margin_critical=D("0.10"))
    world.engine.set(margin_ratio=D("0.06"))
    world.monitor.check_accounts()
    assert world.sink.kinds() == [("raised", "warning", "margin_utilization:demo:paper-binance")]


def test_a_stale_mark_raises_per_instrument_and_resolves_when_marks_flow(world: World) -> None:
    m = world.monitor
    world.stale[:] = ["paper-binance:BTC-PERP", "paper-bybit:ETH-PERP"]
    m.check_marks()
    m.check_marks()
    assert sorted(world.sink.kinds()) == [
        ("raised", "warning", "stale_mark:paper-binance:BTC-PERP"),
        ("raised", "warning", "stale_mark:paper-bybit:ETH-PERP")]
    alert = m.active("stale_mark:paper-binance:BTC-PERP")
    assert alert is not None and alert.client is None and "30 s" in alert.message
    world.stale[:] = ["paper-bybit:ETH-PERP"]
    m.check_marks()
    assert world.sink.kinds()[-1] == ("resolved", "warning", "stale_mark:paper-binance:BTC-PERP")
    assert m.active("stale_mark:paper-binance:BTC-PERP") is None
    assert m.active("stale_mark:paper-bybit:ETH-PERP") is not None


def test_reconciliation_drift_above_a_dollar_raises_and_resolves(world: World) -> None:
    m, key = world.monitor, "reconciliation_drift:demo:paper-binance"
    # wallet = deposits + realized - fees + funding, exactly
    world.engine.set(wallet=D("1011.5"), realized_pnl=D(15), fees=D("2.5"), funding=D(-1),
                     unrealized_pnl=D(40))
    m.reconcile()
    record = m.reconciliations.latest(*ACCOUNT)
    assert record is not None and record.ok and record.drift == 0
    assert record.equity == record.expected_equity == D("1051.5")

    world.engine.set(wallet=D("1012.5"), realized_pnl=D(15), fees=D("2.5"), funding=D(-1))
    m.reconcile()  # exactly $1: within the threshold
    assert m.active(key) is None
    world.engine.set(wallet=D("1012.51"), realized_pnl=D(15), fees=D("2.5"), funding=D(-1))
    world.tick(60)
    m.reconcile()
    alert = m.active(key)
    assert alert is not None and alert.level == "error" and alert.client == "demo"
    assert "drift 1.01" in alert.message
    m.reconcile()  # still drifting: raised once
    assert [k for k, *_ in world.sink.kinds()] == ["raised"]

    world.engine.set(wallet=D("1011.5"), realized_pnl=D(15), fees=D("2.5"), funding=D(-1))
    world.tick(60)
    m.reconcile()
    assert m.active(key) is None
    assert world.sink.kinds() == [("raised", "error", key), ("resolved", "error", key)]
    # Every check is in the history, newest first, the drifting ones flagged.
    page, _ = m.reconciliations.page(None, None, False, None, 100)
    assert [r.ok for r in page] == [True, False, False, True, True]
    drifting, _ = m.reconciliations.page(None, None, True, None, 100)
    assert [r.drift for r in drifting] == [D("1.01"), D("1.01")]


def test_reconciliation_runs_on_its_schedule(world: World, monkeypatch) -> None:
    import app.runtime.alerts as alerts_module

    now = [1000.0]
    monkeypatch.setattr(alerts_module.time, "monotonic", lambda: now[0])
    for _ in range(59):  # once a second for a minute: one check (the first)
        world.monitor.housekeep()
        now[0] += 1
    assert len(world.monitor.reconciliations) == 1
    now[0] += 1
    world.monitor.housekeep()
    assert len(world.monitor.reconciliations) == 2


def test_the_reconciliation_history_is_bounded_and_paged(world: World) -> None:
    m = AlertMonitor(world.monitor.system, Recorder(),  # type: ignore[arg-type]
                     config=AlertsConfig(reconciliation_history=10), sinks=[])
    world.engine.set(("demo-2", "paper-binance"))
    for _ in range(30):
        m.reconcile(T0)
    assert len(m.reconciliations) == 10
    first, cursor = m.reconciliations.page(frozenset({"demo"}), None, False, None, 3)
    assert [r.id for r in first] == [59, 57, 55] and cursor == 55
    second, cursor = m.reconciliations.page(frozenset({"demo"}), None, False, cursor, 3)
    assert [r.id for r in second] == [53, 51] and cursor is None
    # A page examines a bounded number of records: short, with a cursor to go on.
    some, cursor = m.reconciliations.page(frozenset({"nobody"}), None, False, None, 3, budget=4)
    assert some == [] and cursor == 57  # ids below 57 next: 60..57 were examined


def test_notices_are_never_deduplicated_nor_active(world: World) -> None:
    m = world.monitor
    change = TradingStateChanged(Scope("demo"), TradingState.HALTED, TradingState.ACTIVE,
                                 "why", "alice", T0)
    m.on_events([change, change])
    notices = [a for a in m.feed if a.title == "Trading halted"]
    assert len(notices) == 2 and {a.state for a in notices} == {"notice"}
    assert all(a.key is None and a.client == "demo" for a in notices)
    assert m.book.active_alerts() == []


def test_raise_and_resolve_are_one_liners_for_new_rules(world: World) -> None:
    """What a circuit breaker's events will use: a rule per event type, keyed."""

    @dataclass(frozen=True)
    class BreakerTripped:
        client: str
        breaker: str

    @dataclass(frozen=True)
    class BreakerReset:
        client: str
        breaker: str

    m = world.monitor
    m.rule(BreakerTripped, lambda mon, e: mon.raise_alert(
        "critical", "Breaker tripped", f"{e.client}: {e.breaker}", client=e.client,
        key=f"breaker:{e.breaker}:{e.client}"))
    m.rule(BreakerReset, lambda mon, e: mon.resolve(f"breaker:{e.breaker}:{e.client}",
                                                    "reset by an operator"))
    m.rule(BreakerReset, lambda mon, e: 1 / 0)  # a broken rule hides no other alert
    m.on_events([BreakerTripped("demo", "daily_loss"), BreakerTripped("demo", "daily_loss")])
    assert world.sink.kinds() == [("raised", "critical", "breaker:daily_loss:demo")]
    m.on_events([BreakerReset("demo", "daily_loss")])
    assert world.sink.kinds()[-1] == ("resolved", "critical", "breaker:daily_loss:demo")
    assert m.feed[0].resolution == "reset by an operator"


def test_raise_alert_checks_its_input(world: World) -> None:
    with pytest.raises(ValueError, match="severity"):
        world.monitor.raise_alert("fatal", "t", "m")
    with pytest.raises(ValueError, match="key"):
        world.monitor.raise_alert("info", "t", "m", key="k" * 201)
    with pytest.raises(ValueError, match="key"):
        world.monitor.raise_alert("info", "t", "m", key="")
    assert world.monitor.resolve("never-raised") is None
    assert world.sink.events == []


def test_a_lower_severity_under_an_active_key_changes_nothing(world: World) -> None:
    m = world.monitor
    first = m.raise_alert("error", "Thing", "bad", key="thing")
    assert m.raise_alert("warning", "Thing", "less bad", key="thing") is first
    assert m.raise_alert("error", "Thing", "as bad", key="thing") is first
    assert len(world.sink.events) == 1 and m.active("thing") is first


def test_every_event_is_published_and_delivered_with_a_unique_id(world: World) -> None:
    m = world.monitor
    m.raise_alert("warning", "A", "a", client="demo", key="a")
    m.raise_alert("critical", "A", "a!", client="demo", key="a")
    m.resolve("a", "fine")
    m.raise_alert("info", "N", "notice")
    ids = [e.event_id for e in world.sink.events]
    assert len(set(ids)) == 4 and all(len(i) == 32 for i in ids)
    assert [(msg["type"], msg["data"]["event"], msg["data"]["event_id"])
            for msg in world.sink.messages] == [
        ("Alert", "raised", ids[0]), ("Alert", "escalated", ids[1]),
        ("AlertResolved", "resolved", ids[2]), ("Alert", "raised", ids[3])]
    assert [msg["client"] for msg in world.sink.messages] == ["demo", "demo", "demo", None]
    payload = world.sink.events[1].payload()
    assert payload["event"] == "escalated" and payload["previous_severity"] == "warning"
    assert payload["alert"]["key"] == "a" and payload["alert"]["severity"] == "critical"


def test_log_lines_are_grep_friendly(world: World, caplog: pytest.LogCaptureFixture) -> None:
    class Broken(Recorder):
        def deliver(self, event: AlertEvent) -> None:
            raise RuntimeError("sink bug")

    m = world.monitor
    m.sinks = [Broken(), LogSink(), world.sink]
    with caplog.at_level(logging.INFO, logger="perpdesk.alerts"):
        m.raise_alert("warning", "Margin utilization", "demo on x: 25.0% of equity in use",
                      "demo", key="margin_utilization:demo:x")
        m.raise_alert("critical", "Margin utilization", "demo on x: 55.0% of equity in use",
                      "demo", key="margin_utilization:demo:x")
        m.resolve("margin_utilization:demo:x", "demo on x: 10.0%")
        m.raise_alert("critical", "Position liquidated", "demo x BTC-PERP")
    lines = [r.getMessage() for r in caplog.records if r.name == "perpdesk.alerts"]
    assert lines == [
        "ALERT[WARNING] margin_utilization:demo:x Margin utilization: "
        "demo on x: 25.0% of equity in use",
        "ALERT[CRITICAL] margin_utilization:demo:x Margin utilization: "
        "demo on x: 55.0% of equity in use",
        "ALERT_RESOLVED[CRITICAL] margin_utilization:demo:x Margin utilization: "
        "demo on x: 10.0%",
        "ALERT[CRITICAL] - Position liquidated: demo x BTC-PERP"]
    assert len(world.sink.events) == 4  # the broken sink stopped nobody


def test_the_book_is_bounded_and_keeps_active_alerts(world: World) -> None:
    m = world.monitor  # history=50
    old = m.raise_alert("warning", "Old", "still holds", key="old")
    for i in range(200):
        m.raise_alert("info", "Notice", str(i))
    assert len(m.book) == 50
    assert m.active("old") is old and m.book.get(old.id) is old
    assert m.feed[0].message == "199" and m.feed[-1] is old
    assert m.resolve("old") is not None


def _alerts(world: World) -> list[Any]:
    m = world.monitor
    out = [m.raise_alert("warning", "Margin", "w", "demo", key="margin_utilization:demo:a"),
           m.raise_alert("critical", "Margin", "c", "demo-2", key="margin_utilization:demo-2:a"),
           m.raise_alert("warning", "Stale", "s", key="stale_mark:a:BTC-PERP"),
           m.raise_alert("info", "Trading active", "n", "demo")]
    world.tick(10)
    out.append(m.raise_alert("error", "Drift", "d", "demo", key="reconciliation_drift:demo:a"))
    m.resolve("margin_utilization:demo:a")
    return out


@pytest.mark.parametrize(("where", "expected"), [
    (AlertFilter(), [5, 4, 3, 2, 1]),
    (AlertFilter(clients=frozenset({"demo"})), [5, 4, 3, 1]),  # + the one about no client
    (AlertFilter(clients=frozenset({"demo"}), include_global=False), [5, 4, 1]),
    (AlertFilter(severities=frozenset({"warning", "critical"})), [3, 2, 1]),
    (AlertFilter(state="active"), [5, 3, 2]),
    (AlertFilter(state="resolved"), [1]),
    (AlertFilter(state="notice"), [4]),
    (AlertFilter(key_prefix="margin_utilization:"), [2, 1]),
    (AlertFilter(since=T0 + timedelta(seconds=10)), [5]),
    (AlertFilter(until=T0 + timedelta(seconds=10)), [4, 3, 2, 1]),
])
def test_pages_filter(world: World, where: AlertFilter, expected: list[int]) -> None:
    _alerts(world)
    items, cursor = world.monitor.page(where, None, 100)
    assert [a.id for a in items] == expected and cursor is None


def test_pages_follow_the_cursor_and_stay_bounded(world: World) -> None:
    _alerts(world)
    m = world.monitor
    first, cursor = m.page(AlertFilter(), None, 2)
    assert [a.id for a in first] == [5, 4] and cursor == 4
    second, cursor = m.page(AlertFilter(), cursor, 2)
    assert [a.id for a in second] == [3, 2] and cursor == 2
    last, cursor = m.page(AlertFilter(), cursor, 2)
    assert [a.id for a in last] == [1] and cursor is None
    # A narrow filter: a page examines at most its budget, then says where to go on.
    items, cursor = m.book.page(AlertFilter(state="resolved"), None, 10, budget=2)
    assert items == [] and cursor == 4
    items, cursor = m.book.page(AlertFilter(state="resolved"), cursor, 10, budget=2)
    assert items == [] and cursor == 2
    items, cursor = m.book.page(AlertFilter(state="resolved"), cursor, 10, budget=2)
    assert [a.id for a in items] == [1] and cursor is None


def test_the_dashboard_shows_active_alerts_first(world: World) -> None:
    _alerts(world)
    shown = world.monitor.dashboard(["demo"])
    assert [(a.id, a.state) for a in shown] == [
        (5, "active"), (3, "active"), (4, "notice"), (1, "resolved")]
    assert [a.id for a in world.monitor.dashboard(None, limit=2)] == [2, 5]
