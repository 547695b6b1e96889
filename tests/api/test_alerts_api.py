"""GET /api/v1/alerts and /api/v1/reconciliation: filters, pages, the caller's scope
(an alert about a client reaches only callers who may see that client), bounded input
with the one error shape, and the alert counters on /metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

MARGIN_DEMO = "margin_utilization:demo:paper-binance"
MARGIN_DEMO2 = "margin_utilization:demo-2:paper-binance"


def raise_(api: Any, level: str, title: str, message: str, client: str | None = None,
           key: str | None = None) -> Any:
    return api.client.portal.call(
        lambda: api.system.alerts.raise_alert(level, title, message, client, key=key))


def resolve(api: Any, key: str, message: str = "") -> Any:
    return api.client.portal.call(lambda: api.system.alerts.resolve(key, message))


def alerts(api: Any, who: str = "admin", **params: Any) -> dict:
    return api.ok(api.get("/api/v1/alerts", who, params=params))


@pytest.fixture
def quiet_api(make_api: Any) -> Any:
    """An app whose only alerts are the tests' own (no stale-mark alerts: the limit is
    far away and every mark is pushed)."""
    from app.runtime.alerts import AlertMonitor

    api = make_api()
    api.push_all_marks()

    def fresh_monitor() -> None:  # the alerts of the start (marks not there yet) forgotten
        system = api.system
        system.alerts = AlertMonitor(system, system.broadcaster, config=system.trading.alerts)

    api.client.portal.call(fresh_monitor)
    return api


@pytest.fixture
def seeded(quiet_api: Any) -> Any:
    api = quiet_api
    raise_(api, "warning", "Margin utilization", "demo: 25%", "demo", MARGIN_DEMO)  # 1
    raise_(api, "critical", "Margin utilization", "demo-2: 60%", "demo-2", MARGIN_DEMO2)  # 2
    raise_(api, "warning", "Stale mark", "no mark", None, "stale_mark:paper-bybit:ETH-PERP")  # 3
    raise_(api, "info", "Trading halted", "client demo-2: halted", "demo-2")  # 4
    raise_(api, "critical", "Margin utilization", "demo: 55%", "demo", MARGIN_DEMO)  # 1 again
    resolve(api, MARGIN_DEMO, "demo: 10%")
    return api


def ids(body: dict) -> list[int]:
    return [a["id"] for a in body["items"]]


def test_alerts_are_listed_newest_first_with_their_state(seeded: Any) -> None:
    body = alerts(seeded)
    assert ids(body) == [4, 3, 2, 1] and body["next_cursor"] is None
    by_id = {a["id"]: a for a in body["items"]}
    first = by_id[1]
    assert first["key"] == MARGIN_DEMO and first["state"] == "resolved"
    assert first["severity"] == "critical"  # escalated before it cleared
    assert first["resolution"] == "demo: 10%" and first["message"] == "demo: 55%"
    assert first["raised_at"] <= first["at"] <= first["resolved_at"]
    assert by_id[2]["state"] == "active" and by_id[2]["resolved_at"] is None
    assert by_id[4]["state"] == "notice" and by_id[4]["key"] is None
    assert by_id[3]["client"] is None
    # Pages: follow next_cursor until it is null.
    page = alerts(seeded, limit=3)
    assert ids(page) == [4, 3, 2] and page["next_cursor"] == 2
    page = alerts(seeded, limit=3, cursor=page["next_cursor"])
    assert ids(page) == [1] and page["next_cursor"] is None


@pytest.mark.parametrize(("params", "expected"), [
    ({"state": "active"}, [3, 2]),
    ({"state": "resolved"}, [1]),
    ({"state": "notice"}, [4]),
    ({"severity": ["critical"]}, [2, 1]),
    ({"severity": ["warning", "info"]}, [4, 3]),
    ({"key_prefix": "margin_utilization:"}, [2, 1]),
    ({"key_prefix": "margin_utilization:demo-2:"}, [2]),
    ({"client": "demo-2"}, [4, 2]),  # about that client: not the alerts about no client
    ({"client": "demo", "state": "active"}, []),
])
def test_alerts_filter(seeded: Any, params: dict, expected: list[int]) -> None:
    assert ids(alerts(seeded, **params)) == expected


def test_alerts_filter_by_time(seeded: Any) -> None:
    every = alerts(seeded)["items"]
    third = datetime.fromisoformat(next(a for a in every if a["id"] == 3)["raised_at"])
    assert ids(alerts(seeded, **{"from": third.isoformat()})) == [4, 3]
    assert ids(alerts(seeded, to=third.isoformat())) == [2, 1]
    # No offset: UTC.
    naive = third.astimezone(UTC).replace(tzinfo=None).isoformat()
    assert ids(alerts(seeded, **{"from": naive})) == [4, 3]
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert ids(alerts(seeded, **{"from": later})) == []


def test_a_scoped_caller_sees_its_clients_and_what_concerns_everyone(seeded: Any) -> None:
    body = alerts(seeded, "scoped")  # operator for demo only
    assert ids(body) == [3, 1]
    assert all(a["client"] in (None, "demo") for a in body["items"])
    assert "demo-2" not in repr(body)
    assert ids(alerts(seeded, "scoped", key_prefix="margin_utilization:")) == [1]
    r = seeded.get("/api/v1/alerts", "scoped", params={"client": "demo-2"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "CLIENT_FORBIDDEN"
    r = seeded.get("/api/v1/alerts", "scoped", params={"client": "nobody"})
    assert r.status_code == 403  # outside the scope: says nothing of whether it exists
    r = seeded.get("/api/v1/alerts", "admin", params={"client": "nobody"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "UNKNOWN_CLIENT"
    assert ids(alerts(seeded, "viewer")) == [4, 3, 2, 1]  # any role reads
    assert seeded.get("/api/v1/alerts", None).status_code == 401


@pytest.mark.parametrize(("params", "field"), [
    ({"state": "open"}, "state"),
    ({"severity": "fatal"}, "severity.0"),  # the first value
    ({"severity": ["info"] * 5}, "severity"),
    ({"key_prefix": "margin utilization"}, "key_prefix"),
    ({"key_prefix": "k" * 201}, "key_prefix"),
    ({"limit": 0}, "limit"),
    ({"limit": 501}, "limit"),
    ({"cursor": 0}, "cursor"),
    ({"cursor": 2**63}, "cursor"),
    ({"from": "yesterday"}, "from"),
    ({"from": "1999-12-31T23:00:00Z"}, "from"),
    ({"from": "2024-01-02T00:00:00Z", "to": "2024-01-01T00:00:00Z"}, "to"),
    ({"client": "x" * 65}, "client"),
])
def test_bad_input_is_a_422_naming_the_field(shared_api: Any, params: dict,
                                            field: str) -> None:
    r = shared_api.get("/api/v1/alerts", params=params)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "VALIDATION_ERROR" and error["details"]["field"] == field


def test_reconciliation_history_is_read_by_scope(quiet_api: Any) -> None:
    api = quiet_api
    api.client.portal.call(api.system.alerts.reconcile)
    api.client.portal.call(api.system.alerts.reconcile)

    def page(who: str = "admin", **params: Any) -> dict:
        return api.ok(api.get("/api/v1/reconciliation", who, params=params))

    every = page()["items"]
    accounts = {(r["client"], r["venue"]) for r in every}
    assert accounts == {(c, v) for c in ("demo", "demo-2", "arb")
                        for v in ("paper-binance", "paper-bybit")}
    ids_ = [r["id"] for r in every]
    assert ids_ == sorted(ids_, reverse=True)
    for r in every:  # the funded accounts, untouched: equity is exactly its parts
        assert r["ok"] is True and Decimal(r["drift"]) == 0
        assert Decimal(r["equity"]) == Decimal(r["expected_equity"]) == Decimal(r["deposits"])
    scoped = page("scoped")["items"]
    assert scoped and {r["client"] for r in scoped} == {"demo"}
    assert {r["venue"] for r in page(venue="paper-bybit")["items"]} == {"paper-bybit"}
    assert page(drifting="true")["items"] == []
    first = page(limit=3)
    assert len(first["items"]) == 3 and first["next_cursor"] == first["items"][-1]["id"]
    r = api.get("/api/v1/reconciliation", "scoped", params={"client": "demo-2"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "CLIENT_FORBIDDEN"
    r = api.get("/api/v1/reconciliation", params={"venue": "nowhere"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "UNKNOWN_VENUE"
    r = api.get("/api/v1/reconciliation", params={"limit": 1000})
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "limit"


def test_metrics_count_alerts_and_name_no_client(seeded: Any) -> None:
    text = seeded.get("/metrics", None).text
    assert 'perpdesk_alerts_active{severity="critical"} 1.0' in text
    assert 'perpdesk_alerts_active{severity="warning"} 1.0' in text
    assert 'perpdesk_alert_events_total{event="escalated"} 1.0' in text
    assert 'perpdesk_alert_sink_delivered_total{sink="log"}' in text
    assert 'perpdesk_alert_sink_dropped_total{reason="overflow",sink="log"} 0.0' in text
    assert "demo" not in text


def test_the_openapi_document_declares_the_alert_routes(shared_api: Any) -> None:
    paths = shared_api.ok(shared_api.get("/openapi.json", None))["paths"]
    for path in ("/api/v1/alerts", "/api/v1/reconciliation"):
        responses = paths[path]["get"]["responses"]
        assert {"200", "401", "403", "404", "422", "429", "500"} <= set(responses), path
