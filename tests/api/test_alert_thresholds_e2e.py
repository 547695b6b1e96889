"""Each alert threshold raising and resolving in the running server, with the real
engine: margin utilization from real orders, liquidation risk from real marks, stale
marks from old marks, reconciliation drift from a wallet knocked out of line; seen
through GET /api/v1/alerts, the log, a webhook receiver and the dashboard."""

from __future__ import annotations

import logging
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.auth.principal import Role
from app.domain.market import MarkPrice
from tests.runtime.alert_receiver import Receiver

D = Decimal
BINANCE = "paper-binance"
MARGIN = "margin_utilization:demo-2:paper-binance"
RISK = "liquidation_risk:demo-2:paper-binance"
PASSWORD = "alerts-password-123"

# demo-2 with 100 USDT a venue: a small position takes a large share of its margin.
CONFIG = """
clients:
- {name: demo, leverage: '5', deposits: {paper-binance: '20000', paper-bybit: '20000'}}
- {name: demo-2, leverage: '5', deposits: {paper-binance: '100', paper-bybit: '100'}}
risk:
  default:
    price_band_pct: null
    max_margin_ratio: null
    breakers: {consecutive_losses: null, daily_loss_pct: null, max_drawdown_pct: null}
"""


def start(make_api: Any, tmp_path: Path, extra: str = "", **settings: Any) -> Any:
    config = tmp_path / f"perpdesk-{len(list(tmp_path.iterdir()))}.yaml"
    config.write_text(CONFIG + extra)
    api = make_api(config=config, **settings)
    api.push_btc()
    return api


def active(api: Any, key: str) -> dict | None:
    items = api.ok(api.get("/api/v1/alerts", params={"key_prefix": key}))["items"]
    mine = [a for a in items if a["key"] == key]
    return next((a for a in mine if a["state"] == "active"), None)


def history(api: Any, key: str) -> list[tuple[str, str]]:
    items = api.ok(api.get("/api/v1/alerts", params={"key_prefix": key}))["items"]
    return [(a["state"], a["severity"]) for a in reversed(items) if a["key"] == key]


def check(api: Any) -> None:
    """The once-a-second account check, now (prices move margin without any event)."""
    api.client.portal.call(api.system.alerts.check_accounts)


def order(api: Any, side: str, qty: str) -> None:
    api.place("trader", client="demo-2", side=side, type="market", qty=qty, price=None)


def test_margin_utilization_raises_escalates_and_resolves(make_api: Any, tmp_path: Path,
                                                         caplog: Any) -> None:
    api = start(make_api, tmp_path)
    with caplog.at_level(logging.INFO, logger="perpdesk.alerts"):
        order(api, "buy", "0.002")  # 120 notional, 24 margin of ~100: above 20 %
        warning = active(api, MARGIN)
        assert warning is not None and warning["severity"] == "warning"
        assert warning["client"] == "demo-2" and "24.0% of equity in use" in warning["message"]
        check(api)
        check(api)
        order(api, "buy", "0.003")  # 300 notional, 60 margin: above 50 %
        critical = active(api, MARGIN)
        assert critical is not None and critical["id"] == warning["id"]
        assert critical["severity"] == "critical"
        order(api, "sell", "0.005")  # flat again
        assert active(api, MARGIN) is None
    assert history(api, MARGIN) == [("resolved", "critical")]
    lines = [r.getMessage() for r in caplog.records if MARGIN in r.getMessage()]
    assert [line.split(" ")[0] for line in lines] == [
        "ALERT[WARNING]", "ALERT[CRITICAL]", "ALERT_RESOLVED[CRITICAL]"]
    assert lines[0].startswith(f"ALERT[WARNING] {MARGIN} Margin utilization: demo-2 on "
                               "paper-binance: 24.0% of equity in use")


def test_liquidation_risk_raises_escalates_and_resolves(make_api: Any, tmp_path: Path) -> None:
    api = start(make_api, tmp_path)
    order(api, "buy", "0.005")
    position = next(p for p in api.ok(api.get("/api/v1/positions", params={
        "client": "demo-2", "venue": BINANCE})))
    liquidation = D(position["liquidation_price"])
    # Maintenance margin is ~0.8 USDT here; each dollar of price is 0.005 of equity.
    for offset, severity in ((D(100), "warning"), (D(10), "critical")):
        api.push(MarkPrice(BINANCE, "BTC-PERP", liquidation + offset, datetime.now(UTC)))
        api.settle()
        check(api)
        alert = active(api, RISK)
        assert alert is not None and alert["severity"] == severity, (offset, alert)
    api.push(MarkPrice(BINANCE, "BTC-PERP", D("60000.0"), datetime.now(UTC)))
    api.settle()
    check(api)
    assert active(api, RISK) is None
    assert history(api, RISK) == [("resolved", "critical")]
    resolved = api.ok(api.get("/api/v1/alerts", params={"key_prefix": RISK}))["items"][0]
    assert "(at or below 50%)" in resolved["resolution"]


def test_a_stale_mark_raises_and_resolves(make_api: Any, tmp_path: Path) -> None:
    api = start(make_api, tmp_path, stale_mark_seconds=30.0)
    key = "stale_mark:paper-binance:BTC-PERP"
    api.push(MarkPrice(BINANCE, "BTC-PERP", D("60000.0"),
                       datetime.now(UTC) - timedelta(seconds=31)))
    api.settle()
    api.client.portal.call(api.system.alerts.check_marks)
    alert = active(api, key)
    assert alert is not None and alert["severity"] == "warning" and alert["client"] is None
    assert "no mark for more than 30 s" in alert["message"]
    api.push(MarkPrice(BINANCE, "BTC-PERP", D("60000.0"), datetime.now(UTC)))
    api.settle()
    api.client.portal.call(api.system.alerts.check_marks)
    assert active(api, key) is None
    assert history(api, key)[-1] == ("resolved", "warning")
    # The instruments that never had a mark stay stale.
    assert active(api, "stale_mark:paper-bybit:XRP-PERP") is not None


def test_reconciliation_drift_raises_and_resolves(make_api: Any, tmp_path: Path) -> None:
    api = start(make_api, tmp_path)
    key = "reconciliation_drift:demo:paper-binance"
    order(api, "buy", "0.002")  # realized, fees and unrealized in play
    account = api.system.engine.state.accounts[("demo", BINANCE)]

    def knock(amount: Decimal) -> None:
        # A bug's effect: the running wallet moved without its parts.
        account.wallet += amount
        api.system.alerts.reconcile()

    api.client.portal.call(knock, D("1.50"))
    alert = active(api, key)
    assert alert is not None and alert["severity"] == "error" and alert["client"] == "demo"
    assert "drift 1.50" in alert["message"]
    drifting = api.ok(api.get("/api/v1/reconciliation", params={
        "client": "demo", "venue": BINANCE, "drifting": "true"}))["items"]
    assert [D(r["drift"]) for r in drifting] == [D("1.5")]
    assert D(drifting[0]["equity"]) - D(drifting[0]["expected_equity"]) == D("1.5")
    api.client.portal.call(knock, D("-1.50"))
    assert active(api, key) is None
    assert history(api, key) == [("resolved", "error")]
    latest = api.ok(api.get("/api/v1/reconciliation", params={
        "client": "demo", "venue": BINANCE, "limit": 1}))["items"][0]
    assert latest["ok"] is True and D(latest["drift"]) == 0
    # Everyone else reconciles: the real engine's books balance to the cent.
    other = api.ok(api.get("/api/v1/reconciliation", params={"client": "demo-2"}))["items"]
    assert other and all(r["ok"] and D(r["drift"]) == 0 for r in other)


def test_the_dashboard_shows_active_and_resolved_alerts(make_api: Any, tmp_path: Path) -> None:
    api = start(make_api, tmp_path)
    order(api, "buy", "0.002")
    order(api, "sell", "0.002")  # raised and resolved
    order(api, "buy", "0.002")  # raised again: active
    api.auth.add_user("viewer-user", Role.VIEWER, PASSWORD)
    r = api.client.post("/login", data={"name": "viewer-user", "password": PASSWORD,
                                        "next": "/"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    page = api.client.get("/").text
    feed = page[page.index('<ul id="alerts"'):]
    feed = feed[:feed.index("</ul>")]
    rows = re.findall(r'data-state="(\w+)" data-key="([^"]+)"', feed)
    margin = [state for state, key in rows if key == MARGIN]
    assert margin == ["active", "resolved"]  # the active one on top
    assert re.search(r"resolved \d\d:\d\d:\d\d", feed)


def test_a_webhook_gets_the_alerts_and_a_hanging_one_slows_nothing(
        make_api: Any, tmp_path: Path) -> None:
    release = threading.Event()
    receiver = Receiver()
    receiver.answer = lambda payload: 200 if release.wait(15) else 500
    receiver.start()
    try:
        api = start(make_api, tmp_path, f"""
alerts:
  sinks:
  - {{type: log}}
  - {{type: webhook, name: ops-hook, url: "{receiver.url}", queue_size: 2,
      min_severity: critical, backoff_initial_s: 0.05, timeout_s: 20}}
""")
        started = time.perf_counter()
        # Ten critical margin events (and nothing else: stale marks are warnings) while
        # the receiver holds the first.
        for _ in range(5):
            order(api, "buy", "0.005")
            order(api, "sell", "0.005")
        took = time.perf_counter() - started
        assert took < 10, took  # the orders never waited for the receiver (it holds 15 s)
        metrics = api.get("/metrics", None).text
        queued = re.search(r'perpdesk_alert_sink_queue\{sink="ops-hook"\} (\S+)', metrics)
        dropped = re.search(r'perpdesk_alert_sink_dropped_total\{reason="overflow",'
                            r'sink="ops-hook"\} (\S+)', metrics)
        assert queued and float(queued.group(1)) <= 3  # 2 waiting + 1 in flight
        assert dropped and float(dropped.group(1)) >= 7
        release.set()
        api.wait_for(lambda: len(receiver.delivered_ids()) >= 3, "the kept events")
        delivered = receiver.payloads
        assert {(p["alert"]["key"], p["alert"]["severity"]) for p in delivered} == {
            (MARGIN, "critical")}
        assert delivered[-1]["event"] == "resolved"  # the newest kept: the last resolve
    finally:
        release.set()
        receiver.stop()


@pytest.mark.parametrize(("action", "title"), [("reduce-only", "Trading reduce-only"),
                                             ("disable-trading", "Trading halted")])
def test_kill_switch_changes_stay_notices(make_api: Any, tmp_path: Path, action: str,
                                         title: str) -> None:
    api = start(make_api, tmp_path)
    api.ok(api.control(action, client="demo-2", reason="checks"))
    api.ok(api.control("enable-trading", client="demo-2", reason="all clear"))
    items = api.ok(api.get("/api/v1/alerts", params={"client": "demo-2",
                                                      "state": "notice"}))["items"]
    assert [(a["title"], a["severity"]) for a in items] == [
        ("Trading active", "info"), (title, "warning")]
