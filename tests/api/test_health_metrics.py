"""/healthz, /readyz and /metrics: no authentication, honest answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client.parser import text_string_to_metric_families


def _metrics(api) -> dict[str, list]:
    r = api.get("/metrics", None)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return {f.name: f.samples for f in text_string_to_metric_families(r.text)}


def _value(samples, name: str, **labels) -> float | None:
    for s in samples:
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return None


def test_healthz_needs_no_auth(api):
    r = api.get("/healthz", None)
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_readyz_is_503_until_every_mark_is_in_then_200(api):
    r = api.get("/readyz", None)
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "not_ready"
    assert len(body["problems"]) == 1
    assert "stale or missing marks" in body["problems"][0]
    assert "paper-binance:BTC-PERP" in body["problems"][0]

    api.push_btc()  # one instrument is not enough
    r = api.get("/readyz", None)
    assert r.status_code == 503
    assert "paper-binance:BTC-PERP" not in r.json()["problems"][0]
    assert "paper-bybit:XRP-PERP" in r.json()["problems"][0]

    api.push_all_marks()
    r = api.get("/readyz", None)
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ready", "problems": []}


def test_readyz_reports_stale_marks(make_api):
    api = make_api(stale_mark_seconds=5)
    api.push_all_marks(at=datetime.now(UTC) - timedelta(seconds=60))
    r = api.get("/readyz", None)
    assert r.status_code == 503
    assert "stale or missing marks (> 5 s)" in r.json()["problems"][0]
    api.push_all_marks()
    assert api.get("/readyz", None).status_code == 200


def test_metrics_after_orders_fills_and_a_rejection(market_api):
    api = market_api
    api.buy_market()
    api.place(price="59000.0")
    assert api.order(price="59000.05").status_code == 400  # PRICE_NOT_ON_TICK
    assert api.order(price="59000.05", qty="0.002").status_code == 400
    m = _metrics(api)

    orders = m["perpdesk_orders"]
    assert _value(orders, "perpdesk_orders_total", outcome="rejected",
                  reason="PRICE_NOT_ON_TICK") == 2
    assert _value(orders, "perpdesk_orders_total", outcome="accepted", reason="") == 2
    assert _value(m["perpdesk_fills"], "perpdesk_fills_total", liquidity="taker") == 1
    latency = m["perpdesk_command_latency_seconds"]
    count = _value(latency, "perpdesk_command_latency_seconds_count")
    assert count is not None and count >= 4  # 4 orders (+ the deposits at start)
    assert _value(latency, "perpdesk_command_latency_seconds_bucket", le="+Inf") == count
    assert _value(latency, "perpdesk_command_latency_seconds_sum") > 0
    assert _value(m["perpdesk_event_log_lag"], "perpdesk_event_log_lag") is not None
    assert _value(m["perpdesk_event_log_lag"], "perpdesk_event_log_lag") >= 0
    assert _value(m["perpdesk_trading_state"], "perpdesk_trading_state",
                  scope="global", state="active") == 1
    assert _value(m["perpdesk_ws_clients"], "perpdesk_ws_clients") is not None


def test_metrics_trading_state_globally_and_per_venue_clients_only_counted(api):
    """/metrics needs no login: the global and venue states are labelled, kill switches
    on clients are only counted per state (no client name in a label)."""
    api.ok(api.control("reduce-only", client="demo"))
    api.ok(api.control("disable-trading", client="demo-2", venue="paper-binance"))
    api.ok(api.control("disable-trading", venue="paper-bybit"))
    m = _metrics(api)
    samples = m["perpdesk_trading_state"]
    assert _value(samples, "perpdesk_trading_state", scope="venue paper-bybit",
                  state="halted") == 1
    assert _value(samples, "perpdesk_trading_state", scope="global", state="active") == 1
    assert {s.labels["scope"] for s in samples} == {"global", "venue paper-bybit"}
    counted = m["perpdesk_client_scopes_restricted"]
    assert _value(counted, "perpdesk_client_scopes_restricted", state="reduce_only") == 1
    assert _value(counted, "perpdesk_client_scopes_restricted", state="halted") == 1

    api.ok(api.control("enable-trading", client="demo"))
    api.ok(api.control("enable-trading", venue="paper-bybit"))
    m = _metrics(api)
    counted = m["perpdesk_client_scopes_restricted"]
    assert _value(counted, "perpdesk_client_scopes_restricted", state="reduce_only") == 0
    assert _value(counted, "perpdesk_client_scopes_restricted", state="halted") == 1
    assert _value(m["perpdesk_trading_state"], "perpdesk_trading_state",
                  scope="venue paper-bybit", state="halted") is None  # no stale series


def test_unauthenticated_metrics_name_no_client(market_api):
    """Whatever happens to clients' accounts, /metrics (no login) never names one."""
    api = market_api
    api.buy_market()
    api.buy_market(client="demo-2")
    api.ok(api.control("reduce-only", client="demo"))
    api.ok(api.control("disable-trading", client="demo-2", venue="paper-binance"))
    api.ok(api.control("close-all", client="demo-2"))
    r = api.get("/metrics", None)
    assert r.status_code == 200
    for client in api.system.clients:
        assert client not in r.text, f"/metrics names client {client!r}"


def test_metrics_count_websocket_clients(api, ws_recv):
    def clients() -> float | None:
        return _value(_metrics(api)["perpdesk_ws_clients"], "perpdesk_ws_clients")

    assert clients() == 0, "no WebSocket client is connected yet"
    with api.ws("viewer") as one, api.ws("viewer", topics="fills") as two:
        ws_recv(one)
        ws_recv(two)
        assert clients() == 2
    api.settle()
    api.wait_for(lambda: clients() == 0, "the WebSocket clients to be gone")


def test_health_endpoints_need_no_key_but_the_api_does(api):
    assert api.get("/metrics", None).status_code == 200
    assert api.get("/readyz", None).status_code in (200, 503)
    assert api.get("/api/v1/markets", None).status_code == 401


def test_metrics_show_the_garbage_collector(api):
    """The server runs inside tuned_gc: its passes, longest pauses and frozen objects are
    on /metrics (app/runtime/gc_tuning.py)."""
    import time

    deadline = time.monotonic() + 10
    while True:
        families = _metrics(api)
        young = _value(families["perpdesk_gc_passes"], "perpdesk_gc_passes_total",
                       generation="0")
        if young or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert young and young >= 1, "no young pass in 10 s"
    assert _value(families["perpdesk_gc_pause_max_seconds"],
                  "perpdesk_gc_pause_max_seconds", generation="0") is not None
    frozen = families["perpdesk_gc_frozen_objects"][0].value
    assert frozen > 10_000  # at least the start-up heap
